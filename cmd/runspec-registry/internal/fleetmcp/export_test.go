// export_test.go shows the tests of package fleetmcp_test what a catalog
// holds beyond its listing.

package fleetmcp

import registry "github.com/runspec/registry"

// CatalogEntry is what a test compares of one MCP tool of the catalog.
type CatalogEntry struct {
	Runspec  string        // the runspec name
	Hosts    []string      // the hosts that offer it
	Autonomy Autonomy      // the strictest, capped
	Listing  string        // the listing's contents
	Tool     registry.Tool // the grouped tool a call plans with
}

// Catalog returns the latest catalog: its index and its entries by MCP
// name.
func (s *Server) Catalog() (uint64, map[string]CatalogEntry) {
	c := s.cat.Load()
	if c == nil {
		return 0, nil
	}
	out := make(map[string]CatalogEntry, len(c.byName))
	for name, e := range c.byName {
		out[name] = CatalogEntry{Runspec: e.runspec, Hosts: e.hosts, Autonomy: e.autonomy, Listing: e.key, Tool: e.tool()}
	}
	return c.index, out
}

// catalog.go builds the catalog from an answer of the registry: one entry
// per MCP tool, with the grouped tool as the view keeps it (for calls),
// its autonomy, and its listing (name, description, inputSchema with
// runspec_host, title and annotations). Entries whose inputs did not
// change are carried over from the previous catalog as they were.

package fleetmcp

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

// fewHosts is the most hosts a description names.
const fewHosts = 8

// entry is one MCP tool of the catalog.
type entry struct {
	name     string        // the MCP name
	tool     registry.Tool // the runspec tool, with the view's active entries only
	hosts    []string      // the hosts of those entries, each once, sorted
	autonomy Autonomy      // the strictest of the entries' x-autonomy, capped
	meta     *toolMeta     // title and annotations: those of the first entry that has metadata
	listing  *mcp.Tool
	key      string      // the listing's contents: a change of key is a change of the listing
	schema   *lazySchema // the tool's inputSchema, compiled on first call
}

// lazySchema is an inputSchema compiled once, on first use; entries of
// successive catalogs with the same schema share it.
type lazySchema struct {
	once   sync.Once
	raw    json.RawMessage
	schema *run.Schema
	err    error
}

// compiled returns the tool's compiled inputSchema, compiling it once.
func (e *entry) compiled() (*run.Schema, error) {
	l := e.schema
	l.once.Do(func() { l.schema, l.err = run.CompileSchema(l.raw) })
	return l.schema, l.err
}

// catalog is what the server offers at one registry index. It is not
// changed once built: a new answer builds a new one.
type catalog struct {
	index  uint64
	byName map[string]*entry // by MCP name
}

// buildCatalog builds the catalog of tools (an answer of GET /tools) for
// the view, with the metadata of meta; entries of prev whose inputs are
// the same are reused.
func buildCatalog(index uint64, tools []registry.Tool, prev *catalog, meta *metaCache, v View, maxAutonomy Autonomy, log *slog.Logger) *catalog {
	c := &catalog{index: index, byName: make(map[string]*entry, len(tools))}
	var aliased []*entry
	for _, t := range tools {
		if !v.tool(t.Name) {
			continue
		}
		var hs []registry.ToolHost
		for _, h := range t.Hosts {
			if v.host(h) {
				hs = append(hs, h)
			}
		}
		if len(hs) == 0 {
			continue
		}
		level := Autonomy(0)
		var first *toolMeta
		for _, h := range hs {
			m := meta.lookup(h.InstanceID, t.Name)
			if m == nil {
				level = Stricter(level, Confirm) // not read (yet): a person approves
				continue
			}
			if first == nil {
				first = m
			}
			level = Stricter(level, m.autonomy)
		}
		level = Stricter(level, maxAutonomy)
		if level == Manual {
			continue
		}
		t.Hosts = hs
		e := &entry{name: Alias(t.Name), tool: t, hosts: run.ActiveHosts(t), autonomy: level, meta: first}
		if p := prev.lookup(e.name); p != nil && p.sameListing(e) {
			e.listing, e.key, e.schema = p.listing, p.key, p.schema
		} else if err := e.build(); err != nil {
			log.Warn("tool not offered over MCP", "tool", t.Name, "err", err)
			continue
		}
		if e.name == t.Name {
			if old := c.byName[e.name]; old != nil {
				log.Warn("tool not offered over MCP: its name is the alias of another tool", "tool", old.tool.Name, "alias", e.name, "other", t.Name)
			}
			c.byName[e.name] = e
		} else {
			aliased = append(aliased, e)
		}
	}
	// Valid names first: an alias that collides with a tool's own name (or
	// with another alias) gives way, whatever the order.
	for _, e := range aliased {
		if other := c.byName[e.name]; other != nil {
			log.Warn("tool not offered over MCP: its alias is taken", "tool", e.tool.Name, "alias", e.name, "by", other.tool.Name)
			continue
		}
		c.byName[e.name] = e
	}
	return c
}

// lookup returns the entry of an MCP name, or nil.
func (c *catalog) lookup(name string) *entry {
	if c == nil {
		return nil
	}
	return c.byName[name]
}

// names returns the MCP names, sorted.
func (c *catalog) names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// sameListing reports whether e's listing would be p's: same runspec
// tool (name, description, schema), hosts, autonomy and metadata. The
// entries themselves (execution fields, last_seen) are not in the
// listing: e keeps its own.
func (p *entry) sameListing(e *entry) bool {
	return p.tool.Name == e.tool.Name && p.tool.Description == e.tool.Description &&
		string(p.tool.InputSchema) == string(e.tool.InputSchema) && p.autonomy == e.autonomy &&
		p.meta == e.meta && slices.Equal(p.hosts, e.hosts)
}

// build makes the entry's listing.
func (e *entry) build() error {
	schema, err := listingSchema(e.tool.InputSchema, e.hosts)
	if err != nil {
		return err
	}
	l := &mcp.Tool{Name: e.name, Description: e.description(), InputSchema: schema}
	if e.meta != nil {
		l.Title = e.meta.title
		if a := e.meta.annotations; a != nil {
			ann := *a
			if l.Title == "" {
				l.Title = ann.Title
			}
			l.Annotations = &ann
		}
	}
	ann, _ := json.Marshal(l.Annotations)
	e.schema = &lazySchema{raw: e.tool.InputSchema}
	e.listing = l
	e.key = l.Description + "\x00" + l.Title + "\x00" + string(ann) + "\x00" + string(schema)
	return nil
}

// description is the tool's own description followed by where it runs
// and what its autonomy means for a call.
func (e *entry) description() string {
	var b strings.Builder
	if d := strings.TrimSpace(e.tool.Description); d != "" {
		b.WriteString(d)
		b.WriteString("\n\n")
	}
	switch n := len(e.hosts); {
	case n == 1:
		fmt.Fprintf(&b, "Runs on 1 host: %s.", e.hosts[0])
	case n <= fewHosts:
		fmt.Fprintf(&b, "Runs on %d hosts: %s (choose one with %s).", n, strings.Join(e.hosts, ", "), HostArg)
	default:
		fmt.Fprintf(&b, "Runs on %d hosts (choose one with %s; its enum lists them).", n, HostArg)
	}
	switch e.autonomy {
	case Confirm:
		b.WriteString(" A person approves each call before it runs.")
	case Supervised:
		b.WriteString(" A person should review each result.")
	}
	if e.name != e.tool.Name {
		fmt.Fprintf(&b, " Its runspec name is %q.", e.tool.Name)
	}
	return b.String()
}

// sameField reports whether two execution fields are the same value.
func sameField(a, b registry.ExecField) bool {
	return a.Set == b.Set && a.Value == b.Value && string(a.Raw) == string(b.Raw)
}

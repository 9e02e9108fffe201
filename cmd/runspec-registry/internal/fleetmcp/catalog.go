// catalog.go builds the catalog from the fleet: one entry per MCP tool,
// with the records that offer it (for calls), its autonomy, and its
// listing (name, description, inputSchema with runspec_host, title and
// annotations). Only the entries of the tool names a change touched are
// built again, and those whose listing would be the same keep it.

package fleetmcp

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

// fewHosts is the most hosts a description names.
const fewHosts = 8

// entry is one MCP tool of the catalog. It is never modified.
type entry struct {
	name    string    // the MCP name
	runspec string    // the runspec tool name
	first   *toolMeta // the tool object of the first member: the tool's description and inputSchema, as the registry groups them
	members []*record // the view's active instances that offer it, in registration order
	hosts   []string  // their hosts, each once, sorted
	// autonomy is the strictest of the members' x-autonomy, capped.
	autonomy Autonomy
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

// tool returns the grouped tool, as GET /tools/{name}?detail=true shows
// it for the view's instances: what a call plans with.
func (e *entry) tool() registry.Tool {
	t := registry.Tool{Name: e.runspec, Description: e.first.desc, InputSchema: e.first.input,
		Hosts: make([]registry.ToolHost, 0, len(e.members))}
	for _, r := range e.members {
		m := r.tool(e.runspec)
		t.Hosts = append(t.Hosts, registry.ToolHost{
			Host: r.host, InstanceID: r.id, Name: r.agent,
			Command: m.exec[0], RunAs: m.exec[1], BecomeMethod: m.exec[2], BecomeFlags: m.exec[3],
			Active: true, LastSeen: r.lastSeen, Labels: r.labels, Owner: r.owner,
			Run: registry.RunCommand(r.host, e.runspec),
		})
	}
	return t
}

// newEntry builds the entry of the runspec tool name offered by members
// (not empty), reusing prev's listing if it would be the same. It returns
// nil when the tool is not offered: manual, or a schema that cannot be
// listed (logged).
func newEntry(name string, members []*record, prev *entry, maxAutonomy Autonomy, log *slog.Logger) *entry {
	level := Autonomy(0)
	hosts := make([]string, 0, len(members))
	for _, r := range members {
		level = Stricter(level, r.tool(name).autonomy)
		hosts = append(hosts, r.host)
	}
	level = Stricter(level, maxAutonomy)
	if level == Manual {
		return nil
	}
	slices.Sort(hosts)
	e := &entry{name: Alias(name), runspec: name, first: members[0].tool(name), members: members,
		hosts: slices.Compact(hosts), autonomy: level}
	if prev != nil && prev.sameListing(e) {
		e.listing, e.key, e.schema = prev.listing, prev.key, prev.schema
		return e
	}
	if err := e.build(); err != nil {
		log.Warn("tool not offered over MCP", "tool", name, "err", err)
		return nil
	}
	return e
}

// sameListing reports whether e's listing would be p's: same runspec
// tool (name, description, schema), hosts, autonomy, title and
// annotations. The members themselves (execution fields, last_seen) are
// not in the listing: e keeps its own.
func (p *entry) sameListing(e *entry) bool {
	return p.runspec == e.runspec && p.first.desc == e.first.desc && string(p.first.input) == string(e.first.input) &&
		p.autonomy == e.autonomy && p.first.title == e.first.title && p.first.annKey == e.first.annKey &&
		slices.Equal(p.hosts, e.hosts)
}

// build makes the entry's listing.
func (e *entry) build() error {
	schema, err := listingSchema(e.first.input, e.hosts)
	if err != nil {
		return err
	}
	l := &mcp.Tool{Name: e.name, Description: e.description(), InputSchema: schema, Title: e.first.title}
	if a := e.first.annotations; a != nil {
		ann := *a
		if l.Title == "" {
			l.Title = ann.Title
		}
		l.Annotations = &ann
	}
	ann, _ := json.Marshal(l.Annotations)
	e.schema = &lazySchema{raw: e.first.input}
	e.listing = l
	e.key = l.Description + "\x00" + l.Title + "\x00" + string(ann) + "\x00" + string(schema)
	return nil
}

// description is the tool's own description followed by where it runs
// and what its autonomy means for a call.
func (e *entry) description() string {
	var b strings.Builder
	if d := strings.TrimSpace(e.first.desc); d != "" {
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
	if e.name != e.runspec {
		fmt.Fprintf(&b, " Its runspec name is %q.", e.runspec)
	}
	return b.String()
}

// sameField reports whether two execution fields are the same value.
func sameField(a, b registry.ExecField) bool {
	return a.Set == b.Set && a.Value == b.Value && string(a.Raw) == string(b.Raw)
}

// catalog is what the server offers at one registry index. It is not
// changed once built: a change builds a new one.
type catalog struct {
	index  uint64
	byName map[string]*entry // by MCP name
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
	return slices.Sorted(maps.Keys(c.byName))
}

// catalogBuilder keeps the entries of every tool the fleet offers and
// gives out catalogs. Only the goroutine that follows the registry uses
// it.
type catalogBuilder struct {
	maxAutonomy Autonomy
	log         *slog.Logger
	entries     map[string]*entry   // by runspec name: every tool that could be offered
	claims      map[string][]string // MCP name -> the runspec names whose MCP name it is, sorted
	cat         *catalog            // the latest
}

func newCatalogBuilder(maxAutonomy Autonomy, log *slog.Logger) *catalogBuilder {
	return &catalogBuilder{maxAutonomy: maxAutonomy, log: log, entries: map[string]*entry{}, claims: map[string][]string{},
		cat: &catalog{byName: map[string]*entry{}}}
}

// update builds again the entries of the runspec names touched, from the
// members of f, and returns the catalog at index.
func (b *catalogBuilder) update(index uint64, f *fleet, touched []string) *catalog {
	names := map[string]bool{} // MCP names to decide again
	for _, n := range touched {
		prev := b.entries[n]
		var e *entry
		if ms := f.members[n]; len(ms) > 0 {
			e = newEntry(n, ms, prev, b.maxAutonomy, b.log)
		}
		alias := Alias(n)
		switch {
		case e != nil:
			b.entries[n] = e
			if prev == nil {
				c := b.claims[alias]
				i, _ := slices.BinarySearch(c, n)
				b.claims[alias] = slices.Insert(c, i, n)
			}
		case prev != nil:
			delete(b.entries, n)
			c := slices.DeleteFunc(b.claims[alias], func(x string) bool { return x == n })
			if len(c) == 0 {
				delete(b.claims, alias)
			} else {
				b.claims[alias] = c
			}
		}
		names[alias] = true
	}
	c := &catalog{index: index, byName: maps.Clone(b.cat.byName)}
	for name := range names {
		if e := b.winner(name); e != nil {
			c.byName[name] = e
		} else {
			delete(c.byName, name)
		}
	}
	b.cat = c
	return c
}

// winner returns the entry that gets the MCP name, or nil: the tool whose
// own name it is, else the first in name order of those whose alias it
// is, whatever order they came in. The others are logged.
func (b *catalogBuilder) winner(name string) *entry {
	claims := b.claims[name]
	if len(claims) == 0 {
		return nil
	}
	w := claims[0]
	if slices.Contains(claims, name) {
		w = name
	}
	for _, n := range claims {
		if n != w {
			b.log.Warn("tool not offered over MCP: its alias is taken", "tool", n, "alias", name, "by", w)
		}
	}
	return b.entries[w]
}

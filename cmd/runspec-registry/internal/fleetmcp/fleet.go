// fleet.go keeps the registry's records as the catalog needs them: the
// active instances that the View keeps, each with the tools it posted, by
// tool name in registration order (the order in which the registry groups
// them), loaded from one listing and then changed by the events of the
// change stream. It says which tool names each change touched, so that
// only those entries of the catalog are built again.

package fleetmcp

import (
	"slices"
	"strings"
	"time"

	registry "github.com/runspec/registry"
)

// A record is an active instance the View keeps that offers tools. It is
// never modified once built (calls read it while the fleet changes): a
// change of the instance builds a new one.
type record struct {
	id, host, agent, owner string
	rank                   uint64 // registration order: the registry groups tools by it
	labels                 map[string]string
	lastSeen               time.Time
	tools                  []*toolMeta // by name; those the View keeps
}

// tool returns the record's tool name, or nil.
func (r *record) tool(name string) *toolMeta {
	i, ok := slices.BinarySearchFunc(r.tools, name, func(m *toolMeta, n string) int { return strings.Compare(m.name, n) })
	if !ok {
		return nil
	}
	return r.tools[i]
}

// toolNames calls fn with each tool name of r, which may be nil.
func (r *record) toolNames(fn func(string)) {
	if r == nil {
		return
	}
	for _, m := range r.tools {
		fn(m.name)
	}
}

// A fleet is the registry as the catalog sees it at one change index.
// Only the goroutine that follows the registry uses it.
type fleet struct {
	view View
	// ranks gives every id the registry holds, active or not, its place in
	// registration order; an id first seen later comes after all.
	ranks map[string]uint64
	next  uint64
	recs  map[string]*record
	// members lists, per tool name, the records that offer it, by rank.
	// A slice that a catalog entry holds is never modified: a change
	// copies it first (once per batch: see owned).
	members map[string][]*record
	owned   map[string]bool // members slices copied since the last take
	touched map[string]bool // tool names whose members changed since the last take
	// objs interns the tool objects: the instances of one kind of agent
	// post the same ones.
	objs  map[string]*toolMeta
	swept int // len(objs) after the last sweep
}

func newFleet(v View) *fleet {
	return &fleet{
		view: v, ranks: map[string]uint64{}, recs: map[string]*record{},
		members: map[string][]*record{}, owned: map[string]bool{}, touched: map[string]bool{},
		objs: map[string]*toolMeta{},
	}
}

// rank returns the place of id in registration order, giving an id not
// seen yet the next one.
func (f *fleet) rank(id string) uint64 {
	r, ok := f.ranks[id]
	if !ok {
		f.next++
		r = f.next
		f.ranks[id] = r
	}
	return r
}

// forget drops id's place: the registry deleted its record, and an id
// that registers again comes last.
func (f *fleet) forget(id string) {
	f.set(id, nil)
	delete(f.ranks, id)
}

// seen gives in its place in registration order and keeps its record as
// the listing or a read shows it: inactive records, records the View
// does not keep and records without tools are dropped.
func (f *fleet) seen(in registry.Instance) {
	f.set(in.ID, f.record(in))
}

// record builds the record of in, or returns nil if the catalog has
// nothing of it.
func (f *fleet) record(in registry.Instance) *record {
	rank := f.rank(in.ID)
	if !in.Active || !f.view.keeps(in.Name, in.Labels) || len(in.Tools) == 0 {
		return nil
	}
	r := &record{id: in.ID, host: in.Host, agent: in.Name, owner: in.Owner, rank: rank, labels: in.Labels, lastSeen: in.LastSeen}
	for _, raw := range in.Tools {
		m := f.objs[string(raw)]
		if m == nil {
			name, tm, ok := readToolMeta(raw)
			if !ok {
				continue
			}
			tm.name = name
			m = &tm
			f.objs[string(raw)] = m
		}
		if f.view.tool(m.name) {
			r.tools = append(r.tools, m)
		}
	}
	if len(r.tools) == 0 {
		return nil
	}
	slices.SortFunc(r.tools, func(a, b *toolMeta) int { return strings.Compare(a.name, b.name) })
	// The registry refuses a list with a name twice; a record from
	// elsewhere keeps the first.
	r.tools = slices.CompactFunc(r.tools, func(a, b *toolMeta) bool { return a.name == b.name })
	return r
}

// set replaces the record of id (nil: the catalog has nothing of it) and
// the members of the tool names it offered or offers.
func (f *fleet) set(id string, r *record) {
	old := f.recs[id]
	if old == nil && r == nil {
		return
	}
	if r == nil {
		delete(f.recs, id)
	} else {
		f.recs[id] = r
	}
	old.toolNames(func(name string) {
		if r == nil || r.tool(name) == nil {
			f.leave(name, old)
		}
	})
	r.toolNames(func(name string) { f.join(name, r, old) })
}

// mutable returns the members of name, copied first if a catalog may
// hold them.
func (f *fleet) mutable(name string) []*record {
	ms := f.members[name]
	if !f.owned[name] {
		ms = slices.Clone(ms)
		f.owned[name] = true
	}
	f.touched[name] = true
	return ms
}

func byRank(r *record, rank uint64) int {
	switch {
	case r.rank < rank:
		return -1
	case r.rank > rank:
		return 1
	}
	return 0
}

// join puts r among the members of name, in old's place if old was one.
func (f *fleet) join(name string, r, old *record) {
	ms := f.mutable(name)
	i, found := slices.BinarySearchFunc(ms, r.rank, byRank)
	switch {
	case found && ms[i].id == r.id:
		ms[i] = r
	case old != nil && old.rank != r.rank:
		// Not its place any more: cannot happen (an id keeps its rank
		// until forgotten), but the members stay sorted whatever comes.
		ms = slices.DeleteFunc(ms, func(x *record) bool { return x.id == r.id })
		i, _ = slices.BinarySearchFunc(ms, r.rank, byRank)
		ms = slices.Insert(ms, i, r)
	default:
		ms = slices.Insert(ms, i, r)
	}
	f.members[name] = ms
}

// leave takes old out of the members of name.
func (f *fleet) leave(name string, old *record) {
	ms := f.mutable(name)
	if i, found := slices.BinarySearchFunc(ms, old.rank, byRank); found && ms[i].id == old.id {
		ms = slices.Delete(ms, i, i+1)
	} else {
		ms = slices.DeleteFunc(ms, func(x *record) bool { return x.id == old.id })
	}
	if len(ms) == 0 {
		delete(f.members, name)
		return
	}
	f.members[name] = ms
}

// apply applies an event (not a reset) and reports whether the record
// must be read again: its tools changed, or it came back active (an
// inactive record's tools are not kept).
func (f *fleet) apply(e registry.Event) (read bool) {
	switch e.Kind {
	case registry.EventRegistered:
		// A registration replaces the record: no tools until a list is
		// posted, which is an event of its own.
		f.rank(e.InstanceID)
		f.set(e.InstanceID, nil)
		return false
	case registry.EventInactive, registry.EventDeregistered:
		f.rank(e.InstanceID)
		f.set(e.InstanceID, nil)
		return false
	case registry.EventDeleted:
		f.forget(e.InstanceID)
		return false
	}
	// tools, active, and kinds this version does not know.
	f.rank(e.InstanceID)
	if f.view.Agent != "" && e.Name != f.view.Agent {
		f.set(e.InstanceID, nil) // not in the view: nothing to read
		return false
	}
	return true
}

// take returns the tool names touched since the last take, and lets the
// catalog hold the current members.
func (f *fleet) take() []string {
	names := make([]string, 0, len(f.touched))
	for n := range f.touched {
		names = append(names, n)
	}
	slices.Sort(names)
	clear(f.touched)
	clear(f.owned)
	return names
}

// sweep forgets the interned tool objects that no record uses any more,
// once they are many.
func (f *fleet) sweep() {
	if len(f.objs) <= 2*f.swept+1024 {
		return
	}
	used := make(map[*toolMeta]bool, f.swept)
	for _, r := range f.recs {
		for _, m := range r.tools {
			used[m] = true
		}
	}
	for k, m := range f.objs {
		if !used[m] {
			delete(f.objs, k)
		}
	}
	f.swept = len(f.objs)
}

// names returns every tool name the fleet offers.
func (f *fleet) names() []string {
	names := make([]string, 0, len(f.members))
	for n := range f.members {
		names = append(names, n)
	}
	return names
}

// view.go holds the registry's indexes (instances in registration order, tools
// by name, (host, name) groups, the deadline heap) and the state changes that
// keep them in step. Everything here is guarded by Registry.mu.

package registry

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

type view struct {
	index  uint64      // change counter: bumped by every visible change
	insts  []*instance // by seq
	tools  map[string]*toolEntry
	names  []string     // tool names, sorted
	hosts  []*hostGroup // by host, then name
	groups map[hostKey]*hostGroup
	due    dueHeap
	oldest inactiveHeap // inactive instances, by when they became inactive
	active int          // instances whose liveness word says active

	expiries, deletions uint64 // counts for Metrics
	schemas             map[string]*schema
	execs               map[string]*execFields

	toolsIndex  uint64            // last change to any tool entry
	goneTools   map[string]uint64 // when a tool name lost its last instance
	goneInsts   map[string]uint64 // when an instance was deleted
	goneFloor   uint64            // the index when those maps were last cleared
	events      []Event           // ring of recent changes
	eventFrames [][]byte          // each as a Server-Sent Event, encoded once
	frames      frameBlocks       // where those frames are
	eventHead   int               // oldest event, once the ring is full
	eventSeq    uint64            // position of the newest event, counting every event ever recorded
	evicted     uint64            // the ring holds every event after this index
	w           watchers          // wake-up channels of blocking queries

	// next gives a change its index from the current one: the write path
	// decides (a counter, or the revision of a Cluster being applied).
	next func(cur uint64) uint64
}

// A toolEntry lists the instances offering one tool name, active or not.
//
// A member that leaves (its instance re-registered, or the tool dropped from
// its list) leaves its slot vacant rather than moving the members after it:
// an agent's restart, a registration and then its tool post, takes it out of
// each of its tools and puts it back in the same place (by seq), and on a
// tool offered by every host of a fleet two moves of the list per tool
// would make a restart cost linear in the fleet. Readers skip vacant slots;
// a vacant slot holds nothing that left (see placeholder), and once they
// outnumber the members (and are more than a few) the list is compacted:
// they cost at most about as much memory as the members.
type toolEntry struct {
	name    string
	members []member // by instance seq, vacant slots included
	live    int      // members that are not vacant; the entry exists while it is > 0
	index   uint64   // last change that affects GET /tools/{name}
}

// vacancies is the number of vacant slots of e.
func (e *toolEntry) vacancies() int { return len(e.members) - e.live }

// A member is one instance offering the tool. It copies what a grouped
// answer needs from the instance and its tool, so that encoding a tool
// offered by many hosts touches few cache lines per host.
type member struct {
	in   *instance
	s    *schema
	x    *execFields // nil: no execution fields
	host string      // the host, JSON-encoded (shares the instance's bytes)
}

func newMember(in *instance, t *toolRef) member { return member{in, t.s, t.x, in.hostJSON} }

// vacant reports whether m is a slot left by a member that left. Its in is
// a placeholder (see placeholder) that keeps the seq, for the instance of
// that seq that may take the slot again, and nothing else: no instance that
// is gone stays reachable from a vacant slot.
func (m member) vacant() bool { return m.s == nil }

// placeholder is the instance of vacant slots of seq: marked deleted, with
// no tools, system or labels. A member's seq is its instance's, so that the
// slices stay 40 bytes a member; a placeholder costs one allocation per
// instance that leaves slots, shared by them.
func placeholder(seq uint64) *instance { return &instance{seq: seq, deleted: true} }

// compactAt is how many vacant slots a tool entry keeps, at least, before
// it is compacted.
const compactAt = 16

// vacate leaves the slot at j vacant, held by p, a placeholder of its seq;
// the entry is compacted once vacant slots outnumber its members.
func (e *toolEntry) vacate(j int, p *instance) {
	e.members[j] = member{in: p}
	e.live--
	e.compactIfSparse()
}

// remove takes the members of seqs (instances that offer e's tool, so none
// of their slots is vacant) out of e.
func (e *toolEntry) remove(seqs []uint64) {
	n := len(e.members)
	e.members = deleteKeys(e.members, seqs, memberBySeq)
	e.live -= n - len(e.members)
	e.compactIfSparse()
}

// compactIfSparse drops the vacant slots of e if they outnumber its members
// and compactAt.
func (e *toolEntry) compactIfSparse() {
	if e.vacancies() > max(e.live, compactAt) {
		e.members = slices.DeleteFunc(e.members, member.vacant)
	}
}

type hostKey struct{ host, name string }

// A hostGroup lists the instances of one (host, name): usually one, more
// when an agent restarted before its old record expired.
type hostGroup struct {
	host, name string
	members    []*instance // by seq
}

// init makes an empty view whose index starts at start and moves by next,
// whose waiters are woken at most once per notify (see watchers).
func (v *view) init(start uint64, next func(cur uint64) uint64, notify time.Duration) {
	// Changes before start (another process's, or before a snapshot) are
	// not in the ring: a stream resumed from there must re-list.
	v.index, v.toolsIndex, v.next, v.evicted = start, start, next, start
	v.w.init(start, notify)
	v.goneTools = make(map[string]uint64)
	v.goneInsts = make(map[string]uint64)
	v.tools = make(map[string]*toolEntry)
	v.groups = make(map[hostKey]*hostGroup)
	v.schemas = make(map[string]*schema)
	v.execs = make(map[string]*execFields)
}

func bySeq(in *instance, seq uint64) int { return cmp.Compare(in.seq, seq) }

func (v *view) bump() uint64 {
	v.index = v.next(v.index)
	return v.index
}

// register adds in, replacing old (same id) if it is not nil.
func (v *view) register(s *shard, in, old *instance) {
	in.index = v.bump()
	if old != nil {
		// A heartbeat still holding old must not touch it and answer from
		// its tools: it takes the slow path and finds in.
		seen, was := unpack(old.live.Load())
		old.live.Store(pack(seen, false))
		if was {
			v.active--
		}
		v.detach(old)
		i, _ := slices.BinarySearchFunc(v.insts, old.seq, bySeq)
		v.insts[i] = in
	} else {
		i, _ := slices.BinarySearchFunc(v.insts, in.seq, bySeq)
		v.insts = slices.Insert(v.insts, i, in)
	}
	v.joinGroup(in)
	v.due.set(in, in.deadline(in.lastSeen()))
	if _, active := unpack(in.live.Load()); !active {
		v.oldest.push(in) // loaded or replicated inactive
	} else {
		v.active++
	}
	s.mu.Lock()
	s.m[in.id] = in
	s.mu.Unlock()
	v.record(EventRegistered, in)
}

// setTools replaces the tool list of in. A tool it keeps (by name) keeps
// its member's slot, and wakes its watchers only if its schema or execution
// fields changed; only tools added or dropped move members. The names of
// new tools are merged into the sorted list at once, so a list of many new
// names costs one pass, not one per name.
func (v *view) setTools(in *instance, parsed []parsedTool) {
	in.index = v.bump()
	ts := v.intern(parsed) // before release: unchanged tools keep their pointers
	old := in.tools.Load()
	prev := make(map[string]toolRef)
	if old != nil {
		for _, t := range old.list {
			prev[t.s.name] = t
		}
	}
	var added []*toolRef
	for i := range ts.list {
		t := &ts.list[i]
		p, kept := prev[t.s.name]
		if !kept {
			added = append(added, t)
			continue
		}
		delete(prev, t.s.name)
		e := v.tools[t.s.name]
		if j, found := slices.BinarySearchFunc(e.members, in.seq, memberBySeq); found && e.members[j].in == in {
			e.members[j] = newMember(in, t)
			if p.s != t.s || p.x != t.x {
				v.toolChanged(e.name, e)
			}
		}
	}
	dropped := make([]toolRef, 0, len(prev))
	for _, t := range prev {
		dropped = append(dropped, t)
	}
	v.unlinkTools(in, dropped)
	in.tools.Store(ts)
	v.linkTools(in, added)
	v.release(old)
	v.record(EventTools, in)
}

// detach takes in out of the tool entries (leaving its slots vacant for the
// instance that replaces it, of the same seq), its (host, name) group and
// the heap, and marks it gone: the caller replaces its slot in insts.
func (v *view) detach(in *instance) {
	v.oldest.remove(in)
	ts := in.tools.Load()
	if ts != nil {
		v.unlinkTools(in, ts.list)
	}
	v.release(ts)
	v.leaveGroup(in)
	v.due.remove(in)
	in.deleted = true
}

// delete removes every trace of ins. Each index they are in is compacted
// once, from the first position that changes, after a binary search per
// instance: deleting k of n instances costs O(k log n) plus one move of
// what follows, not k moves (a mass deletion past the retention stays
// linear). shard finds the shard of an id.
func (v *view) delete(ins []*instance, shard func(id string) *shard) {
	names := make(map[string][]uint64)   // tool name → seqs of its members to delete
	groups := make(map[hostKey][]uint64) // (host, name) → seqs
	var seqs []uint64
	for _, in := range ins {
		if in.deleted {
			continue
		}
		in.deleted = true
		v.deletions++
		v.oldest.remove(in)
		if _, active := unpack(in.live.Load()); active {
			v.active--
		}
		v.bump()
		ts := in.tools.Load()
		if ts != nil {
			for _, t := range ts.list {
				names[t.s.name] = append(names[t.s.name], in.seq)
			}
		}
		v.release(ts)
		k := hostKey{in.host, in.name}
		groups[k] = append(groups[k], in.seq)
		seqs = append(seqs, in.seq)
		v.due.remove(in)
		s := shard(in.id)
		s.mu.Lock()
		if s.m[in.id] == in {
			delete(s.m, in.id)
		}
		s.mu.Unlock()
		v.record(EventDeleted, in)
	}
	v.insts = deleteKeys(v.insts, seqs, bySeq)
	var goneNames []string
	for name, seqs := range names {
		e := v.tools[name]
		e.remove(seqs)
		if e.live == 0 {
			delete(v.tools, name)
			goneNames = append(goneNames, name)
			e = nil
		}
		v.toolChanged(name, e)
	}
	v.names = deleteKeys(v.names, goneNames, strings.Compare)
	var goneGroups []hostKey
	for k, seqs := range groups {
		g := v.groups[k]
		g.members = deleteKeys(g.members, seqs, bySeq)
		if len(g.members) == 0 {
			delete(v.groups, k)
			goneGroups = append(goneGroups, k)
		}
	}
	v.hosts = deleteKeys(v.hosts, goneGroups, groupOrder)
}

// deleteKeys removes from xs, sorted by key as cmp says, the elements with
// the given keys (absent keys are skipped), in one pass from the first.
func deleteKeys[T, K any](xs []T, keys []K, cmp func(T, K) int) []T {
	if len(keys) == 0 {
		return xs
	}
	at := make([]int, 0, len(keys))
	for _, k := range keys {
		if i, ok := slices.BinarySearchFunc(xs, k, cmp); ok {
			at = append(at, i)
		}
	}
	if len(at) == 0 {
		return xs
	}
	slices.Sort(at)
	at = slices.Compact(at)
	w := at[0]
	for i, j := at[0], 0; i < len(xs); i++ {
		if j < len(at) && at[j] == i {
			j++
			continue
		}
		xs[w] = xs[i]
		w++
	}
	clear(xs[w:])
	return xs[:w]
}

// touchTools records a change of in's liveness in the entries of its tools.
func (v *view) touchTools(in *instance) {
	if ts := in.tools.Load(); ts != nil {
		for _, t := range ts.list {
			v.toolChanged(t.s.name, v.tools[t.s.name])
		}
	}
}

// linkTools adds in to the entries of the tools ts.
func (v *view) linkTools(in *instance, ts []*toolRef) {
	var fresh []string
	for _, t := range ts {
		e := v.tools[t.s.name]
		if e == nil {
			e = &toolEntry{name: t.s.name}
			v.tools[e.name] = e
			fresh = append(fresh, e.name)
		}
		// A slot of in's seq is vacant (in's, or that of the instance it
		// replaced): in offers none of ts yet.
		if j, found := slices.BinarySearchFunc(e.members, in.seq, memberBySeq); found {
			e.members[j] = newMember(in, t)
		} else {
			e.members = slices.Insert(e.members, j, newMember(in, t))
		}
		e.live++
		v.toolChanged(e.name, e)
	}
	v.names = insertSorted(v.names, fresh)
}

// unlinkTools removes in from the entries of the tools ts, leaving its slots
// vacant.
func (v *view) unlinkTools(in *instance, ts []toolRef) {
	var gone []string
	var p *instance // the placeholder of in's vacant slots
	for _, t := range ts {
		e := v.tools[t.s.name]
		if j, ok := slices.BinarySearchFunc(e.members, in.seq, memberBySeq); ok && e.members[j].in == in {
			if p == nil {
				p = placeholder(in.seq)
			}
			e.vacate(j, p)
		}
		if e.live == 0 {
			delete(v.tools, e.name)
			gone = append(gone, e.name)
			e = nil
		}
		v.toolChanged(t.s.name, e)
	}
	v.names = deleteKeys(v.names, gone, strings.Compare)
}

// insertSorted adds names (not in list) to the sorted list: one by one
// when they are few, else in one merge.
func insertSorted(list, names []string) []string {
	if len(names) <= 16 {
		for _, n := range names {
			j, _ := slices.BinarySearch(list, n)
			list = slices.Insert(list, j, n)
		}
		return list
	}
	slices.Sort(names)
	out := make([]string, 0, len(list)+len(names))
	i, j := 0, 0
	for i < len(list) && j < len(names) {
		if list[i] < names[j] {
			out = append(out, list[i])
			i++
		} else {
			out = append(out, names[j])
			j++
		}
	}
	out = append(out, list[i:]...)
	return append(out, names[j:]...)
}

func memberBySeq(m member, seq uint64) int { return cmp.Compare(m.in.seq, seq) }

func groupOrder(g *hostGroup, k hostKey) int {
	if c := cmp.Compare(g.host, k.host); c != 0 {
		return c
	}
	return cmp.Compare(g.name, k.name)
}

func (v *view) joinGroup(in *instance) {
	k := hostKey{in.host, in.name}
	g := v.groups[k]
	if g == nil {
		g = &hostGroup{host: in.host, name: in.name}
		v.groups[k] = g
		i, _ := slices.BinarySearchFunc(v.hosts, k, groupOrder)
		v.hosts = slices.Insert(v.hosts, i, g)
	}
	i, _ := slices.BinarySearchFunc(g.members, in.seq, bySeq)
	g.members = slices.Insert(g.members, i, in)
}

func (v *view) leaveGroup(in *instance) {
	k := hostKey{in.host, in.name}
	g := v.groups[k]
	if i, ok := slices.BinarySearchFunc(g.members, in.seq, bySeq); ok {
		g.members = slices.Delete(g.members, i, i+1)
	}
	if len(g.members) == 0 {
		delete(v.groups, k)
		if i, ok := slices.BinarySearchFunc(v.hosts, k, groupOrder); ok {
			v.hosts = slices.Delete(v.hosts, i, i+1)
		}
	}
}

// view.go holds the registry's indexes (instances in registration order, tools
// by name, (host, name) groups, the deadline heap) and the state changes that
// keep them in step. Everything here is guarded by Registry.mu.

package registry

import (
	"cmp"
	"container/heap"
	"slices"
	"time"
)

type view struct {
	index   uint64      // change counter: bumped by every visible change
	insts   []*instance // by seq
	tools   map[string]*toolEntry
	names   []string     // tool names, sorted
	hosts   []*hostGroup // by host, then name
	groups  map[hostKey]*hostGroup
	due     dueHeap
	schemas map[string]*schema
	execs   map[string]*execFields

	toolsIndex uint64            // last change to any tool entry
	goneTools  map[string]uint64 // when a tool name lost its last instance
	goneInsts  map[string]uint64 // when an instance was deleted
	goneFloor  uint64            // the index when those maps were last cleared
	events     []Event           // ring of recent changes
	eventHead  int               // oldest event, once the ring is full
	evicted    uint64            // index of the last event pushed out of the ring
	w          watchers          // wake-up channels of blocking queries

	// In cluster mode, liveness is the Cluster's (no deadlines in the
	// heap), and changes take the Cluster's revision at as their index.
	clustered bool
	at        uint64
}

// A toolEntry lists the instances offering one tool name, active or not.
type toolEntry struct {
	name    string
	members []member // by instance seq
	index   uint64   // last change that affects GET /tools/{name}
}

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

type hostKey struct{ host, name string }

// A hostGroup lists the instances of one (host, name): usually one, more
// when an agent restarted before its old record expired.
type hostGroup struct {
	host, name string
	members    []*instance // by seq
}

func (v *view) init(start uint64) {
	// The index starts at the clock in microseconds, so that it does not go
	// backwards across a restart unless the registry made more than a
	// million changes a second.
	v.index, v.toolsIndex = start, start
	v.w.init()
	v.goneTools = make(map[string]uint64)
	v.goneInsts = make(map[string]uint64)
	v.tools = make(map[string]*toolEntry)
	v.groups = make(map[hostKey]*hostGroup)
	v.schemas = make(map[string]*schema)
	v.execs = make(map[string]*execFields)
}

func bySeq(in *instance, seq uint64) int { return cmp.Compare(in.seq, seq) }

func (v *view) bump() uint64 {
	if v.clustered {
		v.index = max(v.index, v.at)
		return v.index
	}
	v.index++
	return v.index
}

// register adds in, replacing old (same id) if it is not nil.
func (v *view) register(s *shard, in, old *instance) {
	in.index = v.bump()
	if old != nil {
		// A heartbeat still holding old must not touch it and answer from
		// its tools: it takes the slow path and finds in.
		seen, _ := unpack(old.live.Load())
		old.live.Store(pack(seen, false))
		v.detach(old)
		i, _ := slices.BinarySearchFunc(v.insts, old.seq, bySeq)
		v.insts[i] = in
	} else {
		i, _ := slices.BinarySearchFunc(v.insts, in.seq, bySeq)
		v.insts = slices.Insert(v.insts, i, in)
	}
	v.joinGroup(in)
	v.setDue(in, in.deadline(in.lastSeen()))
	s.mu.Lock()
	s.m[in.id] = in
	s.mu.Unlock()
	v.record(EventRegistered, in)
}

// setTools replaces the tool list of in. A tool whose schema and execution
// fields did not change keeps its entry (only the reference moves to the
// new list), so the watchers of that tool are not woken.
func (v *view) setTools(in *instance, parsed []parsedTool) {
	in.index = v.bump()
	ts := v.intern(parsed) // before release: unchanged tools keep their pointers
	old := in.tools.Load()
	var same map[string]*toolRef
	if old != nil {
		prev := make(map[string]toolRef, len(old.list))
		for _, t := range old.list {
			prev[t.s.name] = t
		}
		same = make(map[string]*toolRef)
		for i := range ts.list {
			t := &ts.list[i]
			if p, ok := prev[t.s.name]; ok && p.s == t.s && p.x == t.x {
				same[t.s.name] = t
			}
		}
	}
	v.unlinkTools(in, old, same)
	in.tools.Store(ts)
	v.linkTools(in, ts, same)
	v.release(old)
	v.record(EventTools, in)
}

// deregister marks in inactive, reporting whether it was active.
func (v *view) deregister(in *instance, now int64, retain time.Duration) bool {
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		if !active {
			return false
		}
		if in.live.CompareAndSwap(l, pack(seen, false)) {
			v.markInactive(in, min(now, in.deadline(seen)), retain, EventDeregistered)
			return true
		}
	}
}

// revive makes in active again, last seen now.
func (v *view) revive(in *instance, now int64) {
	if in.touch(now) { // another heartbeat revived it first
		return
	}
	seen, _ := unpack(in.live.Load())
	now = max(now, seen) // a heartbeat that waited must not move last_seen back
	in.live.Store(pack(now, true))
	in.index = v.bump()
	v.touchTools(in)
	v.setDue(in, in.deadline(now))
	v.record(EventActive, in)
}

// settle applies what is due for in at now: expiry at its deadline, deletion
// when its retention has passed. Otherwise it moves in's heap key to its
// current deadline (heartbeats extend deadlines without touching the heap).
func (v *view) settle(s *shard, in *instance, now int64, retain time.Duration) (expired, deleted bool) {
	if in.deleted {
		return false, false
	}
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		if !active {
			break
		}
		dl := in.deadline(seen)
		if now <= dl {
			v.due.set(in, dl)
			return false, false
		}
		if in.live.CompareAndSwap(l, pack(seen, false)) {
			v.markInactive(in, dl, retain, EventInactive)
			expired = true
			break
		}
	}
	if retain < 0 { // kept forever: nothing more is due
		v.due.remove(in)
		return expired, false
	}
	if end := in.inactiveAt + int64(retain); now <= end {
		v.due.set(in, end)
		return expired, false
	}
	v.delete(s, in)
	return expired, true
}

func (v *view) markInactive(in *instance, at int64, retain time.Duration, kind string) {
	in.inactiveAt = at
	in.index = v.bump()
	v.touchTools(in)
	if retain < 0 {
		v.due.remove(in)
	} else {
		v.setDue(in, at+int64(retain))
	}
	v.record(kind, in)
}

// detach takes in out of the tool entries, its (host, name) group and the
// heap, and marks it gone; the caller removes or replaces its slot in insts.
func (v *view) detach(in *instance) {
	ts := in.tools.Load()
	v.unlinkTools(in, ts, nil)
	v.release(ts)
	v.leaveGroup(in)
	v.due.remove(in)
	in.deleted = true
}

// delete removes every trace of in.
func (v *view) delete(s *shard, in *instance) {
	v.bump()
	v.detach(in)
	if i, ok := slices.BinarySearchFunc(v.insts, in.seq, bySeq); ok {
		v.insts = slices.Delete(v.insts, i, i+1)
	}
	s.mu.Lock()
	if s.m[in.id] == in {
		delete(s.m, in.id)
	}
	s.mu.Unlock()
	v.record(EventDeleted, in)
}

// touchTools records a change of in's liveness in the entries of its tools.
func (v *view) touchTools(in *instance) {
	if ts := in.tools.Load(); ts != nil {
		for _, t := range ts.list {
			v.toolChanged(t.s.name, v.tools[t.s.name])
		}
	}
}

// linkTools adds in to the entries of ts; for the tools in same (unchanged)
// it only points the existing member at the new list.
func (v *view) linkTools(in *instance, ts *toolSet, same map[string]*toolRef) {
	for i := range ts.list {
		t := &ts.list[i]
		e := v.tools[t.s.name]
		if e == nil {
			e = &toolEntry{name: t.s.name}
			v.tools[e.name] = e
			j, _ := slices.BinarySearch(v.names, e.name)
			v.names = slices.Insert(v.names, j, e.name)
		}
		j, found := slices.BinarySearchFunc(e.members, in.seq, memberBySeq)
		if same[t.s.name] != nil && found && e.members[j].in == in {
			e.members[j] = newMember(in, t)
			continue
		}
		e.members = slices.Insert(e.members, j, newMember(in, t))
		v.toolChanged(e.name, e)
	}
}

// unlinkTools removes in from the entries of ts, but for the tools in same.
func (v *view) unlinkTools(in *instance, ts *toolSet, same map[string]*toolRef) {
	if ts == nil {
		return
	}
	for _, t := range ts.list {
		if same[t.s.name] != nil {
			continue
		}
		e := v.tools[t.s.name]
		if j, ok := slices.BinarySearchFunc(e.members, in.seq, memberBySeq); ok && e.members[j].in == in {
			e.members = slices.Delete(e.members, j, j+1)
		}
		if len(e.members) == 0 {
			delete(v.tools, e.name)
			if j, ok := slices.BinarySearch(v.names, e.name); ok {
				v.names = slices.Delete(v.names, j, j+1)
			}
			e = nil
		}
		v.toolChanged(t.s.name, e)
	}
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

// dueHeap orders instances by their next due time (deadline or deletion).
type dueHeap []*instance

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	in := x.(*instance)
	in.heapIdx = len(*h)
	*h = append(*h, in)
}
func (h *dueHeap) Pop() any {
	old := *h
	in := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	in.heapIdx = -1
	return in
}

// setDue puts in in the heap at due, but in cluster mode, where nothing is
// due locally: the Cluster expires instances, and purgeCluster deletes them.
func (v *view) setDue(in *instance, due int64) {
	if !v.clustered {
		v.due.set(in, due)
	}
}

func (h *dueHeap) set(in *instance, due int64) {
	in.due = due
	if in.heapIdx < 0 {
		heap.Push(h, in)
	} else {
		heap.Fix(h, in.heapIdx)
	}
}

func (h *dueHeap) remove(in *instance) {
	if in.heapIdx >= 0 {
		heap.Remove(h, in.heapIdx)
	}
}

// before returns the instances due before now, visiting only them.
func (h dueHeap) before(now int64) []*instance {
	var out []*instance
	var walk func(i int)
	walk = func(i int) {
		if i >= len(h) || h[i].due >= now {
			return
		}
		out = append(out, h[i])
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
	return out
}

// next returns the earliest due time, if any.
func (h dueHeap) next() (int64, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return h[0].due, true
}

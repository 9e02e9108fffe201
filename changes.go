// changes.go tracks changes for watchers: the change index, the recent
// events (for GET /events), and the wake-up channels of blocking queries.
// One channel per topic is closed at a change, so any number of waiters
// share one wake-up; a waiter costs its request's goroutine and a timer.

package registry

import (
	"sync"
)

// eventRing is how many recent events GET /events can replay.
const eventRing = 8192

// An Event is one change, as GET /events streams it.
type Event struct {
	Index      uint64 `json:"index"`
	Kind       string `json:"-"` // registered, tools, active, inactive, deregistered, deleted
	InstanceID string `json:"instance_id"`
	Host       string `json:"host"`
	Name       string `json:"name"`
	Active     bool   `json:"active"`
	ToolCount  int    `json:"tool_count"`
}

// Event kinds.
const (
	EventRegistered   = "registered"
	EventTools        = "tools"
	EventActive       = "active"
	EventInactive     = "inactive"
	EventDeregistered = "deregistered"
	EventDeleted      = "deleted"
)

// watchers holds the wake-up channels. A channel exists only while someone
// waits on it; a change closes it and forgets it. Guarded by its own mutex,
// taken after Registry.mu.
type watchers struct {
	mu     sync.Mutex
	all    chan struct{}        // any change
	tools  chan struct{}        // a change to any tool entry
	byName map[topic]*namedWait // a change to one tool or instance
	closed chan struct{}        // closed by ReleaseWaiters
}

// namedWait is the channel of one tool or instance and how many wait on it,
// so that waiters that give up do not leave it behind.
type namedWait struct {
	ch chan struct{}
	n  int
}

func (w *watchers) init() {
	w.byName = make(map[topic]*namedWait)
	w.closed = make(chan struct{})
}

func wake(ch *chan struct{}) {
	if *ch != nil {
		close(*ch)
		*ch = nil
	}
}

func lazy(ch *chan struct{}) <-chan struct{} {
	if *ch == nil {
		*ch = make(chan struct{})
	}
	return *ch
}

// topic names a wait-able part of the registry.
type topic struct {
	kind int // topicAll, topicTools, topicTool
	name string
}

const (
	topicAll = iota
	topicTools
	topicTool
	topicInstance
)

// chanFor returns the channel that closes at the next change of t.
func (w *watchers) chanFor(t topic) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch t.kind {
	case topicTools:
		return lazy(&w.tools)
	case topicTool, topicInstance:
		nw := w.byName[t]
		if nw == nil {
			nw = &namedWait{ch: make(chan struct{})}
			w.byName[t] = nw
		}
		nw.n++
		return nw.ch
	}
	return lazy(&w.all)
}

// leave is called by a waiter of t that stops waiting on ch without a
// change (timeout, gone): the last one removes the channel.
func (w *watchers) leave(t topic, ch <-chan struct{}) {
	if t.kind != topicTool && t.kind != topicInstance {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if nw := w.byName[t]; nw != nil && nw.ch == ch {
		if nw.n--; nw.n <= 0 {
			delete(w.byName, t)
		}
	}
}

func (w *watchers) wakeName(t topic) {
	if nw := w.byName[t]; nw != nil {
		close(nw.ch)
		delete(w.byName, t)
	}
}

// record notes a change in the view: called with Registry.mu held, after
// v.index has moved.
func (v *view) record(kind string, in *instance) {
	_, active := unpack(in.live.Load())
	e := Event{Index: v.index, Kind: kind, InstanceID: in.id, Host: in.host, Name: in.name,
		Active: active && kind != EventDeleted, ToolCount: in.toolCount()}
	if len(v.events) < eventRing {
		v.events = append(v.events, e)
	} else {
		v.evicted = v.events[v.eventHead].Index
		v.events[v.eventHead] = e
		v.eventHead = (v.eventHead + 1) % eventRing
	}
	if kind == EventDeleted {
		v.forget(v.goneInsts, in.id)
	}
	v.w.mu.Lock()
	wake(&v.w.all)
	v.w.wakeName(topic{topicInstance, in.id})
	v.w.mu.Unlock()
}

// maxGone bounds the memory of removed names.
const maxGone = 100_000

// forget remembers when name was removed, so that a 404 for it carries the
// index of that change (and a name never seen carries 0).
func (v *view) forget(gone map[string]uint64, name string) {
	if len(gone) >= maxGone {
		clear(gone)
		v.goneFloor = v.index // names forgotten now report this, not less
	}
	gone[name] = v.index
}

// goneIndex is the index of a 404 for name.
func (v *view) goneIndex(gone map[string]uint64, name string) uint64 {
	if idx, ok := gone[name]; ok {
		return idx
	}
	return v.goneFloor
}

// toolChanged records a change of tool entry e (or of the tool name, if
// its entry was just removed).
func (v *view) toolChanged(name string, e *toolEntry) {
	if e != nil {
		e.index = v.index
		delete(v.goneTools, name)
	} else {
		v.forget(v.goneTools, name)
	}
	v.toolsIndex = v.index
	v.w.mu.Lock()
	wake(&v.w.tools)
	v.w.wakeName(topic{topicTool, name})
	v.w.mu.Unlock()
}

// toolIndex is the index of GET /tools/{name}.
func (v *view) toolIndex(name string) uint64 {
	if e := v.tools[name]; e != nil {
		return e.index
	}
	return v.goneIndex(v.goneTools, name)
}

// instanceIndex is the index of GET /instances/{id}.
func (v *view) instanceIndex(s *shard, id string) uint64 {
	s.mu.RLock()
	in := s.m[id]
	s.mu.RUnlock()
	if in != nil {
		return in.index
	}
	return v.goneIndex(v.goneInsts, id)
}

// eventsAfter returns the events after index, and whether the ring still
// holds all of them (else the client must re-list).
func (v *view) eventsAfter(index uint64) ([]Event, bool) {
	n := len(v.events)
	if n == 0 {
		return nil, index >= v.index
	}
	if index < v.evicted {
		// An event after index is gone from the ring. (In cluster mode
		// indexes have gaps and one index may have several events, so
		// the oldest event's index alone cannot tell.)
		return nil, false
	}
	var out []Event
	for i := 0; i < n; i++ {
		e := v.events[(v.eventHead+i)%n]
		if e.Index > index {
			out = append(out, e)
		}
	}
	return out, true
}

// ReleaseWaiters answers every blocking query and event stream at once, and
// makes later ones answer without waiting. Call it when shutting down:
// http.Server.Shutdown does not interrupt requests in flight (register it
// with http.Server.RegisterOnShutdown). The registry keeps serving
// everything else.
func (r *Registry) ReleaseWaiters() {
	r.v.w.mu.Lock()
	defer r.v.w.mu.Unlock()
	select {
	case <-r.v.w.closed:
	default:
		close(r.v.w.closed)
	}
}

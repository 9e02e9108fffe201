// waiters.go is what blocking queries wait on: the change index of each kind
// of answer (every change, tools, one tool, one instance), one wake-up
// channel per topic closed at its next change (any number of waiters share
// it; a waiter costs its request and a timer), and block, which holds a read
// until its index passes the one the client saw.

package registry

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Blocking query limits.
const (
	DefaultWait = 30 * time.Second
	MaxWait     = 5 * time.Minute
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

	// Wake-ups are coalesced: a change marks what it changed, and a flush
	// closes their channels, at once if the last flush was interval ago,
	// else when interval has passed. A burst of writes then costs its
	// watchers one wake-up, not one per write, and a waiter that comes
	// back at once parks until the next flush instead of looping. The
	// interval grows with the number of watchers (watching), so that the
	// work of waking them stays a bounded share of the CPU and never
	// crowds out the writes (see flushInterval).
	interval   time.Duration
	watching   func() int64 // parked blocking queries and open streams; nil: none
	dirtyAll   bool
	dirtyTools bool
	dirtyNames []*namedWait
	changedTo  uint64        // the index of the last change
	flushedTo  uint64        // waiters have been told of changes up to this index
	flushed    chan struct{} // closed at the next flush
	last       time.Time     // of the last flush
	timer      *time.Timer   // the next flush, if one is due

	// Bytes of the answers to blocking queries since the last flush,
	// and between the two flushes before (see flushInterval).
	sent, lastSent atomic.Int64
}

// namedWait is the channel of one tool or instance and how many wait on it,
// so that waiters that give up do not leave it behind.
type namedWait struct {
	t     topic
	ch    chan struct{}
	n     int
	dirty bool
}

// init readies w; changes up to index start are told.
func (w *watchers) init(start uint64, interval time.Duration) {
	w.byName = make(map[topic]*namedWait)
	w.closed = make(chan struct{})
	w.flushed = make(chan struct{})
	w.interval = interval
	w.changedTo, w.flushedTo = start, start
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

// changed notes a change at index idx of t (topicAll or topicTools, or a
// named topic), and of every listing; its waiters learn of it at the next
// flush.
func (w *watchers) changed(idx uint64, t topic) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.changedTo = max(w.changedTo, idx)
	switch t.kind {
	case topicTools:
		w.dirtyTools = true
	case topicTool, topicInstance:
		if nw := w.byName[t]; nw != nil && !nw.dirty {
			nw.dirty = true
			w.dirtyNames = append(w.dirtyNames, nw)
		}
	}
	w.dirtyAll = true
	if w.timer != nil {
		return // a flush is due already
	}
	now := time.Now()
	interval := w.flushInterval()
	if interval <= 0 || now.Sub(w.last) >= interval {
		w.flush(now)
		return
	}
	w.timer = time.AfterFunc(w.last.Add(interval).Sub(now), func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.timer = nil
		w.flush(time.Now())
	})
}

// Waking a watcher costs about wakeCost of CPU, on both sides (its answer
// or batch of events written, read, and asked for again), plus byteCost
// for each byte of a blocking query's answer, which each flush sends
// again whole: 200 blocking queries of a 2.3 MB listing are 466 MB a
// flush. Flushes are spaced so that waking all of them takes at most
// wakeShare of the time: 2,000 event streams are told every 200 ms, not
// every 20. The interval never passes maxFlushInterval, so a change is
// told within a second whatever the watchers.
const (
	wakeCost         = 25 * time.Microsecond
	byteCost         = time.Nanosecond // loopback: ~0.4 ns a byte to send it, as much to read it
	wakeShare        = 4               // 1/4: 25% of one core at most
	maxFlushInterval = time.Second
)

// answered counts n bytes of an answer to a blocking query that a flush
// woke.
func (w *watchers) answered(n int64) { w.sent.Add(n) }

// flushInterval is the time between two flushes: the configured interval,
// or more with many watchers or large answers to them (those sent since
// the last flush, or between the two before if that was more). Called
// with mu held.
func (w *watchers) flushInterval() time.Duration {
	if w.interval < 0 || w.watching == nil {
		return w.interval
	}
	n := w.watching()
	bytes := max(w.sent.Load(), w.lastSent.Load())
	busy := (time.Duration(n)*wakeCost + time.Duration(bytes)*byteCost) * wakeShare
	return max(w.interval, min(busy, maxFlushInterval))
}

// flush wakes the waiters of what changed. Called with mu held.
func (w *watchers) flush(now time.Time) {
	if w.dirtyAll {
		wake(&w.all)
	}
	if w.dirtyTools {
		wake(&w.tools)
	}
	for _, nw := range w.dirtyNames {
		close(nw.ch)
		if w.byName[nw.t] == nw {
			delete(w.byName, nw.t)
		}
	}
	close(w.flushed)
	w.flushed = make(chan struct{})
	w.lastSent.Store(w.sent.Swap(0))
	w.dirtyAll, w.dirtyTools, w.dirtyNames = false, false, w.dirtyNames[:0]
	w.flushedTo, w.last = w.changedTo, now
}

// told reports whether the waiters have been told of the change at idx; if
// not, it returns the channel that closes when they are.
func (w *watchers) told(idx uint64) (bool, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return idx <= w.flushedTo, w.flushed
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
			nw = &namedWait{t: t, ch: make(chan struct{})}
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
		if nw.n--; nw.n <= 0 && !nw.dirty {
			delete(w.byName, t)
		}
	}
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
	v.w.changed(v.index, topic{topicTool, name})
	v.w.changed(v.index, topic{kind: topicTools})
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

// waitFor is what a read waits for: while on, until its index passes after,
// for at most d (0: until its context ends).
type waitFor struct {
	on    bool
	after uint64
	d     time.Duration
}

// block waits, as w says, until indexOf (called with the read lock held)
// passes w.after, the wait (plus up to 1/16 of jitter) passes, ctx ends or
// ReleaseWaiters is called. It returns the index to report.
func (r *Registry) block(ctx context.Context, t topic, w waitFor, indexOf func() uint64) uint64 {
	var timer <-chan time.Time
	parked, woken := false, false
	for {
		r.settleDue(ctx)
		r.mu.RLock()
		idx := indexOf()
		var ch <-chan struct{}
		if w.on {
			if idx <= w.after {
				ch = r.v.w.chanFor(t)
			} else if told, next := r.v.w.told(idx); !told {
				// Changed, but its waiters are not told yet: answer with
				// them, so that a client that comes straight back after
				// each answer is answered once per flush, not in a loop.
				ch = next
			}
		}
		r.mu.RUnlock()
		if ch == nil {
			if woken {
				if p, ok := ctx.Value(wokenKey{}).(*bool); ok {
					*p = true
				}
			}
			return idx
		}
		if !parked {
			parked = true
			r.counts.waiters.Add(1)
			defer r.counts.waiters.Add(-1)
		}
		if timer == nil && w.d > 0 {
			t := time.NewTimer(w.d + rand.N(w.d/16+1))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ch:
			woken = true
			continue
		case <-timer:
		case <-ctx.Done():
		case <-r.v.w.closed:
		}
		w.on = false
		r.v.w.leave(t, ch)
	}
}

// wokenKey is the context key of the flag block sets when a change woke
// the read (Registry.ServeHTTP then counts the answer's bytes: answered).
type wokenKey struct{}

// settleDue applies the expiries that are due before a read, so that its
// index and ETag account for them (Run does it at each deadline; this covers
// the moments between a deadline and Run's timer, and registries without Run).
func (r *Registry) settleDue(ctx context.Context) {
	r.mu.RLock()
	next, pending := r.v.due.next()
	r.mu.RUnlock()
	if pending && r.clock() > next {
		r.purge(ctx)
	}
}

// events.go is the registry's change stream: the Event of each change, the
// ring of recent events, GET /events (Server-Sent Events with resume and
// reset) and Registry.Events, the same stream for embedders.

package registry

import (
	"context"
	"encoding/json"
	"iter"
	"net/http"
	"strconv"
	"time"
)

// eventRing is how many recent events GET /events can replay.
const eventRing = 8192

// An Event is one change, as GET /events streams it.
type Event struct {
	Index      uint64 `json:"index"`
	Kind       string `json:"-"` // one of the Event kinds below
	InstanceID string `json:"instance_id"`
	Host       string `json:"host"`
	Name       string `json:"name"`
	Active     bool   `json:"active"`
	ToolCount  int    `json:"tool_count"`
}

// Event kinds.
const (
	EventRegistered   = "registered"   // an id registered, or registered again
	EventTools        = "tools"        // a tool list posted
	EventActive       = "active"       // an inactive instance heartbeated
	EventInactive     = "inactive"     // an instance missed its deadline
	EventDeregistered = "deregistered" // an agent deregistered
	EventDeleted      = "deleted"      // a record deleted after its retention
	// EventReset says that the stream lost changes (or never had them):
	// read again; Index is the index to go on from.
	EventReset = "reset"
)

// record notes a change in the view: called with Registry.mu held, after
// v.index has moved.
func (v *view) record(kind string, in *instance) {
	_, active := unpack(in.live.Load())
	e := Event{Index: v.index, Kind: kind, InstanceID: in.id, Host: in.host, Name: in.name,
		Active: active && kind != EventDeleted, ToolCount: in.toolCount()}
	if n := len(v.events); n > 0 {
		// A replica applies one Cluster revision at once (under one hold
		// of Registry.mu), which may make several events at one index: a
		// client that resumes from any but the last of them must get the
		// others again (at least once), not skip them, so their ids are
		// the index before. The previous frame is encoded again, after
		// the first encoding, which stays as it was for any stream
		// sending it. (A snapshot's pages share one revision but are
		// applied in several holds: a stream may send a page's last event
		// with the revision's own id before the next page is applied, as
		// it did when ids were chosen as streams read.)
		prev := (v.eventHead + n - 1) % n
		if v.events[prev].Index == e.Index {
			v.eventFrames[prev] = v.frames.add(v.events[prev], e.Index-1)
		}
	}
	// Encoded once here, for every stream that sends it.
	frame := v.frames.add(e, e.Index)
	v.eventSeq++
	if len(v.events) < eventRing {
		v.events = append(v.events, e)
		v.eventFrames = append(v.eventFrames, frame)
	} else {
		v.evicted = v.events[v.eventHead].Index
		v.events[v.eventHead], v.eventFrames[v.eventHead] = e, frame
		v.eventHead = (v.eventHead + 1) % eventRing
	}
	if kind == EventDeleted {
		v.forget(v.goneInsts, in.id)
	}
	v.w.changed(v.index, topic{topicInstance, in.id})
}

// frameBlockSize is the size of the blocks events are encoded into.
const frameBlockSize = 64 << 10

// frameBlocks holds the encoded events of the ring, each a Server-Sent
// Event, one after the other in blocks that are only ever appended to:
// the frames of consecutive events are adjacent, so that a stream writes
// a run of them as one slice, straight from here, with no copy of its own
// and without the lock. A full block is left to the frames that still
// point into it, and to the collector once the ring has moved past them.
type frameBlocks struct {
	block   []byte // the current block; bytes before len are never written again
	scratch []byte
}

// add encodes e as a Server-Sent Event with the given id and returns its
// bytes, adjacent to those of the previous add when they fit in the block.
// The slice's capacity runs to the end of the block, so that frameRuns can
// join adjacent frames: never append to a frame, which would write over
// the frames after it while streams send them.
func (b *frameBlocks) add(e Event, id uint64) []byte {
	data, _ := json.Marshal(e)
	b.scratch = appendEvent(b.scratch[:0], e, data, id)
	if len(b.scratch) > cap(b.block)-len(b.block) {
		b.block = make([]byte, 0, max(frameBlockSize, len(b.scratch)))
	}
	start := len(b.block)
	b.block = append(b.block, b.scratch...)
	return b.block[start:len(b.block)]
}

// eventsAfter returns the events after index, and whether the ring still
// holds all of them (else the client must re-list).
func (v *view) eventsAfter(index uint64) ([]Event, bool) {
	pos, ok := v.eventPos(index)
	if !ok {
		return nil, false
	}
	evs, _ := v.eventBatch(pos, eventRing, nil)
	return evs, true
}

// oldestPos is the position of the oldest event in the ring.
func (v *view) oldestPos() uint64 { return v.eventSeq - uint64(len(v.events)) + 1 }

// ringAt returns the slot of the event at position pos (in the ring).
func (v *view) ringAt(pos uint64) int {
	return (v.eventHead + int(pos-v.oldestPos())) % len(v.events)
}

// eventPos returns the position after which the events after index start,
// and false if some of them are gone from the ring (or were never in it: a
// replica's indexes have gaps and one index may have several events, so the
// oldest event's index alone cannot tell).
func (v *view) eventPos(index uint64) (uint64, bool) {
	if index < v.evicted {
		return 0, false
	}
	lo, hi := v.oldestPos(), v.eventSeq+1 // the first position whose Index > index
	for lo < hi {
		mid := lo + (hi-lo)/2
		if v.events[v.ringAt(mid)].Index <= index {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo - 1, true
}

// eventBatch appends to evs at most limit events after position pos, or
// returns false if some are gone from the ring (a stream passes the same
// slice each time, so that following the ring allocates nothing).
func (v *view) eventBatch(pos uint64, limit int, evs []Event) ([]Event, bool) {
	if pos+1 < v.oldestPos() {
		return evs, false
	}
	for p := pos + 1; p <= v.eventSeq && len(evs) < limit; p++ {
		evs = append(evs, v.events[v.ringAt(p)])
	}
	return evs, true
}

// frameRuns appends to runs the frames of the events after position pos,
// up to about maxBytes (at least one event), adjacent frames joined into
// one slice, and returns how many events they hold; false if some are gone
// from the ring.
func (v *view) frameRuns(pos uint64, maxBytes int, runs [][]byte) ([][]byte, int, bool) {
	if pos+1 < v.oldestPos() {
		return runs, 0, false
	}
	n, size := 0, 0
	for p := pos + 1; p <= v.eventSeq && size < maxBytes; p++ {
		f := v.eventFrames[v.ringAt(p)]
		n, size = n+1, size+len(f)
		if k := len(runs) - 1; k >= 0 && adjacent(runs[k], f) {
			runs[k] = runs[k][:len(runs[k])+len(f)]
		} else {
			runs = append(runs, f)
		}
	}
	return runs, n, true
}

// adjacent reports whether b starts where a ends, in the same block.
func adjacent(a, b []byte) bool {
	return len(b) > 0 && cap(a) > len(a) && &a[:len(a)+1][len(a)] == &b[0]
}

// keepAlive is the period of comment lines on idle event streams, so that
// proxies do not cut them.
const keepAlive = 15 * time.Second

// eventBatchBytes bounds what one stream writes at once, and
// eventBatchEvents what Events copies from the ring at once.
const (
	eventBatchBytes  = 64 << 10
	eventBatchEvents = 256
)

// handleEvents streams changes as Server-Sent Events. Last-Event-ID (or
// ?index=) resumes after that index; when those events are gone, or the
// index is beyond the current one (another registry's), a reset event tells
// the client to re-list. Each change was encoded once, when it was
// recorded, into blocks shared by every stream: a stream writes runs of
// those bytes as they are, so what it costs is the write, and a stream that
// falls a whole ring behind gets a reset, so that streams never hold
// writers back.
func (r *Registry) handleEvents(w http.ResponseWriter, req *http.Request) {
	resume, loc := req.Header.Get("Last-Event-ID"), []string{"header", "Last-Event-ID"}
	if resume == "" {
		resume, loc = req.URL.Query().Get("index"), []string{"query", "index"}
	}
	var s stream
	if resume != "" {
		n, err := strconv.ParseUint(resume, 10, 64)
		if err != nil {
			writeInvalid(w, errKind(kindUint, loc...))
			return
		}
		s = r.streamAfter(n)
	} else {
		s = r.streamFromNow()
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if req.Method == http.MethodHead {
		return
	}
	r.counts.streams.Add(1)
	defer r.counts.streams.Add(-1)
	w.Write([]byte(": runspec-registry events\n\n"))
	rc.Flush()

	ticker := time.NewTicker(keepAlive)
	defer ticker.Stop()
	var runs [][]byte
	for {
		var wait <-chan struct{}
		runs, wait = r.nextFrames(&s, runs[:0])
		for _, b := range runs {
			if _, err := w.Write(b); err != nil {
				return
			}
		}
		if len(runs) > 0 {
			clear(runs) // let go of the blocks while waiting
			if rc.Flush() != nil {
				return // the client is gone, or stopped reading for WriteTimeout
			}
			continue
		}
		select {
		case <-wait:
		case <-ticker.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			if rc.Flush() != nil {
				return
			}
		case <-req.Context().Done():
			return
		case <-r.v.w.closed:
			return
		}
	}
}

// Events yields the changes after index after, in order, as GET /events
// streams them: pass the Meta.Index of a read to follow every change since
// that answer, or 0 for the changes from now on. When the changes after it
// are no longer held (the ring keeps the last 8,192), or after is beyond
// the registry's index, it yields an Event of kind EventReset with the
// current index: read again, and the stream goes on from there. It ends
// with ctx's error when ctx ends, and without one when ReleaseWaiters is
// called or the caller stops.
//
// A replica applies one Cluster revision at once, so several events may
// share an index; a later Events(ctx, i) skips the rest of those at index
// i, so resume from the index before it.
func (r *Registry) Events(ctx context.Context, after uint64) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		s := r.streamFromNow()
		if after > 0 {
			s = r.streamAfter(after)
		}
		for {
			evs, wait := r.next(&s, eventBatchEvents)
			for _, e := range evs {
				if !yield(e, nil) {
					return
				}
			}
			if len(evs) > 0 {
				continue
			}
			select {
			case <-wait:
			case <-ctx.Done():
				yield(Event{}, ctx.Err())
				return
			case <-r.v.w.closed:
				return
			}
		}
	}
}

// A stream is a reader's place in the ring of events: the position of the
// last event it got, or a reset to send first.
type stream struct {
	pos   uint64
	reset bool

	evs []Event // the last batch of Events, reused
}

// streamFromNow is a stream of the changes to come.
func (r *Registry) streamFromNow() stream {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return stream{pos: r.v.eventSeq}
}

// streamAfter is a stream of the changes after index: a reset first if
// they are not all in the ring, or index is beyond the current one.
func (r *Registry) streamAfter(index uint64) stream {
	r.mu.RLock()
	defer r.mu.RUnlock()
	pos, ok := r.v.eventPos(index)
	if !ok || index > r.v.index {
		return stream{pos: r.v.eventSeq, reset: true}
	}
	return stream{pos: pos}
}

// next returns the next events of s (at most limit), or, when there are
// none, a channel that closes at the next change. A stream that fell out
// of the ring gets a reset event with the current index, and goes on from
// there. The events are appended to s's own slice, reused from one call to
// the next: they are valid until the next call.
func (r *Registry) next(s *stream, limit int) (evs []Event, wait <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	evs = s.evs[:0]
	if !s.reset {
		var ok bool
		evs, ok = r.v.eventBatch(s.pos, limit, evs)
		s.reset = !ok
	}
	s.evs = evs
	if s.reset {
		s.pos, s.reset = r.v.eventSeq, false
		return append(evs[:0], Event{Index: r.v.index, Kind: EventReset}), nil
	}
	if len(evs) == 0 {
		return nil, r.v.w.chanFor(topic{kind: topicAll})
	}
	s.pos += uint64(len(evs))
	return evs, nil
}

// nextFrames is next for GET /events: it appends to runs the next events
// of s as they are sent, up to about eventBatchBytes, in runs of adjacent
// frames, or a reset.
func (r *Registry) nextFrames(s *stream, runs [][]byte) ([][]byte, <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if !s.reset {
		var n int
		var ok bool
		runs, n, ok = r.v.frameRuns(s.pos, eventBatchBytes, runs)
		s.pos += uint64(n)
		s.reset = !ok
	}
	if s.reset {
		s.pos, s.reset = r.v.eventSeq, false
		reset := Event{Index: r.v.index, Kind: EventReset}
		return append(runs[:0], appendEvent(nil, reset, nil, reset.Index)), nil
	}
	if len(runs) == 0 {
		return runs, r.v.w.chanFor(topic{kind: topicAll})
	}
	return runs, nil
}

// appendEvent appends e, whose JSON is data, as a Server-Sent Event with
// the given id. A reset's data is only the index.
func appendEvent(buf []byte, e Event, data []byte, id uint64) []byte {
	buf = append(buf, "event: "...)
	buf = append(buf, e.Kind...)
	buf = append(buf, "\nid: "...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, "\ndata: "...)
	if e.Kind == EventReset {
		buf = strconv.AppendUint(append(buf, `{"index":`...), e.Index, 10)
		buf = append(buf, '}')
	} else {
		buf = append(buf, data...)
	}
	return append(buf, "\n\n"...)
}

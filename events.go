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
	v.w.changed(v.index, topic{topicInstance, in.id})
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

// keepAlive is the period of comment lines on idle event streams, so that
// proxies do not cut them.
const keepAlive = 15 * time.Second

// handleEvents streams changes as Server-Sent Events. Last-Event-ID (or
// ?index=) resumes after that index; when those events are gone, or the
// index is beyond the current one (another registry's), a reset event tells
// the client to re-list.
func (r *Registry) handleEvents(w http.ResponseWriter, req *http.Request) {
	resume := req.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = req.URL.Query().Get("index")
	}
	var after uint64
	if resume != "" {
		n, err := strconv.ParseUint(resume, 10, 64)
		if err != nil {
			writeInvalid(w, errKind(kindUint, "header", "Last-Event-ID"))
			return
		}
		after = n
	} else {
		after = r.eventsStart(0)
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
	w.Write([]byte(": runspec-registry events\n\n"))
	rc.Flush()

	ticker := time.NewTicker(keepAlive)
	defer ticker.Stop()
	var buf []byte
	for {
		evs, next, wait := r.nextEvents(after)
		buf = buf[:0]
		for i, e := range evs {
			id := e.Index
			if i+1 < len(evs) && evs[i+1].Index == e.Index {
				// A replica applies one Cluster revision at once, which
				// may make several events: a client that resumes from
				// this one must get the others again (at least once),
				// not skip them.
				id--
			}
			buf = appendEvent(buf, e, id)
		}
		after = next
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			rc.Flush()
			continue
		}
		select {
		case <-wait:
		case <-ticker.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			rc.Flush()
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
		after := r.eventsStart(after)
		for {
			evs, next, wait := r.nextEvents(after)
			for _, e := range evs {
				if !yield(e, nil) {
					return
				}
			}
			after = next
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

// eventsStart is where a stream asked to start after index after begins:
// there, or at the current index for 0.
func (r *Registry) eventsStart(after uint64) uint64 {
	if after > 0 {
		return after
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.v.index
}

// nextEvents returns the events after index after, or a reset event when
// they are not all in the ring (or after is beyond the current index); the
// index to go on from; and, when there are none, a channel that closes at
// the next change.
func (r *Registry) nextEvents(after uint64) (evs []Event, next uint64, wait <-chan struct{}) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	cur := r.v.index
	evs, ok := r.v.eventsAfter(after)
	if !ok || after > cur {
		return []Event{{Index: cur, Kind: EventReset}}, cur, nil
	}
	if len(evs) == 0 {
		return nil, after, r.v.w.chanFor(topic{kind: topicAll})
	}
	return evs, evs[len(evs)-1].Index, nil
}

// appendEvent appends e as a Server-Sent Event with the given id. A reset's
// data is only the index.
func appendEvent(buf []byte, e Event, id uint64) []byte {
	var b []byte
	if e.Kind == EventReset {
		b = strconv.AppendUint([]byte(`{"index":`), e.Index, 10)
		b = append(b, '}')
	} else {
		b, _ = json.Marshal(e)
	}
	buf = append(buf, "event: "...)
	buf = append(buf, e.Kind...)
	buf = append(buf, "\nid: "...)
	buf = strconv.AppendUint(buf, id, 10)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

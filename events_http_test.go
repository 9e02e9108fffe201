// events_http_test.go checks GET /events, the change stream over HTTP
// (Server-Sent Events): one event per change, resume with Last-Event-ID, a
// reset when the ring no longer holds the events asked for, keep-alives.

package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// An sseEvent is one event of a GET /events stream.
type sseEvent struct {
	Event, ID, Data string
}

// sseStream reads the events of a GET /events answer in a goroutine.
type sseStream struct {
	resp *http.Response
	ch   chan sseEvent // closed at the end of the stream
}

// openEvents opens GET /events on the server at base, with Last-Event-ID
// lastID if it is not empty.
func openEvents(t *testing.T, base, lastID string) *sseStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /events: status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Errorf("GET /events: Content-Type %q, want text/event-stream", ct)
	}
	s := &sseStream{resp: resp, ch: make(chan sseEvent, 16384)}
	go s.read()
	return s
}

// read parses the stream as the EventSource specification does: fields up
// to a blank line make an event, comment lines are ignored.
func (s *sseStream) read() {
	defer close(s.ch)
	br := bufio.NewReader(s.resp.Body)
	var e sseEvent
	var data []string
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			if data != nil {
				e.Data = strings.Join(data, "\n")
				s.ch <- e
			}
			e, data = sseEvent{}, nil
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			e.Event = value
		case "id":
			e.ID = value
		case "data":
			data = append(data, value)
		}
	}
}

// next returns the next event within d, or false at the end of the stream.
func (s *sseStream) next(t *testing.T, d time.Duration) (sseEvent, bool) {
	t.Helper()
	select {
	case e, ok := <-s.ch:
		return e, ok
	case <-time.After(d):
		t.Fatalf("no event within %v", d)
		return sseEvent{}, false
	}
}

// eventFields are the fields of an event the protocol promises.
type eventFields struct {
	Event, ID  string
	InstanceID string `json:"instance_id"`
	Host, Name string
	Index      uint64
}

func parseEvent(t *testing.T, e sseEvent) eventFields {
	t.Helper()
	f := eventFields{Event: e.Event, ID: e.ID}
	if err := json.Unmarshal([]byte(e.Data), &f); err != nil {
		t.Fatalf("event %s: data %q: %v", e.Event, e.Data, err)
	}
	f.Event, f.ID = e.Event, e.ID // data must not override them
	return f
}

// TestEvents reads GET /events over a real socket while every kind of change
// happens: one event per change, in order, named for its kind, with id and
// data.index the index of the change; heartbeats make none. A stream opened
// with Last-Event-ID replays what follows that id, then goes on live.
func TestEvents(t *testing.T) {
	h := newHarness(t, registry.Options{RetainInactive: 10 * time.Second})
	ts := httptest.NewServer(h.reg)
	t.Cleanup(ts.Close)
	t.Cleanup(h.reg.ReleaseWaiters) // runs first: ends the streams
	stream := openEvents(t, ts.URL, "")

	// Each step makes at most one change; want lists the event it makes.
	type step struct {
		do                   func()
		kind, id, host, name string
	}
	steps := []step{
		{func() {
			h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":1}`)
		}, registry.EventRegistered, "a", "h1", "app"},
		{func() { h.postTools("a", `{"name":"deploy"}`) }, registry.EventTools, "a", "h1", "app"},
		{func() { tick(h, "a") }, "", "", "", ""},
		{func() { h.register("b", "db", "h2") }, registry.EventRegistered, "b", "h2", "db"},
		{func() { h.deregister("a") }, registry.EventDeregistered, "a", "h1", "app"},
		{func() { h.heartbeat("a") }, registry.EventActive, "a", "h1", "app"},
		{func() {
			h.clock.Advance(3*time.Second + time.Millisecond)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, registry.EventInactive, "a", "h1", "app"},
		{func() {
			h.must(http.StatusOK, "POST", "/instances/b/heartbeat", `{"system":{"x":1}}`)
		}, "", "", "", ""},
		{func() {
			h.clock.Advance(10*time.Second + time.Millisecond)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, registry.EventDeleted, "a", "h1", "app"},
		{func() { h.postTools("b", `{"name":"backup"}`) }, registry.EventTools, "b", "h2", "db"},
	}
	var want []eventFields
	for _, s := range steps {
		before := globalIndex(h)
		s.do()
		g := globalIndex(h)
		if s.kind == "" {
			if g != before {
				t.Fatalf("a heartbeat moved the index from %d to %d", before, g)
			}
			continue
		}
		want = append(want, eventFields{Event: s.kind, ID: strconv.FormatUint(g, 10),
			InstanceID: s.id, Host: s.host, Name: s.name, Index: g})
	}
	var got []eventFields
	for range want {
		e, ok := stream.next(t, 5*time.Second)
		if !ok {
			t.Fatalf("the stream ended after %d events", len(got))
		}
		got = append(got, parseEvent(t, e))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("events mismatch (-want +got):\n%s", diff)
	}

	// Resume after the second event: the rest follows, then live events.
	resumed := openEvents(t, ts.URL, want[1].ID)
	h.register("c", "app", "h3")
	live := eventFields{Event: registry.EventRegistered, ID: strconv.FormatUint(globalIndex(h), 10),
		InstanceID: "c", Host: "h3", Name: "app", Index: globalIndex(h)}
	want2 := append(append([]eventFields{}, want[2:]...), live)
	var got2 []eventFields
	for range want2 {
		e, ok := resumed.next(t, 5*time.Second)
		if !ok {
			t.Fatalf("the resumed stream ended after %d events", len(got2))
		}
		got2 = append(got2, parseEvent(t, e))
	}
	if diff := cmp.Diff(want2, got2); diff != "" {
		t.Errorf("resumed events mismatch (-want +got):\n%s", diff)
	}
	// The first stream sees the live event too.
	if e, ok := stream.next(t, 5*time.Second); !ok || cmp.Diff(live, parseEvent(t, e)) != "" {
		t.Errorf("first stream: got %+v, want %+v", e, live)
	}
}

// TestEventsReset: the ring holds the last 8192 events; a client resuming
// from before them gets a reset event (with the current index) and then the
// live events.
func TestEventsReset(t *testing.T) {
	h := newHarness(t, registry.Options{})
	ts := httptest.NewServer(h.reg)
	t.Cleanup(ts.Close)
	t.Cleanup(h.reg.ReleaseWaiters)
	start := globalIndex(h)
	const events = 8192 + 100
	for i := range events {
		reg := registry.Registration{ID: fmt.Sprintf("i%d", i%50), Name: "app", Version: "1", Host: "h"}
		if err := h.reg.Register(t.Context(), reg); err != nil {
			t.Fatal(err)
		}
	}
	g := globalIndex(h)
	if g != start+events {
		t.Fatalf("index %d after %d registrations from %d, want %d", g, events, start, start+events)
	}

	t.Run("all of the ring", func(t *testing.T) {
		s := openEvents(t, ts.URL, strconv.FormatUint(g-8192, 10))
		for i := g - 8191; i <= g; i++ {
			e, ok := s.next(t, 5*time.Second)
			if !ok || e.Event != registry.EventRegistered || e.ID != strconv.FormatUint(i, 10) {
				t.Fatalf("got %+v (ok %v), want the registered event %d", e, ok, i)
			}
		}
	})
	for _, last := range []uint64{g - 8193, start + 1, start, 0} {
		t.Run(fmt.Sprintf("Last-Event-ID=%d", last), func(t *testing.T) {
			s := openEvents(t, ts.URL, strconv.FormatUint(last, 10))
			e, ok := s.next(t, 5*time.Second)
			cur := globalIndex(h)
			if !ok || e.Event != "reset" || e.ID != strconv.FormatUint(cur, 10) {
				t.Fatalf("got %+v (ok %v), want a reset event with id %d", e, ok, cur)
			}
			var data struct{ Index uint64 }
			if err := json.Unmarshal([]byte(e.Data), &data); err != nil || data.Index != cur {
				t.Errorf("reset data %q, want {\"index\":%d}", e.Data, cur)
			}
			h.postTools("i1", `{"name":"deploy"}`)
			e, ok = s.next(t, 5*time.Second)
			if !ok || e.Event != registry.EventTools || e.ID != strconv.FormatUint(cur+1, 10) {
				t.Errorf("after the reset: got %+v, want the tools event %d", e, cur+1)
			}
		})
	}
}

// streamRecorder is a ResponseWriter that may be read while the handler
// writes to it, and flushes.
type streamRecorder struct {
	mu  sync.Mutex
	hdr http.Header
	buf bytes.Buffer
}

func (w *streamRecorder) Header() http.Header { return w.hdr }
func (w *streamRecorder) WriteHeader(int)     {}
func (w *streamRecorder) Flush()              {}
func (w *streamRecorder) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(b)
}
func (w *streamRecorder) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// TestEventsKeepAlive: an idle stream gets a comment line every 15 s, and
// ends when the request does.
func TestEventsKeepAlive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, registry.Options{Now: time.Now})
		ctx, cancel := context.WithCancel(context.Background())
		w := &streamRecorder{hdr: http.Header{}}
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.reg.ServeHTTP(w, httptest.NewRequest("GET", "/events", nil).WithContext(ctx))
		}()
		keepAlives := func() int {
			n := 0
			for _, line := range strings.Split(w.String(), "\n") {
				if strings.HasPrefix(line, ":") && strings.Contains(line, "keep-alive") {
					n++
				}
			}
			return n
		}
		time.Sleep(15*time.Second - time.Millisecond)
		synctest.Wait()
		if n := keepAlives(); n != 0 {
			t.Errorf("%d keep-alives before 15s", n)
		}
		time.Sleep(time.Millisecond)
		synctest.Wait()
		if n := keepAlives(); n != 1 {
			t.Errorf("%d keep-alives at 15s, want 1", n)
		}
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if n := keepAlives(); n != 3 {
			t.Errorf("%d keep-alives at 45s, want 3", n)
		}
		h.register("a", "app", "h1")
		synctest.Wait()
		if !strings.Contains(w.String(), "event: registered\n") {
			t.Errorf("no registered event in %q", w.String())
		}
		cancel()
		<-done
	})
}

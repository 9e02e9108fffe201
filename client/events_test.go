// events_test.go tests Events and InstancePages: one event per change in
// order, resume after a broken connection without loss or repeat, a reset
// when the registry no longer holds the changes (an old index, a restart),
// errors matching their sentinels, silent streams reopened, and pages
// walked in registration order with the index a stream starts from.

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// testClock is a settable clock for a registry.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock { return &testClock{now: time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// startEvents ranges over c.Events(ctx, after) in a goroutine until the
// test ends.
func startEvents(t *testing.T, c *client.Client, after uint64) <-chan update[registry.Event] {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, done := startWatch(c.Events(ctx, after))
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// nextEvents returns the next n events (not errors), failing after 10s.
func nextEvents(t *testing.T, ch <-chan update[registry.Event], n int) []registry.Event {
	t.Helper()
	var out []registry.Event
	for range n {
		out = append(out, next(t, ch, fmt.Sprintf("event %d of %d", len(out)+1, n), func(registry.Event) bool { return true }))
	}
	return out
}

// nextError returns the next error, failing after 10s.
func nextError(t *testing.T, ch <-chan update[registry.Event]) error {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u := <-ch:
			if u.err != nil {
				return u.err
			}
			t.Fatalf("event %+v, want an error", u.v)
		case <-timeout:
			t.Fatal("no error within 10s")
		}
	}
}

// listIndex lists the registry with c and returns the index of the
// first page.
func listIndex(t *testing.T, c *client.Client) uint64 {
	t.Helper()
	for p, err := range c.InstancePages(t.Context(), client.Filter{IncludeInactive: true}, 0) {
		if err != nil {
			t.Fatal(err)
		}
		return p.Index
	}
	t.Fatal("InstancePages yielded nothing")
	return 0
}

// ignoreIndex compares events without their index, which the registry
// chooses.
var ignoreIndex = cmpopts.IgnoreFields(registry.Event{}, "Index")

func TestEvents(t *testing.T) {
	checkLeaks(t)
	clock := newTestClock()
	tr := newTestRegistry(t, "socket")
	reg := tr.start(registry.Options{Now: clock.Now, RetainInactive: time.Hour, NotifyInterval: -1})
	c := tr.client(client.Options{})
	ctx := t.Context()
	steps := []struct {
		name string
		do   func()
		want []registry.Event
	}{
		{"register", func() {
			c.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
		}, []registry.Event{{Kind: registry.EventRegistered, InstanceID: "a1", Host: "web-1", Name: "ops", Active: true}}},
		{"post tools", func() {
			c.UpdateTools(ctx, "a1", []json.RawMessage{toolJSON("deploy", "/bin/deploy"), toolJSON("status", "/bin/status")})
		}, []registry.Event{{Kind: registry.EventTools, InstanceID: "a1", Host: "web-1", Name: "ops", Active: true, ToolCount: 2}}},
		{"a heartbeat changes nothing; a deregistration does", func() {
			c.Heartbeat(ctx, "a1", nil)
			c.Deregister(ctx, "a1")
		}, []registry.Event{{Kind: registry.EventDeregistered, InstanceID: "a1", Host: "web-1", Name: "ops", ToolCount: 2}}},
		{"a heartbeat revives", func() { c.Heartbeat(ctx, "a1", nil) },
			[]registry.Event{{Kind: registry.EventActive, InstanceID: "a1", Host: "web-1", Name: "ops", Active: true, ToolCount: 2}}},
		{"expiry", func() {
			clock.advance(2 * time.Minute)
			reg.Purge(ctx)
		}, []registry.Event{{Kind: registry.EventInactive, InstanceID: "a1", Host: "web-1", Name: "ops", ToolCount: 2}}},
		{"deletion after the retention", func() {
			clock.advance(2 * time.Hour)
			reg.Purge(ctx)
		}, []registry.Event{{Kind: registry.EventDeleted, InstanceID: "a1", Host: "web-1", Name: "ops", ToolCount: 2}}},
	}
	events := startEvents(t, c, listIndex(t, c))
	var last uint64
	for _, st := range steps {
		st.do()
		got := nextEvents(t, events, len(st.want))
		if diff := cmp.Diff(st.want, got, ignoreIndex); diff != "" {
			t.Errorf("%s: events mismatch (-want +got):\n%s", st.name, diff)
		}
		for _, e := range got {
			if e.Index <= last {
				t.Errorf("%s: event at index %d after one at %d", st.name, e.Index, last)
			}
			last = e.Index
		}
	}
	if extra := drain(events); len(extra) > 0 {
		t.Errorf("more than the changes: %+v", extra)
	}
}

// TestEventsResume: a connection that breaks is opened again after the
// last event yielded: the changes made meanwhile come, once each, without
// a reset.
func TestEventsResume(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "socket")
	tr.start(registry.Options{NotifyInterval: -1})
	c := tr.client(client.Options{})
	ctx := t.Context()
	events := startEvents(t, c, listIndex(t, c))
	register := func(ids ...string) {
		for _, id := range ids {
			if err := c.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: "h-" + id}); err != nil {
				t.Fatal(err)
			}
		}
	}
	ids := func(evs []registry.Event) []string {
		var out []string
		for _, e := range evs {
			out = append(out, e.Kind+" "+e.InstanceID)
		}
		return out
	}
	register("a1", "a2")
	if diff := cmp.Diff([]string{"registered a1", "registered a2"}, ids(nextEvents(t, events, 2))); diff != "" {
		t.Errorf("before the break (-want +got):\n%s", diff)
	}
	tr.srv.CloseClientConnections()
	if err := nextError(t, events); !errors.Is(err, client.ErrStreamEnded) {
		t.Errorf("a broken stream yields %v, want ErrStreamEnded", err)
	}
	register("a3", "a4")
	if diff := cmp.Diff([]string{"registered a3", "registered a4"}, ids(nextEvents(t, events, 2))); diff != "" {
		t.Errorf("after the break (-want +got):\n%s", diff)
	}
}

// TestEventsReset: when the registry no longer holds the changes after the
// index asked for, the stream starts with a reset whose index is the
// registry's, then goes on.
func TestEventsReset(t *testing.T) {
	tests := []struct {
		name  string
		after func(t *testing.T, tr *testRegistry, c *client.Client) uint64 // the index to follow after
		then  func(t *testing.T, tr *testRegistry, events <-chan update[registry.Event])
	}{
		{"an index older than the registry", func(t *testing.T, tr *testRegistry, c *client.Client) uint64 { return 1 }, nil},
		{"an index beyond the registry's", func(t *testing.T, tr *testRegistry, c *client.Client) uint64 {
			return listIndex(t, c) + 1000
		}, nil},
		{"the ring moved on", func(t *testing.T, tr *testRegistry, c *client.Client) uint64 {
			after := listIndex(t, c)
			reg := tr.current()
			for i := range 8200 { // the registry keeps the last 8,192 events
				if err := reg.Register(t.Context(), registry.Registration{ID: fmt.Sprint("x", i%10), Name: "ops", Version: "1", Host: "h"}); err != nil {
					t.Fatal(err)
				}
			}
			return after
		}, nil},
		{"a restart", func(t *testing.T, tr *testRegistry, c *client.Client) uint64 { return listIndex(t, c) },
			func(t *testing.T, tr *testRegistry, events <-chan update[registry.Event]) {
				tr.current().Register(t.Context(), registry.Registration{ID: "before", Name: "ops", Version: "1", Host: "h"})
				next(t, events, "the registration before the restart", func(e registry.Event) bool { return e.InstanceID == "before" })
				tr.stop()
				if err := nextError(t, events); !errors.Is(err, client.ErrStreamEnded) {
					t.Errorf("a stopped registry ends the stream with %v, want ErrStreamEnded", err)
				}
				// A registry that keeps no records: its index starts at its
				// clock, after the old one's.
				time.Sleep(2 * time.Millisecond)
				tr.start(registry.Options{NotifyInterval: -1})
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			tr := newTestRegistry(t, "socket")
			tr.start(registry.Options{NotifyInterval: -1})
			c := tr.client(client.Options{})
			events := startEvents(t, c, tt.after(t, tr, c))
			if tt.then != nil {
				tt.then(t, tr, events)
			}
			reset := next(t, events, "a reset", func(registry.Event) bool { return true })
			_, meta, err := tr.current().Instances(t.Context(), registry.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if reset.Kind != registry.EventReset || reset.Index != meta.Index {
				t.Errorf("first event %+v, want a reset at the registry's index %d", reset, meta.Index)
			}
			tr.current().Register(t.Context(), registry.Registration{ID: "after", Name: "ops", Version: "1", Host: "h"})
			got := nextEvents(t, events, 1)
			want := []registry.Event{{Kind: registry.EventRegistered, InstanceID: "after", Host: "h", Name: "ops", Active: true}}
			if diff := cmp.Diff(want, got, ignoreIndex); diff != "" {
				t.Errorf("after the reset (-want +got):\n%s", diff)
			}
			if got[0].Index <= reset.Index {
				t.Errorf("an event at index %d after a reset at %d", got[0].Index, reset.Index)
			}
		})
	}
}

// TestEventsFromNowBroken: a stream that started from now and broke
// before its first event cannot resume: it yields a reset when it is open
// again.
func TestEventsFromNowBroken(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "socket")
	reg := tr.start(registry.Options{NotifyInterval: -1})
	c := tr.client(client.Options{})
	events := startEvents(t, c, 0)
	waitFor(t, "the stream to open", func() bool { return reg.Metrics().Streams > 0 })
	tr.srv.CloseClientConnections()
	if err := nextError(t, events); !errors.Is(err, client.ErrStreamEnded) {
		t.Errorf("a broken stream yields %v, want ErrStreamEnded", err)
	}
	e := next(t, events, "a reset", func(registry.Event) bool { return true })
	if diff := cmp.Diff(registry.Event{Kind: registry.EventReset}, e); diff != "" {
		t.Errorf("after the break (-want +got):\n%s", diff)
	}
}

func TestEventsErrors(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    error
		status  int // of the *APIError, if any
	}{
		{"no change stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"detail":"Not Found"}`)
		}, client.ErrNotFound, http.StatusNotFound},
		{"a wrong key", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, `{"detail":"Invalid or missing API key"}`)
		}, client.ErrForbidden, http.StatusForbidden},
		{"not an event stream", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			io.WriteString(w, "<html></html>")
		}, client.ErrStreamEnded, 0},
		{"an event that is not JSON", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, ": hello\n\nevent: tools\nid: 7\ndata: {nope\n\n")
		}, client.ErrStreamEnded, 0},
		{"an event without an id", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "event: tools\ndata: {\"index\":7}\n\n")
		}, client.ErrStreamEnded, 0},
		{"a line too long", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: "+string(make([]byte, 100<<10))+"\n\n")
		}, client.ErrStreamEnded, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLeaks(t)
			srv := httptest.NewServer(tt.handler)
			defer srv.Close()
			c, err := client.New(srv.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			for e, err := range c.Events(t.Context(), 5) {
				if err == nil {
					t.Fatalf("event %+v, want an error", e)
				}
				if !errors.Is(err, tt.want) {
					t.Errorf("error %v, want one matching %v", err, tt.want)
				}
				var ae *client.APIError
				if got := errors.As(err, &ae); got != (tt.status != 0) || got && ae.StatusCode != tt.status {
					t.Errorf("error %#v: want an *APIError with status %d: %v", err, tt.status, got)
				}
				break
			}
		})
	}
}

// TestEventsSilent: a stream on which nothing comes is opened again, from
// where it was, each time.
func TestEventsSilent(t *testing.T) {
	checkLeaks(t)
	defer client.SetEventIdle(50 * time.Millisecond)()
	var opened atomic.Int32
	lastIDs := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := opened.Add(1)
		lastIDs <- r.Header.Get("Last-Event-ID")
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, ": runspec-registry events\n\n")
		if n == 1 {
			io.WriteString(w, "event: tools\nid: 8\ndata: {\"index\":8,\"instance_id\":\"a1\"}\n\n")
		}
		w.(http.Flusher).Flush()
		<-r.Context().Done() // then silence
	}))
	defer srv.Close()
	defer srv.CloseClientConnections()
	c, err := client.New(srv.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	var got []string
	for e, err := range c.Events(t.Context(), 5) {
		if err != nil {
			if !errors.Is(err, client.ErrStreamEnded) {
				t.Errorf("a silent stream ends with %v, want ErrStreamEnded", err)
			}
			got = append(got, "error")
		} else {
			got = append(got, fmt.Sprint(e.Kind, " ", e.InstanceID))
		}
		if len(got) == 3 {
			break
		}
	}
	if diff := cmp.Diff([]string{"tools a1", "error", "error"}, got); diff != "" {
		t.Errorf("yields mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"5", "8"}, []string{<-lastIDs, <-lastIDs}); diff != "" {
		t.Errorf("Last-Event-ID of the two streams (-want +got):\n%s", diff)
	}
}

func TestInstancePages(t *testing.T) {
	tr := newTestRegistry(t, "socket")
	reg := tr.start(registry.Options{})
	c := tr.client(client.Options{})
	ctx := t.Context()
	var want []string
	for i := range 25 {
		// Ids that do not sort in registration order.
		id := fmt.Sprintf("z%02d", 25-i)
		name := "ops"
		if i%5 == 0 {
			name = "db"
		}
		if err := reg.Register(ctx, registry.Registration{ID: id, Name: name, Version: "1", Host: "h"}); err != nil {
			t.Fatal(err)
		}
		if name == "ops" {
			want = append(want, id)
		}
	}
	reg.Deregister(ctx, want[3])
	_, meta, err := reg.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		f     client.Filter
		limit int
		want  []string
		pages int
	}{
		{"pages of 7", client.Filter{Name: "ops", IncludeInactive: true}, 7, want, 3},
		{"active only", client.Filter{Name: "ops"}, 100, append(want[:3:3], want[4:]...), 1},
		{"the default page size", client.Filter{Name: "ops", IncludeInactive: true}, 0, want, 1},
		{"nothing", client.Filter{Name: "none"}, 5, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			pages := 0
			for p, err := range c.InstancePages(ctx, tt.f, tt.limit) {
				if err != nil {
					t.Fatal(err)
				}
				if pages++; pages == 1 && p.Index != meta.Index {
					t.Errorf("first page at index %d, want %d", p.Index, meta.Index)
				}
				if len(p.Instances) > max(tt.limit, 1) && tt.limit > 0 {
					t.Errorf("page %d has %d records, more than %d", pages, len(p.Instances), tt.limit)
				}
				for _, in := range p.Instances {
					got = append(got, in.ID)
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("records in registration order mismatch (-want +got):\n%s", diff)
			}
			if pages != tt.pages {
				t.Errorf("%d pages, want %d", pages, tt.pages)
			}
		})
	}
}

func TestInstancePagesErrors(t *testing.T) {
	tests := []struct {
		name string
		link string // of the first page
		want error
	}{
		{"a link to another host", `<http://evil.example/instances?cursor=x>; rel="next"`, nil},
		{"a link to another path", `</other?cursor=x>; rel="next"`, nil},
		{"an error status", "", client.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.want != nil {
					w.WriteHeader(http.StatusNotFound)
					io.WriteString(w, `{"detail":"Not Found"}`)
					return
				}
				w.Header().Set("Link", tt.link)
				w.Header().Set("X-Registry-Index", "3")
				io.WriteString(w, "[]")
			}))
			defer srv.Close()
			c, err := client.New(srv.URL, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			var pages int
			var last error
			for _, err := range c.InstancePages(t.Context(), client.Filter{}, 10) {
				if err != nil {
					last = err
					continue
				}
				pages++
			}
			if last == nil {
				t.Fatalf("%d pages and no error", pages)
			}
			if tt.want != nil && !errors.Is(last, tt.want) {
				t.Errorf("error %v, want one matching %v", last, tt.want)
			}
			if tt.want == nil && pages != 1 {
				t.Errorf("%d pages before the bad link, want 1", pages)
			}
		})
	}
}

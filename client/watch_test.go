// watch_test.go tests WatchTool and WatchTools: they wake on the changes
// that affect them and not on others, use 304s, survive outages, restarts
// and indexes that go backwards, do not spin on early answers, and stop
// cleanly.

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

func isBlocking(path string) func(loggedReq) bool {
	return func(r loggedReq) bool { return r.path == path && r.query.Has("index") }
}

func isDone(keep func(loggedReq) bool) func(loggedReq) bool {
	return func(r loggedReq) bool { return keep(r) && r.done }
}

func isInFlight(keep func(loggedReq) bool) func(loggedReq) bool {
	return func(r loggedReq) bool { return keep(r) && !r.done }
}

func register(t *testing.T, reg *registry.Registry, id, host string, tools ...string) {
	t.Helper()
	ctx := context.Background()
	if err := reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: host}); err != nil {
		t.Fatal(err)
	}
	if tools == nil {
		return
	}
	list := make([]json.RawMessage, len(tools))
	for i, name := range tools {
		list[i] = toolJSON(name, "/bin/"+name)
	}
	if err := reg.UpdateTools(ctx, id, list); err != nil {
		t.Fatal(err)
	}
}

func TestWatchToolWakesOnItsChangesOnly(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			var log reqLog
			tr.wrap = log.wrap
			reg := tr.start(registry.Options{})
			c := tr.client(client.Options{Wait: time.Minute})
			ctx, cancel := context.WithCancel(t.Context())
			updates, done := startWatch(c.WatchTool(ctx, "hello"))
			defer func() { cancel(); <-done }()

			u := next(t, updates, "the first answer", func(client.ToolUpdate) bool { return true })
			if u.Found {
				t.Fatalf("first answer = %+v, want not found", u)
			}
			blocking := isBlocking("/tools/hello")
			waitFor(t, "a blocking query", func() bool { return len(log.matching(isInFlight(blocking))) == 1 })

			// Changes that do not affect the tool.
			register(t, reg, "b", "web-2", "other")
			reg.Heartbeat(ctx, "b", nil)
			register(t, reg, "c", "web-3")
			reg.Deregister(ctx, "b")
			// One that does.
			register(t, reg, "a", "web-1", "hello", "other")
			u = next(t, updates, "hello on web-1", func(u client.ToolUpdate) bool { return u.Found })
			if diff := cmp.Diff([]string{"web-1"}, u.HostNames()); diff != "" {
				t.Errorf("hosts mismatch (-want +got):\n%s", diff)
			}
			if u.Tool.Name != "hello" || u.Index == 0 {
				t.Errorf("update = %+v", u)
			}
			if n := len(log.matching(isDone(blocking))); n != 1 {
				t.Errorf("%d blocking queries answered, want 1: unrelated changes woke the watch", n)
			}
			if extra := drain(updates); len(extra) != 0 {
				t.Errorf("unexpected updates: %+v", extra)
			}

			// A second host, then both gone.
			register(t, reg, "d", "web-4", "hello")
			u = next(t, updates, "two hosts", func(u client.ToolUpdate) bool { return len(u.HostNames()) == 2 })
			reg.Deregister(ctx, "a")
			reg.Deregister(ctx, "d")
			next(t, updates, "the tool gone", func(u client.ToolUpdate) bool { return !u.Found })
		})
	}
}

func TestWatchToolsWakesOnToolChangesOnly(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			var log reqLog
			tr.wrap = log.wrap
			reg := tr.start(registry.Options{})
			c := tr.client(client.Options{Wait: time.Minute})
			ctx, cancel := context.WithCancel(t.Context())
			updates, done := startWatch(c.WatchTools(ctx))
			defer func() { cancel(); <-done }()

			if u := next(t, updates, "the first answer", func(client.ToolsUpdate) bool { return true }); len(u.Tools) != 0 {
				t.Fatalf("first answer = %+v, want no tools", u)
			}
			blocking := isBlocking("/tools")
			waitFor(t, "a blocking query", func() bool { return len(log.matching(isInFlight(blocking))) == 1 })
			register(t, reg, "a", "web-1") // no tools yet
			reg.Heartbeat(ctx, "a", nil)
			reg.UpdateTools(ctx, "a", []json.RawMessage{toolJSON("hello", "x"), toolJSON("bye", "y")})
			u := next(t, updates, "two tools", func(u client.ToolsUpdate) bool { return len(u.Tools) > 0 })
			var names []string
			for _, tl := range u.Tools {
				names = append(names, tl.Name)
			}
			if diff := cmp.Diff([]string{"bye", "hello"}, names); diff != "" {
				t.Errorf("tools mismatch (-want +got):\n%s", diff)
			}
			if n := len(log.matching(isDone(blocking))); n != 1 {
				t.Errorf("%d blocking queries answered, want 1", n)
			}
			reg.Heartbeat(ctx, "a", nil)
			reg.Deregister(ctx, "a")
			next(t, updates, "no tools", func(u client.ToolsUpdate) bool { return len(u.Tools) == 0 })
		})
	}
}

// An idle watch repeats its blocking query when the wait passes; the
// answers are 304s and yield nothing.
func TestWatchNotModified(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			var log reqLog
			tr.wrap = log.wrap
			reg := tr.start(registry.Options{})
			register(t, reg, "a", "web-1", "hello")
			c := tr.client(client.Options{Wait: 20 * time.Millisecond})
			ctx, cancel := context.WithCancel(t.Context())
			updates, done := startWatch(c.WatchTool(ctx, "hello"))
			defer func() { cancel(); <-done }()

			next(t, updates, "the first answer", func(u client.ToolUpdate) bool { return u.Found })
			notModified := func(r loggedReq) bool {
				return r.path == "/tools/hello" && r.status == http.StatusNotModified && r.ifNoneMatch != ""
			}
			waitFor(t, "three 304s", func() bool { return len(log.matching(notModified)) >= 3 })
			if extra := drain(updates); len(extra) != 0 {
				t.Errorf("304s yielded updates: %+v", extra)
			}
			register(t, reg, "b", "web-2", "hello")
			next(t, updates, "web-2", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-2") })
		})
	}
}

// A registry that goes down for a while and comes back empty, with a lower
// index (its clock is earlier): the watch reports errors, then reads
// without blocking, follows the new index and sees new changes at once.
func TestWatchSurvivesRestart(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			reg := tr.start(registry.Options{})
			register(t, reg, "a", "web-1", "hello")
			c := tr.client(client.Options{Wait: time.Minute})
			ctx, cancel := context.WithCancel(t.Context())
			updates, done := startWatch(c.WatchTool(ctx, "hello"))
			defer func() { cancel(); <-done }()
			first := next(t, updates, "web-1", func(u client.ToolUpdate) bool { return u.Found })

			tr.stop()
			var errs int
			for errs < 3 {
				select {
				case u := <-updates:
					if u.err == nil {
						t.Fatalf("update while down: %+v", u.v)
					}
					errs++
				case <-time.After(10 * time.Second):
					t.Fatal("no errors while the registry is down")
				}
			}

			var log reqLog
			tr.wrap = log.wrap
			early := time.Unix(1_000_000, 0)
			reg = tr.start(registry.Options{Now: func() time.Time { return early }})
			back := next(t, updates, "the answer after the restart", func(client.ToolUpdate) bool { return true })
			if back.Found || back.Index >= first.Index {
				t.Errorf("after the restart: %+v, want not found with an index below %d", back, first.Index)
			}
			if reqs := log.matching(func(r loggedReq) bool { return r.path == "/tools/hello" }); len(reqs) == 0 || reqs[0].query.Has("index") {
				t.Errorf("first read after the outage = %+v, want a read without index", reqs)
			}
			// With the old index the next query would block for a minute.
			register(t, reg, "b", "web-2", "hello")
			u := next(t, updates, "web-2", func(u client.ToolUpdate) bool { return u.Found })
			if diff := cmp.Diff([]string{"web-2"}, u.HostNames()); diff != "" {
				t.Errorf("hosts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// Behind a load balancer a restart may show no transport error: the
// blocking query with the old index waits its full wait on the new
// registry, whose answer has a lower index. The watch follows it.
func TestWatchIndexGoesBackwards(t *testing.T) {
	checkLeaks(t)
	ctx := t.Context()
	reg1, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg1, "a", "web-1", "hello")
	early := time.Unix(1_000_000, 0)
	reg2, err := registry.New(registry.Options{Now: func() time.Time { return early }})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg2, "b", "web-2", "hello")
	var current atomic.Pointer[registry.Registry]
	current.Store(reg1)
	var log reqLog
	srv := httptest.NewServer(log.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		current.Load().ServeHTTP(w, r)
	})))
	defer srv.Close()
	defer reg2.ReleaseWaiters()
	c, err := client.New(srv.URL, client.Options{Wait: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	wctx, cancel := context.WithCancel(ctx)
	updates, done := startWatch(c.WatchTool(wctx, "hello"))
	defer func() { cancel(); <-done }()

	first := next(t, updates, "web-1", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-1") })
	current.Store(reg2)
	reg1.ReleaseWaiters()
	second := next(t, updates, "web-2", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-2") })
	if second.Index >= first.Index {
		t.Fatalf("index %d then %d: the test needs it to go backwards", first.Index, second.Index)
	}
	want := strconv.FormatUint(second.Index, 10)
	waitFor(t, "a blocking query with the new index", func() bool {
		return len(log.matching(func(r loggedReq) bool { return r.query.Get("index") == want })) > 0
	})
	register(t, reg2, "c", "web-3", "hello")
	next(t, updates, "web-3", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-3") })
}

// Errors other than 404 are yielded and retried; a 404 of WatchTools (a
// wrong URL) is an error too.
func TestWatchErrors(t *testing.T) {
	checkLeaks(t)
	var fail atomic.Int32
	fail.Store(3)
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg, "a", "web-1", "hello")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Add(-1) >= 0 {
			http.Error(w, `{"detail":"Internal Server Error"}`, http.StatusInternalServerError)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	defer reg.ReleaseWaiters()
	c, err := client.New(srv.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var errs []error
	for u, err := range c.WatchTools(ctx) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(u.Tools) != 1 {
			t.Errorf("tools = %+v", u.Tools)
		}
		break
	}
	var ae *client.APIError
	if len(errs) != 3 || !errors.As(errs[0], &ae) || ae.StatusCode != 500 {
		t.Errorf("errors = %v, want three 500s", errs)
	}

	bad, err := client.New(srv.URL+"/nowhere", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.CloseIdleConnections()
	for _, err := range bad.WatchTools(ctx) {
		if !errors.Is(err, client.ErrNotFound) {
			t.Errorf("WatchTools of a wrong URL: %v, want ErrNotFound", err)
		}
		break
	}
	// The route's 404 is not the protocol's "Tool not found".
	for u, err := range bad.WatchTool(ctx, "hello") {
		if !errors.Is(err, client.ErrNotFound) {
			t.Errorf("WatchTool of a wrong URL: %+v, %v; want ErrNotFound", u, err)
		}
		break
	}
}

// An agent that stops heartbeating expires at its deadline: the registry's
// Run wakes the watch then.
func TestWatchSeesExpiry(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "socket")
	reg := tr.start(registry.Options{})
	ctx := t.Context()
	reg.Register(ctx, registry.Registration{ID: "a", Name: "ops", Version: "1", Host: "web-1", HeartbeatInterval: 20 * time.Millisecond})
	reg.UpdateTools(ctx, "a", []json.RawMessage{toolJSON("hello", "x")})
	c := tr.client(client.Options{Wait: time.Minute})
	wctx, cancel := context.WithCancel(ctx)
	updates, done := startWatch(c.WatchTool(wctx, "hello"))
	defer func() { cancel(); <-done }()
	next(t, updates, "web-1", func(u client.ToolUpdate) bool { return u.Found })
	next(t, updates, "the tool gone", func(u client.ToolUpdate) bool { return !u.Found })
	if in, _, _ := reg.Instance(ctx, "a"); in.Active {
		t.Error("the watch saw the tool gone, but the instance is active")
	}
}

// A registry that answers blocking queries at once (shutting down, or
// without blocking queries) must not make the watch spin: it backs off.
func TestWatchBacksOffOnEarlyAnswers(t *testing.T) {
	checkLeaks(t)
	var log reqLog
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	register(t, reg, "a", "web-1", "hello")
	reg.ReleaseWaiters()
	srv := httptest.NewServer(log.wrap(reg))
	defer srv.Close()
	const minBackoff = 10 * time.Millisecond
	c, err := client.New(srv.URL, client.Options{Wait: time.Minute, MinBackoff: minBackoff, MaxBackoff: 4 * minBackoff})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	updates, done := startWatch(c.WatchTool(ctx, "hello"))
	defer func() { cancel(); <-done }()
	next(t, updates, "the first answer", func(u client.ToolUpdate) bool { return u.Found })
	start := time.Now()
	n0 := len(log.matching(func(loggedReq) bool { return true }))
	waitFor(t, "ten more requests", func() bool { return len(log.matching(func(loggedReq) bool { return true })) >= n0+10 })
	if elapsed := time.Since(start); elapsed < 9*minBackoff {
		t.Errorf("ten early answers in %v: the watch does not back off (at least %v each)", elapsed, minBackoff)
	}
	if extra := drain(updates); len(extra) != 0 {
		t.Errorf("unchanged early answers yielded: %+v", extra)
	}
}

func TestWatchStops(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			var log reqLog
			tr.wrap = log.wrap
			reg := tr.start(registry.Options{})
			register(t, reg, "a", "web-1", "hello")
			c := tr.client(client.Options{Wait: time.Minute})

			// Cancel while a blocking query is in flight.
			ctx, cancel := context.WithCancel(t.Context())
			updates, done := startWatch(c.WatchTool(ctx, "hello"))
			next(t, updates, "the first answer", func(u client.ToolUpdate) bool { return u.Found })
			waitFor(t, "a blocking query", func() bool { return len(log.matching(isInFlight(isBlocking("/tools/hello")))) == 1 })
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("the watch did not end with its context")
			}
			if extra := drain(updates); len(extra) != 0 {
				t.Errorf("yielded after cancel: %+v", extra)
			}

			// Break out of the loop.
			n := 0
			for _, err := range c.WatchTool(t.Context(), "hello") {
				if err != nil {
					t.Fatal(err)
				}
				n++
				break
			}
			if n != 1 {
				t.Errorf("%d iterations before break", n)
			}

			// Cancel while down and backing off.
			tr.stop()
			ctx, cancel = context.WithCancel(t.Context())
			updates, done = startWatch(c.WatchTool(ctx, "hello"))
			u := <-updates
			if u.err == nil {
				t.Fatalf("watch of a stopped registry yielded %+v", u.v)
			}
			cancel()
			<-done
		})
	}
}

// v1Writer hides the additions of this registry from its answers.
type v1Writer struct{ http.ResponseWriter }

func (w v1Writer) WriteHeader(code int) {
	w.Header().Del("X-Registry-Index")
	w.Header().Del("ETag")
	w.ResponseWriter.WriteHeader(code)
}

func (w v1Writer) Write(b []byte) (int, error) {
	w.Header().Del("X-Registry-Index")
	w.Header().Del("ETag")
	return w.ResponseWriter.Write(b)
}

// Against a v1 registry (no blocking queries, no index, no ETag) a watch
// polls with back-off and still sees changes.
func TestWatchPollsV1Registry(t *testing.T) {
	checkLeaks(t)
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("index")
		q.Del("wait")
		r.URL.RawQuery = q.Encode()
		polls.Add(1)
		reg.ServeHTTP(v1Writer{w}, r)
	}))
	defer srv.Close()
	c, err := client.New(srv.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(t.Context())
	updates, done := startWatch(c.WatchTool(ctx, "hello"))
	defer func() { cancel(); <-done }()
	next(t, updates, "not found", func(u client.ToolUpdate) bool { return !u.Found })
	waitFor(t, "polls", func() bool { return polls.Load() >= 5 })
	if extra := drain(updates); len(extra) != 0 {
		t.Errorf("unchanged polls yielded: %+v", extra)
	}
	register(t, reg, "a", "web-1", "hello")
	u := next(t, updates, "web-1", func(u client.ToolUpdate) bool { return u.Found })
	if u.Index != 0 {
		t.Errorf("index = %d, want 0 (none sent)", u.Index)
	}
}

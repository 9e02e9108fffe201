// watch_test.go tests watching: the X-Registry-Index and ETag headers of
// every read, If-None-Match, blocking queries (?index=N&wait=D), expiry
// waking waiters at the deadline, ReleaseWaiters and the GET /events stream.

package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// regIndex returns the X-Registry-Index of an answer, failing the test if
// it is missing or not an unsigned integer.
func regIndex(tb testing.TB, h http.Header) uint64 {
	tb.Helper()
	s := h.Get("X-Registry-Index")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		tb.Fatalf("X-Registry-Index = %q, want an unsigned integer", s)
	}
	return n
}

// indexAt GETs target (whatever its status) and returns its index.
func indexAt(h *harness, target string) uint64 {
	h.tb.Helper()
	return regIndex(h.tb, h.do("GET", target, "").Header())
}

// globalIndex is the index of GET /instances, which every change moves.
func globalIndex(h *harness) uint64 {
	h.tb.Helper()
	return indexAt(h, "/instances")
}

// withParams appends query parameters to target.
func withParams(target, params string) string {
	if strings.Contains(target, "?") {
		return target + "&" + params
	}
	return target + "?" + params
}

// watchFleet registers a (app on h1, deploy and build, heartbeat_interval
// 1s: it expires 3s after its last heartbeat), b (app on h2, build) and c
// (other on h3, no tools posted).
func watchFleet(h *harness) {
	h.tb.Helper()
	h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":1}`)
	h.postTools("a", `{"name":"deploy","x-command":"/deploy"}`, `{"name":"build"}`)
	h.register("b", "app", "h2")
	h.postTools("b", `{"name":"build","x-run-as":"ci"}`)
	h.register("c", "other", "h3")
}

// tick moves the clock half a second on and heartbeats ids: last_seen moves,
// nothing else does.
func tick(h *harness, ids ...string) {
	h.tb.Helper()
	h.clock.Advance(500 * time.Millisecond)
	for _, id := range ids {
		h.heartbeat(id)
	}
}

// watchReads are the reads whose indexes the change tests follow.
var watchReads = []string{
	"/instances", "/instances/a", "/instances/b", "/instances/c", "/instances/d",
	"/tools", "/tools/deploy", "/tools/build", "/tools/lint",
	"/hosts", "/export/superputty", "/export/mobaxterm",
	"/instances?active=true", "/tools?active=false", "/tools/deploy?active=false", "/hosts?active=false",
}

// TestIndexOnEveryRead: every read, 404s and exports included, carries
// X-Registry-Index (the index of the last change that affects it) and an
// ETag.
func TestIndexOnEveryRead(t *testing.T) {
	h := newHarness(t, registry.Options{})
	start := globalIndex(h)
	step := func(f func()) uint64 { f(); return globalIndex(h) }
	iA := step(func() {
		h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1"}`)
	})
	iAT := step(func() { h.postTools("a", `{"name":"deploy"}`, `{"name":"build"}`) })
	step(func() { h.register("b", "app", "h2") })
	iBT := step(func() { h.postTools("b", `{"name":"build"}`) })
	iC := step(func() { h.register("c", "other", "h3") })
	if !(start < iA && iA < iAT && iAT < iBT && iBT < iC) {
		t.Fatalf("global index does not increase with each change: %d %d %d %d %d", start, iA, iAT, iBT, iC)
	}

	tests := []struct {
		target string
		code   int
		want   uint64 // 0: any index up to the global one
	}{
		{"/instances", 200, iC},
		{"/instances?active=true&limit=1", 200, iC},
		{"/instances/a", 200, iAT},
		{"/instances/b", 200, iBT},
		{"/instances/c", 200, iC},
		{"/instances/nope", 404, 0},
		{"/tools", 200, iBT},
		{"/tools?active=false&limit=1", 200, iBT},
		{"/tools/deploy", 200, iAT},
		{"/tools/build", 200, iBT},
		{"/tools/deploy?host=h9", 404, iAT}, // the tool exists, not on h9
		{"/tools/nope", 404, 0},
		{"/hosts", 200, iC},
		{"/hosts?limit=1", 200, iC},
		{"/export/superputty", 200, iC},
		{"/export/mobaxterm?user=ops", 200, iC},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := h.do("GET", tt.target, "")
			if rec.Code != tt.code {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tt.code, rec.Body)
			}
			got := regIndex(t, rec.Header())
			if tt.want != 0 && got != tt.want {
				t.Errorf("X-Registry-Index = %d, want %d (the last change that affects it)", got, tt.want)
			}
			if got > iC {
				t.Errorf("X-Registry-Index = %d, above the global index %d", got, iC)
			}
			if rec.Header().Get("ETag") == "" {
				t.Errorf("no ETag")
			}
		})
	}
}

// TestIndexMonotonic runs every kind of change and checks after each that
// the global index moved on, that no read's index went back, and that none
// is above the global one; heartbeats move nothing.
func TestIndexMonotonic(t *testing.T) {
	h := newHarness(t, registry.Options{RetainInactive: 10 * time.Second})
	steps := []struct {
		name   string
		change bool
		do     func()
	}{
		{"register a", true, func() { h.register("a", "app", "h1") }},
		{"tools a", true, func() { h.postTools("a", `{"name":"deploy"}`) }},
		{"register b", true, func() { h.register("b", "app", "h2") }},
		{"heartbeat a", false, func() { tick(h, "a") }},
		{"tools b", true, func() { h.postTools("b", `{"name":"deploy"}`, `{"name":"lint"}`) }},
		{"heartbeat with system", false, func() {
			h.must(http.StatusOK, "POST", "/instances/b/heartbeat", `{"system":{"load":1}}`)
		}},
		{"deregister a", true, func() { h.deregister("a") }},
		{"deregister a again", false, func() { h.deregister("a") }},
		{"revive a", true, func() { h.heartbeat("a") }},
		{"expire both", true, func() {
			h.clock.Advance(91 * time.Second)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete both", true, func() {
			h.clock.Advance(11 * time.Second)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
		{"register a again", true, func() { h.register("a", "app", "h1") }},
	}
	last := map[string]uint64{}
	global := globalIndex(h)
	for _, s := range steps {
		s.do()
		g := globalIndex(h)
		switch {
		case s.change && g <= global:
			t.Errorf("%s: global index %d, want above %d", s.name, g, global)
		case !s.change && g != global:
			t.Errorf("%s: global index %d, want %d (not a change)", s.name, g, global)
		}
		global = g
		for _, target := range watchReads {
			got := indexAt(h, target)
			if got < last[target] {
				t.Errorf("%s: %s index went back from %d to %d", s.name, target, last[target], got)
			}
			if got > g {
				t.Errorf("%s: %s index %d above the global index %d", s.name, target, got, g)
			}
			last[target] = got
		}
	}
}

// TestIndexHeartbeat: a heartbeat of an active instance is not a change: no
// index moves, but the ETags of the answers that show last_seen or system do.
func TestIndexHeartbeat(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		beat  func(h *harness)
	}{
		{"last_seen moves", watchFleet, func(h *harness) { tick(h, "a") }},
		{"system changes, clock stopped", watchFleet, func(h *harness) {
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"load":0.5}}`)
		}},
		{"streamed listing", func(h *harness) { watchFleet(h); bigFleet(h, 0) }, func(h *harness) { tick(h, "a") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			reads := []string{"/instances", "/instances/a", "/instances?active=true", "/tools", "/tools/deploy", "/hosts", "/export/superputty"}
			before := map[string]*httptest.ResponseRecorder{}
			for _, target := range reads {
				before[target] = h.must(http.StatusOK, "GET", target, "")
			}
			tt.beat(h)
			for _, target := range reads {
				rec := h.must(http.StatusOK, "GET", target, "")
				if got, want := regIndex(t, rec.Header()), regIndex(t, before[target].Header()); got != want {
					t.Errorf("%s: index moved from %d to %d on a heartbeat", target, want, got)
				}
				old, etag := before[target].Header().Get("ETag"), rec.Header().Get("ETag")
				changed := !bytes.Equal(before[target].Body.Bytes(), rec.Body.Bytes())
				if wantChanged := strings.HasPrefix(target, "/instances"); changed != wantChanged {
					t.Fatalf("%s: body changed = %v, want %v (test setup)", target, changed, wantChanged)
				}
				if changed && etag == old {
					t.Errorf("%s: the body changed but the ETag %s did not", target, etag)
				}
				if !changed && etag != old {
					t.Errorf("%s: ETag changed from %s to %s with the same body", target, old, etag)
				}
			}
		})
	}
}

// bigFleet registers instances big-0… whose records together pass 1 MiB,
// so that GET /instances streams (and /tools too if distinct is set: each
// instance then offers a tool of its own).
func bigFleet(h *harness, distinct int) {
	h.tb.Helper()
	desc := strings.Repeat("x", 8<<10)
	for i := range 160 {
		id := fmt.Sprintf("big-%03d", i)
		name := "big"
		if distinct > 0 {
			name = fmt.Sprintf("big-%03d", i%distinct)
		}
		if err := h.reg.Register(h.tb.Context(), registry.Registration{ID: id, Name: "bulk", Version: "1", Host: id}); err != nil {
			h.tb.Fatal(err)
		}
		tool := json.RawMessage(`{"name":"` + name + `","description":"` + desc + `"}`)
		if err := h.reg.UpdateTools(h.tb.Context(), id, []json.RawMessage{tool}); err != nil {
			h.tb.Fatal(err)
		}
	}
	if n := h.must(http.StatusOK, "GET", "/instances", "").Body.Len(); n <= 1<<20 {
		h.tb.Fatalf("GET /instances is %d bytes, want more than 1 MiB", n)
	}
}

// TestIndexChangeKinds makes one change of each kind and checks which reads
// it moves (to the index of the change) and which it leaves alone.
func TestIndexChangeKinds(t *testing.T) {
	all := []string{"/instances", "/instances/a", "/instances/b", "/instances/c", "/tools", "/tools/deploy", "/tools/build", "/hosts"}
	deactivate := []string{"/instances", "/instances/a", "/hosts", "/tools", "/tools/deploy", "/tools/build",
		"/export/superputty", "/export/mobaxterm", "/instances?active=true"}
	tests := []struct {
		name   string
		opts   registry.Options
		before func(h *harness)
		change func(h *harness)
		moved  []string // move to the index of the change
		still  []string // keep their index
	}{
		{
			name:   "heartbeat",
			change: func(h *harness) { tick(h, "a", "b", "c") },
			still:  append(all, "/export/superputty", "/instances?active=true"),
		},
		{
			name:   "registration",
			change: func(h *harness) { h.register("d", "app", "h4") },
			moved:  []string{"/instances", "/instances/d", "/hosts", "/export/superputty", "/export/mobaxterm"},
			still:  []string{"/instances/a", "/instances/b", "/tools", "/tools/deploy", "/tools/build"},
		},
		{
			name:   "registration again drops the tool list",
			change: func(h *harness) { h.register("a", "app", "h1") },
			moved:  []string{"/instances", "/instances/a", "/hosts", "/tools", "/tools/deploy", "/tools/build"},
			still:  []string{"/instances/b", "/instances/c"},
		},
		{
			name:   "tool list",
			change: func(h *harness) { h.postTools("c", `{"name":"deploy"}`) },
			moved:  []string{"/instances", "/instances/c", "/hosts", "/tools", "/tools/deploy"},
			still:  []string{"/instances/a", "/instances/b", "/tools/build"},
		},
		{
			name:   "tool list with another tool",
			change: func(h *harness) { h.postTools("c", `{"name":"lint"}`) },
			moved:  []string{"/instances", "/instances/c", "/tools", "/tools/lint"},
			still:  []string{"/instances/a", "/tools/deploy", "/tools/build"},
		},
		{
			name:   "deregistration",
			change: func(h *harness) { h.deregister("a") },
			moved:  deactivate,
			still:  []string{"/instances/b", "/instances/c"},
		},
		{
			name: "expiry",
			change: func(h *harness) {
				h.clock.Advance(3*time.Second + time.Millisecond) // a's deadline, not the others'
				if err := h.reg.Purge(h.tb.Context()); err != nil {
					h.tb.Fatal(err)
				}
			},
			moved: deactivate,
			still: []string{"/instances/b", "/instances/c"},
		},
		{
			name:   "revival",
			before: func(h *harness) { h.deregister("a"); h.clock.Advance(time.Second) },
			change: func(h *harness) { h.heartbeat("a") },
			moved:  deactivate,
			still:  []string{"/instances/b", "/instances/c"},
		},
		{
			name:   "deletion",
			opts:   registry.Options{RetainInactive: 10 * time.Second},
			before: func(h *harness) { h.deregister("a") },
			change: func(h *harness) {
				h.clock.Advance(11 * time.Second)
				if err := h.reg.Purge(h.tb.Context()); err != nil {
					h.tb.Fatal(err)
				}
			},
			moved: []string{"/instances", "/instances/a", "/hosts?active=false", "/tools?active=false",
				"/tools/deploy?active=false", "/tools/build?active=false"},
			still: []string{"/instances/b", "/instances/c"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts)
			watchFleet(h)
			if tt.before != nil {
				tt.before(h)
			}
			idx := map[string]uint64{}
			for _, target := range append(tt.moved, tt.still...) {
				idx[target] = indexAt(h, target)
			}
			g := globalIndex(h)
			tt.change(h)
			g2 := globalIndex(h)
			if tt.moved == nil && g2 != g {
				t.Errorf("global index moved from %d to %d", g, g2)
			}
			if tt.moved != nil && g2 != g+1 {
				t.Errorf("global index moved from %d to %d, want one change", g, g2)
			}
			for _, target := range tt.moved {
				if got := indexAt(h, target); got != g2 {
					t.Errorf("%s: index %d (was %d), want %d: the index of the change", target, got, idx[target], g2)
				}
			}
			for _, target := range tt.still {
				if got := indexAt(h, target); got != idx[target] {
					t.Errorf("%s: index moved from %d to %d", target, idx[target], got)
				}
			}
		})
	}
}

// answered is the answer to a request served in a goroutine.
type answered struct {
	rec  *httptest.ResponseRecorder
	took time.Duration
}

// getAsync serves GET target in a goroutine and returns the channel of its
// answer.
func getAsync(h http.Handler, target string) <-chan answered {
	req := httptest.NewRequest("GET", target, nil)
	ch := make(chan answered, 1)
	go func() {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		ch <- answered{rec, time.Since(start)}
	}()
	return ch
}

// await receives an answer within d, failing the test if there is none.
func await(tb testing.TB, ch <-chan answered, d time.Duration, what string) answered {
	tb.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(d):
		tb.Fatalf("%s: no answer within %v", what, d)
		return answered{}
	}
}

// TestBlockingQuery parks a blocking query, makes changes that do not
// concern its answer (it must not answer; a short-wait query sent meanwhile
// answers after its wait with the same index), then one that does: the
// query answers at once with the new index and body.
func TestBlockingQuery(t *testing.T) {
	heartbeats := func(h *harness) {
		tick(h, "a", "b")
		h.must(http.StatusOK, "POST", "/instances/c/heartbeat", `{"system":{"load":1}}`)
	}
	tests := []struct {
		target         string
		codeBefore     int
		unrelated      func(h *harness)
		change         func(h *harness)
		codeAfter      int
		bodyAfterHas   string
		bodyAfterLacks string
	}{
		{
			target:     "/tools/deploy",
			codeBefore: 200,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.postTools("c", `{"name":"lint"}`)        // another tool
				h.register("d", "app", "h4")               // no tools
				h.postTools("b", `{"name":"build","v":2}`) // another tool's instances
				h.deregister("c")                          // an instance without deploy
				h.postTools("d", `{"name":"other"}`)       // yet another tool
				// deploy's instance changes only its other tools
				h.postTools("a", `{"name":"deploy","x-command":"/deploy"}`, `{"name":"build","v":2}`, `{"name":"lint"}`)
				h.must(http.StatusOK, "DELETE", "/instances/nobody", "")
			},
			change:       func(h *harness) { h.postTools("b", `{"name":"build"}`, `{"name":"deploy","x-command":"/b"}`) },
			codeAfter:    200,
			bodyAfterHas: `"/b"`,
		},
		{
			target:     "/tools/build",
			codeBefore: 200,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.postTools("c", `{"name":"lint"}`)
				h.register("d", "app", "h4")
			},
			change:         func(h *harness) { h.deregister("b") },
			codeAfter:      200,
			bodyAfterLacks: `"h2"`,
		},
		{
			target:     "/tools",
			codeBefore: 200,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.register("d", "app", "h4")
			},
			change:       func(h *harness) { h.postTools("c", `{"name":"lint"}`) },
			codeAfter:    200,
			bodyAfterHas: `"lint"`,
		},
		{
			target:     "/tools/lint",
			codeBefore: 404,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.postTools("c", `{"name":"deploy"}`)
				h.register("d", "app", "h4")
			},
			change:       func(h *harness) { h.postTools("c", `{"name":"lint"}`) },
			codeAfter:    200,
			bodyAfterHas: `"lint"`,
		},
		{
			target:     "/tools/ops%2Fdeploy", // an escaped "/" stays in the name
			codeBefore: 404,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.postTools("c", `{"name":"ops"}`, `{"name":"deploy"}`)
			},
			change:       func(h *harness) { h.postTools("c", `{"name":"ops/deploy","x-command":"/ops"}`) },
			codeAfter:    200,
			bodyAfterHas: `"/ops"`,
		},
		{
			target:     "/instances/a",
			codeBefore: 200,
			unrelated: func(h *harness) {
				heartbeats(h)
				h.deregister("b")
				h.register("d", "app", "h4")
				h.postTools("c", `{"name":"deploy"}`)
			},
			change:       func(h *harness) { h.postTools("a", `{"name":"release"}`) },
			codeAfter:    200,
			bodyAfterHas: `"release"`,
		},
		{
			target:       "/instances/d",
			codeBefore:   404,
			unrelated:    func(h *harness) { heartbeats(h); h.register("e", "app", "h5") },
			change:       func(h *harness) { h.register("d", "app", "h4") },
			codeAfter:    200,
			bodyAfterHas: `"h4"`,
		},
		{
			target:       "/instances",
			codeBefore:   200,
			unrelated:    heartbeats,
			change:       func(h *harness) { h.register("d", "app", "h4") },
			codeAfter:    200,
			bodyAfterHas: `"h4"`,
		},
		{
			target:         "/hosts",
			codeBefore:     200,
			unrelated:      heartbeats,
			change:         func(h *harness) { h.deregister("b") },
			codeAfter:      200,
			bodyAfterLacks: `"h2"`,
		},
		{
			target:       "/export/superputty",
			codeBefore:   200,
			unrelated:    heartbeats,
			change:       func(h *harness) { h.register("d", "app", "h4") },
			codeAfter:    200,
			bodyAfterHas: `h4`,
		},
		{
			target:       "/export/mobaxterm",
			codeBefore:   200,
			unrelated:    heartbeats,
			change:       func(h *harness) { h.register("d", "app", "h4") },
			codeAfter:    200,
			bodyAfterHas: `h4`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, registry.Options{})
			t.Cleanup(h.reg.ReleaseWaiters)
			watchFleet(h)
			rec := h.do("GET", tt.target, "")
			if rec.Code != tt.codeBefore {
				t.Fatalf("before: status %d, want %d", rec.Code, tt.codeBefore)
			}
			n := regIndex(t, rec.Header())
			long := getAsync(h.h, withParams(tt.target, fmt.Sprintf("index=%d&wait=30s", n)))
			const short = 300 * time.Millisecond
			shortCh := getAsync(h.h, withParams(tt.target, fmt.Sprintf("index=%d&wait=%v", n, short)))
			tt.unrelated(h)

			s := await(t, shortCh, 10*time.Second, "short wait")
			if s.took < short {
				t.Errorf("short wait: answered after %v, before its wait of %v (woken by an unrelated change?)", s.took, short)
			}
			if got := regIndex(t, s.rec.Header()); got != n {
				t.Errorf("short wait: index %d, want %d: unrelated changes moved it", got, n)
			}
			if s.rec.Code != tt.codeBefore {
				t.Errorf("short wait: status %d, want %d", s.rec.Code, tt.codeBefore)
			}
			select {
			case a := <-long:
				t.Fatalf("answered after unrelated changes only: status %d, index %s",
					a.rec.Code, a.rec.Header().Get("X-Registry-Index"))
			default:
			}

			tt.change(h)
			changed := time.Now()
			a := await(t, long, 5*time.Second, "after the change")
			if d := time.Since(changed); d > 2*time.Second {
				t.Errorf("answered %v after the change", d)
			}
			got := regIndex(t, a.rec.Header())
			if want := indexAt(h, tt.target); got != want || got <= n {
				t.Errorf("index %d, want %d (the change's), above %d", got, want, n)
			}
			if a.rec.Code != tt.codeAfter {
				t.Errorf("status %d, want %d (body %s)", a.rec.Code, tt.codeAfter, a.rec.Body)
			}
			body := a.rec.Body.String()
			if tt.bodyAfterHas != "" && !strings.Contains(body, tt.bodyAfterHas) {
				t.Errorf("body %s lacks %s", body, tt.bodyAfterHas)
			}
			if tt.bodyAfterLacks != "" && strings.Contains(body, tt.bodyAfterLacks) {
				t.Errorf("body %s still has %s", body, tt.bodyAfterLacks)
			}
			if fresh := h.do("GET", tt.target, ""); fresh.Body.String() != body {
				t.Errorf("woken answer %s differs from a plain read %s", body, fresh.Body)
			}
		})
	}
}

// TestBlockingIndexAboveCurrent: an index above the current one waits for
// the whole wait, even across changes that do not reach it.
func TestBlockingIndexAboveCurrent(t *testing.T) {
	for _, target := range []string{"/instances", "/tools/deploy", "/instances/a"} {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, registry.Options{})
			t.Cleanup(h.reg.ReleaseWaiters)
			watchFleet(h)
			n := indexAt(h, target)
			const wait = 300 * time.Millisecond
			ch := getAsync(h.h, withParams(target, fmt.Sprintf("index=%d&wait=%v", n+1000, wait)))
			h.postTools("a", `{"name":"deploy","v":2}`) // moves all three, to n+1 or so
			a := await(t, ch, 10*time.Second, "above the current index")
			if a.took < wait {
				t.Errorf("answered after %v, before the wait of %v", a.took, wait)
			}
			if got, want := regIndex(t, a.rec.Header()), indexAt(h, target); got != want {
				t.Errorf("index %d, want the current %d", got, want)
			}
		})
	}
}

// TestBlockingWaitRealTime: wait= takes a Go duration or a bare number of
// seconds; the answer comes after the wait plus at most 1/16 of jitter.
func TestBlockingWaitRealTime(t *testing.T) {
	tests := []struct {
		wait string
		want time.Duration
	}{
		{"1s", time.Second},
		{"1", time.Second},
		{"0.5", 500 * time.Millisecond},
		{"750ms", 750 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run("wait="+tt.wait, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, registry.Options{})
			t.Cleanup(h.reg.ReleaseWaiters)
			watchFleet(h)
			n := indexAt(h, "/tools/deploy")
			start := time.Now()
			rec := h.must(http.StatusOK, "GET", fmt.Sprintf("/tools/deploy?index=%d&wait=%s", n, tt.wait), "")
			took := time.Since(start)
			const slack = 500 * time.Millisecond
			if took < tt.want || took >= tt.want+tt.want/16+slack {
				t.Errorf("answered after %v, want [%v, %v)", took, tt.want, tt.want+tt.want/16+slack)
			}
			if got := regIndex(t, rec.Header()); got != n {
				t.Errorf("index %d, want %d", got, n)
			}
		})
	}
	t.Run("wait without index", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, registry.Options{})
		watchFleet(h)
		start := time.Now()
		h.must(http.StatusOK, "GET", "/tools/deploy?wait=5m", "")
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("answered after %v: wait without index must not block", took)
		}
	})
}

// TestBlockingWaitLimits runs blocking queries in a synctest bubble, whose
// clock advances only when everything waits: the default wait, the clamp
// at MaxWait and the jitter bound are exact.
func TestBlockingWaitLimits(t *testing.T) {
	tests := []struct {
		params string
		want   time.Duration
	}{
		{"", registry.DefaultWait},
		{"&wait=0", 0},
		{"&wait=1", time.Second},
		{"&wait=2.5", 2500 * time.Millisecond},
		{"&wait=90s", 90 * time.Second},
		{"&wait=5m", registry.MaxWait},
		{"&wait=10m", registry.MaxWait},
		{"&wait=1h", registry.MaxWait},
		{"&wait=3600", registry.MaxWait},
	}
	for _, tt := range tests {
		t.Run("index=N"+tt.params, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				// Intervals of a day: nothing expires during the waits.
				h := newHarness(t, registry.Options{Now: time.Now, HeartbeatInterval: 24 * time.Hour})
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"deploy"}`)
				h.register("b", "app", "h2")
				for _, target := range []string{"/tools/deploy", "/instances", "/tools/nope"} {
					n := indexAt(h, target)
					start := time.Now()
					rec := h.do("GET", withParams(target, fmt.Sprintf("index=%d", n))+tt.params, "")
					took := time.Since(start)
					if took < tt.want || took > tt.want+tt.want/16 {
						t.Errorf("%s: answered after %v, want [%v, %v]", target, took, tt.want, tt.want+tt.want/16)
					}
					if got := regIndex(t, rec.Header()); got != n {
						t.Errorf("%s: index %d, want %d", target, got, n)
					}
				}
			})
		})
	}
}

// TestBlockingBadParams: a bad index or wait is a 422 naming the parameter,
// on every read, at once.
func TestBlockingBadParams(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet(h)
	tests := []struct {
		params string
		loc    []string
	}{
		{"index=abc", []string{"query", "index"}},
		{"index=-1", []string{"query", "index"}},
		{"index=1.5", []string{"query", "index"}},
		{"index=18446744073709551616", []string{"query", "index"}}, // 2^64
		{"index=1&wait=abc", []string{"query", "wait"}},
		{"index=1&wait=-1s", []string{"query", "wait"}},
		{"index=1&wait=-1", []string{"query", "wait"}},
		{"index=1&wait=10x", []string{"query", "wait"}},
		{"index=1&wait=1s2", []string{"query", "wait"}},
	}
	targets := []string{"/instances", "/instances/a", "/instances/nope", "/tools", "/tools/deploy", "/tools/nope",
		"/hosts", "/export/superputty", "/export/mobaxterm"}
	for _, tt := range tests {
		for _, target := range targets {
			t.Run(tt.params+" "+target, func(t *testing.T) {
				start := time.Now()
				rec := h.do("GET", withParams(target, tt.params), "")
				if diff := cmp.Diff([][]string{tt.loc}, detailLocs(t, rec)); diff != "" {
					t.Errorf("422 locs mismatch (-want +got):\n%s", diff)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("a bad query waited %v", took)
				}
			})
		}
	}
}

// TestBlockingExpiryWakesWaiter: with Run running and a real clock, an
// instance registered with heartbeat_interval 1 expires 3 s later, and
// waiters on its tool and on itself answer then, not at the next sweep.
func TestBlockingExpiryWakesWaiter(t *testing.T) {
	t.Parallel()
	h := newHarness(t, registry.Options{Now: time.Now})
	t.Cleanup(h.reg.ReleaseWaiters)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- h.reg.Run(ctx) }()
	defer func() { cancel(); <-done }()

	h.register("b", "app", "h2") // a long-lived instance: the registry is not empty
	before := time.Now()
	h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":1}`)
	h.postTools("a", `{"name":"deploy"}`)
	after := time.Now()
	const ttl = 3 * time.Second

	targets := []string{"/tools/deploy", "/instances/a", "/tools"}
	chans := map[string]<-chan answered{}
	idx := map[string]uint64{}
	for _, target := range targets {
		idx[target] = indexAt(h, target)
		chans[target] = getAsync(h.h, withParams(target, fmt.Sprintf("index=%d&wait=30s", idx[target])))
	}
	for _, target := range targets {
		a := await(t, chans[target], 15*time.Second, target)
		at := time.Now()
		if at.Sub(before) < ttl {
			t.Errorf("%s: answered %v after the registration, before the deadline (%v)", target, at.Sub(before), ttl)
		}
		if late := at.Sub(after) - ttl; late > 2*time.Second {
			t.Errorf("%s: answered %v after the deadline", target, late)
		}
		if got := regIndex(t, a.rec.Header()); got <= idx[target] {
			t.Errorf("%s: index %d, want above %d", target, got, idx[target])
		}
		switch target {
		case "/tools/deploy":
			if a.rec.Code != http.StatusNotFound {
				t.Errorf("%s: status %d, want 404 (no active instance offers it)", target, a.rec.Code)
			}
		case "/instances/a":
			if !strings.Contains(a.rec.Body.String(), `"active":false`) {
				t.Errorf("%s: %s, want inactive", target, a.rec.Body)
			}
		case "/tools":
			checkJSON(t, a.rec, http.StatusOK, `[]`)
		}
	}
}

// TestBlockingExpiryAtDeadline: the same in a synctest bubble, where
// time is exact: the waiter answers at the deadline, also when a heartbeat
// moved the deadline or a later registration has an earlier one.
func TestBlockingExpiryAtDeadline(t *testing.T) {
	tests := []struct {
		name   string
		before func(h *harness) // from the registration of a, at 0s
		want   time.Duration    // when /tools/deploy's waiter answers
	}{
		{"deadline", nil, 3 * time.Second},
		{"heartbeat moves the deadline", func(h *harness) {
			time.Sleep(2 * time.Second)
			h.heartbeat("a")
		}, 5 * time.Second},
		{"later registration, earlier deadline", func(h *harness) {
			time.Sleep(time.Second)
			h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"b","name":"app","version":"1","host":"h2","heartbeat_interval":0.1}`)
			h.postTools("b", `{"name":"deploy"}`)
		}, time.Second + 300*time.Millisecond},
		{"revived", func(h *harness) {
			time.Sleep(time.Second)
			h.deregister("a")
			time.Sleep(time.Second)
			h.heartbeat("a")
		}, 5 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newHarness(t, registry.Options{Now: time.Now})
				ctx, cancel := context.WithCancel(t.Context())
				done := make(chan error, 1)
				go func() { done <- h.reg.Run(ctx) }()
				defer func() { cancel(); <-done }()

				start := time.Now()
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":10}`)
				h.postTools("a", `{"name":"deploy"}`)
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":1}`)
				h.postTools("a", `{"name":"deploy"}`)
				if tt.before != nil {
					tt.before(h)
				}
				n := indexAt(h, "/tools/deploy")
				rec := h.do("GET", fmt.Sprintf("/tools/deploy?index=%d&wait=5m", n), "")
				if took := time.Since(start); took < tt.want || took > tt.want+time.Millisecond {
					t.Errorf("answered %v after the registration, want %v", took, tt.want)
				}
				if got := regIndex(t, rec.Header()); got <= n {
					t.Errorf("index %d, want above %d", got, n)
				}
			})
		})
	}
}

// TestBlockingReleaseWaiters: ReleaseWaiters answers every blocking query
// at once, ends event streams, and later blocking queries do not wait;
// everything else keeps working.
func TestBlockingReleaseWaiters(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet(h)
	ts := httptest.NewServer(h.reg)
	t.Cleanup(ts.Close)
	stream := openEvents(t, ts.URL, "")

	targets := []string{"/instances", "/instances/a", "/instances/nope", "/tools", "/tools/deploy", "/tools/nope",
		"/hosts", "/export/superputty", "/instances?limit=1"}
	chans := map[string]<-chan answered{}
	idx := map[string]uint64{}
	code := map[string]int{}
	for _, target := range targets {
		rec := h.do("GET", target, "")
		idx[target], code[target] = regIndex(t, rec.Header()), rec.Code
		chans[target] = getAsync(h.h, withParams(target, fmt.Sprintf("index=%d&wait=5m", idx[target])))
	}
	// None answers before the release, even given the time of a short wait.
	short := getAsync(h.h, fmt.Sprintf("/instances?index=%d&wait=200ms", idx["/instances"]))
	await(t, short, 10*time.Second, "short wait")
	for _, target := range targets {
		select {
		case <-chans[target]:
			t.Fatalf("%s answered before ReleaseWaiters", target)
		default:
		}
	}

	h.reg.ReleaseWaiters()
	released := time.Now()
	for _, target := range targets {
		a := await(t, chans[target], 5*time.Second, target)
		if a.rec.Code != code[target] {
			t.Errorf("%s: status %d, want %d", target, a.rec.Code, code[target])
		}
		if got := regIndex(t, a.rec.Header()); got != idx[target] {
			t.Errorf("%s: index %d, want %d", target, got, idx[target])
		}
	}
	if d := time.Since(released); d > 2*time.Second {
		t.Errorf("waiters answered %v after ReleaseWaiters", d)
	}
	if _, ok := stream.next(t, 5*time.Second); ok {
		t.Errorf("the event stream sent an event after ReleaseWaiters, want its end")
	}

	// Later: blocking queries and streams do not wait.
	for _, target := range targets {
		start := time.Now()
		h.do("GET", withParams(target, fmt.Sprintf("index=%d&wait=5m", idx[target])), "")
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s after ReleaseWaiters: answered after %v", target, d)
		}
	}
	later := openEvents(t, ts.URL, "")
	if _, ok := later.next(t, 5*time.Second); ok {
		t.Errorf("an event stream opened after ReleaseWaiters sent an event, want its end")
	}
	h.register("d", "app", "h4")
	if got := indexAt(h, "/instances/d"); got <= idx["/instances"] {
		t.Errorf("a registration after ReleaseWaiters: index %d, want above %d", got, idx["/instances"])
	}
}

// TestETag: If-None-Match with the ETag of an answer (also weak, in a list,
// or *) answers 304 with no body; after a change of the body, the same
// header gets 200 and a new ETag.
func TestETag(t *testing.T) {
	tests := []struct {
		target string
		setup  func(h *harness)
		change func(h *harness)
	}{
		{"/instances", watchFleet, func(h *harness) { tick(h, "b") }},
		{"/instances?limit=1", watchFleet, func(h *harness) { tick(h, "a") }},
		{"/instances/a", watchFleet, func(h *harness) { tick(h, "a") }},
		{"/tools", watchFleet, func(h *harness) { h.postTools("c", `{"name":"lint"}`) }},
		{"/tools?active=false", watchFleet, func(h *harness) { h.deregister("b"); h.postTools("b") }},
		{"/tools/deploy", watchFleet, func(h *harness) { h.postTools("c", `{"name":"deploy"}`) }},
		{"/tools/deploy?host=h1", watchFleet, func(h *harness) { h.postTools("a", `{"name":"deploy","description":"new"}`) }},
		{"/hosts", watchFleet, func(h *harness) { h.register("d", "app", "h4") }},
		{"/export/superputty", watchFleet, func(h *harness) { h.register("d", "app", "h4") }},
		{"/export/mobaxterm?user=ops", watchFleet, func(h *harness) { h.deregister("c") }},
		{"/instances (streamed)", func(h *harness) { bigFleet(h, 0); watchFleet(h) }, func(h *harness) { tick(h, "big-007") }},
		{"/tools (streamed)", func(h *harness) { bigFleet(h, 160); watchFleet(h) }, func(h *harness) { h.deregister("big-100") }},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			target, _, _ := strings.Cut(tt.target, " ")
			first := h.must(http.StatusOK, "GET", target, "")
			etag := first.Header().Get("ETag")
			if etag == "" {
				t.Fatal("no ETag")
			}
			n := regIndex(t, first.Header())
			for _, inm := range []string{etag, "W/" + strings.TrimPrefix(etag, "W/"), `"nope", ` + etag, "*"} {
				rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", inm) })
				if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
					t.Errorf("If-None-Match: %s: status %d with %d body bytes, want 304 with none", inm, rec.Code, rec.Body.Len())
				}
				if got := rec.Header().Get("ETag"); got != etag {
					t.Errorf("If-None-Match: %s: ETag %s, want %s", inm, got, etag)
				}
				if got := regIndex(t, rec.Header()); got != n {
					t.Errorf("If-None-Match: %s: index %d, want %d", inm, got, n)
				}
			}
			rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", `"nope"`) })
			if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), first.Body.Bytes()) {
				t.Errorf("If-None-Match of another ETag: status %d, want 200 with the same body", rec.Code)
			}

			tt.change(h)
			rec = h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", etag) })
			if rec.Code != http.StatusOK {
				t.Fatalf("after a change: status %d, want 200", rec.Code)
			}
			if bytes.Equal(rec.Body.Bytes(), first.Body.Bytes()) {
				t.Fatalf("after a change: same body (test setup)")
			}
			etag2 := rec.Header().Get("ETag")
			if etag2 == "" || etag2 == etag {
				t.Errorf("after a change: ETag %q, want a new one (was %s)", etag2, etag)
			}
			if rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", etag2) }); rec.Code != http.StatusNotModified {
				t.Errorf("If-None-Match with the new ETag: status %d, want 304", rec.Code)
			}
		})
	}
}

// TestETagNotFound: preconditions do not apply to a 404 (RFC 9110 13.2.1):
// it keeps its body whatever If-None-Match says.
func TestETagNotFound(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet(h)
	for _, target := range []string{"/tools/nope", "/instances/nope", "/tools/deploy?host=h9"} {
		first := h.do("GET", target, "")
		for _, inm := range []string{first.Header().Get("ETag"), "*"} {
			rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", inm) })
			checkDetailString(t, rec, http.StatusNotFound)
			if got := regIndex(t, rec.Header()); got != regIndex(t, first.Header()) {
				t.Errorf("%s: index %d, want %d", target, got, regIndex(t, first.Header()))
			}
		}
	}
}

// TestETagIdentifiesBody makes random changes, heartbeats, clock moves and
// purges, and checks after each that no read ever showed two bodies under
// one ETag.
func TestETagIdentifiesBody(t *testing.T) {
	h := newHarness(t, registry.Options{RetainInactive: 20 * time.Second})
	reads := []string{"/instances", "/instances/i0", "/instances/i3", "/tools", "/tools?active=false",
		"/tools/t0", "/tools/t1?active=false", "/tools/t2?host=h1", "/hosts", "/hosts?active=false", "/export/mobaxterm"}
	seen := map[string]map[string]string{} // target → ETag → body
	rng := rand.New(rand.NewPCG(1, 1))
	for step := range 400 {
		id := fmt.Sprintf("i%d", rng.IntN(5))
		switch rng.IntN(7) {
		case 0:
			h.must(http.StatusCreated, "POST", "/instances",
				fmt.Sprintf(`{"instance_id":%q,"name":"app","version":"1","host":"h%d","heartbeat_interval":%d}`, id, rng.IntN(3), 1+rng.IntN(3)))
		case 1:
			var tools []string
			for _, k := range rng.Perm(4)[:rng.IntN(4)] {
				tools = append(tools, fmt.Sprintf(`{"name":"t%d","v":%d}`, k, rng.IntN(2)))
			}
			h.do("POST", "/instances/"+id+"/tools", toolsBody(tools...))
		case 2, 3:
			h.do("POST", "/instances/"+id+"/heartbeat", fmt.Sprintf(`{"system":{"n":%d}}`, rng.IntN(2)))
		case 4:
			h.deregister(id)
		case 5:
			h.clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond)
		case 6:
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
		for _, target := range reads {
			rec := h.do("GET", target, "")
			etag := rec.Header().Get("ETag")
			if seen[target] == nil {
				seen[target] = map[string]string{}
			}
			if old, ok := seen[target][etag]; ok && old != rec.Body.String() {
				t.Fatalf("step %d: %s: ETag %s names two bodies:\n%s\n%s", step, target, etag, old, rec.Body)
			}
			seen[target][etag] = rec.Body.String()
		}
	}
}

// TestIndexNotInLink: a page's Link header does not carry index or wait, so
// following it does not block.
func TestIndexNotInLink(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet(h)
	h.register("d", "app", "h4")
	h.postTools("d", `{"name":"lint"}`)
	for _, target := range []string{"/instances", "/tools", "/hosts"} {
		t.Run(target, func(t *testing.T) {
			n := indexAt(h, target)
			rec := h.must(http.StatusOK, "GET", fmt.Sprintf("%s?limit=1&index=%d&wait=1s", target, n-1), "")
			m := linkRE.FindStringSubmatch(rec.Header().Get("Link"))
			if m == nil {
				t.Fatalf("Link %q, want <…>; rel=\"next\"", rec.Header().Get("Link"))
			}
			vals, err := url.ParseQuery(strings.TrimPrefix(m[1], "?"))
			if err != nil {
				t.Fatal(err)
			}
			if vals.Has("index") || vals.Has("wait") || !vals.Has("cursor") || vals.Get("limit") != "1" {
				t.Errorf("Link %s: want cursor and limit=1, without index and wait", m[1])
			}
			start := time.Now()
			want := h.walkPages(target + "?limit=1")
			got := h.walkPages(fmt.Sprintf("%s?limit=1&index=%d&wait=1s", target, n-1))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("pages mismatch (-want +got):\n%s", diff)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("walking the pages took %v: a page blocked", d)
			}
		})
	}
}

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

// TestIndexToolIgnoresOtherToolsOfInstance: "GET /tools/deploy?index=N
// wakes only for changes to the tool deploy, not for ... other tool", and
// the index is "the index of the last change that affects that answer".
// An instance that offers deploy and adds, removes or changes its other
// tools, or posts the same list again, leaves /tools/deploy alone.
func TestIndexToolIgnoresOtherToolsOfInstance(t *testing.T) {
	tests := []struct {
		name  string
		tools []string // a's new list; a offered deploy and build
	}{
		{"adds another tool", []string{`{"name":"deploy","x-command":"/deploy"}`, `{"name":"build"}`, `{"name":"lint"}`}},
		{"removes another tool", []string{`{"name":"deploy","x-command":"/deploy"}`}},
		{"changes another tool", []string{`{"name":"deploy","x-command":"/deploy"}`, `{"name":"build","description":"new"}`}},
		{"reorders its tools", []string{`{"name":"build"}`, `{"name":"deploy","x-command":"/deploy"}`}},
		{"posts the same list", []string{`{"name":"deploy","x-command":"/deploy"}`, `{"name":"build"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, registry.Options{})
			t.Cleanup(h.reg.ReleaseWaiters)
			watchFleet(h)
			before := h.must(http.StatusOK, "GET", "/tools/deploy", "")
			n := regIndex(t, before.Header())
			const wait = 300 * time.Millisecond
			ch := getAsync(h.h, fmt.Sprintf("/tools/deploy?index=%d&wait=%v", n, wait))
			h.postTools("a", tt.tools...)
			after := h.must(http.StatusOK, "GET", "/tools/deploy", "")
			if !bytes.Equal(before.Body.Bytes(), after.Body.Bytes()) {
				t.Fatalf("the answer changed (test setup): %s then %s", before.Body, after.Body)
			}
			if got := regIndex(t, after.Header()); got != n {
				t.Errorf("/tools/deploy index moved from %d to %d; its answer did not change", n, got)
			}
			if etag := after.Header().Get("ETag"); etag != before.Header().Get("ETag") {
				t.Errorf("/tools/deploy ETag moved from %s to %s with the same body", before.Header().Get("ETag"), etag)
			}
			a := await(t, ch, 10*time.Second, "waiter on deploy")
			if a.took < wait {
				t.Errorf("the waiter on deploy answered after %v, before its wait of %v, with the same body", a.took, wait)
			}
			// The change itself is one: the instance's own index moves.
			if got := indexAt(h, "/instances/a"); got <= n {
				t.Errorf("/instances/a index %d, want above %d", got, n)
			}
		})
	}
}

// TestIndexExpiryWithoutRun: an instance past its deadline is shown
// inactive by every read even before Purge; the reads' indexes and ETags
// account for that expiry (the index of "the last change that affects that
// answer"), also without Run, so a client never keeps a 304 or an index
// that hides it. The stream gets its inactive event.
func TestIndexExpiryWithoutRun(t *testing.T) {
	h := newHarness(t, registry.Options{})
	ts := httptest.NewServer(h.reg)
	t.Cleanup(ts.Close)
	t.Cleanup(h.reg.ReleaseWaiters)
	watchFleet(h)
	stream := openEvents(t, ts.URL, "")
	reads := []string{"/instances", "/instances/a", "/instances?active=true", "/tools", "/tools/deploy", "/tools/build",
		"/hosts", "/export/superputty"}
	before := map[string]*httptest.ResponseRecorder{}
	for _, target := range reads {
		before[target] = h.do("GET", target, "")
	}
	h.clock.Advance(3*time.Second + time.Millisecond) // a's deadline; no Purge, no Run
	for _, target := range reads {
		old := before[target]
		rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", old.Header().Get("ETag")) })
		if rec.Code == http.StatusNotModified {
			t.Errorf("%s: 304 after a's deadline, want the new body", target)
			continue
		}
		if bytes.Equal(rec.Body.Bytes(), old.Body.Bytes()) {
			t.Fatalf("%s: same body after a's deadline (test setup)", target)
		}
		if got, was := regIndex(t, rec.Header()), regIndex(t, old.Header()); got <= was {
			t.Errorf("%s: index %d after a's deadline, want above %d", target, got, was)
		}
	}
	e, ok := stream.next(t, 5*time.Second)
	if !ok || e.Event != registry.EventInactive || parseEvent(t, e).InstanceID != "a" {
		t.Errorf("event %+v, want a's inactive event", e)
	}
}

// TestETagStreamedAtDeadline: a listing over 1 MiB streams with a weak
// ETag; at an instance's deadline its body changes (the instance shows
// inactive, its tools leave /tools), and so must its ETag: "an ETag ...
// that identifies the exact body".
func TestETagStreamedAtDeadline(t *testing.T) {
	for _, target := range []string{"/instances", "/instances?active=true", "/tools"} {
		t.Run(target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			bigFleet(h, 160)
			h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"short","name":"app","version":"1","host":"hs","heartbeat_interval":1}`)
			h.postTools("short", `{"name":"short-tool"}`)
			first := h.must(http.StatusOK, "GET", target, "")
			if first.Body.Len() <= 1<<20 {
				t.Fatalf("%d bytes: the answer does not stream (test setup)", first.Body.Len())
			}
			h.clock.Advance(3*time.Second + time.Millisecond) // short's deadline
			rec := h.do("GET", target, "", func(r *http.Request) { r.Header.Set("If-None-Match", first.Header().Get("ETag")) })
			if rec.Code != http.StatusOK {
				t.Fatalf("If-None-Match %s after the deadline: status %d, want 200", first.Header().Get("ETag"), rec.Code)
			}
			if bytes.Equal(first.Body.Bytes(), rec.Body.Bytes()) {
				t.Fatal("the body did not change at the deadline (test setup)")
			}
			if rec.Header().Get("ETag") == first.Header().Get("ETag") {
				t.Errorf("ETag %s names both bodies", first.Header().Get("ETag"))
			}
		})
	}
}

// TestIndexGoneNamesMonotonic: the 404 of a removed tool carries the index
// of its removal, and never less later: the registry bounds its memory of
// removed names (100,000), and a name it forgot must not report an index
// below the one it reported ("a monotonic change counter").
func TestIndexGoneNamesMonotonic(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("x", "app", "h")
	h.postTools("x", `{"name":"t0"}`)
	h.postTools("x")
	before := h.do("GET", "/tools/t0", "")
	checkDetailString(t, before, http.StatusNotFound)
	n := regIndex(t, before.Header())
	// Remove 100,000 more names, 100 at a time: each tool of a post moves
	// the sorted name list once, so small posts keep it fast under -race.
	tools := make([]json.RawMessage, 100)
	for k := range 1000 {
		for i := range tools {
			tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"r%d-%d"}`, k, i))
		}
		if err := h.reg.UpdateTools(t.Context(), "x", tools); err != nil {
			t.Fatal(err)
		}
		if err := h.reg.UpdateTools(t.Context(), "x", []json.RawMessage{}); err != nil {
			t.Fatal(err)
		}
	}
	after := h.do("GET", "/tools/t0", "")
	checkDetailString(t, after, http.StatusNotFound)
	if got := regIndex(t, after.Header()); got < n {
		t.Errorf("/tools/t0 (404): index went back from %d to %d", n, got)
	}
}

// TestBlockingHugeWait: "a bare number is seconds ... max 5 min": a
// number of seconds too large for a time.Duration is clamped like any
// other, on every platform (not refused where the float conversion
// overflows to a negative value).
func TestBlockingHugeWait(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet(h)
	for _, wait := range []string{"301", "9999999999", "1e10", "1e300"} {
		// index=0 is below the current index: the answer does not wait.
		rec := h.do("GET", "/tools/deploy?index=0&wait="+wait, "")
		if rec.Code != http.StatusOK {
			t.Errorf("wait=%s: status %d, want 200 (a wait above 5 min is clamped); body %s", wait, rec.Code, rec.Body)
		}
	}
}

// TestBlockingNeverMissesAChange: while a writer posts version after
// version of deploy, readers chain blocking queries (each sends the index
// of its last answer) on /tools/deploy and /instances/a and an event stream
// follows: indexes only go up, no reader sees a version go back, every
// reader ends at the last version, and the stream has every change in
// order. (The index of an answer may lag its body by a change made while
// the answer was built, never lead it: a reader can get an answer twice,
// but never miss one.)
func TestBlockingNeverMissesAChange(t *testing.T) {
	h := newHarness(t, registry.Options{})
	ts := httptest.NewServer(h.reg)
	t.Cleanup(ts.Close)
	t.Cleanup(h.reg.ReleaseWaiters)
	h.register("a", "app", "h1")
	h.postTools("a", `{"name":"deploy","description":"v0"}`)
	stream := openEvents(t, ts.URL, "")
	const versions = 200
	version := func(body []byte, instance bool) int {
		var v struct {
			Description string
			Tools       []struct{ Description string }
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return -1
		}
		d := v.Description
		if instance && len(v.Tools) == 1 {
			d = v.Tools[0].Description
		}
		n, err := strconv.Atoi(strings.TrimPrefix(d, "v"))
		if err != nil {
			return -1
		}
		return n
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for r := range 16 {
		target := "/tools/deploy"
		if r%2 == 1 {
			target = "/instances/a"
		}
		wg.Go(func() {
			var last uint64
			prev := -1
			deadline := time.Now().Add(30 * time.Second)
			for prev < versions && time.Now().Before(deadline) {
				req := httptest.NewRequest("GET", fmt.Sprintf("%s?index=%d&wait=5s", target, last), nil)
				rec := httptest.NewRecorder()
				h.h.ServeHTTP(rec, req)
				idx, err := strconv.ParseUint(rec.Header().Get("X-Registry-Index"), 10, 64)
				v := version(rec.Body.Bytes(), target != "/tools/deploy")
				switch {
				case err != nil || rec.Code != http.StatusOK || v < 0:
					errs <- fmt.Errorf("%s: status %d index %q body %s", target, rec.Code, rec.Header().Get("X-Registry-Index"), rec.Body)
					return
				case idx < last:
					errs <- fmt.Errorf("%s: index went back from %d to %d", target, last, idx)
					return
				case v < prev:
					errs <- fmt.Errorf("%s: version went back from %d to %d", target, prev, v)
					return
				}
				last, prev = idx, v
			}
			if prev != versions {
				errs <- fmt.Errorf("%s: ended at version %d, want %d", target, prev, versions)
			}
		})
	}
	start := globalIndex(h)
	for i := 1; i <= versions; i++ {
		tool := json.RawMessage(fmt.Sprintf(`{"name":"deploy","description":"v%d"}`, i))
		if err := h.reg.UpdateTools(t.Context(), "a", []json.RawMessage{tool}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i := range uint64(versions) {
		e, ok := stream.next(t, 5*time.Second)
		if want := strconv.FormatUint(start+1+i, 10); !ok || e.Event != registry.EventTools || e.ID != want {
			t.Fatalf("event %d: got %+v, want tools with id %s", i, e, want)
		}
	}
}

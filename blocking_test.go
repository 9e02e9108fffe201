// blocking_test.go checks blocking queries and the change index they wait
// on: X-Registry-Index on every read and which changes move it, ?index=N
// &wait=D held until the answer's index passes N, expiry waking waiters at
// the deadline, and ReleaseWaiters.

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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

// withParams appends query parameters to target.
func withParams(target, params string) string {
	if strings.Contains(target, "?") {
		return target + "&" + params
	}
	return target + "?" + params
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
		{"last_seen moves", watchFleet.load, func(h *harness) { tick(h, "a") }},
		{"system changes, clock stopped", watchFleet.load, func(h *harness) {
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"load":0.5}}`)
		}},
		{"streamed listing", func(h *harness) { watchFleet.load(h); bigFleet(h, 0) }, func(h *harness) { tick(h, "a") }},
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
			watchFleet.load(h)
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
			watchFleet.load(h)
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
			watchFleet.load(h)
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
			watchFleet.load(h)
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
		watchFleet.load(h)
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
	watchFleet.load(h)
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
	watchFleet.load(h)
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

// TestIndexNotInLink: a page's Link header does not carry index or wait, so
// following it does not block.
func TestIndexNotInLink(t *testing.T) {
	h := newHarness(t, registry.Options{})
	watchFleet.load(h)
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
			watchFleet.load(h)
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
	watchFleet.load(h)
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
	watchFleet.load(h)
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

// etag_test.go checks the ETag of every read: If-None-Match (also weak,
// in a list, or *) answers 304 with no body, 404s keep theirs, no ETag ever
// names two bodies, and a streamed listing's ETag changes at a deadline.

package registry_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// TestETag: If-None-Match with the ETag of an answer (also weak, in a list,
// or *) answers 304 with no body; after a change of the body, the same
// header gets 200 and a new ETag.
func TestETag(t *testing.T) {
	tests := []struct {
		target string
		setup  func(h *harness)
		change func(h *harness)
	}{
		{"/instances", watchFleet.load, func(h *harness) { tick(h, "b") }},
		{"/instances?limit=1", watchFleet.load, func(h *harness) { tick(h, "a") }},
		{"/instances/a", watchFleet.load, func(h *harness) { tick(h, "a") }},
		{"/tools", watchFleet.load, func(h *harness) { h.postTools("c", `{"name":"lint"}`) }},
		{"/tools?active=false", watchFleet.load, func(h *harness) { h.deregister("b"); h.postTools("b") }},
		{"/tools/deploy", watchFleet.load, func(h *harness) { h.postTools("c", `{"name":"deploy"}`) }},
		{"/tools/deploy?host=h1", watchFleet.load, func(h *harness) { h.postTools("a", `{"name":"deploy","description":"new"}`) }},
		{"/hosts", watchFleet.load, func(h *harness) { h.register("d", "app", "h4") }},
		{"/export/superputty", watchFleet.load, func(h *harness) { h.register("d", "app", "h4") }},
		{"/export/mobaxterm?user=ops", watchFleet.load, func(h *harness) { h.deregister("c") }},
		{"/instances (streamed)", func(h *harness) { bigFleet(h, 0); watchFleet.load(h) }, func(h *harness) { tick(h, "big-007") }},
		{"/tools (streamed)", func(h *harness) { bigFleet(h, 160); watchFleet.load(h) }, func(h *harness) { h.deregister("big-100") }},
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
	watchFleet.load(h)
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

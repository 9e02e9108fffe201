// auth_test.go checks the guards of the write endpoints: the API key,
// the per-address rate limits, the client address (X-Forwarded-For only
// from trusted proxies) and the order of the checks (429, 403, 413, 422).

package registry_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

func TestAPIKey(t *testing.T) {
	const key = "s3cret-key"
	writes := []struct {
		method, target, body string
		code                 int
	}{
		{"POST", "/instances", regBody("b", "app", "h2"), http.StatusCreated},
		{"POST", "/instances/a/heartbeat", `{}`, http.StatusOK},
		{"POST", "/instances/a/heartbeat", ``, http.StatusOK},
		{"POST", "/instances/a/tools", toolsBody(`{"name":"t"}`), http.StatusOK},
		{"DELETE", "/instances/a", ``, http.StatusOK},
		// The key is checked before the body: a malformed body gets 403.
		{"POST", "/instances", `{"instance_id":`, http.StatusUnprocessableEntity},
		{"POST", "/instances/a/heartbeat", `{"system":1}`, http.StatusUnprocessableEntity},
		{"POST", "/instances/a/tools", `[`, http.StatusUnprocessableEntity},
		{"POST", "/instances/unknown/tools", toolsBody(`{"name":"t"}`), http.StatusNotFound},
	}
	keys := []struct {
		name string
		opts []reqOpt
		ok   bool
	}{
		{"missing", nil, false},
		{"empty", []reqOpt{withKey("")}, false},
		{"wrong", []reqOpt{withKey("wrong")}, false},
		{"prefix", []reqOpt{withKey(key[:len(key)-1])}, false},
		{"longer", []reqOpt{withKey(key + "x")}, false},
		{"other case", []reqOpt{withKey(strings.ToUpper(key))}, false},
		{"as bearer token", []reqOpt{func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }}, true},
		{"right", []reqOpt{withKey(key)}, true},
		{"right, lower-case header name", []reqOpt{func(r *http.Request) { r.Header.Set("x-api-key", key) }}, true},
	}
	for _, w := range writes {
		for _, k := range keys {
			t.Run(fmt.Sprintf("%s %s %q/%s", w.method, w.target, w.body, k.name), func(t *testing.T) {
				h := newHarness(t, registry.Options{APIKey: key})
				h.register("a", "app", "h1", withKey(key))
				before := h.instances()
				h.clock.Advance(time.Second)
				rec := h.do(w.method, w.target, w.body, k.opts...)
				if !k.ok {
					checkJSON(t, rec, http.StatusForbidden, `{"detail":"Invalid or missing API key"}`)
					if diff := cmp.Diff(before, h.instances()); diff != "" {
						t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
					}
					return
				}
				if rec.Code != w.code {
					t.Errorf("status = %d, want %d (%s)", rec.Code, w.code, rec.Body)
				}
			})
		}
	}
	t.Run("reads are open", func(t *testing.T) {
		h := newHarness(t, registry.Options{APIKey: key})
		h.register("a", "app", "h1", withKey(key))
		h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody(`{"name":"t"}`), withKey(key))
		for _, target := range []string{"/instances", "/instances/a", "/tools", "/tools/t", "/hosts", "/export/superputty", "/export/mobaxterm", "/health"} {
			h.must(http.StatusOK, "GET", target, "")
			h.must(http.StatusOK, "GET", target, "", withKey("wrong"))
		}
	})
	t.Run("no key configured: any key accepted", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		h.must(http.StatusCreated, "POST", "/instances", regBody("a", "app", "h1"), withKey("whatever"))
	})
}

// TestCheckOrder checks the order rate limit (429), key (403), size (413),
// body (422) on every write route.
func TestCheckOrder(t *testing.T) {
	const key = "k"
	big := `{"x":"` + strings.Repeat("x", 300) + `"` // oversize and malformed
	tests := []struct {
		name      string
		exhausted bool
		opts      []reqOpt
		body      string
		want      int
	}{
		{"rate before key", true, nil, big, http.StatusTooManyRequests},
		{"rate before everything else", true, []reqOpt{withKey(key)}, big, http.StatusTooManyRequests},
		{"key before size", false, []reqOpt{withKey("bad")}, big, http.StatusForbidden},
		{"key before body", false, nil, `{`, http.StatusForbidden},
		{"size before body", false, []reqOpt{withKey(key)}, big, http.StatusRequestEntityTooLarge},
		{"size before body, chunked", false, []reqOpt{withKey(key), chunked}, big, http.StatusRequestEntityTooLarge},
		{"body last", false, []reqOpt{withKey(key)}, `{`, http.StatusUnprocessableEntity},
	}
	for _, target := range []string{"/instances", "/instances/a/heartbeat", "/instances/a/tools"} {
		for _, tt := range tests {
			t.Run(target+"/"+tt.name, func(t *testing.T) {
				h := newHarness(t, registry.Options{APIKey: key, RateLimitWrite: 2, RateLimitHeartbeat: 2, MaxBodyBytes: 100})
				// Registered from another address: this one's buckets are full.
				h.register("a", "app", "h1", withKey(key), withRemote("198.51.100.1:1"))
				if tt.exhausted {
					for range 2 {
						h.do("POST", target, "{}", withKey(key))
					}
				}
				before := h.instances()
				h.clock.Advance(time.Second)
				rec := h.do("POST", target, tt.body, tt.opts...)
				if rec.Code != tt.want {
					t.Errorf("status = %d, want %d (%s)", rec.Code, tt.want, rec.Body)
				}
				if diff := cmp.Diff(before, h.instances()); diff != "" {
					t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("delete: rate before key", func(t *testing.T) {
		h := newHarness(t, registry.Options{APIKey: key, RateLimitWrite: 1})
		h.register("a", "app", "h1", withKey(key), withRemote("198.51.100.1:1"))
		// A refused request gives its token back: wrong keys have their
		// own bucket, and must not hold back the good agents of a NAT.
		checkJSON(t, h.do("DELETE", "/instances/a", ""), http.StatusForbidden, `{"detail":"Invalid or missing API key"}`)
		checkJSON(t, h.do("DELETE", "/instances/gone", "", withKey(key)), http.StatusOK, `{"status":"ok"}`)
		// The bucket is empty now: the rate limit answers before the key.
		checkDetailString(t, h.do("DELETE", "/instances/a", ""), http.StatusTooManyRequests)
		checkDetailString(t, h.do("DELETE", "/instances/a", "", withKey(key)), http.StatusTooManyRequests)
		if got := h.get("/instances/a").(map[string]any)["active"]; got != true {
			t.Errorf("active = %v after rejected deletes, want true", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Run("burst, Retry-After and refill", func(t *testing.T) {
		for _, n := range []int{1, 3, 60} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				h := newHarness(t, registry.Options{RateLimitWrite: n})
				for i := range n {
					h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
				}
				rec := h.do("POST", "/instances", regBody("over", "app", "h"))
				checkDetailString(t, rec, http.StatusTooManyRequests)
				wait := 60 / n // seconds per token
				if got, want := rec.Header().Get("Retry-After"), fmt.Sprint(wait); got != want {
					t.Errorf("Retry-After = %q, want %q", got, want)
				}
				checkJSON(t, h.do("GET", "/instances/over", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
				h.clock.Advance(time.Duration(wait)*time.Second - time.Millisecond)
				checkDetailString(t, h.do("POST", "/instances", regBody("over", "app", "h")), http.StatusTooManyRequests)
				h.clock.Advance(time.Millisecond)
				h.must(http.StatusCreated, "POST", "/instances", regBody("over", "app", "h"))
				checkDetailString(t, h.do("POST", "/instances", regBody("over2", "app", "h")), http.StatusTooManyRequests)
			})
		}
	})
	t.Run("zero is off", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		h.register("a", "app", "h")
		for i := range 500 {
			h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "")
			h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody())
			h.must(http.StatusOK, "DELETE", "/instances/x", "")
		}
	})
	t.Run("heartbeat limit", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitHeartbeat: 120})
		h.register("a", "app", "h")
		for range 120 {
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "")
		}
		rec := h.do("POST", "/instances/a/heartbeat", "")
		checkDetailString(t, rec, http.StatusTooManyRequests)
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		// Writes are not limited by the heartbeat limit.
		for i := range 200 {
			h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
		}
	})
	t.Run("separate buckets per route and address", func(t *testing.T) {
		routes := []struct {
			method, target, body string
			code                 int
		}{
			{"POST", "/instances", regBody("a", "app", "h"), http.StatusCreated},
			{"POST", "/instances/a/tools", toolsBody(), http.StatusOK},
			{"DELETE", "/instances/x", "", http.StatusOK},
			{"POST", "/instances/a/heartbeat", "", http.StatusOK},
		}
		for i, exhaust := range routes {
			t.Run(exhaust.target, func(t *testing.T) {
				h := newHarness(t, registry.Options{RateLimitWrite: 2, RateLimitHeartbeat: 2})
				h.register("a", "app", "h", withRemote("198.51.100.1:1"))
				for range 2 {
					h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body)
				}
				checkDetailString(t, h.do(exhaust.method, exhaust.target, exhaust.body), http.StatusTooManyRequests)
				// Another port of the same address shares the bucket.
				checkDetailString(t, h.do(exhaust.method, exhaust.target, exhaust.body, withRemote("192.0.2.1:999")), http.StatusTooManyRequests)
				// Another address has its own.
				h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body, withRemote("192.0.2.2:1234"))
				h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body, withRemote("[2001:db8::1]:1234"))
				for j, other := range routes {
					if j != i {
						h.must(other.code, other.method, other.target, other.body)
					}
				}
			})
		}
	})
	t.Run("X-Forwarded-For only from trusted proxies", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitWrite: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		steps := []struct {
			remote, xff string
			want        int
		}{
			{"192.0.2.9:1", "203.0.113.1", http.StatusCreated},         // untrusted peer: bucket 192.0.2.9
			{"192.0.2.9:1", "203.0.113.2", http.StatusTooManyRequests}, // its X-Forwarded-For is ignored
			{"10.0.0.1:1", "203.0.113.1", http.StatusCreated},          // through a proxy: bucket 203.0.113.1
			{"10.0.0.2:1", "203.0.113.1", http.StatusTooManyRequests},  // same client, other proxy
			{"10.0.0.1:1", "203.0.113.2", http.StatusCreated},          // other client, same proxy
			{"10.0.0.1:1", "", http.StatusCreated},                     // the proxy itself: bucket 10.0.0.1
			{"10.0.0.1:1", "", http.StatusTooManyRequests},
			{"10.0.0.1:1", "203.0.113.1, 10.0.0.7", http.StatusTooManyRequests},    // trusted hops skipped
			{"10.0.0.1:1", "203.0.113.3, 203.0.113.1", http.StatusTooManyRequests}, // a forged left entry does not help
			{"10.0.0.1:1", "203.0.113.1, 203.0.113.4", http.StatusCreated},         // the rightmost untrusted hop counts
		}
		for i, s := range steps {
			opts := []reqOpt{withRemote(s.remote)}
			if s.xff != "" {
				opts = append(opts, withXFF(s.xff))
			}
			if rec := h.do("POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"), opts...); rec.Code != s.want {
				t.Errorf("step %d (%s, X-Forwarded-For %q): status %d, want %d", i, s.remote, s.xff, rec.Code, s.want)
			}
		}
	})
	t.Run("X-Forwarded-For ignored without trusted proxies", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitWrite: 1})
		h.must(http.StatusCreated, "POST", "/instances", regBody("a", "app", "h"), withXFF("203.0.113.1"))
		checkDetailString(t, h.do("POST", "/instances", regBody("b", "app", "h"), withXFF("203.0.113.2")), http.StatusTooManyRequests)
	})
}

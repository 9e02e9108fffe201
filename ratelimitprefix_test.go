// ratelimitprefix_test.go checks the aggregate rate limit of an IPv6 /64:
// a client that takes a new address inside its /64 for each request is
// throttled at RateLimitPrefixFactor times the per-address limit, while
// other /64s, IPv4 clients and the /64's other routes are not; the
// per-address limit still holds inside it, and the bucket refills.

package registry_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// fromAddr posts body to target from the client address addr (hdr are
// header name, value pairs) and returns the status and Retry-After.
func fromAddr(reg http.Handler, addr, target, body string, hdr ...string) (int, string) {
	var req *http.Request
	if body == "" {
		req = httptest.NewRequest("POST", target, nil)
	} else {
		req = httptest.NewRequest("POST", target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
	}
	req.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Retry-After")
}

func TestRateLimitPrefix(t *testing.T) {
	const perAddr = 2 // per minute and route
	v6 := func(prefix string, n int) string { return fmt.Sprintf("[%s::%x]:40000", prefix, n) }
	rotate := func(i int) string { return v6("2001:db8:1:2", i+1) } // a new address in one /64 each time
	register := func(reg http.Handler, addr string, n int) (int, string) {
		return fromAddr(reg, addr, "/instances", regJSON(fmt.Sprintf("i-%d", n)))
	}
	tests := []struct {
		name   string
		factor int // Options.RateLimitPrefixFactor
		// rotate sends n registrations from addr(i), a new address each,
		// and wants the first pass of them through.
		addr       func(i int) string
		n, pass    int
		thenFrom   string // then one more from here ...
		heartbeat  bool   // ... a heartbeat, not a registration ...
		thenPasses bool   // ... which passes or not
	}{
		{"rotating in one /64, default factor", 0, rotate, 250, 200, v6("2001:db8:1:2", 0xffff), false, false},
		{"then another /64 passes", 0, rotate, 250, 200, v6("2001:db8:1:3", 1), false, true},
		{"then IPv4 passes", 0, rotate, 250, 200, "192.0.2.1:40000", false, true},
		{"the /64 is per route: heartbeats pass", 0, rotate, 250, 200, v6("2001:db8:1:2", 0xfffe), true, true},
		{"factor 10", 10, rotate, 50, 20, v6("2001:db8:1:2", 0xffff), false, false},
		{"no aggregate (factor < 0)", -1, rotate, 500, 500, v6("2001:db8:1:2", 0xffff), false, true},
		{"rotating IPv4 addresses: no aggregate", 0, func(i int) string {
			return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String() + ":40000"
		}, 1000, 1000, "10.255.255.255:40000", false, true},
		{"IPv4-mapped IPv6 is IPv4", 0, func(i int) string {
			return fmt.Sprintf("[::ffff:10.0.%d.%d]:40000", i>>8, i&0xff)
		}, 300, 300, "[::ffff:10.9.9.9]:40000", false, true},
		{"one address: the per-address limit", 0, func(int) string { return v6("2001:db8:9:9", 1) }, 5, perAddr,
			v6("2001:db8:9:9", 2), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock()
			reg, err := registry.New(registry.Options{RateLimitWrite: perAddr, RateLimitHeartbeat: perAddr,
				RateLimitPrefixFactor: tt.factor, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			passed := 0
			for i := range tt.n {
				code, retry := register(reg, tt.addr(i), i)
				switch code {
				case http.StatusCreated:
					if passed != i {
						t.Fatalf("request %d passed after %d of %d: a refused request let later ones through", i, passed, i)
					}
					passed++
				case http.StatusTooManyRequests:
					if s, err := strconv.Atoi(retry); err != nil || s < 1 || s > 60 {
						t.Errorf("request %d: 429 with Retry-After %q, want 1..60 s", i, retry)
					}
				default:
					t.Fatalf("request %d: status %d", i, code)
				}
			}
			if passed != tt.pass {
				t.Errorf("%d of %d requests passed, want %d", passed, tt.n, tt.pass)
			}
			code, want := 0, http.StatusCreated
			if tt.heartbeat {
				code, _ = fromAddr(reg, tt.thenFrom, "/instances/i-0/heartbeat", "")
				want = http.StatusOK
			} else {
				code, _ = register(reg, tt.thenFrom, 100000)
			}
			if got := code == want; got != tt.thenPasses {
				t.Errorf("then from %s: status %d, want passing %v", tt.thenFrom, code, tt.thenPasses)
			}
		})
	}

	t.Run("the /64's 429 names its limit", func(t *testing.T) {
		reg, err := registry.New(registry.Options{RateLimitWrite: perAddr, Now: newFakeClock().Now})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			register(reg, v6("2001:db8:1:2", i+1), i)
		}
		req := httptest.NewRequest("POST", "/instances", strings.NewReader(regJSON("x")))
		req.RemoteAddr = v6("2001:db8:1:2", 0xffff)
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		if rec.Code != http.StatusTooManyRequests || !strings.Contains(detailOf(rec), "200") {
			t.Errorf("%d %q, want a 429 naming the /64's limit of 200 per minute", rec.Code, detailOf(rec))
		}
	})

	t.Run("the /64 refills", func(t *testing.T) {
		clock := newFakeClock()
		reg, err := registry.New(registry.Options{RateLimitWrite: perAddr, Now: clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			if code, _ := register(reg, v6("2001:db8:1:2", i+1), i); code != http.StatusCreated {
				t.Fatalf("request %d: %d", i, code)
			}
		}
		if code, _ := register(reg, v6("2001:db8:1:2", 1000), 1000); code != http.StatusTooManyRequests {
			t.Fatalf("request 201: %d, want 429", code)
		}
		clock.Advance(30 * time.Second) // half a minute: half the bucket
		passed := 0
		for i := range 150 {
			if code, _ := register(reg, v6("2001:db8:1:2", 2000+i), 2000+i); code == http.StatusCreated {
				passed++
			}
		}
		if passed != 100 {
			t.Errorf("after 30 s, %d passed, want 100", passed)
		}
	})

	t.Run("behind a trusted proxy", func(t *testing.T) {
		clock := newFakeClock()
		reg, err := registry.New(registry.Options{RateLimitWrite: perAddr, Now: clock.Now,
			TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		if err != nil {
			t.Fatal(err)
		}
		passed := 0
		for i := range 250 {
			code, _ := fromAddr(reg, "10.0.0.1:40000", "/instances", regJSON(fmt.Sprintf("p-%d", i)),
				"X-Forwarded-For", fmt.Sprintf("2001:db8:5:5::%x", i+1))
			if code == http.StatusCreated {
				passed++
			}
		}
		if passed != 200 {
			t.Errorf("%d of 250 forwarded requests from one /64 passed, want 200", passed)
		}
	})
}

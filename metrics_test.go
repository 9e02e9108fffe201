// metrics_test.go checks that Registry.Metrics follows the traffic: each
// write kind, heartbeats answered ack and refresh apart, expiries at the
// deadline of a fake clock, deletions after the retention, refusals,
// rate-limited requests, and requests counted per route, method and status.

package registry_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// counts are the counters of a Metrics that these tests drive.
type counts struct {
	Registrations, Heartbeats, Refreshes, ToolPosts, Deregistrations uint64
	Purges, Expiries, Deletions, Refused, RateLimited                uint64
}

func countsOf(m registry.Metrics) counts {
	return counts{m.Registrations, m.Heartbeats, m.HeartbeatRefreshes, m.ToolPosts, m.Deregistrations,
		m.Purges, m.Expiries, m.Deletions, m.Refused, m.RateLimited}
}

// requestCount is the number of requests of a route and method answered
// with status.
func requestCount(m registry.Metrics, method, route string, status int) uint64 {
	for _, rm := range m.Requests {
		if rm.Method == method && rm.Route == route {
			return rm.Status[status]
		}
	}
	return 0
}

func TestMetricsFollowTraffic(t *testing.T) {
	h := newHarness(t, registry.Options{HeartbeatInterval: 10 * time.Second, RetainInactive: time.Minute,
		APIKey: "metrics-key-0123456789", RateLimitHeartbeat: 3})
	key := withKey("metrics-key-0123456789")
	steps := []struct {
		name string
		do   func()
		want counts // the counters after the step
	}{
		{"register", func() {
			h.register("a", "ops", "web-1", key)
			h.register("b", "ops", "web-2", key)
		}, counts{Registrations: 2}},
		{"heartbeat before tools: refresh", func() {
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "", key)
		}, counts{Registrations: 2, Heartbeats: 1, Refreshes: 1}},
		{"tools, then ack", func() {
			h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody(`{"name":"deploy"}`), key)
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "", key)
		}, counts{Registrations: 2, Heartbeats: 2, Refreshes: 1, ToolPosts: 1}},
		{"unknown id: refresh", func() {
			h.must(http.StatusOK, "POST", "/instances/nobody/heartbeat", "", key)
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1}},
		{"rate limited heartbeat", func() {
			h.must(http.StatusTooManyRequests, "POST", "/instances/a/heartbeat", "", key)
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1}},
		{"refused without a key", func() {
			h.must(http.StatusForbidden, "POST", "/instances", regBody("c", "ops", "web-3"))
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1, Refused: 1}},
		{"deregister", func() {
			h.must(http.StatusOK, "DELETE", "/instances/b", "", key)
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1, Refused: 1, Deregistrations: 1}},
		{"expiry at the deadline", func() {
			h.clock.Advance(31 * time.Second) // a's TTL is 3 x 10 s
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1, Refused: 1, Deregistrations: 1,
			Expiries: 1}},
		{"deleted after the retention", func() {
			h.clock.Advance(time.Minute)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, counts{Registrations: 2, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1, Refused: 1, Deregistrations: 1,
			Expiries: 1, Deletions: 2}},
		{"purge", func() {
			h.register("c", "ops", "web-3", key)
			h.must(http.StatusOK, "DELETE", "/instances/c?purge=true", "", key)
		}, counts{Registrations: 3, Heartbeats: 3, Refreshes: 2, ToolPosts: 1, RateLimited: 1, Refused: 1, Deregistrations: 1,
			Expiries: 1, Deletions: 3, Purges: 1}}, // a purge is a deletion too
	}
	for _, s := range steps {
		s.do()
		if diff := cmp.Diff(s.want, countsOf(h.reg.Metrics())); diff != "" {
			t.Fatalf("after %s: counters mismatch (-want +got):\n%s", s.name, diff)
		}
	}

	h.must(http.StatusNotFound, "GET", "/no/such/path", "")
	h.must(http.StatusMethodNotAllowed, "PUT", "/instances", "")
	m := h.reg.Metrics()
	for _, tt := range []struct {
		method, route string
		status        int
		want          uint64
	}{
		{"POST", "/instances", http.StatusCreated, 3},
		{"POST", "/instances", http.StatusForbidden, 1},
		{"POST", "/instances/:id/heartbeat", http.StatusOK, 3},
		{"POST", "/instances/:id/heartbeat", http.StatusTooManyRequests, 1},
		{"POST", "/instances/:id/tools", http.StatusOK, 1},
		{"DELETE", "/instances/:id", http.StatusOK, 2},
		{"GET", "/instances", http.StatusOK, 0}, // a route never asked is there, with no requests
		{"", "other", http.StatusNotFound, 1},
		{"", "other", http.StatusMethodNotAllowed, 1},
	} {
		if got := requestCount(m, tt.method, tt.route, tt.status); got != tt.want {
			t.Errorf("requests %s %s %d = %d, want %d", tt.method, tt.route, tt.status, got, tt.want)
		}
	}
	for _, rm := range m.Requests {
		var n uint64
		for _, c := range rm.Status {
			n += c
		}
		if rm.Time.Count() != n {
			t.Errorf("%s %s: %d requests by status, %d in the duration histogram", rm.Method, rm.Route, n, rm.Time.Count())
		}
	}
}

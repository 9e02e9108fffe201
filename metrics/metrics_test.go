// metrics_test.go checks that the exported metrics follow the registry:
// the counters of each write kind and heartbeat answer through the HTTP
// API, an expiry at the deadline of a fake clock, the deletion after the
// retention, requests by route and status, store writes and their errors,
// a replica's cluster state and revision, the expiry guard, and the
// linter of client_golang (promlint) on a whole scrape.

package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/runspec/registry"
	"github.com/runspec/registry/metrics"
	"github.com/runspec/registry/store/memcluster"
)

// clock is a fake clock for Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// gather collects reg's metrics (the Collector alone, no Go or process
// collectors) as "name{label="value",...}" → value; a histogram gives its
// _count and _sum.
func gather(t *testing.T, reg *registry.Registry, opts metrics.Options) map[string]float64 {
	t.Helper()
	preg := prometheus.NewPedanticRegistry() // also checks the metrics against their descriptions
	preg.MustRegister(metrics.NewCollector(reg, opts))
	fams, err := preg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64)
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			name := func(suffix string) string {
				if len(labels) == 0 {
					return f.GetName() + suffix
				}
				return f.GetName() + suffix + "{" + strings.Join(labels, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[name("")] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[name("")] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[name("_sum")] = m.GetHistogram().GetSampleSum()
			default:
				t.Fatalf("%s: unexpected type %v", f.GetName(), f.GetType())
			}
		}
	}
	return out
}

// pick returns the values of m at keys (0 for a key m lacks).
func pick(m map[string]float64, keys []string) map[string]float64 {
	out := make(map[string]float64, len(keys))
	for _, k := range keys {
		out[k] = m[k]
	}
	return out
}

// do sends a request to h and checks its status.
func do(t *testing.T, h http.Handler, code int, method, target, body string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != code {
		t.Fatalf("%s %s: %d %s, want %d", method, target, rec.Code, rec.Body, code)
	}
}

func register(id, host string) string {
	return fmt.Sprintf(`{"instance_id":%q,"name":"ops","version":"1","host":%q,"heartbeat_interval":10}`, id, host)
}

func TestCountersFollowTraffic(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	reg, err := registry.New(registry.Options{Now: clk.Now, RetainInactive: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	const hb = `runspec_registry_http_requests_total{method="POST",route="/instances/:id/heartbeat",status="200"}`
	steps := []struct {
		name string
		do   func(t *testing.T)
		want map[string]float64 // what changed since the step before
	}{
		{"two registrations", func(t *testing.T) {
			do(t, reg, 201, "POST", "/instances", register("a", "web-1"))
			do(t, reg, 201, "POST", "/instances", register("b", "web-2"))
		}, map[string]float64{
			`runspec_registry_registrations_total`:                                                                 2,
			`runspec_registry_instances{state="active"}`:                                                           2,
			`runspec_registry_hosts`:                                                                               2,
			`runspec_registry_http_requests_total{method="POST",route="/instances",status="201"}`:                  2,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances"}`:               2,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances/:id/heartbeat"}`: 0,
		}},
		{"heartbeat before tools: refresh", func(t *testing.T) {
			do(t, reg, 200, "POST", "/instances/a/heartbeat", "")
		}, map[string]float64{
			`runspec_registry_heartbeats_total{answer="refresh"}`: 1,
			hb: 1,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances/:id/heartbeat"}`: 1,
		}},
		{"tools, then two acks", func(t *testing.T) {
			do(t, reg, 200, "POST", "/instances/a/tools", `{"tools":[{"name":"deploy"},{"name":"restart"}]}`)
			do(t, reg, 200, "POST", "/instances/a/heartbeat", "")
			do(t, reg, 200, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
		}, map[string]float64{
			`runspec_registry_tool_posts_total`:               1,
			`runspec_registry_tools`:                          2,
			`runspec_registry_heartbeats_total{answer="ack"}`: 2,
			hb: 2,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances/:id/heartbeat"}`: 2,
		}},
		{"a bad heartbeat is no heartbeat", func(t *testing.T) {
			do(t, reg, 422, "POST", "/instances/a/heartbeat", `{"system":1}`)
		}, map[string]float64{
			`runspec_registry_http_requests_total{method="POST",route="/instances/:id/heartbeat",status="422"}`:    1,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances/:id/heartbeat"}`: 1,
		}},
		{"deregistration", func(t *testing.T) {
			do(t, reg, 200, "DELETE", "/instances/b", "")
		}, map[string]float64{
			`runspec_registry_deregistrations_total`:       1,
			`runspec_registry_instances{state="active"}`:   -1,
			`runspec_registry_instances{state="inactive"}`: 1,
		}},
		{"expiry at the deadline", func(t *testing.T) {
			clk.Advance(31 * time.Second) // 3 x 10 s
			if err := reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, map[string]float64{
			`runspec_registry_expiries_total`:              1,
			`runspec_registry_instances{state="active"}`:   -1,
			`runspec_registry_instances{state="inactive"}`: 1,
		}},
		{"deleted after the retention", func(t *testing.T) {
			clk.Advance(time.Minute)
			if err := reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, map[string]float64{
			`runspec_registry_deletions_total`:             2,
			`runspec_registry_instances{state="inactive"}`: -2,
			`runspec_registry_tools`:                       -2,
			`runspec_registry_hosts`:                       -2,
		}},
		{"purge", func(t *testing.T) {
			do(t, reg, 201, "POST", "/instances", register("c", "web-3"))
			do(t, reg, 200, "DELETE", "/instances/c?purge=1", "")
		}, map[string]float64{
			`runspec_registry_registrations_total`:                                                   1,
			`runspec_registry_purges_total`:                                                          1,
			`runspec_registry_deletions_total`:                                                       1,
			`runspec_registry_http_requests_total{method="POST",route="/instances",status="201"}`:    1,
			`runspec_registry_http_request_duration_seconds_count{method="POST",route="/instances"}`: 1,
		}},
		{"unknown path and method", func(t *testing.T) {
			do(t, reg, 404, "GET", "/nowhere", "")
			do(t, reg, 405, "PATCH", "/instances", "")
		}, map[string]float64{
			`runspec_registry_http_requests_total{method="other",route="other",status="404"}`: 1,
			`runspec_registry_http_requests_total{method="other",route="other",status="405"}`: 1,
		}},
	}
	var keys []string
	for _, s := range steps {
		for k := range s.want {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	before := pick(gather(t, reg, metrics.Options{}), keys)
	for _, s := range steps {
		s.do(t)
		want := make(map[string]float64)
		for k, v := range before {
			want[k] = v + s.want[k]
		}
		got := pick(gather(t, reg, metrics.Options{}), keys)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("after %s: mismatch (-want +got):\n%s", s.name, diff)
		}
		before = got
	}
}

// failingStore is a Store whose writes fail while fail is set.
type failingStore struct {
	*registry.MemStore
	fail atomic.Bool
}

func (s *failingStore) Put(ctx context.Context, rec registry.Record) error {
	if s.fail.Load() {
		return errors.New("disk full")
	}
	return s.MemStore.Put(ctx, rec)
}

func TestStoreWrites(t *testing.T) {
	st := &failingStore{MemStore: registry.NewMemStore()}
	reg, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	do(t, reg, 201, "POST", "/instances", register("a", "web-1"))
	st.fail.Store(true)
	do(t, reg, 503, "POST", "/instances", register("b", "web-2"))
	keys := []string{"runspec_registry_store_writes_total", "runspec_registry_store_write_errors_total",
		"runspec_registry_store_write_duration_seconds_count", "runspec_registry_registrations_total"}
	want := map[string]float64{keys[0]: 2, keys[1]: 1, keys[2]: 2, keys[3]: 1}
	if diff := cmp.Diff(want, pick(gather(t, reg, metrics.Options{}), keys)); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestCluster(t *testing.T) {
	standalone, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for k := range gather(t, standalone, metrics.Options{}) {
		if strings.HasPrefix(k, "runspec_registry_cluster_") {
			t.Errorf("a registry without a Cluster exports %s", k)
		}
	}

	c := memcluster.New(memcluster.Options{})
	reg, err := registry.New(registry.Options{Cluster: c})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	defer func() { cancel(); <-done }()
	do(t, reg, 201, "POST", "/instances", register("a", "web-1"))
	do(t, reg, 200, "POST", "/instances/a/tools", `{"tools":[{"name":"deploy"}]}`)
	keys := []string{"runspec_registry_cluster_reachable", "runspec_registry_cluster_revision", "runspec_registry_cluster_revision_lag"}
	want := map[string]float64{keys[0]: 1, keys[1]: float64(c.Rev()), keys[2]: 0}
	if diff := cmp.Diff(want, pick(gather(t, reg, metrics.Options{}), keys)); diff != "" {
		t.Errorf("reachable: mismatch (-want +got):\n%s", diff)
	}
	c.SetErr(errors.New("connection refused"))
	want[keys[0]] = 0
	if diff := cmp.Diff(want, pick(gather(t, reg, metrics.Options{}), keys)); diff != "" {
		t.Errorf("unreachable: mismatch (-want +got):\n%s", diff)
	}
}

func TestExpiryGuard(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	reg, err := registry.New(registry.Options{Now: clk.Now, ExpiryGuard: 50})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		do(t, reg, 201, "POST", "/instances", register(fmt.Sprint("a", i), fmt.Sprint("web-", i)))
	}
	keys := []string{"runspec_registry_expiry_guard_active", "runspec_registry_expiry_guard_held_instances",
		"runspec_registry_expiries_total", `runspec_registry_instances{state="active"}`}
	check := func(when string, want map[string]float64) {
		t.Helper()
		if diff := cmp.Diff(want, pick(gather(t, reg, metrics.Options{}), keys)); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", when, diff)
		}
	}
	check("before", map[string]float64{keys[0]: 0, keys[1]: 0, keys[2]: 0, keys[3]: 10})
	clk.Advance(31 * time.Second) // every one of them silent past its TTL
	if err := reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("guarded", map[string]float64{keys[0]: 1, keys[1]: 10, keys[2]: 0, keys[3]: 10})
	if !reg.ReleaseExpiryGuard() {
		t.Fatal("the guard was not on")
	}
	if err := reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	check("released", map[string]float64{keys[0]: 0, keys[1]: 0, keys[2]: 10, keys[3]: 0})
}

func TestBuildInfoAndLint(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	do(t, reg, 201, "POST", "/instances", register("a", "web-1"))
	got := gather(t, reg, metrics.Options{Version: "v1.2.3"})
	if got[`runspec_registry_build_info{version="v1.2.3"}`] != 1 {
		t.Errorf("no build_info with the version")
	}
	if _, ok := gather(t, reg, metrics.Options{})[`runspec_registry_build_info{version=""}`]; ok {
		t.Errorf("build_info without a version")
	}

	preg := prometheus.NewPedanticRegistry()
	preg.MustRegister(metrics.NewCollector(reg, metrics.Options{Version: "v1.2.3"}))
	problems, err := testutil.GatherAndLint(preg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

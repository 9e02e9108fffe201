// promtool_test.go runs Prometheus's promtool (Debian package prometheus;
// the tests skip without it): check metrics on a live scrape of Handler
// over HTTP, from a replica with traffic so that every family is there;
// and check rules and test rules on the alert rules of docs/monitoring.md
// with testdata/alerts_test.yml. It also checks that Handler under
// RequireRead refuses a scrape without a key.

package metrics_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/metrics"
	"github.com/runspec/registry/store/memcluster"
)

func promtoolPath(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not found (Debian package prometheus)")
	}
	return path
}

// scrape fetches url and returns the body of a 200.
func scrape(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func TestPromtoolCheckMetrics(t *testing.T) {
	promtool := promtoolPath(t)
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
	do(t, reg, 200, "POST", "/instances/a/heartbeat", "")
	do(t, reg, 200, "GET", "/tools/deploy", "")
	do(t, reg, 404, "GET", "/nowhere", "")

	srv := httptest.NewServer(metrics.Handler(reg, metrics.Options{Version: "v0.2.0"}))
	defer srv.Close()
	code, body := scrape(t, srv.URL, "")
	if code != http.StatusOK {
		t.Fatalf("scrape: %d %s", code, body)
	}
	// Every family of the Collector is in this scrape, with the Go and
	// process collectors'.
	for _, family := range []string{"build_info", "instances", "tools", "hosts", "registrations_total", "heartbeats_total",
		"tool_posts_total", "deregistrations_total", "purges_total", "expiries_total", "deletions_total",
		"refused_requests_total", "rate_limited_requests_total", "blocking_queries", "event_streams",
		"store_writes_total", "store_write_errors_total", "store_write_duration_seconds", "http_requests_total",
		"http_request_duration_seconds", "cluster_reachable", "cluster_revision", "cluster_revision_lag", "pending_writes",
		"expiry_guard_active", "expiry_guard_held_instances"} {
		if !strings.Contains(body, "\n# TYPE runspec_registry_"+family+" ") {
			t.Errorf("the scrape lacks runspec_registry_%s", family)
		}
	}
	for _, family := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if !strings.Contains(body, "\n# TYPE "+family+" ") {
			t.Errorf("the scrape lacks %s", family)
		}
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// alertRules returns the YAML block of docs/monitoring.md that holds the
// alert rules (the one that starts with groups:).
func alertRules(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "monitoring.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if strings.HasPrefix(m[1], "groups:") {
			return m[1]
		}
	}
	t.Fatal("docs/monitoring.md has no yaml block of rules (groups:)")
	return ""
}

func TestPromtoolAlertRules(t *testing.T) {
	promtool := promtoolPath(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), []byte(alertRules(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(filepath.Join("testdata", "alerts_test.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml"}} {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		cmd := exec.CommandContext(ctx, promtool, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestHandlerUnderReadAuth(t *testing.T) {
	reg, err := registry.New(registry.Options{ReadAuth: true, APIKey: "scrape-key-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg.RequireRead(metrics.Handler(reg, metrics.Options{})))
	defer srv.Close()
	if code, body := scrape(t, srv.URL, ""); code != http.StatusForbidden || body != `{"detail":"Invalid or missing API key"}` {
		t.Errorf("without a key: %d %s, want 403 and the reads' detail", code, body)
	}
	if code, body := scrape(t, srv.URL, "scrape-key-0123456789"); code != http.StatusOK || !strings.Contains(body, "runspec_registry_refused_requests_total 1\n") {
		t.Errorf("with the key: %d, want 200 and the refusal before counted:\n%s", code, body)
	}
}

// monitoring_test.go tests serve's operator endpoints with the built
// binary: /metrics on the main listener (promtool checks a live scrape),
// behind a read key under --read-auth (while /health, /openapi.json,
// /docs and /version stay open, /version saying the binary's version), on
// --metrics-addr only, off with --metrics=false; pprof on --debug-addr
// only; and the rules on the monitoring flags.

package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func TestMonitoringFlags(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string // "" for none
	}{
		{nil, ""},
		{[]string{"--metrics=false"}, ""},
		{[]string{"--no-metrics"}, ""},
		{[]string{"--metrics-addr", "127.0.0.1:9100"}, ""},
		{[]string{"--metrics-addr", ":9100"}, ""},
		{[]string{"--metrics=false", "--metrics-addr", "127.0.0.1:9100"}, "--metrics-addr conflicts with --metrics"},
		{[]string{"--metrics-addr", "9100"}, "want HOST:PORT"},
		{[]string{"--debug-addr", "127.0.0.1:6060"}, ""},
		{[]string{"--debug-addr", "localhost:6060"}, ""},
		{[]string{"--debug-addr", "[::1]:6060"}, ""},
		{[]string{"--debug-addr", ":6060"}, "not a loopback address"},
		{[]string{"--debug-addr", "0.0.0.0:6060"}, "not a loopback address"},
		{[]string{"--debug-addr", "10.0.0.1:6060"}, "not a loopback address"},
		{[]string{"--debug-addr", "10.0.0.1:6060", "--debug-insecure"}, ""},
		{[]string{"--debug-insecure"}, "--debug-insecure needs --debug-addr"},
		{[]string{"--debug-addr", "6060"}, "want HOST:PORT"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, err := parse(t, nil, tt.args...)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	t.Run("environment", func(t *testing.T) {
		_, err := parse(t, map[string]string{"RUNSPEC_REGISTRY_METRICS": "false", "RUNSPEC_REGISTRY_METRICS_ADDR": "127.0.0.1:1"})
		if err == nil || !strings.Contains(err.Error(), "RUNSPEC_REGISTRY_METRICS_ADDR (--metrics-addr) conflicts") {
			t.Errorf("error %v, want the conflict named by its variables", err)
		}
	})
}

// get fetches url with an optional bearer key and returns the status and body.
func get(t *testing.T, url, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// logged returns the url of the log line with msg. Such lines come
// before "listening", which start waited for, and the lines are read in
// order: it is there already.
func (s *server) logged(t *testing.T, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="` + regexp.QuoteMeta(msg) + `" url=(\S+)`)
	m := re.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no %q line logged before listening:\n%s", msg, s.logs.String())
	}
	return m[1]
}

// promtool runs promtool check metrics on a scrape, if promtool is there.
func promtool(t *testing.T, scrape string) {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Log("promtool not found (Debian package prometheus): scrape not checked with it")
		return
	}
	cmd := exec.Command(path, "check", "metrics")
	cmd.Stdin = strings.NewReader(scrape)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestMetricsEndpoints(t *testing.T) {
	bin := buildBinary(t)

	t.Run("main listener", func(t *testing.T) {
		s := start(t, bin, nil, "--in-memory", "--rate-limit-write", "0")
		a := agent{t: t, client: http.DefaultClient, base: s.url}
		a.expect("POST", "/instances", `{"instance_id":"m1","name":"ops","version":"1","host":"web-1"}`, 201, "")
		a.expect("POST", "/instances/m1/heartbeat", "", 200, `{"status":"refresh"}`)
		code, body := get(t, s.url+"/metrics", "")
		if code != 200 {
			t.Fatalf("GET /metrics: %d %s", code, body)
		}
		for _, want := range []string{
			"runspec_registry_registrations_total 1\n",
			`runspec_registry_heartbeats_total{answer="refresh"} 1` + "\n",
			`runspec_registry_instances{state="active"} 1` + "\n",
			`runspec_registry_http_requests_total{method="POST",route="/instances",status="201"} 1` + "\n",
			`runspec_registry_build_info{version="`,
			"go_goroutines ", "process_resident_memory_bytes ",
		} {
			if !strings.Contains(body, want) {
				t.Errorf("the scrape lacks %q", want)
			}
		}
		promtool(t, body)
		s.stop(t)
	})

	t.Run("read auth", func(t *testing.T) {
		keys := filepath.Join(t.TempDir(), "keys")
		os.WriteFile(keys, []byte("prometheus read scrape-key-0123456789\nfleet agent agent-key-0123456789\n"), 0o600)
		s := start(t, bin, nil, "--in-memory", "--read-auth", "--keys-file", keys)
		for _, tt := range []struct {
			key  string
			code int
		}{{"", 403}, {"wrong-key-0123456789", 403}, {"scrape-key-0123456789", 200}, {"agent-key-0123456789", 200}} {
			if code, body := get(t, s.url+"/metrics", tt.key); code != tt.code {
				t.Errorf("GET /metrics with key %q: %d %s, want %d", tt.key, code, body, tt.code)
			} else if code == 403 && body != `{"detail":"Invalid or missing API key"}` {
				t.Errorf("GET /metrics refused with %s, want the reads' detail", body)
			}
		}
		for _, path := range []string{"/health", "/openapi.json", "/docs", "/version"} {
			if code, _ := get(t, s.url+path, ""); code != 200 {
				t.Errorf("GET %s under read auth: %d, want 200", path, code)
			}
		}
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatal(err)
		}
		want := `{"version":` + strconv.Quote(strings.TrimSpace(string(out))) + `}`
		if _, body := get(t, s.url+"/version", ""); body != want {
			t.Errorf("GET /version: %s, want %s (what runspec-registry version prints)", body, want)
		}
		s.stop(t)
	})

	t.Run("metrics address", func(t *testing.T) {
		s := start(t, bin, nil, "--in-memory", "--read-auth", "--api-key", "writer-key-0123456789", "--metrics-addr", "127.0.0.1:0")
		murl := s.logged(t, "metrics listening")
		if code, body := get(t, murl, ""); code != 200 || !strings.Contains(body, "runspec_registry_instances") {
			t.Errorf("GET %s: %d, want 200 with the metrics", murl, code)
		}
		if code, body := get(t, s.url+"/metrics", "writer-key-0123456789"); code != 404 {
			t.Errorf("GET /metrics on the main listener: %d %s, want 404", code, body)
		}
		base := strings.TrimSuffix(murl, "/metrics")
		if code, _ := get(t, base+"/instances", ""); code != 404 {
			t.Errorf("the metrics listener serves /instances: %d", code)
		}
		s.stop(t)
	})

	t.Run("metrics off", func(t *testing.T) {
		s := start(t, bin, nil, "--in-memory", "--metrics=false")
		if code, body := get(t, s.url+"/metrics", ""); code != 404 || body != `{"detail":"Not Found"}` {
			t.Errorf("GET /metrics: %d %s, want the registry's 404", code, body)
		}
		s.stop(t)
	})

	t.Run("debug address", func(t *testing.T) {
		s := start(t, bin, nil, "--in-memory", "--debug-addr", "127.0.0.1:0")
		durl := s.logged(t, "debug listening")
		if code, body := get(t, durl, ""); code != 200 || !strings.Contains(body, "goroutine") {
			t.Errorf("GET %s: %d, want pprof's index", durl, code)
		}
		if code, body := get(t, durl+"goroutine?debug=1", ""); code != 200 || !bytes.Contains([]byte(body), []byte("goroutine profile:")) {
			t.Errorf("goroutine profile: %d", code)
		}
		base := strings.TrimSuffix(durl, "/debug/pprof/")
		for _, path := range []string{"/metrics", "/instances"} {
			if code, _ := get(t, base+path, ""); code != 404 {
				t.Errorf("the debug listener serves %s: %d", path, code)
			}
		}
		if code, _ := get(t, s.url+"/debug/pprof/", ""); code != 404 {
			t.Errorf("the main listener serves pprof: %d", code)
		}
		s.stop(t)
	})
}

// TestMetricsMethods: /metrics on the main listener answers GET and HEAD,
// OPTIONS with its Allow, and other methods 405 as the API's routes do;
// other paths go to the registry.
func TestMetricsMethods(t *testing.T) {
	metrics := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "scrape") })
	api := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "api") })
	h := withMetrics(api, metrics)
	for _, tt := range []struct {
		method, path string
		code         int
		allow, body  string
	}{
		{"GET", "/metrics", 200, "", "scrape"},
		{"HEAD", "/metrics", 200, "", "scrape"},
		{"OPTIONS", "/metrics", 200, "GET, HEAD, OPTIONS", ""},
		{"POST", "/metrics", 405, "GET, HEAD, OPTIONS", `{"detail":"Method Not Allowed"}`},
		{"DELETE", "/metrics", 405, "GET, HEAD, OPTIONS", `{"detail":"Method Not Allowed"}`},
		{"POST", "/instances", 200, "", "api"},
		{"GET", "/metrics/x", 200, "", "api"},
	} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(tt.method, tt.path, nil))
		if w.Code != tt.code || w.Header().Get("Allow") != tt.allow || w.Body.String() != tt.body {
			t.Errorf("%s %s: %d, Allow %q, body %q; want %d, %q, %q", tt.method, tt.path, w.Code, w.Header().Get("Allow"), w.Body.String(), tt.code, tt.allow, tt.body)
		}
	}
}

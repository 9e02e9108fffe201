// load_test.go tests the figures, the fleet generator and every scenario against in-process servers.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"one p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"two p50", []time.Duration{ms(1), ms(2)}, 50, ms(1)},
		{"two p90", []time.Duration{ms(1), ms(2)}, 90, ms(2)},
		{"four p50", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"four p100", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 100, ms(4)},
		{"hundred p50", hundred, 50, ms(50)},
		{"hundred p90", hundred, 90, ms(90)},
		{"hundred p99", hundred, 99, ms(99)},
		{"hundred p99.5", hundred, 99.5, ms(100)},
		{"hundred p1", hundred, 1, ms(1)},
		{"tiny p clamps to first", hundred, 0.001, ms(1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("percentile(%d samples, %v) = %v, want %v", len(tt.sorted), tt.p, got, tt.want)
			}
		})
	}
}

func TestMerge(t *testing.T) {
	a, b := newRecorder(), newRecorder()
	a.add(ms(3), 200, 10, nil)
	a.add(ms(1), 201, 10, nil)
	a.add(ms(9), 429, 5, nil)
	b.add(ms(2), 0, 0, errors.New("connection refused"))
	b.add(ms(5), 500, 0, nil)
	b.add(ms(4), 204, 0, nil)
	b.refresh = 2

	got := merge(2*time.Second, a, b)
	want := Stats{
		Requests: 6, Errors: 3,
		ErrorKinds: map[string]int{"429": 1, "500": 1, "transport": 1},
		Refresh:    2, Bytes: 25, Elapsed: 2 * time.Second,
		P50: ms(3), P90: ms(9), P99: ms(9), Max: ms(9),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("merge mismatch:\n got %+v\nwant %+v", got, want)
	}
	if tp := got.Throughput(); tp != 3 {
		t.Errorf("Throughput() = %v, want 3", tp)
	}
	if s := fmtKinds(got.ErrorKinds); s != "429×1 500×1 transport×1" {
		t.Errorf("fmtKinds = %q", s)
	}
}

func TestFmtDur(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{850 * time.Microsecond, "850µs"},
		{1234 * time.Microsecond, "1.23ms"},
		{20400 * time.Microsecond, "20.4ms"},
		{1500 * time.Millisecond, "1.50s"},
	}
	for _, tt := range tests {
		if got := fmtDur(tt.d); got != tt.want {
			t.Errorf("fmtDur(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewFleet(t *testing.T) {
	tests := []struct {
		name                 string
		agents, tools, share int
		wantNames            int
		exact                bool // every name on exactly share hosts
	}{
		{"defaults", 2000, 20, 50, 800, true},
		{"small exact", 20, 4, 5, 16, true},
		{"share one", 10, 3, 1, 30, true},
		{"not divisible", 7, 3, 2, 11, false},
		{"share above agents", 3, 5, 50, 5, false}, // all agents offer all 5 names
		{"one agent", 1, 4, 10, 4, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := NewFleet(tt.agents, tt.tools, tt.share, 42)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Agents) != tt.agents || len(f.ToolNames) != tt.wantNames {
				t.Fatalf("got %d agents, %d names; want %d, %d", len(f.Agents), len(f.ToolNames), tt.agents, tt.wantNames)
			}
			ids := map[string]bool{}
			hosts := map[string]bool{}
			offered := map[string][]Tool{} // name -> the tool on each host offering it
			for _, a := range f.Agents {
				if !uuidRE.MatchString(a.InstanceID) {
					t.Errorf("instance id %q is not UUID-4-shaped", a.InstanceID)
				}
				if ids[a.InstanceID] || hosts[a.Host] {
					t.Errorf("duplicate instance id %q or host %q", a.InstanceID, a.Host)
				}
				ids[a.InstanceID], hosts[a.Host] = true, true
				if a.Host != fmt.Sprintf("host-%05d", a.HostIndex) || !strings.HasPrefix(a.Name, "agent-pkg-") || a.Version != "1" {
					t.Errorf("bad agent %+v", a)
				}
				if len(a.Tools) != tt.tools {
					t.Errorf("%s has %d tools, want %d", a.Host, len(a.Tools), tt.tools)
				}
				mine := map[string]bool{}
				for _, tl := range a.Tools {
					if mine[tl.Name] {
						t.Errorf("%s offers %s twice", a.Host, tl.Name)
					}
					mine[tl.Name] = true
					if want := fmt.Sprintf("svc%d", a.HostIndex%7); tl.RunAs != want {
						t.Errorf("%s %s: x-run-as %q, want %q", a.Host, tl.Name, tl.RunAs, want)
					}
					if tl.Command != "/usr/local/bin/"+tl.Name || tl.BecomeMethod != "sudo" {
						t.Errorf("%s: bad execution fields %+v", a.Host, tl)
					}
					offered[tl.Name] = append(offered[tl.Name], tl)
				}
			}
			if len(offered) != len(f.ToolNames) {
				t.Errorf("%d names offered, want all %d", len(offered), len(f.ToolNames))
			}
			runAsVaries := false
			for name, on := range offered {
				switch {
				case tt.exact && len(on) != tt.share:
					t.Errorf("%s on %d hosts, want exactly %d", name, len(on), tt.share)
				case len(on) > max(tt.share, 1) && tt.share <= tt.agents:
					t.Errorf("%s on %d hosts, want at most %d", name, len(on), tt.share)
				case tt.share > tt.agents && len(on) != tt.agents:
					t.Errorf("%s on %d hosts, want all %d", name, len(on), tt.agents)
				}
				first := on[0]
				for _, tl := range on[1:] {
					if tl.Name != first.Name || tl.Description != first.Description || !bytes.Equal(tl.InputSchema, first.InputSchema) {
						t.Errorf("%s: schema differs across hosts:\n%+v\n%+v", name, first, tl)
					}
					if tl.RunAs != first.RunAs {
						runAsVaries = true
					}
				}
				var schema map[string]any
				if err := json.Unmarshal(first.InputSchema, &schema); err != nil || schema["type"] != "object" {
					t.Errorf("%s: bad inputSchema %s: %v", name, first.InputSchema, err)
				}
				if n := len(first.Description); n < 60 || n > 100 {
					t.Errorf("%s: description is %d chars, want about 80", name, n)
				}
			}
			if tt.share >= 2 && tt.agents >= 2 && !runAsVaries {
				t.Error("x-run-as is the same on every host of every tool")
			}

			again, _ := NewFleet(tt.agents, tt.tools, tt.share, 42)
			if !reflect.DeepEqual(f, again) {
				t.Error("same seed gave a different fleet")
			}
			other, _ := NewFleet(tt.agents, tt.tools, tt.share, 43)
			if other.Agents[0].InstanceID == f.Agents[0].InstanceID {
				t.Error("another seed gave the same instance ids")
			}
		})
	}
}

func TestNewFleetInvalid(t *testing.T) {
	for _, args := range [][3]int{{0, 1, 1}, {1, 0, 1}, {1, 1, 0}} {
		if _, err := NewFleet(args[0], args[1], args[2], 1); err == nil {
			t.Errorf("NewFleet%v: no error", args)
		}
	}
}

func TestAgentBodies(t *testing.T) {
	f, err := NewFleet(2, 2, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	a := f.Agents[1]
	var reg map[string]any
	if err := json.Unmarshal(a.registerBody(), &reg); err != nil {
		t.Fatal(err)
	}
	wantReg := map[string]any{"instance_id": a.InstanceID, "name": a.Name, "version": "1", "host": "host-00002"}
	if !reflect.DeepEqual(reg, wantReg) {
		t.Errorf("register body %v, want %v", reg, wantReg)
	}
	var tools struct {
		Tools []map[string]any `json:"tools"`
	}
	if err := json.Unmarshal(a.toolsBody(), &tools); err != nil {
		t.Fatal(err)
	}
	if len(tools.Tools) != 2 {
		t.Fatalf("got %d tools, want 2", len(tools.Tools))
	}
	tl := tools.Tools[0]
	var keys []string
	for k := range tl {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	wantKeys := []string{"description", "inputSchema", "name", "x-become-method", "x-command", "x-run-as"}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("tool keys %v, want %v", keys, wantKeys)
	}
	wantSchema := map[string]any{
		"type": "object",
		"properties": map[string]any{
			"target": map[string]any{"type": "string", "description": "Host, service or path that " + tl["name"].(string) + " acts on"},
			"count":  map[string]any{"type": "integer"},
		},
		"required": []any{"target"},
	}
	if !reflect.DeepEqual(tl["inputSchema"], wantSchema) {
		t.Errorf("inputSchema %v, want %v", tl["inputSchema"], wantSchema)
	}
	if tl["x-run-as"] != "svc2" {
		t.Errorf("x-run-as %v, want svc2", tl["x-run-as"])
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Mem
		wantErr bool
	}{
		{"both", "Name:\tx\nVmPeak:\t  9 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1024 kB\nThreads:\t4\n", Mem{RSS: 1024, HWM: 2048}, false},
		{"kernel thread", "Name:\tkthreadd\nThreads:\t1\n", Mem{}, true},
		{"garbage", "VmHWM:\tlots kB\nVmRSS:\t1 kB\n", Mem{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseStatus = %+v, %v; want %+v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestReadMemSelf(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs /proc")
	}
	m, err := readMem(os.Getpid())
	if err != nil || m.RSS <= 0 || m.HWM < m.RSS {
		t.Errorf("readMem(self) = %+v, %v", m, err)
	}
}

func TestTrivialHandler(t *testing.T) {
	rec := httptest.NewRecorder()
	trivialHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/instances/x/heartbeat", strings.NewReader(`{"system":{}}`)))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" || rec.Body.String() != `{"status":"ack"}` {
		t.Errorf("got %d %q %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
}

func TestServeTrivialStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveTrivial(ctx, ln) }()

	resp, err := http.Get("http://" + ln.Addr().String() + "/anything")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != `{"status":"ack"}` {
		t.Errorf("body %q", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveTrivial after cancel: %v", err)
	}
}

// runJSON runs the command with -json and returns its results by scenario
// name and its whole stdout.
func runJSON(t *testing.T, args ...string) (map[string]Result, string) {
	t.Helper()
	var out, log bytes.Buffer
	if err := run(context.Background(), append(args, "-json"), &out, &log); err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, log.String())
	}
	res := map[string]Result{}
	for line := range strings.Lines(out.String()) {
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("bad JSON line %q: %v", line, err)
		}
		res[r.Scenario] = r
	}
	return res, out.String()
}

// tiny is a small fleet and short scenarios for tests.
var tiny = []string{"-agents", "12", "-tools", "3", "-share", "4", "-duration", "200ms",
	"-clients", "4", "-read-clients", "2", "-register-clients", "3"}

func TestScenariosAgainstTrivial(t *testing.T) {
	srv := httptest.NewServer(trivialHandler())
	defer srv.Close()

	tests := []struct {
		scenarios string
		want      []string // results expected, each with requests and no errors
		absent    []string
	}{
		{"register", []string{"register", "register-tools"}, []string{"heartbeat"}},
		{"heartbeat", []string{"heartbeat"}, []string{"register", "heartbeat@compare"}},
		{"lookup", []string{"lookup"}, []string{"register"}},
		{"list", []string{"list", "list-instances"}, []string{"register"}},
		{"mixed", []string{"mixed", "mixed-heartbeat", "mixed-lookup"}, []string{"register"}},
	}
	for _, tt := range tests {
		t.Run(tt.scenarios, func(t *testing.T) {
			res, out := runJSON(t, append([]string{"-url", srv.URL, "-scenarios", tt.scenarios}, tiny...)...)
			for _, name := range tt.want {
				r, ok := res[name]
				switch {
				case !ok:
					t.Errorf("no %s result in:\n%s", name, out)
				case r.Requests == 0 || r.Errors != 0 || r.ReqPerS <= 0 || r.MaxMs < r.P50Ms:
					t.Errorf("%s: bad result %+v", name, r)
				}
				if !strings.Contains(out, "\n"+name+" ") {
					t.Errorf("no table line for %s in:\n%s", name, out)
				}
			}
			for _, name := range tt.absent {
				if _, ok := res[name]; ok {
					t.Errorf("unexpected %s result", name)
				}
			}
		})
	}

	t.Run("register counts", func(t *testing.T) {
		res, _ := runJSON(t, append([]string{"-url", srv.URL, "-scenarios", "register"}, tiny...)...)
		if res["register"].Requests != 12 || res["register-tools"].Requests != 12 {
			t.Errorf("register %d, tools %d requests; want 12 each", res["register"].Requests, res["register-tools"].Requests)
		}
	})
	t.Run("list reads at least 3 and sizes the body", func(t *testing.T) {
		res, _ := runJSON(t, "-url", srv.URL, "-scenarios", "list", "-agents", "2", "-tools", "1", "-share", "1", "-duration", "1ns")
		if l := res["list"]; l.Requests < minListRequests || l.BodyBytes != int64(len(`{"status":"ack"}`)) {
			t.Errorf("list: %+v", l)
		}
		if l := res["list-instances"]; l.Requests != 1 || l.BodyBytes != int64(len(`{"status":"ack"}`)) {
			t.Errorf("list-instances: %+v", l)
		}
	})
}

func TestCompareAndPID(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("-pid needs /proc")
	}
	a := httptest.NewServer(trivialHandler())
	defer a.Close()
	b := httptest.NewServer(trivialHandler())
	defer b.Close()

	res, out := runJSON(t, append([]string{"-url", a.URL, "-compare", b.URL, "-pid", strconv.Itoa(os.Getpid()),
		"-scenarios", "mixed,heartbeat"}, tiny...)...)
	hb, cmp, mixed := res["heartbeat"], res["heartbeat@compare"], res["mixed-heartbeat"]
	if hb.Requests == 0 || cmp.Requests == 0 || cmp.Target != b.URL || hb.Target != a.URL {
		t.Fatalf("heartbeat %+v\ncompare %+v", hb, cmp)
	}
	if want := hb.ReqPerS / cmp.ReqPerS; cmp.Ratio != want || cmp.RatioOf != "main/compare" {
		t.Errorf("compare ratio %v of %q, want %v", cmp.Ratio, cmp.RatioOf, want)
	}
	if want := mixed.ReqPerS / hb.ReqPerS; mixed.Ratio != want || mixed.RatioOf != "pure heartbeat" {
		t.Errorf("mixed ratio %v of %q, want %v", mixed.Ratio, mixed.RatioOf, want)
	}
	if hb.RSSKiB <= 0 || hb.HWMKiB < hb.RSSKiB || !strings.Contains(out, " rss ") || !strings.Contains(out, "# server pid") {
		t.Errorf("no memory figures: %+v\n%s", hb, out)
	}
	// The heartbeat runs before mixed whatever order -scenarios gives.
	if strings.Index(out, "\nheartbeat ") > strings.Index(out, "\nmixed ") {
		t.Errorf("mixed ran before heartbeat:\n%s", out)
	}
}

// fakeRegistry checks that requests have the shapes of the wire protocol and
// answers 422 (which the load generator counts as an error) when not.
type fakeRegistry struct {
	tools int

	mu         sync.Mutex
	registered map[string]bool
	posted     map[string]bool
	heartbeats int
	badKey     int
}

func newFakeRegistry(tools int) http.Handler {
	f := &fakeRegistry{tools: tools, registered: map[string]bool{}, posted: map[string]bool{}}
	mux := http.NewServeMux()
	bad := func(w http.ResponseWriter, format string, args ...any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"detail":%q}`, fmt.Sprintf(format, args...))
	}
	ok := func(w http.ResponseWriter, code int, body string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		io.WriteString(w, body)
	}
	mux.HandleFunc("POST /instances", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-API-Key") != "k" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			bad(w, "%v", err)
			return
		}
		for _, k := range []string{"instance_id", "name", "version", "host"} {
			if s, _ := body[k].(string); s == "" {
				bad(w, "field %s", k)
				return
			}
		}
		f.mu.Lock()
		f.registered[body["instance_id"].(string)] = true
		f.mu.Unlock()
		ok(w, http.StatusCreated, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /instances/{id}/tools", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Tools []map[string]any `json:"tools"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || len(body.Tools) != f.tools {
			bad(w, "tools: %v, %d", err, len(body.Tools))
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if !f.registered[r.PathValue("id")] {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		f.posted[r.PathValue("id")] = true
		ok(w, http.StatusOK, `{"status":"ok"}`)
	})
	mux.HandleFunc("POST /instances/{id}/heartbeat", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if len(b) != 0 || r.ContentLength > 0 {
			bad(w, "heartbeat has a body %q", b)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.heartbeats++
		if !f.posted[r.PathValue("id")] {
			ok(w, http.StatusOK, `{"status":"refresh"}`)
			return
		}
		ok(w, http.StatusOK, `{"status":"ack"}`)
	})
	mux.HandleFunc("GET /tools/{name}", func(w http.ResponseWriter, r *http.Request) {
		if !regexp.MustCompile(`^tool-\d{4}$`).MatchString(r.PathValue("name")) {
			bad(w, "tool name %q", r.PathValue("name"))
			return
		}
		ok(w, http.StatusOK, `{"name":"x","hosts":[]}`)
	})
	mux.HandleFunc("GET /tools", func(w http.ResponseWriter, r *http.Request) { ok(w, http.StatusOK, `[]`) })
	mux.HandleFunc("GET /instances", func(w http.ResponseWriter, r *http.Request) { ok(w, http.StatusOK, `[]`) })
	return mux
}

func TestWireShapes(t *testing.T) {
	srv := httptest.NewServer(newFakeRegistry(3))
	defer srv.Close()
	res, out := runJSON(t, append([]string{"-url", srv.URL + "/", "-key", "k"}, tiny...)...)
	for _, name := range []string{"register", "register-tools", "heartbeat", "lookup", "list", "list-instances", "mixed"} {
		if r := res[name]; r.Requests == 0 || r.Errors != 0 || r.Refresh != 0 {
			t.Errorf("%s: %+v\n%s", name, r, out)
		}
	}
}

func TestErrorsAndRefreshCounted(t *testing.T) {
	// Without the key every registration fails, so heartbeats get "refresh".
	srv := httptest.NewServer(newFakeRegistry(3))
	defer srv.Close()
	res, out := runJSON(t, append([]string{"-url", srv.URL, "-scenarios", "register,heartbeat"}, tiny...)...)
	if r := res["register"]; r.Errors != r.Requests || r.ErrorKinds["403"] != r.Requests {
		t.Errorf("register: %+v", r)
	}
	if r := res["register-tools"]; r.Errors != r.Requests || r.ErrorKinds["404"] != r.Requests {
		t.Errorf("register-tools: %+v", r)
	}
	if r := res["heartbeat"]; r.Errors != 0 || r.Refresh != r.Requests || r.Requests == 0 {
		t.Errorf("heartbeat: %+v", r)
	}
	if !strings.Contains(out, "errors 12 (403×12)") || !strings.Contains(out, "refresh ") {
		t.Errorf("table does not show errors and refreshes:\n%s", out)
	}

	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close() // nothing listens: transport errors
	res, _ = runJSON(t, append([]string{"-url", dead.URL, "-scenarios", "lookup"}, tiny...)...)
	if r := res["lookup"]; r.Requests == 0 || r.ErrorKinds["transport"] != r.Requests {
		t.Errorf("lookup against a closed server: %+v", r)
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown scenario", []string{"-scenarios", "register,nope"}, `unknown scenario "nope"`},
		{"no scenario", []string{"-scenarios", ","}, "no scenario"},
		{"zero agents", []string{"-agents", "0"}, "at least 1"},
		{"zero clients", []string{"-clients", "0"}, "at least 1"},
		{"zero duration", []string{"-duration", "0s"}, "positive"},
		{"bad url", []string{"-url", "127.0.0.1:8765"}, "bad URL"},
		{"bad compare", []string{"-compare", "ftp://x"}, "bad URL"},
		{"bad flag", []string{"-nope"}, "usage error"},
		{"extra args", []string{"x"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}

	c, err := parseFlags([]string{"-scenarios", "mixed, list,register"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"register", "list", "mixed"}; !slices.Equal(c.scenarios, want) {
		t.Errorf("scenarios %q, want %q (canonical order)", c.scenarios, want)
	}
	if c.agents != 2000 || c.tools != 20 || c.share != 50 || c.clients != 64 || c.readClients != 32 ||
		c.duration != 10*time.Second || c.url != "http://127.0.0.1:8765" {
		t.Errorf("defaults: %+v", c)
	}
}

// hostile_test.go runs the watchers and silent scenarios against an
// in-process registry (this test process is the server for -pid).

package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// TestMain stands in for the command when the watchers scenario runs this
// test binary as its watchers process.
func TestMain(m *testing.M) {
	if os.Getenv(watchersProcessEnv) != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestHostileScenarios(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("-pid needs /proc")
	}
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer reg.ReleaseWaiters()
	oldPoll := memPoll
	memPoll = 100 * time.Millisecond
	defer func() { memPoll = oldPoll }()

	res, out := runJSON(t, append([]string{"-url", srv.URL, "-scenarios", "watchers,silent", "-rounds", "2",
		"-watch-readers", "5", "-watch-queries", "6", "-watch-hot", "2", "-watch-silent", "3",
		"-watch-settle", "100ms", "-silent-conns", "3", "-silent-target", "/instances", "-silent-hold", "100ms",
		"-pid", strconv.Itoa(os.Getpid())}, tiny...)...)
	for _, name := range []string{"watch-alone", "watch-readers", "watch-silent"} {
		r, ok := res[name]
		switch {
		case !ok:
			t.Errorf("no %s result in:\n%s", name, out)
		case r.Requests == 0 || r.Errors != 0 || r.ReqPerS <= 0 || r.Round != 2:
			t.Errorf("%s: bad result %+v", name, r)
		case name != "watch-alone" && (r.Ratio <= 0 || r.RatioOf != "alone"):
			t.Errorf("%s: no ratio to the writes alone: %+v", name, r)
		}
	}
	for _, want := range []string{
		"# round 1 watch-readers: 5 reading streams: events per stream min ",
		" 0 resets, 0 errors; 6 blocking queries (2 hot): ",
		"# round 2 watch-silent: 3 silent streams",
		", watchers process ", // the watchers ran in a process of their own
		"# watch-readers / alone: median ",
		"# silent: median ",
		" server sockets ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// The counts of the watchers process came back: its streams got events.
	rounds := regexp.MustCompile(`watch-readers: 5 reading streams: events per stream min (\d+)`).FindAllStringSubmatch(out, -1)
	if len(rounds) != 2 {
		t.Errorf("%d rounds of reading streams reported, want 2:\n%s", len(rounds), out)
	}
	for _, m := range rounds {
		if m[1] == "0" {
			t.Errorf("a round's reading streams got no events (or their counts were lost): %q", m[0])
		}
	}
	if r, ok := res["silent"]; !ok || r.Clients != 3 || r.RSSKiB == 0 {
		t.Errorf("silent: %+v", r)
	}
}

func TestHostileFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"unknown phase", []string{"-watch-phases", "alone,loud"}, `unknown -watch-phases phase "loud"`},
		{"zero rounds", []string{"-rounds", "0"}, "at least 1"},
		{"more hot than queries", []string{"-watch-queries", "10", "-watch-hot", "11"}, "at most -watch-queries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseFlags(tt.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseFlags(%q) = %v, want error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
	c, err := parseFlags([]string{"-scenarios", "silent,watchers,register", "-watch-phases", "silent, alone"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"register", "watchers", "silent"}; !slices.Equal(c.scenarios, want) {
		t.Errorf("scenarios %q, want %q", c.scenarios, want)
	}
	if want := []string{"silent", "alone"}; !slices.Equal(c.watchPhases, want) {
		t.Errorf("phases %q, want %q", c.watchPhases, want)
	}
	if c, _ := parseFlags(nil, io.Discard); slices.Contains(c.scenarios, "watchers") || slices.Contains(c.scenarios, "silent") {
		t.Errorf("default scenarios %q include the hostile ones", c.scenarios)
	}
}

func TestProfiledServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- runProfiled(ctx, addr, t.TempDir(), profile, io.Discard) }()
	var resp *http.Response
	for range 100 {
		if resp, err = http.Post("http://"+addr+"/instances", "application/json",
			strings.NewReader(`{"instance_id":"a","name":"app","version":"1","host":"h"}`)); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("register: %s", resp.Status)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("runProfiled: %v", err)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("no CPU profile: %v", err)
	}
}

// TestDescribeWithoutCounts: a phase whose watchers process reported
// nothing is described, not a panic.
func TestDescribeWithoutCounts(t *testing.T) {
	got := (&watchFigures{}).describe(watchPlan{readers: 5, queries: 2}, 10)
	if !strings.Contains(got, "2 blocking queries") {
		t.Errorf("describe without counts: %q", got)
	}
}

// flags_test.go tests the interval flags (seconds or Go durations) and the
// record of which flags were set.

package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
)

func TestIntervalFlags(t *testing.T) {
	flags := []struct {
		name string
		env  string
		get  func(*serveCmd) time.Duration
	}{
		{"purge-interval", "RUNSPEC_REGISTRY_PURGE_INTERVAL", func(s *serveCmd) time.Duration { return s.PurgeInterval }},
		{"heartbeat-interval", "RUNSPEC_REGISTRY_HEARTBEAT_INTERVAL", func(s *serveCmd) time.Duration { return s.HeartbeatInterval }},
		{"retain-inactive", "RUNSPEC_REGISTRY_RETAIN_INACTIVE", func(s *serveCmd) time.Duration { return s.RetainInactive }},
		{"checkpoint-interval", "RUNSPEC_REGISTRY_CHECKPOINT_INTERVAL", func(s *serveCmd) time.Duration { return s.CheckpointInterval }},
		{"shutdown-timeout", "RUNSPEC_REGISTRY_SHUTDOWN_TIMEOUT", func(s *serveCmd) time.Duration { return s.ShutdownTimeout }},
	}
	values := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "60", want: time.Minute},
		{in: "60s", want: time.Minute},
		{in: "30", want: 30 * time.Second},
		{in: "0", want: 0},
		{in: "0.5", want: 500 * time.Millisecond},
		{in: "1m30s", want: 90 * time.Second},
		{in: "250ms", want: 250 * time.Millisecond},
		{in: "72h", want: 72 * time.Hour},
		{in: " 5 ", want: 5 * time.Second},
		{in: "ten", wantErr: `expected seconds (60) or a duration (60s, 1m30s, 250ms) but got "ten"`},
		{in: "60x", wantErr: `but got "60x"`},
		{in: "1e300", wantErr: `interval "1e300" is out of range`},
		{in: "", wantErr: `but got ""`},
	}
	for _, f := range flags {
		for _, v := range values {
			check := func(t *testing.T, c *cli, err error) {
				t.Helper()
				if v.wantErr != "" {
					if err == nil || !strings.Contains(err.Error(), v.wantErr) {
						t.Fatalf("error %v, want one containing %q", err, v.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(v.want, f.get(&c.Serve)); diff != "" {
					t.Errorf("mismatch (-want +got):\n%s", diff)
				}
			}
			t.Run(f.name+"="+v.in, func(t *testing.T) {
				c, err := parse(t, nil, "--in-memory", "--"+f.name+"="+v.in)
				check(t, c, err)
			})
			t.Run(f.env+"="+v.in, func(t *testing.T) {
				c, err := parse(t, map[string]string{f.env: v.in}, "--in-memory")
				check(t, c, err)
			})
		}
	}
}

func TestIntervalDefaults(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Serve
	got := []time.Duration{s.PurgeInterval, s.HeartbeatInterval, s.RetainInactive, s.CheckpointInterval, s.ShutdownTimeout}
	want := []time.Duration{60 * time.Second, 30 * time.Second, 72 * time.Hour, 5 * time.Second, 10 * time.Second}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}
}

// TestIntervalMapperNeedsDuration: the mapper refuses a field it would
// have to guess the unit of.
func TestIntervalMapperNeedsDuration(t *testing.T) {
	var bad struct {
		N int `type:"interval"`
	}
	p, err := kong.New(&bad, kong.NamedMapper("interval", intervalMapper{}), kong.Exit(func(int) {}), kong.Writers(&bytes.Buffer{}, &bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"--n", "5"}); err == nil || !strings.Contains(err.Error(), "must be applied to a time.Duration") {
		t.Errorf("error %v, want one about time.Duration", err)
	}
}

func TestExplicitFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want setFlags
	}{
		{"defaults only", nil, nil, setFlags{}},
		{"command line", []string{"--port", "1", "--etcd-prefix=/p/"}, nil, setFlags{"port": "--port", "etcd-prefix": "--etcd-prefix"}},
		{"environment", nil, map[string]string{"RUNSPEC_REGISTRY_DATA_DIR": "/d", "RUNSPEC_REGISTRY_STORE": ""},
			setFlags{"data-dir": "RUNSPEC_REGISTRY_DATA_DIR", "store": "RUNSPEC_REGISTRY_STORE"}},
		{"both: the command line wins", []string{"--data-dir", "/e"}, map[string]string{"RUNSPEC_REGISTRY_DATA_DIR": "/d"},
			setFlags{"data-dir": "--data-dir"}},
		{"explicit command", []string{"serve", "--in-memory"}, nil, setFlags{"in-memory": "--in-memory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var c cli
			var got setFlags
			p, err := newParser(&c, kong.Exit(func(int) {}), kong.Writers(&bytes.Buffer{}, &bytes.Buffer{}))
			if err != nil {
				t.Fatal(err)
			}
			kctx, err := kong.Trace(p, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			got = explicitFlags(kctx)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// clientcmd_test.go holds what the client commands' tests share (a
// registry served by httptest with a fixed clock, agents registered
// through the Go client, the command run in process as main runs it) and
// tests of the shared pieces: "last seen" times, --label, the flags that
// read the environment, tables.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// t0 is the registry's fixed clock in the tests; the commands' clock is
// t0 plus 12 s, so that every record was "last seen 12s ago".
var t0 = time.Unix(1_700_000_000, 0)

func fixedClock() time.Time { return t0.Add(12 * time.Second) }

// testRegistry is an in-process registry served over HTTP.
type testRegistry struct {
	t   *testing.T
	url string
	reg *registry.Registry
	c   *client.Client
}

// newTestRegistry serves a registry whose clock stands at t0.
func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	reg, err := registry.New(registry.Options{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &testRegistry{t: t, url: srv.URL, reg: reg, c: c}
}

// testAgent is an instance to register and the tools it posts.
type testAgent struct {
	id, name, host string
	labels         map[string]string
	tools          []string // JSON objects
	gone           bool     // deregistered after posting its tools
}

// add registers the agents.
func (r *testRegistry) add(agents ...testAgent) {
	r.t.Helper()
	ctx := r.t.Context()
	for _, a := range agents {
		if err := r.c.Register(ctx, registry.Registration{ID: a.id, Name: a.name, Version: "1", Host: a.host, Labels: a.labels}); err != nil {
			r.t.Fatal(err)
		}
		tools := make([]json.RawMessage, len(a.tools))
		for i, tool := range a.tools {
			tools[i] = json.RawMessage(tool)
		}
		if err := r.c.UpdateTools(ctx, a.id, tools); err != nil {
			r.t.Fatal(err)
		}
		if a.gone {
			if err := r.c.Deregister(ctx, a.id); err != nil {
				r.t.Fatal(err)
			}
		}
	}
}

// cliResult is what a command printed and its exit status.
type cliResult struct {
	stdout, stderr string
	status         int
	err            error
}

// syncBuffer is a bytes.Buffer that goroutines may write to together.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// runCLI parses args and runs the command as main does, with the query
// commands' clock at fixedClock, and returns what it printed and the
// status main would exit with (the error's message goes to stderr, as
// kong prints it).
func runCLI(ctx context.Context, t *testing.T, args ...string) cliResult {
	t.Helper()
	return runCLIOut(ctx, t, nil, args...)
}

// runCLIOut is runCLI writing stdout to out too, if not nil.
func runCLIOut(ctx context.Context, t *testing.T, out *syncBuffer, args ...string) cliResult {
	t.Helper()
	var c cli
	var stdout, stderr syncBuffer
	var w = &stdout
	if out != nil {
		w = out
	}
	p, err := newParser(&c, kong.BindTo(ctx, (*context.Context)(nil)), kong.Writers(w, &stderr),
		kong.Exit(func(int) { t.Fatalf("kong exited for %q", args) }))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse(args)
	if err != nil {
		return cliResult{stderr: err.Error(), status: 1, err: err}
	}
	c.Tools.clock, c.Hosts.clock, c.Instances.clock, c.Watch.clock, c.Which.clock = fixedClock, fixedClock, fixedClock, fixedClock, fixedClock
	err = kctx.Run()
	r := cliResult{stdout: w.String(), err: err}
	var st exitStatus
	switch {
	case errors.As(err, &st):
		r.status = int(st)
	case err != nil:
		r.status = 1
		stderr.Write([]byte("runspec-registry: error: " + err.Error() + "\n"))
	}
	r.stderr = stderr.String()
	return r
}

func TestAgo(t *testing.T) {
	now := t0
	tests := []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{t0, "0s ago"},
		{t0.Add(-12 * time.Second), "12s ago"},
		{t0.Add(-12400 * time.Millisecond), "12s ago"},
		{t0.Add(-4*time.Minute - 5*time.Second), "4m5s ago"},
		{t0.Add(-3*time.Hour - 12*time.Minute), "3h12m ago"},
		{t0.Add(-51 * time.Hour), "2d3h ago"},
		{t0.Add(2 * time.Second), "in 2s"},
	}
	for _, tt := range tests {
		if got := ago(now, tt.t); got != tt.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tt.t), got, tt.want)
		}
	}
}

func TestLabelFlags(t *testing.T) {
	// Kept as given, a key twice included: the registry ANDs them.
	f := labelFlags{Label: []string{"env=prod", "role=db=1", "empty=", "env=staging", "env=prod"}}
	got, err := f.labels()
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"active": {"true"}, "label": {"env=prod", "role=db=1", "empty=", "env=staging", "env=prod"}}
	if diff := cmp.Diff(want, got.addTo(url.Values{"active": {"true"}})); diff != "" {
		t.Errorf("query mismatch (-want +got):\n%s", diff)
	}
	if s := got.String(); s != "env=prod,role=db=1,empty=,env=staging,env=prod" {
		t.Errorf("String() = %q", s)
	}
	for _, bad := range []string{"env", "=prod"} {
		if _, err := (&labelFlags{Label: []string{bad}}).labels(); !errors.Is(err, errLabel) {
			t.Errorf("--label %q: %v, want errLabel", bad, err)
		}
	}
}

// TestClientCommandsReadOnlyTheirEnvironment checks that of every flag of
// the client commands only --registry, --registry-key and --registry-cert
// read the environment: run's --host is not serve's RUNSPEC_REGISTRY_HOST.
func TestClientCommandsReadOnlyTheirEnvironment(t *testing.T) {
	var c cli
	p, err := newParser(&c, kong.Exit(func(int) {}), kong.Writers(&bytes.Buffer{}, &bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]string{"registry": "RUNSPEC_REGISTRY_URL", "registry-key": "RUNSPEC_REGISTRY_KEY", "registry-cert": "RUNSPEC_REGISTRY_CERT"}
	clientCommands := 0
	for _, node := range p.Model.Leaves(true) {
		path := node.Path()
		if strings.HasPrefix(path, "serve") || strings.HasPrefix(path, "backup") || strings.HasPrefix(path, "version") {
			continue
		}
		clientCommands++
		sawRegistry := false
		for _, group := range node.AllFlags(true) {
			for _, f := range group {
				if f.Name == "registry" {
					sawRegistry = true
				}
				want, ok := allowed[f.Name]
				switch {
				case ok && (len(f.Envs) != 1 || f.Envs[0] != want):
					t.Errorf("%s --%s reads %v, want %s", path, f.Name, f.Envs, want)
				case !ok && len(f.Envs) > 0:
					t.Errorf("%s --%s reads the environment (%v): only the registry flags may", path, f.Name, f.Envs)
				}
			}
		}
		if !sawRegistry {
			t.Errorf("%s has no --registry flag", path)
		}
	}
	if clientCommands < 12 {
		t.Errorf("found %d client commands, want at least 12", clientCommands)
	}
	// And in effect: serve's variables do not reach run.
	t.Setenv("RUNSPEC_REGISTRY_HOST", "web-9")
	t.Setenv("RUNSPEC_REGISTRY_TIMEOUT", "1s")
	t.Setenv("RUNSPEC_REGISTRY_URL", "http://registry.example:8765")
	var c2 cli
	p, err = newParser(&c2, kong.Exit(func(int) {}), kong.Writers(&bytes.Buffer{}, &bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Parse([]string{"run", "deploy"}); err != nil {
		t.Fatal(err)
	}
	if c2.Run.Host != "" || c2.Run.Timeout != 0 || c2.Run.Registry != "http://registry.example:8765" {
		t.Errorf("run: --host %q, --timeout %v, --registry %q; want the environment only in --registry", c2.Run.Host, c2.Run.Timeout, c2.Run.Registry)
	}
}

func TestTableEscapes(t *testing.T) {
	var b bytes.Buffer
	tb := newTable(&b, "A", "B")
	tb.row("x\ty", "z\x1b[2J")
	tb.row("long value", "w")
	tb.flush()
	want := "A           B\nx\\ty        z\\x1b[2J\nlong value  w\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("table mismatch (-want +got):\n%s", diff)
	}
}

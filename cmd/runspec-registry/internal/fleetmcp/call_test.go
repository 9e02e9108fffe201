// call_test.go checks tools/call with runs recorded instead of made over
// ssh: argument violations (the tool's own schema, runspec_host), a
// tool's own host argument, unknown and inactive hosts, ambiguous
// entries, exit statuses, output caps, progress and cancellation.

package fleetmcp_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
	"github.com/runspec/registry/run"
)

func autonomous(t tool) tool { return t.with("x-autonomy", "autonomous") }

func TestArguments(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")), autonomous(tool{
		"name": "strict", "x-command": "/usr/bin/strict",
		"inputSchema": map[string]any{"type": "object", "additionalProperties": false,
			"properties": map[string]any{"mode": map[string]any{"enum": []string{"a", "b"}}}},
	}))
	f.agent("a2", "ops", "web-2", nil, autonomous(echo("deploy")))
	f.sync()
	s := f.connect(clientConfig{})
	tests := []struct {
		name string
		tool string
		args map[string]any
		want []string // in the error's text
	}{
		{"missing required", "deploy", map[string]any{"runspec_host": "web-1"}, []string{"message: required, but not given"}},
		{"wrong type", "deploy", map[string]any{"runspec_host": "web-1", "message": 3}, []string{"message:", "string"}},
		{"below minimum", "deploy", map[string]any{"runspec_host": "web-1", "message": "m", "count": 0}, []string{"count:"}},
		{"unknown argument", "deploy", map[string]any{"runspec_host": "web-1", "message": "m", "colour": "red"},
			[]string{"colour: not an argument of the tool (its arguments: count, message)"}},
		{"not in enum", "strict", map[string]any{"mode": "c"}, []string{"mode:"}},
		{"additionalProperties false, runspec_host given", "strict", map[string]any{"runspec_host": "web-1", "mode": "a"}, nil},
		{"no runspec_host with two hosts", "deploy", map[string]any{"message": "m"},
			[]string{"runspec_host is required", "web-1, web-2"}},
		{"runspec_host not a string", "deploy", map[string]any{"runspec_host": 1, "message": "m"}, []string{"runspec_host must be a string"}},
		{"unknown host", "deploy", map[string]any{"runspec_host": "web-9", "message": "m"},
			[]string{"not offered on host web-9", "hosts that offer it: web-1, web-2"}},
		{"host of another tool", "strict", map[string]any{"runspec_host": "web-2", "mode": "a"},
			[]string{"not offered on host web-2", "hosts that offer it: web-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := s.call(t, tt.tool, tt.args)
			runs := f.run.taken()
			if tt.want == nil {
				if res.IsError || len(runs) != 1 {
					t.Errorf("isError %v, %d runs, want a run: %s", res.IsError, len(runs), text(res))
				}
				return
			}
			if !res.IsError || len(runs) > 0 {
				t.Errorf("isError %v, %d runs, want an error and no run", res.IsError, len(runs))
			}
			for _, w := range tt.want {
				if !strings.Contains(text(res), w) {
					t.Errorf("error without %q: %s", w, text(res))
				}
			}
		})
	}
}

func TestOwnHostArgument(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	own := autonomous(tool{"name": "connect", "x-command": "/usr/bin/connect", "inputSchema": map[string]any{
		"type": "object", "additionalProperties": false, "required": []string{"host"},
		"properties": map[string]any{"host": map[string]any{"type": "string"}}}})
	f.agent("a1", "ops", "web-1", nil, own)
	f.agent("a2", "ops", "web-2", nil, own)
	f.sync()
	s := f.connect(clientConfig{})
	res := s.call(t, "connect", map[string]any{"runspec_host": "web-2", "host": "db.internal"})
	if res.IsError {
		t.Fatal(text(res))
	}
	runs := f.run.taken()
	if len(runs) != 1 {
		t.Fatalf("%d runs", len(runs))
	}
	got := []any{runs[0].Host, runs[0].Args, runs[0].Argv}
	want := []any{"web-2", map[string]any{"host": "db.internal"}, []string{"/usr/bin/connect", "--host", "db.internal"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plan mismatch (-want +got):\n%s", diff)
	}
}

func TestInactiveHost(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")))
	f.agent("a2", "ops", "web-2", nil, autonomous(echo("deploy")))
	f.sync()
	s := f.connect(clientConfig{})
	// web-2 goes away between the listing and the call: the catalog may or
	// may not know yet; either way nothing runs there.
	f.reg.Deregister(t.Context(), "a2")
	res := s.call(t, "deploy", map[string]any{"runspec_host": "web-2", "message": "m"})
	if !res.IsError || !strings.Contains(text(res), "web-2") || !strings.Contains(text(res), "web-1") {
		t.Errorf("a call on a host gone inactive must name it and the active host: %s", text(res))
	}
	if runs := f.run.taken(); len(runs) > 0 {
		t.Errorf("ran on an inactive host: %v", runs[0].Host)
	}
	f.sync()
	res = s.call(t, "deploy", map[string]any{"runspec_host": "web-2", "message": "m"})
	if !res.IsError || !strings.Contains(text(res), "hosts that offer it: web-1") {
		t.Errorf("the error does not name the active hosts: %s", text(res))
	}
}

func TestAmbiguous(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")))
	f.agent("a2", "ops2", "web-1", nil, autonomous(echo("deploy").with("x-command", "/usr/local/bin/deploy")))
	f.sync()
	s := f.connect(clientConfig{})
	res := s.call(t, "deploy", map[string]any{"message": "m"})
	if !res.IsError || !strings.Contains(text(res), "a1, a2") {
		t.Errorf("entries that differ on one host: %s", text(res))
	}
	if runs := f.run.taken(); len(runs) > 0 {
		t.Errorf("an ambiguous entry ran")
	}
}

func TestOutput(t *testing.T) {
	tests := []struct {
		name    string
		max     int
		out     func(ctx context.Context, p *run.Plan, stdout, stderr io.Writer) (int, error)
		isError bool
		want    []string
	}{
		{"stdout", 0, func(_ context.Context, _ *run.Plan, o, _ io.Writer) (int, error) {
			io.WriteString(o, "hello\n")
			return 0, nil
		}, false, []string{"hello\n"}},
		{"stderr too", 0, func(_ context.Context, _ *run.Plan, o, e io.Writer) (int, error) {
			io.WriteString(o, "out")
			io.WriteString(e, "warning")
			return 0, nil
		}, false, []string{"out", "stderr:\nwarning"}},
		{"exit status", 0, func(_ context.Context, p *run.Plan, o, e io.Writer) (int, error) {
			io.WriteString(o, "partial")
			io.WriteString(e, "boom")
			return 3, &run.ExitError{Host: p.Host, Status: 3}
		}, true, []string{"exited with status 3 on web-1", "stdout:\npartial", "stderr:\nboom"}},
		{"capped", 10, func(_ context.Context, _ *run.Plan, o, e io.Writer) (int, error) {
			io.WriteString(o, strings.Repeat("a", 25))
			io.WriteString(e, strings.Repeat("b", 11))
			return 0, nil
		}, false, []string{"aaaaaaaaaa", "[stdout cut: the first 10 bytes of 25 are shown]", "[stderr cut: the first 10 bytes of 11 are shown]"}},
		{"invalid UTF-8", 0, func(_ context.Context, _ *run.Plan, o, _ io.Writer) (int, error) {
			o.Write([]byte{'o', 'k', 0xff})
			return 0, nil
		}, false, []string{"ok\uFFFD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fleetmcp.Options{MaxOutput: tt.max})
			f.run.output = tt.out
			f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")))
			f.sync()
			s := f.connect(clientConfig{})
			res := s.call(t, "deploy", map[string]any{"message": "m"})
			if res.IsError != tt.isError {
				t.Errorf("isError %v, want %v: %s", res.IsError, tt.isError, text(res))
			}
			for _, w := range tt.want {
				if !strings.Contains(text(res), w) {
					t.Errorf("answer without %q: %q", w, text(res))
				}
			}
		})
	}
	if fleetmcp.DefaultMaxOutput != 1<<20 {
		t.Errorf("DefaultMaxOutput %d, want 1 MiB", fleetmcp.DefaultMaxOutput)
	}
}

func TestProgressAndCancel(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{ProgressInterval: 5 * time.Millisecond})
	started := make(chan struct{})
	stopped := make(chan error, 1)
	f.run.output = func(ctx context.Context, p *run.Plan, o, _ io.Writer) (int, error) {
		close(started)
		io.WriteString(o, "working")
		<-ctx.Done()
		stopped <- ctx.Err()
		return -1, fmt.Errorf("stopped: %w", ctx.Err())
	}
	f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")))
	f.sync()
	s := f.connect(clientConfig{})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	params := &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": "m"}}
	params.SetProgressToken("p1")
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(ctx, params)
		errc <- err
	}()
	<-started
	// Two progress notifications, then cancel the call.
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.progress)
		s.mu.Unlock()
		if n >= 2 {
			break
		}
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("%d progress notifications within 10s, want 2", n)
		}
	}
	s.mu.Lock()
	p := s.progress[1]
	s.mu.Unlock()
	if p.ProgressToken != "p1" || p.Progress != 2 || !strings.Contains(p.Message, "running on web-1") {
		t.Errorf("progress %+v", p)
	}
	cancel()
	select {
	case err := <-stopped:
		if err == nil {
			t.Error("the run's context ended without an error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the call did not stop the run within 10s")
	}
	if err := <-errc; err == nil {
		t.Error("a cancelled call answered without an error")
	}
}

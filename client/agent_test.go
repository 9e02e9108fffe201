// agent_test.go tests Agent: its life with a registry, refresh, tool
// changes, registry restarts with and without a store, an outage, jittered
// back-off, and the checks of NewAgent.

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// newAgent returns an agent "ops" on host with tool hello, heartbeating
// every 50ms, recording its events.
func newAgent(t *testing.T, c *client.Client, host string) (*client.Agent, *events) {
	t.Helper()
	ev := &events{}
	a, err := client.NewAgent(c, client.AgentConfig{
		Name:              "ops",
		Host:              host,
		Tools:             []json.RawMessage{toolJSON("hello", "echo hello")},
		HeartbeatInterval: 50 * time.Millisecond,
		OnEvent:           ev.add,
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, ev
}

func TestAgentLifecycle(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			var log reqLog
			tr.wrap = log.wrap
			reg := tr.start(registry.Options{})
			a, ev := newAgent(t, tr.client(client.Options{}), "web-1")
			if a.State() != client.StateIdle {
				t.Errorf("state before Run = %v", a.State())
			}
			stop := runAgent(t, a)
			waitFor(t, "the agent active", func() bool { return a.State() == client.StateActive })
			waitFor(t, "three heartbeats", func() bool {
				return len(log.matching(func(r loggedReq) bool { return r.path == "/instances/"+a.ID()+"/heartbeat" })) >= 3
			})
			in, _, err := reg.Instance(t.Context(), a.ID())
			if err != nil {
				t.Fatal(err)
			}
			if !in.Active || in.Host != "web-1" || in.Name != "ops" || in.Version != "1" || in.HeartbeatInterval != 50*time.Millisecond || len(in.Tools) != 1 {
				t.Errorf("instance = %+v", in)
			}
			if err := stop(); err != nil {
				t.Errorf("Run = %v, want nil", err)
			}
			if a.State() != client.StateStopped {
				t.Errorf("state after Run = %v", a.State())
			}
			if in, _, _ := reg.Instance(t.Context(), a.ID()); in.Active {
				t.Error("instance active after Run returned: not deregistered")
			}
			if f := ev.failures(); len(f) != 0 {
				t.Errorf("failures: %+v", f)
			}
			var ops []string
			for _, e := range ev.list() {
				ops = append(ops, e.Op)
			}
			if diff := cmp.Diff([]string{client.OpRegister, client.OpTools, client.OpDeregister}, ops); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAgentClose(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "inprocess")
	reg := tr.start(registry.Options{})
	c := tr.client(client.Options{})

	a, _ := newAgent(t, c, "web-1")
	errc := make(chan error, 1)
	go func() { errc <- a.Run(context.Background()) }()
	waitFor(t, "the agent active", func() bool { return a.State() == client.StateActive })
	if err := a.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := <-errc; err != nil {
		t.Errorf("Run = %v", err)
	}
	if in, _, _ := reg.Instance(t.Context(), a.ID()); in.Active {
		t.Error("instance active after Close")
	}
	if err := a.Run(context.Background()); err == nil {
		t.Error("a second Run succeeded")
	}

	b, _ := newAgent(t, c, "web-2")
	if err := b.Close(); err != nil {
		t.Errorf("Close before Run = %v", err)
	}
	if err := b.Run(context.Background()); err != nil {
		t.Errorf("Run after Close = %v", err)
	}
	if _, _, err := reg.Instance(t.Context(), b.ID()); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("Run after Close registered: %v", err)
	}
}

// A heartbeat answered refresh makes the agent post its tools again.
func TestAgentRefresh(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "inprocess")
	reg := tr.start(registry.Options{})
	a, ev := newAgent(t, tr.client(client.Options{}), "web-1")
	runAgent(t, a)
	waitFor(t, "hello on web-1", func() bool { return has(hostsOf(reg, "hello"), "web-1") })
	// Someone re-registers the id: the record has no tool list any more.
	if err := reg.Register(t.Context(), registry.Registration{ID: a.ID(), Name: "ops", Version: "1", Host: "web-1"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the tools posted again", func() bool { return ev.count(client.OpTools) == 2 && has(hostsOf(reg, "hello"), "web-1") })
	if n := ev.count(client.OpRegister); n != 1 {
		t.Errorf("%d registrations, want 1", n)
	}
}

func TestAgentSetTools(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "inprocess")
	reg := tr.start(registry.Options{})
	ev := &events{}
	a, err := client.NewAgent(tr.client(client.Options{}), client.AgentConfig{
		Name: "ops", Host: "web-1", HeartbeatInterval: time.Hour, OnEvent: ev.add,
		System: func() json.RawMessage { return json.RawMessage(`{"pid":1}`) },
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitFor(t, "the agent active", func() bool { return a.State() == client.StateActive })
	if err := a.SetTools([]json.RawMessage{json.RawMessage(`{"name":"x"}`), json.RawMessage(`{"name":"x"}`)}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("SetTools(duplicates) = %v, want ErrInvalid", err)
	}
	// The heartbeat is an hour away: SetTools posts at once.
	if err := a.SetTools([]json.RawMessage{toolJSON("bye", "echo bye")}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "bye on web-1", func() bool { return has(hostsOf(reg, "bye"), "web-1") })
}

func TestAgentSendsSystem(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "inprocess")
	reg := tr.start(registry.Options{})
	a, err := client.NewAgent(tr.client(client.Options{}), client.AgentConfig{
		Name: "ops", Host: "web-1", HeartbeatInterval: 10 * time.Millisecond,
		System: func() json.RawMessage { return json.RawMessage(`{"pid":1}`) },
	})
	if err != nil {
		t.Fatal(err)
	}
	runAgent(t, a)
	waitFor(t, "the system data", func() bool {
		in, _, err := reg.Instance(context.Background(), a.ID())
		return err == nil && string(in.System) == `{"pid":1}`
	})
}

// The registry restarts: without a store it forgot the agent, which
// registers again; with one, the agent just continues.
func TestAgentSurvivesRestart(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		for _, durable := range []bool{false, true} {
			name := mode + "/memory"
			if durable {
				name = mode + "/store"
			}
			t.Run(name, func(t *testing.T) {
				var opts registry.Options
				if durable {
					opts.Store = registry.NewMemStore()
				}
				tr := newTestRegistry(t, mode)
				reg := tr.start(opts)
				c := tr.client(client.Options{})
				a, ev := newAgent(t, c, "web-1")
				stop := runAgent(t, a)
				ctx, cancel := context.WithCancel(t.Context())
				updates, done := startWatch(c.WatchTool(ctx, "hello"))
				defer func() { cancel(); <-done }()
				next(t, updates, "hello on web-1", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-1") })
				// The registry answers before the agent reports: stop it
				// only once the agent has its answer.
				waitFor(t, "the agent active", func() bool { return ev.count(client.OpTools) == 1 && a.State() == client.StateActive })

				tr.stop()
				waitFor(t, "the agent retrying", func() bool { return a.State() == client.StateRetrying })
				reg = tr.start(opts)
				waitFor(t, "hello on web-1 again", func() bool {
					return has(hostsOf(reg, "hello"), "web-1") && a.State() == client.StateActive
				})
				if _, _, err := reg.Instance(t.Context(), a.ID()); err != nil {
					t.Fatal(err)
				}
				next(t, updates, "the watch seeing web-1 again", func(u client.ToolUpdate) bool { return has(u.HostNames(), "web-1") })

				wantRegs, wantTools := 2, 2
				if durable {
					wantRegs, wantTools = 1, 1
				}
				// The registry answers before the agent reports.
				waitFor(t, "the events", func() bool { return ev.count(client.OpTools) >= wantTools })
				if n := ev.count(client.OpRegister); n != wantRegs {
					t.Errorf("%d registrations, want %d", n, wantRegs)
				}
				if n := ev.count(client.OpTools); n != wantTools {
					t.Errorf("%d tool posts, want %d", n, wantTools)
				}
				if !durable {
					// Forgotten: the tool post answers 404 and the agent
					// registers again at once, whatever the outage's back-off.
					var forgot []client.AgentEvent
					for _, e := range ev.failures() {
						if e.Op == client.OpTools {
							forgot = append(forgot, e)
						}
					}
					if len(forgot) != 1 || !errors.Is(forgot[0].Err, client.ErrNotFound) || forgot[0].Retry != 0 || forgot[0].State != client.StateRegistering {
						t.Errorf("tool post failures = %+v, want one 404 with no wait", forgot)
					}
				}
				if err := stop(); err != nil {
					t.Errorf("Run = %v", err)
				}
				if in, _, _ := reg.Instance(t.Context(), a.ID()); in.Active {
					t.Error("instance active after Run returned")
				}
			})
		}
	}
}

// An agent that starts while the registry is down retries with growing,
// jittered waits and registers when the registry comes up.
func TestAgentWaitsForRegistry(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode) // not started
			const lo, hi = 2 * time.Millisecond, 20 * time.Millisecond
			a, ev := newAgent(t, tr.client(client.Options{MinBackoff: lo, MaxBackoff: hi}), "web-1")
			runAgent(t, a)
			waitFor(t, "six failures", func() bool { return len(ev.failures()) >= 6 })
			if a.State() != client.StateRetrying {
				t.Errorf("state = %v, want retrying", a.State())
			}
			for i, f := range ev.failures()[:6] {
				if f.Op != client.OpRegister || f.State != client.StateRetrying {
					t.Errorf("failure %d = %+v", i, f)
				}
				if ceil := min(hi, lo<<(i+1)); f.Retry < lo || f.Retry >= ceil {
					t.Errorf("retry %d waits %v, want [%v, %v)", i, f.Retry, lo, ceil)
				}
			}
			reg := tr.start(registry.Options{})
			waitFor(t, "hello on web-1", func() bool { return has(hostsOf(reg, "hello"), "web-1") })
			waitFor(t, "the agent active", func() bool { return a.State() == client.StateActive })
		})
	}
}

func TestAgentWrongKey(t *testing.T) {
	checkLeaks(t)
	tr := newTestRegistry(t, "inprocess")
	tr.start(registry.Options{APIKey: "right"})
	a, ev := newAgent(t, tr.client(client.Options{APIKey: "wrong"}), "web-1")
	stop := runAgent(t, a)
	waitFor(t, "two failures", func() bool { return len(ev.failures()) >= 2 })
	if f := ev.failures()[0]; !errors.Is(f.Err, client.ErrForbidden) || f.State != client.StateRetrying {
		t.Errorf("failure = %+v, want ErrForbidden", f)
	}
	if err := stop(); !errors.Is(err, client.ErrForbidden) {
		t.Errorf("Run = %v, want the deregistration's ErrForbidden", err)
	}
}

func TestBackoffIsJittered(t *testing.T) {
	checkLeaks(t)
	const lo, hi = time.Millisecond, 16 * time.Millisecond
	retries := func(rnd func() float64) []time.Duration {
		tr := newTestRegistry(t, "inprocess") // never started: down
		a, ev := newAgent(t, tr.client(client.Options{MinBackoff: lo, MaxBackoff: hi, Rand: rnd}), "web-1")
		stop := runAgent(t, a)
		waitFor(t, "eight failures", func() bool { return len(ev.failures()) >= 8 })
		stop()
		var out []time.Duration
		for _, f := range ev.failures()[:8] {
			out = append(out, f.Retry)
		}
		return out
	}

	// A fixed random number shows the ceilings: 2, 4, 8, 16, 16... × lo.
	half := retries(func() float64 { return 0.5 })
	var want []time.Duration
	for i := range 8 {
		ceil := min(hi, lo<<(i+1))
		want = append(want, lo+(ceil-lo)/2)
	}
	if diff := cmp.Diff(want, half); diff != "" {
		t.Errorf("back-off with rand 0.5 mismatch (-want +got):\n%s", diff)
	}

	// The default source: within bounds, and two agents do not retry in
	// step.
	a, b := retries(nil), retries(nil)
	for i, d := range append(slices.Clone(a), b...) {
		if ceil := min(hi, lo<<(i%8+1)); d < lo || d >= ceil {
			t.Errorf("retry %d waits %v, want [%v, %v)", i%8, d, lo, ceil)
		}
	}
	if slices.Equal(a, b) {
		t.Errorf("two agents back off in step: %v", a)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(a[3:])))) < 3 {
		t.Errorf("back-off at the ceiling is not jittered: %v", a)
	}
}

func TestNewAgentValidates(t *testing.T) {
	c, err := client.New("http://127.0.0.1:8765", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	long := string(make([]byte, 300))
	for _, tc := range []struct {
		name string
		cfg  client.AgentConfig
	}{
		{"no name", client.AgentConfig{Host: "h"}},
		{"control character", client.AgentConfig{Name: "ops", Host: "h\n"}},
		{"long id", client.AgentConfig{Name: "ops", Host: "h", InstanceID: long}},
		{"bad UTF-8", client.AgentConfig{Name: "\xff", Host: "h"}},
		{"negative interval", client.AgentConfig{Name: "ops", Host: "h", HeartbeatInterval: -time.Second}},
		{"interval over a day", client.AgentConfig{Name: "ops", Host: "h", HeartbeatInterval: 25 * time.Hour}},
		{"tool not an object", client.AgentConfig{Name: "ops", Host: "h", Tools: []json.RawMessage{json.RawMessage(`[1]`)}}},
		{"tool without name", client.AgentConfig{Name: "ops", Host: "h", Tools: []json.RawMessage{json.RawMessage(`{"description":"x"}`)}}},
		{"duplicate tools", client.AgentConfig{Name: "ops", Host: "h", Tools: []json.RawMessage{json.RawMessage(`{"name":"a"}`), json.RawMessage(`{"name":"a"}`)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := client.NewAgent(c, tc.cfg); !errors.Is(err, client.ErrInvalid) {
				t.Errorf("NewAgent = %v, want ErrInvalid", err)
			}
		})
	}
	a, err := client.NewAgent(c, client.AgentConfig{Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := a.Config()
	if len(a.ID()) != 36 || cfg.Version != "1" || cfg.Host == "" || cfg.HeartbeatInterval != 30*time.Second {
		t.Errorf("defaults not filled: id %q, %+v", a.ID(), cfg)
	}
	if b, _ := client.NewAgent(c, client.AgentConfig{Name: "ops"}); b.ID() == a.ID() {
		t.Error("two agents got the same id")
	}
}

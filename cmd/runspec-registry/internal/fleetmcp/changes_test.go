// changes_test.go checks the live catalog: notifications/tools/list_changed
// when tools, their hosts, schemas or descriptions change (for clients of
// both protocols: the session channel of older ones, subscriptions/listen
// of the newest), none when an answer changes nothing that is listed
// (heartbeats, execution fields), and at most one per NotifyInterval.

package fleetmcp_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
)

func TestListChanged(t *testing.T) {
	for _, protocol := range []string{newProtocol, legacyProtocol} {
		t.Run(protocol, func(t *testing.T) {
			f := newFixture(t, fleetmcp.Options{})
			f.agent("a1", "ops", "web-1", nil, echo("deploy"))
			f.sync()
			s := f.connect(clientConfig{protocol: protocol})
			steps := []struct {
				name    string
				do      func()
				changed []string // MCP names whose listing changes; nil: no notification
				removed []string
			}{
				{"a tool appears", func() { f.agent("a2", "ops", "web-2", nil, echo("status")) }, []string{"status"}, nil},
				{"a host joins", func() { f.agent("a3", "ops", "web-3", nil, echo("deploy")) }, []string{"deploy"}, nil},
				{"heartbeats", func() {
					f.clock.advance(time.Second)
					for _, id := range []string{"a1", "a2", "a3"} {
						f.reg.Heartbeat(t.Context(), id, []byte(`{"load":1}`))
					}
					// Wake the watch with a change the listing does not show.
					f.post("a3", echo("deploy").with("x-command", "/usr/local/bin/echo"))
				}, nil, nil},
				{"a schema changes", func() {
					f.post("a1", echo("deploy").with("inputSchema", map[string]any{"type": "object"}))
				}, []string{"deploy"}, nil},
				{"a description changes", func() {
					f.post("a2", echo("status").with("description", "Status, now"))
				}, []string{"status"}, nil},
				{"an autonomy changes", func() {
					f.agent("a2", "ops", "web-2", nil, echo("status").with("x-autonomy", "supervised", "x-command", "/bin/status"))
				}, []string{"status"}, nil},
				{"a tool goes", func() { f.reg.Deregister(t.Context(), "a2") }, nil, []string{"status"}},
			}
			want := 0
			for _, st := range steps {
				st.do()
				u := f.sync()
				if !equalNames(st.changed, u.Changed) || !equalNames(st.removed, u.Removed) {
					t.Errorf("%s: changed %v, removed %v; want %v, %v", st.name, u.Changed, u.Removed, st.changed, st.removed)
				}
				if st.changed != nil || st.removed != nil {
					want++
				}
				s.waitChanges(t, want)
			}
			// Every change was told, nothing else (a spurious notification
			// would have come within the SDK's 10ms before the next change's).
			if got := s.changes(); got != want {
				t.Errorf("%d notifications, want %d", got, want)
			}
		})
	}
}

func equalNames(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestListChangedAtMostOncePerInterval(t *testing.T) {
	if fleetmcp.DefaultNotifyInterval != time.Second {
		t.Errorf("DefaultNotifyInterval %v, want 1s", fleetmcp.DefaultNotifyInterval)
	}
	const interval = 300 * time.Millisecond
	f := newFixture(t, fleetmcp.Options{NotifyInterval: interval})
	s := f.connect(clientConfig{})
	// Changes one after the other, each waited for: each is told, no two
	// notifications closer than the interval.
	const steps = 4
	for i := range steps {
		f.agent(fmt.Sprintf("s%d", i), "ops", "web-1", nil, echo(fmt.Sprintf("step-%d", i)))
		f.sync()
		s.waitChanges(t, i+1)
	}
	// A burst: told together.
	const burst = 20
	for i := range burst {
		f.agent(fmt.Sprintf("b%d", i), "ops", "web-1", nil, echo(fmt.Sprintf("burst-%02d", i)))
	}
	f.sync()
	s.waitChanges(t, steps+1)
	if tools, _ := s.list(t); len(tools) != steps+burst {
		t.Fatalf("%d tools listed, want %d", len(tools), steps+burst)
	}
	s.mu.Lock()
	times := append([]time.Time(nil), s.changed...)
	s.mu.Unlock()
	if len(times) > steps+3 {
		t.Errorf("%d notifications for %d changes and a burst of %d: the burst was not told together", len(times), steps, burst)
	}
	for i := 1; i < len(times); i++ {
		// Measured where the client receives them: allow for the
		// transport's delays (tens of ms with -race on a busy machine).
		if gap := times[i].Sub(times[i-1]); gap < interval*2/3 {
			t.Errorf("notifications %d and %d are %v apart, want at least %v", i-1, i, gap, interval)
		}
	}
}

// TestFollowsRegistry: registrations, expiries and deregistrations reach
// the listing through the change stream, each as the update that applies
// it.
func TestFollowsRegistry(t *testing.T) {
	updates := make(chan fleetmcp.Update, 100)
	f := newFixture(t, fleetmcp.Options{OnUpdate: func(u fleetmcp.Update) { updates <- u }})
	s := f.connect(clientConfig{})
	waitFor := func(what string, ok func(fleetmcp.Update) bool) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case u := <-updates:
				if ok(u) {
					return
				}
			case <-deadline:
				t.Fatalf("no update with %s within 10s", what)
			}
		}
	}
	f.agent("a1", "ops", "web-1", nil, echo("deploy"))
	waitFor("deploy", func(u fleetmcp.Update) bool { return u.Tools == 1 })
	s.waitChanges(t, 1)
	f.clock.advance(60 * time.Second)
	f.agent("a2", "ops", "web-2", nil, echo("deploy"), echo("status"))
	waitFor("status", func(u fleetmcp.Update) bool { return u.Tools == 2 })
	s.waitChanges(t, 2)
	if e, _, _ := hostEnum(t, s.listed(t, "deploy")); len(e) != 2 {
		t.Errorf("runspec_host enum %v, want two hosts", e)
	}
	f.expire(40 * time.Second) // a1: 100 s without a heartbeat
	waitFor("web-1 expired", func(u fleetmcp.Update) bool { return slices.Contains(u.Changed, "deploy") })
	s.waitChanges(t, 3)
	if e, _, _ := hostEnum(t, s.listed(t, "deploy")); !slices.Equal(e, []string{"web-2"}) {
		t.Errorf("runspec_host enum %v after web-1 expired, want [web-2]", e)
	}
	f.reg.Deregister(t.Context(), "a2")
	waitFor("nothing", func(u fleetmcp.Update) bool { return u.Tools == 0 })
	s.waitChanges(t, 4)
}

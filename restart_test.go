// restart_test.go checks that a Registry started on the Store of another
// (a restart) answers as the old one did: records, tool lists, heartbeat
// times, liveness, registration order, with a grace TTL for live agents and
// none for an instance that expired before the restart; a stored record
// that would corrupt the indexes is refused at load.

package registry_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// restartFleet builds state through a registry on a new MemStore. At the
// end (t0+11s), a checkpoint has been written:
//
//	z-first  registered first (t0), tools, last seen t0
//	live     tools, heartbeat with system at t0+11s
//	slow     heartbeat_interval 300, empty tool list, heartbeat at t0+11s
//	fresh    no tool list
//	gone     tools, deregistered at t0+1s
//	short    heartbeat_interval 1, tools, expired and purged
func restartFleet(t *testing.T, opts registry.Options) *harness {
	t.Helper()
	opts.Store = registry.NewMemStore()
	a := newHarness(t, opts)
	fleet{
		// z-first sorts last but registers first: the store's order cannot
		// stand in for the registration order.
		{ID: "z-first", Name: "app", Host: "h1", Tools: []string{`{"name":"deploy","description":"First","x-command":"/z"}`}, Then: time.Second},
		{ID: "live", Name: "app", Host: "h2", Tools: []string{`{"name":"deploy","description":"Live","x-run-as":"u"}`, `{"name":"other","inputSchema":{"type":"object"}}`}},
		{ID: "slow", Name: "db", Version: "2", Host: "h1", Interval: 300, Tools: []string{}},
		{ID: "fresh", Name: "app", Host: "h4"},
		{ID: "gone", Name: "app", Host: "h5", Tools: []string{`{"name":"gone-tool"}`}, Gone: true},
		{ID: "short", Name: "app", Host: "h6", Interval: 1, Tools: []string{`{"name":"deploy"}`}, Then: 10 * time.Second},
	}.load(a)
	if err := a.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	a.must(http.StatusOK, "POST", "/instances/live/heartbeat", `{"system":{"pid":7,"uptime":11}}`)
	a.heartbeat("slow")
	if err := a.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	return a
}

// restart starts a new registry on old's store and clock.
func restart(t *testing.T, old *harness, opts registry.Options) *harness {
	t.Helper()
	if old.store == nil {
		t.Fatal("restart: the old registry has no store")
	}
	opts.Store, opts.Now = old.store, old.clock.Now
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	return &harness{tb: t, clock: old.clock, reg: reg, h: reg, store: old.store}
}

// snapshot is every read of a registry, in the registry's own order.
func snapshot(h *harness) map[string]any {
	h.tb.Helper()
	out := map[string]any{}
	for _, target := range []string{
		"/instances", "/instances?active=true", "/tools", "/tools?active=false", "/hosts", "/hosts?active=false",
		"/instances/z-first", "/instances/live", "/instances/slow", "/instances/fresh", "/instances/gone", "/instances/short",
		"/tools/deploy", "/tools/deploy?active=false",
	} {
		out[target] = h.get(target)
	}
	out["/export/mobaxterm?active=false"] = h.must(http.StatusOK, "GET", "/export/mobaxterm?active=false", "").Body.String()
	return out
}

func TestRestart(t *testing.T) {
	t.Run("everything is there", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		before := snapshot(a)
		b := restart(t, a, registry.Options{})
		if diff := cmp.Diff(before, snapshot(b)); diff != "" {
			t.Errorf("reads after the restart differ (-want +got):\n%s", diff)
		}
		// Spot checks, so that the comparison is not of two empty registries.
		want := []any{
			instRecord{ID: "fresh", Name: "app", Host: "h4", Active: true, LastSeen: t0.Add(time.Second)}.value(t),
			instRecord{ID: "gone", Name: "app", Host: "h5", Active: false, LastSeen: t0.Add(time.Second), Tools: `[{"name":"gone-tool"}]`}.value(t),
			instRecord{ID: "live", Name: "app", Host: "h2", Active: true, LastSeen: t0.Add(11 * time.Second),
				Tools:  `[{"name":"deploy","description":"Live","x-run-as":"u"},{"name":"other","inputSchema":{"type":"object"}}]`,
				System: `{"pid":7,"uptime":11}`}.value(t),
			instRecord{ID: "short", Name: "app", Host: "h6", Active: false, LastSeen: t0.Add(time.Second), Tools: `[{"name":"deploy"}]`, Interval: 1}.value(t),
			instRecord{ID: "slow", Name: "db", Version: "2", Host: "h1", Active: true, LastSeen: t0.Add(11 * time.Second), Interval: 300}.value(t),
			instRecord{ID: "z-first", Name: "app", Host: "h1", Active: true, LastSeen: t0, Tools: `[{"name":"deploy","description":"First","x-command":"/z"}]`}.value(t),
		}
		if diff := cmp.Diff(want, b.instances()); diff != "" {
			t.Errorf("records after the restart (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(js(t, `{"name":"deploy","description":"First","hosts":[{"host":"h1","x-command":"/z"},{"host":"h2","x-run-as":"u"}]}`),
			b.get("/tools/deploy"), sortHosts); diff != "" {
			t.Errorf("grouped tool after the restart (-want +got):\n%s", diff)
		}
	})

	t.Run("heartbeats answer as before", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		b := restart(t, a, registry.Options{})
		b.clock.Advance(time.Second)
		for id, want := range map[string]string{
			"z-first": "ack", "live": "ack", "slow": "ack", "fresh": "refresh", "gone": "ack", "short": "ack", "unknown": "refresh",
		} {
			if got := b.heartbeat(id); got != want {
				t.Errorf("heartbeat %s after the restart = %q, want %q", id, got, want)
			}
		}
		// The agent's answer to refresh works: its instance is known.
		b.postTools("fresh", `{"name":"f"}`)
		if got := b.heartbeat("fresh"); got != "ack" {
			t.Errorf("heartbeat fresh after posting tools = %q, want ack", got)
		}
	})

	t.Run("inactive instances stay inactive", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		b := restart(t, a, registry.Options{})
		for _, id := range []string{"gone", "short"} {
			if got := b.get("/instances/" + id).(map[string]any)["active"]; got != false {
				t.Errorf("%s after the restart: active = %v, want false", id, got)
			}
		}
		if err := b.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkJSON(t, b.do("GET", "/tools/gone-tool", ""), http.StatusNotFound, `{"detail":"Tool not found"}`)
		hosts := map[string]bool{}
		for _, e := range b.get("/hosts").([]any) {
			hosts[e.(map[string]any)["instance_id"].(string)] = true
		}
		if diff := cmp.Diff(map[string]bool{"z-first": true, "live": true, "slow": true, "fresh": true}, hosts); diff != "" {
			t.Errorf("/hosts after the restart (-want +got):\n%s", diff)
		}
	})

	t.Run("a deadline still ahead is kept", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		// The registry is down from t0+11s to t0+80s: every deadline is
		// still ahead (z-first t0+90s, fresh t0+91s, live t0+101s, slow
		// t0+911s), so each keeps its own, as if there was no restart.
		a.clock.Advance(t0.Add(80 * time.Second).Sub(a.clock.Now()))
		b := restart(t, a, registry.Options{})
		active := func(id string) any { return b.get("/instances/" + id).(map[string]any)["active"] }
		check := func(at time.Duration, want map[string]any) {
			t.Helper()
			b.clock.Advance(t0.Add(at).Sub(b.clock.Now()))
			if err := b.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
			got := map[string]any{}
			for id := range want {
				got[id] = active(id)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("at t0+%v (-want +got):\n%s", at, diff)
			}
		}
		check(90*time.Second, map[string]any{"z-first": true, "fresh": true, "live": true, "slow": true, "gone": false, "short": false})
		check(90*time.Second+time.Nanosecond, map[string]any{"z-first": false, "fresh": true})
		check(91*time.Second+time.Nanosecond, map[string]any{"fresh": false, "live": true})
		check(101*time.Second+time.Nanosecond, map[string]any{"live": false, "slow": true})
		check(911*time.Second, map[string]any{"slow": true})
		check(911*time.Second+time.Nanosecond, map[string]any{"slow": false})
		// last_seen is not invented by the restart.
		if got := b.get("/instances/live").(map[string]any)["last_seen"]; got != secs(t0.Add(11*time.Second)) {
			t.Errorf("live last_seen = %v, want %v", got, secs(t0.Add(11*time.Second)))
		}
	})

	t.Run("a deadline that fell while down gets a bounded grace", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		// Down from t0+11s to t0+1000s: every deadline fell meanwhile. The
		// grace from the restart is min(3 x own interval, 3 x the default
		// 30s) = 90s for all: slow (300s interval) no longer gets 900s.
		a.clock.Advance(t0.Add(1000 * time.Second).Sub(a.clock.Now()))
		b := restart(t, a, registry.Options{})
		active := func(id string) any { return b.get("/instances/" + id).(map[string]any)["active"] }
		for _, tt := range []struct {
			at   time.Duration
			want bool
		}{{1090 * time.Second, true}, {1090*time.Second + time.Nanosecond, false}} {
			b.clock.Advance(t0.Add(tt.at).Sub(b.clock.Now()))
			if err := b.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
			for _, id := range []string{"z-first", "fresh", "live", "slow"} {
				if got := active(id); got != tt.want {
					t.Errorf("%s at t0+%v: active %v, want %v", id, tt.at, got, tt.want)
				}
			}
		}
		// A shorter own interval bounds the grace too: an agent with a 1s
		// interval that was active gets 3s (none here: short had expired).
	})

	t.Run("the grace is the shorter of the two", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		a.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"quick","name":"app","version":"1","host":"h7","heartbeat_interval":2}`)
		if err := a.reg.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		start := a.clock.Now().Add(time.Minute) // quick's deadline (6s) fell
		a.clock.Advance(time.Minute)
		b := restart(t, a, registry.Options{})
		b.clock.Advance(start.Add(6 * time.Second).Sub(b.clock.Now()))
		if got := b.get("/instances/quick").(map[string]any)["active"]; got != true {
			t.Errorf("quick 6s after the restart: active %v, want true (3 x its 2s interval)", got)
		}
		b.clock.Advance(time.Nanosecond)
		b.reg.Purge(t.Context())
		if got := b.get("/instances/quick").(map[string]any)["active"]; got != false {
			t.Errorf("quick 6s+1ns after the restart: active %v, want false", got)
		}
	})

	t.Run("a heartbeat after the restart extends as usual", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		b := restart(t, a, registry.Options{})
		b.clock.Advance(100 * time.Second) // t0+111s, inside the grace
		if got := b.heartbeat("live"); got != "ack" {
			t.Fatalf("heartbeat = %q", got)
		}
		b.clock.Advance(90 * time.Second)
		if got := b.get("/instances/live").(map[string]any)["active"]; got != true {
			t.Errorf("at the deadline of the heartbeat: active = %v, want true", got)
		}
		b.clock.Advance(time.Nanosecond)
		if got := b.get("/instances/live").(map[string]any)["active"]; got != false {
			t.Errorf("after the deadline of the heartbeat: active = %v, want false", got)
		}
	})

	t.Run("registration order survives", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		b := restart(t, a, registry.Options{})
		b.register("new", "app", "h9")
		b.postTools("new", `{"name":"deploy","description":"New"}`)
		b.deregister("z-first")
		// live registered before new: it is the earliest active one now.
		if got := b.get("/tools/deploy").(map[string]any)["description"]; got != "Live" {
			t.Errorf("description = %v, want Live", got)
		}
		if got := b.get("/tools/deploy?active=false").(map[string]any)["description"]; got != "First" {
			t.Errorf("description with active=false = %v, want First", got)
		}
		list := b.get("/instances").([]any)
		if last := list[len(list)-1].(map[string]any)["instance_id"]; last != "new" {
			t.Errorf("last instance in the listing = %v, want new (registered last)", last)
		}
	})

	t.Run("retention continues", func(t *testing.T) {
		opts := registry.Options{RetainInactive: time.Hour}
		a := restartFleet(t, opts)
		b := restart(t, a, opts)
		// gone became inactive at t0+1s.
		b.clock.Advance(t0.Add(time.Second + time.Hour).Sub(b.clock.Now()))
		if err := b.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		b.must(http.StatusOK, "GET", "/instances/gone", "")
		b.clock.Advance(time.Nanosecond)
		if err := b.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		checkJSON(t, b.do("GET", "/instances/gone", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
		// And the deletion reached the store: a third start does not
		// bring it back.
		c := restart(t, b, opts)
		checkJSON(t, c.do("GET", "/instances/gone", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	})

	t.Run("twice", func(t *testing.T) {
		a := restartFleet(t, registry.Options{})
		b := restart(t, a, registry.Options{})
		b.clock.Advance(20 * time.Second)
		b.must(http.StatusOK, "POST", "/instances/live/heartbeat", `{"system":{"pid":8}}`)
		b.deregister("fresh")
		b.must(http.StatusOK, "POST", "/instances/gone/heartbeat", "")
		if err := b.reg.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		before := snapshot(b)
		c := restart(t, b, registry.Options{})
		if diff := cmp.Diff(before, snapshot(c)); diff != "" {
			t.Errorf("reads after the second restart differ (-want +got):\n%s", diff)
		}
		rec := c.get("/instances/live").(map[string]any)
		if diff := cmp.Diff(map[string]any{"last_seen": secs(t0.Add(31 * time.Second)), "system": js(t, `{"pid":8}`)},
			map[string]any{"last_seen": rec["last_seen"], "system": rec["system"]}); diff != "" {
			t.Errorf("live after the second restart (-want +got):\n%s", diff)
		}
	})
}

// PROTOCOL.md, "Liveness": an instance "goes stale when now - last_seen > 3
// x interval", and reads show it inactive at once, before any Purge. The
// brief for restarts: "inactive instances stay inactive"; only "an instance
// active at the restart gets a full TTL from the restart time". An instance
// already past its deadline when the registry stops, but not yet purged
// (Run's timer had not fired, or Purge is driven by hand), is stored with
// Active=true, and the new registry grants it a grace TTL: a dead agent
// shows up active again for 3 intervals after the restart.
func TestRestartRevivesExpiredInstance(t *testing.T) {
	store := registry.NewMemStore()
	a := newHarness(t, registry.Options{Store: store})
	a.register("dead", "app", "h1")
	a.postTools("dead", `{"name":"t"}`)
	a.clock.Advance(100 * time.Second) // 10s past its deadline
	if got := a.get("/instances/dead").(map[string]any)["active"]; got != false {
		t.Fatalf("before the restart: active = %v, want false", got)
	}
	if err := a.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := restart(t, a, registry.Options{})
	if got := b.get("/instances/dead").(map[string]any)["active"]; got != false {
		t.Errorf("after the restart: active = %v, want false (it was inactive before)", got)
	}
	checkJSON(t, b.do("GET", "/tools", ""), http.StatusOK, `[]`)
	checkJSON(t, b.do("GET", "/hosts", ""), http.StatusOK, `[]`)
}

// A stored tool list with a repeated name is refused at load, naming the
// record, instead of corrupting the tool index.
func TestStoredDuplicateToolNames(t *testing.T) {
	mem := registry.NewMemStore()
	mem.Put(context.Background(), registry.Record{ID: "a", Name: "n", Version: "1", Host: "h", Seq: 1,
		Registered: t0, LastSeen: t0, HeartbeatInterval: time.Second, Active: true,
		Tools: []json.RawMessage{json.RawMessage(`{"name":"x"}`), json.RawMessage(`{"name":"x"}`)}})
	if _, err := registry.New(registry.Options{Store: mem}); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("New = %v, want an error naming record \"a\"", err)
	}
}

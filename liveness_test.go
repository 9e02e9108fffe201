// liveness_test.go checks liveness with a fake clock: the exact deadline in
// every read before and after Purge, the expiry reaching the Store, revival
// by heartbeat, per-agent intervals and the retention of inactive records.

package registry_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// reads reports, for each way of reading the registry, whether it shows
// the instance "a" (host "ha", tool "ta") as active.
func reads(t *testing.T, h *harness) map[string]bool {
	t.Helper()
	ctx := t.Context()
	got := map[string]bool{}
	got["GET /instances/a"] = h.get("/instances/a").(map[string]any)["active"] == true
	for _, e := range h.get("/instances").([]any) {
		if e.(map[string]any)["instance_id"] == "a" {
			got["GET /instances"] = e.(map[string]any)["active"] == true
		}
	}
	got["GET /instances?active=true"] = len(h.get("/instances?active=true").([]any)) == 1
	got["GET /tools"] = len(h.get("/tools").([]any)) == 1
	got["GET /tools/ta"] = h.do("GET", "/tools/ta", "").Code == http.StatusOK
	got["GET /hosts"] = len(h.get("/hosts").([]any)) == 1
	got["GET /export/mobaxterm"] = strings.Contains(h.must(http.StatusOK, "GET", "/export/mobaxterm", "").Body.String(), "(ha) =#109#")

	in, _, err := h.reg.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got["Instance"] = in.Active
	ins, _, err := h.reg.Instances(ctx, registry.Filter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got["Instances"] = len(ins) == 1
	tools, _, err := h.reg.Tools(ctx, registry.Filter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got["Tools"] = len(tools) == 1
	_, _, err = h.reg.Tool(ctx, "ta", registry.Filter{ActiveOnly: true})
	if err != nil && !errors.Is(err, registry.ErrNotFound) {
		t.Fatal(err)
	}
	got["Tool"] = err == nil
	hosts, _, err := h.reg.Hosts(ctx, registry.Filter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	got["Hosts"] = len(hosts) == 1
	return got
}

// allReads is what reads returns when every read agrees on active.
func allReads(active bool) map[string]bool {
	m := map[string]bool{}
	for _, k := range []string{"GET /instances/a", "GET /instances", "GET /instances?active=true", "GET /tools", "GET /tools/ta",
		"GET /hosts", "GET /export/mobaxterm", "Instance", "Instances", "Tools", "Tool", "Hosts"} {
		m[k] = active
	}
	return m
}

func TestDeadline(t *testing.T) {
	tests := []struct {
		name     string
		interval string // heartbeat_interval of the registration; "" for none
		opts     registry.Options
		ttl      time.Duration
		// heartbeatAt, if not zero, sends a heartbeat that long after
		// the registration; the deadline counts from it.
		heartbeatAt time.Duration
	}{
		{name: "default interval", ttl: 90 * time.Second},
		{name: "server default", opts: registry.Options{HeartbeatInterval: 10 * time.Second}, ttl: 30 * time.Second},
		{name: "per-agent interval", interval: "100", ttl: 300 * time.Second},
		{name: "per-agent interval under the server's", interval: "2.5", opts: registry.Options{HeartbeatInterval: time.Hour}, ttl: 7500 * time.Millisecond},
		{name: "longest interval", interval: "86400", ttl: 3 * 24 * time.Hour},
		{name: "after a heartbeat", ttl: 90 * time.Second, heartbeatAt: 80 * time.Second},
		{name: "per-agent interval after a heartbeat", interval: "7", ttl: 21 * time.Second, heartbeatAt: 20 * time.Second},
	}
	for _, tt := range tests {
		for _, purge := range []bool{false, true} {
			name := tt.name
			if purge {
				name += "/purged"
			}
			t.Run(name, func(t *testing.T) {
				h := newHarness(t, tt.opts)
				body := `{"instance_id":"a","name":"app","version":"1","host":"ha"}`
				if tt.interval != "" {
					body = `{"instance_id":"a","name":"app","version":"1","host":"ha","heartbeat_interval":` + tt.interval + `}`
				}
				h.must(http.StatusCreated, "POST", "/instances", body)
				h.postTools("a", `{"name":"ta"}`)
				last := h.clock.Now()
				if tt.heartbeatAt != 0 {
					h.clock.Advance(tt.heartbeatAt)
					if got := h.heartbeat("a"); got != "ack" {
						t.Fatalf("heartbeat = %q, want ack", got)
					}
					last = h.clock.Now()
				}
				purgeIf := func() {
					if purge {
						if err := h.reg.Purge(t.Context()); err != nil {
							t.Fatal(err)
						}
					}
				}
				// Exactly at the deadline: still active.
				h.clock.Advance(last.Add(tt.ttl).Sub(h.clock.Now()))
				purgeIf()
				if diff := cmp.Diff(allReads(true), reads(t, h)); diff != "" {
					t.Errorf("at the deadline (-want +got):\n%s", diff)
				}
				// 1ns later: inactive everywhere, whether Purge ran or not.
				h.clock.Advance(time.Nanosecond)
				purgeIf()
				if diff := cmp.Diff(allReads(false), reads(t, h)); diff != "" {
					t.Errorf("1ns after the deadline (-want +got):\n%s", diff)
				}
				// last_seen is not changed by expiry.
				if got := h.get("/instances/a").(map[string]any)["last_seen"]; got != secs(last) {
					t.Errorf("last_seen = %v, want %v", got, secs(last))
				}
			})
		}
	}
}

// TestPurgeFlipsStoredState checks that Purge, not only reads, makes the
// expiry: the Store's record becomes inactive, since the deadline.
func TestPurgeFlipsStoredState(t *testing.T) {
	store := registry.NewMemStore()
	h := newHarness(t, registry.Options{Store: store})
	h.register("a", "app", "ha")
	h.register("b", "app", "hb")
	stored := func() map[string]registry.Record {
		recs := map[string]registry.Record{}
		if err := store.Load(context.Background(), func(r registry.Record) error { recs[r.ID] = r; return nil }); err != nil {
			t.Fatal(err)
		}
		return recs
	}
	h.clock.Advance(60 * time.Second)
	if got := h.heartbeat("b"); got != "refresh" {
		t.Fatalf("heartbeat = %q", got)
	}
	h.clock.Advance(31 * time.Second) // a is past its deadline, b is not
	if got := stored()["a"]; !got.Active {
		t.Errorf("before Purge: stored a is inactive; reads compute expiry, the store should only change at Purge")
	}
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	recs := stored()
	if a := recs["a"]; a.Active || !a.InactiveSince.Equal(t0.Add(90*time.Second)) {
		t.Errorf("after Purge: stored a active=%v inactive since %v, want false since %v", a.Active, a.InactiveSince, t0.Add(90*time.Second))
	}
	if b := recs["b"]; !b.Active {
		t.Errorf("after Purge: stored b inactive, want active")
	}
	if got := h.get("/instances/a").(map[string]any)["active"]; got != false {
		t.Errorf("after Purge: a active = %v", got)
	}
	// Purge again changes nothing.
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recs, stored()); diff != "" {
		t.Errorf("second Purge changed the store (-want +got):\n%s", diff)
	}
}

// An expiry applied by a read whose client went away (a canceled context)
// must still reach the store: memory already changed.
func TestExpiryWrittenDespiteCanceledContext(t *testing.T) {
	clock := &fakeClock{now: t0}
	mem := registry.NewMemStore()
	reg, _ := registry.New(registry.Options{Store: mem, Now: clock.Now, HeartbeatInterval: time.Second})
	reg.Register(context.Background(), registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	clock.Advance(4 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reg.Purge(ctx)
	if storedActive(t, mem, "a") {
		t.Error("expired in memory, still active in the store")
	}
}

func TestHeartbeatRevives(t *testing.T) {
	tests := []struct {
		name  string
		kill  func(t *testing.T, h *harness)
		tools bool
		want  string
	}{
		{"expired, not purged", func(t *testing.T, h *harness) { h.clock.Advance(time.Hour) }, true, "ack"},
		{"expired and purged", func(t *testing.T, h *harness) {
			h.clock.Advance(time.Hour)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, true, "ack"},
		{"deregistered", func(t *testing.T, h *harness) { h.deregister("a") }, true, "ack"},
		{"deregistered, then expired and purged", func(t *testing.T, h *harness) {
			h.deregister("a")
			h.clock.Advance(time.Hour)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}, true, "ack"},
		{"deregistered without tools", func(t *testing.T, h *harness) { h.deregister("a") }, false, "refresh"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "ha")
			if tt.tools {
				h.postTools("a", `{"name":"ta"}`)
			}
			tt.kill(t, h)
			h.clock.Advance(time.Second)
			if got := h.get("/instances/a").(map[string]any)["active"]; got != false {
				t.Fatalf("before the heartbeat: active = %v, want false", got)
			}
			if got := h.heartbeat("a"); got != tt.want {
				t.Errorf("heartbeat = %q, want %q", got, tt.want)
			}
			revived := h.clock.Now()
			rec := h.get("/instances/a").(map[string]any)
			if rec["active"] != true || rec["last_seen"] != secs(revived) {
				t.Errorf("after the heartbeat: active %v last_seen %v, want true %v", rec["active"], rec["last_seen"], secs(revived))
			}
			if tt.tools {
				if diff := cmp.Diff(js(t, `[{"name":"ta","hosts":[{"host":"ha"}]}]`), h.get("/tools")); diff != "" {
					t.Errorf("GET /tools after revival (-want +got):\n%s", diff)
				}
			}
			// A full TTL from the revival, and a Purge does not undo it.
			h.clock.Advance(90 * time.Second)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
			if got := h.get("/instances/a").(map[string]any)["active"]; got != true {
				t.Errorf("at the new deadline: active = %v, want true", got)
			}
			h.clock.Advance(time.Nanosecond)
			if got := h.get("/instances/a").(map[string]any)["active"]; got != false {
				t.Errorf("after the new deadline: active = %v, want false", got)
			}
		})
	}
}

func TestToolsDoNotReactivate(t *testing.T) {
	tests := []struct {
		name string
		kill func(t *testing.T, h *harness)
	}{
		{"deregistered", func(t *testing.T, h *harness) { h.deregister("a") }},
		{"expired, not purged", func(t *testing.T, h *harness) { h.clock.Advance(91 * time.Second) }},
		{"expired and purged", func(t *testing.T, h *harness) {
			h.clock.Advance(91 * time.Second)
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "ha")
			tt.kill(t, h)
			h.clock.Advance(time.Second)
			checkJSON(t, h.do("POST", "/instances/a/tools", toolsBody(`{"name":"ta","x-command":"c"}`)), http.StatusOK, `{"status":"ok"}`)
			want := instRecord{ID: "a", Name: "app", Host: "ha", Active: false, LastSeen: t0, Tools: `[{"name":"ta","x-command":"c"}]`}
			if diff := cmp.Diff(want.value(t), h.get("/instances/a")); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
			if err := h.reg.Purge(t.Context()); err != nil {
				t.Fatal(err)
			}
			checkJSON(t, h.do("GET", "/tools", ""), http.StatusOK, `[]`)
			checkJSON(t, h.do("GET", "/tools/ta?active=false", ""), http.StatusOK, `{"name":"ta","hosts":[{"host":"ha","x-command":"c"}]}`)
			// The next heartbeat revives it and knows its tools.
			if got := h.heartbeat("a"); got != "ack" {
				t.Errorf("heartbeat = %q, want ack", got)
			}
		})
	}
}

func TestRetainInactive(t *testing.T) {
	const retain = time.Hour
	tests := []struct {
		name string
		kill func(h *harness)
		// since is when the instance became inactive.
		since time.Duration
	}{
		{"deregistered", func(h *harness) { h.clock.Advance(10 * time.Second); h.deregister("a") }, 10 * time.Second},
		{"expired", func(h *harness) {}, 90 * time.Second},
		{"expired, then deregistered", func(h *harness) { h.clock.Advance(10 * time.Minute); h.deregister("a") }, 90 * time.Second},
	}
	for _, tt := range tests {
		for _, via := range []string{"purge", "heartbeat"} {
			t.Run(tt.name+"/"+via, func(t *testing.T) {
				h := newHarness(t, registry.Options{RetainInactive: retain})
				h.register("a", "app", "ha")
				h.postTools("a", `{"name":"ta"}`)
				h.register("keep", "app", "hk")
				tt.kill(h)
				// Keep "keep" alive all along.
				for h.clock.Now().Add(time.Minute).Before(t0.Add(tt.since + retain)) {
					h.clock.Advance(time.Minute)
					h.heartbeat("keep")
				}
				h.clock.Advance(t0.Add(tt.since + retain).Sub(h.clock.Now()))
				h.heartbeat("keep")
				// Exactly at the end of the retention: kept.
				if err := h.reg.Purge(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := h.get("/instances/a").(map[string]any)["active"]; got != false {
					t.Fatalf("at the end of the retention: active = %v, want false", got)
				}
				h.clock.Advance(time.Nanosecond)
				switch via {
				case "purge":
					if err := h.reg.Purge(t.Context()); err != nil {
						t.Fatal(err)
					}
					checkJSON(t, h.do("GET", "/instances/a", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
					checkJSON(t, h.do("GET", "/tools/ta?active=false", ""), http.StatusNotFound, `{"detail":"Tool not found"}`)
					if got := len(h.get("/hosts?active=false").([]any)); got != 1 {
						t.Errorf("GET /hosts?active=false has %d entries, want only keep's", got)
					}
					if got := h.instances(); len(got) != 1 || got[0].(map[string]any)["instance_id"] != "keep" {
						t.Errorf("GET /instances = %v, want only keep", got)
					}
					fallthrough
				case "heartbeat":
					// Without a Purge, the heartbeat itself finds it too old.
					if got := h.heartbeat("a"); got != "refresh" {
						t.Errorf("heartbeat after the retention = %q, want refresh", got)
					}
					checkJSON(t, h.do("GET", "/instances/a", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
					checkJSON(t, h.do("POST", "/instances/a/tools", toolsBody(`{"name":"ta"}`)), http.StatusNotFound, `{"detail":"Instance not found"}`)
				}
				// The id can register again, as a new instance.
				h.register("a", "app", "ha")
				if got := h.heartbeat("a"); got != "refresh" {
					t.Errorf("heartbeat after registering again = %q, want refresh", got)
				}
			})
		}
	}
}

func TestRetainInactiveDefault(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "ha")
	h.deregister("a")
	h.clock.Advance(registry.DefaultRetainInactive)
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	h.must(http.StatusOK, "GET", "/instances/a", "")
	h.clock.Advance(time.Nanosecond)
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	checkJSON(t, h.do("GET", "/instances/a", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
}

func TestRetainInactiveForever(t *testing.T) {
	h := newHarness(t, registry.Options{RetainInactive: -1})
	h.register("a", "app", "ha")
	h.postTools("a", `{"name":"ta"}`)
	h.register("b", "app", "hb")
	h.deregister("b")
	for range 10 {
		h.clock.Advance(365 * 24 * time.Hour)
		if err := h.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	want := []any{
		instRecord{ID: "a", Name: "app", Host: "ha", LastSeen: t0, Tools: `[{"name":"ta"}]`}.value(t),
		instRecord{ID: "b", Name: "app", Host: "hb", LastSeen: t0}.value(t),
	}
	if diff := cmp.Diff(want, h.instances()); diff != "" {
		t.Errorf("records after 10 years (-want +got):\n%s", diff)
	}
	if got := h.heartbeat("a"); got != "ack" {
		t.Errorf("heartbeat after 10 years = %q, want ack", got)
	}
}

// TestPurgeModel drives many instances with random intervals, heartbeats,
// deregistrations and clock steps (often landing exactly on deadlines), and
// after each Purge compares the reads and the Store with a simple model.
func TestPurgeModel(t *testing.T) {
	const retain = 200 * time.Second
	type modelInst struct {
		interval, lastSeen time.Duration // offsets from t0
		active             bool
		inactiveSince      time.Duration
		tools              bool
	}
	store := registry.NewMemStore()
	h := newHarness(t, registry.Options{Store: store, RetainInactive: retain})
	rnd := rand.New(rand.NewPCG(1, 2))
	model := map[string]*modelInst{}
	now := func() time.Duration { return h.clock.Now().Sub(t0) }
	deadline := func(m *modelInst) time.Duration { return m.lastSeen + 3*m.interval }
	// settle applies what is due at now, as Purge or a heartbeat would.
	settle := func(id string, m *modelInst) (deleted bool) {
		if m.active && now() > deadline(m) {
			m.active, m.inactiveSince = false, deadline(m)
		}
		if !m.active && now() > m.inactiveSince+retain {
			delete(model, id)
			return true
		}
		return false
	}
	intervals := []int{1, 2, 5, 10, 30}
	for step := range 400 {
		id := fmt.Sprintf("i%02d", rnd.IntN(40))
		m := model[id]
		switch op := rnd.IntN(10); {
		case op < 3: // register
			iv := intervals[rnd.IntN(len(intervals))]
			h.must(http.StatusCreated, "POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"app","version":"1","host":%q,"heartbeat_interval":%d}`, id, id, iv))
			model[id] = &modelInst{interval: time.Duration(iv) * time.Second, lastSeen: now(), active: true}
		case op < 7: // heartbeat
			want := "refresh"
			if m != nil && !settle(id, m) {
				m.active, m.lastSeen = true, now()
				if m.tools {
					want = "ack"
				}
			}
			if got := h.heartbeat(id); got != want {
				t.Fatalf("step %d: heartbeat %s = %q, want %q", step, id, got, want)
			}
		case op < 8: // tools
			if m == nil {
				h.must(http.StatusNotFound, "POST", "/instances/"+id+"/tools", toolsBody())
			} else {
				h.postTools(id, `{"name":"t"}`)
				m.tools = true
			}
		case op < 9: // deregister
			h.deregister(id)
			if m != nil && m.active {
				m.active, m.inactiveSince = false, min(now(), deadline(m))
			}
		default:
			h.clock.Advance(time.Duration(rnd.IntN(120)) * time.Second)
		}
		if rnd.IntN(3) == 0 {
			h.clock.Advance(time.Duration(rnd.IntN(4)) * time.Second)
		}
		if err := h.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		for id, m := range model {
			settle(id, m)
		}

		// Reads.
		want := map[string]bool{}
		for id, m := range model {
			want[id] = m.active
		}
		got := map[string]bool{}
		for _, e := range h.get("/instances").([]any) {
			got[e.(map[string]any)["instance_id"].(string)] = e.(map[string]any)["active"].(bool)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d (now t0+%v): GET /instances active flags (-want +got):\n%s", step, now(), diff)
		}
		// Store: the same records, the same liveness.
		type stored struct {
			Active        bool
			InactiveSince time.Time
		}
		wantStore, gotStore := map[string]stored{}, map[string]stored{}
		for id, m := range model {
			s := stored{Active: m.active}
			if !m.active {
				s.InactiveSince = t0.Add(m.inactiveSince)
			}
			wantStore[id] = s
		}
		if err := store.Load(t.Context(), func(r registry.Record) error {
			gotStore[r.ID] = stored{r.Active, r.InactiveSince}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(wantStore, gotStore); diff != "" {
			t.Fatalf("step %d (now t0+%v): stored liveness (-want +got):\n%s", step, now(), diff)
		}
	}
}

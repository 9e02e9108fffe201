// guard_test.go checks the mass-expiry guard: a simulated partition of 90%
// of the fleet for 5 minutes, with the guard off (they expire) and on (they
// stay active and say expiry_guarded, /health stays v1 and its detail says
// guarded); healing releases it and a single silent agent then expires;
// a silence whose deadlines are spread over the window is held from its
// first expiry, and a silent minority still expires one by one;
// the guard's maximum and an admin release it; a restart's grace does not
// engage it; and a replica refuses it.

package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
)

// partition registers n agents (interval 10s, so a TTL of 30s), lets the
// first n/10 heartbeat every 10s and the rest fall silent for d, then
// heals: all but one resume. It returns how many were active at each
// minute.
func partition(t *testing.T, h *harness, n int, d time.Duration) (activeAt []int, lastSilent string) {
	t.Helper()
	for i := range n {
		h.must(201, "POST", "/instances", fmt.Sprintf(`{"instance_id":"a%d","name":"ops","version":"1","host":"h%d","heartbeat_interval":10}`, i, i))
	}
	beat := func(ids func(i int) bool) {
		for i := range n {
			if ids(i) {
				h.heartbeat(fmt.Sprint("a", i))
			}
		}
	}
	step := func(ids func(i int) bool) {
		h.clock.Advance(10 * time.Second)
		beat(ids)
		if err := h.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int { st := h.reg.Stats(); return st.Active }
	reachable := func(i int) bool { return i < n/10 }
	for s := range int(d / (10 * time.Second)) {
		step(reachable)
		if s%6 == 5 {
			activeAt = append(activeAt, count())
		}
	}
	lastSilent = fmt.Sprint("a", n-1)
	healed := func(i int) bool { return i != n-1 } // one agent stays silent: it died
	for range 12 {
		step(healed)
	}
	activeAt = append(activeAt, count())
	return activeAt, lastSilent
}

func TestPartitionWithoutGuard(t *testing.T) {
	h := newHarness(t, registry.Options{})
	activeAt, _ := partition(t, h, 100, 5*time.Minute)
	// Each minute of the partition, 10: the 90 silent ones expired. After
	// healing, 99: a heartbeat revives a record, and one agent died.
	if diff := cmp.Diff([]int{10, 10, 10, 10, 10, 99}, activeAt); diff != "" {
		t.Errorf("active each minute, then after healing (-want +got):\n%s", diff)
	}
}

func TestPartitionWithGuard(t *testing.T) {
	h := newHarness(t, registry.Options{ExpiryGuard: 50, HeartbeatInterval: 10 * time.Second})
	var healthDuring, detailDuring, recordDuring string
	n := 100
	for i := range n {
		h.must(201, "POST", "/instances", fmt.Sprintf(`{"instance_id":"a%d","name":"ops","version":"1","host":"h%d","heartbeat_interval":10}`, i, i))
	}
	purge := func() {
		if err := h.reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for s := range 30 { // 5 minutes: only a0..a9 reach the registry
		h.clock.Advance(10 * time.Second)
		for i := range n / 10 {
			h.heartbeat(fmt.Sprint("a", i))
		}
		purge()
		if s == 15 {
			healthDuring = h.must(200, "GET", "/health", "").Body.String()
			detailDuring = h.must(200, "GET", "/health?detail=true", "").Body.String()
			recordDuring = h.must(200, "GET", "/instances/a50", "").Body.String()
		}
		if st := h.reg.Stats(); st.Active != n {
			t.Fatalf("%ds into the partition: %d active, want all %d held by the guard", (s+1)*10, st.Active, n)
		}
	}
	if healthDuring != `{"status":"ok"}` {
		t.Errorf("GET /health while guarded = %s, want v1's ok", healthDuring)
	}
	if !strings.Contains(detailDuring, `"status":"guarded"`) || !strings.Contains(detailDuring, "would go inactive") {
		t.Errorf("GET /health?detail=true while guarded = %s", detailDuring)
	}
	if !strings.Contains(recordDuring, `"active":true`) || !strings.Contains(recordDuring, `"expiry_guarded":true`) {
		t.Errorf("a held record = %s, want active and expiry_guarded", recordDuring)
	}
	// Healing: all but a99 come back. The guard releases after one
	// window below half its threshold, and a99 then expires.
	for range 12 {
		h.clock.Advance(10 * time.Second)
		for i := range n - 1 {
			h.heartbeat(fmt.Sprint("a", i))
		}
		purge()
	}
	if g := h.reg.ExpiryGuard(); g.Guarded {
		t.Fatalf("still guarded two minutes after healing: %+v", g)
	}
	st := h.reg.Stats()
	if st.Active != n-1 {
		t.Errorf("after healing %d active, want %d", st.Active, n-1)
	}
	if rec := h.must(200, "GET", "/instances/a99", "").Body.String(); !strings.Contains(rec, `"active":false`) || strings.Contains(rec, "expiry_guarded") {
		t.Errorf("the silent agent after the release = %s, want inactive", rec)
	}
}

// TestGuardSpreadDeadlines registers agents 100 ms apart, as a real fleet
// heartbeats on phases of its own, so that the silent ones reach their
// deadlines one by one over the window rather than at one instant. A mass
// silence must be held from its first expiry; a silent minority must expire
// one by one. Then the fleet heals but for one agent, which died: the guard
// releases and that agent expires.
func TestGuardSpreadDeadlines(t *testing.T) {
	const gap = 100 * time.Millisecond
	for _, tc := range []struct {
		name       string
		n, silent  int
		interval   time.Duration // the agents' and the default
		wantReason string        // "": the guard never engages
	}{
		{"the whole fleet", 6, 6, 2 * time.Second, "6 of 6 active instances would go inactive within 6s (more than 50%)"},
		{"90 of 100", 100, 90, 10 * time.Second, "90 of 100 active instances would go inactive within 30s (more than 50%)"},
		{"60 of 100", 100, 60, 10 * time.Second, "60 of 100 active instances would go inactive within 30s (more than 50%)"},
		{"a minority", 100, 40, 10 * time.Second, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{ExpiryGuard: 50, HeartbeatInterval: tc.interval})
			ttl := 3 * tc.interval
			for i := range tc.n {
				if i > 0 {
					h.clock.Advance(gap)
				}
				h.must(201, "POST", "/instances", fmt.Sprintf(`{"instance_id":"a%d","name":"ops","version":"1","host":"h%d","heartbeat_interval":%d}`,
					i, i, tc.interval/time.Second))
			}
			registered := func(i int) time.Duration { return time.Duration(i) * gap }
			elapsed := time.Duration(tc.n-1) * gap
			// step moves the clock on by gap; the agents that beat(i)
			// heartbeat on their own phase, then Purge runs.
			step := func(beats func(i int) bool) {
				h.clock.Advance(gap)
				elapsed += gap
				for i := range tc.n {
					if since := elapsed - registered(i); beats(i) && since > 0 && since%tc.interval == 0 {
						h.heartbeat(fmt.Sprint("a", i))
					}
				}
				if err := h.reg.Purge(t.Context()); err != nil {
					t.Fatal(err)
				}
			}
			silent := func(i int) bool { return i >= tc.n-tc.silent }
			var reason string
			for elapsed < 2*time.Minute {
				step(func(i int) bool { return !silent(i) })
				want := tc.n
				if tc.wantReason == "" { // each silent agent expires at its own deadline
					for i := range tc.n {
						if silent(i) && registered(i)+ttl < elapsed {
							want--
						}
					}
				}
				if got := h.reg.Stats().Active; got != want {
					t.Fatalf("%v after the first registration: %d active, want %d", elapsed, got, want)
				}
				if g := h.reg.ExpiryGuard(); g.Guarded && reason == "" {
					reason = g.Reason
				}
			}
			if reason != tc.wantReason {
				t.Errorf("the guard's reason = %q, want %q", reason, tc.wantReason)
			}
			if tc.wantReason != "" {
				if g := h.reg.ExpiryGuard(); !g.Guarded || g.Held != tc.silent {
					t.Errorf("during the silence: guard %+v, want on and holding %d", g, tc.silent)
				}
			}
			// Healing: all but the last agent heartbeat again.
			for range 2 * ttl / gap {
				step(func(i int) bool { return i != tc.n-1 })
			}
			if g := h.reg.ExpiryGuard(); g.Guarded {
				t.Fatalf("still guarded %v after healing: %+v", 2*ttl, g)
			}
			if got := h.reg.Stats().Active; got != tc.n-1 {
				t.Errorf("after healing %d active, want %d", got, tc.n-1)
			}
			last := fmt.Sprint("a", tc.n-1)
			if rec := h.must(200, "GET", "/instances/"+last, "").Body.String(); !strings.Contains(rec, `"active":false`) || strings.Contains(rec, "expiry_guarded") {
				t.Errorf("the agent that died, after the release = %s, want inactive", rec)
			}
		})
	}
}

func TestGuardMaxAndRelease(t *testing.T) {
	for _, how := range []string{"max", "admin"} {
		t.Run(how, func(t *testing.T) {
			h := newHarness(t, registry.Options{ExpiryGuard: 50, ExpiryGuardMax: 2 * time.Minute, HeartbeatInterval: 10 * time.Second})
			for i := range 10 {
				h.must(201, "POST", "/instances", fmt.Sprintf(`{"instance_id":"a%d","name":"ops","version":"1","host":"h","heartbeat_interval":10}`, i))
			}
			h.clock.Advance(31 * time.Second) // all silent: a total partition
			h.reg.Purge(t.Context())
			if g := h.reg.ExpiryGuard(); !g.Guarded || g.Held != 10 {
				t.Fatalf("guard %+v, want on and holding 10", g)
			}
			if how == "admin" {
				checkJSON(t, h.do("DELETE", "/expiry-guard", ""), 200, `{"released":true}`)
			} else {
				h.clock.Advance(2 * time.Minute)
			}
			h.reg.Purge(t.Context()) // the release, then the expiries it let go
			h.reg.Purge(t.Context())
			if g, st := h.reg.ExpiryGuard(), h.reg.Stats(); g.Guarded || st.Active != 0 {
				t.Errorf("after the release: guard %+v, %d active; want off and all expired", g, st.Active)
			}
			// The expiries the release let go do not engage it again.
			if g := h.reg.ExpiryGuard(); g.Guarded {
				t.Errorf("the released expiries engaged the guard again")
			}
		})
	}
}

// After a restart, instances whose deadline fell while the registry was
// down expire at the end of their grace: that is not a partition.
func TestGuardIgnoresRestartGrace(t *testing.T) {
	st := registry.NewMemStore()
	clock := newFakeClock()
	opts := registry.Options{Store: st, Now: clock.Now, ExpiryGuard: 50, HeartbeatInterval: 10 * time.Second}
	a, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		a.Register(t.Context(), registry.Registration{ID: fmt.Sprint("a", i), Name: "n", Version: "1", Host: "h", HeartbeatInterval: 10 * time.Second})
	}
	clock.Advance(10 * time.Minute) // down, and every agent died meanwhile
	b, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(31 * time.Second) // past the grace of 30s
	if err := b.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if g, s := b.ExpiryGuard(), b.Stats(); g.Guarded || s.Active != 0 {
		t.Errorf("after the restart's grace: guard %+v, %d active; want off and all expired", g, s.Active)
	}
}

func TestGuardRefusedOnReplicas(t *testing.T) {
	_, err := registry.New(registry.Options{Cluster: memcluster.New(memcluster.Options{}), ExpiryGuard: 50})
	if err == nil || !strings.Contains(err.Error(), "Cluster") {
		t.Errorf("New with a Cluster and the guard = %v, want a clear error", err)
	}
}

// checkpoint_test.go checks Checkpoint, the batched write of heartbeat
// times (last_seen, system) to the Store: after one, a restart shows what the
// registry showed, also for a system sent at the instant of the previous
// write, for a checkpoint that races a re-registration, and after Run's
// checkpoints under concurrent writers, readers and Purge.

package registry_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

// PROTOCOL.md, "Our additions": "A heartbeat's system, when it is an
// object, is stored as sent and shown in the record as system"; the brief
// for restarts: after a checkpoint "everything is there". Checkpoint writes
// an instance only if its last_seen moved since the last write, so a system
// object that arrives at the same clock instant as the previous write (a
// coarse or injected clock; found by TestConcurrentUse with a fake clock)
// never reaches the Store: after a restart the record shows an older
// system, or none.
func TestSystemLostAtSameInstant(t *testing.T) {
	tests := []struct {
		name  string
		setup func(a *harness)
		want  string
	}{
		{
			name: "heartbeat at the instant of the registration",
			setup: func(a *harness) {
				a.register("a", "app", "h1")
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
			},
			want: `{"pid":1}`,
		},
		{
			name: "heartbeat at the instant of the last checkpoint",
			setup: func(a *harness) {
				a.register("a", "app", "h1")
				a.clock.Advance(time.Second)
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
				if err := a.reg.Checkpoint(t.Context()); err != nil {
					t.Fatal(err)
				}
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":2}}`)
			},
			want: `{"pid":2}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newHarness(t, registry.Options{Store: registry.NewMemStore()})
			tt.setup(a)
			if diff := cmp.Diff(js(t, tt.want), a.get("/instances/a").(map[string]any)["system"]); diff != "" {
				t.Fatalf("before the restart: system (-want +got):\n%s", diff)
			}
			if err := a.reg.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			b := restart(t, a, registry.Options{})
			if diff := cmp.Diff(js(t, tt.want), b.get("/instances/a").(map[string]any)["system"]); diff != "" {
				t.Errorf("after Checkpoint and a restart: system (-want +got):\n%s", diff)
			}
		})
	}
}

// funcStore is a Store whose methods can be replaced one by one.
type funcStore struct {
	registry.Store
	TouchFunc func(ctx context.Context, seen []registry.Seen) error
}

func (s *funcStore) Touch(ctx context.Context, seen []registry.Seen) error {
	if s.TouchFunc != nil {
		return s.TouchFunc(ctx, seen)
	}
	return s.Store.Touch(ctx, seen)
}

// PROTOCOL.md, "Write endpoints": "Re-registering an existing id REPLACES
// the record"; the brief for restarts: after a checkpoint "everything is
// there" as it was. Checkpoint collects (id, last_seen, system) and writes
// them with Store.Touch without holding the id's write lock; a
// re-registration that lands in between is overwritten by the old
// instance's system (Touch keeps a non-nil System whatever its LastSeen).
// The live registry shows no system; after a restart the replaced record's
// system is back. Found by TestConcurrentUse (Run's checkpoints racing
// re-registrations).
func TestCheckpointRaceResurrectsSystem(t *testing.T) {
	mem := registry.NewMemStore()
	store := &funcStore{Store: mem}
	a := newHarness(t, registry.Options{Store: store})
	a.register("a", "app", "h1")
	a.clock.Advance(time.Second)
	a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
	// The agent restarts with the same id while the checkpoint writes. The
	// checkpoint holds the write locks, so the re-registration waits until
	// the checkpoint is written and must then win.
	reregistered := make(chan struct{})
	store.TouchFunc = func(ctx context.Context, seen []registry.Seen) error {
		store.TouchFunc = nil
		go func() {
			a.clock.Advance(time.Second)
			a.register("a", "app", "h1")
			close(reregistered)
		}()
		return mem.Touch(ctx, seen)
	}
	if err := a.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-reregistered
	if got, ok := a.get("/instances/a").(map[string]any)["system"]; ok {
		t.Fatalf("live registry: system = %v after re-registration, want none", got)
	}
	b := restart(t, a, registry.Options{})
	if got, ok := b.get("/instances/a").(map[string]any)["system"]; ok {
		t.Errorf("after a restart: system = %v, want none (the record was replaced)", got)
	}
}

// TestConcurrentUse runs writers, readers, Purge and Run (with
// checkpoints) at once, for the race detector; then, once quiet, checks
// that a restart on the store shows the same registry.
func TestConcurrentUse(t *testing.T) {
	store := registry.NewMemStore()
	h := newHarness(t, registry.Options{Store: store, CheckpointInterval: time.Millisecond, PurgeInterval: time.Millisecond, RetainInactive: time.Minute})
	// Like a real clock, this one never answers the same instant twice
	// while the workers run (see TestSystemLostAtSameInstant for why).
	h.clock.SetTick(time.Nanosecond)
	ctx, cancel := context.WithCancel(t.Context())
	runDone := make(chan error, 1)
	go func() { runDone <- h.reg.Run(ctx) }()

	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			rnd := rand.New(rand.NewPCG(uint64(w), 7))
			for range 300 {
				id := fmt.Sprintf("i%d", rnd.IntN(12))
				var rec *httptest.ResponseRecorder
				switch rnd.IntN(9) {
				case 0:
					rec = h.do("POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"n%d","version":"1","host":"h%d","heartbeat_interval":%d}`, id, rnd.IntN(2), rnd.IntN(3), 1+rnd.IntN(5)))
				case 1, 2:
					rec = h.do("POST", "/instances/"+id+"/heartbeat", fmt.Sprintf(`{"system":{"w":%d}}`, w))
				case 3:
					rec = h.do("POST", "/instances/"+id+"/tools", toolsBody(fmt.Sprintf(`{"name":"t%d","x-command":"c%d"}`, rnd.IntN(4), w)))
				case 4:
					rec = h.do("DELETE", "/instances/"+id, "")
				case 5:
					h.clock.Advance(time.Duration(rnd.IntN(3000)) * time.Millisecond)
					if err := h.reg.Purge(ctx); err != nil {
						t.Error(err)
					}
					continue
				default:
					target := []string{"/instances", "/tools?active=false", "/hosts", "/tools/t1", "/instances/" + id, "/instances?limit=2", "/export/superputty"}[rnd.IntN(7)]
					rec = h.do("GET", target, "")
				}
				if rec.Code >= 500 {
					t.Errorf("status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
	wg.Wait()
	h.clock.SetTick(0)
	cancel()
	if err := <-runDone; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := h.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := snapshotAll(h)
	b := restart(t, h, registry.Options{RetainInactive: time.Minute})
	// The system objects are left out: a checkpoint that races a
	// re-registration brings the replaced record's system back
	// (TestCheckpointRaceResurrectsSystem reproduces it).
	noSystem := cmpopts.IgnoreMapEntries(func(k string, _ any) bool { return k == "system" })
	if diff := cmp.Diff(before, snapshotAll(b), noSystem); diff != "" {
		t.Errorf("reads after a restart differ (-want +got):\n%s", diff)
	}
}

// snapshotAll is every listing of a registry.
func snapshotAll(h *harness) map[string]any {
	h.tb.Helper()
	out := map[string]any{}
	for _, target := range []string{"/instances", "/tools?active=false", "/tools", "/hosts", "/hosts?active=false"} {
		out[target] = h.get(target)
	}
	return out
}

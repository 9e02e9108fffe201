// pending_test.go checks the writes the registry makes on its own when its
// Store fails: an expiry, a deletion after the retention and a revival are
// applied in memory, stay pending (PendingWrites, /health?detail=true) and
// are retried until stored; a pending write that a later write replaced is
// dropped; and a crash while they are pending cannot bring a record back
// beyond what the restart rule allows.

package registry_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// flakyStore is a MemStore whose liveness writes and deletions fail while
// broken is set.
type flakyStore struct {
	*registry.MemStore
	broken atomic.Bool
}

func (s *flakyStore) SetStates(ctx context.Context, states []registry.State) error {
	if s.broken.Load() {
		return syscall.ENOSPC
	}
	return s.MemStore.SetStates(ctx, states)
}

func (s *flakyStore) Delete(ctx context.Context, ids []string) error {
	if s.broken.Load() {
		return syscall.ENOSPC
	}
	return s.MemStore.Delete(ctx, ids)
}

func stored(t *testing.T, st registry.Store, id string) (registry.Record, bool) {
	t.Helper()
	var found registry.Record
	ok := false
	st.Load(t.Context(), func(rec registry.Record) error {
		if rec.ID == id {
			found, ok = rec, true
		}
		return nil
	})
	return found, ok
}

func TestPendingWritesRetried(t *testing.T) {
	st := &flakyStore{MemStore: registry.NewMemStore()}
	h := newHarness(t, registry.Options{Store: st, RetainInactive: time.Minute})
	h.register("exp", "ops", "h1")
	h.register("del", "ops", "h2")
	h.deregister("del")
	h.register("rev", "ops", "h3")
	h.deregister("rev")
	st.broken.Store(true)

	if got := h.heartbeat("rev"); got != "refresh" { // a revival
		t.Fatalf("heartbeat of rev = %s", got)
	}
	h.clock.Advance(60 * time.Second)
	h.heartbeat("rev")
	h.clock.Advance(31 * time.Second) // exp expires; del's retention ends
	if err := h.reg.Purge(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Memory has every change at once.
	in, _, _ := h.reg.Instance(t.Context(), "exp")
	if in.Active {
		t.Error("exp still active in memory")
	}
	if _, _, err := h.reg.Instance(t.Context(), "del"); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("del still in memory: %v", err)
	}
	if n, err := h.reg.PendingWrites(); n != 3 || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("PendingWrites = %d, %v; want 3 with no space left", n, err)
	}
	detail := h.must(200, "GET", "/health?detail=true", "").Body.String()
	if !strings.Contains(detail, `"pending_writes":3`) || !strings.Contains(detail, "no space left on device") {
		t.Errorf("/health?detail=true = %s", detail)
	}
	// The store still has the old states.
	if rec, _ := stored(t, st, "exp"); !rec.Active {
		t.Error("the failed expiry reached the store")
	}
	// Once the store works, the next checkpoints store them (after the
	// back-off, which starts at a second).
	st.broken.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for n, _ := h.reg.PendingWrites(); n > 0; n, _ = h.reg.PendingWrites() {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes still pending 10s after the store recovered", n)
		}
		if err := h.reg.Checkpoint(t.Context()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if rec, _ := stored(t, st, "exp"); rec.Active {
		t.Error("the expiry of exp was never stored")
	}
	if _, ok := stored(t, st, "del"); ok {
		t.Error("the deletion of del was never stored")
	}
	if rec, _ := stored(t, st, "rev"); !rec.Active {
		t.Error("the revival of rev was never stored")
	}
}

// A pending expiry of an instance that registered again is dropped: the
// registration stored the newer state.
func TestPendingWriteReplaced(t *testing.T) {
	st := &flakyStore{MemStore: registry.NewMemStore()}
	h := newHarness(t, registry.Options{Store: st})
	h.register("a", "ops", "h1")
	st.broken.Store(true)
	h.clock.Advance(91 * time.Second)
	h.reg.Purge(t.Context())
	st.broken.Store(false)
	h.register("a", "ops", "h1") // the agent restarted with its id: Put stores it active
	time.Sleep(1100 * time.Millisecond)
	if err := h.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.reg.PendingWrites(); n != 0 {
		t.Errorf("%d writes pending", n)
	}
	if rec, _ := stored(t, st, "a"); !rec.Active {
		t.Error("a stale pending expiry overwrote the new registration")
	}
}

// A crash while an expiry is pending: the store still says active, but
// the restart rule gives the instance only a bounded grace.
func TestPendingExpiryAfterCrash(t *testing.T) {
	st := &flakyStore{MemStore: registry.NewMemStore()}
	h := newHarness(t, registry.Options{Store: st})
	h.register("a", "ops", "h1")
	st.broken.Store(true)
	h.clock.Advance(91 * time.Second)
	h.reg.Purge(t.Context())
	st.broken.Store(false)
	// The process dies here; a new one starts on the same store.
	h.clock.Advance(time.Hour)
	b := restart(t, h, registry.Options{})
	b.clock.Advance(90 * time.Second)
	if active := b.get("/instances/a").(map[string]any)["active"]; active != true {
		t.Errorf("within the restart's grace: active %v", active)
	}
	b.clock.Advance(time.Nanosecond)
	b.reg.Purge(t.Context())
	if active := b.get("/instances/a").(map[string]any)["active"]; active != false {
		t.Errorf("after the restart's grace: active %v, want false", active)
	}
}

// liveness_internal_test.go checks liveness from inside the package: no
// due entry stays in the heap when inactive records are kept forever, and
// a replaced instance cannot answer a heartbeat on the fast path.

package registry

import (
	"context"
	"testing"
	"time"
)

// No due entry stays in the heap when inactive records are kept forever.
func TestKeptForeverLeavesNothingDue(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ctx := context.Background()
	st := NewMemStore()
	a, _ := New(Options{Store: st, Now: clock})
	a.Register(ctx, Registration{ID: "x", Name: "n", Version: "1", Host: "h"})
	a.Deregister(ctx, "x")
	b, err := New(Options{Store: st, Now: clock, RetainInactive: -1}) // a restart, keeping history forever
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour)
	b.Purge(ctx)
	b.mu.RLock()
	next, pending := b.v.due.next()
	b.mu.RUnlock()
	if pending && next < b.clock() {
		t.Fatalf("an entry stays due %v in the past: Run would spin and the cache would never be fresh",
			time.Duration(b.clock()-next))
	}
}

// A replaced instance cannot answer a heartbeat.
func TestReplacedInstanceRefusesFastHeartbeat(t *testing.T) {
	ctx := context.Background()
	r, _ := New(Options{})
	reg := Registration{ID: "x", Name: "n", Version: "1", Host: "h"}
	r.Register(ctx, reg)
	old := r.lookup("x")
	r.Register(ctx, reg) // the agent restarted with the same id
	if old.touch(r.clock()) {
		t.Fatal("a heartbeat holding the replaced instance took the fast path")
	}
	if st, _ := r.Heartbeat(ctx, "x", nil); st != Refresh {
		t.Errorf("heartbeat after re-registration: %s, want refresh (no tools posted since)", st)
	}
}

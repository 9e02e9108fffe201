// review_internal_test.go pins fixes from a review of the core: no due
// entry stays in the heap when inactive records are kept forever, waiters
// that give up leave no channel behind, and a replaced instance cannot
// answer a heartbeat.

package registry

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"
)

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

func TestWaitersThatGiveUpLeaveNoChannel(t *testing.T) {
	r, _ := New(Options{})
	for i := 0; i < 50; i++ {
		for _, path := range []string{"/tools/nope-%d", "/instances/nope-%d"} {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf(path, i)+"?index=99999999999999999&wait=1ms", nil))
			if w.Code != 404 {
				t.Fatalf("GET %s: %d", path, w.Code)
			}
		}
	}
	r.v.w.mu.Lock()
	n := len(r.v.w.byName)
	r.v.w.mu.Unlock()
	if n != 0 {
		t.Errorf("%d wait channels left after every waiter timed out", n)
	}
}

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

// In cluster mode one revision can make more events than the ring holds (a
// snapshot). A client resuming from the revision before it was told the
// ring held everything, and missed the evicted events.
func TestRingSplitsRevision(t *testing.T) {
	r, err := New(Options{Cluster: snapshotCluster{}})
	if err != nil {
		t.Fatal(err)
	}
	w := r.w.(*clusterWriter)
	now := r.now()
	rec := func(id string, seq uint64) RecordChange {
		return RecordChange{Record: Record{ID: id, Name: "n", Version: "1", Host: "h", Seq: seq, Registered: now,
			LastSeen: now, HeartbeatInterval: 30 * time.Second, Active: true}, Fields: true}
	}
	w.apply(Change{Rev: 10, Records: []RecordChange{rec("first", 1)}}) // the client saw this one: id 10
	var big []RecordChange
	for i := range eventRing + 1 {
		big = append(big, rec(fmt.Sprint("i", i), uint64(i+2)))
	}
	w.apply(Change{Rev: 11, Records: big}) // 8193 events at index 11
	r.mu.RLock()
	evs, ok := r.v.eventsAfter(10)
	r.mu.RUnlock()
	seen := map[string]bool{}
	for _, e := range evs {
		seen[e.InstanceID] = true
	}
	if ok && !seen["i0"] {
		t.Errorf("resume after 10: ok (no reset) with %d events, but the registration of i0 at 11 is missing", len(evs))
	}
}

// snapshotCluster is a Cluster whose only content is an empty snapshot:
// enough to drive a replica's view by hand in package tests. Any other call
// panics (nil embedded interface).
type snapshotCluster struct{ Cluster }

func (snapshotCluster) Snapshot(context.Context) (Change, error) { return Change{Reset: true}, nil }
func (snapshotCluster) Err() error                               { return nil }

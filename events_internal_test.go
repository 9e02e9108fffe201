// events_internal_test.go checks the ring of recent events from inside the
// package: a revision with more events than the ring holds (a replica's
// snapshot) makes a client resuming before it re-list, not miss events.

package registry

import (
	"context"
	"fmt"
	"testing"
	"time"
)

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

func (snapshotCluster) Snapshot(_ context.Context, apply func(Change)) (uint64, error) {
	apply(Change{Reset: true})
	return 0, nil
}
func (snapshotCluster) Err() error { return nil }

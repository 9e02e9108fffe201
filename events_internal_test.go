// events_internal_test.go checks the ring of recent events from inside the
// package: a revision with more events than the ring holds (a replica's
// snapshot) makes a client resuming before it re-list, not miss events; the
// events of one revision have ids a client can resume from; the frames
// streams write straight from the ring's blocks are the events' encodings.

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// In cluster mode one revision can make more events than the ring holds (a
// snapshot). A client resuming from the revision before it was told the
// ring held everything, and missed the evicted events.
func TestRingSplitsRevision(t *testing.T) {
	r, w, rec := handReplica(t)
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

// TestEventIDsOfOneRevision: the events of one revision but its last have
// the id before it, so that a client resuming from any of them gets the
// others again rather than skipping them, whichever batches a stream reads
// them in.
func TestEventIDsOfOneRevision(t *testing.T) {
	r, w, rec := handReplica(t)
	w.apply(Change{Rev: 10, Records: []RecordChange{rec("first", 1)}})
	w.apply(Change{Rev: 11, Records: []RecordChange{rec("a", 2), rec("b", 3), rec("c", 4)}})
	w.apply(Change{Rev: 12, Records: []RecordChange{rec("d", 5)}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/events", nil)
	req.Header.Set("Last-Event-ID", "10")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body) // until the timeout
	var got []string
	for _, line := range strings.Split(string(body), "\n") {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			got = append(got, id)
		}
	}
	if diff := cmp.Diff([]string{"10", "10", "11", "12"}, got); diff != "" {
		t.Errorf("ids of the events after 10 (-want +got):\n%s\n%s", diff, body)
	}
}

// TestFrameRuns: the frames of the ring, read as runs of adjacent frames
// across several blocks, are byte for byte the events encoded one by one.
func TestFrameRuns(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	long := strings.Repeat("h", 200)
	for i := range 1000 { // about 300 KB of frames: five blocks
		id := fmt.Sprint("i", i)
		if err := r.Register(ctx, Registration{ID: id, Name: "agent", Version: "1", Host: fmt.Sprint(long, i)}); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	var want []byte
	evs, _ := r.v.eventBatch(0, eventRing, nil)
	for _, e := range evs {
		data, _ := json.Marshal(e)
		want = appendEvent(want, e, data, e.Index)
	}
	for _, maxBytes := range []int{1, eventBatchBytes, 1 << 30} {
		var got []byte
		var batches, runs int
		for pos := uint64(0); pos < r.v.eventSeq; batches++ {
			rs, n, ok := r.v.frameRuns(pos, maxBytes, nil)
			if !ok || n == 0 {
				t.Fatalf("maxBytes %d: frameRuns(%d) = %d events, ok %v", maxBytes, pos, n, ok)
			}
			for _, b := range rs {
				got = append(got, b...)
			}
			pos, runs = pos+uint64(n), runs+len(rs)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("maxBytes %d: the runs' bytes differ from the events encoded one by one (%d and %d bytes)", maxBytes, len(got), len(want))
		}
		if blocks := len(want)/frameBlockSize + 1; runs > batches+blocks {
			t.Errorf("maxBytes %d: %d runs in %d batches over about %d blocks: adjacent frames were not joined", maxBytes, runs, batches, blocks)
		}
	}
}

// handReplica is a replica's registry whose view a test drives by hand,
// through its clusterWriter, with the records rec makes (active, seen now).
func handReplica(t *testing.T) (*Registry, *clusterWriter, func(id string, seq uint64) RecordChange) {
	t.Helper()
	r, err := New(Options{Cluster: snapshotCluster{}})
	if err != nil {
		t.Fatal(err)
	}
	now := r.now()
	rec := func(id string, seq uint64) RecordChange {
		return RecordChange{Record: Record{ID: id, Name: "n", Version: "1", Host: "h", Seq: seq, Registered: now,
			LastSeen: now, HeartbeatInterval: 30 * time.Second, Active: true}, Fields: true}
	}
	return r, r.w.(*clusterWriter), rec
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

// cluster_pages_internal_test.go checks how a replica applies a snapshot
// that comes in pages: the ids of every page are kept, the others deleted at
// the last page, the revision applied only then, and a snapshot abandoned
// part way (another one begins at a new revision) leaves no stale record.

package registry

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestSnapshotPages(t *testing.T) {
	// page is a Reset page at rev holding ids (seq: their first letter).
	page := func(rev uint64, more bool, ids ...string) Change {
		ch := Change{Rev: rev, Reset: true, More: more}
		for _, id := range ids {
			now := time.Now().Round(0)
			ch.Records = append(ch.Records, RecordChange{Record: Record{ID: id, Name: "n", Version: "1", Host: "h",
				Seq: uint64(id[0]), Registered: time.Unix(1_700_000_000, 0), LastSeen: now,
				HeartbeatInterval: time.Minute, Active: true}, Fields: true})
		}
		return ch
	}
	start := []Change{page(5, true, "a", "b"), page(5, false, "c")}
	tests := []struct {
		name     string
		changes  []Change
		wantIDs  []string
		wantRevs []uint64 // the applied revision after each change
	}{
		{"pages kept together", []Change{page(8, true, "a"), page(8, true, "b"), page(8, false, "d")},
			[]string{"a", "b", "d"}, []uint64{5, 5, 8}},
		{"an empty snapshot deletes all", []Change{page(8, false)},
			nil, []uint64{8}},
		{"an abandoned snapshot, then a new one", []Change{page(8, true, "a", "c"), page(9, true, "b"), page(9, false, "d")},
			[]string{"b", "d"}, []uint64{5, 5, 9}},
		{"the same revision listed again", []Change{page(8, true, "b"), page(8, true, "b"), page(8, false, "d")},
			[]string{"b", "d"}, []uint64{5, 5, 8}},
		{"a change after an abandoned snapshot", []Change{page(8, true, "a"), {Rev: 9}, page(10, false, "c")},
			[]string{"c"}, []uint64{5, 9, 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Options{Cluster: snapshotCluster{}})
			if err != nil {
				t.Fatal(err)
			}
			w := r.w.(*clusterWriter)
			for _, ch := range start {
				w.apply(ch)
			}
			if got := ids(r); !slices.Equal(got, []string{"a", "b", "c"}) {
				t.Fatalf("after the first snapshot: %v", got)
			}
			var revs []uint64
			for _, ch := range tt.changes {
				w.apply(ch)
				rev, _ := w.applied.get()
				revs = append(revs, rev)
			}
			if diff := cmp.Diff(tt.wantIDs, ids(r)); diff != "" {
				t.Errorf("ids mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantRevs, revs); diff != "" {
				t.Errorf("applied revisions mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// ids are the ids of r's view, in registration order.
func ids(r *Registry) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []string
	for _, in := range r.v.insts {
		out = append(out, in.id)
	}
	return out
}

// differential_bugs_test.go holds the differences that the differential
// test (differential_test.go) found between the registry in memory, on a
// bolt file and on a Cluster, each as a test of its shortest sequence.
// Each is skipped while its bug is open, and the differential test leaves
// its sequence out meanwhile (it says where).

package registry_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// When several instances go inactive in one Purge (Run was late, or the
// caller purges), they join the list of inactive records in shard order,
// which a random seed of each Registry decides, not in the order they
// went inactive: at MaxInstances, a new id then deletes one that is not
// the oldest inactive record, and the choice differs between two runs
// (and between a registry and the same one restarted from its file,
// whose load sorts the list). Found as memory against bolt.
func TestBugOldestInactiveAfterLatePurge(t *testing.T) {
	t.Skip("BUG: records that expire in one Purge join the oldest-inactive list in shard order: at MaxInstances the evicted record is not always the oldest inactive one")
	ctx := context.Background()
	for run := range 32 { // each Registry has its own shard seed
		clock := newFakeClock()
		r, err := registry.New(registry.Options{Now: clock.Now, MaxInstances: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, reg := range []registry.Registration{
			{ID: "a", Name: "svc", Host: "h0", HeartbeatInterval: time.Second}, // inactive from t0 + 3 s
			{ID: "b", Name: "svc", Host: "h1", HeartbeatInterval: time.Second}, // from t0 + 3 s + 1 µs
			{ID: "c", Name: "svc", Host: "h2", HeartbeatInterval: time.Hour},
		} {
			if err := r.Register(ctx, reg); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Microsecond)
		}
		clock.Advance(4 * time.Second)
		if err := r.Purge(ctx); err != nil { // a and b expire in this one
			t.Fatal(err)
		}
		if err := r.Register(ctx, registry.Registration{ID: "d", Name: "svc", Host: "h3"}); err != nil {
			t.Fatal(err)
		}
		var kept []string
		all, _, err := r.Instances(ctx, registry.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range all {
			kept = append(kept, in.ID)
		}
		if fmt.Sprint(kept) != "[b c d]" {
			t.Fatalf("run %d: kept %v; want [b c d] (a is the oldest inactive record)", run, kept)
		}
	}
}

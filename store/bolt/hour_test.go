// hour_test.go simulates an hour of a churning fleet through a Registry on
// a bolt store, with a fake clock: agents restart under new ids, the old
// records expire and are deleted after the retention, and the file stops
// growing once the retention window is full.

package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

func TestRegistryHourOfChurn(t *testing.T) {
	if testing.Short() {
		t.Skip("simulates an hour of churn")
	}
	const (
		agents    = 200
		restarts  = 10 // agents restarting (under a new id) per simulated minute
		retention = 10 * time.Minute
		step      = 10 * time.Second // one heartbeat interval
	)
	ctx := context.Background()
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "registry.db")
	st, err := bolt.Open(path, bolt.Options{NoSync: true}) // fsync changes no page allocation
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.New(registry.Options{Store: st, Now: func() time.Time { return clock },
		HeartbeatInterval: step, RetainInactive: retention})
	if err != nil {
		t.Fatal(err)
	}
	tools := make([]json.RawMessage, 20)
	for i := range tools {
		tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","description":"does %d","inputSchema":{"type":"object"},"x-command":"/bin/t%d"}`, i, i, i))
	}
	ids := make([]string, agents) // the current id of each agent
	next := 0
	start := func(a int) {
		ids[a] = fmt.Sprintf("agent-%d-gen-%d", a, next)
		next++
		if err := reg.Register(ctx, registry.Registration{ID: ids[a], Name: "pkg", Version: "1", Host: fmt.Sprintf("h%d", a)}); err != nil {
			t.Fatal(err)
		}
		if err := reg.UpdateTools(ctx, ids[a], tools); err != nil {
			t.Fatal(err)
		}
	}
	for a := range ids {
		start(a)
	}
	var sizes []int64 // high water mark of the file, per simulated minute
	for minute := 0; minute < 60; minute++ {
		for s := 0; s < int(time.Minute/step); s++ {
			clock = clock.Add(step)
			for _, id := range ids {
				if _, err := reg.Heartbeat(ctx, id, nil); err != nil {
					t.Fatal(err)
				}
			}
		}
		for r := 0; r < restarts; r++ { // killed without deregistering: they expire
			start((minute*restarts + r) % agents)
		}
		if err := reg.Checkpoint(ctx); err != nil { // applies what is due, then writes
			t.Fatal(err)
		}
		sizes = append(sizes, bolt.HighWater(st))
	}
	all, _, err := reg.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	// After the first retention window, the registry holds the live agents
	// plus at most one window of dead ones, and so does the file.
	if max := agents + restarts*int(retention/time.Minute+2); len(all) > max {
		t.Errorf("%d records after an hour, want at most %d: retention does not delete", len(all), max)
	}
	warm := sizes[20]
	for m, sz := range sizes[20:] {
		if float64(sz) > 1.5*float64(warm) {
			t.Errorf("minute %d: file high water %d bytes, more than 1.5x the %d of minute 20: it grows under churn", 20+m, sz, warm)
			break
		}
	}
	t.Logf("records %d; file high water at minutes 10, 20, 40, 60: %d %d %d %d bytes",
		len(all), sizes[9], sizes[19], sizes[39], sizes[59])
}

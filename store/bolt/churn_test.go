// churn_test.go checks that the file does not grow under churn: bbolt
// reuses the pages that writes free, so a fleet whose size is steady keeps a
// file whose size is steady.

package bolt_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

func TestChurn(t *testing.T) {
	const (
		agents = 200
		warmup = 20
		rounds = 60
	)
	if testing.Short() {
		t.Skip("churn takes seconds")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	// NoSync: fsync does not change which pages bbolt allocates, and
	// thousands of them would make the test slow.
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()

	rng := rand.New(rand.NewPCG(5, 6))
	clock := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	ids := make([]string, agents) // the fleet: each slot's current agent
	var nextID int
	newID := func() string { nextID++; return fmt.Sprintf("agent-%06d", nextID) }
	for i := range ids {
		ids[i] = newID()
	}
	recs := make(map[string]registry.Record)
	size := func() int64 {
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return info.Size()
	}

	var warm, warmHW int64
	for round := range rounds {
		clock = clock.Add(30 * time.Second)
		// Every agent (re)registers, then posts a tool list of changing size.
		puts := make([]registry.Record, 0, 2*agents)
		for _, id := range ids {
			rec := registry.Record{ID: id, Name: "agent", Version: "1", Host: "host-" + id, Seq: uint64(nextID),
				Registered: clock, LastSeen: clock, HeartbeatInterval: 10 * time.Second, Active: true}
			puts = append(puts, rec)
			rec.Tools = churnTools(rng.IntN(40) + 5)
			puts = append(puts, rec)
			recs[id] = rec
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := w; i < len(puts); i += 8 {
					if err := st.Put(ctx, puts[i]); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		// Heartbeat checkpoints.
		for beat := range 3 {
			seen := make([]registry.Seen, 0, agents)
			for _, id := range ids {
				seen = append(seen, registry.Seen{ID: id, LastSeen: clock.Add(time.Duration(beat) * 10 * time.Second),
					System: json.RawMessage(fmt.Sprintf(`{"load":%d}`, rng.IntN(100)))})
			}
			if err := st.Touch(ctx, seen); err != nil {
				t.Fatal(err)
			}
		}
		// A quarter deregister, then are deleted and replaced by new agents.
		var states []registry.State
		var gone []string
		for i := range ids {
			if rng.IntN(4) == 0 {
				states = append(states, registry.State{ID: ids[i], LastSeen: clock, InactiveSince: clock})
				gone = append(gone, ids[i])
				delete(recs, ids[i])
				ids[i] = newID()
			}
		}
		if err := st.SetStates(ctx, states); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, gone); err != nil {
			t.Fatal(err)
		}
		if round == warmup-1 {
			warm, warmHW = size(), bolt.HighWater(st)
		}
		if os.Getenv("CHURN_TRACE") != "" {
			t.Logf("round %d: high water %d, file %d", round, bolt.HighWater(st), size())
		}
	}
	final, finalHW := size(), bolt.HighWater(st)
	t.Logf("%d agents, %d rounds: pages in use %d bytes (file %d) after %d rounds, %d (file %d) after %d",
		agents, rounds, warmHW, warm, warmup, finalHW, final, rounds)
	// The file grows by doubling below 16MB: one more step is not a leak,
	// so its bound is 2x; the pages in use are the precise measure.
	if finalHW > warmHW*3/2 || final > warm*2 {
		t.Errorf("file grew under steady churn: pages in use %d -> %d bytes, file %d -> %d", warmHW, finalHW, warm, final)
	}
	n := 0
	err = st.Load(ctx, func(rec registry.Record) error {
		if _, ok := recs[rec.ID]; !ok {
			return fmt.Errorf("unexpected record %q", rec.ID)
		}
		n++
		return nil
	})
	if err != nil || n != len(recs) {
		t.Errorf("Load after churn: %d records, %v; want %d", n, err, len(recs))
	}
}

func churnTools(n int) []json.RawMessage {
	tools := make([]json.RawMessage, n)
	for i := range tools {
		tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","description":"Runs step %d of the deployment on this host.","inputSchema":{"type":"object"},"x-command":"/opt/bin/step-%d"}`, i, i, i))
	}
	return tools
}

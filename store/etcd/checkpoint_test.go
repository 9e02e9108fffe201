// checkpoint_test.go checks the checkpoints of replicas on etcd (the
// batched last_seen and system of the heartbeats each took): they never
// hold up writes, and the newer system wins whichever replica writes last.

package etcd_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// A checkpoint held the lock that applying the watch needs across its etcd
// writes: writes, which wait for the watch, waited for the checkpoint.
func TestCheckpointDoesNotBlockWrites(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/cp/"}, registry.Options{CheckpointInterval: 500 * time.Millisecond})
	const n = 400
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			a.register(fmt.Sprintf("i%d", i), "h", 30)
		}()
	}
	wg.Wait()
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() { // heartbeats keep every shard of the checkpoint busy
		defer close(beating)
		for {
			select {
			case <-stop:
				return
			default:
			}
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sem <- struct{}{}
					defer func() { <-sem }()
					a.do("POST", fmt.Sprintf("/instances/i%d/heartbeat", i), "")
				}()
			}
			wg.Wait()
		}
	}()
	defer func() { close(stop); <-beating }()
	var worst time.Duration
	unhealthy := 0
	for i := range 30 {
		start := time.Now()
		a.register(fmt.Sprintf("w%d", i), "h", 30)
		worst = max(worst, time.Since(start))
		if a.reg.Health() != nil {
			unhealthy++
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("slowest register %v; Health failed %d/30", worst.Round(time.Millisecond), unhealthy)
	if worst > 2*time.Second || unhealthy > 0 {
		t.Errorf("a register waited %v for its own write; Health failed %d times", worst.Round(time.Millisecond), unhealthy)
	}
}

// An agent heartbeats through two replicas. A takes {pid:2} (not yet
// checkpointed); B takes a heartbeat with no body and checkpoints first: it
// stores a later last_seen with the older system (pid 1). A adopted it and
// dropped its own, so pid 2 was lost everywhere; in memory, a heartbeat
// without a system keeps the last one sent.
func TestNewerSystemKeptAcrossReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := registry.Options{CheckpointInterval: time.Hour}
	a := startReplica(t, c.Endpoints(), "/sysl/", opts)
	b := startReplica(t, c.Endpoints(), "/sysl/", opts)
	ctx := context.Background()
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":1}}`, http.StatusOK)
	if err := a.reg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "B shows pid 1", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":1`) })

	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":2}}`, http.StatusOK)
	b.must("POST", "/instances/i1/heartbeat", ``, http.StatusOK)
	if err := b.reg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	bSeen := b.instance("i1")["last_seen"]
	eventually(t, 2*time.Second, "A applies B's checkpoint", func() bool { return a.instance("i1")["last_seen"] == bSeen })
	if err := a.reg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		eventually(t, 2*time.Second, name+" shows pid 2, the last system sent", func() bool {
			return strings.Contains(r.do("GET", "/instances/i1", "").body, `"pid":2`)
		})
	}
}

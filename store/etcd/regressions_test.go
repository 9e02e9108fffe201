// regressions_test.go holds the tests of defects found by a review of the
// cluster mode, each failing before its fix.

package etcd_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// A heartbeat's system sent just before a DELETE, or with the heartbeat
// that revives, was replaced by the older one stored in etcd.
func TestSystemSurvivesDeregisterAndRevival(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/sys/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/sys/", registry.Options{})
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":1}}`, http.StatusOK)
	// B learns a system only from etcd: once it shows pid 1, A's checkpoint
	// has written it.
	eventually(t, 2*time.Second, "pid 1 in etcd", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":1`) })

	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":2}}`, http.StatusOK)
	a.must("DELETE", "/instances/i1", "", http.StatusOK) // A's view has the deregistration when this returns
	if got := a.do("GET", "/instances/i1", "").body; !strings.Contains(got, `"pid":2`) {
		t.Errorf("after heartbeat {pid:2} and DELETE: %s, want pid 2 as in memory", got)
	}
	eventually(t, 2*time.Second, "B shows pid 2", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":2`) })

	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":3}}`, http.StatusOK) // revives
	if got := a.do("GET", "/instances/i1", "").body; !strings.Contains(got, `"pid":3`) || !strings.Contains(got, `"active":true`) {
		t.Errorf("after DELETE and heartbeat {pid:3}: %s, want active with pid 3 as in memory", got)
	}
	eventually(t, 2*time.Second, "B shows pid 3", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":3`) })
}

// A DELETE through a replica that had not yet seen the registration was
// answered 200 and changed nothing.
func TestDeregisterOnLaggingReplica(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/lag/", registry.Options{})
	st, err := etcd.Open(context.Background(), etcd.Config{Endpoints: c.Endpoints(), Prefix: "/lag/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := registry.New(registry.Options{Cluster: st}) // its view: before the registration
	if err != nil {
		t.Fatal(err)
	}
	a.register("i1", "h1", 30)
	done := make(chan error, 1)
	go func() { done <- b.Deregister(context.Background(), "i1") }()
	// B's view is fed only once its Run starts: start it once the
	// deregistration is in etcd, so that B took it while lagging.
	eventually(t, 5*time.Second, "the deregistration in etcd", func() bool { return a.instance("i1")["active"] == false })
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		b.Run(ctx)
	}()
	defer func() { cancel(); <-ran }()
	if err := <-done; err != nil {
		t.Fatalf("Deregister on the lagging replica: %v", err)
	}
}

// A transaction that changed nothing (here: an update of an id not stored)
// recorded the global etcd revision as written; when that revision was
// another application's, the watch never reached it, and the replica
// reopened its watch and turned unhealthy every second.
func TestForeignRevisionDoesNotStall(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/mine/", registry.Options{})
	a.register("i1", "h1", 30)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(context.Background(), "/other-app/k", "v"); err != nil {
		t.Fatal(err)
	}
	if rev, err := a.st.Deactivate(context.Background(), "gone", "", time.Time{}, time.Now()); err != nil || rev != 0 {
		t.Fatalf("Deactivate of an unknown id = %d, %v; want 0 (nothing to wait for)", rev, err)
	}
	if rev, err := a.st.DeleteInactive(context.Background(), []string{"gone"}); err != nil || rev != 0 {
		t.Fatalf("DeleteInactive of an unknown id = %d, %v; want 0", rev, err)
	}
	bad := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if a.reg.Health() != nil {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("Health failed %d times in 3 s with etcd up", bad)
	}
}

// A lease expiry stored no inactive_since, so a replica counted retention
// from when it learnt of the expiry: with replicas restarted more often
// than RetainInactive, an expired record was never deleted.
func TestRetentionAcrossReplicaRestarts(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := registry.Options{RetainInactive: 2 * time.Second, PurgeInterval: 100 * time.Millisecond}
	cur := startReplica(t, c.Endpoints(), "/ret/", opts)
	cur.register("i1", "h1", 0.5) // lease TTL 2 s
	eventually(t, 5*time.Second, "expired", func() bool { return cur.instance("i1")["active"] == false })
	expired := time.Now()
	for range 5 { // a rolling restart every 1.5 s
		time.Sleep(1500 * time.Millisecond)
		next := startReplica(t, c.Endpoints(), "/ret/", opts)
		cur.stop()
		cur = next
	}
	if rep := cur.do("GET", "/instances/i1", ""); rep.code != http.StatusNotFound {
		t.Errorf("%v after expiry with 2 s retention, still stored: %s", time.Since(expired).Round(time.Second), rep.body)
	}
}

// A heartbeat whose caller gave up (cancelled, or its own short deadline)
// dropped the shared keep-alive stream, as if it were stuck, failing every
// other heartbeat waiting on it.
func TestAbandonedHeartbeatLeavesOthers(t *testing.T) {
	for name, abandon := range map[string]func() (context.Context, context.CancelFunc){
		"cancelled": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"own deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Microsecond)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := etcdtest.Start(t, 1)
			a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/ka/", KeepAliveWindow: -1}, registry.Options{})
			const n = 50
			for i := range n {
				a.register(fmt.Sprintf("i%d", i), "h", 30)
			}
			var failed atomic.Int64
			var firstErr atomic.Value
			for range 20 {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if i%10 == 0 { // an agent that gave up
							ctx, cancel := abandon()
							defer cancel()
							a.st.KeepAlive(ctx, fmt.Sprintf("i%d", i))
							return
						}
						if ok, err := a.st.KeepAlive(context.Background(), fmt.Sprintf("i%d", i)); err != nil || !ok {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprint(ok, err))
						}
					}()
				}
				wg.Wait()
			}
			if failed.Load() > 0 {
				t.Errorf("%d keep-alives of callers still waiting failed, e.g. %v", failed.Load(), firstErr.Load())
			}
		})
	}
}

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

// replicas.go is the suite of replicas on a Cluster: two or three
// Registries sharing one fleet through the Cluster a harness gives, driven
// through their library API. It runs on store/memcluster in the root module
// (milliseconds) and on etcd in store/etcd.

package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// ReplicaHarness is what the replica suite needs of a Cluster
// implementation, beyond ClusterHarness.
type ReplicaHarness struct {
	ClusterHarness
	// Interval is a heartbeat interval whose TTL (3 x Interval) the
	// Cluster keeps to within Slack, for the liveness tests.
	Interval, Slack time.Duration
	// Outage makes the Cluster unreachable for every handle until the
	// returned function is called. Nil skips the outage test.
	Outage func(t *testing.T) (end func())
}

// RunReplicas runs the replica suite: read-your-writes through each replica
// and the others' views following; liveness kept by heartbeats through any
// replica and lost on all when they stop; a replica lost while the others
// go on, and a new one starting from the snapshot; a replica that was
// stopped while the history it missed was compacted catches up by
// re-listing, in pages; and an outage of the Cluster (writes refused with
// ErrUnavailable, reads stale) that ends with every replica current.
func RunReplicas(t *testing.T, open func(t *testing.T) ReplicaHarness) {
	tests := []struct {
		name string
		fn   func(*testing.T, ReplicaHarness)
	}{
		{"ReadYourWrites", testReadYourWrites},
		{"LivenessThroughEither", testLivenessThroughEither},
		{"ReplicaLost", testReplicaLost},
		{"CompactedWhileStopped", testCompactedWhileStopped},
		{"Outage", testOutage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// A replica is a Registry on its own handle of the Cluster, with Run
// running until stop.
type replica struct {
	reg  *registry.Registry
	stop func()
}

func startReplica(t *testing.T, h ReplicaHarness, opts registry.Options) *replica {
	t.Helper()
	opts.Cluster = clusterHandle(t, h.ClusterHarness)
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 50 * time.Millisecond
	}
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{reg: reg}
	r.run()
	t.Cleanup(func() { r.stop() })
	return r
}

// run starts Run; stop ends it.
func (r *replica) run() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.reg.Run(ctx)
	}()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
}

func reg(id, host string, interval time.Duration) registry.Registration {
	return registry.Registration{ID: id, Name: "agent", Version: "1", Host: host, HeartbeatInterval: interval}
}

// eventually polls cond until it holds, for at most limit.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

// activeOn reports whether id is active on r (false if r does not have it).
func activeOn(r *replica, id string) bool {
	in, _, err := r.reg.Instance(context.Background(), id)
	return err == nil && in.Active
}

func testReadYourWrites(t *testing.T, h ReplicaHarness) {
	a, b := startReplica(t, h, registry.Options{}), startReplica(t, h, registry.Options{})
	ctx := t.Context()
	for i, r := range []*replica{a, b} {
		other := []*replica{b, a}[i]
		id := fmt.Sprint("ryw-", i)
		if err := r.reg.Register(ctx, reg(id, "web-1", time.Minute)); err != nil {
			t.Fatal(err)
		}
		// The writer's next read shows the write: no waiting.
		in, meta, err := r.reg.Instance(ctx, id)
		if err != nil || !in.Active {
			t.Fatalf("replica %d: read after its own registration = %+v, %v", i, in, err)
		}
		if err := r.reg.UpdateTools(ctx, id, []json.RawMessage{json.RawMessage(`{"name":"deploy","x-command":"/bin/deploy"}`)}); err != nil {
			t.Fatal(err)
		}
		if tool, _, err := r.reg.Tool(ctx, "deploy", registry.Filter{Host: "web-1"}); err != nil || !hasInstance(tool, id) {
			t.Fatalf("replica %d: read after its own tool post = %+v, %v", i, tool, err)
		}
		// The other replica follows, at the same index.
		eventually(t, 2*time.Second, "the other replica to show the tools", func() bool {
			tool, _, err := other.reg.Tool(ctx, "deploy", registry.Filter{Host: "web-1"})
			return err == nil && hasInstance(tool, id)
		})
		if err := r.reg.Deregister(ctx, id); err != nil {
			t.Fatal(err)
		}
		if activeOn(r, id) {
			t.Fatalf("replica %d: active right after its own deregistration", i)
		}
		_, mine, _ := r.reg.Instances(ctx, registry.Filter{})
		eventually(t, 2*time.Second, "the other replica to reach the same index", func() bool {
			_, theirs, _ := other.reg.Instances(ctx, registry.Filter{})
			return theirs.Index == mine.Index && !activeOn(other, id)
		})
		if meta.Index == 0 || mine.Index <= meta.Index {
			t.Errorf("replica %d: indexes %d then %d do not follow the writes", i, meta.Index, mine.Index)
		}
	}
}

func hasInstance(tool registry.Tool, id string) bool {
	for _, h := range tool.Hosts {
		if h.InstanceID == id {
			return true
		}
	}
	return false
}

// Heartbeats through either replica keep an instance alive on both; when
// they stop, both mark it inactive about 3 intervals after the last one.
func testLivenessThroughEither(t *testing.T, h ReplicaHarness) {
	a, b := startReplica(t, h, registry.Options{}), startReplica(t, h, registry.Options{})
	ctx := t.Context()
	if err := a.reg.Register(ctx, reg("live", "db-1", h.Interval)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b to see the registration", func() bool { return activeOn(b, "live") })
	end := time.Now().Add(5 * h.Interval) // longer than the TTL
	var last time.Time
	for i := 0; time.Now().Before(end); i++ {
		r := []*replica{a, b}[i%2]
		if _, err := r.reg.Heartbeat(ctx, "live", nil); err != nil {
			t.Fatalf("heartbeat %d: %v", i, err)
		}
		last = time.Now()
		if !activeOn(a, "live") || !activeOn(b, "live") {
			t.Fatalf("inactive while heartbeats went through both replicas (heartbeat %d)", i)
		}
		time.Sleep(h.Interval / 2)
	}
	for _, r := range []*replica{a, b} {
		eventually(t, 3*h.Interval+h.Slack+2*time.Second, "inactive once heartbeats stop", func() bool { return !activeOn(r, "live") })
	}
	if d := time.Since(last); d < 3*h.Interval {
		t.Errorf("inactive %v after the last heartbeat, before 3 intervals of %v", d, h.Interval)
	}
	// A heartbeat through b revives it on both.
	if st, err := b.reg.Heartbeat(ctx, "live", nil); err != nil || st != registry.Refresh {
		t.Fatalf("reviving heartbeat = %q, %v; want refresh (no tools posted)", st, err)
	}
	if !activeOn(b, "live") {
		t.Error("not active on the replica that revived it")
	}
	eventually(t, 2*time.Second, "a to see the revival", func() bool { return activeOn(a, "live") })
}

// A replica that goes away takes nothing with it: the others go on, and a
// new replica starts on the whole fleet.
func testReplicaLost(t *testing.T, h ReplicaHarness) {
	a, b := startReplica(t, h, registry.Options{}), startReplica(t, h, registry.Options{})
	ctx := t.Context()
	for i := range 20 {
		if err := b.reg.Register(ctx, reg(fmt.Sprint("lost-", i), "h", time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	b.stop()
	for i := 20; i < 30; i++ {
		if err := a.reg.Register(ctx, reg(fmt.Sprint("lost-", i), "h", time.Minute)); err != nil {
			t.Fatalf("a write through the replica left: %v", err)
		}
	}
	c := startReplica(t, h, registry.Options{})
	for _, r := range []*replica{a, c} {
		eventually(t, 2*time.Second, "every registration", func() bool {
			ins, _, err := r.reg.Instances(ctx, registry.Filter{ActiveOnly: true})
			return err == nil && len(ins) == 30
		})
	}
}

// A replica whose change stream missed history that was then compacted
// re-lists, in pages (the fleet is more than two of them): records deleted
// meanwhile, in the first page and in the last, are gone from its view too,
// and the others are all there.
func testCompactedWhileStopped(t *testing.T, h ReplicaHarness) {
	a, b := startReplica(t, h, registry.Options{RetainInactive: time.Millisecond}), startReplica(t, h, registry.Options{})
	ctx := t.Context()
	ids := []string{"keep", "drop"}
	for i := range 2 * h.pageSize() {
		ids = append(ids, fmt.Sprintf("bulk-%04d", i))
	}
	ids = append(ids, "drop-last")
	for _, id := range ids {
		if err := a.reg.Register(ctx, reg(id, "h", time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 5*time.Second, "b to see every registration", func() bool { return activeOn(b, "keep") && activeOn(b, "drop-last") })
	b.stop()
	for _, id := range []string{"drop", "drop-last"} {
		if err := a.reg.Deregister(ctx, id); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "a to delete the record past its retention", func() bool {
			_, _, err := a.reg.Instance(ctx, id)
			return errors.Is(err, registry.ErrNotFound)
		})
	}
	if err := a.reg.UpdateTools(ctx, "keep", []json.RawMessage{json.RawMessage(`{"name":"t"}`)}); err != nil {
		t.Fatal(err)
	}
	h.Compact(t)
	b.run()
	eventually(t, 10*time.Second, "b to re-list", func() bool {
		_, _, err1 := b.reg.Instance(ctx, "drop")
		_, _, err2 := b.reg.Instance(ctx, "drop-last")
		in, _, _ := b.reg.Instance(ctx, "keep")
		return errors.Is(err1, registry.ErrNotFound) && errors.Is(err2, registry.ErrNotFound) && len(in.Tools) == 1
	})
	got, _, err := b.reg.Instances(ctx, registry.Filter{})
	if err != nil || len(got) != len(ids)-2 {
		t.Errorf("b after the re-list: %d instances, %v; want %d", len(got), err, len(ids)-2)
	}
}

// While the Cluster is unreachable, writes fail with ErrUnavailable and
// reads answer from the last view, marked stale; afterwards both replicas
// take writes again and agree.
func testOutage(t *testing.T, h ReplicaHarness) {
	if h.Outage == nil {
		t.Skip("the harness cannot make the cluster unreachable")
	}
	a, b := startReplica(t, h, registry.Options{}), startReplica(t, h, registry.Options{})
	ctx := t.Context()
	if err := a.reg.Register(ctx, reg("before", "h", time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*time.Second, "b to see it", func() bool { return activeOn(b, "before") })
	end := h.Outage(t)
	ended := false
	defer func() {
		if !ended {
			end()
		}
	}()
	for _, r := range []*replica{a, b} {
		eventually(t, 10*time.Second, "Health to report the outage", func() bool { return r.reg.Health() != nil })
		wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := r.reg.Register(wctx, reg("during", "h", time.Minute))
		cancel()
		if !errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("a write during the outage = %v, want ErrUnavailable", err)
		}
		in, meta, err := r.reg.Instance(ctx, "before")
		if err != nil || !in.Active || !meta.Stale {
			t.Errorf("a read during the outage = %+v %+v, %v; want the last view, stale", in, meta, err)
		}
	}
	end()
	ended = true
	for _, r := range []*replica{a, b} {
		eventually(t, 15*time.Second, "Health to recover", func() bool { return r.reg.Health() == nil })
	}
	if err := b.reg.Register(ctx, reg("after", "h", time.Minute)); err != nil {
		t.Fatalf("a write after the outage: %v", err)
	}
	eventually(t, 2*time.Second, "a to see the write after the outage", func() bool { return activeOn(a, "after") })
}

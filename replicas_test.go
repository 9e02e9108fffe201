// replicas_test.go runs the replica suite (store/storetest) on the
// in-memory Cluster: two or three Registries sharing one fleet, in
// milliseconds, without etcd. store/etcd runs the same suite on etcd. Then
// what a replica on a fake clock must show as a memory registry does, each
// case one that the differential test (differential_test.go) found.

package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
	"github.com/runspec/registry/store/storetest"
)

func TestReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) storetest.ReplicaHarness {
		c := memcluster.New(memcluster.Options{})
		return storetest.ReplicaHarness{
			ClusterHarness: storetest.ClusterHarness{
				Open:    func(*testing.T) registry.Cluster { return c },
				Compact: func(*testing.T) { c.Compact() },
			},
			Interval: 100 * time.Millisecond,
			Slack:    100 * time.Millisecond,
			Outage: func(*testing.T) func() {
				c.SetErr(errors.New("connection refused"))
				return func() { c.SetErr(nil) }
			},
		}
	})
}

// fakeClockReplica is a replica on c, on clock, with Run running until the
// test ends (or stop is called).
func fakeClockReplica(t *testing.T, c *memcluster.Cluster, clock *fakeClock) (reg *registry.Registry, stop func()) {
	t.Helper()
	reg, err := registry.New(registry.Options{Cluster: c, Now: clock.Now, CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Run(ctx)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	return reg, stop
}

// A registration that replaces a record at the same instant as the one it
// replaces (any clock whose resolution two requests fall within:
// Options.Now, a coarse clock) has the same registration order and time:
// the replica's view used to take it for the same registration and keep
// the old name, host, labels and tools, while memory and bolt show the new
// record. Found by the differential test.
func TestReplicaTakesSameInstantReregistration(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	c := memcluster.New(memcluster.Options{Now: clock.Now})
	replica, _ := fakeClockReplica(t, c, clock)
	mem, err := registry.New(registry.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*registry.Registry{mem, replica} {
		if err := r.Register(ctx, registry.Registration{ID: "a", Name: "svc", Version: "1", Host: "h0"}); err != nil {
			t.Fatal(err)
		}
		if err := r.UpdateTools(ctx, "a", []json.RawMessage{json.RawMessage(`{"name":"deploy"}`)}); err != nil {
			t.Fatal(err)
		}
		// The same instant: the fake clock has not moved.
		if err := r.Register(ctx, registry.Registration{ID: "a", Name: "web", Version: "1", Host: "h1"}); err != nil {
			t.Fatal(err)
		}
	}
	want, _, err := mem.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := replica.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Host != want.Host || got.Name != want.Name || len(got.Tools) != len(want.Tools) {
		t.Errorf("after re-registering a at the same instant: replica shows name %q host %q with %d tools, memory %q %q with %d tools",
			got.Name, got.Host, len(got.Tools), want.Name, want.Host, len(want.Tools))
	}
}

// The same when the replica's change stream missed the re-registration and
// a re-list (after a compaction) brings it: a snapshot's page carries every
// record's fields, changed or not.
func TestReplicaTakesSameInstantReregistrationInRelist(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	c := memcluster.New(memcluster.Options{Now: clock.Now})
	replica, _ := fakeClockReplica(t, c, clock)
	if err := replica.Register(ctx, registry.Registration{ID: "a", Name: "svc", Version: "1", Host: "h0"}); err != nil {
		t.Fatal(err)
	}
	c.Stall(true)
	now := clock.Now().Round(0) // the instant of the registration: the clock has not moved
	rec := registry.Record{ID: "a", Name: "web", Version: "2", Host: "h1", Labels: map[string]string{"env": "prod"},
		Registered: now, LastSeen: now, HeartbeatInterval: 10 * time.Second, Active: true}
	if _, err := c.Register(ctx, rec, ""); err != nil {
		t.Fatal(err)
	}
	c.Compact()
	c.Stall(false)
	rev := c.Rev()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, meta, err := replica.Instances(wctx, registry.Filter{AfterIndex: rev - 1}); err != nil || meta.Index < rev {
		t.Fatalf("the replica's view did not reach revision %d: index %d, %v", rev, meta.Index, err)
	}
	got, _, err := replica.Instance(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != rec.Name || got.Version != rec.Version || got.Host != rec.Host || got.Labels["env"] != "prod" {
		t.Errorf("after a re-list that brings a re-registered at the same instant: %+v; want name %q, version %q, host %q, env=prod",
			got, rec.Name, rec.Version, rec.Host)
	}
}

// Deregistering an instance that is already inactive (its lease ended, or
// it deregistered before) keeps when it went inactive, as memory and bolt
// do, on a replica that starts later (or this one restarted) too, which
// counts the retention from it. The Cluster used to store the time of the
// later deregistration. Found by the differential test.
func TestReplicaDeregisterKeepsInactiveSince(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	c := memcluster.New(memcluster.Options{Now: clock.Now})
	replica, stop := fakeClockReplica(t, c, clock)
	mem, err := registry.New(registry.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	reg := registry.Registration{ID: "a", Name: "svc", Version: "1", Host: "h0", HeartbeatInterval: time.Second}
	for _, r := range []*registry.Registry{mem, replica} {
		if err := r.Register(ctx, reg); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(4 * time.Second) // the lease (3 s) ended at t0 + 3 s
	for _, r := range []*registry.Registry{mem, replica} {
		if err := r.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Deregister(ctx, "a"); err != nil {
			t.Fatal(err)
		}
	}
	want := t0.Add(3 * time.Second)
	check := func(who string, r *registry.Registry) {
		t.Helper()
		in, _, err := r.Instance(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if in.Active || !in.InactiveSince.Equal(want) {
			t.Errorf("%s: active %v, inactive since %v; want inactive since %v", who, in.Active, in.InactiveSince, want)
		}
	}
	check("memory", mem)
	check("replica", replica)
	stop()
	restarted, _ := fakeClockReplica(t, c, clock)
	check("restarted replica", restarted)
}

// checkpoint_internal_test.go checks Touch, the checkpoint write of
// last_seen and system, from inside the package: its batches fit etcd's
// request limit whatever the stored systems, and a newer system is never
// replaced by an older one.

package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// Touch sized its batches by the systems the heartbeats carried, but
// rewrote each seen key with the stored system: 60 instances with 100 KB
// systems, then heartbeats without one, made a 6 MB transaction that etcd
// refused, at every checkpoint.
func TestTouchLargeStoredSystems(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoints: c.Endpoints(), Prefix: "/ts/", SchemaGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sys := json.RawMessage(`{"blob":"` + strings.Repeat("x", 100<<10) + `"}`)
	now := time.Now()
	var with, without []registry.Seen
	for i := range 60 {
		id := fmt.Sprint("i", i)
		if _, err := s.Register(ctx, registry.Record{ID: id, Name: "n", Version: "1", Host: "h", Seq: uint64(i + 1),
			HeartbeatInterval: time.Minute, Registered: now, LastSeen: now, Active: true}, ""); err != nil {
			t.Fatal(err)
		}
		with = append(with, registry.Seen{ID: id, LastSeen: now.Add(time.Second), System: sys})
		without = append(without, registry.Seen{ID: id, LastSeen: now.Add(2 * time.Second)})
	}
	if err := s.Touch(ctx, with); err != nil {
		t.Fatalf("touch with systems: %v", err)
	}
	if err := s.Touch(ctx, without); err != nil {
		t.Errorf("touch without systems (stored ones are 100 KB): %v", err)
	}
}

// Two replicas checkpoint one agent, and the one with the older heartbeat
// writes last: the newer last_seen stayed, but the older system replaced
// the newer one.
func TestTouchKeepsNewerSystem(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoints: c.Endpoints(), Prefix: "/tso/", SchemaGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now()
	if _, err := s.Register(ctx, registry.Record{ID: "i", Name: "n", Version: "1", Host: "h", Seq: 1,
		HeartbeatInterval: time.Minute, Registered: now, LastSeen: now, Active: true}, ""); err != nil {
		t.Fatal(err)
	}
	t2, t3 := now.Add(2*time.Second), now.Add(3*time.Second)
	s.Touch(ctx, []registry.Seen{{ID: "i", LastSeen: t3, System: json.RawMessage(`{"pid":3}`), SystemAt: t3}}) // replica B
	s.Touch(ctx, []registry.Seen{{ID: "i", LastSeen: t2, System: json.RawMessage(`{"pid":2}`), SystemAt: t2}}) // replica A, older
	kv, _ := s.get(ctx, s.key(seenDir, "i"))
	if strings.Contains(string(kv.Value), `"pid":2`) {
		t.Errorf("seen key after touches at t+3 {pid:3} and t+2 {pid:2}: %s", kv.Value)
	}
}

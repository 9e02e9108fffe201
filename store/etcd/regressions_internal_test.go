package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// regressions_internal_test.go holds the tests of defects found by a second
// review that need the package's internals.

// The collector decided "unused" from a scan of the records, then deleted
// schema by schema: a record written after the scan, using a schema its
// store had cached (so not written again), was left referring to a deleted
// schema.
func TestCollectionSparesNewRecords(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	s, err := Open(ctx, Config{Endpoints: c.Endpoints(), Prefix: "/gcr/", SchemaGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()

	const n = 3000
	tool := func(i int) json.RawMessage {
		return json.RawMessage(fmt.Sprintf(`{"name":"t%d","description":"d"}`, i))
	}
	all := map[string][]byte{}
	for i := range n {
		var rv recordValue
		m, _ := splitTools([]json.RawMessage{tool(i)}, &rv)
		for h, b := range m {
			all[h] = b
		}
	}
	if err := s.putSchemas(ctx, all); err != nil { // stored and cached, as after an earlier use
		t.Fatal(err)
	}
	prev, err := s.collectSchemas(ctx, nil) // first collection: all unused, none deleted
	if err != nil || len(prev) != n {
		t.Fatalf("first collection: %d unused, %v", len(prev), err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.collectSchemas(ctx, prev); done <- err }()
	// Once the second collection is deleting, agents post records using
	// some of those schemas (as an agent coming back with its old tools).
	for {
		r, _ := cli.Get(ctx, "/gcr/t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if r.Count < n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var ids []string
	for i := 0; i < 40; i++ {
		id := fmt.Sprint("a", i)
		rec := registry.Record{ID: id, Name: "n", Version: "1", Host: "h", Seq: 1, HeartbeatInterval: time.Minute,
			Registered: time.Now(), LastSeen: time.Now(), Tools: []json.RawMessage{tool(n - 1 - i*50)}}
		if _, err := s.Register(ctx, rec, ""); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	dangling := 0
	for _, id := range ids {
		r, err := cli.Get(ctx, "/gcr/i/"+id)
		if err != nil || len(r.Kvs) == 0 {
			t.Fatal("record missing", err)
		}
		var rv recordValue
		json.Unmarshal(r.Kvs[0].Value, &rv)
		sr, _ := cli.Get(ctx, "/gcr/t/"+rv.Tools[0].Schema, clientv3.WithCountOnly())
		if sr.Count == 0 {
			dangling++
		}
	}
	if dangling > 0 {
		t.Errorf("%d of %d records written during a collection refer to a schema it then deleted", dangling, len(ids))
	}
}

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

// gc_internal_test.go checks the collection of unused tool schemas from
// inside the package: a record written while a collection runs never refers
// to a schema it deletes.

package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

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

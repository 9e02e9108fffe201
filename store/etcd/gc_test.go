// gc_test.go checks the collection of unused tool schemas: an unused schema
// is deleted after two collections, one in use is kept, and a collected
// schema that a record needs again is stored again.

package etcd_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// schemaKeys returns how many schemas are stored under prefix.
func schemaKeys(t *testing.T, cli *clientv3.Client, prefix string) int64 {
	t.Helper()
	resp, err := cli.Get(context.Background(), prefix+"t/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

// TestSchemaCollection: a schema no record uses is deleted after two
// collections; a schema in use is kept; a record that refers to a schema
// its replica believed stored, but that was collected, stores it again.
func TestSchemaCollection(t *testing.T) {
	c := etcdtest.Start(t, 1)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/gc/", SchemaGCInterval: 100 * time.Millisecond}, registry.Options{})
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/tools", `{"tools":[{"name":"old","description":"v1"},{"name":"kept"}]}`, http.StatusOK)
	if n := schemaKeys(t, cli, "/gc/"); n != 2 {
		t.Fatalf("%d schemas stored, want 2", n)
	}
	a.must("POST", "/instances/i1/tools", `{"tools":[{"name":"old","description":"v2"},{"name":"kept"}]}`, http.StatusOK)
	eventually(t, 5*time.Second, "the unused schema collected", func() bool { return schemaKeys(t, cli, "/gc/") == 2 })
	if rep := a.must("GET", "/instances/i1", "", http.StatusOK); !strings.Contains(rep.body, `"v2"`) || !strings.Contains(rep.body, `"kept"`) {
		t.Fatalf("tools after collection: %s", rep.body)
	}

	// A store whose cache still holds a collected schema (no watch runs on
	// it) writes it again when its record needs it.
	st, err := etcd.Open(context.Background(), etcd.Config{Endpoints: c.Endpoints(), Prefix: "/gc2/", SchemaGCInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rec := registry.Record{ID: "x", Name: "n", Version: "1", Host: "h", Seq: 1, HeartbeatInterval: time.Minute,
		Registered: time.Now(), LastSeen: time.Now(), Tools: []json.RawMessage{json.RawMessage(`{"name":"t","description":"d"}`)}}
	if _, err := st.Register(context.Background(), rec, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Delete(context.Background(), "/gc2/t/", clientv3.WithPrefix()); err != nil { // as a collector would
		t.Fatal(err)
	}
	rec.ID = "y"
	if _, err := st.Register(context.Background(), rec, ""); err != nil {
		t.Fatal(err)
	}
	if n := schemaKeys(t, cli, "/gc2/"); n != 1 {
		t.Fatalf("after a Put that needs a collected schema: %d schemas stored, want 1", n)
	}
	var recs []registry.RecordChange
	if _, err := st.Snapshot(context.Background(), func(ch registry.Change) { recs = append(recs, ch.Records...) }); err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 {
		t.Errorf("the snapshot holds %d records, want 2", len(recs))
	}
	for _, r := range recs {
		if len(r.Tools) != 1 {
			t.Errorf("record %s: %d tools, want 1", r.ID, len(r.Tools))
		}
	}
}

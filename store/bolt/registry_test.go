// registry_test.go restarts a Registry on a bolt store: what the first one
// acknowledged, the second one serves.

package bolt_test

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

func TestRegistryRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	clock := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }

	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	reg, err := registry.New(registry.Options{Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []registry.Registration{
		{ID: "a", Name: "agent", Version: "1.0", Host: "h1", HeartbeatInterval: 10 * time.Second},
		{ID: "b", Name: "agent", Version: "1.0", Host: "h2"},
		{ID: "c", Name: "other", Version: "2.0", Host: "h3"},
	} {
		if err := reg.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	tools := []json.RawMessage{
		json.RawMessage(`{"name":"deploy","description":"Deploys.","inputSchema":{"type":"object"},"x-command":"deploy"}`),
		json.RawMessage(`{"name":"status","x-command":"status","x-run-as":"root"}`),
	}
	for _, id := range []string{"a", "c"} {
		if err := reg.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
	clock = clock.Add(5 * time.Second)
	if _, err := reg.Heartbeat(ctx, "a", json.RawMessage(`{"os":"linux"}`)); err != nil {
		t.Fatal(err)
	}
	if err := reg.Deregister(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if err := reg.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	before, _, err := reg.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	clock = clock.Add(time.Second)
	st2, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	reg2, err := registry.New(registry.Options{Store: st2, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	after, _, err := reg2.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) {
		t.Fatalf("after the restart %d instances, want %d", len(after), len(before))
	}
	for i := range before {
		if d := diffInstance(before[i], after[i]); d != "" {
			t.Errorf("instance %q after the restart: %s", before[i].ID, d)
		}
	}
	for id, want := range map[string]registry.HeartbeatStatus{
		"a": registry.Ack,     // posted tools: known
		"b": registry.Refresh, // never posted tools
		"c": registry.Ack,     // inactive, revived by the heartbeat
		"x": registry.Refresh, // unknown
	} {
		got, err := reg2.Heartbeat(ctx, id, nil)
		if err != nil || got != want {
			t.Errorf("Heartbeat(%q) after the restart = %q, %v; want %q", id, got, err, want)
		}
	}
	in, _, err := reg2.Instance(ctx, "a")
	if err != nil || string(in.System) != `{"os":"linux"}` {
		t.Errorf("Instance(a).System after the restart = %s, %v; want the checkpointed one", in.System, err)
	}
}

// diffInstance describes how two listings of an instance differ, comparing
// times with Equal.
func diffInstance(want, got registry.Instance) string {
	var d bytes.Buffer
	if !want.LastSeen.Equal(got.LastSeen) {
		d.WriteString("LastSeen " + want.LastSeen.String() + " -> " + got.LastSeen.String() + "; ")
	}
	want.LastSeen, got.LastSeen = time.Time{}, time.Time{}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	if !bytes.Equal(w, g) || want.HeartbeatInterval != got.HeartbeatInterval {
		d.WriteString("-" + string(w) + " +" + string(g))
	}
	return d.String()
}

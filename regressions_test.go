// regressions_test.go holds tests of bugs found by an independent review of
// the library against PROTOCOL.md, each naming the sentence it checks.

package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// PROTOCOL.md, "Liveness": an instance "goes stale when now - last_seen > 3
// x interval", and reads show it inactive at once, before any Purge. The
// brief for restarts: "inactive instances stay inactive"; only "an instance
// active at the restart gets a full TTL from the restart time". An instance
// already past its deadline when the registry stops, but not yet purged
// (Run's timer had not fired, or Purge is driven by hand), is stored with
// Active=true, and the new registry grants it a grace TTL: a dead agent
// shows up active again for 3 intervals after the restart.
func TestRegressionRestartRevivesExpiredInstance(t *testing.T) {
	store := registry.NewMemStore()
	a := newHarness(t, registry.Options{Store: store})
	a.register("dead", "app", "h1")
	a.postTools("dead", `{"name":"t"}`)
	a.clock.Advance(100 * time.Second) // 10s past its deadline
	if got := a.get("/instances/dead").(map[string]any)["active"]; got != false {
		t.Fatalf("before the restart: active = %v, want false", got)
	}
	if err := a.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	b := restart(t, a, registry.Options{})
	if got := b.get("/instances/dead").(map[string]any)["active"]; got != false {
		t.Errorf("after the restart: active = %v, want false (it was inactive before)", got)
	}
	checkJSON(t, b.do("GET", "/tools", ""), http.StatusOK, `[]`)
	checkJSON(t, b.do("GET", "/hosts", ""), http.StatusOK, `[]`)
}

// PROTOCOL.md, "Our additions": "A heartbeat's system, when it is an
// object, is stored as sent and shown in the record as system"; the brief
// for restarts: after a checkpoint "everything is there". Checkpoint writes
// an instance only if its last_seen moved since the last write, so a system
// object that arrives at the same clock instant as the previous write (a
// coarse or injected clock; found by TestConcurrentUse with a fake clock)
// never reaches the Store: after a restart the record shows an older
// system, or none.
func TestRegressionSystemLostAtSameInstant(t *testing.T) {
	tests := []struct {
		name  string
		setup func(a *harness)
		want  string
	}{
		{
			name: "heartbeat at the instant of the registration",
			setup: func(a *harness) {
				a.register("a", "app", "h1")
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
			},
			want: `{"pid":1}`,
		},
		{
			name: "heartbeat at the instant of the last checkpoint",
			setup: func(a *harness) {
				a.register("a", "app", "h1")
				a.clock.Advance(time.Second)
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
				if err := a.reg.Checkpoint(t.Context()); err != nil {
					t.Fatal(err)
				}
				a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":2}}`)
			},
			want: `{"pid":2}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newHarness(t, registry.Options{Store: registry.NewMemStore()})
			tt.setup(a)
			if diff := cmp.Diff(js(t, tt.want), a.get("/instances/a").(map[string]any)["system"]); diff != "" {
				t.Fatalf("before the restart: system (-want +got):\n%s", diff)
			}
			if err := a.reg.Checkpoint(t.Context()); err != nil {
				t.Fatal(err)
			}
			b := restart(t, a, registry.Options{})
			if diff := cmp.Diff(js(t, tt.want), b.get("/instances/a").(map[string]any)["system"]); diff != "" {
				t.Errorf("after Checkpoint and a restart: system (-want +got):\n%s", diff)
			}
		})
	}
}

// funcStore is a Store whose methods can be replaced one by one.
type funcStore struct {
	registry.Store
	TouchFunc func(ctx context.Context, seen []registry.Seen) error
}

func (s *funcStore) Touch(ctx context.Context, seen []registry.Seen) error {
	if s.TouchFunc != nil {
		return s.TouchFunc(ctx, seen)
	}
	return s.Store.Touch(ctx, seen)
}

// PROTOCOL.md, "Write endpoints": "Re-registering an existing id REPLACES
// the record"; the brief for restarts: after a checkpoint "everything is
// there" as it was. Checkpoint collects (id, last_seen, system) and writes
// them with Store.Touch without holding the id's write lock; a
// re-registration that lands in between is overwritten by the old
// instance's system (Touch keeps a non-nil System whatever its LastSeen).
// The live registry shows no system; after a restart the replaced record's
// system is back. Found by TestConcurrentUse (Run's checkpoints racing
// re-registrations).
func TestRegressionCheckpointRaceResurrectsSystem(t *testing.T) {
	mem := registry.NewMemStore()
	store := &funcStore{Store: mem}
	a := newHarness(t, registry.Options{Store: store})
	a.register("a", "app", "h1")
	a.clock.Advance(time.Second)
	a.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
	// The agent restarts with the same id while the checkpoint writes. The
	// checkpoint holds the write locks, so the re-registration waits until
	// the checkpoint is written and must then win.
	reregistered := make(chan struct{})
	store.TouchFunc = func(ctx context.Context, seen []registry.Seen) error {
		store.TouchFunc = nil
		go func() {
			a.clock.Advance(time.Second)
			a.register("a", "app", "h1")
			close(reregistered)
		}()
		return mem.Touch(ctx, seen)
	}
	if err := a.reg.Checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	<-reregistered
	if got, ok := a.get("/instances/a").(map[string]any)["system"]; ok {
		t.Fatalf("live registry: system = %v after re-registration, want none", got)
	}
	b := restart(t, a, registry.Options{})
	if got, ok := b.get("/instances/a").(map[string]any)["system"]; ok {
		t.Errorf("after a restart: system = %v, want none (the record was replaced)", got)
	}
}

// PROTOCOL.md, "Our additions": "Validation (each 422, nothing stored):
// instance_id, name, host ... not valid UTF-8". An unpaired surrogate
// escape is refused by counting U+FFFD in the decoded string against
// "\ufffd" in the JSON literal; the text \ufffd written with an escaped
// backslash ("\\ufffd", six ordinary characters) is counted as an escape,
// so it hides one unpaired surrogate, which is stored as U+FFFD.
func TestRegressionUnpairedSurrogateHiddenByEscapedBackslash(t *testing.T) {
	for _, field := range []string{"instance_id", "name", "host"} {
		t.Run(field, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			m := map[string]string{"instance_id": `"a"`, "name": `"app"`, "host": `"h1"`}
			m[field] = `"x\\ufffd\ud800"`
			body := `{"instance_id":` + m["instance_id"] + `,"name":` + m["name"] + `,"version":"1","host":` + m["host"] + `}`
			rec := h.do("POST", "/instances", body)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Errorf("POST /instances with %s %s: status %d, want 422; stored %v", field, m[field], rec.Code, h.get("/instances"))
			}
		})
	}
}

// failingStore fails the first n Updates.
type failingStore struct {
	registry.Store
	fail int
}

func (s *failingStore) SetStates(ctx context.Context, states []registry.State) error {
	if s.fail > 0 {
		s.fail--
		return errors.New("disk full")
	}
	return s.Store.SetStates(ctx, states)
}

func storedActive(t *testing.T, st registry.Store, id string) bool {
	t.Helper()
	active := false
	st.Load(context.Background(), func(rec registry.Record) error {
		if rec.ID == id {
			active = rec.Active
		}
		return nil
	})
	return active
}

// A deregistration whose store write failed is answered with an error; the
// agent's retry must write it (it used to find the instance inactive in
// memory, write nothing and answer 200).
func TestRegressionDeregisterRetryWrites(t *testing.T) {
	ctx := context.Background()
	mem := registry.NewMemStore()
	st := &failingStore{Store: mem, fail: 1}
	reg, _ := registry.New(registry.Options{Store: st})
	reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	if err := reg.Deregister(ctx, "a"); err == nil {
		t.Fatal("a failed store write was not reported")
	}
	if err := reg.Deregister(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if storedActive(t, mem, "a") {
		t.Error("the store still says active after a successful deregistration")
	}
}

// An expiry applied by a read whose client went away (a canceled context)
// must still reach the store: memory already changed.
func TestRegressionExpiryWrittenDespiteCanceledContext(t *testing.T) {
	clock := &fakeClock{now: t0}
	mem := registry.NewMemStore()
	reg, _ := registry.New(registry.Options{Store: mem, Now: clock.Now, HeartbeatInterval: time.Second})
	reg.Register(context.Background(), registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	clock.Advance(4 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	reg.Purge(ctx)
	if storedActive(t, mem, "a") {
		t.Error("expired in memory, still active in the store")
	}
}

// A stored tool list with a repeated name is refused at load, naming the
// record, instead of corrupting the tool index.
func TestRegressionStoredDuplicateToolNames(t *testing.T) {
	mem := registry.NewMemStore()
	mem.Put(context.Background(), registry.Record{ID: "a", Name: "n", Version: "1", Host: "h", Seq: 1,
		Registered: t0, LastSeen: t0, HeartbeatInterval: time.Second, Active: true,
		Tools: []json.RawMessage{json.RawMessage(`{"name":"x"}`), json.RawMessage(`{"name":"x"}`)}})
	if _, err := registry.New(registry.Options{Store: mem}); err == nil || !strings.Contains(err.Error(), `"a"`) {
		t.Errorf("New = %v, want an error naming record \"a\"", err)
	}
}

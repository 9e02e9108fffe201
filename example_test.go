// example_test.go holds the runnable examples of the package documentation.

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/runspec/registry"
)

// An agent registers, posts its tools and heartbeats; a client asks which
// hosts offer a tool.
func Example() {
	ctx := context.Background()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		panic(err)
	}
	reg.Register(ctx, registry.Registration{ID: "7f1c", Name: "ops", Version: "1", Host: "server-01"})
	reg.UpdateTools(ctx, "7f1c", []json.RawMessage{
		json.RawMessage(`{"name":"deploy","description":"Deploy the app","x-command":"/usr/local/bin/deploy","x-run-as":"oracle"}`),
	})
	status, _ := reg.Heartbeat(ctx, "7f1c", nil)
	fmt.Println("heartbeat:", status)

	tool, _, _ := reg.Tool(ctx, "deploy", registry.Filter{ActiveOnly: true})
	for _, h := range tool.Hosts {
		fmt.Printf("%s on %s as %s\n", tool.Name, h.Host, h.RunAs)
	}
	// Output:
	// heartbeat: ack
	// deploy on server-01 as oracle
}

// Purge applies expiry: an agent that stops heartbeating is inactive three
// intervals after it was last seen, and its record is kept as history.
func ExampleRegistry_Purge() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	reg, _ := registry.New(registry.Options{
		HeartbeatInterval: 10 * time.Second,
		Now:               func() time.Time { return now },
	})
	reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "db-1"})

	now = now.Add(30 * time.Second) // exactly at the deadline: still active
	reg.Purge(ctx)
	in, _, _ := reg.Instance(ctx, "a1")
	fmt.Println("after 30s active:", in.Active)

	now = now.Add(time.Second)
	reg.Purge(ctx)
	in, _, _ = reg.Instance(ctx, "a1")
	fmt.Println("after 31s active:", in.Active)
	// Output:
	// after 30s active: true
	// after 31s active: false
}

// The registry is an http.Handler: mount it under a prefix of your own mux.
func Example_handler() {
	reg, _ := registry.New(registry.Options{})
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", reg))

	for _, req := range []*http.Request{
		httptest.NewRequest("POST", "/registry/instances", strings.NewReader(`{"instance_id":"a1","name":"ops","version":"1","host":"web-1"}`)),
		httptest.NewRequest("POST", "/registry/instances/a1/heartbeat", nil),
		httptest.NewRequest("GET", "/registry/hosts", nil),
		httptest.NewRequest("GET", "/registry/tools/deploy", nil),
	} {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		fmt.Println(w.Code, w.Body.String())
	}
	// Output:
	// 201 {"status":"ok"}
	// 200 {"status":"refresh"}
	// 200 [{"host":"web-1","name":"ops","instance_id":"a1","version":"1","tool_count":0}]
	// 404 {"detail":"Tool not found"}
}

// Events follows every change, as GET /events streams them: from the index
// of a read, so that nothing between the read and the stream is missed.
func ExampleRegistry_Events() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg, _ := registry.New(registry.Options{})
	_, meta, _ := reg.Instances(ctx, registry.Filter{}) // what is there now, and its index

	reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	reg.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"deploy"}`)})
	reg.Deregister(ctx, "a1")

	n := 0
	for e, err := range reg.Events(ctx, meta.Index) {
		if err != nil {
			break
		}
		fmt.Println(e.Kind, e.InstanceID, e.Host, "active:", e.Active, "tools:", e.ToolCount)
		if n++; n == 3 {
			break
		}
	}
	// Output:
	// registered a1 web-1 active: true tools: 0
	// tools a1 web-1 active: true tools: 1
	// deregistered a1 web-1 active: false tools: 1
}

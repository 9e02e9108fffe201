// example_test.go holds the runnable examples of the package
// documentation, each against an in-process registry.

package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// An agent registers the tool hello; an orchestrator watches which hosts
// offer it.
func Example() {
	reg, _ := registry.New(registry.Options{})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer reg.ReleaseWaiters() // answer blocking queries before Close waits for them

	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	agent, err := client.NewAgent(c, client.AgentConfig{
		Name:  "ops",
		Host:  "web-1",
		Tools: []json.RawMessage{json.RawMessage(`{"name":"hello","x-command":"echo hello"}`)},
	})
	if err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- agent.Run(ctx) }()

	for u, err := range c.WatchTool(ctx, "hello") {
		if err != nil {
			continue // the watch retries by itself
		}
		if u.Found {
			fmt.Println("hello runs on", u.HostNames())
			break
		}
	}
	stop() // the agent deregisters
	fmt.Println("Run:", <-done)
	_, err = c.Tool(context.Background(), "hello", client.Filter{})
	fmt.Println("after Run, hello is offered:", !errors.Is(err, client.ErrNotFound))
	// Output:
	// hello runs on [web-1]
	// Run: <nil>
	// after Run, hello is offered: false
}

// WatchTool yields the current state, then each change.
func ExampleClient_WatchTool() {
	ctx := context.Background()
	reg, _ := registry.New(registry.Options{})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer reg.ReleaseWaiters()
	c, _ := client.New(srv.URL, client.Options{})
	defer c.CloseIdleConnections()

	deploy := []json.RawMessage{json.RawMessage(`{"name":"deploy","x-command":"/usr/local/bin/deploy"}`)}
	changes := []func(){
		func() {
			reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
			reg.UpdateTools(ctx, "a1", deploy)
		},
		func() {
			reg.Register(ctx, registry.Registration{ID: "a2", Name: "ops", Version: "1", Host: "web-2"})
			reg.UpdateTools(ctx, "a2", deploy)
		},
		func() { reg.Deregister(ctx, "a1") },
		func() { reg.Deregister(ctx, "a2") },
	}
	for u, err := range c.WatchTool(ctx, "deploy") {
		if err != nil {
			fmt.Println(err)
			return
		}
		if u.Found {
			fmt.Println("deploy runs on", u.HostNames())
		} else {
			fmt.Println("no host offers deploy")
		}
		if len(changes) == 0 {
			break
		}
		changes[0]()
		changes = changes[1:]
	}
	// Output:
	// no host offers deploy
	// deploy runs on [web-1]
	// deploy runs on [web-1 web-2]
	// deploy runs on [web-2]
	// no host offers deploy
}

// OnEvent reports each request of the agent and the state it left, except
// acknowledged heartbeats.
func ExampleAgent_Run() {
	reg, _ := registry.New(registry.Options{})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	c, _ := client.New(srv.URL, client.Options{})
	defer c.CloseIdleConnections()

	active := make(chan struct{})
	agent, _ := client.NewAgent(c, client.AgentConfig{
		Name:  "ops",
		Host:  "web-1",
		Tools: []json.RawMessage{json.RawMessage(`{"name":"hello"}`)},
		OnEvent: func(e client.AgentEvent) {
			fmt.Println(e.Op, "->", e.State, e.Err)
			if e.State == client.StateActive {
				close(active)
			}
		},
	})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- agent.Run(ctx) }()
	<-active
	stop()
	<-done
	// Output:
	// register -> registering <nil>
	// tools -> active <nil>
	// deregister -> stopped <nil>
}

// Errors match the sentinels of the status codes; *APIError has the
// details.
func ExampleAPIError() {
	reg, _ := registry.New(registry.Options{APIKey: "s3cret"})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	c, _ := client.New(srv.URL, client.Options{})
	defer c.CloseIdleConnections()
	ctx := context.Background()

	_, err := c.Tool(ctx, "deploy", client.Filter{})
	fmt.Println(errors.Is(err, client.ErrNotFound))
	var ae *client.APIError
	if errors.As(err, &ae) {
		fmt.Println(ae.StatusCode, ae.Detail)
	}
	err = c.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	fmt.Println(errors.Is(err, client.ErrForbidden), err)
	// Output:
	// true
	// 404 Tool not found
	// true registry: POST /instances: 403 Invalid or missing API key
}

// Reads take a Filter; its zero value selects active instances.
func ExampleClient_Hosts() {
	ctx := context.Background()
	reg, _ := registry.New(registry.Options{})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	c, _ := client.New(srv.URL, client.Options{})
	defer c.CloseIdleConnections()
	reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	reg.Register(ctx, registry.Registration{ID: "a2", Name: "ops", Version: "1", Host: "web-2"})
	reg.Deregister(ctx, "a2")

	active, _ := c.Hosts(ctx, client.Filter{})
	all, _ := c.Hosts(ctx, client.Filter{IncludeInactive: true})
	fmt.Println(len(active), "active of", len(all))
	for _, h := range active {
		fmt.Println(h.Host, h.Name, h.InstanceID)
	}
	// Output:
	// 1 active of 2
	// web-1 ops a1
}

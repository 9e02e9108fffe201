// events_example_test.go is the runnable example of Events and
// InstancePages: list once, then follow the changes since the listing.

package client_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// A program lists the records once, then learns of each change after its
// listing, reading again only what a change names.
func ExampleClient_Events() {
	reg, _ := registry.New(registry.Options{})
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer reg.ReleaseWaiters() // end the event stream before Close waits for it

	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var since uint64 // the first page's index: the listing shows every change up to it
	for p, err := range c.InstancePages(ctx, client.Filter{IncludeInactive: true}, 0) {
		if err != nil {
			panic(err)
		}
		if since == 0 {
			since = p.Index
		}
		fmt.Println("listed", len(p.Instances), "records")
	}

	// An agent comes and goes after the listing.
	c.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	c.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"hello","x-command":"echo hello"}`)})
	c.Deregister(ctx, "a1")

	seen := 0
	for e, err := range c.Events(ctx, since) {
		if err != nil {
			fmt.Println(err) // the stream is opened again by itself
			continue
		}
		switch e.Kind {
		case registry.EventReset:
			fmt.Println("list again") // the registry no longer holds the changes since the listing
		case registry.EventTools:
			in, _ := c.Instance(ctx, e.InstanceID) // what the change names, read again
			fmt.Println(e.Kind, e.InstanceID, "now offers", len(in.Tools), "tool")
		default:
			fmt.Println(e.Kind, e.InstanceID, "on", e.Host, "active:", e.Active)
		}
		if seen++; seen == 3 {
			break
		}
	}
	// Output:
	// listed 0 records
	// registered a1 on web-1 active: true
	// tools a1 now offers 1 tool
	// deregistered a1 on web-1 active: false
}

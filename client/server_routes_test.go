// server_routes_test.go checks, through the client, that the server routes
// ids and tool names that contain "/" (sent as %2F): found while building
// the client, fixed in the server.

package client_test

import (
	"encoding/json"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// A tool name may contain "/": POST /instances/{id}/tools accepts it and
// GET /tools lists it, but GET /tools/{name} cannot address it. The router
// matches the decoded path, so /tools/ops%2Fdeploy is /tools/ops/deploy and
// answers the route 404 {"detail":"Not Found"}: such a tool cannot be looked
// up or watched. Either refuse "/" in tool names (422), or route on the
// escaped path (URL.RawPath).
func TestServerRoutesEscapedToolNameWithSlash(t *testing.T) {
	reg, srv := newRegistryServer(t, registry.Options{})
	ctx := t.Context()
	if err := reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"}); err != nil {
		t.Fatal(err)
	}
	err := reg.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"ops/deploy"}`)})
	if err != nil {
		return // refused: fixed
	}
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, err := c.Tool(ctx, "ops/deploy", client.Filter{}); err != nil {
		t.Errorf("the tool %q was accepted, but GET /tools/ops%%2Fdeploy = %v", "ops/deploy", err)
	}
}

// The same for instance ids: POST /instances accepts "a/b", then its
// heartbeat, tool post and DELETE all answer the route 404: the instance
// can never post tools, heartbeat or deregister (a runspec agent whose id
// has a "/" would register again forever).
func TestServerRoutesEscapedInstanceIDWithSlash(t *testing.T) {
	_, srv := newRegistryServer(t, registry.Options{})
	ctx := t.Context()
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if err := c.Register(ctx, registry.Registration{ID: "a/b", Name: "ops", Version: "1", Host: "web-1"}); err != nil {
		return // refused: fixed
	}
	if err := c.UpdateTools(ctx, "a/b", nil); err != nil {
		t.Errorf("instance %q was registered, but posting its tools = %v", "a/b", err)
	}
	if err := c.Deregister(ctx, "a/b"); err != nil {
		t.Errorf("instance %q was registered, but deregistering it = %v", "a/b", err)
	}
}

// escaped_test.go checks that ids and tool names holding "/" (sent as %2F)
// work end to end through the client: the registry routes on the escaped
// path, so such an instance lives a whole agent life and such a tool can be
// looked up.

package client_test

import (
	"encoding/json"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

func TestEscapedToolNameWithSlash(t *testing.T) {
	reg, srv := newRegistryServer(t, registry.Options{})
	ctx := t.Context()
	if err := reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"}); err != nil {
		t.Fatal(err)
	}
	if err := reg.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"ops/deploy"}`)}); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	tool, err := c.Tool(ctx, "ops/deploy", client.Filter{})
	if err != nil || tool.Name != "ops/deploy" || len(tool.Hosts) != 1 {
		t.Errorf("GET /tools/ops%%2Fdeploy = %+v, %v", tool, err)
	}
}

// The client registers every id the registry accepts, "a/b" included, and
// the instance heartbeats, posts tools, is read and deregisters.
func TestEscapedInstanceIDWithSlash(t *testing.T) {
	reg, srv := newRegistryServer(t, registry.Options{})
	ctx := t.Context()
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	if _, err := client.NewAgent(c, client.AgentConfig{InstanceID: "a/b", Name: "ops", Host: "web-1"}); err != nil {
		t.Fatalf("NewAgent refuses an id the registry accepts: %v", err)
	}
	if err := c.Register(ctx, registry.Registration{ID: "a/b", Name: "ops", Version: "1", Host: "web-1"}); err != nil {
		t.Fatal(err)
	}
	if st, err := c.Heartbeat(ctx, "a/b", nil); err != nil || st != registry.Refresh {
		t.Errorf("heartbeat = %q, %v; want refresh", st, err)
	}
	if err := c.UpdateTools(ctx, "a/b", []json.RawMessage{json.RawMessage(`{"name":"t"}`)}); err != nil {
		t.Errorf("posting its tools = %v", err)
	}
	if st, err := c.Heartbeat(ctx, "a/b", nil); err != nil || st != registry.Ack {
		t.Errorf("heartbeat after the post = %q, %v; want ack", st, err)
	}
	if in, err := c.Instance(ctx, "a/b"); err != nil || len(in.Tools) != 1 {
		t.Errorf("reading it = %+v, %v", in, err)
	}
	if err := c.Deregister(ctx, "a/b"); err != nil {
		t.Errorf("deregistering it = %v", err)
	}
	if in, _, err := reg.Instance(ctx, "a/b"); err != nil || in.Active {
		t.Errorf("after DELETE: %+v, %v; want inactive", in, err)
	}
}

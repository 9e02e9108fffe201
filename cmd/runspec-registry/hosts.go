// hosts.go holds the hosts command: one line per (host, agent name), with
// liveness, last seen, tool count and labels.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// hostsCmd is the hosts command.
type hostsCmd struct {
	clientFlags `embed:""`
	labelFlags  `embed:""`
	outputFlags `embed:""`
	Name        string `name:"name" help:"Only the entries of agents of this name."`
	Inactive    bool   `name:"inactive" help:"Include inactive instances."`

	clock clock
}

// Run prints the hosts.
func (c *hostsCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *hostsCmd) run(ctx context.Context, kctx *kong.Context) error {
	labels, err := c.labels()
	if err != nil {
		return err
	}
	cl, err := c.connect()
	if err != nil {
		return err
	}
	body, err := cl.Get(ctx, "/hosts", labels.addTo(client.Filter{IncludeInactive: c.Inactive, Name: c.Name}.Values()))
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(kctx.Stdout, body)
	}
	var hosts []registry.Host
	if err := json.Unmarshal(body, &hosts); err != nil {
		return fmt.Errorf("registry: GET /hosts: %w", err)
	}
	now := c.clock.now()
	t := newTable(kctx.Stdout, "HOST", "AGENT", "STATE", "LAST SEEN", "TOOLS", "VERSION", "INSTANCE", "LABELS")
	for _, h := range hosts {
		t.row(h.Host, h.Name, liveness(h.Active), ago(now, h.LastSeen), strconv.Itoa(h.ToolCount), h.Version, h.InstanceID, labelText(h.Labels))
	}
	return t.flush()
}

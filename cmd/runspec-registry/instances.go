// instances.go holds the instances command: every instance record (active
// first), or one record in full.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// instancesCmd is the instances command.
type instancesCmd struct {
	clientFlags `embed:""`
	labelFlags  `embed:""`
	outputFlags `embed:""`
	Host        string `name:"host" help:"Only the instances on this host."`
	Name        string `name:"name" help:"Only the instances of agents of this name."`
	Active      bool   `name:"active" help:"Only active instances (by default inactive records, kept as history, are listed too)."`
	ID          string `arg:"" optional:"" name:"id" help:"An instance id: show its record in full."`

	clock clock
}

// Run prints the instances, or one instance.
func (c *instancesCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *instancesCmd) run(ctx context.Context, kctx *kong.Context) error {
	labels, err := c.labels()
	if err != nil {
		return err
	}
	cl, err := c.connect()
	if err != nil {
		return err
	}
	if c.ID != "" {
		body, err := cl.Get(ctx, "/instances/"+url.PathEscape(c.ID), url.Values{"detail": {"true"}})
		if errors.Is(err, client.ErrNotFound) {
			return fmt.Errorf("instance %s not found", c.ID)
		}
		if err != nil {
			return err
		}
		if c.json() {
			return writeJSON(kctx.Stdout, body)
		}
		var in registry.Instance
		if err := json.Unmarshal(body, &in); err != nil {
			return fmt.Errorf("registry: GET /instances/%s: %w", c.ID, err)
		}
		return c.printInstance(kctx, in)
	}
	body, err := cl.Get(ctx, "/instances",
		labels.addTo(client.Filter{IncludeInactive: !c.Active, Host: c.Host, Name: c.Name}.Values()))
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(kctx.Stdout, body)
	}
	var list []registry.Instance
	if err := json.Unmarshal(body, &list); err != nil {
		return fmt.Errorf("registry: GET /instances: %w", err)
	}
	slices.SortStableFunc(list, func(a, b registry.Instance) int { // active first, else registration order
		switch {
		case a.Active == b.Active:
			return 0
		case a.Active:
			return -1
		}
		return 1
	})
	now := c.clock.now()
	t := newTable(kctx.Stdout, "INSTANCE", "AGENT", "HOST", "STATE", "LAST SEEN", "TOOLS", "VERSION", "OWNER", "LABELS")
	for _, in := range list {
		t.row(in.ID, in.Name, in.Host, liveness(in.Active), ago(now, in.LastSeen), strconv.Itoa(len(in.Tools)), in.Version, in.Owner, labelText(in.Labels))
	}
	return t.flush()
}

func (c *instancesCmd) printInstance(kctx *kong.Context, in registry.Instance) error {
	now := c.clock.now()
	state := liveness(in.Active) + ", last seen " + ago(now, in.LastSeen)
	if !in.Active && !in.InactiveSince.IsZero() {
		state += ", inactive since " + ago(now, in.InactiveSince)
	}
	if in.ExpiryGuarded {
		state += " (held by the expiry guard)"
	}
	t := newTable(kctx.Stdout, "instance", in.ID)
	t.row("agent", in.Name)
	t.row("host", in.Host)
	t.row("version", in.Version)
	t.row("state", state)
	if in.HeartbeatInterval > 0 {
		t.row("heartbeat", "every "+in.HeartbeatInterval.String())
	}
	if in.Owner != "" {
		t.row("owner", in.Owner)
	}
	if len(in.Labels) > 0 {
		t.row("labels", labelText(in.Labels))
	}
	if len(in.System) > 0 {
		t.row("system", string(in.System))
	}
	if in.Tools == nil {
		t.row("tools", "(no list posted since it registered)")
	}
	if err := t.flush(); err != nil {
		return err
	}
	if len(in.Tools) == 0 {
		return nil
	}
	fmt.Fprintln(kctx.Stdout)
	tt := newTable(kctx.Stdout, "TOOL", "COMMAND", "RUN AS", "DESCRIPTION")
	for _, raw := range in.Tools {
		var t struct {
			Name        json.RawMessage `json:"name"`
			Description json.RawMessage `json:"description"`
			Command     json.RawMessage `json:"x-command"`
			RunAs       json.RawMessage `json:"x-run-as"`
		}
		json.Unmarshal(raw, &t) // a posted tool is an object
		tt.row(jsonText(t.Name), jsonText(t.Command), jsonText(t.RunAs), firstLine(jsonText(t.Description), 60))
	}
	return tt.flush()
}

// jsonText is a posted JSON value as text: a string's value, other values
// as their JSON, "" when absent.
func jsonText(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	return strings.TrimSpace(string(v))
}

// tools.go holds the tools command: the tools the registry knows, with
// their host counts, or one tool host by host (liveness, last seen,
// execution fields, labels).

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

// toolsCmd is the tools command.
type toolsCmd struct {
	clientFlags `embed:""`
	labelFlags  `embed:""`
	outputFlags `embed:""`
	Host        string `name:"host" help:"Only the tools of instances on this host."`
	Inactive    bool   `name:"inactive" help:"Include inactive instances (deregistered or expired records kept as history)."`
	Name        string `arg:"" optional:"" help:"A tool: show its entries host by host."`

	clock clock
}

// Run prints the tools, or one tool.
func (c *toolsCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *toolsCmd) run(ctx context.Context, kctx *kong.Context) error {
	labels, err := c.labels()
	if err != nil {
		return err
	}
	cl, err := c.connect()
	if err != nil {
		return err
	}
	q := labels.addTo(client.Filter{IncludeInactive: c.Inactive, Host: c.Host}.Values())
	path := "/tools"
	if c.Name != "" {
		path += "/" + url.PathEscape(c.Name)
	}
	body, err := cl.Get(ctx, path, q)
	if errors.Is(err, client.ErrNotFound) && c.Name != "" {
		return fmt.Errorf("tool %s not found: no %sinstance offers it", c.Name, activeWord(c.Inactive))
	}
	if err != nil {
		return err
	}
	if c.json() {
		return writeJSON(kctx.Stdout, body)
	}
	if c.Name != "" {
		var tool registry.Tool
		if err := json.Unmarshal(body, &tool); err != nil {
			return fmt.Errorf("registry: GET %s: %w", path, err)
		}
		return c.printTool(kctx, tool)
	}
	var tools []registry.Tool
	if err := json.Unmarshal(body, &tools); err != nil {
		return fmt.Errorf("registry: GET %s: %w", path, err)
	}
	t := newTable(kctx.Stdout, "TOOL", "HOSTS", "DESCRIPTION")
	for _, tool := range tools {
		t.row(tool.Name, hostCount(tool), firstLine(tool.Description, 60))
	}
	return t.flush()
}

// activeWord is "active " unless inactive instances count too.
func activeWord(inactive bool) string {
	if inactive {
		return ""
	}
	return "active "
}

// hostCount says on how many hosts a tool is active, and on how many more
// only inactive entries remain.
func hostCount(tool registry.Tool) string {
	active, all := map[string]bool{}, map[string]bool{}
	for _, h := range tool.Hosts {
		all[h.Host] = true
		if h.Active {
			active[h.Host] = true
		}
	}
	s := strconv.Itoa(len(active))
	if n := len(all) - len(active); n > 0 {
		s += fmt.Sprintf(" (+%d inactive)", n)
	}
	return s
}

// byLiveness orders entries active first, then by host and instance.
func byLiveness(hosts []registry.ToolHost) []registry.ToolHost {
	hosts = slices.Clone(hosts)
	slices.SortStableFunc(hosts, func(a, b registry.ToolHost) int {
		switch {
		case a.Active != b.Active && a.Active:
			return -1
		case a.Active != b.Active:
			return 1
		}
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return strings.Compare(a.InstanceID, b.InstanceID)
	})
	return hosts
}

// become is the become method and flags of an entry that runs as another
// user, as the table shows them.
func become(h registry.ToolHost) string {
	if h.RunAs.String() == "" {
		return ""
	}
	m := h.BecomeMethod.String()
	if m == "" {
		m = "sudo"
	}
	if f := h.BecomeFlags.String(); f != "" {
		m += " " + f
	}
	return m
}

func (c *toolsCmd) printTool(kctx *kong.Context, tool registry.Tool) error {
	head := tool.Name
	if tool.Description != "" {
		head += ": " + firstLine(tool.Description, 200)
	}
	fmt.Fprintf(kctx.Stdout, "%s\nhosts: %s\n\n", printable(head), printable(hostCount(tool)))
	now := c.clock.now()
	t := newTable(kctx.Stdout, "HOST", "STATE", "LAST SEEN", "AGENT", "INSTANCE", "COMMAND", "RUN AS", "BECOME", "LABELS")
	for _, h := range byLiveness(tool.Hosts) {
		t.row(h.Host, liveness(h.Active), ago(now, h.LastSeen), h.Name, h.InstanceID,
			h.Command.String(), h.RunAs.String(), become(h), labelText(h.Labels))
	}
	return t.flush()
}

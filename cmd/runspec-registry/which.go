// which.go holds the which command: the hosts that offer a tool (active
// first) with their execution fields, and for each entry the command that
// run would execute there (the remote command line and the ssh command),
// or why run refuses it, without connecting anywhere.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry"
	remote "github.com/runspec/registry/run" // the run package; run is a name of this package's tests
)

// whichCmd is the which command. The tool's arguments, to see the exact
// command for them, come after "--" (or as --args-json).
type whichCmd struct {
	clientFlags `embed:""`
	sshFlags    `embed:""`
	labelFlags  `embed:""`
	callFlags   `embed:""`
	outputFlags `embed:""`
	Tool        string   `arg:"" help:"The tool."`
	Args        []string `arg:"" optional:"" passthrough:"partial" help:"After --: the tool's arguments, as run takes them."`

	clock clock
}

// whichEntry is one entry as which shows it (and --output json writes it).
type whichEntry struct {
	Host         string            `json:"host"`
	InstanceID   string            `json:"instance_id"`
	Agent        string            `json:"agent"`
	Active       bool              `json:"active"`
	LastSeen     float64           `json:"last_seen"`
	Owner        string            `json:"owner,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Command      json.RawMessage   `json:"x-command,omitempty"`
	RunAs        json.RawMessage   `json:"x-run-as,omitempty"`
	BecomeMethod json.RawMessage   `json:"x-become-method,omitempty"`
	BecomeFlags  json.RawMessage   `json:"x-become-flags,omitempty"`
	// Remote is the remote command line and SSH the ssh command, as run
	// would execute them; Refused says why run would not, instead.
	Remote  string   `json:"remote,omitempty"`
	SSH     []string `json:"ssh,omitempty"`
	Refused string   `json:"refused,omitempty"`
	// Selected says what run --host HOST does on a host with several
	// active entries: which one runs, or why it refuses.
	Selected string `json:"selected,omitempty"`

	entry registry.ToolHost
	plan  *remote.Plan
}

// Run prints the tool's entries and what run would execute.
func (c *whichCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *whichCmd) run(ctx context.Context, kctx *kong.Context) error {
	labels, err := c.labels()
	if err != nil {
		return err
	}
	runner, err := c.runner()
	if err != nil {
		return err
	}
	tool, err := c.tool(ctx, c.Tool, labels)
	if err != nil {
		return err
	}
	words := c.Args
	if len(words) > 0 && words[0] == "--" {
		words = words[1:]
	}
	schema, args, err := c.args(tool, words)
	if err != nil {
		return err
	}
	var entries []whichEntry
	perHost := map[string]int{}
	for _, h := range tool.Hosts {
		if h.Active {
			perHost[h.Host]++
		}
	}
	for _, h := range byLiveness(tool.Hosts) {
		e := whichEntry{Host: h.Host, InstanceID: h.InstanceID, Agent: h.Name, Active: h.Active,
			LastSeen: float64(h.LastSeen.UnixMicro()) / 1e6, Owner: h.Owner, Labels: h.Labels,
			Command: fieldJSON(h.Command), RunAs: fieldJSON(h.RunAs), BecomeMethod: fieldJSON(h.BecomeMethod), BecomeFlags: fieldJSON(h.BecomeFlags), entry: h}
		if p, err := runner.Plan(remote.Call{Tool: tool, Host: h, Args: args, Env: c.Env, Schema: schema}); err != nil {
			e.Refused = err.Error()
		} else {
			e.Remote, e.SSH, e.plan = p.Command, p.SSH, p
		}
		if h.Active && perHost[h.Host] > 1 {
			if sel, err := remote.Select(tool, h.Host, ""); err != nil {
				e.Selected = "run --host " + h.Host + " refuses: " + err.Error()
			} else {
				e.Selected = "run --host " + h.Host + " runs instance " + sel.InstanceID
			}
		}
		entries = append(entries, e)
	}
	if c.json() {
		b, err := json.MarshalIndent(struct {
			Tool    string       `json:"tool"`
			Hosts   []string     `json:"active_hosts"`
			Entries []whichEntry `json:"entries"`
		}{tool.Name, remote.ActiveHosts(tool), entries}, "", "  ")
		if err != nil {
			return err
		}
		return writeJSON(kctx.Stdout, b)
	}
	c.print(kctx.Stdout, tool, entries)
	return nil
}

// fieldJSON is an execution field's JSON value, nil when absent.
func fieldJSON(f registry.ExecField) json.RawMessage {
	if !f.Set {
		return nil
	}
	b, _ := f.MarshalJSON()
	return b
}

func (c *whichCmd) print(w io.Writer, tool registry.Tool, entries []whichEntry) {
	head := tool.Name
	if tool.Description != "" {
		head += ": " + firstLine(tool.Description, 200)
	}
	fmt.Fprintf(w, "%s\nhosts: %s\n", printable(head), printable(hostCount(tool)))
	now := c.clock.now()
	for _, e := range entries {
		h := e.entry
		fmt.Fprintf(w, "\n%s  %s, last seen %s\n", printable(e.Host), liveness(e.Active), ago(now, h.LastSeen))
		kv := func(key, value string) { fmt.Fprintf(w, "  %-16s %s\n", key, printable(value)) }
		kv("instance", e.InstanceID+" (agent "+e.Agent+")")
		if e.Owner != "" {
			kv("owner", e.Owner)
		}
		if len(e.Labels) > 0 {
			kv("labels", labelText(e.Labels))
		}
		for _, f := range []struct {
			name string
			f    registry.ExecField
		}{{"x-command", h.Command}, {"x-run-as", h.RunAs}, {"x-become-method", h.BecomeMethod}, {"x-become-flags", h.BecomeFlags}} {
			if f.f.Set {
				kv(f.name, f.f.String())
			}
		}
		if e.Refused != "" {
			kv("refused", e.Refused)
		} else {
			kv("remote", e.Remote)
			kv("ssh", e.plan.String())
		}
		if e.Selected != "" {
			kv("note", e.Selected)
		}
	}
}

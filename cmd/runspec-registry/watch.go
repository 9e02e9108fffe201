// watch.go holds the watch command: it follows the tools (or one tool)
// that active instances offer, with the client's blocking-query watches,
// and prints each change as it happens: an entry that appears, goes away
// (its instance went inactive, was deregistered or stopped offering the
// tool) or changes what it would run, until Ctrl-C.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry"
)

// watchCmd is the watch command.
type watchCmd struct {
	clientFlags `embed:""`
	outputFlags `embed:""`
	Tool        string `arg:"" optional:"" help:"Follow this tool only."`

	clock clock
}

// A watchEntry is one instance's entry of a tool, as the watch compares
// it.
type watchEntry struct {
	Tool       string            `json:"tool"`
	Host       string            `json:"host"`
	InstanceID string            `json:"instance_id"`
	Agent      string            `json:"agent"`
	Command    string            `json:"x-command,omitempty"`
	RunAs      string            `json:"x-run-as,omitempty"`
	Become     string            `json:"become,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// A watchChange is one line of the watch's output.
type watchChange struct {
	Time   time.Time `json:"time"`
	Change string    `json:"change"` // present (at the start), added, removed, changed
	watchEntry
}

// Run follows the tools until ctx ends (Ctrl-C), printing each change.
// Failed requests are reported on stderr and retried by the client.
func (c *watchCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *watchCmd) run(ctx context.Context, kctx *kong.Context) error {
	cl, err := c.connect()
	if err != nil {
		return err
	}
	var last map[string]watchEntry // nil until the first answer
	failed := false
	update := func(tools []registry.Tool, err error) {
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(kctx.Stderr, "%s  registry: %s (retrying)\n", c.clock.now().Format(time.TimeOnly), printable(err.Error()))
				failed = true
			}
			return
		}
		if failed {
			fmt.Fprintf(kctx.Stderr, "%s  registry: answering again\n", c.clock.now().Format(time.TimeOnly))
			failed = false
		}
		next := watchEntries(tools)
		c.print(kctx.Stdout, diffEntries(last, next))
		last = next
	}
	if c.Tool != "" {
		for u, err := range cl.WatchTool(ctx, c.Tool) {
			var tools []registry.Tool
			if u.Found {
				tools = []registry.Tool{u.Tool}
			}
			update(tools, err)
		}
	} else {
		for u, err := range cl.WatchTools(ctx) {
			update(u.Tools, err)
		}
	}
	return nil // Ctrl-C: the watch is over
}

// watchEntries keys the entries of tools by tool and instance.
func watchEntries(tools []registry.Tool) map[string]watchEntry {
	m := map[string]watchEntry{}
	for _, t := range tools {
		for _, h := range t.Hosts {
			m[t.Name+"\x00"+h.InstanceID] = watchEntry{Tool: t.Name, Host: h.Host, InstanceID: h.InstanceID, Agent: h.Name,
				Command: h.Command.String(), RunAs: h.RunAs.String(), Become: become(h), Labels: h.Labels}
		}
	}
	return m
}

// diffEntries returns the changes from last to next, by tool, host and
// instance; with last nil, every entry of next is "present".
func diffEntries(last, next map[string]watchEntry) []watchChange {
	var out []watchChange
	for _, k := range slices.Sorted(maps.Keys(next)) {
		e := next[k]
		switch old, ok := last[k]; {
		case last == nil:
			out = append(out, watchChange{Change: "present", watchEntry: e})
		case !ok:
			out = append(out, watchChange{Change: "added", watchEntry: e})
		case !sameEntry(old, e):
			out = append(out, watchChange{Change: "changed", watchEntry: e})
		}
	}
	for _, k := range slices.Sorted(maps.Keys(last)) {
		if _, ok := next[k]; !ok {
			out = append(out, watchChange{Change: "removed", watchEntry: last[k]})
		}
	}
	slices.SortStableFunc(out, func(a, b watchChange) int {
		if c := strings.Compare(a.Tool, b.Tool); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}

func sameEntry(a, b watchEntry) bool {
	return a.Tool == b.Tool && a.Host == b.Host && a.Agent == b.Agent && a.Command == b.Command &&
		a.RunAs == b.RunAs && a.Become == b.Become && maps.Equal(a.Labels, b.Labels)
}

// print writes changes: a line each for people, or a JSON object each.
func (c *watchCmd) print(w io.Writer, changes []watchChange) {
	now := c.clock.now()
	marks := map[string]string{"present": "=", "added": "+", "removed": "-", "changed": "~"}
	for _, ch := range changes {
		ch.Time = now
		if c.json() {
			b, _ := json.Marshal(ch)
			fmt.Fprintf(w, "%s\n", b)
			continue
		}
		line := fmt.Sprintf("%s  %s %s on %s (instance %s, agent %s", now.Format(time.TimeOnly), marks[ch.Change],
			ch.Tool, ch.Host, ch.InstanceID, ch.Agent)
		if ch.Change != "removed" {
			line += ", runs " + ch.Command
			if ch.RunAs != "" {
				line += " as " + ch.RunAs + " via " + ch.Become
			}
		}
		fmt.Fprintln(w, printable(line+")"))
	}
}

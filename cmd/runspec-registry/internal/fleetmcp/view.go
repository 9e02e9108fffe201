// view.go defines a View: what one consumer of the MCP server sees of the
// fleet (tools by glob, one agent name, labels).

package fleetmcp

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// View narrows the fleet that the server offers. The zero View offers
// every tool of every active instance.
type View struct {
	// Tools, if not empty, keeps only the tools whose runspec name matches
	// one of these globs (path.Match: '*' and '?' do not match '/').
	Tools []string
	// Agent, if not empty, keeps only the instances of this agent name.
	Agent string
	// Labels keeps only the instances that carry every one of these
	// labels (key and value).
	Labels map[string]string
}

// ParseLabels reads K=V words into a label map. A word without '=' or
// with an empty key is an error matching ErrView.
func ParseLabels(words []string) (map[string]string, error) {
	if len(words) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(words))
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%w: label %q is not K=V", ErrView, w)
		}
		if old, dup := m[k]; dup && old != v {
			return nil, fmt.Errorf("%w: label %s is given twice, as %q and %q", ErrView, k, old, v)
		}
		m[k] = v
	}
	return m, nil
}

// check reports a glob that path.Match cannot read.
func (v View) check() error {
	for _, g := range v.Tools {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("%w: tool glob %q: %v", ErrView, g, err)
		}
	}
	return nil
}

// tool reports whether the view keeps the tool name.
func (v View) tool(name string) bool {
	if len(v.Tools) == 0 {
		return true
	}
	for _, g := range v.Tools {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// keeps reports whether the view keeps the instances of an agent name
// with these labels.
func (v View) keeps(agent string, labels map[string]string) bool {
	if v.Agent != "" && agent != v.Agent {
		return false
	}
	for k, want := range v.Labels {
		if got, ok := labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// String describes the view for logs.
func (v View) String() string {
	var parts []string
	if len(v.Tools) > 0 {
		parts = append(parts, "tools "+strings.Join(v.Tools, ","))
	}
	if v.Agent != "" {
		parts = append(parts, "agent "+v.Agent)
	}
	for _, k := range slices.Sorted(maps.Keys(v.Labels)) {
		parts = append(parts, "label "+k+"="+v.Labels[k])
	}
	if len(parts) == 0 {
		return "the whole fleet"
	}
	return strings.Join(parts, ", ")
}

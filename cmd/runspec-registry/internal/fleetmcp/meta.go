// meta.go reads a tool object as an instance record keeps it (as the
// agent posted it): what the listing shows of it (description,
// inputSchema, x-autonomy, title, annotations) and the execution fields a
// call checks.

package fleetmcp

import (
	"encoding/json"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
)

// toolMeta is one tool object of an instance. Records share it when they
// posted the same object; it is never modified.
type toolMeta struct {
	name        string
	desc        string          // the description, if it is a string (as the registry groups it)
	input       json.RawMessage // the inputSchema as posted, or nil
	autonomy    Autonomy
	badAutonomy bool // x-autonomy was not one of the four names (read as confirm)
	title       string
	annotations *mcp.ToolAnnotations
	annKey      string                // the annotations' JSON, to compare listings
	exec        [4]registry.ExecField // x-command, x-run-as, x-become-method, x-become-flags
}

// toolObject is the part of a posted tool object that is read here.
type toolObject struct {
	Name         string             `json:"name"`
	Description  json.RawMessage    `json:"description"`
	InputSchema  json.RawMessage    `json:"inputSchema"`
	Autonomy     json.RawMessage    `json:"x-autonomy"`
	Title        json.RawMessage    `json:"title"`
	Annotations  json.RawMessage    `json:"annotations"`
	Command      registry.ExecField `json:"x-command"`
	RunAs        registry.ExecField `json:"x-run-as"`
	BecomeMethod registry.ExecField `json:"x-become-method"`
	BecomeFlags  registry.ExecField `json:"x-become-flags"`
}

// readToolMeta reads one tool object; ok is false when it is not an
// object with a name.
func readToolMeta(raw json.RawMessage) (name string, m toolMeta, ok bool) {
	var o toolObject
	if json.Unmarshal(raw, &o) != nil || o.Name == "" {
		return "", toolMeta{}, false
	}
	m.name = o.Name
	var desc string
	if json.Unmarshal(o.Description, &desc) == nil {
		m.desc = desc
	}
	m.input = o.InputSchema
	var known bool
	m.autonomy, known = autonomyOf(o.Autonomy)
	m.badAutonomy = !known
	var title string
	if json.Unmarshal(o.Title, &title) == nil {
		m.title = title
	}
	if len(o.Annotations) > 0 && string(o.Annotations) != "null" {
		var a mcp.ToolAnnotations
		if json.Unmarshal(o.Annotations, &a) == nil {
			m.annotations = &a
			b, _ := json.Marshal(a)
			m.annKey = string(b)
		}
	}
	m.exec = [4]registry.ExecField{o.Command, o.RunAs, o.BecomeMethod, o.BecomeFlags}
	return o.Name, m, true
}

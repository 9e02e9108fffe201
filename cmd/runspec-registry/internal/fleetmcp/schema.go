// schema.go builds the inputSchema that the MCP listing shows for a tool:
// the tool's own, member for member in its order, plus the runspec_host
// property that chooses the host; and takes runspec_host out of a call's
// arguments again before they are checked against the tool's own schema.

package fleetmcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// HostArg is the argument that chooses the host a call runs on.
const HostArg = "runspec_host"

// errSchema: a tool's inputSchema cannot carry runspec_host (it is not an
// object schema, or it declares runspec_host itself).
var errSchema = errors.New("the tool's inputSchema cannot be offered over MCP")

// member is one member of a JSON object, in its order.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers reads a JSON object's members in their order.
func objectMembers(raw []byte) ([]member, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	if t != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var ms []member
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := d.Decode(&v); err != nil {
			return nil, err
		}
		ms = append(ms, member{k, v})
	}
	if _, err := d.Token(); err != nil {
		return nil, err
	}
	return ms, nil
}

// appendObject writes members as a JSON object.
func appendObject(b []byte, ms []member) []byte {
	b = append(b, '{')
	for i, m := range ms {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, m.key)
		b = append(b, ':')
		b = append(b, m.value...)
	}
	return append(b, '}')
}

// appendJSONString writes s as a JSON string (without HTML escapes).
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	e.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// hostProperty is the schema of runspec_host for hosts (sorted, at least
// one).
func hostProperty(hosts []string) json.RawMessage {
	enum, _ := json.Marshal(hosts)
	b := []byte(`{"type":"string","description":`)
	if len(hosts) == 1 {
		b = appendJSONString(b, "The host to run on: "+hosts[0]+", the only active host that offers this tool.")
	} else {
		b = appendJSONString(b, "The host to run on: one of the active hosts that offer this tool.")
	}
	b = append(b, `,"enum":`...)
	b = append(b, enum...)
	if len(hosts) == 1 {
		b = append(b, `,"default":`...)
		b = appendJSONString(b, hosts[0])
	}
	return append(b, '}')
}

// listingSchema returns the inputSchema of the listing: own (the tool's
// inputSchema; empty or null for a tool that takes no arguments) with
// "type":"object" when it has no type, runspec_host among its
// properties, and runspec_host required when there are several hosts.
func listingSchema(own json.RawMessage, hosts []string) (json.RawMessage, error) {
	var ms []member
	if raw := bytes.TrimSpace(own); len(raw) > 0 && string(raw) != "null" {
		var err error
		if ms, err = objectMembers(raw); err != nil {
			return nil, fmt.Errorf("%w: %v", errSchema, err)
		}
	}
	typ, props, req := -1, -1, -1
	for i, m := range ms {
		switch m.key {
		case "type":
			typ = i
		case "properties":
			props = i
		case "required":
			req = i
		}
	}
	if typ < 0 {
		ms = append([]member{{"type", json.RawMessage(`"object"`)}}, ms...)
		if props >= 0 {
			props++
		}
		if req >= 0 {
			req++
		}
	} else {
		var t string
		if json.Unmarshal(ms[typ].value, &t) != nil || t != "object" {
			return nil, fmt.Errorf("%w: its type is %s, not \"object\"", errSchema, ms[typ].value)
		}
	}

	var pm []member
	if props >= 0 {
		var err error
		if pm, err = objectMembers(ms[props].value); err != nil {
			return nil, fmt.Errorf("%w: properties: %v", errSchema, err)
		}
		for _, p := range pm {
			if p.key == HostArg {
				return nil, fmt.Errorf("%w: it declares %s itself", errSchema, HostArg)
			}
		}
	}
	pm = append(pm, member{HostArg, hostProperty(hosts)})
	value := appendObject(nil, pm)
	if props >= 0 {
		ms[props].value = value
	} else {
		ms = append(ms, member{"properties", value})
	}

	if len(hosts) > 1 {
		var names []string
		if req >= 0 {
			if err := json.Unmarshal(ms[req].value, &names); err != nil {
				return nil, fmt.Errorf("%w: required: %v", errSchema, err)
			}
		}
		names = append(names, HostArg)
		value, _ := json.Marshal(names)
		if req >= 0 {
			ms[req].value = value
		} else {
			ms = append(ms, member{"required", value})
		}
	}
	return appendObject(nil, ms), nil
}

// splitArgs decodes a call's arguments (a JSON object, or nothing) and
// takes runspec_host out of them. Numbers stay json.Number, so that they
// reach the command as the caller wrote them. host is "" when the call
// does not give it; a runspec_host that is not a string is an error.
func splitArgs(raw json.RawMessage) (args map[string]any, host string, err error) {
	args = map[string]any{}
	if raw := bytes.TrimSpace(raw); len(raw) > 0 && string(raw) != "null" {
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&args); err != nil {
			return nil, "", fmt.Errorf("the arguments are not a JSON object: %v", err)
		}
		if args == nil {
			args = map[string]any{}
		}
	}
	if v, ok := args[HostArg]; ok {
		delete(args, HostArg)
		s, isString := v.(string)
		if !isString {
			return nil, "", fmt.Errorf("%s must be a string, the name of a host", HostArg)
		}
		host = s
	}
	return args, host, nil
}

// read.go defines the read methods of the protocol (Instance, Instances,
// Tools, Tool, Hosts) and the values they return. They decode the same JSON
// the HTTP API sends, so the two can never disagree.

package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Instance is an instance record as GET /instances/{id} shows it.
type Instance struct {
	ID                string            `json:"instance_id"`
	Name              string            `json:"name"`
	Version           string            `json:"version"`
	Host              string            `json:"host"`
	Active            bool              `json:"active"`
	LastSeen          time.Time         `json:"-"`
	Tools             []json.RawMessage `json:"tools"`
	HeartbeatInterval time.Duration     `json:"-"`
	System            json.RawMessage   `json:"system,omitempty"`
}

// UnmarshalJSON reads the wire form, where last_seen and heartbeat_interval
// are seconds.
func (in *Instance) UnmarshalJSON(b []byte) error {
	type plain Instance
	aux := struct {
		*plain
		LastSeen float64 `json:"last_seen"`
		Interval float64 `json:"heartbeat_interval"`
	}{plain: (*plain)(in)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	sec, frac := math.Modf(aux.LastSeen)
	in.LastSeen = time.Unix(int64(sec), int64(math.Round(frac*1e6))*1e3)
	in.HeartbeatInterval = time.Duration(aux.Interval * float64(time.Second))
	return nil
}

// Tool is a tool grouped by name, as GET /tools/{name} shows it: the schema
// of the earliest registered instance that offers it, and one entry per
// instance offering it.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	InputSchema json.RawMessage `json:"inputSchema,omitempty"`
	Hosts       []ToolHost      `json:"hosts"`
}

// ToolHost says how to run a tool on one host. The execution fields are
// kept as posted (normally JSON strings); absent ones are nil.
type ToolHost struct {
	Host         string          `json:"host"`
	Command      json.RawMessage `json:"x-command,omitempty"`
	RunAs        json.RawMessage `json:"x-run-as,omitempty"`
	BecomeMethod json.RawMessage `json:"x-become-method,omitempty"`
	BecomeFlags  json.RawMessage `json:"x-become-flags,omitempty"`
}

// Host is one (host, agent name) entry of GET /hosts.
type Host struct {
	Host       string `json:"host"`
	Name       string `json:"name"`
	InstanceID string `json:"instance_id"`
	Version    string `json:"version"`
	ToolCount  int    `json:"tool_count"`
}

// Instance returns the record of id, or an error matching ErrNotFound.
func (r *Registry) Instance(ctx context.Context, id string) (Instance, error) {
	var out Instance
	b, err := r.instanceJSON(nil, id)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// instanceJSON appends the record of id as GET /instances/{id} shows it.
func (r *Registry) instanceJSON(buf []byte, id string) ([]byte, error) {
	in := r.lookup(id)
	if in == nil {
		return buf, fmt.Errorf("instance %q: %w", id, ErrNotFound)
	}
	return r.appendInstance(buf, in, r.clock()), nil
}

// Instances returns the records that f selects, in registration order.
func (r *Registry) Instances(ctx context.Context, f Filter) ([]Instance, error) {
	var out []Instance
	return out, r.decodeList(ctx, func() cursorIndex { return r.instances(f) }, &out)
}

// Tools returns the tools offered by the instances that f selects, grouped
// by name, in name order.
func (r *Registry) Tools(ctx context.Context, f Filter) ([]Tool, error) {
	var out []Tool
	return out, r.decodeList(ctx, func() cursorIndex { return r.tools(f) }, &out)
}

// Hosts returns one entry per (host, agent name) that f selects, by host
// then name.
func (r *Registry) Hosts(ctx context.Context, f Filter) ([]Host, error) {
	var out []Host
	return out, r.decodeList(ctx, func() cursorIndex { return r.hosts(f) }, &out)
}

// Tool returns the tool name as offered by the instances that f selects, or
// an error matching ErrNotFound if none offers it.
func (r *Registry) Tool(ctx context.Context, name string, f Filter) (Tool, error) {
	var out Tool
	a, err := r.toolAnswer(name, f) // the bytes GET /tools/{name} sends
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(a.body, &out)
}

func (r *Registry) decodeList(ctx context.Context, mk func() cursorIndex, out any) error {
	var all []byte
	if _, err := r.list(mk, "", 0, func(b []byte) error {
		all = append(all, b...)
		return ctx.Err()
	}); err != nil {
		return err
	}
	return json.Unmarshal(all, out)
}

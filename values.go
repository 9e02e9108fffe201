// values.go defines the Go values that the read methods return (Instance,
// Tool, ToolHost, ExecField, Host, Meta) and their JSON forms, which are the
// protocol's: a value read in Go and encoded with encoding/json is what the
// HTTP API sends for it.

package registry

import (
	"bytes"
	"encoding/json"
	"math"
	"time"
)

// Meta describes the answer of a read.
type Meta struct {
	// Index is the change index of the answer: the index of the last change
	// that affects it (X-Registry-Index). Pass it as Filter.AfterIndex to
	// wait for the next change, or to Events to follow every change from
	// there.
	Index uint64
	// Stale reports that the answer comes from a view that may be behind:
	// the registry's shared store (a Cluster) is unreachable.
	Stale bool
}

// Instance is an instance record, as GET /instances/{id} shows it. It
// round-trips through encoding/json: Marshal writes the protocol's form
// (last_seen and heartbeat_interval in seconds) and Unmarshal reads it.
// Times have the protocol's precision, microseconds.
type Instance struct {
	ID                string
	Name              string
	Version           string
	Host              string
	Active            bool
	LastSeen          time.Time
	Tools             []json.RawMessage // as posted; nil before the first post since the registration
	HeartbeatInterval time.Duration
	System            json.RawMessage   // the last heartbeat's system object, or nil
	Labels            map[string]string // the agent's labels, or nil
	Owner             string            // the identity that first registered the id, if any
	InactiveSince     time.Time         // when it went inactive; zero while active
	ExpiryGuarded     bool              // active past its deadline, held by the expiry guard
}

// instanceJSON is the wire form of an Instance.
type instanceJSON struct {
	ID                string            `json:"instance_id"`
	Name              string            `json:"name"`
	Version           string            `json:"version"`
	Host              string            `json:"host"`
	Active            bool              `json:"active"`
	LastSeen          float64           `json:"last_seen"`
	Tools             []json.RawMessage `json:"tools"`
	HeartbeatInterval float64           `json:"heartbeat_interval"`
	System            json.RawMessage   `json:"system,omitempty"`
	Labels            map[string]string `json:"labels,omitempty"`
	Owner             string            `json:"owner,omitempty"`
	InactiveSince     *float64          `json:"inactive_since,omitempty"`
	ExpiryGuarded     bool              `json:"expiry_guarded,omitempty"`
}

// MarshalJSON writes the record as GET /instances/{id}?detail=true shows it.
func (in Instance) MarshalJSON() ([]byte, error) {
	tools := in.Tools
	if tools == nil {
		tools = []json.RawMessage{} // the wire shows "tools":[] before a post
	}
	var since *float64
	if !in.InactiveSince.IsZero() {
		s := float64(in.InactiveSince.UnixMicro()) / 1e6
		since = &s
	}
	return marshal(instanceJSON{
		ID: in.ID, Name: in.Name, Version: in.Version, Host: in.Host, Active: in.Active,
		LastSeen:          float64(in.LastSeen.UnixMicro()) / 1e6,
		Tools:             tools,
		HeartbeatInterval: float64(in.HeartbeatInterval.Microseconds()) / 1e6,
		System:            in.System,
		Labels:            in.Labels,
		Owner:             in.Owner,
		InactiveSince:     since,
		ExpiryGuarded:     in.ExpiryGuarded,
	})
}

// UnmarshalJSON reads the protocol's form of the record.
func (in *Instance) UnmarshalJSON(b []byte) error {
	var w instanceJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*in = Instance{
		ID: w.ID, Name: w.Name, Version: w.Version, Host: w.Host, Active: w.Active,
		LastSeen:          fromSeconds(w.LastSeen),
		Tools:             w.Tools,
		HeartbeatInterval: time.Duration(math.Round(w.HeartbeatInterval*1e6)) * time.Microsecond,
		System:            w.System,
		Labels:            w.Labels,
		Owner:             w.Owner,
		ExpiryGuarded:     w.ExpiryGuarded,
	}
	if w.InactiveSince != nil {
		in.InactiveSince = fromSeconds(*w.InactiveSince)
	}
	return nil
}

// fromSeconds turns the protocol's Unix seconds into a time, to the
// microsecond.
func fromSeconds(s float64) time.Time {
	return time.UnixMicro(int64(math.Round(s * 1e6)))
}

// micros truncates t to the protocol's precision, as the wire shows it.
func micros(t time.Time) time.Time { return time.UnixMicro(t.UnixMicro()) }

// Tool is a tool grouped by name, as GET /tools/{name} shows it: the name,
// description and input schema of the earliest registered instance that
// offers it, and one entry per instance offering it.
type Tool struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"` // "" when absent or not a string
	InputSchema json.RawMessage `json:"inputSchema,omitempty"`
	Hosts       []ToolHost      `json:"hosts"`
}

// ToolHost says how to run a tool on one host: one instance's entry in a
// grouped tool. Two instances on one host give two entries, told apart by
// InstanceID.
type ToolHost struct {
	Host       string
	InstanceID string
	Name       string // the agent's name

	// The execution fields, as the instance's agent posted them.
	Command, RunAs, BecomeMethod, BecomeFlags ExecField

	Active   bool
	LastSeen time.Time
	Labels   map[string]string // the instance's labels, or nil
	Owner    string            // the identity that owns the instance, if any
	// Run is the command line that runs the tool there (RunCommand).
	Run string
}

// toolHostJSON is the wire form of a ToolHost with ?detail=true; without
// it, the protocol's entry has only host and the execution fields.
type toolHostJSON struct {
	Host         string            `json:"host"`
	Command      ExecField         `json:"x-command,omitzero"`
	RunAs        ExecField         `json:"x-run-as,omitzero"`
	BecomeMethod ExecField         `json:"x-become-method,omitzero"`
	BecomeFlags  ExecField         `json:"x-become-flags,omitzero"`
	InstanceID   string            `json:"instance_id,omitempty"`
	Name         string            `json:"name,omitempty"`
	Active       *bool             `json:"active,omitempty"`
	LastSeen     *float64          `json:"last_seen,omitempty"`
	Owner        string            `json:"owner,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Run          string            `json:"run,omitempty"`
}

// MarshalJSON writes the entry as GET /tools?detail=true shows it.
func (h ToolHost) MarshalJSON() ([]byte, error) {
	seen := float64(h.LastSeen.UnixMicro()) / 1e6
	return marshal(toolHostJSON{Host: h.Host, Command: h.Command, RunAs: h.RunAs, BecomeMethod: h.BecomeMethod,
		BecomeFlags: h.BecomeFlags, InstanceID: h.InstanceID, Name: h.Name, Active: &h.Active, LastSeen: &seen, Owner: h.Owner, Labels: h.Labels, Run: h.Run})
}

// UnmarshalJSON reads an entry, with or without the detail fields.
func (h *ToolHost) UnmarshalJSON(b []byte) error {
	var w toolHostJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = ToolHost{Host: w.Host, Command: w.Command, RunAs: w.RunAs, BecomeMethod: w.BecomeMethod,
		BecomeFlags: w.BecomeFlags, InstanceID: w.InstanceID, Name: w.Name, Owner: w.Owner, Labels: w.Labels, Run: w.Run}
	if w.Active != nil {
		h.Active = *w.Active
	}
	if w.LastSeen != nil {
		h.LastSeen = fromSeconds(*w.LastSeen)
	}
	return nil
}

// ExecField is one execution field of a tool on one host (x-command,
// x-run-as, x-become-method or x-become-flags). The protocol stores what the
// agent posted: normally a string, but any JSON value is allowed, and code
// that runs tools must refuse a field that is not a string.
type ExecField struct {
	// Set reports whether the tool carries the field.
	Set bool
	// Value is the field's value when it is a JSON string.
	Value string
	// Raw is the field's JSON value when it is not a string; nil otherwise.
	Raw json.RawMessage
}

// IsString reports whether the field is present and a string.
func (f ExecField) IsString() bool { return f.Set && f.Raw == nil }

// String returns the value: the string, the JSON text of a value that is
// not a string, or "" when the field is absent.
func (f ExecField) String() string {
	if f.Raw != nil {
		return string(f.Raw)
	}
	return f.Value
}

// IsZero reports whether the field is absent (for encoding/json's omitzero).
func (f ExecField) IsZero() bool { return !f.Set }

// MarshalJSON writes the field's JSON value.
func (f ExecField) MarshalJSON() ([]byte, error) {
	if f.Raw != nil {
		return f.Raw, nil
	}
	return appendString(nil, f.Value), nil
}

// UnmarshalJSON reads a field's JSON value.
func (f *ExecField) UnmarshalJSON(b []byte) error {
	*f = execField(b)
	return nil
}

// execField is the ExecField of a posted JSON value (valid JSON).
func execField(v []byte) ExecField {
	v = bytes.TrimSpace(v)
	if len(v) > 0 && v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return ExecField{Set: true, Value: s}
		}
	}
	return ExecField{Set: true, Raw: append(json.RawMessage(nil), v...)}
}

// Host is one (host, agent name) entry of GET /hosts: the instance the
// registry shows for it.
type Host struct {
	Host       string
	Name       string
	InstanceID string
	Version    string
	ToolCount  int
	Active     bool
	LastSeen   time.Time
	Labels     map[string]string
	Owner      string
}

// hostJSON is the wire form of a Host with ?detail=true; without it the
// protocol's entry stops at tool_count.
type hostJSON struct {
	Host       string            `json:"host"`
	Name       string            `json:"name"`
	InstanceID string            `json:"instance_id"`
	Version    string            `json:"version"`
	ToolCount  int               `json:"tool_count"`
	Active     *bool             `json:"active,omitempty"`
	LastSeen   *float64          `json:"last_seen,omitempty"`
	Owner      string            `json:"owner,omitempty"`
	Labels     map[string]string `json:"labels,omitempty"`
}

// MarshalJSON writes the entry as GET /hosts?detail=true shows it.
func (h Host) MarshalJSON() ([]byte, error) {
	seen := float64(h.LastSeen.UnixMicro()) / 1e6
	return marshal(hostJSON{Host: h.Host, Name: h.Name, InstanceID: h.InstanceID, Version: h.Version,
		ToolCount: h.ToolCount, Active: &h.Active, LastSeen: &seen, Owner: h.Owner, Labels: h.Labels})
}

// UnmarshalJSON reads an entry, with or without the detail fields.
func (h *Host) UnmarshalJSON(b []byte) error {
	var w hostJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*h = Host{Host: w.Host, Name: w.Name, InstanceID: w.InstanceID, Version: w.Version, ToolCount: w.ToolCount,
		Owner: w.Owner, Labels: w.Labels}
	if w.Active != nil {
		h.Active = *w.Active
	}
	if w.LastSeen != nil {
		h.LastSeen = fromSeconds(*w.LastSeen)
	}
	return nil
}

// marshal encodes v without escaping <, > and & (the registry's JSON is not
// HTML).
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	if err := e.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

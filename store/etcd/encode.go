// encode.go maps registry records to etcd keys and values.
//
// Under the prefix P, an instance id has three keys, and a tool schema one:
//
//	P/i/<id>    the record: registration fields and, per tool, the hash of
//	            its schema and its execution fields (x-command, x-run-as,
//	            x-become-method, x-become-flags), written at register and
//	            at a tool post
//	P/s/<id>    last_seen, system and inactive_since (written at register,
//	            deregister, revival and in each replica's heartbeat batch)
//	P/l/<id>    empty, attached to the instance's lease: it exists exactly
//	            while the instance is active
//	P/t/<hash>  a tool without its execution fields, stored once for every
//	            instance that offers it
//
// A tool list of 10,000 tools thus costs one record of about 30 bytes per
// tool plus its execution fields, within etcd's request limit, and a host
// that posts the same tools as a thousand others adds no schema.

package etcd

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/runspec/registry"
)

const (
	recordDir = "i/"
	seenDir   = "s/"
	liveDir   = "l/"
	schemaDir = "t/"
)

// recordValue is the value of P/i/<id>.
type recordValue struct {
	Name       string            `json:"name"`
	Owner      string            `json:"owner,omitempty"` // "": stored before ownership existed
	Labels     map[string]string `json:"labels,omitempty"`
	Version    string            `json:"version"`
	Host       string            `json:"host"`
	Seq        uint64            `json:"seq,omitempty"` // 0: the key's create revision
	Registered time.Time         `json:"registered"`
	Interval   time.Duration     `json:"interval"`
	Tools      []toolRef         `json:"tools"` // nil: no list posted
}

// toolRef is one tool of a record: its schema's hash and its execution
// fields.
type toolRef struct {
	Schema string          `json:"s"`
	X      json.RawMessage `json:"x,omitempty"` // an object, or absent
}

// seenValue is the value of P/s/<id>.
type seenValue struct {
	LastSeen      time.Time       `json:"last_seen"`
	System        json.RawMessage `json:"system,omitempty"`
	SystemAt      *time.Time      `json:"system_at,omitempty"` // when the heartbeat that sent System was sent
	InactiveSince *time.Time      `json:"inactive_since,omitempty"`
}

// systemAt is when the stored system was sent (its last_seen if unknown).
func (sv *seenValue) systemAt() time.Time {
	if sv.SystemAt != nil {
		return *sv.SystemAt
	}
	return sv.LastSeen
}

// setInactive sets or clears (zero) inactive_since.
func (sv *seenValue) setInactive(t time.Time) {
	sv.InactiveSince = nil
	if !t.IsZero() {
		sv.InactiveSince = &t
	}
}

// execKeys are the per-host execution fields, kept in the record; the rest
// of a tool is its schema, shared by every host that posts the same.
var execKeys = map[string]bool{"x-command": true, "x-run-as": true, "x-become-method": true, "x-become-flags": true}

// splitTool splits a tool object into its schema (every member but the
// execution fields, compact, in the posted order) and its execution fields
// (the same), so that joinTool gives back the posted tool, compacted.
func splitTool(tool json.RawMessage) (schema []byte, x json.RawMessage, err error) {
	dec := json.NewDecoder(bytes.NewReader(tool))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, errors.New("tool is not a JSON object")
	}
	schema, x = []byte{'{'}, []byte{'{'}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("tool: %w", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("tool: %w", err)
		}
		key, _ := json.Marshal(tok.(string)) // a key is a string
		dst := &schema
		if execKeys[tok.(string)] {
			dst = (*[]byte)(&x)
		}
		if len(*dst) > 1 {
			*dst = append(*dst, ',')
		}
		*dst = append(append(*dst, key...), ':')
		var buf bytes.Buffer
		if err := json.Compact(&buf, v); err != nil {
			return nil, nil, fmt.Errorf("tool: %w", err)
		}
		*dst = append(*dst, buf.Bytes()...)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, fmt.Errorf("tool: %w", err)
	}
	schema = append(schema, '}')
	if len(x) == 1 {
		return schema, nil, nil
	}
	return schema, append(x, '}'), nil
}

func hashSchema(schema []byte) string {
	sum := sha256.Sum256(schema)
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// isObject reports whether b looks like a compact JSON object: enough for
// joinTool, which the registry's own parser then checks in full.
func isObject(b []byte) bool { return len(b) >= 2 && b[0] == '{' && b[len(b)-1] == '}' }

// joinTool puts a tool back together from its schema and x- members.
func joinTool(schema []byte, x json.RawMessage) json.RawMessage {
	if len(x) <= 2 || !isObject(schema) { // absent or {}; a bad schema is the caller's to refuse
		return append(json.RawMessage(nil), schema...)
	}
	out := make([]byte, 0, len(schema)+len(x))
	out = append(out, schema[:len(schema)-1]...) // without its '}'
	if !bytes.Equal(schema, []byte("{}")) {
		out = append(out, ',')
	}
	return append(out, x[1:]...) // x without its '{'
}

// encodeRecord returns the value of rec's record key and the schemas it
// refers to, by hash.
func encodeRecord(rec registry.Record) ([]byte, map[string][]byte, error) {
	rv := recordValue{Name: rec.Name, Owner: rec.Owner, Labels: rec.Labels, Version: rec.Version, Host: rec.Host, Seq: rec.Seq,
		Registered: rec.Registered, Interval: rec.HeartbeatInterval}
	schemas, err := splitTools(rec.Tools, &rv)
	if err != nil {
		return nil, nil, err
	}
	b, err := json.Marshal(rv)
	return b, schemas, err
}

// splitTools sets rv.Tools from tools (nil stays nil).
func splitTools(tools []json.RawMessage, rv *recordValue) (map[string][]byte, error) {
	schemas := make(map[string][]byte)
	rv.Tools = nil
	if tools == nil {
		return schemas, nil
	}
	rv.Tools = make([]toolRef, len(tools))
	for i, t := range tools {
		schema, x, err := splitTool(t)
		if err != nil {
			return nil, fmt.Errorf("tool %d: %w", i, err)
		}
		h := hashSchema(schema)
		schemas[h] = schema
		rv.Tools[i] = toolRef{Schema: h, X: x}
	}
	return schemas, nil
}

func encodeSeen(sv seenValue) []byte {
	b, _ := json.Marshal(sv) // cannot fail: times and a valid JSON object
	return b
}

// entry is what a Store knows of one id from its change stream: everything
// but the tool list, which is only decoded when it changes.
type entry struct {
	rec       *recordValue // nil until the record key is seen
	createRev int64
	seen      seenValue
	lease     int64 // 0: the instance is inactive
	kaAt      time.Time
}

// record merges e into the Record of id; tools are set by the caller.
func (e *entry) record(id string) registry.Record {
	rec := registry.Record{ID: id, Name: e.rec.Name, Owner: e.rec.Owner, Labels: e.rec.Labels, Version: e.rec.Version, Host: e.rec.Host,
		Seq: e.rec.Seq, Registered: e.rec.Registered, LastSeen: e.seen.LastSeen,
		HeartbeatInterval: e.rec.Interval, Active: e.lease != 0, System: e.seen.System}
	if rec.Seq == 0 {
		rec.Seq = uint64(e.createRev)
	}
	if !rec.Active && e.seen.InactiveSince != nil {
		rec.InactiveSince = *e.seen.InactiveSince
	}
	if e.seen.SystemAt != nil {
		rec.SystemAt = *e.seen.SystemAt
	}
	return rec
}

// tools assembles rv's tool list from schemas.
func tools(rv *recordValue, schemas map[string][]byte) ([]json.RawMessage, error) {
	if rv.Tools == nil {
		return nil, nil
	}
	out := make([]json.RawMessage, len(rv.Tools))
	for i, t := range rv.Tools {
		schema, ok := schemas[t.Schema]
		if !ok {
			return nil, fmt.Errorf("tool %d: schema %s is not stored", i, t.Schema)
		}
		if !isObject(schema) || (len(t.X) > 0 && !isObject(t.X)) {
			return nil, fmt.Errorf("tool %d: schema %s or its execution fields are not a JSON object", i, t.Schema)
		}
		out[i] = joinTool(schema, t.X)
	}
	return out, nil
}

// tools.go parses posted tools and interns them: a tool's schema (every member
// but the per-host execution fields) is stored once per distinct content, so
// a tool offered by 20,000 hosts costs one schema and 20,000 small references.

package registry

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"
)

// execKeys are the per-host execution fields. They are kept apart from the
// schema and shown per host in grouped answers.
var execKeys = [...]string{"x-command", "x-run-as", "x-become-method", "x-become-flags"}

func isExecKey(k string) bool {
	for _, e := range execKeys {
		if k == e {
			return true
		}
	}
	return false
}

// A schema is the interned part of a tool.
type schema struct {
	inner string // the object's members, compact, without braces
	name  string
	head  string // name, description and inputSchema members, for grouped answers
	desc  string // the description, if it is a string
	input []byte // the inputSchema's JSON, if any
	refs  int
}

// execFields are interned too: most hosts of a package run the same command.
type execFields struct {
	inner string       // the execution members, compact, without braces
	f     [4]ExecField // in the order of execKeys
	refs  int
}

// newSchema interns the parts of p that grouped answers show.
func newSchema(p parsedTool) *schema {
	s := &schema{inner: p.inner, name: p.name, head: p.head}
	eachMember(p.head, func(key string, v []byte) {
		switch key {
		case "description":
			if dec := execField(v); dec.IsString() {
				s.desc = dec.Value
			}
		case "inputSchema":
			s.input = slices.Clone(v)
		}
	})
	return s
}

func newExecFields(inner string) *execFields {
	x := &execFields{inner: inner}
	eachMember(inner, func(key string, v []byte) {
		for i, k := range execKeys {
			if k == key {
				x.f[i] = execField(v)
			}
		}
	})
	return x
}

// eachMember calls fn for each member of inner, the compact members of a JSON
// object without its braces, as parseTool made them (no repeated keys).
func eachMember(inner string, fn func(key string, v []byte)) {
	b := []byte("{" + inner + "}")
	for i := 1; b[i] != '}'; {
		kend := scanString(b, i)
		vend := scanValue(b, kend+1)
		fn(string(decodeKey(b[i:kend])), b[kend+1:vend])
		i = vend
		if b[i] == ',' {
			i++
		}
	}
}

// A toolRef is one tool of one instance.
type toolRef struct {
	s *schema
	x *execFields // nil when the tool has no execution fields
}

// A toolSet is an instance's posted tool list. It is never modified.
type toolSet struct {
	list []toolRef
}

// A parsedTool is a validated tool before interning.
type parsedTool struct {
	name, inner, head, exec string
	// lossyName reports a name whose escapes decoded to U+FFFD (an
	// unpaired surrogate): two names posted differently would read alike.
	lossyName bool
}

// toolObjects writes parsed tools back as tool objects.
func toolObjects(parsed []parsedTool) []json.RawMessage {
	out := make([]json.RawMessage, len(parsed))
	for i, t := range parsed {
		out[i] = appendToolObject(nil, t.inner, t.exec)
	}
	return out
}

// toolObjectsOf writes an instance's interned tools back as tool objects.
func toolObjectsOf(ts *toolSet) []json.RawMessage {
	out := make([]json.RawMessage, len(ts.list))
	for i, t := range ts.list {
		out[i] = appendToolObject(nil, t.s.inner, t.execInner())
	}
	return out
}

// appendToolObject writes a tool object back from its parts.
func appendToolObject(buf []byte, inner, exec string) []byte {
	buf = append(buf, '{')
	buf = append(buf, inner...)
	if exec != "" {
		buf = append(buf, ',')
		buf = append(buf, exec...)
	}
	return append(buf, '}')
}

// maxToolErrors bounds the 422 detail list of a bad tool list.
const maxToolErrors = 20

// parseTools validates a posted tool list and splits each tool into parts.
func (r *Registry) parseTools(tools []json.RawMessage) ([]parsedTool, error) {
	return parseToolList(tools, r.opts.MaxTools)
}

// A list read back from a store or a Cluster passed the rules when it was
// posted: parseStoredTools checks only its shape, so that a rule added
// later (or a lowered --max-tools) never makes stored records unreadable.
func parseStoredTools(tools []json.RawMessage) ([]parsedTool, error) {
	return parseTools(tools, len(tools), false)
}

// parseToolList validates a posted tool list of at most max tools.
func parseToolList(tools []json.RawMessage, max int) ([]parsedTool, error) {
	return parseTools(tools, max, true)
}

// parseTools parses a tool list of at most max tools; posted lists also
// get the rules of tool names (checkText).
func parseTools(tools []json.RawMessage, max int, posted bool) ([]parsedTool, error) {
	if tools == nil {
		return nil, invalid(errMissing("body", "tools"))
	}
	if len(tools) > max {
		return nil, invalid(errTooManyTools(max, len(tools)))
	}
	parsed := make([]parsedTool, len(tools))
	seen := make(map[string]int, len(tools))
	var errs []FieldError
	var sc toolScratch
	for i, raw := range tools {
		loc := func() []string { return []string{"body", "tools", strconv.Itoa(i)} }
		p, fe := sc.parse(raw)
		if fe == nil && posted {
			fe = checkText(p.name, "name")
			if fe == nil && p.lossyName {
				e := errText("name")
				fe = &e
			}
		}
		if fe != nil {
			fe.Loc = append(loc(), fe.Loc...)
			errs = append(errs, *fe)
		} else if j, dup := seen[p.name]; dup {
			errs = append(errs, errDuplicateTool(append(loc(), "name"), p.name, j))
		} else {
			seen[p.name] = i
			parsed[i] = p
		}
		if len(errs) == maxToolErrors {
			break
		}
	}
	if errs != nil {
		return nil, invalid(errs...)
	}
	return parsed, nil
}

// parseTool splits one tool object. The error's Loc is relative to the tool.
func parseTool(raw json.RawMessage) (parsedTool, *FieldError) {
	var sc toolScratch
	return sc.parse(raw)
}

// toolScratch is the working memory of parsing tools, reused from one
// tool of a list to the next: a tool then allocates its name, its schema's
// bytes (inner and head, one string) and its execution fields, and nothing
// that is thrown away.
type toolScratch struct {
	compact    bytes.Buffer
	out, exec  []byte
	members    []toolMember
	memberKeys map[string]int
}

// A toolMember is one member of the tool being parsed, as offsets into its
// compact bytes b (no pointers for the collector to scan); key is a string
// over b, decoded only when it holds an escape.
type toolMember struct {
	key      string
	kv, kend int // `"key":value` is b[kv:end], the encoded key b[kv:kend]
	end      int
}

// parse is parseTool with sc's memory.
func (sc *toolScratch) parse(raw json.RawMessage) (parsedTool, *FieldError) {
	c := &sc.compact
	c.Reset()
	c.Grow(len(raw))
	if json.Compact(c, raw) != nil || c.Len() < 2 || c.Bytes()[0] != '{' {
		fe := errKind(kindObject)
		return parsedTool{}, &fe
	}
	if !utf8.Valid(c.Bytes()) {
		fe := errToolUTF8()
		return parsedTool{}, &fe
	}
	b := c.Bytes() // valid compact JSON: the scans below cannot run off its end
	members := sc.members[:0]
	defer func() { sc.members = members[:0] }()
	// A repeated key keeps its first place and its last value. Small tools
	// find a repeat by a scan; past linearScan members a map does, so that a
	// tool of 100,000 keys costs 100,000 steps, not 5 billion.
	var at map[string]int
	headAt := [3]int{-1, -1, -1} // members of name, description, inputSchema; -1: absent
	for i := 1; b[i] != '}'; {
		kend := scanString(b, i)
		key := decodeKey(b[i:kend])
		vend := scanValue(b, kend+1)
		m := toolMember{key: key, kv: i, kend: kend, end: vend}
		i = vend
		if b[i] == ',' {
			i++
		}
		j := -1
		if at != nil {
			if k, ok := at[key]; ok {
				j = k
			}
		} else {
			for k := range members {
				if members[k].key == key {
					j = k
					break
				}
			}
		}
		if j >= 0 {
			members[j] = m
			continue
		}
		members = append(members, m)
		if h := headSlot(key); h >= 0 {
			headAt[h] = len(members) - 1
		}
		switch {
		case at != nil:
			at[key] = len(members) - 1
		case len(members) == linearScan:
			// A large tool: size for the most members its length allows
			// (one is at least 6 bytes), bounded by what a body can hold.
			members = slices.Grow(members, len(b)/12)
			if sc.memberKeys == nil {
				sc.memberKeys = make(map[string]int, len(b)/12)
			}
			at = sc.memberKeys
			defer clear(at) // its keys point into b
			for k, m := range members {
				at[m.key] = k
			}
		}
	}
	var p parsedTool
	inner, exec := sc.out[:0], sc.exec[:0]
	for _, m := range members {
		kv := b[m.kv:m.end]
		switch {
		case isExecKey(m.key):
			exec = appendMember(exec, kv)
			continue
		case m.key == "name":
			v := b[m.kend+1 : m.end]
			if string(v) != "null" && !decodeString(v, &p.name) { // null: no name, as json.Unmarshal leaves it
				fe := errKind(kindString, "name")
				return parsedTool{}, &fe
			}
			p.lossyName = lossy(v)
		}
		inner = appendMember(inner, kv)
	}
	// The head goes after the inner members, in the same bytes.
	innerEnd := len(inner)
	head := inner[innerEnd:]
	for _, j := range headAt {
		if j >= 0 {
			head = appendMember(head, b[members[j].kv:members[j].end])
		}
	}
	out := append(inner, head...) // in place when head did not outgrow inner's array
	sc.out, sc.exec = out[:0], exec[:0]
	if p.name == "" {
		fe := errToolName()
		return parsedTool{}, &fe
	}
	both := string(out) // one allocation for the schema's two strings
	p.inner, p.head = both[:innerEnd], both[innerEnd:]
	if len(exec) > 0 {
		p.exec = string(exec)
	}
	return p, nil
}

// decodeKey returns the JSON string lit as a Go string. Without an escape it
// is lit's own bytes, which the caller must not modify while it is in use.
func decodeKey(lit []byte) string {
	if bytes.IndexByte(lit, '\\') >= 0 {
		var key string
		json.Unmarshal(lit, &key)
		return key
	}
	if len(lit) == 2 {
		return ""
	}
	return unsafe.String(&lit[1], len(lit)-2)
}

// linearScan is how many members a tool may have before parseTool finds
// repeated keys with a map instead of a scan.
const linearScan = 16

// headSlot is the place of key among the members that grouped answers show
// first (name, description, inputSchema), or -1.
func headSlot(key string) int {
	switch key {
	case "name":
		return 0
	case "description":
		return 1
	case "inputSchema":
		return 2
	}
	return -1
}

// scanString returns the end of the JSON string starting at b[i].
func scanString(b []byte, i int) int {
	for i++; b[i] != '"'; i++ {
		if b[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// scanValue returns the end of the compact JSON value starting at b[i].
func scanValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return scanString(b, i)
	case '{', '[':
		depth := 0
		for ; ; i++ {
			switch b[i] {
			case '"':
				i = scanString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
	}
	for b[i] != ',' && b[i] != '}' && b[i] != ']' { // number, true, false, null
		i++
	}
	return i
}

func appendMember(buf, kv []byte) []byte {
	if len(buf) > 0 {
		buf = append(buf, ',')
	}
	return append(buf, kv...)
}

// intern turns parsed tools into a toolSet that shares schemas and execution
// fields with every other instance. Called with Registry.mu held.
func (v *view) intern(parsed []parsedTool) *toolSet {
	ts := &toolSet{list: make([]toolRef, len(parsed))}
	for i, p := range parsed {
		s := v.schemas[p.inner]
		if s == nil {
			s = newSchema(p)
			v.schemas[p.inner] = s
		}
		s.refs++
		ts.list[i].s = s
		if p.exec != "" {
			x := v.execs[p.exec]
			if x == nil {
				x = newExecFields(p.exec)
				v.execs[p.exec] = x
			}
			x.refs++
			ts.list[i].x = x
		}
	}
	return ts
}

// release drops a toolSet's references. Called with Registry.mu held.
func (v *view) release(ts *toolSet) {
	if ts == nil {
		return
	}
	for _, t := range ts.list {
		if t.s.refs--; t.s.refs == 0 {
			delete(v.schemas, t.s.inner)
		}
		if t.x != nil {
			if t.x.refs--; t.x.refs == 0 {
				delete(v.execs, t.x.inner)
			}
		}
	}
}

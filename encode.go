// encode.go writes the protocol's JSON answers straight from the indexes. The
// fixed parts of a record are encoded once (at registration, at interning);
// a listing is produced in chunks, with the registry's read lock held only
// while a chunk is filled, so a slow client never holds up writers and
// concurrent full listings cost one chunk of memory each.

package registry

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/runspec/registry/internal/shell"
)

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Like the reference, it keeps
// non-ASCII text as UTF-8; invalid UTF-8 becomes U+FFFD.
func appendString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// appendHead encodes the fixed start of an instance record, and returns
// where its name member ends.
func appendHead(buf []byte, in *instance) ([]byte, int) {
	buf = append(buf, `{"instance_id":`...)
	buf = appendString(buf, in.id)
	buf = append(buf, `,"name":`...)
	buf = appendString(buf, in.name)
	nameEnd := len(buf)
	buf = append(buf, `,"version":`...)
	buf = appendString(buf, in.version)
	buf = append(buf, `,"host":`...)
	return appendString(buf, in.host), nameEnd
}

// appendSeconds appends a number of seconds the way Python prints a float
// time: the shortest decimal that reads back the same.
func appendSeconds(buf []byte, micros int64) []byte {
	return strconv.AppendFloat(buf, float64(micros)/1e6, 'f', -1, 64)
}

// appendInstance appends the record of in as GET /instances shows it.
// With detail it also shows the owner and, while inactive, inactive_since.
// Called with r.mu held (inactiveAt).
func (r *Registry) appendInstance(buf []byte, in *instance, now int64, detail bool) []byte {
	buf = append(buf, in.head...)
	if in.activeAt(now) {
		buf = append(buf, `,"active":true`...)
	} else {
		buf = append(buf, `,"active":false`...)
	}
	buf = append(buf, `,"last_seen":`...)
	buf = appendSeconds(buf, r.wall(in.lastSeen()).UnixMicro())
	buf = append(buf, `,"tools":[`...)
	if ts := in.tools.Load(); ts != nil {
		for i, t := range ts.list {
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = appendToolObject(buf, t.s.inner, t.execInner())
		}
	}
	buf = append(buf, `],"heartbeat_interval":`...)
	buf = appendSeconds(buf, in.interval.Microseconds())
	if in.labelsJSON != "" {
		buf = append(buf, `,"labels":`...)
		buf = append(buf, in.labelsJSON...)
	}
	if in.guarded {
		buf = append(buf, `,"expiry_guarded":true`...)
	}
	if detail {
		buf = appendOwner(buf, in)
		if !in.activeAt(now) {
			buf = append(buf, `,"inactive_since":`...)
			buf = appendSeconds(buf, r.wall(r.inactiveSince(in, now)).UnixMicro())
		}
	}
	if sys := in.getSystem(); sys != nil {
		buf = append(buf, `,"system":`...)
		buf = append(buf, sys...)
	}
	return append(buf, '}')
}

// appendInstanceOf appends the record of id as GET /instances/{id} shows it.
func (r *Registry) appendInstanceOf(buf []byte, id string, detail bool) ([]byte, error) {
	// Looked up under the lock, as in Instance.
	r.mu.RLock()
	defer r.mu.RUnlock()
	in := r.lookup(id)
	if in == nil {
		return buf, fmt.Errorf("instance %q: %w", id, ErrNotFound)
	}
	return r.appendInstance(buf, in, r.clock(), detail), nil
}

func (t *toolRef) execInner() string {
	if t.x == nil {
		return ""
	}
	return t.x.inner
}

// appendTool appends the grouped tool of members (all offering one tool
// name, by registration order), or reports false if no member qualifies.
// With detail, each host entry also names its instance, agent and liveness.
func (r *Registry) appendTool(buf []byte, members []member, f Filter, detail bool, now int64) ([]byte, bool) {
	first := -1
	for i, m := range members {
		if f.selects(m.in, now) {
			first = i
			break
		}
	}
	if first < 0 {
		return buf, false
	}
	buf = append(buf, '{')
	buf = append(buf, members[first].s.head...)
	buf = append(buf, `,"hosts":[`...)
	for i, m := range members[first:] {
		if i > 0 {
			if !f.selects(m.in, now) {
				continue
			}
			buf = append(buf, ',')
		}
		active := m.in.activeAt(now)
		buf = append(buf, `{"host":`...)
		buf = append(buf, m.host...)
		if m.x != nil {
			buf = append(buf, ',')
			buf = append(buf, m.x.inner...)
		}
		if detail {
			buf = append(buf, ',')
			buf = append(buf, m.in.head[1:m.in.nameEnd]...) // "instance_id":…,"name":…
			buf = r.appendLiveness(buf, m.in, active)
			buf = appendOwner(buf, m.in)
			buf = appendLabelsMember(buf, m.in)
			buf = append(buf, `,"run":`...)
			buf = appendString(buf, RunCommand(m.in.host, m.s.name))
		}
		buf = append(buf, '}')
	}
	return append(buf, "]}"...), true
}

// appendLabels appends labels as a JSON object, keys sorted.
func appendLabels(buf []byte, labels map[string]string) []byte {
	buf = append(buf, '{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendString(buf, k)
		buf = append(buf, ':')
		buf = appendString(buf, labels[k])
	}
	return append(buf, '}')
}

// RunCommand is the command line that runs tool on host with
// runspec-registry run, every word quoted by the repository's one quoting
// helper, so that a host or tool name holding $(…) pastes as inert text.
func RunCommand(host, tool string) string {
	return shell.Join([]string{"runspec-registry", "run", "--host", host, tool})
}

// appendLabelsMember appends the labels of in, if it has any.
func appendLabelsMember(buf []byte, in *instance) []byte {
	if in.labelsJSON == "" {
		return buf
	}
	buf = append(buf, `,"labels":`...)
	return append(buf, in.labelsJSON...)
}

// appendOwner appends the owner of in, if it has one.
func appendOwner(buf []byte, in *instance) []byte {
	if in.owner == "" {
		return buf
	}
	buf = append(buf, `,"owner":`...)
	return appendString(buf, in.owner)
}

// appendLiveness appends the detail members of an entry that say whether
// and when its instance was last seen.
func (r *Registry) appendLiveness(buf []byte, in *instance, active bool) []byte {
	if active {
		buf = append(buf, `,"active":true`...)
	} else {
		buf = append(buf, `,"active":false`...)
	}
	buf = append(buf, `,"last_seen":`...)
	return appendSeconds(buf, r.wall(in.lastSeen()).UnixMicro())
}

func (r *Registry) appendHostEntry(buf []byte, in *instance, detail bool, now int64) []byte {
	buf = append(buf, `{"host":`...)
	buf = appendString(buf, in.host)
	buf = append(buf, `,"name":`...)
	buf = appendString(buf, in.name)
	buf = append(buf, `,"instance_id":`...)
	buf = appendString(buf, in.id)
	buf = append(buf, `,"version":`...)
	buf = appendString(buf, in.version)
	buf = append(buf, `,"tool_count":`...)
	buf = strconv.AppendInt(buf, int64(in.toolCount()), 10)
	if detail {
		buf = r.appendLiveness(buf, in, in.activeAt(now))
		buf = appendOwner(buf, in)
		buf = appendLabelsMember(buf, in)
	}
	return append(buf, '}')
}

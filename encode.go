// encode.go writes the protocol's JSON answers straight from the indexes. The
// fixed parts of a record are encoded once (at registration, at interning);
// an answer is produced into a stream of bounded chunks (list.go), with the
// registry's read lock held only while a chunk is filled, so a slow client
// never holds up writers and concurrent answers cost one chunk of memory
// each, however large one record or grouped tool is.

package registry

import (
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
	buf = appendStringBody(buf, s)
	return append(buf, '"')
}

// appendStringBody is appendString without the quotes.
func appendStringBody(buf []byte, s string) []byte { return appendEscaped(buf, s, false) }

// appendEscaped appends s as the inside of a JSON string: '"', '\\' and
// control characters escaped, invalid UTF-8 as \ufffd. With marshal, it
// writes what encoding/json's Marshal writes without HTML escaping: \b and
// \f instead of \u0008 and \u000c, and U+2028 and U+2029 escaped.
func appendEscaped(buf []byte, s string, marshal bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[start:i]...)
			switch {
			case c == '"' || c == '\\':
				buf = append(buf, '\\', c)
			case c == '\n':
				buf = append(buf, '\\', 'n')
			case c == '\r':
				buf = append(buf, '\\', 'r')
			case c == '\t':
				buf = append(buf, '\\', 't')
			case marshal && c == '\b':
				buf = append(buf, '\\', 'b')
			case marshal && c == '\f':
				buf = append(buf, '\\', 'f')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\ufffd`...)
		case marshal && (r == '\u2028' || r == '\u2029'):
			buf = append(buf, s[start:i]...)
			buf = append(buf, `\u202`...)
			buf = append(buf, hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	return append(buf, s[start:]...)
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

// writeInstance writes the record of in as GET /instances shows it. With
// detail it also shows the owner and, while inactive, inactive_since.
// Called with r.mu held; what it writes after a flush comes from what it
// read before the first (the tool list and the system object are never
// modified, only replaced), so a record is always one version of itself.
func (r *Registry) writeInstance(s *chunker, in *instance, detail bool) bool {
	active := in.activeAt(s.now)
	var since int64
	if detail && !active {
		since = r.inactiveSince(in, s.now)
	}
	guarded, sys, ts := in.guarded, in.getSystem(), in.tools.Load()
	if !s.bytes(in.head) {
		return false
	}
	if active {
		s.buf = append(s.buf, `,"active":true`...)
	} else {
		s.buf = append(s.buf, `,"active":false`...)
	}
	s.buf = append(s.buf, `,"last_seen":`...)
	s.buf = appendSeconds(s.buf, r.wall(in.lastSeen()).UnixMicro())
	s.buf = append(s.buf, `,"tools":[`...)
	if ts != nil {
		for i := range ts.list {
			if i > 0 {
				s.buf = append(s.buf, ',')
			}
			if !s.next() || !writeToolObject(s, &ts.list[i]) {
				return false
			}
		}
	}
	s.buf = append(s.buf, `],"heartbeat_interval":`...)
	s.buf = appendSeconds(s.buf, in.interval.Microseconds())
	if in.labelsJSON != "" {
		s.buf = append(s.buf, `,"labels":`...)
		if !s.text(in.labelsJSON) {
			return false
		}
	}
	if guarded {
		s.buf = append(s.buf, `,"expiry_guarded":true`...)
	}
	if detail {
		if !writeOwner(s, in) {
			return false
		}
		if !active {
			s.buf = append(s.buf, `,"inactive_since":`...)
			s.buf = appendSeconds(s.buf, r.wall(since).UnixMicro())
		}
	}
	if sys != nil {
		s.buf = append(s.buf, `,"system":`...)
		if !s.bytes(sys) {
			return false
		}
	}
	s.buf = append(s.buf, '}')
	return true
}

// writeToolObject writes a tool of an instance's list as it was posted
// (appendToolObject).
func writeToolObject(s *chunker, t *toolRef) bool {
	s.buf = append(s.buf, '{')
	if !s.text(t.s.inner) {
		return false
	}
	if x := t.execInner(); x != "" {
		s.buf = append(s.buf, ',')
		if !s.text(x) {
			return false
		}
	}
	s.buf = append(s.buf, '}')
	return true
}

func (t *toolRef) execInner() string {
	if t.x == nil {
		return ""
	}
	return t.x.inner
}

// writeTool writes the grouped tool name as members(name) gives it (its
// members by registration order), with the entries of the members that f
// selects; found is false, and nothing written, if f selects none. With
// detail, each host entry also names its instance, agent and liveness. A
// tool on many hosts spans chunks: after a flush, its members are looked up
// again and the entries go on after the last one written (by registration
// order), so none is repeated and none that stayed is skipped.
func (r *Registry) writeTool(s *chunker, members func(name string) []member, name string, f Filter, detail bool) (found, ok bool) {
	ms := members(name)
	j := 0
	for j < len(ms) && !f.offers(&ms[j], s.now) {
		j++
	}
	if j == len(ms) {
		return false, true
	}
	m := ms[j]
	gen := s.gen
	s.buf = append(s.buf, '{')
	if !s.text(m.s.head) {
		return true, false
	}
	s.buf = append(s.buf, `,"hosts":[`...)
	for {
		if !r.writeToolHost(s, m, detail) || !s.next() {
			return true, false
		}
		if s.gen != gen { // the lock was released: ms may be stale
			gen, ms = s.gen, members(name)
			var at bool
			if j, at = slices.BinarySearchFunc(ms, m.in.seq, memberBySeq); at {
				j++
			}
		} else {
			j++
		}
		for j < len(ms) && !f.offers(&ms[j], s.now) {
			j++
		}
		if j >= len(ms) {
			break
		}
		m = ms[j]
		s.buf = append(s.buf, ',')
	}
	s.buf = append(s.buf, "]}"...)
	return true, true
}

// writeToolHost writes the host entry of a member of a grouped tool.
func (r *Registry) writeToolHost(s *chunker, m member, detail bool) bool {
	s.buf = append(s.buf, `{"host":`...)
	s.buf = append(s.buf, m.host...)
	if m.x != nil {
		s.buf = append(s.buf, ',')
		if !s.text(m.x.inner) {
			return false
		}
	}
	if detail {
		s.buf = append(s.buf, ',')
		s.buf = append(s.buf, m.in.head[1:m.in.nameEnd]...) // "instance_id":…,"name":…
		s.buf = r.appendLiveness(s.buf, m.in, m.in.activeAt(s.now))
		if !writeOwner(s, m.in) || !writeLabelsMember(s, m.in) {
			return false
		}
		s.buf = append(s.buf, `,"run":`...)
		if !s.jsonString(RunCommand(m.in.host, m.s.name)) {
			return false
		}
	}
	s.buf = append(s.buf, '}')
	return true
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

// writeLabelsMember writes the labels of in, if it has any.
func writeLabelsMember(s *chunker, in *instance) bool {
	if in.labelsJSON == "" {
		return true
	}
	s.buf = append(s.buf, `,"labels":`...)
	return s.text(in.labelsJSON)
}

// writeOwner writes the owner of in, if it has one.
func writeOwner(s *chunker, in *instance) bool {
	if in.owner == "" {
		return true
	}
	s.buf = append(s.buf, `,"owner":`...)
	return s.jsonString(in.owner)
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

// writeHostEntry writes the /hosts entry that in stands for.
func (r *Registry) writeHostEntry(s *chunker, in *instance, detail bool) bool {
	buf := append(s.buf, `{"host":`...)
	buf = appendString(buf, in.host)
	buf = append(buf, `,"name":`...)
	buf = appendString(buf, in.name)
	buf = append(buf, `,"instance_id":`...)
	buf = appendString(buf, in.id)
	buf = append(buf, `,"version":`...)
	buf = appendString(buf, in.version)
	buf = append(buf, `,"tool_count":`...)
	s.buf = strconv.AppendInt(buf, int64(in.toolCount()), 10)
	if detail {
		s.buf = r.appendLiveness(s.buf, in, in.activeAt(s.now))
		if !writeOwner(s, in) || !writeLabelsMember(s, in) {
			return false
		}
	}
	s.buf = append(s.buf, '}')
	return true
}

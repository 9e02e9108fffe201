// encode.go defines how a Record is laid out in the file: a fixed part
// (identity, registration, tools) and a liveness part (state, last seen,
// system) in separate buckets, so that heartbeats and state changes rewrite a
// few dozen bytes rather than the tool list.

package bolt

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/runspec/registry"
)

// Value encodings. Each value starts with its encoding byte, so that a later
// version can change one kind of value without rewriting the file.
const (
	fixedV1 = 1 // without owner and labels
	fixedV2 = 2 // fixedV1, then the owner and the labels
	liveV1  = 1
)

const (
	liveActive = 1 << iota
	liveSystem // a system object follows
)

// fixed is the part of a Record that a heartbeat or a state change does not
// touch. Tools is nil if no list was posted.
type fixed struct {
	Name, Version, Host string
	Owner               string
	Labels              map[string]string
	Seq                 uint64
	Registered          time.Time
	HeartbeatInterval   time.Duration
	Tools               []json.RawMessage
}

// live is the part of a Record that SetStates and Touch change.
type live struct {
	Active        bool
	LastSeen      time.Time
	InactiveSince time.Time
	System        json.RawMessage // nil: none
}

func split(rec registry.Record) (fixed, live) {
	return fixed{
			Name: rec.Name, Version: rec.Version, Host: rec.Host, Owner: rec.Owner, Labels: rec.Labels,
			Seq:               rec.Seq,
			Registered:        rec.Registered,
			HeartbeatInterval: rec.HeartbeatInterval,
			Tools:             rec.Tools,
		}, live{
			Active:        rec.Active,
			LastSeen:      rec.LastSeen,
			InactiveSince: rec.InactiveSince,
			System:        rec.System,
		}
}

func join(id string, f fixed, l live) registry.Record {
	return registry.Record{
		ID: id, Name: f.Name, Version: f.Version, Host: f.Host, Owner: f.Owner, Labels: f.Labels,
		Seq:               f.Seq,
		Registered:        f.Registered,
		LastSeen:          l.LastSeen,
		HeartbeatInterval: f.HeartbeatInterval,
		Active:            l.Active,
		InactiveSince:     l.InactiveSince,
		Tools:             f.Tools,
		System:            l.System,
	}
}

// appendFixed encodes f: version, name, version, host, seq, registered,
// interval, then the tool count plus one (0: nil list) and each tool as
// length and bytes, then the owner, the label count and each label's key
// and value (sorted by key).
func appendFixed(b []byte, f fixed) []byte {
	b = append(b, fixedV2)
	b = appendString(b, f.Name)
	b = appendString(b, f.Version)
	b = appendString(b, f.Host)
	b = binary.AppendUvarint(b, f.Seq)
	b = appendTime(b, f.Registered)
	b = binary.AppendVarint(b, int64(f.HeartbeatInterval))
	if f.Tools == nil {
		b = binary.AppendUvarint(b, 0)
	} else {
		b = binary.AppendUvarint(b, uint64(len(f.Tools))+1)
		for _, t := range f.Tools {
			b = appendBytes(b, t)
		}
	}
	b = appendString(b, f.Owner)
	b = binary.AppendUvarint(b, uint64(len(f.Labels)))
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		b = appendString(b, k)
		b = appendString(b, f.Labels[k])
	}
	return b
}

// fixedSize is an upper bound of the encoded size of f, so that Put
// allocates once.
func fixedSize(f fixed) int {
	n := 1 + 4*binary.MaxVarintLen64 + len(f.Name) + len(f.Version) + len(f.Host) + len(f.Owner) +
		6*binary.MaxVarintLen64
	for k, v := range f.Labels {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	for _, t := range f.Tools {
		n += binary.MaxVarintLen64 + len(t)
	}
	return n
}

// appendLive encodes l: version, flags, last seen, inactive since, and the
// system object if there is one.
func appendLive(b []byte, l live) []byte {
	var flags byte
	if l.Active {
		flags |= liveActive
	}
	if l.System != nil {
		flags |= liveSystem
	}
	b = append(b, liveV1, flags)
	b = appendTime(b, l.LastSeen)
	b = appendTime(b, l.InactiveSince)
	if l.System != nil {
		b = appendBytes(b, l.System)
	}
	return b
}

// appendTime encodes t as Unix seconds and nanoseconds, which keeps every
// instant (the zero Time included) without the 1678–2262 range of UnixNano.
// The location is not kept: times compare with Equal.
func appendTime(b []byte, t time.Time) []byte {
	b = binary.AppendVarint(b, t.Unix())
	return binary.AppendUvarint(b, uint64(t.Nanosecond()))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendBytes(b []byte, p []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(p)))
	return append(b, p...)
}

var errShort = errors.New("value ends early")

// A decoder reads a value. Its first error sticks; later reads return zero
// values, so that callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) byte() byte {
	if len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next length-prefixed field, aliasing the input.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

// zeroUnix is time.Time{}.Unix(): decoding gives back the zero Time itself,
// so that IsZero and == keep working.
var zeroUnix = time.Time{}.Unix()

func (d *decoder) time() time.Time {
	sec := d.varint()
	nsec := d.uvarint()
	if nsec >= 1e9 {
		d.fail(fmt.Errorf("bad nanoseconds %d", nsec))
		return time.Time{}
	}
	if d.err != nil || (sec == zeroUnix && nsec == 0) {
		return time.Time{}
	}
	return time.Unix(sec, int64(nsec))
}

func (d *decoder) end() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d bytes after the value", len(d.b))
	}
	return d.err
}

// decodeFixed decodes a fixed value. The tools are copied into one buffer:
// b may be bbolt memory, valid only inside its transaction.
func decodeFixed(b []byte) (fixed, error) {
	d := decoder{b: b}
	v := d.byte()
	if d.err == nil && v != fixedV1 && v != fixedV2 {
		return fixed{}, fmt.Errorf("unknown record encoding %d", v)
	}
	var f fixed
	f.Name = d.string()
	f.Version = d.string()
	f.Host = d.string()
	f.Seq = d.uvarint()
	f.Registered = d.time()
	f.HeartbeatInterval = time.Duration(d.varint())
	n := d.uvarint()
	if n > 0 {
		n--
		// Each tool takes at least its length byte: a corrupt count must
		// not make us allocate more than the value could hold.
		if n > uint64(len(d.b)) || n > math.MaxInt32 {
			return fixed{}, fmt.Errorf("tool count %d exceeds the value", n)
		}
		buf := make([]byte, len(d.b))
		copy(buf, d.b)
		d.b = buf
		f.Tools = make([]json.RawMessage, n)
		for i := range f.Tools {
			f.Tools[i] = d.bytes()
		}
	}
	if v == fixedV2 {
		f.Owner = d.string()
		n := d.uvarint()
		if n > uint64(len(d.b)) {
			return fixed{}, fmt.Errorf("label count %d exceeds the value", n)
		}
		for range n {
			k, val := d.string(), d.string()
			if f.Labels == nil {
				f.Labels = make(map[string]string, n)
			}
			f.Labels[k] = val
		}
	}
	if err := d.end(); err != nil {
		return fixed{}, err
	}
	return f, nil
}

// decodeLive decodes a liveness value. If copySystem is false, System
// aliases b.
func decodeLive(b []byte, copySystem bool) (live, error) {
	d := decoder{b: b}
	if v := d.byte(); d.err == nil && v != liveV1 {
		return live{}, fmt.Errorf("unknown liveness encoding %d", v)
	}
	flags := d.byte()
	if flags&^(liveActive|liveSystem) != 0 {
		return live{}, fmt.Errorf("unknown liveness flags %#x", flags)
	}
	var l live
	l.Active = flags&liveActive != 0
	l.LastSeen = d.time()
	l.InactiveSince = d.time()
	if flags&liveSystem != 0 {
		l.System = d.bytes()
		if copySystem && d.err == nil {
			l.System = append(json.RawMessage{}, l.System...)
		}
	}
	if err := d.end(); err != nil {
		return live{}, err
	}
	return l, nil
}

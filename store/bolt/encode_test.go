// encode_test.go checks the value encodings: a round trip keeps every field,
// and decoding arbitrary bytes (a damaged file) fails without panicking.

package bolt

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

func TestEncodeRoundTrip(t *testing.T) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		name string
		f    fixed
		l    live
	}{
		{"zero", fixed{}, live{}},
		{"full",
			fixed{Name: "n", Version: "v", Host: "h", Seq: 1 << 60, Registered: at, HeartbeatInterval: time.Hour,
				Tools: []json.RawMessage{json.RawMessage(`{"name":"a"}`), json.RawMessage(`{"name":"b"}`)}},
			live{Active: true, LastSeen: at.Add(time.Second), System: json.RawMessage(`{"os":"linux"}`)}},
		{"empty lists",
			fixed{Tools: []json.RawMessage{}, Registered: time.Unix(-1, 5)},
			live{System: json.RawMessage{}, InactiveSince: at}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f, err := decodeFixed(appendFixed(nil, tt.f))
			if err != nil {
				t.Fatal(err)
			}
			l, err := decodeLive(appendLive(nil, tt.l), true)
			if err != nil {
				t.Fatal(err)
			}
			// The location is not kept; the instant is.
			if !f.Registered.Equal(tt.f.Registered) || !l.LastSeen.Equal(tt.l.LastSeen) || !l.InactiveSince.Equal(tt.l.InactiveSince) {
				t.Errorf("times changed: %v %v %v", f.Registered, l.LastSeen, l.InactiveSince)
			}
			if f.Registered.IsZero() != tt.f.Registered.IsZero() || l.InactiveSince.IsZero() != tt.l.InactiveSince.IsZero() {
				t.Errorf("zero times changed")
			}
			f.Registered, l.LastSeen, l.InactiveSince = tt.f.Registered, tt.l.LastSeen, tt.l.InactiveSince
			if !reflect.DeepEqual(f, tt.f) {
				t.Errorf("fixed: got %+v, want %+v", f, tt.f)
			}
			if !reflect.DeepEqual(l, tt.l) {
				t.Errorf("live: got %+v, want %+v", l, tt.l)
			}
		})
	}
}

// FuzzDecode feeds arbitrary bytes to the decoders: they must fail cleanly,
// and what they accept must survive another round trip. (Not the same
// bytes: arbitrary input may pad its varints.)
func FuzzDecode(f *testing.F) {
	at := time.Date(2025, 6, 1, 12, 0, 0, 123456789, time.UTC)
	f.Add(appendFixed(nil, fixed{Name: "n", Version: "v", Host: "h", Seq: 7, Registered: at, HeartbeatInterval: time.Minute,
		Tools: []json.RawMessage{json.RawMessage(`{"name":"a"}`)}}))
	f.Add(appendFixed(nil, fixed{Tools: []json.RawMessage{}}))
	f.Add(appendLive(nil, live{Active: true, LastSeen: at, System: json.RawMessage(`{}`)}))
	f.Add(appendLive(nil, live{InactiveSince: at}))
	f.Add([]byte{fixedV1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		if fx, err := decodeFixed(b); err == nil {
			enc := appendFixed(nil, fx)
			again, err := decodeFixed(enc)
			if err != nil || !reflect.DeepEqual(again, fx) || !bytes.Equal(appendFixed(nil, again), enc) {
				t.Errorf("fixed %x: decoded %+v, round trip %+v, %v", b, fx, again, err)
			}
		}
		if l, err := decodeLive(b, true); err == nil {
			enc := appendLive(nil, l)
			again, err := decodeLive(enc, true)
			if err != nil || !reflect.DeepEqual(again, l) || !bytes.Equal(appendLive(nil, again), enc) {
				t.Errorf("live %x: decoded %+v, round trip %+v, %v", b, l, again, err)
			}
		}
	})
}

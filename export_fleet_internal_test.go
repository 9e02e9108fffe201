// export_fleet_internal_test.go checks the encoders that let the fleet
// exports stream the bytes they had when they were marshaled whole:
// appendJSON against encoding/json (marshal), and cmpGroupName and
// appendGroupName against the group names they stand for.

package registry

import (
	"cmp"
	"strings"
	"testing"
)

var fleetStrings = []string{
	"", "web-1", `say "hi" \ x`, "a\nb\tc\r\x1b\x00\x7f", "\b\f", "\u0085\u2028\u2029\ufeff", "<a&b>",
	"bad\xff", "\xe6\x97", "é 日本 🙂", "{{ x }}", "a-b", "a.b", "a_b", "a__", "aé", "a\xffb", "Z", "_", "0",
}

func TestAppendJSON(t *testing.T) {
	for _, s := range fleetStrings {
		want, err := marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSON(nil, s); string(got) != string(want) {
			t.Errorf("appendJSON(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestCmpGroupName(t *testing.T) {
	reduce := func(name string) string { // groupName as it was written first
		var b strings.Builder
		for _, c := range name {
			if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' {
				b.WriteRune(c)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	for _, a := range fleetStrings {
		if got, want := groupName(a), reduce(a); got != want {
			t.Errorf("groupName(%q) = %q, want %q", a, got, want)
		}
		for _, b := range fleetStrings {
			if got, want := cmpGroupName(a, b), cmp.Compare(reduce(a), reduce(b)); got != want {
				t.Errorf("cmpGroupName(%q, %q) = %d, want %d", a, b, got, want)
			}
		}
	}
}

// schema_internal_test.go checks the listing's inputSchema member by
// member (the tool's own order kept, runspec_host added, required only
// with several hosts) and the splitting of a call's arguments.

package fleetmcp

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestListingSchema(t *testing.T) {
	one := `{"type":"string","description":"The host to run on: web-1, the only active host that offers this tool.","enum":["web-1"],"default":"web-1"}`
	two := `{"type":"string","description":"The host to run on: one of the active hosts that offer this tool.","enum":["web-1","web-2"]}`
	tests := []struct {
		name, own string
		hosts     []string
		want      string
		err       error
	}{
		{"no schema", ``, []string{"web-1"}, `{"type":"object","properties":{"runspec_host":` + one + `}}`, nil},
		{"null", `null`, []string{"web-1"}, `{"type":"object","properties":{"runspec_host":` + one + `}}`, nil},
		{"order kept", `{"properties":{"z":{"type":"string"},"a":{"type":"integer"}},"required":["z"],"additionalProperties":false}`,
			[]string{"web-1", "web-2"},
			`{"type":"object","properties":{"z":{"type":"string"},"a":{"type":"integer"},"runspec_host":` + two + `},"required":["z","runspec_host"],"additionalProperties":false}`, nil},
		{"own host argument", `{"type":"object","properties":{"host":{"type":"string"}},"required":["host"]}`, []string{"web-1"},
			`{"type":"object","properties":{"host":{"type":"string"},"runspec_host":` + one + `},"required":["host"]}`, nil},
		{"not an object schema", `{"type":"array"}`, []string{"web-1"}, ``, errSchema},
		{"declares runspec_host", `{"type":"object","properties":{"runspec_host":{}}}`, []string{"web-1"}, ``, errSchema},
		{"not JSON object", `[1]`, []string{"web-1"}, ``, errSchema},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := listingSchema(json.RawMessage(tt.own), tt.hosts)
			if !errors.Is(err, tt.err) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.want, string(got)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitArgs(t *testing.T) {
	tests := []struct {
		name, raw string
		args      map[string]any
		host      string
		err       bool
	}{
		{"none", ``, map[string]any{}, "", false},
		{"host taken out, own host kept", `{"runspec_host":"web-2","host":"db.internal","n":12345678901234567890}`,
			map[string]any{"host": "db.internal", "n": json.Number("12345678901234567890")}, "web-2", false},
		{"host not a string", `{"runspec_host":3}`, nil, "", true},
		{"not an object", `[1]`, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args, host, err := splitArgs(json.RawMessage(tt.raw))
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if diff := cmp.Diff(tt.args, args); diff != "" || host != tt.host {
				t.Errorf("host %q (want %q), args mismatch (-want +got):\n%s", host, tt.host, diff)
			}
		})
	}
}

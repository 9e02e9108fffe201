// values_test.go checks the Go values of reads: they round-trip through
// encoding/json, they equal the HTTP answers decoded, and execution fields
// keep absent, empty, string and non-string values apart.

package registry_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

// randomInstance is a record at the protocol's precision (microseconds).
func randomInstance(rng *rand.Rand) registry.Instance {
	str := func() string {
		const chars = "abcXYZ09-_./:@ é✓\"\\<>&"
		r := []rune(chars)
		b := make([]rune, rng.IntN(12))
		for i := range b {
			b[i] = r[rng.IntN(len(r))]
		}
		return string(b)
	}
	in := registry.Instance{
		ID: str(), Name: str(), Version: str(), Host: str(),
		Active:            rng.IntN(2) == 0,
		LastSeen:          time.UnixMicro(rng.Int64N(4e15)),
		HeartbeatInterval: time.Duration(1+rng.Int64N(86400e6)) * time.Microsecond,
	}
	if n := rng.IntN(4); n > 0 {
		in.Tools = []json.RawMessage{}
		for i := range n - 1 {
			in.Tools = append(in.Tools, json.RawMessage(fmt.Sprintf(`{"name":"t%d","x-command":%q}`, i, str())))
		}
	}
	if rng.IntN(2) == 0 {
		in.System = json.RawMessage(fmt.Sprintf(`{"pid":%d,"note":%q}`, rng.IntN(1<<20), str()))
	}
	return in
}

func TestInstanceJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		want := randomInstance(rng)
		b, err := json.Marshal(want)
		if err != nil {
			t.Fatal(err)
		}
		var got registry.Instance
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("Unmarshal(%s): %v", b, err)
		}
		if want.Tools == nil {
			want.Tools = []json.RawMessage{} // the wire has no "not posted"
		}
		if diff := cmp.Diff(want, got, jsonEqual); diff != "" {
			t.Fatalf("record %d: round trip mismatch (-want +got):\n%s\nJSON: %s", i, diff, b)
		}
	}
}

// jsonEqual compares JSON values by what they decode to: json.Marshal
// escapes <, > and & in what a MarshalJSON method returns.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return cmp.Equal(x, y)
})

// The Go values of every read equal the HTTP answers (with ?detail=true
// for host entries) decoded into the same types.
func TestValuesMatchHTTP(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a1", "ops", "web-1")
	h.postTools("a1", `{"name":"deploy","description":"Deploy <it> & go","inputSchema":{"type":"object"},"x-command":"/bin/deploy","x-run-as":"oracle"}`,
		`{"name":"odd","x-command":["not","a","string"],"x-become-flags":""}`)
	h.heartbeat("a1")
	h.register("a2", "ops", "web-2")
	h.postTools("a2", `{"name":"deploy","x-command":"/bin/deploy2"}`)
	h.register("a3", "db", "web-1")
	h.deregister("a3")
	h.clock.Advance(time.Second)
	ctx := t.Context()

	decode := func(target string, out any) {
		t.Helper()
		rec := h.must(200, "GET", target, "")
		if err := json.Unmarshal(rec.Body.Bytes(), out); err != nil {
			t.Fatalf("%s: %v", target, err)
		}
	}
	check := func(what string, want, got any) {
		t.Helper()
		// Instance.Tools is nil in Go before a list is posted; the wire says [].
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("%s mismatch (-HTTP +Go):\n%s", what, diff)
		}
	}

	var wantTools []registry.Tool
	decode("/tools?detail=true&active=false", &wantTools)
	gotTools, meta, err := h.reg.Tools(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	check("Tools", wantTools, gotTools)
	if idx := h.must(200, "GET", "/tools?active=false", "").Header().Get("X-Registry-Index"); idx != fmt.Sprint(meta.Index) {
		t.Errorf("Tools index %d, HTTP %s", meta.Index, idx)
	}

	var wantTool registry.Tool
	decode("/tools/deploy?detail=true", &wantTool)
	gotTool, _, err := h.reg.Tool(ctx, "deploy", registry.Filter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	check("Tool", wantTool, gotTool)

	var wantInsts []registry.Instance
	decode("/instances?detail=true", &wantInsts)
	gotInsts, _, err := h.reg.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	check("Instances", wantInsts, gotInsts)

	var wantHosts []registry.Host
	decode("/hosts?detail=true&active=false", &wantHosts)
	gotHosts, _, err := h.reg.Hosts(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	check("Hosts", wantHosts, gotHosts)

	// The Go values say what was posted, without JSON quotes.
	host := gotTool.Hosts[0]
	if host.Command.String() != "/bin/deploy" || host.RunAs.Value != "oracle" || host.InstanceID != "a1" || host.Name != "ops" {
		t.Errorf("deploy on web-1: %+v", host)
	}
}

func TestExecField(t *testing.T) {
	ctx := t.Context()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	err = reg.UpdateTools(ctx, "a", []json.RawMessage{json.RawMessage(
		`{"name":"t","x-command":"/bin/x","x-run-as":"","x-become-method":{"m":1},"x-become-flags":null}`)})
	if err != nil {
		t.Fatal(err)
	}
	tool, _, err := reg.Tool(ctx, "t", registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	h := tool.Hosts[0]
	want := []registry.ExecField{
		{Set: true, Value: "/bin/x"},
		{Set: true, Value: ""},
		{Set: true, Raw: json.RawMessage(`{"m":1}`)},
		{Set: true, Raw: json.RawMessage(`null`)},
	}
	if diff := cmp.Diff(want, []registry.ExecField{h.Command, h.RunAs, h.BecomeMethod, h.BecomeFlags}); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		f        registry.ExecField
		isString bool
		str      string
	}{
		{registry.ExecField{}, false, ""},
		{registry.ExecField{Set: true}, true, ""},
		{registry.ExecField{Set: true, Value: "sudo"}, true, "sudo"},
		{registry.ExecField{Set: true, Raw: json.RawMessage(`3`)}, false, "3"},
	} {
		if tt.f.IsString() != tt.isString || tt.f.String() != tt.str {
			t.Errorf("%+v: IsString %v String %q", tt.f, tt.f.IsString(), tt.f.String())
		}
	}
	// Absent fields stay absent in JSON, present ones keep their value.
	b, err := json.Marshal(registry.ToolHost{Host: "h", RunAs: registry.ExecField{Set: true}, BecomeFlags: registry.ExecField{Set: true, Raw: json.RawMessage(`["-H"]`)}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"host":"h","x-run-as":"","x-become-flags":["-H"],"active":false,"last_seen":-62135596800}`; string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
}

// The run command line of a detailed entry is quoted by the one quoting
// helper: a host or tool name holding $(…) pastes as inert text.
func TestRunCommandQuoted(t *testing.T) {
	for _, tt := range []struct{ host, tool, want string }{
		{"web-1", "deploy", "runspec-registry run --host web-1 deploy"},
		{"$(id)", "x;rm -rf /", `runspec-registry run --host '$(id)' 'x;rm -rf /'`},
		{"a'b", "t", `runspec-registry run --host 'a'"'"'b' t`},
	} {
		if got := registry.RunCommand(tt.host, tt.tool); got != tt.want {
			t.Errorf("RunCommand(%q, %q) = %s, want %s", tt.host, tt.tool, got, tt.want)
		}
	}
}

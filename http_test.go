// http_test.go checks the HTTP API against PROTOCOL.md: every endpoint,
// status code and error body, the validation and ordering rules of our
// additions, rate limits, pagination and filters.

package registry_test

import (
	stdcmp "cmp"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"mime"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

func TestRegister(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness)
		body  string
		// want is the record of "a" after the request, last seen at the
		// time of the request (10s after t0).
		want          instRecord
		wantHeartbeat string
	}{
		{
			name: "new",
			body: `{"instance_id":"a","name":"app","version":"1","host":"h1"}`,
			want: instRecord{ID: "a", Name: "app", Host: "h1", Active: true},
			// No tool list posted yet.
			wantHeartbeat: "refresh",
		},
		{
			name: "unknown keys ignored",
			body: `{"instance_id":"a","name":"app","version":"1","host":"h1","extra":{"x":[1]},"tools":[{"name":"t"}],"active":false}`,
			want: instRecord{ID: "a", Name: "app", Host: "h1", Active: true},
			// The "tools" key of a registration is not a tool list.
			wantHeartbeat: "refresh",
		},
		{
			name:          "heartbeat_interval shown",
			body:          `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":45}`,
			want:          instRecord{ID: "a", Name: "app", Host: "h1", Active: true, Interval: 45},
			wantHeartbeat: "refresh",
		},
		{
			name:          "fractional heartbeat_interval",
			body:          `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":0.5}`,
			want:          instRecord{ID: "a", Name: "app", Host: "h1", Active: true, Interval: 0.5},
			wantHeartbeat: "refresh",
		},
		{
			name:          "heartbeat_interval null is the default",
			body:          `{"instance_id":"a","name":"app","version":"1","host":"h1","heartbeat_interval":null}`,
			want:          instRecord{ID: "a", Name: "app", Host: "h1", Active: true},
			wantHeartbeat: "refresh",
		},
		{
			name: "re-register replaces the record",
			setup: func(h *harness) {
				h.must(http.StatusCreated, "POST", "/instances",
					`{"instance_id":"a","name":"old","version":"0","host":"h0","heartbeat_interval":600}`)
				h.postTools("a", `{"name":"t1"}`)
				h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
			},
			body: `{"instance_id":"a","name":"app","version":"2","host":"h1"}`,
			// Tools reset to [], interval back to the default, new fields.
			want:          instRecord{ID: "a", Name: "app", Version: "2", Host: "h1", Active: true},
			wantHeartbeat: "refresh",
		},
		{
			name: "re-register revives a deregistered instance",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"t1"}`)
				h.deregister("a")
			},
			body:          regBody("a", "app", "h1"),
			want:          instRecord{ID: "a", Name: "app", Host: "h1", Active: true},
			wantHeartbeat: "refresh",
		},
		{
			name: "re-register revives an expired instance",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.clock.Advance(time.Hour)
				if err := h.reg.Purge(t.Context()); err != nil {
					t.Fatal(err)
				}
			},
			body:          regBody("a", "app", "h1"),
			want:          instRecord{ID: "a", Name: "app", Host: "h1", Active: true},
			wantHeartbeat: "refresh",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			if tt.setup != nil {
				tt.setup(h)
			}
			h.clock.Advance(10 * time.Second)
			checkJSON(t, h.do("POST", "/instances", tt.body), http.StatusCreated, `{"status":"ok"}`)
			tt.want.LastSeen = h.clock.Now()
			if diff := cmp.Diff(tt.want.value(t), h.get("/instances/a")); diff != "" {
				t.Errorf("record mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]any{tt.want.value(t)}, h.get("/instances")); diff != "" {
				t.Errorf("GET /instances mismatch (-want +got):\n%s", diff)
			}
			if got := h.heartbeat("a"); got != tt.wantHeartbeat {
				t.Errorf("heartbeat after register = %q, want %q", got, tt.wantHeartbeat)
			}
		})
	}
}

func TestRegisterInvalid(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantLocs [][]string
	}{
		{"no body", "", [][]string{{"body"}}},
		{"malformed", `{"instance_id":"a",`, [][]string{{"body"}}},
		{"not an object", `["a","app","1","h1"]`, [][]string{{"body"}}},
		{"null", `null`, [][]string{{"body"}}},
		{"empty object", `{}`, [][]string{{"body", "instance_id"}, {"body", "name"}, {"body", "version"}, {"body", "host"}}},
		{"missing host", `{"instance_id":"a","name":"app","version":"1"}`, [][]string{{"body", "host"}}},
		{"missing version", `{"instance_id":"a","name":"app","host":"h"}`, [][]string{{"body", "version"}}},
		{"number id", `{"instance_id":1,"name":"app","version":"1","host":"h"}`, [][]string{{"body", "instance_id"}}},
		{"null name", `{"instance_id":"a","name":null,"version":"1","host":"h"}`, [][]string{{"body", "name"}}},
		{"number version", `{"instance_id":"a","name":"app","version":1,"host":"h"}`, [][]string{{"body", "version"}}},
		{"object host", `{"instance_id":"a","name":"app","version":"1","host":{}}`, [][]string{{"body", "host"}}},
		{"list host", `{"instance_id":"a","name":"app","version":"1","host":["h"]}`, [][]string{{"body", "host"}}},
		{"bool host", `{"instance_id":"a","name":"app","version":"1","host":true}`, [][]string{{"body", "host"}}},
		{"two bad", `{"instance_id":"","name":"app","version":"1"}`, [][]string{{"body", "instance_id"}, {"body", "host"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			locs := detailLocs(t, h.do("POST", "/instances", tt.body))
			if diff := cmp.Diff(tt.wantLocs, locs); diff != "" {
				t.Errorf("locs mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]any{}, h.get("/instances")); diff != "" {
				t.Errorf("a rejected registration stored something (-want +got):\n%s", diff)
			}
		})
	}
}

// The protocol's own example of a 422 body.
func TestRegisterMissingFieldBody(t *testing.T) {
	h := newHarness(t, registry.Options{})
	checkJSON(t, h.do("POST", "/instances", `{"instance_id":"a","name":"app","version":"1"}`),
		http.StatusUnprocessableEntity,
		`{"detail":[{"loc":["body","host"],"msg":"Field required","type":"missing"}]}`)
}

func TestRegisterFieldValidation(t *testing.T) {
	long := strings.Repeat("a", 256)
	tests := []struct {
		name  string
		value string // a JSON literal
		ok    bool
	}{
		{"plain", `"web-01.example.com"`, true},
		{"256 bytes", `"` + long + `"`, true},
		{"257 bytes", `"` + long + `a"`, false},
		{"256 bytes in 2-byte runes", `"` + strings.Repeat("é", 128) + `"`, true},
		{"258 bytes in 2-byte runes", `"` + strings.Repeat("é", 129) + `"`, false},
		{"non-ASCII", `"日本-サーバ"`, true},
		{"markup characters", `"a<&>\"'b"`, true},
		{"NBSP is not a control character", `"a\u00a0b"`, true},
		{"empty", `""`, false},
		{"NUL", `"a\u0000b"`, false},
		{"C0 0x01", `"a\u0001b"`, false},
		{"newline", `"a\nb"`, false},
		{"tab", `"a\tb"`, false},
		{"C0 0x1f", `"a\u001fb"`, false},
		{"DEL", `"a\u007fb"`, false},
		{"C1 0x80", `"a\u0080b"`, false},
		{"C1 NEL", `"a\u0085b"`, false},
		{"C1 0x9f", `"a\u009fb"`, false},
	}
	for _, field := range []string{"instance_id", "name", "host"} {
		for _, tt := range tests {
			t.Run(field+"/"+tt.name, func(t *testing.T) {
				h := newHarness(t, registry.Options{})
				m := map[string]string{"instance_id": `"a"`, "name": `"app"`, "version": `"1"`, "host": `"h1"`}
				m[field] = tt.value
				body := fmt.Sprintf(`{"instance_id":%s,"name":%s,"version":%s,"host":%s}`, m["instance_id"], m["name"], m["version"], m["host"])
				rec := h.do("POST", "/instances", body)
				if tt.ok {
					checkJSON(t, rec, http.StatusCreated, `{"status":"ok"}`)
					var want string
					if err := json.Unmarshal([]byte(tt.value), &want); err != nil {
						t.Fatal(err)
					}
					list := h.instances()
					if len(list) != 1 || list[0].(map[string]any)[field] != want {
						t.Errorf("stored %s: got %v, want %q", field, list, want)
					}
					return
				}
				if diff := cmp.Diff([][]string{{"body", field}}, detailLocs(t, rec)); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]any{}, h.get("/instances")); diff != "" {
					t.Errorf("a rejected registration stored something (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// "not valid UTF-8" is a 422 whether the bytes are invalid or an escape
// decodes to an unpaired surrogate: encoding/json would silently store
// U+FFFD instead.
func TestRegisterInvalidUTF8(t *testing.T) {
	values := []struct {
		name, literal string // literal is the JSON string as sent, quotes included
	}{
		{"raw 0xff byte", "\"a\xffb\""},
		{"raw Latin-1 é", "\"caf\xe9\""},
		{"truncated UTF-8 sequence", "\"a\xe6\x97b\""},
		{"UTF-8-encoded surrogate", "\"a\xed\xa0\x80b\""},
		{"unpaired high surrogate escape", `"a\ud800b"`},
		{"unpaired low surrogate escape", `"a\udc00b"`},
	}
	for _, field := range []string{"instance_id", "name", "host"} {
		for _, v := range values {
			t.Run(field+"/"+v.name, func(t *testing.T) {
				h := newHarness(t, registry.Options{})
				m := map[string]string{"instance_id": `"a"`, "name": `"app"`, "version": `"1"`, "host": `"h1"`}
				m[field] = v.literal
				body := `{"instance_id":` + m["instance_id"] + `,"name":` + m["name"] + `,"version":"1","host":` + m["host"] + `}`
				rec := h.do("POST", "/instances", body)
				if rec.Code != http.StatusUnprocessableEntity {
					t.Errorf("POST /instances with %s %s: status %d, want 422 (body %s)", field, v.name, rec.Code, rec.Body)
				} else if locs := detailLocs(t, rec); !cmp.Equal(locs, [][]string{{"body", field}}) && !cmp.Equal(locs, [][]string{{"body"}}) {
					t.Errorf("locs = %v, want [[body %s]] (or [[body]])", locs, field)
				}
				if got := h.get("/instances"); !cmp.Equal(got, []any{}) {
					t.Errorf("a %s that is not valid UTF-8 was stored as %v", field, got)
				}
			})
		}
	}
}

func TestRegisterVersionIsAnyString(t *testing.T) {
	h := newHarness(t, registry.Options{})
	// version is only required to be a string: no character rules.
	h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"a","name":"app","version":"","host":"h"}`)
	if got := h.get("/instances/a").(map[string]any)["version"]; got != "" {
		t.Errorf("version = %v, want empty string", got)
	}
}

func TestHeartbeatInterval(t *testing.T) {
	tests := []struct {
		value string // a JSON literal
		want  float64
		ok    bool
	}{
		{"1", 1, true},
		{"45", 45, true},
		{"0.5", 0.5, true},
		{"86400", 86400, true},
		{"86399.5", 86399.5, true},
		{"0", 0, false},
		{"-0", 0, false},
		{"-1", 0, false},
		{"-0.5", 0, false},
		{"86400.5", 0, false},
		{"86401", 0, false},
		{"1e9", 0, false},
		{"1e400", 0, false},
		{`"30"`, 0, false},
		{"true", 0, false},
		{"[30]", 0, false},
		{`{"s":30}`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			rec := h.do("POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h","heartbeat_interval":`+tt.value+`}`)
			if !tt.ok {
				if diff := cmp.Diff([][]string{{"body", "heartbeat_interval"}}, detailLocs(t, rec)); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff([]any{}, h.get("/instances")); diff != "" {
					t.Errorf("a rejected registration stored something (-want +got):\n%s", diff)
				}
				return
			}
			checkJSON(t, rec, http.StatusCreated, `{"status":"ok"}`)
			if got := h.get("/instances/a").(map[string]any)["heartbeat_interval"]; got != tt.want {
				t.Errorf("heartbeat_interval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestHeartbeat(t *testing.T) {
	tests := []struct {
		name  string
		setup func(h *harness) // "a" is registered before setup
		id    string           // "a" if empty
		body  string
		want  string // the answer's status
		// wantSystem is the system shown in a's record afterwards ("" absent).
		wantSystem string
	}{
		{name: "unknown id", id: "nope", body: "{}", want: "refresh"},
		{name: "unknown id, no body", id: "nope", want: "refresh"},
		{name: "no tools posted", body: "{}", want: "refresh"},
		{
			name:  "tools posted",
			setup: func(h *harness) { h.postTools("a", `{"name":"t"}`) },
			body:  "{}", want: "ack",
		},
		{
			name:  "empty list posted",
			setup: func(h *harness) { h.postTools("a") },
			body:  "{}", want: "ack",
		},
		{
			name: "re-registered after posting tools",
			setup: func(h *harness) {
				h.postTools("a", `{"name":"t"}`)
				h.register("a", "app", "h1")
			},
			body: "{}", want: "refresh",
		},
		{
			name:  "no body at all",
			setup: func(h *harness) { h.postTools("a", `{"name":"t"}`) },
			want:  "ack",
		},
		{
			name:  "whitespace body",
			setup: func(h *harness) { h.postTools("a", `{"name":"t"}`) },
			body:  " \n", want: "ack",
		},
		{
			name:  "unknown keys ignored",
			setup: func(h *harness) { h.postTools("a", `{"name":"t"}`) },
			body:  `{"status":"x","pid":3}`, want: "ack",
		},
		{
			name:       "system stored",
			body:       `{"system":{"pid":42,"uptime":12.5,"extra":{"k":[1,"x"]}}}`,
			want:       "refresh",
			wantSystem: `{"pid":42,"uptime":12.5,"extra":{"k":[1,"x"]}}`,
		},
		{
			name: "system replaced",
			setup: func(h *harness) {
				h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1,"old":true}}`)
			},
			body:       `{"system":{"pid":2}}`,
			want:       "refresh",
			wantSystem: `{"pid":2}`,
		},
		{
			name:       "system null leaves it",
			setup:      func(h *harness) { h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`) },
			body:       `{"system":null}`,
			want:       "refresh",
			wantSystem: `{"pid":1}`,
		},
		{
			name:       "system absent leaves it",
			setup:      func(h *harness) { h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`) },
			want:       "refresh",
			wantSystem: `{"pid":1}`,
		},
		{
			name:       "empty system object",
			body:       `{"system":{}}`,
			want:       "refresh",
			wantSystem: `{}`,
		},
		{
			name: "deregistered instance with tools",
			setup: func(h *harness) {
				h.postTools("a", `{"name":"t"}`)
				h.deregister("a")
			},
			body: "{}", want: "ack",
		},
		{
			name:  "deregistered instance without tools",
			setup: func(h *harness) { h.deregister("a") },
			body:  "{}", want: "refresh",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "h1")
			if tt.setup != nil {
				tt.setup(h)
			}
			id := stdcmp.Or(tt.id, "a")
			h.clock.Advance(10 * time.Second)
			checkJSON(t, h.do("POST", "/instances/"+id+"/heartbeat", tt.body), http.StatusOK, `{"status":"`+tt.want+`"}`)
			if id != "a" {
				// A heartbeat does not create an instance.
				checkJSON(t, h.do("GET", "/instances/"+id, ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
				return
			}
			rec := h.get("/instances/a").(map[string]any)
			if rec["active"] != true || rec["last_seen"] != secs(h.clock.Now()) {
				t.Errorf("after heartbeat: active %v, last_seen %v; want true, %v", rec["active"], rec["last_seen"], secs(h.clock.Now()))
			}
			var want any
			if tt.wantSystem != "" {
				want = js(t, tt.wantSystem)
			}
			if diff := cmp.Diff(want, rec["system"]); diff != "" {
				t.Errorf("system mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHeartbeatInvalid(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantLocs [][]string
	}{
		{"malformed", `{"system":`, [][]string{{"body"}}},
		{"not an object", `[]`, [][]string{{"body"}}},
		{"string body", `"x"`, [][]string{{"body"}}},
		{"system number", `{"system":5}`, [][]string{{"body", "system"}}},
		{"system string", `{"system":"pid=1"}`, [][]string{{"body", "system"}}},
		{"system list", `{"system":[{"pid":1}]}`, [][]string{{"body", "system"}}},
		{"system bool", `{"system":false}`, [][]string{{"body", "system"}}},
	}
	for _, tt := range tests {
		for _, id := range []string{"a", "unknown"} {
			t.Run(tt.name+"/"+id, func(t *testing.T) {
				h := newHarness(t, registry.Options{})
				h.register("a", "app", "h1")
				h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`)
				before := h.instances()
				h.clock.Advance(time.Second)
				if diff := cmp.Diff(tt.wantLocs, detailLocs(t, h.do("POST", "/instances/"+id+"/heartbeat", tt.body))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(before, h.instances()); diff != "" {
					t.Errorf("a rejected heartbeat changed the instances (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestTools(t *testing.T) {
	const deploy = `{"name":"deploy","description":"Deploy the app","inputSchema":{"type":"object","properties":{}},` +
		`"x-command":"/usr/local/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H","x-autonomy":"low","other":[1,{"a":null}]}`
	tests := []struct {
		name      string
		body      string
		wantTools string
	}{
		{"one tool, every key kept", `{"tools":[` + deploy + `]}`, `[` + deploy + `]`},
		{"empty list", `{"tools":[]}`, `[]`},
		{"several", `{"tools":[{"name":"a"},{"name":"b","description":""}]}`, `[{"name":"a"},{"name":"b","description":""}]`},
		{"unknown keys ignored", `{"tools":[{"name":"a"}],"extra":1}`, `[{"name":"a"}]`},
		{"numbers kept", `{"tools":[{"name":"a","n":1.50,"big":12345678901234567890}]}`, `[{"name":"a","n":1.5,"big":12345678901234567890}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "h1")
			h.postTools("a", `{"name":"old"}`)
			checkJSON(t, h.do("POST", "/instances/a/tools", tt.body), http.StatusOK, `{"status":"ok"}`)
			if diff := cmp.Diff(js(t, tt.wantTools), h.get("/instances/a").(map[string]any)["tools"]); diff != "" {
				t.Errorf("tools mismatch (-want +got):\n%s", diff)
			}
			if got := h.heartbeat("a"); got != "ack" {
				t.Errorf("heartbeat after posting tools = %q, want ack", got)
			}
		})
	}
}

func TestToolsUnknownInstance(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	checkJSON(t, h.do("POST", "/instances/b/tools", `{"tools":[{"name":"t"}]}`), http.StatusNotFound, `{"detail":"Instance not found"}`)
	checkJSON(t, h.do("GET", "/instances/b", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
}

func TestToolsInvalid(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantLocs [][]string
	}{
		{"no body", "", [][]string{{"body"}}},
		{"malformed", `{"tools":[`, [][]string{{"body"}}},
		{"body is a list", `[{"name":"t"}]`, [][]string{{"body"}}},
		{"missing", `{}`, [][]string{{"body", "tools"}}},
		{"misspelt", `{"tool":[]}`, [][]string{{"body", "tools"}}},
		{"null", `{"tools":null}`, [][]string{{"body", "tools"}}},
		{"object", `{"tools":{"name":"t"}}`, [][]string{{"body", "tools"}}},
		{"string", `{"tools":"t"}`, [][]string{{"body", "tools"}}},
		{"number tool", `{"tools":[{"name":"a"},5]}`, [][]string{{"body", "tools", "1"}}},
		{"string tool", `{"tools":["t"]}`, [][]string{{"body", "tools", "0"}}},
		{"list tool", `{"tools":[[{"name":"t"}]]}`, [][]string{{"body", "tools", "0"}}},
		{"null tool", `{"tools":[null]}`, [][]string{{"body", "tools", "0"}}},
		{"tool without name", `{"tools":[{"description":"d"}]}`, [][]string{{"body", "tools", "0", "name"}}},
		{"empty name", `{"tools":[{"name":""}]}`, [][]string{{"body", "tools", "0", "name"}}},
		{"number name", `{"tools":[{"name":1}]}`, [][]string{{"body", "tools", "0", "name"}}},
		{"null name", `{"tools":[{"name":null}]}`, [][]string{{"body", "tools", "0", "name"}}},
		{"duplicate names", `{"tools":[{"name":"a"},{"name":"b"},{"name":"a"}]}`, [][]string{{"body", "tools", "2", "name"}}},
		{"too many tools", `{"tools":[{"name":"a"},{"name":"b"},{"name":"c"},{"name":"d"}]}`, [][]string{{"body", "tools"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{MaxTools: 3})
			h.register("a", "app", "h1")
			h.register("fresh", "app", "h2")
			h.postTools("a", `{"name":"keep"}`)
			before := h.instances()
			if diff := cmp.Diff(tt.wantLocs, detailLocs(t, h.do("POST", "/instances/a/tools", tt.body))); diff != "" {
				t.Errorf("locs mismatch (-want +got):\n%s", diff)
			}
			detailLocs(t, h.do("POST", "/instances/fresh/tools", tt.body))
			if diff := cmp.Diff(before, h.instances()); diff != "" {
				t.Errorf("a rejected tool list changed the instances (-want +got):\n%s", diff)
			}
			// The rejected list must not count as a posted list.
			if got := h.heartbeat("fresh"); got != "refresh" {
				t.Errorf("heartbeat of fresh after a rejected list = %q, want refresh", got)
			}
		})
	}
}

func TestToolsAtMaxTools(t *testing.T) {
	h := newHarness(t, registry.Options{MaxTools: 3})
	h.register("a", "app", "h1")
	h.postTools("a", `{"name":"a"}`, `{"name":"b"}`, `{"name":"c"}`)
	if n := len(h.get("/instances/a").(map[string]any)["tools"].([]any)); n != 3 {
		t.Errorf("stored %d tools, want 3", n)
	}
}

func TestDelete(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	h.postTools("a", `{"name":"t"}`)
	h.clock.Advance(5 * time.Second)
	for i := range 2 { // idempotent
		checkJSON(t, h.do("DELETE", "/instances/a", ""), http.StatusOK, `{"status":"ok"}`)
		want := instRecord{ID: "a", Name: "app", Host: "h1", Active: false, LastSeen: t0, Tools: `[{"name":"t"}]`}
		if diff := cmp.Diff(want.value(t), h.get("/instances/a")); diff != "" {
			t.Errorf("delete %d: record mismatch (-want +got):\n%s", i, diff)
		}
	}
	checkJSON(t, h.do("DELETE", "/instances/unknown", ""), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("GET", "/instances/unknown", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	// A body on DELETE is not read.
	checkJSON(t, h.do("DELETE", "/instances/a", "not json"), http.StatusOK, `{"status":"ok"}`)
}

// fleet registers an active and an inactive instance with a shared tool.
func fleet(h *harness) {
	h.tb.Helper()
	h.register("live", "app", "hlive")
	h.postTools("live", `{"name":"shared","x-command":"/live"}`, `{"name":"t-live"}`)
	h.register("dead", "app", "hdead")
	h.postTools("dead", `{"name":"shared","x-command":"/dead"}`, `{"name":"t-dead"}`)
	h.deregister("dead")
}

func TestListInstances(t *testing.T) {
	h := newHarness(t, registry.Options{})
	fleet(h)
	live := instRecord{ID: "live", Name: "app", Host: "hlive", Active: true, LastSeen: t0,
		Tools: `[{"name":"shared","x-command":"/live"},{"name":"t-live"}]`}.value(t)
	dead := instRecord{ID: "dead", Name: "app", Host: "hdead", Active: false, LastSeen: t0,
		Tools: `[{"name":"shared","x-command":"/dead"},{"name":"t-dead"}]`}.value(t)
	tests := []struct {
		target string
		want   []any
	}{
		{"/instances", []any{dead, live}},
		{"/instances?active=false", []any{dead, live}},
		{"/instances?active=true", []any{live}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "instance_id")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("one", func(t *testing.T) {
		if diff := cmp.Diff(dead, h.get("/instances/dead")); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
		checkJSON(t, h.do("GET", "/instances/nope", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	})
	t.Run("empty registry", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		for _, target := range []string{"/instances", "/tools", "/hosts", "/tools?active=false", "/hosts?active=false"} {
			checkJSON(t, h.do("GET", target, ""), http.StatusOK, `[]`)
		}
	})
}

func TestListTools(t *testing.T) {
	h := newHarness(t, registry.Options{})
	fleet(h)
	tests := []struct {
		target string
		want   string
	}{
		{"/tools", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
		{"/tools?active=true", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
		{"/tools?active=false", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"},{"host":"hdead","x-command":"/dead"}]},` +
			`{"name":"t-dead","hosts":[{"host":"hdead"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "name")
			if diff := cmp.Diff(js(t, tt.want), any(got), sortHosts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("one", func(t *testing.T) {
		for _, target := range []string{"/tools/t-dead", "/tools/t-dead?active=true", "/tools/nope", "/tools/nope?active=false"} {
			checkJSON(t, h.do("GET", target, ""), http.StatusNotFound, `{"detail":"Tool not found"}`)
		}
		checkJSON(t, h.do("GET", "/tools/t-dead?active=false", ""), http.StatusOK, `{"name":"t-dead","hosts":[{"host":"hdead"}]}`)
		checkJSON(t, h.do("GET", "/tools/shared", ""), http.StatusOK, `{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]}`)
	})
}

// sortHosts makes the order of a grouped tool's hosts entries irrelevant:
// the protocol does not fix it.
var sortHosts = cmp.FilterPath(func(p cmp.Path) bool {
	for i := len(p) - 1; i >= 0 && i >= len(p)-2; i-- {
		if mi, ok := p[i].(cmp.MapIndex); ok {
			return mi.Key().String() == "hosts"
		}
	}
	return false
}, cmpopts.SortSlices(func(a, b any) bool { return fmt.Sprint(a) < fmt.Sprint(b) }))

func TestToolGrouping(t *testing.T) {
	// Each instance offers "deploy"; "a" registers first, then "b", then "c".
	const (
		toolA = `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"x-command":"/a","x-run-as":"oracle","x-autonomy":"low","z":1}`
		toolB = `{"name":"deploy","description":"Deploy B","x-become-method":"sudo","x-become-flags":"-H"}`
		toolC = `{"name":"deploy","inputSchema":{"type":"object","properties":{"v":{"type":"string"}}}}`
	)
	hostA := `{"host":"h1","x-command":"/a","x-run-as":"oracle"}`
	hostB := `{"host":"h2","x-become-method":"sudo","x-become-flags":"-H"}`
	hostC := `{"host":"h1"}`
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{
			name:   "all active: schema of the earliest registered",
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "earliest inactive: next earliest among the answer, absent keys stay absent",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy B","hosts":[` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "earliest inactive, active=false: earliest again",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools/deploy?active=false",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "only the last one active: its keys only",
			setup:  func(h *harness) { h.deregister("a"); h.deregister("b") },
			target: "/tools/deploy",
			want:   `{"name":"deploy","inputSchema":{"type":"object","properties":{"v":{"type":"string"}}},"hosts":[` + hostC + `]}`,
		},
		{
			name: "registration order, not posting order",
			setup: func(h *harness) {
				// a posts its list again, last; it is still the earliest registered.
				h.postTools("a", `{"name":"deploy","description":"Deploy A2"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A2","hosts":[{"host":"h1"},` + hostB + `,` + hostC + `]}`,
		},
		{
			name: "re-registration keeps the first registration's rank",
			setup: func(h *harness) {
				h.register("a", "app", "h3")
				h.postTools("a", `{"name":"deploy","description":"Deploy A3"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A3","hosts":[{"host":"h3"},` + hostB + `,` + hostC + `]}`,
		},
		{
			name: "two instances on one host give two entries",
			setup: func(h *harness) {
				h.register("d", "other", "h2")
				h.postTools("d", `{"name":"deploy","x-command":"/d"}`)
			},
			target: "/tools/deploy",
			want: `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC +
				`,{"host":"h2","x-command":"/d"}]}`,
		},
		{
			name:   "listing shows the same grouped tool",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools",
			want:   `[{"name":"deploy","description":"Deploy B","hosts":[` + hostB + `,` + hostC + `]}]`,
		},
		{
			name: "tool dropped from a new list",
			setup: func(h *harness) {
				h.postTools("b", `{"name":"other"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostC + `]}`,
		},
		{
			name: "non-string execution fields are kept as posted",
			setup: func(h *harness) {
				h.postTools("b", `{"name":"deploy","x-become-flags":["-H","-E"],"x-run-as":null}`)
			},
			target: "/tools/deploy",
			want: `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA +
				`,{"host":"h2","x-become-flags":["-H","-E"],"x-run-as":null},` + hostC + `]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			// c registers last but posts first; b posts last.
			h.register("a", "app", "h1")
			h.clock.Advance(time.Second)
			h.register("b", "app", "h2")
			h.clock.Advance(time.Second)
			h.register("c", "other", "h1")
			h.postTools("c", toolC)
			h.postTools("a", toolA)
			h.postTools("b", toolB)
			if tt.setup != nil {
				tt.setup(h)
			}
			if diff := cmp.Diff(js(t, tt.want), h.get(tt.target), sortHosts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	entry := func(host, name, id, version string, tools int) string {
		return fmt.Sprintf(`{"host":%q,"name":%q,"instance_id":%q,"version":%q,"tool_count":%d}`, host, name, id, version, tools)
	}
	reg := func(h *harness, id, version string) {
		h.must(http.StatusCreated, "POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"app","version":%q,"host":"h1"}`, id, version))
		h.clock.Advance(time.Second)
	}
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{
			name: "one entry per (host, name)",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"x"}`, `{"name":"y"}`)
				h.register("b", "db", "h1")
				h.register("c", "app", "h2")
				h.postTools("c", `{"name":"x"}`)
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "a", "1", 2) + `,` + entry("h1", "db", "b", "1", 0) + `,` + entry("h2", "app", "c", "1", 1) + `]`,
		},
		{
			name: "old dead, new active: the new one",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("old")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "both active: the most recently registered",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "active preferred over more recent",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
			},
			target: "/hosts?active=false",
			want:   `[` + entry("h1", "app", "old", "1", 0) + `]`,
		},
		{
			name: "both inactive, default: none",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
				h.deregister("old")
			},
			target: "/hosts",
			want:   `[]`,
		},
		{
			name: "both inactive, active=false: the most recently registered",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
				h.deregister("old")
			},
			target: "/hosts?active=false",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "re-registration makes an id the most recent",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				reg(h, "old", "3")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "old", "3", 0) + `]`,
		},
		{
			name: "an expired instance is not preferred",
			setup: func(h *harness) {
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"old","name":"app","version":"1","host":"h1","heartbeat_interval":1000}`)
				h.clock.Advance(time.Second)
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"new","name":"app","version":"2","host":"h1","heartbeat_interval":1}`)
				h.clock.Advance(time.Minute) // new expires, not purged
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "old", "1", 0) + `]`,
		},
		{
			name: "tool_count follows the latest list",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"x"}`, `{"name":"y"}`, `{"name":"z"}`)
				h.postTools("a", `{"name":"x"}`)
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "a", "1", 1) + `]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			got := h.get(tt.target)
			list, ok := got.([]any)
			if !ok {
				t.Fatalf("not an array: %v", got)
			}
			slices.SortFunc(list, func(a, b any) int {
				x, y := a.(map[string]any), b.(map[string]any)
				return stdcmp.Or(strings.Compare(x["host"].(string), y["host"].(string)), strings.Compare(x["name"].(string), y["name"].(string)))
			})
			if diff := cmp.Diff(js(t, tt.want), any(list)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBooleanQuery(t *testing.T) {
	h := newHarness(t, registry.Options{})
	fleet(h)
	endpoints := []string{"/instances", "/tools", "/tools/shared", "/hosts", "/export/superputty", "/export/mobaxterm"}
	truthy := []string{"true", "TRUE", "True", "1", "yes", "YES", "Yes", "on", "ON", "oN"}
	falsy := []string{"false", "FALSE", "False", "0", "no", "NO", "No", "off", "OFF", "oFf"}
	bad := []string{"", "2", "-1", "t", "f", "y", "n", "tru", "truee", "%20true", "true%20", "null", "none", "maybe"}
	for _, ep := range endpoints {
		for _, v := range truthy {
			t.Run(ep+"/"+v, func(t *testing.T) {
				rec := h.must(http.StatusOK, "GET", ep+"?active="+v, "")
				if !strings.Contains(rec.Body.String(), "hlive") || strings.Contains(rec.Body.String(), "hdead") {
					t.Errorf("active=%s: want only the active instance, got %s", v, rec.Body)
				}
			})
		}
		for _, v := range falsy {
			t.Run(ep+"/"+v, func(t *testing.T) {
				rec := h.must(http.StatusOK, "GET", ep+"?active="+v, "")
				if !strings.Contains(rec.Body.String(), "hlive") || !strings.Contains(rec.Body.String(), "hdead") {
					t.Errorf("active=%s: want both instances, got %s", v, rec.Body)
				}
			})
		}
		for _, v := range bad {
			t.Run(ep+"/bad-"+v, func(t *testing.T) {
				rec := h.do("GET", ep+"?active="+v, "")
				if diff := cmp.Diff([][]string{{"query", "active"}}, detailLocs(t, rec)); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// superPuTTY is the SuperPuTTY sessions document, with its namespace.
type superPuTTY struct {
	XMLName  xml.Name       `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY ArrayOfSessionData"`
	Attrs    []xml.Attr     `xml:",any,attr"`
	Sessions []sessionEntry `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionData"`
}

type sessionEntry struct {
	Host         string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Host"`
	Port         string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Port"`
	Proto        string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Proto"`
	PuttySession string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY PuttySession"`
	SessionID    string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionId"`
	SessionName  string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionName"`
	Username     string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Username"`
}

// exportFleet registers the hosts the export tests expect.
func exportFleet(h *harness) {
	h.tb.Helper()
	h.register("a", "app", "web<&>01")
	h.register("b", "ora", "db01")
	h.register("c", "gone", "old01")
	h.deregister("c")
}

func TestExportSuperPuTTY(t *testing.T) {
	session := func(name, host, user string) sessionEntry {
		return sessionEntry{Host: host, Port: "22", Proto: "SSH", PuttySession: "Default Settings",
			SessionID: "runspec/" + name + "/" + host, SessionName: name + " (" + host + ")", Username: user}
	}
	tests := []struct {
		target string
		want   []sessionEntry
	}{
		{"/export/superputty", []sessionEntry{session("ora", "db01", ""), session("app", "web<&>01", "")}},
		{"/export/superputty?user=oracle", []sessionEntry{session("ora", "db01", "oracle"), session("app", "web<&>01", "oracle")}},
		{"/export/superputty?user=" + "%3Cme%26you%3E", []sessionEntry{session("ora", "db01", "<me&you>"), session("app", "web<&>01", "<me&you>")}},
		{"/export/superputty?active=false", []sessionEntry{session("ora", "db01", ""), session("gone", "old01", ""), session("app", "web<&>01", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			exportFleet(h)
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/xml" {
				t.Errorf("Content-Type = %q, want application/xml", rec.Header().Get("Content-Type"))
			}
			if _, params, err := mime.ParseMediaType(rec.Header().Get("Content-Disposition")); err != nil || params["filename"] != "runspec-sessions.xml" ||
				!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
				t.Errorf("Content-Disposition = %q, want an attachment runspec-sessions.xml", rec.Header().Get("Content-Disposition"))
			}
			body := rec.Body.String()
			if !strings.HasPrefix(body, `<?xml version="1.0" encoding="utf-8"?>`) {
				t.Errorf("body does not start with the XML declaration: %q", body)
			}
			if strings.Contains(body, "web<&>01") {
				t.Errorf("host name not escaped: %s", body)
			}
			var doc superPuTTY
			if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("xml: %v\n%s", err, body)
			}
			if !slices.ContainsFunc(doc.Attrs, func(a xml.Attr) bool {
				return a.Name == xml.Name{Space: "xmlns", Local: "i"} && a.Value == "http://www.w3.org/2001/XMLSchema-instance"
			}) {
				t.Errorf("root lacks xmlns:i: %v", doc.Attrs)
			}
			slices.SortFunc(doc.Sessions, func(a, b sessionEntry) int { return strings.Compare(a.SessionID, b.SessionID) })
			slices.SortFunc(tt.want, func(a, b sessionEntry) int { return strings.Compare(a.SessionID, b.SessionID) })
			if diff := cmp.Diff(tt.want, doc.Sessions); diff != "" {
				t.Errorf("sessions mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportMobaXterm(t *testing.T) {
	line := func(name, host, user string) string {
		return name + " (" + host + ") =#109#0#" + host + "#22#" + user + "##-1#0#0#0#1080##0#0#0#-1#0#0#0#0"
	}
	const head = "[Bookmarks]\nSubRep=runspec\nImgNum=42\n\n"
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{"empty", func(*harness) {}, "/export/mobaxterm", head},
		{
			"one host", func(h *harness) { h.register("b", "ora", "db01") },
			"/export/mobaxterm?user=oracle", head + line("ora", "db01", "oracle") + "\n",
		},
		{
			"no user", func(h *harness) { h.register("b", "ora", "db01") },
			"/export/mobaxterm", head + line("ora", "db01", "") + "\n",
		},
		{
			"inactive hosts left out by default", exportFleet,
			"/export/mobaxterm", head + line("ora", "db01", "") + "\n" + line("app", "web<&>01", "") + "\n",
		},
		{
			"active=false", exportFleet,
			"/export/mobaxterm?active=false&user=u",
			head + line("ora", "db01", "u") + "\n" + line("gone", "old01", "u") + "\n" + line("app", "web<&>01", "u") + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "text/plain" {
				t.Errorf("Content-Type = %q, want text/plain", rec.Header().Get("Content-Type"))
			}
			if _, params, err := mime.ParseMediaType(rec.Header().Get("Content-Disposition")); err != nil || params["filename"] != "runspec.mxtsessions" ||
				!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
				t.Errorf("Content-Disposition = %q, want an attachment runspec.mxtsessions", rec.Header().Get("Content-Disposition"))
			}
			// Entry order is not part of the protocol: compare the header
			// exactly and the entries as a set.
			got := rec.Body.String()
			if !strings.HasSuffix(got, "\n") || !strings.HasPrefix(got, head) {
				t.Fatalf("body %q does not start with %q and end with a newline", got, head)
			}
			sortEntries := func(s string) []string {
				lines := strings.Split(strings.TrimPrefix(s, head), "\n")
				slices.Sort(lines)
				return lines
			}
			if diff := cmp.Diff(sortEntries(tt.want), sortEntries(got)); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportUserValidation(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("b", "ora", "db01")
	bad := []string{"a%0Ab", "a%0Db", "a%00b", "a%09b", "a%7Fb", "%C2%85", "%FF", strings.Repeat("u", 257)}
	for _, ep := range []string{"/export/superputty", "/export/mobaxterm"} {
		for _, u := range bad {
			t.Run(ep+"/"+u[:min(len(u), 10)], func(t *testing.T) {
				if diff := cmp.Diff([][]string{{"query", "user"}}, detailLocs(t, h.do("GET", ep+"?user="+u, ""))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
		t.Run(ep+"/256 bytes", func(t *testing.T) {
			h.must(http.StatusOK, "GET", ep+"?user="+strings.Repeat("u", 256), "")
		})
	}
}

func TestHealth(t *testing.T) {
	for _, opts := range []registry.Options{{}, {APIKey: "secret"}} {
		h := newHarness(t, opts)
		checkJSON(t, h.do("GET", "/health", ""), http.StatusOK, `{"status":"ok"}`)
		checkJSON(t, h.do("GET", "/health", "", withKey("wrong")), http.StatusOK, `{"status":"ok"}`)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, target string
		code           int
	}{
		{"GET", "/", 404},
		{"GET", "/nope", 404},
		{"POST", "/nope", 404},
		{"GET", "/instances/a/nope", 404},
		{"POST", "/instances/a/heartbeat/x", 404},
		{"GET", "/tools/a/b", 404},
		{"GET", "/export", 404},
		{"GET", "/export/putty", 404},
		{"GET", "/instances/", 404},
		{"GET", "/health/", 404},
		{"GET", "/INSTANCES", 404},
		{"PUT", "/instances", 405},
		{"DELETE", "/instances", 405},
		{"PATCH", "/instances/a", 405},
		{"POST", "/instances/a", 405},
		{"GET", "/instances/a/heartbeat", 405},
		{"GET", "/instances/a/tools", 405},
		{"PUT", "/instances/a/tools", 405},
		{"POST", "/tools", 405},
		{"DELETE", "/tools/x", 405},
		{"POST", "/hosts", 405},
		{"POST", "/health", 405},
		{"POST", "/export/mobaxterm", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "h1")
			want := `{"detail":"Not Found"}`
			if tt.code == 405 {
				want = `{"detail":"Method Not Allowed"}`
			}
			checkJSON(t, h.do(tt.method, tt.target, ""), tt.code, want)
		})
	}
}

func TestMalformedJSON(t *testing.T) {
	bodies := []string{`{`, `{"a":}`, `{"tools":[{"name":"t"}]`, `{'instance_id':'a'}`, `nul`, "\x00", `{"a":1}{"b":2}`, `{"a":1},`}
	for _, target := range []string{"/instances", "/instances/a/heartbeat", "/instances/a/tools"} {
		for _, body := range bodies {
			t.Run(target+"/"+body, func(t *testing.T) {
				h := newHarness(t, registry.Options{})
				h.register("a", "app", "h1")
				before := h.instances()
				h.clock.Advance(time.Second)
				if diff := cmp.Diff([][]string{{"body"}}, detailLocs(t, h.do("POST", target, body))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(before, h.instances()); diff != "" {
					t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// pad makes a JSON object body exactly n bytes long with trailing spaces.
func pad(tb testing.TB, body string, n int) string {
	tb.Helper()
	if len(body) > n {
		tb.Fatalf("body longer than %d bytes", n)
	}
	return body + strings.Repeat(" ", n-len(body))
}

func TestBodyTooLarge(t *testing.T) {
	const limit = 200
	tests := []struct {
		target, body string
		okCode       int
	}{
		{"/instances", regBody("a", "app", "h2"), http.StatusCreated},
		{"/instances/a/heartbeat", `{"system":{"pid":1}}`, http.StatusOK},
		{"/instances/a/tools", toolsBody(`{"name":"t"}`), http.StatusOK},
	}
	for _, tt := range tests {
		for _, isChunked := range []bool{false, true} {
			var opts []reqOpt
			if isChunked {
				opts = append(opts, chunked)
			}
			t.Run(fmt.Sprintf("%s/chunked=%v", tt.target, isChunked), func(t *testing.T) {
				h := newHarness(t, registry.Options{MaxBodyBytes: limit})
				h.register("a", "app", "h1")
				before := h.instances()
				h.clock.Advance(time.Second)
				checkDetailString(t, h.do("POST", tt.target, pad(t, tt.body, limit+1), opts...), http.StatusRequestEntityTooLarge)
				// Far over the limit too, and over it with valid JSON only.
				checkDetailString(t, h.do("POST", tt.target, pad(t, tt.body, 10*limit), opts...), http.StatusRequestEntityTooLarge)
				if diff := cmp.Diff(before, h.instances()); diff != "" {
					t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
				}
				if rec := h.do("POST", tt.target, pad(t, tt.body, limit), opts...); rec.Code != tt.okCode {
					t.Errorf("body of exactly the limit: status %d, want %d (%s)", rec.Code, tt.okCode, rec.Body)
				}
			})
		}
	}
}

func TestAPIKey(t *testing.T) {
	const key = "s3cret-key"
	writes := []struct {
		method, target, body string
		code                 int
	}{
		{"POST", "/instances", regBody("b", "app", "h2"), http.StatusCreated},
		{"POST", "/instances/a/heartbeat", `{}`, http.StatusOK},
		{"POST", "/instances/a/heartbeat", ``, http.StatusOK},
		{"POST", "/instances/a/tools", toolsBody(`{"name":"t"}`), http.StatusOK},
		{"DELETE", "/instances/a", ``, http.StatusOK},
		// The key is checked before the body: a malformed body gets 403.
		{"POST", "/instances", `{"instance_id":`, http.StatusUnprocessableEntity},
		{"POST", "/instances/a/heartbeat", `{"system":1}`, http.StatusUnprocessableEntity},
		{"POST", "/instances/a/tools", `[`, http.StatusUnprocessableEntity},
		{"POST", "/instances/unknown/tools", toolsBody(`{"name":"t"}`), http.StatusNotFound},
	}
	keys := []struct {
		name string
		opts []reqOpt
		ok   bool
	}{
		{"missing", nil, false},
		{"empty", []reqOpt{withKey("")}, false},
		{"wrong", []reqOpt{withKey("wrong")}, false},
		{"prefix", []reqOpt{withKey(key[:len(key)-1])}, false},
		{"longer", []reqOpt{withKey(key + "x")}, false},
		{"other case", []reqOpt{withKey(strings.ToUpper(key))}, false},
		{"as bearer token", []reqOpt{func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }}, true},
		{"right", []reqOpt{withKey(key)}, true},
		{"right, lower-case header name", []reqOpt{func(r *http.Request) { r.Header.Set("x-api-key", key) }}, true},
	}
	for _, w := range writes {
		for _, k := range keys {
			t.Run(fmt.Sprintf("%s %s %q/%s", w.method, w.target, w.body, k.name), func(t *testing.T) {
				h := newHarness(t, registry.Options{APIKey: key})
				h.register("a", "app", "h1", withKey(key))
				before := h.instances()
				h.clock.Advance(time.Second)
				rec := h.do(w.method, w.target, w.body, k.opts...)
				if !k.ok {
					checkJSON(t, rec, http.StatusForbidden, `{"detail":"Invalid or missing API key"}`)
					if diff := cmp.Diff(before, h.instances()); diff != "" {
						t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
					}
					return
				}
				if rec.Code != w.code {
					t.Errorf("status = %d, want %d (%s)", rec.Code, w.code, rec.Body)
				}
			})
		}
	}
	t.Run("reads are open", func(t *testing.T) {
		h := newHarness(t, registry.Options{APIKey: key})
		h.register("a", "app", "h1", withKey(key))
		h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody(`{"name":"t"}`), withKey(key))
		for _, target := range []string{"/instances", "/instances/a", "/tools", "/tools/t", "/hosts", "/export/superputty", "/export/mobaxterm", "/health"} {
			h.must(http.StatusOK, "GET", target, "")
			h.must(http.StatusOK, "GET", target, "", withKey("wrong"))
		}
	})
	t.Run("no key configured: any key accepted", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		h.must(http.StatusCreated, "POST", "/instances", regBody("a", "app", "h1"), withKey("whatever"))
	})
}

// TestCheckOrder checks the order rate limit (429), key (403), size (413),
// body (422) on every write route.
func TestCheckOrder(t *testing.T) {
	const key = "k"
	big := `{"x":"` + strings.Repeat("x", 300) + `"` // oversize and malformed
	tests := []struct {
		name      string
		exhausted bool
		opts      []reqOpt
		body      string
		want      int
	}{
		{"rate before key", true, nil, big, http.StatusTooManyRequests},
		{"rate before everything else", true, []reqOpt{withKey(key)}, big, http.StatusTooManyRequests},
		{"key before size", false, []reqOpt{withKey("bad")}, big, http.StatusForbidden},
		{"key before body", false, nil, `{`, http.StatusForbidden},
		{"size before body", false, []reqOpt{withKey(key)}, big, http.StatusRequestEntityTooLarge},
		{"size before body, chunked", false, []reqOpt{withKey(key), chunked}, big, http.StatusRequestEntityTooLarge},
		{"body last", false, []reqOpt{withKey(key)}, `{`, http.StatusUnprocessableEntity},
	}
	for _, target := range []string{"/instances", "/instances/a/heartbeat", "/instances/a/tools"} {
		for _, tt := range tests {
			t.Run(target+"/"+tt.name, func(t *testing.T) {
				h := newHarness(t, registry.Options{APIKey: key, RateLimitWrite: 2, RateLimitHeartbeat: 2, MaxBodyBytes: 100})
				// Registered from another address: this one's buckets are full.
				h.register("a", "app", "h1", withKey(key), withRemote("198.51.100.1:1"))
				if tt.exhausted {
					for range 2 {
						h.do("POST", target, "{}", withKey(key))
					}
				}
				before := h.instances()
				h.clock.Advance(time.Second)
				rec := h.do("POST", target, tt.body, tt.opts...)
				if rec.Code != tt.want {
					t.Errorf("status = %d, want %d (%s)", rec.Code, tt.want, rec.Body)
				}
				if diff := cmp.Diff(before, h.instances()); diff != "" {
					t.Errorf("a rejected request changed the instances (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("delete: rate before key", func(t *testing.T) {
		h := newHarness(t, registry.Options{APIKey: key, RateLimitWrite: 1})
		h.register("a", "app", "h1", withKey(key), withRemote("198.51.100.1:1"))
		checkJSON(t, h.do("DELETE", "/instances/a", ""), http.StatusForbidden, `{"detail":"Invalid or missing API key"}`)
		checkDetailString(t, h.do("DELETE", "/instances/a", "", withKey(key)), http.StatusTooManyRequests)
		if got := h.get("/instances/a").(map[string]any)["active"]; got != true {
			t.Errorf("active = %v after rejected deletes, want true", got)
		}
	})
}

func TestRateLimit(t *testing.T) {
	t.Run("burst, Retry-After and refill", func(t *testing.T) {
		for _, n := range []int{1, 3, 60} {
			t.Run(fmt.Sprint(n), func(t *testing.T) {
				h := newHarness(t, registry.Options{RateLimitWrite: n})
				for i := range n {
					h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
				}
				rec := h.do("POST", "/instances", regBody("over", "app", "h"))
				checkDetailString(t, rec, http.StatusTooManyRequests)
				wait := 60 / n // seconds per token
				if got, want := rec.Header().Get("Retry-After"), fmt.Sprint(wait); got != want {
					t.Errorf("Retry-After = %q, want %q", got, want)
				}
				checkJSON(t, h.do("GET", "/instances/over", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
				h.clock.Advance(time.Duration(wait)*time.Second - time.Millisecond)
				checkDetailString(t, h.do("POST", "/instances", regBody("over", "app", "h")), http.StatusTooManyRequests)
				h.clock.Advance(time.Millisecond)
				h.must(http.StatusCreated, "POST", "/instances", regBody("over", "app", "h"))
				checkDetailString(t, h.do("POST", "/instances", regBody("over2", "app", "h")), http.StatusTooManyRequests)
			})
		}
	})
	t.Run("zero is off", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		h.register("a", "app", "h")
		for i := range 500 {
			h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "")
			h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody())
			h.must(http.StatusOK, "DELETE", "/instances/x", "")
		}
	})
	t.Run("heartbeat limit", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitHeartbeat: 120})
		h.register("a", "app", "h")
		for range 120 {
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", "")
		}
		rec := h.do("POST", "/instances/a/heartbeat", "")
		checkDetailString(t, rec, http.StatusTooManyRequests)
		if got := rec.Header().Get("Retry-After"); got != "1" {
			t.Errorf("Retry-After = %q, want 1", got)
		}
		// Writes are not limited by the heartbeat limit.
		for i := range 200 {
			h.must(http.StatusCreated, "POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"))
		}
	})
	t.Run("separate buckets per route and address", func(t *testing.T) {
		routes := []struct {
			method, target, body string
			code                 int
		}{
			{"POST", "/instances", regBody("a", "app", "h"), http.StatusCreated},
			{"POST", "/instances/a/tools", toolsBody(), http.StatusOK},
			{"DELETE", "/instances/x", "", http.StatusOK},
			{"POST", "/instances/a/heartbeat", "", http.StatusOK},
		}
		for i, exhaust := range routes {
			t.Run(exhaust.target, func(t *testing.T) {
				h := newHarness(t, registry.Options{RateLimitWrite: 2, RateLimitHeartbeat: 2})
				h.register("a", "app", "h", withRemote("198.51.100.1:1"))
				for range 2 {
					h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body)
				}
				checkDetailString(t, h.do(exhaust.method, exhaust.target, exhaust.body), http.StatusTooManyRequests)
				// Another port of the same address shares the bucket.
				checkDetailString(t, h.do(exhaust.method, exhaust.target, exhaust.body, withRemote("192.0.2.1:999")), http.StatusTooManyRequests)
				// Another address has its own.
				h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body, withRemote("192.0.2.2:1234"))
				h.must(exhaust.code, exhaust.method, exhaust.target, exhaust.body, withRemote("[2001:db8::1]:1234"))
				for j, other := range routes {
					if j != i {
						h.must(other.code, other.method, other.target, other.body)
					}
				}
			})
		}
	})
	t.Run("X-Forwarded-For only from trusted proxies", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitWrite: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		steps := []struct {
			remote, xff string
			want        int
		}{
			{"192.0.2.9:1", "203.0.113.1", http.StatusCreated},         // untrusted peer: bucket 192.0.2.9
			{"192.0.2.9:1", "203.0.113.2", http.StatusTooManyRequests}, // its X-Forwarded-For is ignored
			{"10.0.0.1:1", "203.0.113.1", http.StatusCreated},          // through a proxy: bucket 203.0.113.1
			{"10.0.0.2:1", "203.0.113.1", http.StatusTooManyRequests},  // same client, other proxy
			{"10.0.0.1:1", "203.0.113.2", http.StatusCreated},          // other client, same proxy
			{"10.0.0.1:1", "", http.StatusCreated},                     // the proxy itself: bucket 10.0.0.1
			{"10.0.0.1:1", "", http.StatusTooManyRequests},
			{"10.0.0.1:1", "203.0.113.1, 10.0.0.7", http.StatusTooManyRequests},    // trusted hops skipped
			{"10.0.0.1:1", "203.0.113.3, 203.0.113.1", http.StatusTooManyRequests}, // a forged left entry does not help
			{"10.0.0.1:1", "203.0.113.1, 203.0.113.4", http.StatusCreated},         // the rightmost untrusted hop counts
		}
		for i, s := range steps {
			opts := []reqOpt{withRemote(s.remote)}
			if s.xff != "" {
				opts = append(opts, withXFF(s.xff))
			}
			if rec := h.do("POST", "/instances", regBody(fmt.Sprint("id", i), "app", "h"), opts...); rec.Code != s.want {
				t.Errorf("step %d (%s, X-Forwarded-For %q): status %d, want %d", i, s.remote, s.xff, rec.Code, s.want)
			}
		}
	})
	t.Run("X-Forwarded-For ignored without trusted proxies", func(t *testing.T) {
		h := newHarness(t, registry.Options{RateLimitWrite: 1})
		h.must(http.StatusCreated, "POST", "/instances", regBody("a", "app", "h"), withXFF("203.0.113.1"))
		checkDetailString(t, h.do("POST", "/instances", regBody("b", "app", "h"), withXFF("203.0.113.2")), http.StatusTooManyRequests)
	})
}

// TestRejectedWriteChangesNothing compares GET /instances and GET
// /tools?active=false before and after each rejected write, and checks that
// the rejected write did not count as a heartbeat or a posted tool list.
func TestRejectedWriteChangesNothing(t *testing.T) {
	const key = "k"
	tests := []struct {
		name                 string
		method, target, body string
		opts                 []reqOpt
		code                 int
		exhaust              bool // use up this address's bucket for the route first
	}{
		{"register: bad host for an existing id", "POST", "/instances", `{"instance_id":"a","name":"x","version":"9","host":""}`, []reqOpt{withKey(key)}, 422, false},
		{"register: bad interval for an existing id", "POST", "/instances", `{"instance_id":"a","name":"x","version":"9","host":"h","heartbeat_interval":0}`, []reqOpt{withKey(key)}, 422, false},
		{"register: bad field for a new id", "POST", "/instances", `{"instance_id":"new","name":"x","version":9,"host":"h"}`, []reqOpt{withKey(key)}, 422, false},
		{"register: no key", "POST", "/instances", regBody("a", "x", "h9"), nil, 403, false},
		{"register: too large", "POST", "/instances", regBody("a", "x", strings.Repeat("h", 200)), []reqOpt{withKey(key)}, 413, false},
		{"register: rate limited", "POST", "/instances", regBody("a", "x", "h9"), []reqOpt{withKey(key)}, 429, true},
		{"heartbeat: bad system", "POST", "/instances/a/heartbeat", `{"system":[1]}`, []reqOpt{withKey(key)}, 422, false},
		{"heartbeat: bad system, inactive", "POST", "/instances/gone/heartbeat", `{"system":"x"}`, []reqOpt{withKey(key)}, 422, false},
		{"heartbeat: no key", "POST", "/instances/a/heartbeat", `{"system":{"pid":9}}`, nil, 403, false},
		{"heartbeat: no key, inactive", "POST", "/instances/gone/heartbeat", ``, nil, 403, false},
		{"heartbeat: too large", "POST", "/instances/gone/heartbeat", `{"system":{"x":"` + strings.Repeat("x", 200) + `"}}`, []reqOpt{withKey(key)}, 413, false},
		{"heartbeat: rate limited", "POST", "/instances/gone/heartbeat", ``, []reqOpt{withKey(key)}, 429, true},
		{"tools: duplicate names", "POST", "/instances/fresh/tools", toolsBody(`{"name":"n"}`, `{"name":"n"}`), []reqOpt{withKey(key)}, 422, false},
		{"tools: one bad tool", "POST", "/instances/a/tools", toolsBody(`{"name":"n"}`, `{"name":""}`), []reqOpt{withKey(key)}, 422, false},
		{"tools: too many", "POST", "/instances/fresh/tools", toolsBody(`{"name":"1"}`, `{"name":"2"}`, `{"name":"3"}`), []reqOpt{withKey(key)}, 422, false},
		{"tools: unknown id", "POST", "/instances/nope/tools", toolsBody(`{"name":"n"}`), []reqOpt{withKey(key)}, 404, false},
		{"tools: no key", "POST", "/instances/fresh/tools", toolsBody(`{"name":"n"}`), []reqOpt{withKey("wrong")}, 403, false},
		{"tools: rate limited", "POST", "/instances/fresh/tools", toolsBody(`{"name":"n"}`), []reqOpt{withKey(key)}, 429, true},
		{"delete: no key", "DELETE", "/instances/a", ``, nil, 403, false},
		{"delete: rate limited", "DELETE", "/instances/a", ``, []reqOpt{withKey(key)}, 429, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{APIKey: key, MaxTools: 2, MaxBodyBytes: 150, RateLimitWrite: 1, RateLimitHeartbeat: 1})
			admin := []reqOpt{withKey(key), withRemote("198.51.100.1:1")}
			h.register("a", "app", "h1", admin...)
			h.must(http.StatusOK, "POST", "/instances/a/tools", toolsBody(`{"name":"t","x-command":"c"}`), admin...)
			h.must(http.StatusOK, "POST", "/instances/a/heartbeat", `{"system":{"pid":1}}`, append(admin, withRemote("198.51.100.2:1"))...)
			h.register("fresh", "app", "h2", append(admin, withRemote("198.51.100.3:1"))...)
			h.register("gone", "app", "h3", append(admin, withRemote("198.51.100.4:1"))...)
			h.must(http.StatusOK, "POST", "/instances/gone/tools", toolsBody(`{"name":"g"}`), append(admin, withRemote("198.51.100.5:1"))...)
			h.must(http.StatusOK, "DELETE", "/instances/gone", "", append(admin, withRemote("198.51.100.6:1"))...)
			if tt.exhaust {
				// A request on the same route that changes nothing itself.
				harmless := map[string]string{
					"/instances":                "/instances",
					"/instances/a":              "/instances/nope",
					"/instances/a/tools":        "/instances/nope/tools",
					"/instances/gone/heartbeat": "/instances/nope/heartbeat",
					"/instances/fresh/tools":    "/instances/nope/tools",
				}[tt.target]
				h.do(tt.method, harmless, "{}", tt.opts...)
			}
			before, beforeTools := h.instances(), h.get("/tools?active=false")
			h.clock.Advance(time.Second)
			if rec := h.do(tt.method, tt.target, tt.body, tt.opts...); rec.Code != tt.code {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.code, rec.Body)
			}
			if diff := cmp.Diff(before, h.instances()); diff != "" {
				t.Errorf("GET /instances changed (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(beforeTools, h.get("/tools?active=false")); diff != "" {
				t.Errorf("GET /tools changed (-want +got):\n%s", diff)
			}
			// fresh has still posted no list.
			rec := h.must(http.StatusOK, "POST", "/instances/fresh/heartbeat", "", withKey(key), withRemote("198.51.100.9:1"))
			checkJSON(t, rec, http.StatusOK, `{"status":"refresh"}`)
		})
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	h := newHarness(t, registry.Options{})
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", h.reg))
	h.h = mux
	checkJSON(t, h.do("POST", "/registry/instances", regBody("a", "app", "h1")), http.StatusCreated, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances", regBody("b", "app", "h2")), http.StatusCreated, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances/a/tools", toolsBody(`{"name":"t"}`)), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances/a/heartbeat", ""), http.StatusOK, `{"status":"ack"}`)
	checkJSON(t, h.do("GET", "/registry/tools/t", ""), http.StatusOK, `{"name":"t","hosts":[{"host":"h1"}]}`)
	checkJSON(t, h.do("GET", "/registry/health", ""), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("GET", "/registry/instances/zzz", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	checkJSON(t, h.do("GET", "/registry/nope", ""), http.StatusNotFound, `{"detail":"Not Found"}`)
	checkJSON(t, h.do("PUT", "/registry/instances", ""), http.StatusMethodNotAllowed, `{"detail":"Method Not Allowed"}`)
	checkJSON(t, h.do("DELETE", "/registry/instances/a", ""), http.StatusOK, `{"status":"ok"}`)
	// The registry's answers do not depend on the prefix.
	if got := h.get("/registry/instances/a").(map[string]any)["active"]; got != false {
		t.Errorf("active = %v after DELETE, want false", got)
	}
	// Without the prefix, nothing is served (404 from the mux).
	if rec := h.do("GET", "/instances", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /instances outside the prefix: status %d, want 404", rec.Code)
	}
	// Pages link within the prefix.
	pages := h.walkPages("/registry/instances?limit=1")
	if len(pages) != 2 {
		t.Errorf("walked %d pages of one instance each, want 2: %v", len(pages), pages)
	}
}

// pagingFleet registers 9 instances on 3 hosts under 2 names, with tools,
// some inactive.
func pagingFleet(h *harness) {
	h.tb.Helper()
	hosts := []string{"hb", "ha", "hc"}
	names := []string{"app", "db"}
	for i := range 9 {
		id := fmt.Sprintf("id-%d", 8-i) // ids not in registration order
		host, name := hosts[i%3], names[i%2]
		h.register(id, name, host)
		var tools []string
		for j := range i % 4 {
			tools = append(tools, fmt.Sprintf(`{"name":"tool-%d","x-command":"%s-%d"}`, (i+j)%5, id, j))
		}
		h.postTools(id, tools...)
		h.clock.Advance(time.Second)
	}
	h.deregister("id-7")
	h.deregister("id-2")
}

func TestPagination(t *testing.T) {
	h := newHarness(t, registry.Options{})
	pagingFleet(h)
	targets := []string{
		"/instances", "/instances?active=true", "/instances?host=ha", "/instances?name=db", "/instances?host=hb&name=app",
		"/tools", "/tools?active=false", "/tools?host=hc", "/tools?host=hb&active=false",
		"/hosts", "/hosts?active=false", "/hosts?name=app", "/hosts?host=ha&active=false",
	}
	for _, target := range targets {
		all := h.get(target).([]any)
		if len(all) == 0 && !strings.Contains(target, "host=") {
			t.Fatalf("%s is empty: the fleet is wrong", target)
		}
		for _, limit := range []int{1, 2, 3, len(all), len(all) + 1, 100} {
			if limit == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%s/limit=%d", target, limit), func(t *testing.T) {
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				pages := h.walkPages(fmt.Sprintf("%s%slimit=%d", target, sep, limit))
				var got []any
				for i, p := range pages {
					if len(p) > limit {
						t.Errorf("page %d has %d items, more than the limit %d", i, len(p), limit)
					}
					if i < len(pages)-1 && len(p) != limit {
						t.Errorf("page %d has %d items and links to another, want the limit %d", i, len(p), limit)
					}
					got = append(got, p...)
				}
				if diff := cmp.Diff(all, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("pages differ from the unpaged answer (-want +got):\n%s", diff)
				}
				if limit >= len(all) && len(pages) != 1 {
					t.Errorf("%d pages for %d items with limit %d, want 1", len(pages), len(all), limit)
				}
				if last := pages[len(pages)-1]; len(pages) > 1 && len(last) == 0 {
					t.Errorf("the last page, reached through a Link, is empty")
				}
			})
		}
	}
}

// A Link promises a next page with items, also when a filter (name, active)
// leaves out the items after the last page.
func TestPaginationNoEmptyLastPage(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	h.register("b", "app", "h2")
	h.register("c", "db", "h3") // sorts after the app entries of /hosts
	h.register("d", "app", "h4")
	h.deregister("d") // registered last: filtered out of active listings
	for _, target := range []string{
		"/hosts?name=app&limit=2",
		"/hosts?limit=3",
		"/instances?active=true&limit=3",
		"/instances?name=app&active=true&limit=2",
	} {
		t.Run(target, func(t *testing.T) {
			pages := h.walkPages(target)
			last := pages[len(pages)-1]
			if len(pages) > 1 && len(last) == 0 {
				t.Errorf("%d pages; the last one, reached through a Link, is empty: %v", len(pages), pages)
			}
		})
	}
}

func TestPaginationFirstPage(t *testing.T) {
	h := newHarness(t, registry.Options{})
	for i := range 3 {
		h.register(fmt.Sprint("id", i), "app", "h")
	}
	rec := h.must(http.StatusOK, "GET", "/instances?limit=2", "")
	if n := len(decodeJSON(t, rec.Body.Bytes()).([]any)); n != 2 {
		t.Errorf("first page has %d items, want 2", n)
	}
	link := rec.Header().Get("Link")
	m := linkRE.FindStringSubmatch(link)
	if m == nil || !strings.HasPrefix(m[1], "?") || !strings.Contains(m[1], "limit=2") || !strings.Contains(m[1], "cursor=") {
		t.Errorf(`Link = %q, want <?cursor=...&limit=2>; rel="next"`, link)
	}
	// No Link on the last page, nor without a limit.
	if link := h.must(http.StatusOK, "GET", "/instances?limit=3", "").Header().Get("Link"); link != "" {
		t.Errorf("Link = %q on the only page, want none", link)
	}
	if link := h.must(http.StatusOK, "GET", "/instances", "").Header().Get("Link"); link != "" {
		t.Errorf("Link = %q without a limit, want none", link)
	}
}

func TestPaginationBadParams(t *testing.T) {
	h := newHarness(t, registry.Options{})
	pagingFleet(h)
	tests := []struct {
		query string
		loc   string
	}{
		{"limit=0", "limit"},
		{"limit=-1", "limit"},
		{"limit=abc", "limit"},
		{"limit=1.5", "limit"},
		{"limit=1e3", "limit"},
		{"limit=99999999999999999999", "limit"},
		{"cursor=!!!", "cursor"},
		{"cursor=a%20b", "cursor"},
		{"limit=2&cursor=***", "cursor"},
	}
	for _, ep := range []string{"/instances", "/tools", "/hosts"} {
		for _, tt := range tests {
			t.Run(ep+"?"+tt.query, func(t *testing.T) {
				if diff := cmp.Diff([][]string{{"query", tt.loc}}, detailLocs(t, h.do("GET", ep+"?"+tt.query, ""))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
	t.Run("instances cursor that is not one", func(t *testing.T) {
		// "abc", base64url-encoded: not an instance cursor.
		if diff := cmp.Diff([][]string{{"query", "cursor"}}, detailLocs(t, h.do("GET", "/instances?cursor=YWJj", ""))); diff != "" {
			t.Errorf("locs mismatch (-want +got):\n%s", diff)
		}
	})
}

func TestFilters(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	h.postTools("a", `{"name":"deploy","description":"A","x-command":"/a"}`, `{"name":"only-h1"}`)
	h.register("b", "app", "h2")
	h.postTools("b", `{"name":"deploy","description":"B","x-command":"/b"}`, `{"name":"only-h2"}`)
	h.register("c", "db", "h1")
	h.postTools("c", `{"name":"deploy","description":"C","x-run-as":"c"}`)
	h.register("d", "app", "h1")
	h.postTools("d", `{"name":"deploy","description":"D"}`)
	h.deregister("a")

	ids := func(v any) []string {
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(map[string]any)["instance_id"].(string))
		}
		slices.Sort(out)
		return out
	}
	instTests := []struct {
		target string
		want   []string
	}{
		{"/instances?host=h1", []string{"a", "c", "d"}},
		{"/instances?host=h1&active=true", []string{"c", "d"}},
		{"/instances?name=app", []string{"a", "b", "d"}},
		{"/instances?host=h1&name=app", []string{"a", "d"}},
		{"/instances?host=h2&name=db", nil},
		{"/instances?host=nope", nil},
		{"/hosts?name=app", []string{"b", "d"}},
		{"/hosts?name=app&active=false", []string{"b", "d"}},
		{"/hosts?host=h1", []string{"c", "d"}},
		{"/hosts?host=h1&name=db", []string{"c"}},
		{"/hosts?name=nope", nil},
	}
	for _, tt := range instTests {
		t.Run(tt.target, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(h.get(tt.target))); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	toolTests := []struct {
		target string
		want   string
	}{
		{"/tools?host=h1", `[{"name":"deploy","description":"C","hosts":[{"host":"h1","x-run-as":"c"},{"host":"h1"}]}]`},
		{"/tools?host=h1&active=false", `[{"name":"deploy","description":"A","hosts":[{"host":"h1","x-command":"/a"},{"host":"h1","x-run-as":"c"},{"host":"h1"}]},` +
			`{"name":"only-h1","hosts":[{"host":"h1"}]}]`},
		{"/tools?host=h2", `[{"name":"deploy","description":"B","hosts":[{"host":"h2","x-command":"/b"}]},{"name":"only-h2","hosts":[{"host":"h2"}]}]`},
		{"/tools?host=nope", `[]`},
	}
	for _, tt := range toolTests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "name")
			if diff := cmp.Diff(js(t, tt.want), any(got), sortHosts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLargeListing checks listings far larger than any internal buffer.
func TestLargeListing(t *testing.T) {
	h := newHarness(t, registry.Options{})
	desc := strings.Repeat("d", 1000)
	const n = 300
	for i := range n {
		id := fmt.Sprintf("id-%03d", i)
		h.register(id, "app", fmt.Sprintf("h%03d", i))
		h.postTools(id, fmt.Sprintf(`{"name":"t%03d","description":%q}`, i, desc), `{"name":"shared","description":"s"}`)
	}
	for _, target := range []string{"/instances", "/tools", "/hosts"} {
		all := h.get(target).([]any)
		want := n
		if target == "/tools" {
			want = n + 1
		}
		if len(all) != want {
			t.Errorf("%s: %d items, want %d", target, len(all), want)
		}
		var got []any
		for _, p := range h.walkPages(target + "?limit=77") {
			got = append(got, p...)
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("%s: pages differ from the unpaged answer (-want +got):\n%s", target, diff)
		}
	}
	shared := h.get("/tools/shared").(map[string]any)["hosts"].([]any)
	if len(shared) != n {
		t.Errorf("/tools/shared has %d hosts, want %d", len(shared), n)
	}
}

// last_seen is Unix seconds with the fraction, as Python's time.time().
func TestLastSeenFraction(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.clock.Advance(1234567 * time.Microsecond)
	h.register("a", "app", "h1")
	if got := h.get("/instances/a").(map[string]any)["last_seen"]; got != 1_700_000_001.234567 {
		t.Errorf("last_seen after register = %v, want 1700000001.234567", got)
	}
	h.clock.Advance(500 * time.Millisecond)
	h.heartbeat("a")
	if got := h.get("/instances/a").(map[string]any)["last_seen"]; got != 1_700_000_001.734567 {
		t.Errorf("last_seen after heartbeat = %v, want 1700000001.734567", got)
	}
}

// Ids and tool names travel percent-encoded in paths.
func TestEscapedPathSegments(t *testing.T) {
	h := newHarness(t, registry.Options{})
	const id = "日本 id+1?"
	esc := "%E6%97%A5%E6%9C%AC%20id+1%3F"
	h.must(http.StatusCreated, "POST", "/instances", regBody(id, "app", "h1"))
	checkJSON(t, h.do("POST", "/instances/"+esc+"/tools", toolsBody(`{"name":"my tool?"}`)), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/instances/"+esc+"/heartbeat", ""), http.StatusOK, `{"status":"ack"}`)
	if got := h.get("/instances/" + esc).(map[string]any)["instance_id"]; got != id {
		t.Errorf("instance_id = %v, want %q", got, id)
	}
	checkJSON(t, h.do("GET", "/tools/my%20tool%3F", ""), http.StatusOK, `{"name":"my tool?","hosts":[{"host":"h1"}]}`)
	checkJSON(t, h.do("DELETE", "/instances/"+esc, ""), http.StatusOK, `{"status":"ok"}`)
	if got := h.get("/instances/" + esc).(map[string]any)["active"]; got != false {
		t.Errorf("active after DELETE = %v, want false", got)
	}
}

// TestSparseListing pages through listings where a filter leaves out long
// runs of items (thousands in a row), in every page size.
func TestSparseListing(t *testing.T) {
	h := newHarness(t, registry.Options{})
	const n = 9000
	for i := range n {
		id := fmt.Sprintf("id-%05d", i)
		h.register(id, "app", fmt.Sprintf("h%05d", i))
		h.postTools(id, fmt.Sprintf(`{"name":"t%05d"}`, i))
		if i%4500 != 4499 && i != 0 {
			h.deregister(id)
		}
	}
	for _, target := range []string{"/instances?active=true", "/tools", "/hosts", "/instances?name=app&active=true", "/hosts?name=app"} {
		all := h.get(target).([]any)
		if len(all) != 3 {
			t.Fatalf("%s: %d items, want 3", target, len(all))
		}
		for _, limit := range []int{1, 2, 3} {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			pages := h.walkPages(fmt.Sprintf("%s%slimit=%d", target, sep, limit))
			var got []any
			for i, p := range pages {
				if i < len(pages)-1 && len(p) != limit || len(p) == 0 {
					t.Errorf("%s limit %d: page %d has %d items", target, limit, i, len(p))
				}
				got = append(got, p...)
			}
			if diff := cmp.Diff(all, got); diff != "" {
				t.Errorf("%s limit %d: pages differ from the unpaged answer (-want +got):\n%s", target, limit, diff)
			}
		}
	}
}

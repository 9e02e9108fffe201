// writes_test.go checks the write endpoints against PROTOCOL.md:
// registration, heartbeats, tool lists and deregistration, their answers,
// the validation 422s of our additions, malformed and oversized bodies,
// that a rejected write changes nothing, and that a deregistration whose
// store write failed is written by its retry.

package registry_test

import (
	stdcmp "cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

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

// PROTOCOL.md, "Our additions": "Validation (each 422, nothing stored):
// instance_id, name, host ... not valid UTF-8". An unpaired surrogate
// escape is refused by counting U+FFFD in the decoded string against
// "\ufffd" in the JSON literal; the text \ufffd written with an escaped
// backslash ("\\ufffd", six ordinary characters) is counted as an escape,
// so it hides one unpaired surrogate, which is stored as U+FFFD.
func TestUnpairedSurrogateHiddenByEscapedBackslash(t *testing.T) {
	for _, field := range []string{"instance_id", "name", "host"} {
		t.Run(field, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			m := map[string]string{"instance_id": `"a"`, "name": `"app"`, "host": `"h1"`}
			m[field] = `"x\\ufffd\ud800"`
			body := `{"instance_id":` + m["instance_id"] + `,"name":` + m["name"] + `,"version":"1","host":` + m["host"] + `}`
			rec := h.do("POST", "/instances", body)
			if rec.Code != http.StatusUnprocessableEntity {
				t.Errorf("POST /instances with %s %s: status %d, want 422; stored %v", field, m[field], rec.Code, h.get("/instances"))
			}
		})
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

// failingStore fails the first n Updates.
type failingStore struct {
	registry.Store
	fail int
}

func (s *failingStore) SetStates(ctx context.Context, states []registry.State) error {
	if s.fail > 0 {
		s.fail--
		return errors.New("disk full")
	}
	return s.Store.SetStates(ctx, states)
}

// A deregistration whose store write failed is answered with an error; the
// agent's retry must write it (it used to find the instance inactive in
// memory, write nothing and answer 200).
func TestDeregisterRetryWrites(t *testing.T) {
	ctx := context.Background()
	mem := registry.NewMemStore()
	st := &failingStore{Store: mem, fail: 1}
	reg, _ := registry.New(registry.Options{Store: st})
	reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	if err := reg.Deregister(ctx, "a"); err == nil {
		t.Fatal("a failed store write was not reported")
	}
	if err := reg.Deregister(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if storedActive(t, mem, "a") {
		t.Error("the store still says active after a successful deregistration")
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

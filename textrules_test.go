// textrules_test.go checks the text rules on every field a writer names
// (instance_id, name, host, version, tool names) against hostile values:
// control characters, Unicode format characters that make a name display
// as another (bidi overrides, zero-width characters, U+2028, U+2029),
// overlong and undecodable text. Each is a 422 naming the field, and
// nothing is stored; ordinary Unicode passes and is stored exactly.

package registry_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

const (
	msgControl = "Value error, must be valid UTF-8 without control characters"
	msgFormat  = "Value error, must not contain invisible format characters (bidi controls, zero-width characters, U+2028, U+2029)"
	msgLength  = "Value error, must be at most 256 bytes"
	msgEmpty   = "Value error, must not be empty"
)

// hostileTexts are values no field may hold, with the message of their
// 422. raw is spliced into the JSON as it is (an escape sequence), else
// the value is JSON-encoded.
var hostileTexts = []struct {
	name, value, raw, msg string
}{
	{name: "NUL", value: "a\x00b", msg: msgControl},
	{name: "ESC", value: "a\x1b[31mb", msg: msgControl},
	{name: "newline", value: "a\nb", msg: msgControl},
	{name: "carriage return", value: "a\rb", msg: msgControl},
	{name: "tab", value: "a\tb", msg: msgControl},
	{name: "DEL", value: "a\x7fb", msg: msgControl},
	{name: "C1 NEL", value: "a\u0085b", msg: msgControl},
	{name: "right-to-left override", value: "evil\u202egnp.exe", msg: msgFormat},
	{name: "left-to-right isolate", value: "a\u2066b", msg: msgFormat},
	{name: "zero-width space", value: "web\u200b-1", msg: msgFormat},
	{name: "zero-width joiner", value: "a\u200db", msg: msgFormat},
	{name: "byte order mark", value: "\ufeffweb-1", msg: msgFormat},
	{name: "soft hyphen", value: "web\u00ad1", msg: msgFormat},
	{name: "line separator", value: "a\u2028b", msg: msgFormat},
	{name: "paragraph separator", value: "a\u2029b", msg: msgFormat},
	{name: "257 bytes", value: strings.Repeat("x", 257), msg: msgLength},
	{name: "100 KB", value: strings.Repeat("x", 100_000), msg: msgLength},
	{name: "unpaired surrogate", raw: `"a\ud800b"`, msg: msgControl},
}

// fineTexts are values every field may hold, stored as sent.
var fineTexts = []struct{ name, value string }{
	{"host name", "web-01.example.com"},
	{"accents", "serveur-é"},
	{"CJK", "東京-1"},
	{"emoji", "🚀-deploy"},
	{"space", "my tool"},
	{"256 bytes", strings.Repeat("x", 256)},
	{"256 bytes of UTF-8", strings.Repeat("é", 128)},
}

// textFields are the fields under the rules, with how a value reaches each.
var textFields = []struct {
	name string
	loc  []string
	// post sends the JSON literal lit as the field and returns the answer;
	// stored returns the field as the registry keeps it ("" and false if
	// nothing was stored).
	post   func(reg *registry.Registry, lit string) (code int, body string)
	stored func(t *testing.T, reg *registry.Registry) (string, bool)
}{
	{"instance_id", []string{"body", "instance_id"}, postRegField("instance_id"), storedField("instance_id")},
	{"name", []string{"body", "name"}, postRegField("name"), storedField("name")},
	{"host", []string{"body", "host"}, postRegField("host"), storedField("host")},
	{"version", []string{"body", "version"}, postRegField("version"), storedField("version")},
	{"tool name", []string{"body", "tools", "0", "name"}, postToolName, storedToolName},
}

// postRegField registers an instance whose field is lit and the others
// plain.
func postRegField(field string) func(*registry.Registry, string) (int, string) {
	return func(reg *registry.Registry, lit string) (int, string) {
		fields := map[string]string{"instance_id": `"i"`, "name": `"app"`, "version": `"1"`, "host": `"h"`}
		fields[field] = lit
		body := `{"instance_id":` + fields["instance_id"] + `,"name":` + fields["name"] +
			`,"version":` + fields["version"] + `,"host":` + fields["host"] + `}`
		rec := serveReq(reg, "POST", "/instances", body)
		return rec.Code, rec.Body.String()
	}
}

// storedField is the field of the one instance GET /instances shows.
func storedField(field string) func(*testing.T, *registry.Registry) (string, bool) {
	return func(t *testing.T, reg *registry.Registry) (string, bool) {
		var list []map[string]any
		if err := json.Unmarshal(serveReq(reg, "GET", "/instances", "").Body.Bytes(), &list); err != nil {
			t.Fatal(err)
		}
		if len(list) == 0 {
			return "", false
		}
		s, _ := list[0][field].(string)
		return s, true
	}
}

// postToolName registers instance i and posts one tool named lit.
func postToolName(reg *registry.Registry, lit string) (int, string) {
	serveReq(reg, "POST", "/instances", `{"instance_id":"i","name":"app","version":"1","host":"h"}`)
	rec := serveReq(reg, "POST", "/instances/i/tools", `{"tools":[{"name":`+lit+`,"x-command":"/bin/true"}]}`)
	return rec.Code, rec.Body.String()
}

func storedToolName(t *testing.T, reg *registry.Registry) (string, bool) {
	var in struct{ Tools []struct{ Name string } }
	if err := json.Unmarshal(serveReq(reg, "GET", "/instances/i", "").Body.Bytes(), &in); err != nil {
		t.Fatal(err)
	}
	if len(in.Tools) == 0 {
		return "", false
	}
	return in.Tools[0].Name, true
}

func TestTextRulesRefuseHostileValues(t *testing.T) {
	for _, f := range textFields {
		for _, v := range hostileTexts {
			t.Run(f.name+"/"+v.name, func(t *testing.T) {
				reg, err := registry.New(registry.Options{})
				if err != nil {
					t.Fatal(err)
				}
				lit := v.raw
				if lit == "" {
					b, _ := json.Marshal(v.value)
					lit = string(b)
				}
				code, body := f.post(reg, lit)
				want := []registry.FieldError{{Loc: f.loc, Msg: v.msg, Type: "value_error"}}
				var got struct{ Detail []registry.FieldError }
				json.Unmarshal([]byte(body), &got)
				if code != http.StatusUnprocessableEntity {
					t.Errorf("status %d, want 422 (%.300s)", code, body)
				}
				if diff := cmp.Diff(want, got.Detail); diff != "" {
					t.Errorf("detail mismatch (-want +got):\n%s", diff)
				}
				if s, ok := f.stored(t, reg); ok {
					t.Errorf("stored %.60q after a 422", s)
				}
			})
		}
	}
}

func TestTextRulesAcceptOrdinaryText(t *testing.T) {
	for _, f := range textFields {
		for _, v := range fineTexts {
			t.Run(f.name+"/"+v.name, func(t *testing.T) {
				reg, err := registry.New(registry.Options{})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := json.Marshal(v.value)
				if code, body := f.post(reg, string(b)); code != http.StatusCreated && code != http.StatusOK {
					t.Fatalf("status %d: %.300s", code, body)
				}
				if s, ok := f.stored(t, reg); !ok || s != v.value {
					t.Errorf("stored %q (%v), want %q", s, ok, v.value)
				}
			})
		}
	}
	t.Run("empty", func(t *testing.T) {
		for _, f := range textFields {
			reg, err := registry.New(registry.Options{})
			if err != nil {
				t.Fatal(err)
			}
			code, body := f.post(reg, `""`)
			switch {
			case f.name == "version" && code != http.StatusCreated:
				t.Errorf("version empty: status %d, want 201 (v1 asks only for a string): %s", code, body)
			case f.name == "tool name" && code != http.StatusUnprocessableEntity:
				t.Errorf("tool name empty: status %d, want 422: %s", code, body)
			case f.name != "version" && f.name != "tool name" && (code != http.StatusUnprocessableEntity || !strings.Contains(body, msgEmpty)):
				t.Errorf("%s empty: status %d %s, want 422 %q", f.name, code, body, msgEmpty)
			}
		}
	})
}

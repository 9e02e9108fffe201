// schema_test.go checks CompileSchema: the arguments it finds, how it
// reads their kinds, and that it loads nothing a schema refers to.

package run_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/run"
)

func TestCompileSchemaArguments(t *testing.T) {
	tests := []struct {
		name, schema string
		want         []string
	}{
		{"none", ``, nil},
		{"null", `null`, nil},
		{"true", `true`, nil},
		{"no properties", `{"type":"object"}`, nil},
		{"the schema's order", `{"properties":{"z":{},"a":{},"m":{}}}`, []string{"z", "a", "m"}},
		{"through allOf and $ref", `{"$defs":{"base":{"properties":{"b":{}}}},"$ref":"#/$defs/base","allOf":[{"properties":{"c":{}}}],"properties":{"a":{}}}`,
			[]string{"a", "b", "c"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := run.CompileSchema(json.RawMessage(tt.schema))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, s.Arguments()); diff != "" {
				t.Errorf("arguments mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCompileSchemaKinds checks how the command-line form reads each
// kind of property.
func TestCompileSchemaKinds(t *testing.T) {
	s := compile(t, `{"properties":{
		"s":{"type":"string"}, "any":{}, "e":{"enum":["a","b"]}, "n":{"enum":[1,2]},
		"b":{"type":"boolean"}, "nb":{"type":["boolean","null"]}, "i":{"type":"integer"},
		"sn":{"type":["string","number"]}, "ref":{"$ref":"#/$defs/flag"},
		"as":{"type":"array","items":{"type":"integer"}}, "ab":{"type":"array","items":{"type":"boolean"}},
		"a":{"type":"array"}
	},"$defs":{"flag":{"type":"boolean"}}}`)
	got, err := s.ParseFlags([]string{"--s", "1", "--any", "2", "--e", "a", "--n", "2", "--b", "--nb", "--i", "7",
		"--sn", "8", "--ref", "--as", "1", "--as", "2", "--ab", "true", "--a", "x"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"s": "1", "any": "2", "e": "a", "n": float64(2), "b": true, "nb": true, "i": float64(7),
		"sn": "8", "ref": true, "as": []any{float64(1), float64(2)}, "ab": []any{true}, "a": []any{"x"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

// TestCompileSchemaLoadsNothing checks that a schema cannot make the
// runner read a file or fetch a URL.
func TestCompileSchemaLoadsNothing(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"type":"string"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, schema := range []string{
		`{"properties":{"a":{"$ref":"file://` + secret + `"}}}`,
		`{"$ref":"` + secret + `"}`,
		`{"properties":{"a":{"$ref":"https://example.com/schema.json"}}}`,
		`{"$schema":"file://` + secret + `"}`,
		`{"$id":"file:///etc/","properties":{"a":{"$ref":"passwd"}}}`,
	} {
		if _, err := run.CompileSchema(json.RawMessage(schema)); !errors.Is(err, run.ErrSchema) {
			t.Errorf("CompileSchema(%s) = %v, want ErrSchema", schema, err)
		}
	}
}

func TestCompileSchemaInvalid(t *testing.T) {
	for _, schema := range []string{`{`, `{"type":"strin"}`, `{"properties":{"a":{"minimum":"x"}}}`, `{"pattern":"("}`, `3`} {
		if _, err := run.CompileSchema(json.RawMessage(schema)); !errors.Is(err, run.ErrSchema) {
			t.Errorf("CompileSchema(%s) = %v, want ErrSchema", schema, err)
		}
	}
}

// TestCompileSchemaDrafts checks that the schema's own $schema is
// honoured and that without one it is draft 2020-12.
func TestCompileSchemaDrafts(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/x", "", "", "")
	for _, tt := range []struct {
		schema string
		ok     bool
	}{
		// prefixItems exists in 2020-12 only: draft 7 ignores it.
		{`{"properties":{"a":{"type":"array","prefixItems":[{"type":"string"}]}}}`, false},
		{`{"$schema":"http://json-schema.org/draft-07/schema#","properties":{"a":{"type":"array","prefixItems":[{"type":"string"}]}}}`, true},
	} {
		tool := deployTool(h)
		tool.InputSchema = json.RawMessage(tt.schema)
		_, err := r.Plan(run.Call{Tool: tool, Host: h, Args: map[string]any{"a": []any{1}}})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.schema, err, tt.ok)
		}
	}
}

func TestPlanSchemaError(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/x", "", "", "")
	tool := deployTool(h)
	tool.InputSchema = json.RawMessage(`{"type":"nope"}`)
	if _, err := r.Plan(run.Call{Tool: tool, Host: h}); !errors.Is(err, run.ErrSchema) {
		t.Errorf("err = %v, want ErrSchema", err)
	}
}

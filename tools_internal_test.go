// tools_internal_test.go checks that splitting a tool into interned parts
// loses nothing: the parts put back together decode to the posted object.

package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseToolRoundTrip(t *testing.T) {
	tests := []struct {
		name, in           string
		wantName, wantHead string
		wantExec           string
	}{
		{"plain", `{"name":"a","description":"d","inputSchema":{"type":"object"}}`,
			"a", `"name":"a","description":"d","inputSchema":{"type":"object"}`, ""},
		{"white space", " {\n \"inputSchema\" : { \"a\" : [ 1 , 2 ] } ,\n \"name\" : \"b c\" } ",
			"b c", `"name":"b c","inputSchema":{"a":[1,2]}`, ""},
		{"exec fields apart", `{"x-run-as":"u","name":"t","x-command":"/bin/t","x-autonomy":3}`,
			"t", `"name":"t"`, `"x-run-as":"u","x-command":"/bin/t"`},
		{"escapes", `{"n\u0061me":"q\"\\}","description":"{[\"]}","x":null}`,
			`q"\}`, `"n\u0061me":"q\"\\}","description":"{[\"]}"`, ""},
		{"repeated key keeps the last value", `{"name":"first","name":"second"}`,
			"second", `"name":"second"`, ""},
		{"scalars last", `{"name":"n","a":true,"b":-1.5e3,"c":false}`, "n", `"name":"n"`, ""},
		{"unicode", `{"name":"déployer ✓"}`, "déployer ✓", `"name":"déployer ✓"`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, fe := parseTool(json.RawMessage(tt.in))
			if fe != nil {
				t.Fatalf("parseTool: %+v", fe)
			}
			got := struct{ Name, Head, Exec string }{p.name, p.head, p.exec}
			want := struct{ Name, Head, Exec string }{tt.wantName, tt.wantHead, tt.wantExec}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			checkRoundTrip(t, tt.in, p)
		})
	}
}

func TestParseToolRejects(t *testing.T) {
	for _, in := range []string{`[]`, `"name"`, `{}`, `{"name":""}`, `{"name":1}`, `{"name":null}`, `{"description":"x"}`, `{"name":"a"`} {
		if _, fe := parseTool(json.RawMessage(in)); fe == nil {
			t.Errorf("parseTool(%s) accepted", in)
		}
	}
}

// checkRoundTrip decodes the original and the reassembled tool and compares.
// Numbers stay as written (1e700 is valid JSON that no float64 holds), and
// cmp.Diff only explains a difference: its cost grows exponentially with
// the nesting depth of equal values.
func checkRoundTrip(t *testing.T, in string, p parsedTool) {
	t.Helper()
	var want, got map[string]any
	if err := decodeNumbers([]byte(in), &want); err != nil {
		t.Fatal(err)
	}
	out := appendToolObject(nil, p.inner, p.exec)
	if err := decodeNumbers(out, &got); err != nil {
		t.Fatalf("reassembled tool %s: %v", out, err)
	}
	if reflect.DeepEqual(want, got) {
		return
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip mismatch (-want +got):\n%s", diff)
	}
}

// decodeNumbers is json.Unmarshal with numbers kept as json.Number.
func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(v)
}

func FuzzParseTool(f *testing.F) {
	f.Add(`{"name":"a","description":"d","inputSchema":{"type":"object"},"x-command":"c"}`)
	f.Add(`{"name":"\u00e9","a":[{"b":"]}"}],"x-run-as":null}`)
	f.Add(` { "name" : "x" , "k" : 1e5 } `)
	f.Fuzz(func(t *testing.T, in string) {
		p, fe := parseTool(json.RawMessage(in))
		if fe != nil {
			return
		}
		if !json.Valid([]byte(in)) {
			t.Fatalf("accepted invalid JSON %q", in)
		}
		checkRoundTrip(t, in, p)
	})
}

// FuzzParseToolReused: the tools of one list share a toolScratch; what one
// leaves behind (buffers, the key map of a large tool) never shows in the
// next: each parses as it does alone.
func FuzzParseToolReused(f *testing.F) {
	f.Add(`{"name":"a","description":"d","inputSchema":{"type":"object"},"x-command":"c"}`, `{"name":"b"}`)
	f.Add(string(manyKeysTool(linearScan*2)), `{"name":"k00001","k00001":1,"x-run-as":"r","description":"x"}`)
	f.Add(`{"name":"\u00e9","a":[{"b":"]}"}],"x-run-as":null}`, `{"x-command":"c","name":"n"}`)
	f.Fuzz(func(t *testing.T, first, second string) {
		want, wantErr := parseTool(json.RawMessage(second))
		var sc toolScratch
		for _, in := range []string{first, second, second} {
			sc.parse(json.RawMessage(in))
		}
		got, gotErr := sc.parse(json.RawMessage(second))
		if diff := cmp.Diff(want, got, cmp.AllowUnexported(parsedTool{})); diff != "" {
			t.Errorf("after %.60q, %.60q parses differently from alone (-alone +reused):\n%s", first, second, diff)
		}
		if (wantErr == nil) != (gotErr == nil) || (wantErr != nil && wantErr.Msg != gotErr.Msg) {
			t.Errorf("after %.60q, %.60q: error %v, alone %v", first, second, gotErr, wantErr)
		}
	})
}

// manyKeysTool is the worst case for repeated-key detection: one tool of
// about 1 MiB made of ~95,000 distinct keys.
func manyKeysTool(n int) json.RawMessage {
	b := []byte(`{"name":"t"`)
	for i := range n {
		b = fmt.Appendf(b, `,"k%05d":1`, i)
	}
	return append(b, '}')
}

func TestParseToolManyKeys(t *testing.T) {
	raw := manyKeysTool(linearScan * 4)
	// Repeat every key once more: each keeps its first place and its last value.
	raw = append(raw[:len(raw)-1], `,"k00000":2,"name":"u"}`...)
	p, fe := parseTool(raw)
	if fe != nil {
		t.Fatalf("parseTool: %+v", fe)
	}
	if p.name != "u" || !strings.HasPrefix(p.inner, `"name":"u","k00000":2,"k00001":1`) {
		t.Errorf("repeated keys: name %q, inner starts %.40q", p.name, p.inner)
	}
	checkRoundTrip(t, string(raw), p)
}

// BenchmarkParseToolManyKeys is the 1 MiB tool of ~95,000 keys that took
// 15 s of CPU with a nested loop; it must parse in well under 50 ms.
func BenchmarkParseToolManyKeys(b *testing.B) {
	raw := manyKeysTool(95_000)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, fe := parseTool(raw); fe != nil {
			b.Fatal(fe)
		}
	}
}

// BenchmarkParseToolDeepNesting is a 1 MiB tool whose inputSchema nests
// arrays as deep as encoding/json allows.
func BenchmarkParseToolDeepNesting(b *testing.B) {
	const depth = 9_990 // encoding/json refuses deeper than 10,000 at once
	raw := []byte(`{"name":"t","inputSchema":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, fe := parseTool(raw); fe != nil {
			b.Fatal(fe)
		}
	}
}

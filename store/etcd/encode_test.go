// encode_test.go checks the mapping of tools to etcd values: a tool split
// into its schema and execution fields joins back as posted, and a bad
// stored schema is refused instead of panicking.

package etcd

import (
	"encoding/json"
	"testing"
)

func TestSplitJoinTool(t *testing.T) {
	tests := []struct{ tool, schema, x, joined string }{
		{`{}`, `{}`, ``, `{}`},
		{`{"name":"a"}`, `{"name":"a"}`, ``, `{"name":"a"}`},
		{`{"x-command":"c"}`, `{}`, `{"x-command":"c"}`, `{"x-command":"c"}`},
		{` { "name" : "a" , "x-run-as":"u", "inputSchema": {"type": "object"}, "x-autonomy": 1e3, "x-command": "c" } `,
			`{"name":"a","inputSchema":{"type":"object"},"x-autonomy":1e3}`, `{"x-run-as":"u","x-command":"c"}`,
			`{"name":"a","inputSchema":{"type":"object"},"x-autonomy":1e3,"x-run-as":"u","x-command":"c"}`},
		{`{"name":"\u00e9\"q"}`, `{"name":"\u00e9\"q"}`, ``, `{"name":"\u00e9\"q"}`}, // values verbatim
	}
	for _, tt := range tests {
		schema, x, err := splitTool(json.RawMessage(tt.tool))
		if err != nil {
			t.Errorf("splitTool(%s): %v", tt.tool, err)
			continue
		}
		if string(schema) != tt.schema || string(x) != tt.x {
			t.Errorf("splitTool(%s) = %s, %s; want %s, %s", tt.tool, schema, x, tt.schema, tt.x)
		}
		if got := joinTool(schema, x); string(got) != tt.joined {
			t.Errorf("joinTool(%s, %s) = %s, want %s", schema, x, got, tt.joined)
		}
	}
	for _, bad := range []string{`[]`, `"s"`, `{"a":}`, `{"a":1`, ``} {
		if _, _, err := splitTool(json.RawMessage(bad)); err == nil {
			t.Errorf("splitTool(%q) succeeded", bad)
		}
	}
}

// An empty or non-object value under P/t/ panicked the watch (or New).
func TestBadStoredSchema(t *testing.T) {
	rv := &recordValue{Tools: []toolRef{{Schema: "h", X: json.RawMessage(`{"x-command":"c"}`)}}}
	for _, bad := range []string{``, `[]`, `x`} {
		if _, err := tools(rv, map[string][]byte{"h": []byte(bad)}); err == nil {
			t.Errorf("tools with stored schema %q succeeded", bad)
		}
		joinTool([]byte(bad), rv.Tools[0].X) // must not panic
	}
}

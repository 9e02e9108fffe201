// list_test.go checks tools/list: one MCP tool per tool name of the
// active instances, in name order, paginated; descriptions that say where
// a tool runs; the runspec_host property following registrations and
// expiries; aliases for names MCP clients refuse; titles and annotations;
// and the views.

package fleetmcp_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
)

func TestList(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, echo("deploy"), echo("status").with("title", "Service status",
		"annotations", map[string]any{"readOnlyHint": true, "idempotentHint": true}))
	f.agent("a2", "ops", "web-2", nil, echo("deploy"))
	f.agent("a3", "db", "db-1", nil, tool{"name": "backup", "x-command": "/usr/bin/backup"}) // no inputSchema
	f.sync()
	s := f.connect(clientConfig{})

	type listed struct {
		Name, Title, Description string
		Schema                   map[string]any
		Annotations              *mcp.ToolAnnotations
	}
	tools, _ := s.list(t)
	var got []listed
	for _, tl := range tools {
		b, _ := json.Marshal(tl.InputSchema)
		var schema map[string]any
		json.Unmarshal(b, &schema)
		got = append(got, listed{tl.Name, tl.Title, tl.Description, schema, tl.Annotations})
	}
	host := func(desc string, hosts ...string) map[string]any {
		p := map[string]any{"type": "string", "description": desc, "enum": toAny(hosts)}
		if len(hosts) == 1 {
			p["default"] = hosts[0]
		}
		return p
	}
	one := func(h string) string {
		return "The host to run on: " + h + ", the only active host that offers this tool."
	}
	several := "The host to run on: one of the active hosts that offer this tool."
	want := []listed{
		{
			Name:        "backup",
			Description: "Runs on 1 host: db-1. A person approves each call before it runs.",
			Schema: map[string]any{"type": "object", "properties": map[string]any{
				"runspec_host": host(one("db-1"), "db-1"),
			}},
		},
		{
			Name:        "deploy",
			Description: "Echo deploy\n\nRuns on 2 hosts: web-1, web-2 (choose one with runspec_host). A person approves each call before it runs.",
			Schema: map[string]any{"type": "object", "properties": map[string]any{
				"message":      map[string]any{"type": "string"},
				"count":        map[string]any{"type": "integer", "minimum": float64(1)},
				"runspec_host": host(several, "web-1", "web-2"),
			}, "required": []any{"message", "runspec_host"}},
		},
		{
			Name: "status", Title: "Service status",
			Description: "Echo status\n\nRuns on 1 host: web-1. A person approves each call before it runs.",
			Schema: map[string]any{"type": "object", "properties": map[string]any{
				"message":      map[string]any{"type": "string"},
				"count":        map[string]any{"type": "integer", "minimum": float64(1)},
				"runspec_host": host(one("web-1"), "web-1"),
			}, "required": []any{"message"}},
			Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tools/list mismatch (-want +got):\n%s", diff)
	}

}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func TestPagination(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{PageSize: 100})
	var tools []tool
	var want []string
	for i := range 500 {
		name := fmt.Sprintf("tool-%03d", i)
		tools = append(tools, echo(name))
		want = append(want, name)
	}
	f.agent("a1", "ops", "web-1", nil, tools...)
	f.sync()
	s := f.connect(clientConfig{})
	got, pages := s.list(t)
	if pages != 5 {
		t.Errorf("%d pages of 100, want 5", pages)
	}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("names over the pages mismatch (-want +got):\n%s", diff)
	}
}

func TestAliases(t *testing.T) {
	long := strings.Repeat("x", 70)
	tests := []struct {
		runspec string
		want    string // the alias, checked against its rule
	}{
		{"deploy", "deploy"},
		{"deploy.web", "deploy_web_" + fleetmcp.Alias("deploy.web")[len("deploy_web_"):]},
		{"ns/tool", ""},
		{"déployer", ""},
		{"has space", ""},
		{long, ""},
		{strings.Repeat("y", 64), strings.Repeat("y", 64)},
	}
	for _, tt := range tests {
		a := fleetmcp.Alias(tt.runspec)
		if !fleetmcp.ValidName(a) {
			t.Errorf("Alias(%q) = %q, not a valid MCP name", tt.runspec, a)
		}
		if tt.want != "" && a != tt.want {
			t.Errorf("Alias(%q) = %q, want %q", tt.runspec, a, tt.want)
		}
		if !fleetmcp.ValidName(tt.runspec) && a == tt.runspec {
			t.Errorf("Alias(%q) is the invalid name itself", tt.runspec)
		}
	}
	if a, b := fleetmcp.Alias("a.b"), fleetmcp.Alias("a/b"); a == b {
		t.Errorf("a.b and a/b share the alias %q", a)
	}

	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, echo("deploy.web").with("x-autonomy", "autonomous"), echo("ns/tool"), echo(long))
	f.sync()
	s := f.connect(clientConfig{})
	before, _ := s.list(t)
	wantNames := []string{fleetmcp.Alias("deploy.web"), fleetmcp.Alias("ns/tool"), fleetmcp.Alias(long)}
	slices.Sort(wantNames)
	if diff := cmp.Diff(wantNames, names(before)); diff != "" {
		t.Fatalf("aliases mismatch (-want +got):\n%s", diff)
	}

	// Other tools come and go: the aliases stay.
	f.agent("a2", "ops", "web-2", nil, echo("deploy.api"), echo("deploy_web"), echo("ns/other"))
	f.sync()
	f.post("a2")
	f.sync()
	after, _ := s.list(t)
	if diff := cmp.Diff(names(before), names(after)); diff != "" {
		t.Errorf("aliases changed when other tools came and went (-before +after):\n%s", diff)
	}

	// A call through the alias runs the runspec tool.
	res := s.call(t, fleetmcp.Alias("deploy.web"), map[string]any{"message": "hi"})
	if res.IsError {
		t.Fatalf("call through the alias: %s", text(res))
	}
	if runs := f.run.taken(); len(runs) != 1 || runs[0].Tool != "deploy.web" {
		t.Errorf("the alias ran %v, want one run of deploy.web", runs)
	}
}

func TestHostEnumFollowsRegistry(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	s := f.connect(clientConfig{})
	type state struct {
		Listed   bool
		Enum     []string
		Default  string
		Required bool
	}
	look := func() state {
		tl := s.listed(t, "deploy")
		if tl == nil {
			return state{}
		}
		e, d, r := hostEnum(t, tl)
		return state{true, e, d, r}
	}
	steps := []struct {
		name string
		do   func()
		want state
	}{
		{"one host", func() { f.agent("a1", "ops", "web-1", nil, echo("deploy")) },
			state{true, []string{"web-1"}, "web-1", false}},
		{"a second host registers", func() {
			f.clock.advance(60 * time.Second)
			f.reg.Heartbeat(t.Context(), "a1", nil)
			f.agent("a2", "ops", "web-2", nil, echo("deploy"))
		}, state{true, []string{"web-1", "web-2"}, "", true}},
		{"two entries on one host count once", func() { f.agent("a3", "ops2", "web-2", nil, echo("deploy")) },
			state{true, []string{"web-1", "web-2"}, "", true}},
		{"web-2 expires", func() {
			f.clock.advance(60 * time.Second)
			f.reg.Heartbeat(t.Context(), "a1", nil)
			f.expire(40 * time.Second) // a2, a3: 100 s without a heartbeat; a1: 40 s
		}, state{true, []string{"web-1"}, "web-1", false}},
		{"web-1 deregisters", func() { f.reg.Deregister(t.Context(), "a1") }, state{}},
	}
	for _, st := range steps {
		st.do()
		f.sync()
		if diff := cmp.Diff(st.want, look()); diff != "" {
			t.Errorf("%s: runspec_host mismatch (-want +got):\n%s", st.name, diff)
		}
	}
}

func TestViews(t *testing.T) {
	tests := []struct {
		name string
		view fleetmcp.View
		want map[string][]string // MCP name -> hosts
	}{
		{"everything", fleetmcp.View{}, map[string][]string{
			"deploy": {"db-1", "web-1", "web-2"}, "status": {"web-1"}, "backup": {"db-1"}}},
		{"tool glob", fleetmcp.View{Tools: []string{"dep*", "back?p"}}, map[string][]string{
			"deploy": {"db-1", "web-1", "web-2"}, "backup": {"db-1"}}},
		{"agent", fleetmcp.View{Agent: "db"}, map[string][]string{"deploy": {"db-1"}, "backup": {"db-1"}}},
		{"label", fleetmcp.View{Labels: map[string]string{"env": "prod"}}, map[string][]string{
			"deploy": {"web-1"}, "status": {"web-1"}}},
		{"labels", fleetmcp.View{Labels: map[string]string{"env": "prod", "team": "b"}}, map[string][]string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, fleetmcp.Options{View: tt.view})
			f.agent("a1", "ops", "web-1", map[string]string{"env": "prod", "team": "a"}, echo("deploy"), echo("status"))
			f.agent("a2", "ops", "web-2", map[string]string{"env": "test"}, echo("deploy"))
			f.agent("a3", "db", "db-1", nil, echo("deploy"), echo("backup"))
			f.sync()
			s := f.connect(clientConfig{})
			tools, _ := s.list(t)
			got := map[string][]string{}
			for _, tl := range tools {
				got[tl.Name], _, _ = hostEnum(t, tl)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("view %v mismatch (-want +got):\n%s", tt.view, diff)
			}
		})
	}
}

func TestViewErrors(t *testing.T) {
	if _, err := fleetmcp.ParseLabels([]string{"env"}); !errors.Is(err, fleetmcp.ErrView) {
		t.Errorf("ParseLabels(env) = %v, want ErrView", err)
	}
	if _, err := fleetmcp.New(fleetmcp.Options{Source: (*fakeSource)(nil), Runner: &fakeRun{}, View: fleetmcp.View{Tools: []string{"["}}}); !errors.Is(err, fleetmcp.ErrView) {
		t.Errorf("New with a bad glob = %v, want ErrView", err)
	}
	if _, err := fleetmcp.New(fleetmcp.Options{Runner: &fakeRun{}}); !errors.Is(err, fleetmcp.ErrOptions) {
		t.Errorf("New without a Source = %v, want ErrOptions", err)
	}
}

func TestUnlistable(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil,
		echo("ok"),
		tool{"name": "string-schema", "x-command": "/bin/true", "inputSchema": map[string]any{"type": "string"}},
		tool{"name": "own-host-arg", "x-command": "/bin/true", "inputSchema": map[string]any{"type": "object",
			"properties": map[string]any{"runspec_host": map[string]any{"type": "string"}}}},
		tool{"name": "bad-header", "x-command": "/bin/true", "inputSchema": map[string]any{"type": "object",
			"properties": map[string]any{"a": map[string]any{"type": "object", "x-mcp-header": "A"}}}},
	)
	f.sync()
	s := f.connect(clientConfig{})
	tools, _ := s.list(t)
	if diff := cmp.Diff([]string{"ok"}, names(tools)); diff != "" {
		t.Errorf("tools whose schema cannot carry runspec_host, or that the SDK refuses, must not be listed (-want +got):\n%s", diff)
	}
}

// bench_test.go measures plan building: with the schema compiled each
// time or once, the command-line parser, and choosing the entry among
// many.

package run_test

import (
	"encoding/json"
	"strconv"
	"testing"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

func benchCall(b *testing.B) (*run.Runner, run.Call) {
	h := entry("/usr/local/bin/deploy", "oracle", "sudo", "-H")
	r := newRunner(b, run.Options{ConfigFile: "/etc/runspec/ssh_config"})
	return r, run.Call{
		Tool: deployTool(h), Host: h,
		Args: map[string]any{"environment": "staging", "dry-run": true, "tag": []any{"a", "b c"}, "replicas": float64(3), "message": "it's live"},
		Env:  []string{"REGION=eu-west-1"},
	}
}

// BenchmarkPlan builds a plan, compiling the tool's schema each time.
func BenchmarkPlan(b *testing.B) {
	r, c := benchCall(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Plan(c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPlanCompiledSchema builds a plan with the schema compiled once
// (Call.Schema).
func BenchmarkPlanCompiledSchema(b *testing.B) {
	r, c := benchCall(b)
	s, err := run.CompileSchema(c.Tool.InputSchema)
	if err != nil {
		b.Fatal(err)
	}
	c.Schema = s
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Plan(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileSchema(b *testing.B) {
	raw := json.RawMessage(deploySchema)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := run.CompileSchema(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseFlags(b *testing.B) {
	s, err := run.CompileSchema(json.RawMessage(deploySchema))
	if err != nil {
		b.Fatal(err)
	}
	words := []string{"--environment", "staging", "--dry-run", "--tag", "a", "--tag", "b c", "--replicas", "3", "--message", "it's live"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.ParseFlags(words); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSelect chooses the entry on one host of a tool offered by
// 1,000 hosts with two agreeing entries each.
func BenchmarkSelect(b *testing.B) {
	tool := registry.Tool{Name: "deploy"}
	for i := range 1000 {
		for _, id := range []string{"a", "b"} {
			tool.Hosts = append(tool.Hosts, registry.ToolHost{Host: "host-" + strconv.Itoa(i), InstanceID: id + strconv.Itoa(i),
				Active: true, Command: str("/usr/local/bin/deploy")})
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := run.Select(tool, "host-500", ""); err != nil {
			b.Fatal(err)
		}
	}
}

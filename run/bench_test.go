// bench_test.go measures plan building (with the schema compiled each
// time or once), the command-line parser, choosing the entry among many,
// and whole runs over ssh to the test host (one host, and many aliases of
// it at once).

package run_test

import (
	"encoding/json"
	"strconv"
	"sync/atomic"
	"testing"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/sshtest"
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

// BenchmarkRun plans and runs the test tool on one host: a connection,
// a login and the wrapper per run.
func BenchmarkRun(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{})
	r := newRunner(b, run.Options{ConfigFile: s.Config})
	h := entry(s.Tool, "", "", "")
	c := run.Call{Tool: registry.Tool{Name: "argv", InputSchema: json.RawMessage(toolSchema), Hosts: []registry.ToolHost{h}},
		Host: h, Args: map[string]any{"message": "hello"}}
	b.ReportAllocs()
	for b.Loop() {
		p, err := r.Plan(c)
		if err != nil {
			b.Fatal(err)
		}
		if status, err := r.Run(b.Context(), p, nil, nil); err != nil {
			b.Fatal(status, err)
		}
	}
}

// BenchmarkRunHosts runs the tool on 16 host names at once, as a fan-out
// to a fleet does (all of them reach the one test sshd).
func BenchmarkRunHosts(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{Aliases: 16})
	r := newRunner(b, run.Options{ConfigFile: s.Config})
	tool := registry.Tool{Name: "argv", InputSchema: json.RawMessage(toolSchema)}
	for _, name := range s.Hosts[3:] {
		h := entry(s.Tool, "", "", "")
		h.Host = name
		tool.Hosts = append(tool.Hosts, h)
	}
	schema, err := run.CompileSchema(tool.InputSchema)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8) // ssh waits on the network and the host, not on this process
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := tool.Hosts[int(next.Add(1))%len(tool.Hosts)]
			p, err := r.Plan(run.Call{Tool: tool, Host: h, Schema: schema})
			if err != nil {
				b.Error(err)
				return
			}
			if status, err := r.Run(b.Context(), p, nil, nil); err != nil {
				b.Error(status, err)
				return
			}
		}
	})
}

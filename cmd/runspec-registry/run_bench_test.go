// run_bench_test.go measures what the run command costs over plain ssh,
// side by side in one run against the loopback sshd of internal/sshtest:
// run --host H TOOL against ssh H TOOL-PATH, and run --all --parallel 10
// over 50 host aliases against the same 50 ssh runs through xargs -P 10.
// Each iteration runs both once, alternating, so that both see the same
// machine; the medians are reported (ms), with their difference or ratio.
//
//	go test -run '^$' -bench 'RunVsSSH|RunAllVsXargs' -benchtime 21x ./cmd/runspec-registry/

package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
	"github.com/runspec/registry/internal/sshtest"
	remote "github.com/runspec/registry/run" // the run package; run is a name of this package's tests
)

// benchBinary builds the command for a benchmark.
func benchBinary(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "runspec-registry")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// benchRegistry serves a registry where the tool argv runs the test
// host's tool on each of hosts.
// benchWeb1 starts an sshd, the command's binary and a registry whose
// web-1 offers the argv tool, and returns them with the plan run makes for
// it there.
func benchWeb1(b *testing.B) (s *sshtest.Server, bin, url string, plan *remote.Plan) {
	b.Helper()
	s = sshtest.Start(b, sshtest.Options{})
	bin = benchBinary(b)
	url = benchRegistry(b, s, []string{"web-1"})
	c, err := client.New(url, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	answer, err := c.Tool(b.Context(), "argv", client.Filter{})
	if err != nil {
		b.Fatal(err)
	}
	runner, err := remote.New(remote.Options{ConfigFile: s.Config})
	if err != nil {
		b.Fatal(err)
	}
	p, err := runner.Plan(remote.Call{Tool: answer, Host: answer.Hosts[0]})
	if err != nil {
		b.Fatal(err)
	}
	return s, bin, url, p
}

func benchRegistry(b *testing.B, s *sshtest.Server, hosts []string) string {
	b.Helper()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	b.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i, h := range hosts {
		id := fmt.Sprintf("i%d", i)
		// No heartbeats come: an interval long enough for the whole run.
		reg := registry.Registration{ID: id, Name: "ops", Version: "1", Host: h, HeartbeatInterval: 24 * time.Hour}
		if err := c.Register(b.Context(), reg); err != nil {
			b.Fatal(err)
		}
		if err := c.UpdateTools(b.Context(), id, []json.RawMessage{json.RawMessage(tool("argv", s.Tool))}); err != nil {
			b.Fatal(err)
		}
	}
	return srv.URL
}

// timed runs cmd and returns how long it took, and the CPU time (user
// and system) that it and the children it waited for used: on a machine
// shared with other work, the CPU time is the figure that does not move
// with the load.
func timeCmd(b *testing.B, cmd *exec.Cmd) (wall, cpu time.Duration) {
	b.Helper()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("%s: %v\nstdout %q\nstderr %q", cmd, err, stdout.String(), stderr.String())
	}
	return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
}

// median returns the median of ds in milliseconds.
func median(ds []time.Duration) float64 {
	s := slices.Clone(ds)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return float64(m) / float64(time.Millisecond)
}

// BenchmarkRunVsSSH compares runspec-registry run --host web-1 argv with
// ssh web-1 ARGV-PATH, and, to tell the two parts of the difference apart,
// with the ssh command line that run executes (its --dry-run) run
// directly: the remote wrapper's share is wrapped-ssh, the command's own
// (start, registry lookup, plan) is run-wrapped.
func BenchmarkRunVsSSH(b *testing.B) {
	s, bin, url, plan := benchWeb1(b)
	// The wrapper stops the command at the end of its input: keep it open.
	in, keep, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); keep.Close() })
	var ssh, wrapped, run, diff, sshCPU, runCPU []time.Duration
	for b.Loop() {
		a, ac := timeCmd(b, exec.Command("ssh", "-F", s.Config, "web-1", s.Tool))
		w := exec.Command(plan.SSH[0], plan.SSH[1:]...)
		w.Stdin = in
		wt, _ := timeCmd(b, w)
		r, rc := timeCmd(b, exec.Command(bin, "run", "--registry", url, "--ssh-config", s.Config, "--host", "web-1", "argv"))
		ssh, wrapped, run, diff = append(ssh, a), append(wrapped, wt), append(run, r), append(diff, r-a)
		sshCPU, runCPU = append(sshCPU, ac), append(runCPU, rc)
	}
	b.ReportMetric(median(ssh), "ssh-ms")
	b.ReportMetric(median(wrapped), "wrapped-ssh-ms")
	b.ReportMetric(median(run), "run-ms")
	b.ReportMetric(median(run)-median(ssh), "overhead-ms")
	b.ReportMetric(median(diff), "paired-overhead-ms")
	b.ReportMetric(median(sshCPU), "ssh-cpu-ms")
	b.ReportMetric(median(runCPU), "run-cpu-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRunAllVsXargs compares runspec-registry run --all --parallel
// 10 argv over 50 host aliases with the same 50 ssh runs through xargs -P
// 10.
func BenchmarkRunAllVsXargs(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{Aliases: 50})
	bin := benchBinary(b)
	hosts := s.Hosts[3:] // host-0 … host-49
	url := benchRegistry(b, s, hosts)
	list := strings.Join(hosts, "\n") + "\n"
	var xargs, run, xargsCPU, runCPU []time.Duration
	for b.Loop() {
		x := exec.Command("xargs", "-P", "10", "-I", "{}", "ssh", "-F", s.Config, "{}", s.Tool)
		x.Stdin = strings.NewReader(list)
		a, ac := timeCmd(b, x)
		r, rc := timeCmd(b, exec.Command(bin, "run", "--registry", url, "--ssh-config", s.Config, "--all", "--parallel", "10", "argv"))
		xargs, run, xargsCPU, runCPU = append(xargs, a), append(run, r), append(xargsCPU, ac), append(runCPU, rc)
	}
	b.ReportMetric(median(xargs), "xargs-ms")
	b.ReportMetric(median(run), "run-ms")
	b.ReportMetric(median(run)/median(xargs), "ratio")
	b.ReportMetric(median(xargsCPU), "xargs-cpu-ms")
	b.ReportMetric(median(runCPU), "run-cpu-ms")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkRunParts measures, without ssh, the two parts of what run adds
// to a plain ssh run, alternating: the command's own work (start, parse,
// registry lookup, plan: run --dry-run, against /bin/true and the version
// command) and the remote wrapper (sh -c WRAPPER runspec TOOL, with its
// standard input open, against TOOL alone). Runs of a few milliseconds
// vary far less than whole ssh runs on a loaded machine.
func BenchmarkRunParts(b *testing.B) {
	s, bin, url, plan := benchWeb1(b)
	// The remote command line, as the login shell gets it: its last word.
	wrapped := plan.SSH[len(plan.SSH)-1]
	in, keep, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { in.Close(); keep.Close() })
	var truth, version, dry, tool, wrap []time.Duration
	for b.Loop() {
		t, _ := timeCmd(b, exec.Command("/bin/true"))
		v, _ := timeCmd(b, exec.Command(bin, "version"))
		d, _ := timeCmd(b, exec.Command(bin, "run", "--registry", url, "--ssh-config", s.Config, "--dry-run", "--host", "web-1", "argv"))
		plain := exec.Command("/bin/sh", "-c", shellQuote(s.Tool))
		plain.Stdin = in
		p, _ := timeCmd(b, plain)
		w := exec.Command("/bin/sh", "-c", wrapped)
		w.Stdin = in
		wt, _ := timeCmd(b, w)
		truth, version, dry, tool, wrap = append(truth, t), append(version, v), append(dry, d), append(tool, p), append(wrap, wt)
	}
	b.ReportMetric(median(truth), "true-ms")
	b.ReportMetric(median(version), "version-ms")
	b.ReportMetric(median(dry), "dry-run-ms")
	b.ReportMetric(median(tool), "tool-ms")
	b.ReportMetric(median(wrap), "wrapped-tool-ms")
	b.ReportMetric(median(dry)-median(truth)+median(wrap)-median(tool), "estimated-overhead-ms")
	b.ReportMetric(0, "ns/op")
}

// shellQuote quotes one word for sh (the test tool's path has no quote).
func shellQuote(s string) string { return "'" + s + "'" }

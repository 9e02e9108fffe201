// run_cancel_test.go checks that stopping the run command stops the tool
// on the host: after --timeout (in process, one host and --all) and after
// SIGINT to the built binary, no process of the tool is left (pgrep). The
// binary test is also the end-to-end one: a registry binary, agents
// registered over HTTP, the run binary's output and exit statuses.

package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/internal/sshtest"
)

// slowScript is a tool that starts a child (which starts a grandchild),
// says "ready" once both run, and runs until stopped. Every process has
// the script's path, and so its marker, in its command line.
const slowScript = "#!/bin/sh\n" +
	"case $1 in\n" +
	"child) \"$0\" grandchild & while :; do sleep 1; done ;;\n" +
	"grandchild) while :; do sleep 1; done ;;\n" +
	"esac\n" +
	"\"$0\" child &\n" +
	"while ! pgrep -f \"$0 grandchild\" >/dev/null; do sleep 0.05; done\n" +
	"echo ready\n" +
	"while :; do sleep 1; done\n"

// newMarker returns a string that appears in no other process.
func newMarker() string {
	var b [6]byte
	rand.Read(b[:])
	return "rsmark" + hex.EncodeToString(b[:])
}

// toolProcesses returns the processes whose command line has m.
func toolProcesses(t *testing.T, m string) string {
	out, err := exec.Command("pgrep", "-af", m).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 1 {
		return ""
	}
	if err != nil {
		t.Errorf("pgrep: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// waitNoProcess waits until no process has m; after d it fails the test
// and kills, by pid, those left.
func waitNoProcess(t *testing.T, m string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := toolProcesses(t, m)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of the tool left %v after the run stopped:\n%s", d, left)
			for _, line := range strings.Split(left, "\n") {
				if pid, err := strconv.Atoi(strings.Fields(line)[0]); err == nil {
					syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the process table: there is nothing to wait on
	}
}

func needPgrep(t *testing.T) {
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("no pgrep (procps): cannot look for processes left behind")
	}
}

func TestRunCommandTimeout(t *testing.T) {
	needPgrep(t)
	f := newRunFixture(t, false)
	m := newMarker()
	slow := f.s.Script(t, "slow-"+m, slowScript)
	f.r.add(
		testAgent{id: "t1", name: "ops", host: "web-1", tools: []string{tool("slow", slow)}},
		testAgent{id: "t2", name: "ops", host: "web-2", tools: []string{tool("slow", slow)}},
	)
	for _, tt := range []struct {
		name string
		args []string
		want []string // in stderr
	}{
		// Long enough for ssh and the tool to start on a loaded machine.
		{"one host", []string{"--host", "web-1", "--timeout", "3s", "slow"},
			[]string{"runspec-registry: slow on web-1 stopped: --timeout reached (the command on the host was stopped too)"}},
		{"--all", []string{"--all", "--timeout", "3", "slow"},
			[]string{"\nweb-1  -       ", "\nweb-2  -       ", "stopped", "2 hosts: 0 succeeded, 2 failed", "runspec-registry: stopped: --timeout reached"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if testing.Short() && tt.name == "--all" {
				t.Skip("-short: one host is enough")
			}
			start := time.Now()
			res := f.cmd(t, tt.args...)
			if res.status != statusTimeout {
				t.Errorf("status %d, want %d; stderr %q", res.status, statusTimeout, res.stderr)
			}
			if d := time.Since(start); d > 15*time.Second {
				t.Errorf("the run took %v to stop", d)
			}
			for _, want := range tt.want {
				if !strings.Contains(res.stderr, want) {
					t.Errorf("stderr %q has no %q", res.stderr, want)
				}
			}
			if !strings.Contains(res.stdout, "ready") {
				t.Errorf("stdout %q: the tool never ran", res.stdout)
			}
			waitNoProcess(t, m, 10*time.Second)
		})
	}
}

// TestRunBinaryEndToEnd builds the command and runs it as users do: a
// registry binary, an agent registered over HTTP, and the run binary
// against both; then SIGINT to the run binary stops the tool on the host.
func TestRunBinaryEndToEnd(t *testing.T) {
	needPgrep(t)
	bin := buildBinary(t) // skips with -short
	s := sshtest.Start(t, sshtest.Options{})
	reg := start(t, bin, nil, "--in-memory")
	m := newMarker()
	slow := s.Script(t, "slow-"+m, slowScript)
	exit3 := s.Script(t, "exit3", "#!/bin/sh\necho out; echo err >&2; exit 3\n")
	post := func(path string, body any) {
		b, _ := json.Marshal(body)
		resp, err := http.Post(reg.url+path, "application/json", strings.NewReader(string(b)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}
	post("/instances", map[string]any{"instance_id": "e2e", "name": "ops", "version": "1", "host": "web-1"})
	post("/instances/e2e/tools", map[string]any{"tools": []json.RawMessage{
		json.RawMessage(tool("argv", s.Tool)), json.RawMessage(tool("exit3", exit3)), json.RawMessage(tool("slow", slow)),
	}})
	runBin := func(args ...string) *exec.Cmd {
		cmd := exec.CommandContext(t.Context(), bin, append([]string{"run", "--ssh-config", s.Config}, args...)...)
		cmd.Env = append(os.Environ(), "RUNSPEC_REGISTRY_URL="+reg.url)
		return cmd
	}

	out, err := runBin("argv", "--message", "it's $(id)", "--tag", "a b").Output()
	if err != nil {
		t.Fatalf("run argv: %v", err)
	}
	got, err := sshtest.ParseTool(out)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"--message", "it's $(id)", "--tag", "a b"}, got.Args); diff != "" {
		t.Errorf("arguments mismatch (-want +got):\n%s", diff)
	}

	cmd := runBin("exit3")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err = cmd.Output()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || string(out) != "out\n" || stderr.String() != "err\n" {
		t.Errorf("run exit3: %v, stdout %q, stderr %q; want exit status 3 and the tool's output only", err, out, stderr.String())
	}

	cmd = runBin("slow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "ready" {
				ready <- nil
				return
			}
		}
		ready <- fmt.Errorf("no ready line: %v", sc.Err())
	}()
	select {
	case err := <-ready:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the slow tool did not say ready within 20s")
	}
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	err = cmd.Wait()
	if !errors.As(err, &ee) || ee.ExitCode() != statusInterrupted {
		t.Errorf("after SIGINT: %v, want exit status %d; stderr %q", err, statusInterrupted, stderr.String())
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("run took %v to exit after SIGINT", d)
	}
	if !strings.Contains(stderr.String(), "slow on web-1 stopped: interrupted (the command on the host was stopped too)") {
		t.Errorf("stderr %q does not say it stopped", stderr.String())
	}
	waitNoProcess(t, m, 10*time.Second)
}

// ssh_test.go runs plans through the system's ssh client against a real
// sshd (internal/sshtest): each row of the table, values that must arrive
// byte for byte, hostile records, exit statuses, an unreachable host, the
// command's own standard input, and a registry answer with two entries on
// one host. Cancellation has its own file, cancel_test.go.

package run_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/sshtest"
	"github.com/runspec/registry/run"
)

// toolSchema is the schema of the test host's argument-printing tool.
const toolSchema = `{"type":"object","properties":{
	"message":{"type":"string"},
	"tag":{"type":"array","items":{"type":"string"}},
	"flag":{"type":"boolean"},
	"count":{"type":"integer"}
}}`

// fixture is a test host: the server, users to become (empty when not
// root), and a runner that logs in as the test's user.
type fixture struct {
	s      *sshtest.Server
	r      *run.Runner
	target string // a user to become with sudo -u and su; "" when not root
	login  string // a non-root user to log in as, allowed to sudo to target; "" when not root
}

// newFixture starts the server and, as root, creates the users. The
// users exist until the test ends: create the fixture in the top-level
// test, before parallel subtests (useradd locks /etc/passwd).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{s: sshtest.Start(t, sshtest.Options{})}
	f.r = newRunner(t, run.Options{ConfigFile: f.s.Config})
	if os.Geteuid() == 0 {
		f.target = sshtest.NewUser(t)
		f.login = sshtest.NewUser(t)
		sshtest.AllowSudo(t, f.s.User, f.target)
		sshtest.AllowSudo(t, f.login, f.target)
	}
	return f
}

// row is a way to run a command: a row of the package documentation's
// table, with the user it should run as.
type row struct {
	name          string
	login         string // Options.User; "" for the test's user
	runAs, method string
	flags         string
	env           []string
}

// rows returns the rows that can run here: all of them as root, only the
// first ones otherwise.
func (f *fixture) rows(t *testing.T) []row {
	rows := []row{
		{name: "as the SSH user"},
		{name: "as the SSH user, with env", env: []string{"SSHTEST_A=a b", "SSHTEST_B=$(id) 'x'"}},
	}
	if f.target == "" {
		t.Log("not root: the rows that change user are skipped")
		return rows
	}
	return append(rows,
		row{name: "sudo -u", runAs: f.target},
		row{name: "sudo -H -n -u", runAs: f.target, method: "sudo", flags: "-H -n"},
		row{name: "sudo -u env", runAs: f.target, method: "sudo", env: []string{"SSHTEST_A=a b", "SSHTEST_B=$(id) 'x'"}},
		row{name: "su -c", runAs: f.target, method: "su"},
		row{name: "su -l -c", runAs: f.target, method: "su", flags: "-l"},
		row{name: "su -c env", runAs: f.target, method: "su", env: []string{"SSHTEST_A=a b", "SSHTEST_B=$(id) 'x'"}},
		row{name: "logged in as a user who may sudo", login: f.login, runAs: f.target, method: "sudo", flags: "-n"},
	)
}

// fewRows returns the rows that differ in how the command line is
// quoted: as the SSH user, through sudo, and through su with and without
// env (quoted twice, and three times); with -short, only the first and
// the last.
func (f *fixture) fewRows(t *testing.T) []row {
	var few []row
	for _, rw := range f.rows(t) {
		switch rw.name {
		case "sudo -u", "su -c":
			if testing.Short() {
				continue
			}
			fallthrough
		case "as the SSH user", "su -c env":
			few = append(few, rw)
		}
	}
	return few
}

// user is the user the row's command runs as.
func (rw row) user(f *fixture) string {
	switch {
	case rw.runAs != "":
		return rw.runAs
	case rw.login != "":
		return rw.login
	}
	return f.s.User
}

// runner is the runner for the row.
func (rw row) runner(t *testing.T, f *fixture) *run.Runner {
	if rw.login == "" {
		return f.r
	}
	return newRunner(t, run.Options{ConfigFile: f.s.Config, User: rw.login})
}

// entry is the row's entry on web-1 for command.
func (rw row) entry(command string) registry.ToolHost {
	h := entry(command, rw.runAs, rw.method, rw.flags)
	h.Host = "web-1"
	return h
}

// result is what a run gave.
type result struct {
	stdout, stderr string
	status         int
	err            error
}

func runIt(t *testing.T, r *run.Runner, p *run.Plan) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	status, err := r.Run(t.Context(), p, &stdout, &stderr)
	return result{stdout.String(), stderr.String(), status, err}
}

// runTool plans a call of the test tool with the row and runs it.
func (f *fixture) runTool(t *testing.T, rw row, args map[string]any) (sshtest.ToolOutput, result) {
	t.Helper()
	h := rw.entry(f.s.Tool)
	tool := registry.Tool{Name: "argv", InputSchema: json.RawMessage(toolSchema), Hosts: []registry.ToolHost{h}}
	r := rw.runner(t, f)
	p, err := r.Plan(run.Call{Tool: tool, Host: h, Args: args, Env: rw.env})
	if err != nil {
		t.Fatal(err)
	}
	res := runIt(t, r, p)
	if res.err != nil {
		t.Fatalf("run %s: status %d: %v\nstderr: %s\nsshd: %s", p.Command, res.status, res.err, res.stderr, f.s.Logs())
	}
	out, err := sshtest.ParseTool([]byte(res.stdout))
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, res.stderr)
	}
	return out, res
}

// TestRunRows runs the tool through every row of the table.
func TestRunRows(t *testing.T) {
	f := newFixture(t)
	args := map[string]any{"message": "hello world", "tag": []any{"a", "b"}, "flag": true, "count": 3}
	for _, rw := range f.rows(t) {
		t.Run(rw.name, func(t *testing.T) {
			t.Parallel()
			got, res := f.runTool(t, rw, args)
			want := sshtest.ToolOutput{
				Args: []string{"--message", "hello world", "--tag", "a", "--tag", "b", "--flag", "--count", "3"},
				User: rw.user(f),
				Env:  map[string]string{},
			}
			for _, kv := range rw.env {
				k, v, _ := strings.Cut(kv, "=")
				want.Env[k] = v
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tool output mismatch (-want +got):\n%s", diff)
			}
			if res.status != 0 || res.stderr != "" {
				t.Errorf("status %d, stderr %q; want 0 and nothing", res.status, res.stderr)
			}
		})
	}
}

// TestRunBecomeFlags checks that the become flags reach the become
// method, with one whose effect shows: sudo -P keeps the SSH user's
// (root's) supplementary groups, without it the target's own apply. (-H
// shows nothing on sudo 1.9, which sets HOME to the target's home anyway;
// TestRunRows runs it.)
func TestRunBecomeFlags(t *testing.T) {
	f := newFixture(t)
	if f.target == "" {
		t.Skip("not root: no user to become")
	}
	script := f.s.Script(t, "groups", "#!/bin/sh\nid -G\n")
	groups := func(flags string) []string {
		h := entry(script, f.target, "sudo", flags)
		p, err := f.r.Plan(run.Call{Tool: registry.Tool{Name: "groups", Hosts: []registry.ToolHost{h}}, Host: h})
		if err != nil {
			t.Fatal(err)
		}
		res := runIt(t, f.r, p)
		if res.err != nil {
			t.Fatalf("%s: %v\n%s", p.Command, res.err, res.stderr)
		}
		return strings.Fields(res.stdout)
	}
	if got := groups("-P"); !slices.Contains(got, "0") {
		t.Errorf("sudo -P: groups %v, want root's group 0 kept", got)
	}
	if got := groups("-H"); slices.Contains(got, "0") {
		t.Errorf("sudo -H: groups %v, want the target's only", got)
	}
}

// hostile are argument values that must arrive byte for byte.
var hostileValues = []string{
	"two words", "it's", "'", `"`, `\`, `\'`, "$(id)", "${HOME}", "`id`", "; id", "a && id", "a || id", "a | id",
	"a\nid", "\n", "tab\there", "*", "?", "~", "#x", "-rf", "--force", "-", "", "A=b", "!", "{a,b}", "> /tmp/x",
	"héllo wörld", "日本語", "🙂", "' ; touch /tmp/pwned ; '", `"'"'"'`,
}

// TestRunValues checks that every argument value arrives byte for byte,
// through each row (su quotes the command line twice).
func TestRunValues(t *testing.T) {
	f := newFixture(t)
	items := make([]any, len(hostileValues))
	want := []string{"--message", strings.Join(hostileValues, "")} // the schema's order
	for i, v := range hostileValues {
		items[i] = v
		want = append(want, "--tag", v)
	}
	rows := f.rows(t)
	if testing.Short() {
		rows = f.fewRows(t)
	}
	for _, rw := range rows {
		t.Run(rw.name, func(t *testing.T) {
			t.Parallel()
			got, _ := f.runTool(t, rw, map[string]any{"tag": items, "message": strings.Join(hostileValues, "")})
			if diff := cmp.Diff(want, got.Args); diff != "" {
				t.Errorf("arguments mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunHostile checks records that try to run something else: each is
// refused, or runs as inert data, and the file that an injection would
// create never appears.
func TestRunHostile(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // so that an injection as any user would succeed
		t.Fatal(err)
	}
	pwned := filepath.Join(dir, "pwned")
	touch := "touch " + pwned

	// Refused: nothing is built, so nothing can run.
	refused := []struct {
		name string
		host registry.ToolHost
		want error
	}{
		{"x-run-as root; id", entry("/bin/echo", "root; "+touch, "", ""), run.ErrRunAs},
		{"x-become-method sh -c", entry("/bin/echo", "root", "sh -c", ""), run.ErrBecomeMethod},
		{"x-become-flags with a shell", entry("/bin/echo", "root", "sudo", "-H /bin/sh -c '"+touch+"' --"), run.ErrBecomeFlag},
		{"a host that is an ssh option", func() registry.ToolHost {
			h := entry("/bin/echo", "", "", "")
			h.Host = "-oProxyCommand=" + touch
			return h
		}(), run.ErrHost},
		{"an x-command that is an option", entry("-oProxyCommand="+touch, "", "", ""), run.ErrCommand},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			tool := registry.Tool{Name: "x", Hosts: []registry.ToolHost{tt.host}}
			if p, err := f.r.Plan(run.Call{Tool: tool, Host: tt.host}); !errors.Is(err, tt.want) {
				t.Fatalf("plan %v, err %v; want %v", p, err, tt.want)
			}
		})
	}

	// Inert: the command is one word that names no program.
	commands := []string{"/bin/echo; " + touch, "$(" + touch + ")", "`" + touch + "`"}
	for _, rw := range f.fewRows(t) {
		for _, command := range commands {
			t.Run(rw.name+"/"+command, func(t *testing.T) {
				t.Parallel()
				h := rw.entry(command)
				tool := registry.Tool{Name: "x", Hosts: []registry.ToolHost{h}}
				r := rw.runner(t, f)
				p, err := r.Plan(run.Call{Tool: tool, Host: h, Env: rw.env})
				if err != nil {
					t.Fatal(err)
				}
				res := runIt(t, r, p)
				if res.status == 0 || !errors.Is(res.err, run.ErrExitStatus) {
					t.Errorf("%s: status %d, err %v; want the command not found", p.Command, res.status, res.err)
				}
				// The one word is looked up as a program: not found, or a
				// path through directories the user may not enter.
				if !strings.Contains(res.stderr, "not found") && !strings.Contains(res.stderr, "No such file") &&
					!strings.Contains(res.stderr, "Permission denied") {
					t.Errorf("%s: stderr %q, want the program not found", p.Command, res.stderr)
				}
			})
		}
	}

	// Values that try the same through the arguments.
	for _, rw := range f.fewRows(t) {
		t.Run(rw.name+"/arguments", func(t *testing.T) {
			t.Parallel()
			values := []any{"; " + touch, "$(" + touch + ")", "`" + touch + "`", "' ; " + touch + " ; '", "\n" + touch + "\n"}
			got, _ := f.runTool(t, rw, map[string]any{"tag": values})
			if len(got.Args) != 2*len(values) {
				t.Errorf("arguments %q, want %d", got.Args, 2*len(values))
			}
		})
	}
	t.Cleanup(func() { // after the parallel subtests
		if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists (err %v): an injection ran", pwned, err)
		}
	})
}

// TestRunExitStatus checks that statuses propagate and that ssh's own
// failure is told apart.
func TestRunExitStatus(t *testing.T) {
	f := newFixture(t)
	script := f.s.Script(t, "exit3", "#!/bin/sh\necho out; echo err >&2; exit 3\n")
	for _, rw := range f.fewRows(t) {
		t.Run(rw.name, func(t *testing.T) {
			t.Parallel()
			h := rw.entry(script)
			r := rw.runner(t, f)
			p, err := r.Plan(run.Call{Tool: registry.Tool{Name: "exit3", Hosts: []registry.ToolHost{h}}, Host: h})
			if err != nil {
				t.Fatal(err)
			}
			res := runIt(t, r, p)
			var ee *run.ExitError
			if res.status != 3 || !errors.As(res.err, &ee) || ee.Status != 3 || errors.Is(res.err, run.ErrSSH) {
				t.Fatalf("status %d, err %v; want 3, an *ExitError that is not ErrSSH", res.status, res.err)
			}
			// stdout and stderr stay apart (su adds nothing on success).
			if res.stdout != "out\n" || res.stderr != "err\n" {
				t.Errorf("stdout %q, stderr %q; want \"out\\n\" and \"err\\n\"", res.stdout, res.stderr)
			}
		})
	}
}

func TestRunUnreachable(t *testing.T) {
	f := newFixture(t)
	h := entry(f.s.Tool, "", "", "")
	h.Host = f.s.Down
	p, err := f.r.Plan(run.Call{Tool: registry.Tool{Name: "argv", Hosts: []registry.ToolHost{h}}, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	res := runIt(t, f.r, p)
	var ee *run.ExitError
	if res.status != 255 || !errors.Is(res.err, run.ErrSSH) || !errors.As(res.err, &ee) {
		t.Fatalf("status %d, err %v; want 255 and ErrSSH", res.status, res.err)
	}
	if !strings.Contains(ee.Stderr, "Connection refused") || !strings.Contains(res.err.Error(), "Connection refused") {
		t.Errorf("error %q does not say why ssh failed", res.err)
	}
	if !strings.Contains(res.err.Error(), "ssh to down failed") {
		t.Errorf("error %q does not name the host", res.err)
	}
}

// TestRunRefusedBeforeConnecting checks that arguments that the schema
// rejects never reach the host: sshd sees no connection.
func TestRunRefusedBeforeConnecting(t *testing.T) {
	f := newFixture(t)
	h := entry(f.s.Tool, "", "", "")
	tool := registry.Tool{Name: "argv", InputSchema: json.RawMessage(toolSchema), Hosts: []registry.ToolHost{h}}
	before := strings.Count(f.s.Logs(), "Accepted publickey")
	// One run that connects, to show that the count moves.
	p, err := f.r.Plan(run.Call{Tool: tool, Host: h, Args: map[string]any{"count": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if res := runIt(t, f.r, p); res.err != nil {
		t.Fatal(res.err)
	}
	connected := strings.Count(f.s.Logs(), "Accepted publickey")
	if connected != before+1 {
		t.Fatalf("sshd logged %d logins for one run", connected-before)
	}
	_, err = f.r.Plan(run.Call{Tool: tool, Host: h, Args: map[string]any{"count": "three", "colour": "red"}})
	var ae *run.ArgsError
	if !errors.As(err, &ae) || len(ae.Problems) != 2 {
		t.Fatalf("err = %v, want an *ArgsError with two problems", err)
	}
	if n := strings.Count(f.s.Logs(), "Accepted publickey"); n != connected {
		t.Errorf("sshd logged %d more logins after a refused plan", n-connected)
	}
}

// TestRunStdin checks that the command's standard input is not the
// caller's: a command that reads it gets end of input at once.
func TestRunStdin(t *testing.T) {
	f := newFixture(t)
	script := f.s.Script(t, "reader", "#!/bin/sh\nn=$(cat | wc -c); echo read $n\n")
	h := entry(script, "", "", "")
	p, err := f.r.Plan(run.Call{Tool: registry.Tool{Name: "reader", Hosts: []registry.ToolHost{h}}, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	res := runIt(t, f.r, p)
	if res.err != nil || strings.TrimSpace(res.stdout) != "read 0" {
		t.Fatalf("stdout %q, err %v; want the command to read nothing", res.stdout, res.err)
	}
}

// TestRunDryRun checks that the printed plan is the exact command: a
// shell running it gives what Run gives. Its standard input stays open, as
// a terminal's does: at end of input the wrapper stops the command.
func TestRunDryRun(t *testing.T) {
	f := newFixture(t)
	h := entry(f.s.Tool, "", "", "")
	tool := registry.Tool{Name: "argv", InputSchema: json.RawMessage(toolSchema), Hosts: []registry.ToolHost{h}}
	p, err := f.r.Plan(run.Call{Tool: tool, Host: h, Args: map[string]any{"tag": []any{"it's", "$(id)", "a\nb"}}})
	if err != nil {
		t.Fatal(err)
	}
	res := runIt(t, f.r, p)
	if res.err != nil {
		t.Fatal(res.err)
	}
	in, keep, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer keep.Close()
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", p.String())
	cmd.Stdin = in
	out, err := cmd.Output()
	in.Close()
	if err != nil {
		t.Fatalf("sh -c %s: %v", p, err)
	}
	if string(out) != res.stdout {
		t.Errorf("the printed plan gave %q, Run gave %q", out, res.stdout)
	}
}

// TestRunTwoEntriesOnOneHost reads a tool from a registry where two
// agents on web-1 registered it with different commands: Select refuses,
// naming both, and an instance id runs that one.
func TestRunTwoEntriesOnOneHost(t *testing.T) {
	f := newFixture(t)
	other := f.s.Script(t, "other", "#!/bin/sh\necho other\n")
	ctx := t.Context()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for id, command := range map[string]string{"agent-a": f.s.Tool, "agent-b": other} {
		if err := reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: "web-1"}); err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(map[string]any{"name": "argv", "inputSchema": json.RawMessage(toolSchema), "x-command": command})
		if err := reg.UpdateTools(ctx, id, []json.RawMessage{b}); err != nil {
			t.Fatal(err)
		}
	}
	tool, _, err := reg.Tool(ctx, "argv", registry.Filter{ActiveOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	_, err = run.Select(tool, "web-1", "")
	var he *run.HostError
	if !errors.Is(err, run.ErrAmbiguous) || !errors.As(err, &he) {
		t.Fatalf("err = %v, want ErrAmbiguous", err)
	}
	if diff := cmp.Diff([]string{"agent-a", "agent-b"}, he.InstanceIDs); diff != "" {
		t.Errorf("instance ids mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(err.Error(), "agent-a, agent-b") {
		t.Errorf("message %q does not name both instances", err)
	}
	h, err := run.Select(tool, "web-1", "agent-b")
	if err != nil {
		t.Fatal(err)
	}
	p, err := f.r.Plan(run.Call{Tool: tool, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if res := runIt(t, f.r, p); res.err != nil || res.stdout != "other\n" || p.InstanceID != "agent-b" {
		t.Errorf("ran %s (%s): %q, %v; want agent-b's command", p.Command, p.InstanceID, res.stdout, res.err)
	}
	if _, err := run.Select(tool, "web-9", ""); !errors.Is(err, run.ErrUnknownHost) || !strings.Contains(err.Error(), "web-1") {
		t.Errorf("unknown host: %v, want ErrUnknownHost listing web-1", err)
	}
}

// TestRunContextDoneBefore checks that a context already done starts
// nothing.
func TestRunContextDoneBefore(t *testing.T) {
	f := newFixture(t)
	h := entry(f.s.Tool, "", "", "")
	p, err := f.r.Plan(run.Call{Tool: registry.Tool{Name: "argv", Hosts: []registry.ToolHost{h}}, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if status, err := f.r.Run(ctx, p, nil, nil); status != -1 || !errors.Is(err, context.Canceled) {
		t.Errorf("status %d, err %v; want -1 and context.Canceled", status, err)
	}
}

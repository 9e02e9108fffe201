// run_test.go runs tools with the run command, through the real ssh client
// against a throwaway sshd (internal/sshtest) and an in-process registry:
// each row of the run table, argument values that must arrive byte for
// byte, hostile records, choosing hosts (--host, --any, --all, --label,
// --instance), exit statuses, an unreachable host, schema violations
// refused before any connection, --dry-run and which. Cancellation and
// the binary end to end are in run_cancel_test.go.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/client"
	"github.com/runspec/registry/internal/sshtest"
	remote "github.com/runspec/registry/run" // the run package; run is a name of this package's tests
)

// argvSchema is the schema of the test host's argument-printing tool.
const argvSchema = `{"type":"object","properties":{
	"message":{"type":"string"},
	"tag":{"type":"array","items":{"type":"string"}},
	"flag":{"type":"boolean"},
	"count":{"type":"integer"}
}}`

// runFixture is the test host, the registry, and (as root) users to
// become and to log in as.
type runFixture struct {
	s      *sshtest.Server
	r      *testRegistry
	target string // a user to become with sudo -u and su; "" when not root
	login  string // a non-root user to log in as, allowed to sudo to target
}

// newRunFixture starts sshd and a registry, and with users (as root) the
// users of the rows that change user. Create it in the top-level test,
// before parallel subtests (useradd locks /etc/passwd).
func newRunFixture(t *testing.T, users bool) *runFixture {
	t.Helper()
	f := &runFixture{s: sshtest.Start(t, sshtest.Options{}), r: newTestRegistry(t)}
	if users && os.Geteuid() == 0 {
		f.target = sshtest.NewUser(t)
		f.login = sshtest.NewUser(t)
		sshtest.AllowSudo(t, f.s.User, f.target)
		sshtest.AllowSudo(t, f.login, f.target)
	}
	return f
}

// tool is a tool object with the given execution fields, in the order
// name, command, run-as, method, flags ("" leaves a field out).
func tool(name, command string, fields ...string) string {
	m := map[string]any{"name": name, "inputSchema": json.RawMessage(argvSchema), "x-command": command}
	for i, k := range []string{"x-run-as", "x-become-method", "x-become-flags"} {
		if i < len(fields) && fields[i] != "" {
			m[k] = fields[i]
		}
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// cmd runs the run command (or which, with args[0]) against the fixture.
func (f *runFixture) cmd(t *testing.T, args ...string) cliResult {
	t.Helper()
	name, rest := "run", args
	if len(args) > 0 && (args[0] == "which" || args[0] == "run") {
		name, rest = args[0], args[1:]
	}
	return runCLI(t.Context(), t, append([]string{name, "--registry", f.r.url, "--ssh-config", f.s.Config}, rest...)...)
}

// logins is the number of logins sshd accepted so far.
func (f *runFixture) logins() int { return strings.Count(f.s.Logs(), "Accepted publickey") }

// runRow is a way to run the tool: a row of the run table.
type runRow struct {
	name  string
	tool  string   // the tool registered for the row
	login string   // --ssh-user
	env   []string // --env
	user  string   // who the tool runs as
}

// rows registers a tool per row on web-1 and returns the rows that can run
// here (all of them as root).
func (f *runFixture) rows(t *testing.T) []runRow {
	t.Helper()
	env := []string{"SSHTEST_A=a b", "SSHTEST_B=$(id) 'x' \"y\" \\z"}
	tools := []string{tool("argv", f.s.Tool)}
	rows := []runRow{
		{name: "as the SSH user", tool: "argv", user: f.s.User},
		{name: "as the SSH user, with env", tool: "argv", env: env, user: f.s.User},
	}
	if f.target != "" {
		tools = append(tools,
			tool("argv-sudo", f.s.Tool, f.target),
			tool("argv-sudo-flags", f.s.Tool, f.target, "sudo", "-H -n"),
			tool("argv-su", f.s.Tool, f.target, "su"),
			tool("argv-su-l", f.s.Tool, f.target, "su", "-l"),
		)
		rows = append(rows,
			runRow{name: "sudo -u", tool: "argv-sudo", user: f.target},
			runRow{name: "sudo -H -n -u", tool: "argv-sudo-flags", user: f.target},
			runRow{name: "sudo -u env", tool: "argv-sudo", env: env, user: f.target},
			runRow{name: "su -c", tool: "argv-su", user: f.target},
			runRow{name: "su -l -c", tool: "argv-su-l", user: f.target},
			runRow{name: "su -c env", tool: "argv-su", env: env, user: f.target},
			runRow{name: "logged in as a user who may sudo", tool: "argv-sudo-flags", login: f.login, user: f.target},
		)
	} else {
		t.Log("not root: the rows that change user are skipped")
	}
	f.r.add(testAgent{id: "rows", name: "ops", host: "web-1", tools: tools})
	return rows
}

// runArgv runs the row's tool with args and reads what the tool printed.
func (f *runFixture) runArgv(t *testing.T, rw runRow, args ...string) sshtest.ToolOutput {
	t.Helper()
	flags := []string{"--host", "web-1"}
	if rw.login != "" {
		flags = append(flags, "--ssh-user", rw.login)
	}
	for _, e := range rw.env {
		flags = append(flags, "--env", e)
	}
	res := f.cmd(t, append(append(flags, rw.tool), args...)...)
	if res.status != 0 {
		t.Fatalf("status %d, stderr %q\nsshd: %s", res.status, res.stderr, f.s.Logs())
	}
	out, err := sshtest.ParseTool([]byte(res.stdout))
	if err != nil {
		t.Fatalf("%v\nstderr: %s", err, res.stderr)
	}
	return out
}

func TestRunCommandRows(t *testing.T) {
	f := newRunFixture(t, true)
	for _, rw := range f.rows(t) {
		t.Run(rw.name, func(t *testing.T) {
			t.Parallel()
			got := f.runArgv(t, rw, "--message", "hello world", "--tag", "a", "--tag", "b", "--flag", "--count", "3")
			want := sshtest.ToolOutput{
				Args: []string{"--message", "hello world", "--tag", "a", "--tag", "b", "--flag", "--count", "3"},
				User: rw.user, Env: map[string]string{},
			}
			for _, kv := range rw.env {
				k, v, _ := strings.Cut(kv, "=")
				want.Env[k] = v
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("tool output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// hostileValues are argument values that must arrive byte for byte.
var hostileValues = []string{
	"two words", "it's", "'", `"`, `\`, `\'`, "$(id)", "${HOME}", "`id`", "; id", "a && id", "a || id", "a | id",
	"a\nid", "\n", "tab\there", "*", "?", "~", "#x", "-rf", "--force", "-", "", "A=b", "!", "{a,b}", "> /tmp/x",
	"héllo wörld", "日本語", "🙂", "' ; touch /tmp/pwned ; '", `"'"'"'`, "--tag=x",
}

// TestRunCommandValues passes every hostile value through the command's
// flag form (--tag=VALUE, since a value may start with "--") and as
// --args-json, through the rows that quote differently.
func TestRunCommandValues(t *testing.T) {
	f := newRunFixture(t, true)
	want := []string{"--message", strings.Join(hostileValues, "")}
	words := []string{"--message=" + strings.Join(hostileValues, "")}
	for _, v := range hostileValues {
		want = append(want, "--tag", v)
		words = append(words, "--tag="+v)
	}
	asJSON, _ := json.Marshal(map[string]any{"message": strings.Join(hostileValues, ""), "tag": hostileValues})
	for _, rw := range f.rows(t) {
		switch rw.name {
		case "sudo -u", "su -c":
			if testing.Short() {
				continue
			}
		case "as the SSH user", "su -c env":
		default:
			continue
		}
		t.Run(rw.name+"/flags", func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(want, f.runArgv(t, rw, words...).Args); diff != "" {
				t.Errorf("arguments mismatch (-want +got):\n%s", diff)
			}
		})
		t.Run(rw.name+"/args-json", func(t *testing.T) {
			t.Parallel()
			flags := []string{"--host", "web-1", "--args-json", string(asJSON)}
			for _, e := range rw.env {
				flags = append(flags, "--env", e)
			}
			res := f.cmd(t, append(flags, rw.tool)...)
			out, err := sshtest.ParseTool([]byte(res.stdout))
			if res.status != 0 || err != nil {
				t.Fatalf("status %d, %v, stderr %q", res.status, err, res.stderr)
			}
			if diff := cmp.Diff(want, out.Args); diff != "" {
				t.Errorf("arguments mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRunCommandHostile registers records that try to run something else:
// each is refused before any connection, or runs as inert data, and the
// file an injection would create never appears.
func TestRunCommandHostile(t *testing.T) {
	f := newRunFixture(t, false)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil { // so that an injection as any user would succeed
		t.Fatal(err)
	}
	pwned := filepath.Join(dir, "pwned")
	touch := "touch " + pwned
	proxy := "-oProxyCommand=" + touch
	f.r.add(
		testAgent{id: "evil", name: "ops", host: "web-2", tools: []string{
			tool("evil-command", "/bin/echo; "+touch),
			tool("evil-subst", "$("+touch+")"),
			tool("evil-run-as", "/bin/echo", "root; "+touch),
			tool("evil-method", "/bin/echo", "root", "sh -c"),
			tool("evil-flags", "/bin/echo", "root", "sudo", "-H /bin/sh -c '"+touch+"' --"),
			tool("evil-option", proxy),
			tool("mixed", f.s.Tool),
		}},
		testAgent{id: "evil-host", name: "ops", host: proxy, tools: []string{tool("evil-host", "/bin/echo"), tool("mixed", f.s.Tool)}},
	)
	refused := []struct {
		name string
		args []string
		want string // in the message
	}{
		{"x-run-as root; touch", []string{"evil-run-as"}, `x-run-as "root; touch`},
		{"x-become-method sh -c", []string{"evil-method"}, `x-become-method "sh -c"`},
		{"x-become-flags with a shell", []string{"evil-flags"}, `flag '/bin/sh' is not allowed for sudo`},
		{"x-command that is an option", []string{"evil-option"}, `x-command "-oProxyCommand=`},
		{"a host that is an ssh option", []string{"--host=" + proxy, "evil-host"}, `host "-oProxyCommand=`},
		{"the only host is an ssh option", []string{"evil-host"}, `host "-oProxyCommand=`},
		{"--all with a host that is an ssh option", []string{"--all", "mixed"}, "nothing ran: 1 of 2 hosts cannot run the tool"},
	}
	before := f.logins()
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			res := f.cmd(t, tt.args...)
			if res.status != 1 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("status %d, stdout %q, stderr %q; want 1 and %q", res.status, res.stdout, res.stderr, tt.want)
			}
		})
	}
	if n := f.logins() - before; n != 0 {
		t.Errorf("refused records made %d logins", n)
	}
	// Inert: one word that names no program; the shell looks it up and
	// fails (127), nothing else runs.
	for _, name := range []string{"evil-command", "evil-subst"} {
		t.Run(name, func(t *testing.T) {
			res := f.cmd(t, name)
			if res.status != 127 || !strings.Contains(res.stderr, "not found") {
				t.Errorf("status %d, stderr %q; want 127 and the program not found", res.status, res.stderr)
			}
		})
	}
	if _, err := os.Stat(pwned); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v): an injection ran", pwned, err)
	}
}

// TestRunCommandHosts checks the choice of hosts: one active host, several
// (an error listing them), --host, --any, --label, --instance, two entries
// on one host that differ, an unknown host, an inactive host.
func TestRunCommandHosts(t *testing.T) {
	f := newRunFixture(t, false)
	say := func(word string) string { return f.s.Script(t, "say-"+word, "#!/bin/sh\necho "+word+"\n") }
	f.r.add(
		testAgent{id: "i1", name: "ops", host: "web-1", labels: map[string]string{"env": "prod"}, tools: []string{tool("hello", say("web-1")), tool("only", say("only"))}},
		testAgent{id: "i2", name: "ops", host: "web-2", labels: map[string]string{"env": "staging"}, tools: []string{tool("hello", say("web-2"))}},
		// Two agents on web-3 whose commands differ.
		testAgent{id: "i3a", name: "ops", host: "web-3", tools: []string{tool("twice", say("a"))}},
		testAgent{id: "i3b", name: "ci", host: "web-3", tools: []string{tool("twice", say("b"))}},
		testAgent{id: "i4", name: "ops", host: "old-1", tools: []string{tool("hello", say("old"))}, gone: true},
	)
	tests := []struct {
		name   string
		args   []string
		status int
		stdout string // exact
		stderr string // contained
	}{
		{"the one host", []string{"only"}, 0, "only\n", ""},
		{"several hosts", []string{"hello"}, 1, "", "tool hello is offered on 2 hosts: web-1, web-2; choose one with --host, or use --any or --all"},
		{"--host", []string{"--host", "web-2", "hello"}, 0, "web-2\n", ""},
		{"--label narrows to one", []string{"--label", "env=staging", "hello"}, 0, "web-2\n", ""},
		{"--label matches none", []string{"--label", "env=dev", "hello"}, 1, "", "tool hello: no instance offers the tool with the labels env=dev"},
		{"an unknown host", []string{"--host", "web-9", "hello"}, 1, "", "tool hello is not offered on host web-9; hosts that offer it: web-1, web-2"},
		{"an inactive host", []string{"--host", "old-1", "hello"}, 1, "", "hosts that offer it: web-1, web-2"},
		{"an unknown tool", []string{"nope"}, 1, "", "tool nope: no instance offers the tool"},
		{"entries that differ", []string{"--host", "web-3", "twice"}, 1, "", "instance ids: i3a, i3b"},
		{"entries that differ, no host", []string{"twice"}, 1, "", "instance ids: i3a, i3b"},
		{"--instance", []string{"--host", "web-3", "--instance", "i3b", "twice"}, 0, "b\n", ""},
		{"--instance alone", []string{"--instance", "i3a", "twice"}, 0, "a\n", ""},
		{"--instance unknown", []string{"--instance", "i9", "twice"}, 1, "", "tool twice has no active instance i9; its active instances: i3a on web-3, i3b on web-3"},
		{"--any with differing entries", []string{"--any", "twice"}, 1, "", "no host can run the tool"},
		{"--host and --all", []string{"--host", "web-1", "--all", "hello"}, 1, "", "--host and --all can't be used together"},
		{"--parallel without --all", []string{"--parallel", "3", "hello"}, 1, "", "--parallel goes with --all"},
		{"--parallel 0", []string{"--all", "--parallel", "0", "hello"}, 1, "", "--parallel 0: at least 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := f.cmd(t, tt.args...)
			if res.status != tt.status || res.stdout != tt.stdout || !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d, %q and %q", res.status, res.stdout, res.stderr, tt.status, tt.stdout, tt.stderr)
			}
		})
	}
	t.Run("--any", func(t *testing.T) {
		seen := map[string]bool{}
		for range 12 { // both hosts, with probability 1 - 2^-11
			res := f.cmd(t, "--any", "hello")
			if res.status != 0 {
				t.Fatalf("status %d: %s", res.status, res.stderr)
			}
			seen[strings.TrimSpace(res.stdout)] = true
			if len(seen) == 2 {
				break
			}
		}
		if diff := cmp.Diff(map[string]bool{"web-1": true, "web-2": true}, seen); diff != "" {
			t.Errorf("hosts --any ran on mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestRunCommandStatus checks exit statuses: the tool's, with stdout and
// stderr apart; ssh's 255 for an unreachable host, said so; --all over
// three hosts with one failing.
func TestRunCommandStatus(t *testing.T) {
	f := newRunFixture(t, false)
	exit3 := f.s.Script(t, "exit3", "#!/bin/sh\necho out; echo err >&2; exit 3\n")
	ok := f.s.Script(t, "ok", "#!/bin/sh\necho one; printf 'two\\nthree'; echo warn >&2\n")
	fail := f.s.Script(t, "fail", "#!/bin/sh\necho broken; exit 5\n")
	f.r.add(
		testAgent{id: "s1", name: "ops", host: "web-1", tools: []string{tool("exit3", exit3), tool("fleet", ok)}},
		testAgent{id: "s2", name: "ops", host: "web-2", tools: []string{tool("fleet", ok)}},
		testAgent{id: "s3", name: "ops", host: "web-3", tools: []string{tool("fleet", fail)}},
		testAgent{id: "s4", name: "ops", host: f.s.Down, tools: []string{tool("exit3", exit3)}},
	)
	t.Run("the tool's status", func(t *testing.T) {
		t.Parallel()
		res := f.cmd(t, "--host", "web-1", "exit3")
		if res.status != 3 || res.stdout != "out\n" || res.stderr != "err\n" {
			t.Errorf("status %d, stdout %q, stderr %q; want 3, the tool's output and nothing more", res.status, res.stdout, res.stderr)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		res := f.cmd(t, "--host", f.s.Down, "exit3")
		if res.status != 255 || !strings.Contains(res.stderr, "Connection refused") ||
			!strings.Contains(res.stderr, "ssh to down failed (exit status 255: ssh could not connect") {
			t.Errorf("status %d, stderr %q; want 255 and ssh's failure", res.status, res.stderr)
		}
	})
	t.Run("--all", func(t *testing.T) {
		t.Parallel()
		res := f.cmd(t, "--all", "--parallel", "2", "fleet")
		if res.status != 5 {
			t.Errorf("status %d, want 5 (the highest)", res.status)
		}
		lines := strings.Split(strings.TrimSuffix(res.stdout, "\n"), "\n")
		slices.Sort(lines)
		want := []string{"web-1: one", "web-1: three", "web-1: two", "web-2: one", "web-2: three", "web-2: two", "web-3: broken"}
		if diff := cmp.Diff(want, lines); diff != "" {
			t.Errorf("stdout lines mismatch (-want +got):\n%s", diff)
		}
		for _, want := range []string{"web-1: warn\n", "web-2: warn\n", "HOST   STATUS  DURATION", "\nweb-1  0       ", "\nweb-2  0       ", "\nweb-3  5       ", "3 hosts: 2 succeeded, 1 failed\n"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("stderr %q has no %q", res.stderr, want)
			}
		}
	})
	t.Run("--all, all succeed", func(t *testing.T) {
		t.Parallel()
		res := f.cmd(t, "--all", "--label", "env=none", "fleet")
		if res.status != 1 || !strings.Contains(res.stderr, "no instance offers the tool with the labels env=none") {
			t.Errorf("status %d, stderr %q", res.status, res.stderr)
		}
	})
}

// TestRunCommandRefusedBeforeConnecting checks that arguments the schema
// rejects never reach the host: sshd sees no login.
func TestRunCommandRefusedBeforeConnecting(t *testing.T) {
	f := newRunFixture(t, false)
	f.r.add(testAgent{id: "a", name: "ops", host: "web-1", tools: []string{tool("argv", f.s.Tool)}})
	before := f.logins()
	for _, args := range [][]string{
		{"argv", "--count", "three", "--colour", "red"},
		{"argv", "stray"},
		{"--args-json", `{"count":1.5}`, "argv"},
		{"--args-json", `[1]`, "argv"},
		{"--args-json", `{}`, "argv", "--count", "1"},
		{"--env", "1BAD=x", "argv"},
		{"--all", "argv", "--count", "x"},
	} {
		res := f.cmd(t, append([]string{"--host", "web-1"}, args...)...)
		if args[0] == "--all" {
			res = f.cmd(t, args...)
		}
		if res.status != 1 || res.stdout != "" || res.stderr == "" {
			t.Errorf("%q: status %d, stdout %q, stderr %q; want a refusal", args, res.status, res.stdout, res.stderr)
		}
	}
	res := f.cmd(t, "--host", "web-1", "argv", "--count", "three", "--colour", "red")
	for _, want := range []string{"invalid arguments for argv", "colour: not an argument of the tool", `count: "three" is not a number`} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr %q has no %q", res.stderr, want)
		}
	}
	if n := f.logins() - before; n != 0 {
		t.Errorf("refused calls made %d logins", n)
	}
	// One that runs, to show that the count moves.
	if res := f.cmd(t, "--host", "web-1", "argv", "--count", "1"); res.status != 0 || f.logins() != before+1 {
		t.Errorf("a valid call: status %d, %d logins", res.status, f.logins()-before)
	}
}

// TestRunCommandDryRunAndWhich checks that --dry-run prints, host by
// host, the exact ssh command line that run executes (the run package's
// plan for the registry's answer) and connects nowhere, and that which
// shows the same command lines.
func TestRunCommandDryRunAndWhich(t *testing.T) {
	f := newRunFixture(t, false)
	f.r.add(
		testAgent{id: "d1", name: "ops", host: "web-1", tools: []string{tool("argv", f.s.Tool, "oracle", "sudo", "-H")}},
		testAgent{id: "d2", name: "ops", host: "web-2", tools: []string{tool("argv", f.s.Tool)}},
		testAgent{id: "d3", name: "ops", host: "web-3", tools: []string{tool("argv", f.s.Tool, "root; id")}},
		testAgent{id: "d4", name: "ops", host: "old-1", tools: []string{tool("argv", f.s.Tool)}, gone: true},
	)
	runner, err := remote.New(remote.Options{ConfigFile: f.s.Config, User: "deploy"})
	if err != nil {
		t.Fatal(err)
	}
	answer, err := f.r.c.Tool(t.Context(), "argv", client.Filter{IncludeInactive: true})
	if err != nil {
		t.Fatal(err)
	}
	args := map[string]any{"message": "it's $(id)", "flag": true}
	plans := map[string]*remote.Plan{}
	for _, h := range answer.Hosts {
		if p, err := runner.Plan(remote.Call{Tool: answer, Host: h, Args: args, Env: []string{"A=b c"}}); err == nil {
			plans[h.Host] = p
		}
	}
	before := f.logins()
	call := []string{"--ssh-user", "deploy", "--env", "A=b c"}
	res := f.cmd(t, append(call, "--dry-run", "--host", "web-1", "argv", "--message", "it's $(id)", "--flag")...)
	if res.status != 0 || res.stdout != plans["web-1"].String()+"\n" {
		t.Errorf("--dry-run --host web-1: status %d, stderr %q\n got %s\nwant %s", res.status, res.stderr, res.stdout, plans["web-1"])
	}
	// --all refuses web-3's record: nothing runs, and nothing is printed.
	res = f.cmd(t, append(call, "--dry-run", "--all", "argv", "--message", "it's $(id)", "--flag")...)
	if res.status != 1 || !strings.Contains(res.stderr, `x-run-as "root; id"`) || res.stdout != "" {
		t.Errorf("--dry-run --all: status %d, stdout %q, stderr %q", res.status, res.stdout, res.stderr)
	}
	res = f.cmd(t, append(call, "--dry-run", "--all", "--label", "none=x", "argv")...)
	if res.status != 1 {
		t.Errorf("--dry-run --all --label none=x: status %d", res.status)
	}

	res = f.cmd(t, append([]string{"which"}, append(call, "argv", "--", "--message", "it's $(id)", "--flag")...)...)
	if res.status != 0 {
		t.Fatalf("which: status %d, stderr %q", res.status, res.stderr)
	}
	out := res.stdout
	for _, want := range []string{
		"argv\nhosts: 3 (+1 inactive)\n",
		"\nweb-1  active, last seen 12s ago\n", "  x-run-as         oracle\n", "  x-become-flags   -H\n",
		"  remote           " + plans["web-1"].Command + "\n", "  ssh              " + plans["web-1"].String() + "\n",
		"  remote           " + plans["web-2"].Command + "\n", "  ssh              " + plans["web-2"].String() + "\n",
		"\nweb-3  active, last seen 12s ago\n", `refused          run: refused: x-run-as "root; id" of instance d3`,
		"\nold-1  inactive, last seen 12s ago\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("which has no %q:\n%.3000s", want, out)
		}
	}
	// Active entries first.
	if i, j := strings.Index(out, "\nweb-3 "), strings.Index(out, "\nold-1 "); i < 0 || j < i {
		t.Errorf("which does not list the active hosts first:\n%s", out)
	}
	res = f.cmd(t, "which", "argv", "--output", "json")
	var js struct {
		Tool    string   `json:"tool"`
		Hosts   []string `json:"active_hosts"`
		Entries []struct {
			Host    string   `json:"host"`
			SSH     []string `json:"ssh"`
			Refused string   `json:"refused"`
		} `json:"entries"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &js); err != nil || js.Tool != "argv" || len(js.Entries) != 4 ||
		js.Entries[2].Refused == "" || len(js.Entries[0].SSH) == 0 {
		t.Errorf("which -o json: %v, %+v\n%s", err, js, res.stdout)
	}
	if diff := cmp.Diff([]string{"web-1", "web-2", "web-3"}, js.Hosts); diff != "" {
		t.Errorf("active hosts mismatch (-want +got):\n%s", diff)
	}
	if n := f.logins() - before; n != 0 {
		t.Errorf("--dry-run and which made %d logins", n)
	}
	// The printed line is the exact command: a shell running it gives
	// what run gives (with its standard input open, as a terminal's).
	res = f.cmd(t, "--dry-run", "--host", "web-2", "argv", "--tag", "a\nb", "--tag", "it's")
	got, err := shellOutput(t, res.stdout)
	if err != nil {
		t.Fatal(err)
	}
	ran := f.cmd(t, "--host", "web-2", "argv", "--tag", "a\nb", "--tag", "it's")
	if got != ran.stdout || ran.status != 0 {
		t.Errorf("the printed command gave %q, run gave %q (status %d)", got, ran.stdout, ran.status)
	}
}

// shellOutput runs a printed command line with /bin/sh, its standard input
// kept open as a terminal's is, and returns its standard output.
func shellOutput(t *testing.T, line string) (string, error) {
	t.Helper()
	in, keep, err := os.Pipe()
	if err != nil {
		return "", err
	}
	defer keep.Close()
	cmd := exec.CommandContext(t.Context(), "/bin/sh", "-c", line)
	cmd.Stdin = in
	out, err := cmd.Output()
	in.Close()
	if err != nil {
		return "", fmt.Errorf("sh -c %s: %w", line, err)
	}
	return string(out), nil
}

func TestErrListOnOneLine(t *testing.T) {
	errA, errB := errors.New("web-1: user root refused"), errors.New("web-2: inactive")
	err := fmt.Errorf("nothing ran: %w", errList{errA, errB})
	if got, want := err.Error(), "nothing ran: web-1: user root refused; web-2: inactive"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Error("errors.Is does not find each error")
	}
}

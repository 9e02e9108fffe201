// plan_test.go checks plan building without a network: the rows of the
// table, the words of the arguments, the ssh command line, and every
// refusal of a record, an environment or the options.

package run_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/shell"
	"github.com/runspec/registry/run"
)

// str is a string execution field.
func str(s string) registry.ExecField { return registry.ExecField{Set: true, Value: s} }

// deploySchema is the schema of the tests' deploy tool.
const deploySchema = `{
	"type": "object",
	"properties": {
		"environment": {"type": "string", "enum": ["staging", "production"]},
		"dry-run": {"type": "boolean"},
		"tag": {"type": "array", "items": {"type": "string"}},
		"replicas": {"type": "integer", "minimum": 1},
		"ratio": {"type": "number"},
		"message": {"type": "string"},
		"config": {"type": "object"},
		"note": {"type": ["string", "null"]}
	},
	"required": ["environment"]
}`

func deployTool(hosts ...registry.ToolHost) registry.Tool {
	return registry.Tool{Name: "deploy", InputSchema: json.RawMessage(deploySchema), Hosts: hosts}
}

func entry(command, runAs, method, flags string) registry.ToolHost {
	h := registry.ToolHost{Host: "web-1", InstanceID: "i-1", Name: "ops", Active: true, Command: str(command)}
	if runAs != "" {
		h.RunAs = str(runAs)
	}
	if method != "" {
		h.BecomeMethod = str(method)
	}
	if flags != "" {
		h.BecomeFlags = str(flags)
	}
	return h
}

func newRunner(t testing.TB, o run.Options) *run.Runner {
	t.Helper()
	r, err := run.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestPlanRows(t *testing.T) {
	r := newRunner(t, run.Options{})
	args := map[string]any{"environment": "staging"}
	tests := []struct {
		name    string
		host    registry.ToolHost
		env     []string
		argv    []string
		command string
	}{
		{
			name:    "as the SSH user",
			host:    entry("/usr/local/bin/deploy", "", "", ""),
			argv:    []string{"/usr/local/bin/deploy", "--environment", "staging"},
			command: "/usr/local/bin/deploy --environment staging",
		},
		{
			name:    "as the SSH user with an environment",
			host:    entry("/usr/local/bin/deploy", "", "", ""),
			env:     []string{"REGION=eu west", "DEBUG=1"},
			argv:    []string{"/usr/local/bin/deploy", "--environment", "staging"},
			command: "REGION='eu west' DEBUG=1 /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "sudo, the default method",
			host:    entry("/usr/local/bin/deploy", "oracle", "", ""),
			argv:    []string{"sudo", "-u", "oracle", "/usr/local/bin/deploy", "--environment", "staging"},
			command: "sudo -u oracle /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "sudo with flags",
			host:    entry("/usr/local/bin/deploy", "oracle", "sudo", "-H -n"),
			argv:    []string{"sudo", "-H", "-n", "-u", "oracle", "/usr/local/bin/deploy", "--environment", "staging"},
			command: "sudo -H -n -u oracle /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "sudo with an environment",
			host:    entry("/usr/local/bin/deploy", "oracle", "sudo", "-H"),
			env:     []string{"REGION=eu west"},
			argv:    []string{"sudo", "-H", "-u", "oracle", "env", "REGION=eu west", "/usr/local/bin/deploy", "--environment", "staging"},
			command: "sudo -H -u oracle env 'REGION=eu west' /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "pbrun",
			host:    entry("/usr/local/bin/deploy", "oracle", "pbrun", ""),
			argv:    []string{"pbrun", "-u", "oracle", "/usr/local/bin/deploy", "--environment", "staging"},
			command: "pbrun -u oracle /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "dzdo",
			host:    entry("/usr/local/bin/deploy", "oracle", "dzdo", "-H"),
			argv:    []string{"dzdo", "-H", "-u", "oracle", "/usr/local/bin/deploy", "--environment", "staging"},
			command: "dzdo -H -u oracle /usr/local/bin/deploy --environment staging",
		},
		{
			name:    "su",
			host:    entry("/usr/local/bin/deploy", "oracle", "su", "-l"),
			argv:    []string{"su", "-l", "-c", "/usr/local/bin/deploy --environment staging", "oracle"},
			command: "su -l -c '/usr/local/bin/deploy --environment staging' oracle",
		},
		{
			name:    "su with an environment",
			host:    entry("/usr/local/bin/deploy", "oracle", "su", ""),
			env:     []string{"REGION=eu west"},
			argv:    []string{"su", "-c", `env 'REGION=eu west' /usr/local/bin/deploy --environment staging`, "oracle"},
			command: `su -c 'env '"'"'REGION=eu west'"'"' /usr/local/bin/deploy --environment staging' oracle`,
		},
		{
			name:    "a command with spaces is one word",
			host:    entry("/opt/my tools/deploy", "", "", ""),
			argv:    []string{"/opt/my tools/deploy", "--environment", "staging"},
			command: "'/opt/my tools/deploy' --environment staging",
		},
		{
			name:    "a method without a run-as user is unused",
			host:    entry("/usr/local/bin/deploy", "", "sudo", "-H"),
			argv:    []string{"/usr/local/bin/deploy", "--environment", "staging"},
			command: "/usr/local/bin/deploy --environment staging",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := r.Plan(run.Call{Tool: deployTool(tt.host), Host: tt.host, Args: args, Env: tt.env})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.argv, p.Argv); diff != "" {
				t.Errorf("argv mismatch (-want +got):\n%s", diff)
			}
			if p.Command != tt.command {
				t.Errorf("command\n got %s\nwant %s", p.Command, tt.command)
			}
			if tt.env == nil && p.Command != shell.Join(p.Argv) {
				t.Errorf("command %q is not the argv %q quoted", p.Command, p.Argv)
			}
		})
	}
}

func TestPlanSSH(t *testing.T) {
	r := newRunner(t, run.Options{
		SSH:        "/usr/bin/ssh",
		ConfigFile: "/etc/runspec/ssh_config",
		SSHOptions: []string{"ConnectTimeout=5", "BatchMode=no"},
		User:       "deploy",
	})
	h := entry("/usr/local/bin/deploy", "", "", "")
	p, err := r.Plan(run.Call{Tool: deployTool(h), Host: h, Args: map[string]any{"environment": "staging"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/ssh", "-o", "BatchMode=yes", "-T", "-F", "/etc/runspec/ssh_config",
		"-o", "ConnectTimeout=5", "-o", "BatchMode=no", "-l", "deploy", "--", "web-1"}
	if diff := cmp.Diff(want, p.SSH[:len(want)]); diff != "" {
		t.Errorf("ssh argv mismatch (-want +got):\n%s", diff)
	}
	if len(p.SSH) != len(want)+1 {
		t.Fatalf("ssh argv has %d words after the destination, want 1 (the remote command)", len(p.SSH)-len(want))
	}
	remote := p.SSH[len(want)]
	if !strings.HasPrefix(remote, "/bin/sh -c '") || !strings.HasSuffix(remote, " runspec "+shell.Quote(p.Command)) {
		t.Errorf("remote command %q is not the wrapper around %q", remote, p.Command)
	}
	if got := p.String(); got != shell.Join(p.SSH) {
		t.Errorf("String() = %q, want the ssh argv quoted", got)
	}
	if p.Tool != "deploy" || p.Host != "web-1" || p.InstanceID != "i-1" {
		t.Errorf("plan names %s on %s (%s), want deploy on web-1 (i-1)", p.Tool, p.Host, p.InstanceID)
	}
}

func TestPlanArgs(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/deploy", "", "", "")
	tests := []struct {
		name  string
		args  map[string]any
		words []string
		valid map[string]any
	}{
		{
			name:  "in the schema's order, booleans bare, arrays repeated",
			args:  map[string]any{"tag": []any{"a", "b"}, "dry-run": true, "environment": "staging", "message": "it's done; $(id)"},
			words: []string{"--environment", "staging", "--dry-run", "--tag", "a", "--tag", "b", "--message", "it's done; $(id)"},
			valid: map[string]any{"tag": []any{"a", "b"}, "dry-run": true, "environment": "staging", "message": "it's done; $(id)"},
		},
		{
			name:  "false and null (where the schema allows it) give nothing; _ for -",
			args:  map[string]any{"environment": "staging", "dry_run": false, "note": nil},
			words: []string{"--environment", "staging"},
			valid: map[string]any{"environment": "staging", "dry-run": false, "note": nil},
		},
		{
			name:  "numbers in their shortest form",
			args:  map[string]any{"environment": "staging", "replicas": float64(3), "ratio": 2.50},
			words: []string{"--environment", "staging", "--replicas", "3", "--ratio", "2.5"},
			valid: map[string]any{"environment": "staging", "replicas": json.Number("3"), "ratio": json.Number("2.5")},
		},
		{
			name:  "json.Number and Go integers",
			args:  map[string]any{"environment": "staging", "replicas": json.Number("40000000000000000001"), "ratio": 7},
			words: []string{"--environment", "staging", "--replicas", "40000000000000000001", "--ratio", "7"},
			valid: map[string]any{"environment": "staging", "replicas": json.Number("40000000000000000001"), "ratio": json.Number("7")},
		},
		{
			name:  "large and small numbers",
			args:  map[string]any{"environment": "staging", "ratio": 1e21, "replicas": json.Number("1.0e1")},
			words: []string{"--environment", "staging", "--replicas", "10", "--ratio", "1e+21"},
			valid: map[string]any{"environment": "staging", "ratio": json.Number("1e+21"), "replicas": json.Number("10")},
		},
		{
			name:  "a []string, an empty array, an empty string, a leading dash",
			args:  map[string]any{"environment": "staging", "tag": []string{"-x", ""}, "message": ""},
			words: []string{"--environment", "staging", "--tag", "-x", "--tag", "", "--message", ""},
			valid: map[string]any{"environment": "staging", "tag": []any{"-x", ""}, "message": ""},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := r.Plan(run.Call{Tool: deployTool(h), Host: h, Args: tt.args})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(append([]string{"/bin/deploy"}, tt.words...), p.Argv); diff != "" {
				t.Errorf("argv mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.valid, p.Args); diff != "" {
				t.Errorf("args mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanArgsRefused(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/deploy", "", "", "")
	tests := []struct {
		name     string
		args     map[string]any
		problems []run.Problem
	}{
		{
			name: "every violation, by field",
			args: map[string]any{"environment": "qa", "replicas": 0, "tag": []any{"a", 5}, "dry-run": "yes", "colour": "red"},
			problems: []run.Problem{
				{Field: "colour", Message: "not an argument of the tool (its arguments: environment, dry-run, tag, replicas, ratio, message, config, note)"},
				{Field: "dry-run", Message: "got string, want boolean"},
				{Field: "environment", Message: "value must be one of 'staging', 'production'"},
				{Field: "replicas", Message: "minimum: got 0, want 1"},
				{Field: "tag/1", Message: "got number, want string"},
			},
		},
		{
			name:     "null where the schema does not allow it",
			args:     map[string]any{"environment": "staging", "message": nil},
			problems: []run.Problem{{Field: "message", Message: "got null, want string"}},
		},
		{
			name:     "a required argument missing",
			args:     map[string]any{},
			problems: []run.Problem{{Field: "environment", Message: "required, but not given"}},
		},
		{
			name:     "an object",
			args:     map[string]any{"environment": "staging", "config": map[string]any{"a": 1}},
			problems: []run.Problem{{Field: "config", Message: "an object cannot be passed as a flag's value"}},
		},
		{
			name:     "an array in an array",
			args:     map[string]any{"environment": "staging", "tag": []any{[]any{"a"}}},
			problems: []run.Problem{{Field: "tag/0", Message: "an array inside an array cannot be passed as flags"}},
		},
		{
			name:     "a null item",
			args:     map[string]any{"environment": "staging", "tag": []any{nil}},
			problems: []run.Problem{{Field: "tag/0", Message: "an item of an array cannot be null"}},
		},
		{
			name:     "a NUL byte",
			args:     map[string]any{"environment": "staging", "message": "a\x00b"},
			problems: []run.Problem{{Field: "message", Message: "a NUL byte cannot be passed in a command's arguments"}},
		},
		{
			name:     "the same argument twice",
			args:     map[string]any{"environment": "staging", "dry-run": true, "dry_run": true},
			problems: []run.Problem{{Field: "dry_run", Message: "given twice (also as dry-run)"}},
		},
		{
			name:     "not a JSON value",
			args:     map[string]any{"environment": "staging", "message": struct{}{}},
			problems: []run.Problem{{Field: "message", Message: "a struct {} is not a JSON value"}},
		},
		{
			name:     "not a finite number",
			args:     map[string]any{"environment": "staging", "ratio": json.Number("1e999")},
			problems: []run.Problem{{Field: "ratio", Message: `"1e999" is not a JSON number`}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Plan(run.Call{Tool: deployTool(h), Host: h, Args: tt.args})
			if !errors.Is(err, run.ErrInvalidArgs) {
				t.Fatalf("err = %v, want ErrInvalidArgs", err)
			}
			var ae *run.ArgsError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %T, want *ArgsError", err)
			}
			if diff := cmp.Diff(tt.problems, ae.Problems); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
			if ae.Tool != "deploy" {
				t.Errorf("tool = %q, want deploy", ae.Tool)
			}
		})
	}
}

func TestPlanNoSchema(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/uptime", "", "", "")
	tool := registry.Tool{Name: "uptime", Hosts: []registry.ToolHost{h}}
	p, err := r.Plan(run.Call{Tool: tool, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"/bin/uptime"}, p.Argv); diff != "" {
		t.Errorf("argv mismatch (-want +got):\n%s", diff)
	}
	_, err = r.Plan(run.Call{Tool: tool, Host: h, Args: map[string]any{"x": "1"}})
	var ae *run.ArgsError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want *ArgsError", err)
	}
	want := []run.Problem{{Field: "x", Message: "not an argument of the tool: it takes no arguments"}}
	if diff := cmp.Diff(want, ae.Problems); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
}

// TestPlanRefused checks every refusal of a record, including hostile
// ones, and that each matches its sentinel and ErrRefused.
func TestPlanRefused(t *testing.T) {
	r := newRunner(t, run.Options{})
	raw := func(s string) registry.ExecField { return registry.ExecField{Set: true, Raw: json.RawMessage(s)} }
	with := func(f func(*registry.ToolHost)) registry.ToolHost {
		h := entry("/usr/local/bin/deploy", "oracle", "sudo", "")
		f(&h)
		return h
	}
	tests := []struct {
		name  string
		host  registry.ToolHost
		want  error
		field string
	}{
		{"no x-command", with(func(h *registry.ToolHost) { h.Command = registry.ExecField{} }), run.ErrCommand, "x-command"},
		{"an empty x-command", with(func(h *registry.ToolHost) { h.Command = str("") }), run.ErrCommand, "x-command"},
		{"an x-command that is an option", with(func(h *registry.ToolHost) { h.Command = str("-i") }), run.ErrCommand, "x-command"},
		{"an x-command that is an assignment", with(func(h *registry.ToolHost) { h.Command = str("LD_PRELOAD=/tmp/x.so") }), run.ErrCommand, "x-command"},
		{"an x-command with a newline", with(func(h *registry.ToolHost) { h.Command = str("/bin/echo\nid") }), run.ErrCommand, "x-command"},
		{"an x-command not a string", with(func(h *registry.ToolHost) { h.Command = raw(`["/bin/sh","-c","id"]`) }), run.ErrNotString, "x-command"},
		{"x-run-as root; id", with(func(h *registry.ToolHost) { h.RunAs = str("root; id") }), run.ErrRunAs, "x-run-as"},
		{"x-run-as an option", with(func(h *registry.ToolHost) { h.RunAs = str("-s") }), run.ErrRunAs, "x-run-as"},
		{"x-run-as a uid", with(func(h *registry.ToolHost) { h.RunAs = str("#0") }), run.ErrRunAs, "x-run-as"},
		{"x-run-as not a string", with(func(h *registry.ToolHost) { h.RunAs = raw(`0`) }), run.ErrNotString, "x-run-as"},
		{"x-run-as with a tab", with(func(h *registry.ToolHost) { h.RunAs = str("a\tb") }), run.ErrRunAs, "x-run-as"},
		{"x-become-method sh -c", with(func(h *registry.ToolHost) { h.BecomeMethod = str("sh -c") }), run.ErrBecomeMethod, "x-become-method"},
		{"x-become-method a path", with(func(h *registry.ToolHost) { h.BecomeMethod = str("/usr/bin/sudo") }), run.ErrBecomeMethod, "x-become-method"},
		{"x-become-method doas", with(func(h *registry.ToolHost) { h.BecomeMethod = str("doas") }), run.ErrBecomeMethod, "x-become-method"},
		{"x-become-method without a run-as", with(func(h *registry.ToolHost) { h.RunAs = registry.ExecField{}; h.BecomeMethod = str("sh") }), run.ErrBecomeMethod, "x-become-method"},
		{"x-become-method not a string", with(func(h *registry.ToolHost) { h.BecomeMethod = raw(`null`) }), run.ErrNotString, "x-become-method"},
		{"x-become-flags with a shell", with(func(h *registry.ToolHost) { h.BecomeFlags = str(`-H /bin/sh -c 'id' --`) }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -u", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-u root") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -E", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-E") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -s", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-s") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -i", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-i") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags combined with -u", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-Hu") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -C", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-C 3") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags --", with(func(h *registry.ToolHost) { h.BecomeFlags = str("--") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags -D", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-D/tmp") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags with a newline", with(func(h *registry.ToolHost) { h.BecomeFlags = str("-H\n-n") }), run.ErrBecomeFlag, "x-become-flags"},
		{"x-become-flags not a string", with(func(h *registry.ToolHost) { h.BecomeFlags = raw(`["-H"]`) }), run.ErrNotString, "x-become-flags"},
		{"su -c in the flags", with(func(h *registry.ToolHost) { h.BecomeMethod = str("su"); h.BecomeFlags = str("-c id") }), run.ErrBecomeFlag, "x-become-flags"},
		{"su -s in the flags", with(func(h *registry.ToolHost) { h.BecomeMethod = str("su"); h.BecomeFlags = str("-s /bin/bash") }), run.ErrBecomeFlag, "x-become-flags"},
		{"su -m in the flags", with(func(h *registry.ToolHost) { h.BecomeMethod = str("su"); h.BecomeFlags = str("-m") }), run.ErrBecomeFlag, "x-become-flags"},
		{"sudo's -H for su", with(func(h *registry.ToolHost) { h.BecomeMethod = str("su"); h.BecomeFlags = str("-H") }), run.ErrBecomeFlag, "x-become-flags"},
		{"pbrun -h", with(func(h *registry.ToolHost) { h.BecomeMethod = str("pbrun"); h.BecomeFlags = str("-h other") }), run.ErrBecomeFlag, "x-become-flags"},
		{"pbrun -b", with(func(h *registry.ToolHost) { h.BecomeMethod = str("pbrun"); h.BecomeFlags = str("-b") }), run.ErrBecomeFlag, "x-become-flags"},
		{"dzdo -E", with(func(h *registry.ToolHost) { h.BecomeMethod = str("dzdo"); h.BecomeFlags = str("-E") }), run.ErrBecomeFlag, "x-become-flags"},
		{"a host that is an ssh option", with(func(h *registry.ToolHost) { h.Host = "-oProxyCommand=touch /tmp/pwned" }), run.ErrHost, "host"},
		{"a host with a user", with(func(h *registry.ToolHost) { h.Host = "root@web-1" }), run.ErrHost, "host"},
		{"a host with a port", with(func(h *registry.ToolHost) { h.Host = "web-1:2222" }), run.ErrHost, "host"},
		{"a host URI", with(func(h *registry.ToolHost) { h.Host = "ssh://web-1" }), run.ErrHost, "host"},
		{"a host with a space", with(func(h *registry.ToolHost) { h.Host = "web-1 -v" }), run.ErrHost, "host"},
		{"a host with a newline", with(func(h *registry.ToolHost) { h.Host = "web-1\nid" }), run.ErrHost, "host"},
		{"a host with ssh's tokens", with(func(h *registry.ToolHost) { h.Host = "%h" }), run.ErrHost, "host"},
		{"an empty host", with(func(h *registry.ToolHost) { h.Host = "" }), run.ErrHost, "host"},
		{"an IPv6 address with a zone", with(func(h *registry.ToolHost) { h.Host = "fe80::1%eth0" }), run.ErrHost, "host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := r.Plan(run.Call{Tool: deployTool(tt.host), Host: tt.host, Args: map[string]any{"environment": "staging"}})
			if err == nil {
				t.Fatalf("planned %s, want a refusal", p)
			}
			if !errors.Is(err, tt.want) || !errors.Is(err, run.ErrRefused) {
				t.Fatalf("err = %v, want %v and ErrRefused", err, tt.want)
			}
			var fe *run.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %T, want *FieldError", err)
			}
			if fe.Field != tt.field || fe.InstanceID != "i-1" || fe.Reason == "" {
				t.Errorf("FieldError %+v, want field %s of instance i-1 with a reason", fe, tt.field)
			}
		})
	}
}

func TestPlanAccepted(t *testing.T) {
	r := newRunner(t, run.Options{})
	tests := []struct {
		name string
		host registry.ToolHost
	}{
		{"sudo flags, long and combined", entry("/bin/x", "oracle", "sudo", "-H --non-interactive -Hn -S -k -P --set-home --stdin --reset-timestamp --preserve-groups")},
		{"su --login", entry("/bin/x", "oracle", "su", "--login -l")},
		{"pbrun flags", entry("/bin/x", "oracle", "pbrun", "-n -p --null_input --pipe_mode")},
		{"a user with a domain", entry("/bin/x", "svc.deploy@corp.example", "", "")},
		{"an IPv4 host", func() registry.ToolHost { h := entry("/bin/x", "", "", ""); h.Host = "10.0.0.1"; return h }()},
		{"an IPv6 host", func() registry.ToolHost { h := entry("/bin/x", "", "", ""); h.Host = "2001:db8::1"; return h }()},
		{"a host with an underscore", func() registry.ToolHost { h := entry("/bin/x", "", "", ""); h.Host = "web_1.example.com"; return h }()},
		{"a relative command", entry("deploy", "", "", "")},
		{"a unicode command", entry("/opt/déploiement/outil", "", "", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tool := registry.Tool{Name: "x", Hosts: []registry.ToolHost{tt.host}}
			if _, err := r.Plan(run.Call{Tool: tool, Host: tt.host}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPlanEnv(t *testing.T) {
	r := newRunner(t, run.Options{})
	h := entry("/bin/x", "", "", "")
	tool := registry.Tool{Name: "x", Hosts: []registry.ToolHost{h}}
	for _, env := range [][]string{
		{"NOEQUALS"}, {"=v"}, {"1X=v"}, {"A-B=v"}, {"A B=v"}, {"A;id=v"}, {"$(id)=v"}, {"A=\x00"}, {"A=1", "A=2"}, {"É=v"},
	} {
		if _, err := r.Plan(run.Call{Tool: tool, Host: h, Env: env}); !errors.Is(err, run.ErrEnv) {
			t.Errorf("env %q: err = %v, want ErrEnv", env, err)
		}
	}
	p, err := r.Plan(run.Call{Tool: tool, Host: h, Env: []string{"_A1=", "B=x=y", "C=$(id)\n'"}})
	if err != nil {
		t.Fatal(err)
	}
	if want := `_A1='' B='x=y' C='$(id)` + "\n" + `'"'"'' /bin/x`; p.Command != want {
		t.Errorf("command %q, want %q", p.Command, want)
	}
}

func TestNewRefused(t *testing.T) {
	for _, o := range []run.Options{
		{User: "-oProxyCommand=x"},
		{User: "a b"},
		{SSHOptions: []string{"ProxyCommand"}},
		{SSHOptions: []string{"-v=1"}},
		{SSHOptions: []string{"Proxy Command=x"}},
		{SSHOptions: []string{"A=b\nc"}},
		{ConfigFile: "a\nb"},
		{SSH: "ssh\n"},
		{WaitDelay: -1},
	} {
		if _, err := run.New(o); !errors.Is(err, run.ErrOptions) {
			t.Errorf("New(%+v) = %v, want ErrOptions", o, err)
		}
	}
}

func TestErrorsMatch(t *testing.T) {
	// errors.Is across the typed errors, as callers test them.
	tests := []struct {
		err  error
		want []error
		not  []error
	}{
		{&run.ExitError{Status: 3}, []error{run.ErrExitStatus}, []error{run.ErrSSH}},
		{&run.ExitError{Status: 255}, []error{run.ErrExitStatus, run.ErrSSH}, nil},
		{&run.ArgsError{}, []error{run.ErrInvalidArgs}, []error{run.ErrRefused}},
		{&run.FieldError{Err: run.ErrHost}, []error{run.ErrHost, run.ErrRefused}, []error{run.ErrRunAs}},
		{&run.HostError{Err: run.ErrAmbiguous}, []error{run.ErrAmbiguous}, []error{run.ErrUnknownHost}},
	}
	for _, tt := range tests {
		for _, w := range tt.want {
			if !errors.Is(tt.err, w) {
				t.Errorf("%T %v does not match %v", tt.err, tt.err, w)
			}
		}
		for _, n := range tt.not {
			if errors.Is(tt.err, n) {
				t.Errorf("%T %v matches %v", tt.err, tt.err, n)
			}
		}
	}
}

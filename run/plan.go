// plan.go builds a Plan: from a tool, the entry that runs it and the
// caller's arguments and environment, the remote command (the table of
// the package documentation) and the exact ssh command line that runs it.
// It also holds the Runner and its Options, which say how ssh is invoked.

package run

import (
	"fmt"
	"strings"
	"time"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/rules"
	"github.com/runspec/registry/internal/shell"
)

// Options say how a Runner invokes ssh. The zero value runs "ssh" from
// $PATH with the user's own configuration.
type Options struct {
	// SSH is the ssh program. If empty, defaults to "ssh", found on $PATH
	// when a plan runs.
	SSH string
	// ConfigFile is passed as -F: an ssh_config to read instead of
	// ~/.ssh/config. If empty, ssh reads its usual files.
	ConfigFile string
	// SSHOptions are passed as -o, one each, in order: "Key=Value" (for
	// instance "ConnectTimeout=10"). BatchMode=yes always comes first, so
	// it cannot be turned off (ssh keeps the first value it reads).
	SSHOptions []string
	// User is passed as -l: the user to log in as. If empty, ssh's
	// configuration decides (by default the local user name).
	User string
	// WaitDelay is how long Run waits, after cancellation has closed ssh's
	// standard input (which makes the remote wrapper stop the command),
	// for ssh to exit before it kills ssh. If zero, defaults to 10 s: more
	// than the wrapper's own 5 s from SIGTERM to SIGKILL.
	WaitDelay time.Duration
}

// A Runner builds plans and runs them over ssh. It holds no state besides
// its options: it is safe for concurrent use.
type Runner struct {
	ssh       string
	prefix    []string // ssh's arguments before the destination
	waitDelay time.Duration
}

// New checks the options and returns a Runner. Options whose values ssh
// would read as something else (a user that is not a plain name, an -o
// that is not Key=Value) are refused with ErrOptions.
func New(o Options) (*Runner, error) {
	r := &Runner{ssh: o.SSH, waitDelay: o.WaitDelay}
	if r.ssh == "" {
		r.ssh = "ssh"
	}
	if r.waitDelay == 0 {
		r.waitDelay = 10 * time.Second
	}
	if r.waitDelay < 0 {
		return nil, fmt.Errorf("%w: WaitDelay %v is negative", ErrOptions, o.WaitDelay)
	}
	if !plainText(r.ssh) {
		return nil, fmt.Errorf("%w: SSH %q has a control character", ErrOptions, r.ssh)
	}
	// -T: no terminal, whatever the configuration says (RequestTTY):
	// stdout and stderr stay apart and the wrapper sees end of input.
	r.prefix = []string{"-o", "BatchMode=yes", "-T"}
	if o.ConfigFile != "" {
		if !plainText(o.ConfigFile) {
			return nil, fmt.Errorf("%w: ConfigFile %q has a control character", ErrOptions, o.ConfigFile)
		}
		r.prefix = append(r.prefix, "-F", o.ConfigFile)
	}
	for _, opt := range o.SSHOptions {
		k, _, ok := strings.Cut(opt, "=")
		if !ok || !optionKey(k) || !plainText(opt) {
			return nil, fmt.Errorf("%w: SSHOptions entry %q is not Key=Value", ErrOptions, opt)
		}
		r.prefix = append(r.prefix, "-o", opt)
	}
	if o.User != "" {
		if !rules.UserName(o.User) {
			return nil, fmt.Errorf("%w: User %q is not a plain user name", ErrOptions, o.User)
		}
		r.prefix = append(r.prefix, "-l", o.User)
	}
	return r, nil
}

// optionKey reports whether k is an ssh_config keyword: letters and
// digits.
func optionKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Call is what to run: a tool, the entry that runs it (from Select), the
// caller's arguments and environment.
type Call struct {
	Tool registry.Tool
	// Host is the entry to run: one of Tool.Hosts, chosen with Select.
	Host registry.ToolHost
	// Args are the tool's arguments by name, as JSON values (what
	// encoding/json decodes into a map[string]any, or ParseFlags
	// returns). A name may be written with '_' for '-'.
	Args map[string]any
	// Env is the environment the caller gives the command, KEY=value
	// entries in order. Only the caller gives it; a record never does.
	Env []string
	// Schema is Tool.InputSchema compiled, to build many plans of a tool
	// without compiling its schema for each. If nil, Plan compiles it.
	Schema *Schema
}

// A Plan is a checked, ready command: what it runs and the exact ssh
// command line that runs it. Printing it (String) is the dry run.
type Plan struct {
	Tool       string // the tool's name
	Host       string // the ssh destination
	InstanceID string // the entry that runs

	// Args are the arguments by property name, validated and normalised:
	// strings, booleans, nil, json.Number in canonical text (1.50 is 1.5,
	// 2.0 is 2), and []any of those.
	Args map[string]any
	// Env is the caller's environment, KEY=value, in order.
	Env []string
	// Argv is the program the remote shell runs and its arguments: the
	// become method, its flags and the user, env and its assignments when
	// there is an environment, the command and the tool's arguments. For
	// a command run as the SSH user with an environment, Env is set by
	// the shell instead (KEY=value before the command).
	Argv []string
	// Command is the remote command line: Argv quoted, as the package
	// documentation's table shows it.
	Command string
	// SSH is the whole ssh command line, program first: the Runner's
	// options, "--", the destination, and Command inside the
	// cancellation wrapper (see Runner.Run).
	SSH []string
}

// String returns the ssh command line quoted for a POSIX shell: the exact
// command Run runs, for a dry run.
func (p *Plan) String() string { return shell.Join(p.SSH) }

// Plan checks a call and builds its plan. It refuses, before anything
// connects anywhere: an entry whose fields cannot be run safely (a
// *FieldError matching ErrRefused), arguments that the tool does not take
// or that its inputSchema rejects (an *ArgsError matching ErrInvalidArgs),
// an environment entry that is not KEY=value (ErrEnv), a schema that
// cannot be compiled (ErrSchema).
func (r *Runner) Plan(c Call) (*Plan, error) {
	e, err := checkEntry(c.Host)
	if err != nil {
		return nil, err
	}
	env, err := checkEnv(c.Env)
	if err != nil {
		return nil, err
	}
	s := c.Schema
	if s == nil {
		if s, err = CompileSchema(c.Tool.InputSchema); err != nil {
			return nil, fmt.Errorf("run: tool %s: %w", c.Tool.Name, err)
		}
	}
	args, words, err := s.prepare(c.Tool.Name, c.Args)
	if err != nil {
		return nil, err
	}

	// The command and its arguments, with env in front when the command
	// runs as another user (the become method resets the environment).
	inner := make([]string, 0, 2+len(env)+1+len(words))
	if e.runAs != "" && len(env) > 0 {
		inner = append(inner, "env")
		inner = append(inner, env...)
	}
	inner = append(inner, e.command)
	inner = append(inner, words...)

	var argv []string
	switch e.method {
	case "":
		argv = inner
	case "su":
		argv = make([]string, 0, len(e.flags)+4)
		argv = append(argv, "su")
		argv = append(argv, e.flags...)
		argv = append(argv, "-c", shell.Join(inner), e.runAs)
	default: // sudo, pbrun, dzdo
		argv = make([]string, 0, len(e.flags)+3+len(inner))
		argv = append(argv, e.method)
		argv = append(argv, e.flags...)
		argv = append(argv, "-u", e.runAs)
		argv = append(argv, inner...)
	}

	command := shell.Join(argv)
	if e.runAs == "" && len(env) > 0 {
		var b strings.Builder
		for _, kv := range env {
			k, v, _ := strings.Cut(kv, "=")
			b.WriteString(k + "=" + shell.Quote(v) + " ")
		}
		command = b.String() + command
	}

	ssh := make([]string, 0, len(r.prefix)+4)
	ssh = append(ssh, r.ssh)
	ssh = append(ssh, r.prefix...)
	ssh = append(ssh, "--", c.Host.Host, wrap(command))
	return &Plan{
		Tool: c.Tool.Name, Host: c.Host.Host, InstanceID: c.Host.InstanceID,
		Args: args, Env: env, Argv: argv, Command: command, SSH: ssh,
	}, nil
}

// checkEnv checks the caller's environment entries.
func checkEnv(env []string) ([]string, error) {
	if len(env) == 0 {
		return nil, nil
	}
	seen := make(map[string]bool, len(env))
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("run: %w: %q is not KEY=value", ErrEnv, kv)
		case !envKey(k):
			return nil, fmt.Errorf("run: %w: key %q does not match [A-Za-z_][A-Za-z0-9_]*", ErrEnv, k)
		case strings.IndexByte(v, 0) >= 0:
			return nil, fmt.Errorf("run: %w: the value of %s has a NUL byte", ErrEnv, k)
		case seen[k]:
			return nil, fmt.Errorf("run: %w: %s is given twice", ErrEnv, k)
		}
		seen[k] = true
	}
	return append([]string(nil), env...), nil
}

// envKey reports whether k matches [A-Za-z_][A-Za-z0-9_]*: a name that a
// shell assigns and env sets, which cannot be quoted.
func envKey(k string) bool {
	if k == "" || ('0' <= k[0] && k[0] <= '9') {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

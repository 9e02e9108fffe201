// run.go holds the run command: it asks the registry how a tool runs on a
// host and runs it there over ssh (the run package): on the one active
// host that offers it, a host given with --host, one at random (--any) or
// every one (--all, in parallel, output prefixed with the host and a
// summary at the end). --dry-run prints the ssh command lines instead.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
	remote "github.com/runspec/registry/run" // the run package; run is a name of this package's tests
)

// runCmd is the run command. Everything after the tool's name is the
// tool's (its arguments in runspec's form, --name value): run's own flags
// come before the name, so that a tool may have arguments called --host
// or --dry-run.
type runCmd struct {
	clientFlags `embed:""`
	sshFlags    `embed:""`
	labelFlags  `embed:""`
	callFlags   `embed:""`
	Host        string   `name:"host" xor:"target" help:"Run on this host: an active host that offers the tool."`
	Any         bool     `name:"any" xor:"target" help:"Run on one active host that offers the tool, chosen at random."`
	All         bool     `name:"all" xor:"target" help:"Run on every active host that offers the tool (exit status 0 only if every one succeeded)."`
	Parallel    int      `name:"parallel" default:"10" help:"With --all: how many hosts run at a time."`
	Instance    string   `name:"instance" help:"The instance whose entry runs, when the entries on a host differ (which lists them)."`
	DryRun      bool     `name:"dry-run" help:"Print the ssh command line for each host, and run nothing."`
	Call        []string `arg:"" name:"tool" passthrough:"" help:"The tool's name, then its arguments: --name value, --flag, --list a --list b."`
}

// callFlags say what the tool is called with, besides the words after its
// name.
type callFlags struct {
	Env      []string `name:"env" sep:"none" placeholder:"K=V" help:"An environment variable for the tool (repeatable); set on the host, never taken from the record."`
	ArgsJSON string   `name:"args-json" placeholder:"JSON" help:"The tool's arguments as one JSON object, instead of flags after its name."`
}

// Exit statuses of a run that was stopped, as shells and timeout(1) give
// them.
const (
	statusInterrupted = 130 // SIGINT (Ctrl-C) or SIGTERM
	statusTimeout     = 124 // --timeout
)

// errTimeout is the cause of a run stopped by --timeout.
var errTimeout = errors.New("--timeout reached")

// errNoTool says the registry has no such tool.
var errNoTool = errors.New("no instance offers the tool")

// Run runs the tool. Its exit status is the tool's, or ssh's 255 with
// ssh's message; with --all, 0 if every host succeeded, else the highest
// status. A run stopped by Ctrl-C exits with 130, by --timeout with 124.
func (c *runCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *runCmd) run(ctx context.Context, kctx *kong.Context) error {
	name, words := splitCall(c.Call)
	if set := explicitFlags(kctx); set["parallel"] != "" && !c.All {
		return errors.New("--parallel goes with --all")
	}
	if c.Parallel < 1 {
		return fmt.Errorf("--parallel %d: at least 1", c.Parallel)
	}
	if c.Instance != "" && (c.Any || c.All) {
		return errors.New("--instance picks one entry: not with --any or --all")
	}
	labels, err := c.labels()
	if err != nil {
		return err
	}
	runner, err := c.runner()
	if err != nil {
		return err
	}
	tool, err := c.tool(ctx, name, labels)
	if err != nil {
		return err
	}
	schema, args, err := c.args(tool, words)
	if err != nil {
		return err
	}
	plan := func(h registry.ToolHost) (*remote.Plan, error) {
		return runner.Plan(remote.Call{Tool: tool, Host: h, Args: args, Env: c.Env, Schema: schema})
	}
	plans, err := c.plans(kctx.Stderr, tool, plan)
	if err != nil {
		return err
	}
	if c.DryRun {
		for _, p := range plans {
			// Exactly what runs: the record's fields in it passed run's
			// checks (no control character), the rest is the caller's.
			fmt.Fprintln(kctx.Stdout, p.String())
		}
		return nil
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, c.Timeout, errTimeout)
		defer cancel()
	}
	if !c.All {
		return c.runOne(ctx, kctx, runner, plans[0])
	}
	return c.runAll(ctx, kctx, runner, plans)
}

// splitCall returns the tool's name and the words after it (without a
// "--" right after the name).
func splitCall(call []string) (string, []string) {
	if len(call) > 0 && call[0] == "--" {
		call = call[1:]
	}
	if len(call) == 0 {
		return "", nil
	}
	words := call[1:]
	if len(words) > 0 && words[0] == "--" {
		words = words[1:]
	}
	return call[0], words
}

// runner is the ssh runner that the flags describe.
func (f *sshFlags) runner() (*remote.Runner, error) {
	return remote.New(remote.Options{SSH: f.SSHBinary, ConfigFile: f.SSHConfig, SSHOptions: f.SSHOption, User: f.SSHUser})
}

// tool asks the registry for the tool, with its inactive entries (for
// the messages; only active ones run). It reads the answer with Get, not
// Client.Tool, whose map of labels could not send two values of one key.
func (f *clientFlags) tool(ctx context.Context, name string, labels labelQuery) (registry.Tool, error) {
	if name == "" {
		return registry.Tool{}, errors.New("which tool? give its name")
	}
	cl, err := f.connect()
	if err != nil {
		return registry.Tool{}, err
	}
	body, err := cl.Get(ctx, "/tools/"+url.PathEscape(name), labels.addTo(client.Filter{IncludeInactive: true}.Values()))
	if errors.Is(err, client.ErrNotFound) {
		if len(labels) > 0 {
			return registry.Tool{}, fmt.Errorf("tool %s: %w with the labels %s", name, errNoTool, labels)
		}
		return registry.Tool{}, fmt.Errorf("tool %s: %w", name, errNoTool)
	}
	if err != nil {
		return registry.Tool{}, err
	}
	var tool registry.Tool
	if err := json.Unmarshal(body, &tool); err != nil {
		return registry.Tool{}, fmt.Errorf("registry: GET /tools/%s: decoding the answer: %w", name, err)
	}
	return tool, nil
}

// args compiles the tool's schema and reads the arguments, from the words
// after its name or from --args-json.
func (f *callFlags) args(tool registry.Tool, words []string) (*remote.Schema, map[string]any, error) {
	schema, err := remote.CompileSchema(tool.InputSchema)
	if err != nil {
		return nil, nil, fmt.Errorf("tool %s: %w", tool.Name, err)
	}
	var args map[string]any
	switch {
	case f.ArgsJSON != "" && len(words) > 0:
		return nil, nil, errors.New("give the tool's arguments after its name or with --args-json, not both")
	case f.ArgsJSON != "":
		args, err = remote.ParseJSON([]byte(f.ArgsJSON))
	default:
		args, err = schema.ParseFlags(words)
	}
	var ae *remote.ArgsError
	if errors.As(err, &ae) && ae.Tool == "" {
		ae.Tool = tool.Name
	}
	return schema, args, err
}

// plans chooses the entries to run and plans each.
func (c *runCmd) plans(stderr io.Writer, tool registry.Tool, plan func(registry.ToolHost) (*remote.Plan, error)) ([]*remote.Plan, error) {
	one := func(host string) ([]*remote.Plan, error) {
		e, err := remote.Select(tool, host, c.Instance)
		if err != nil {
			return nil, err
		}
		p, err := plan(e)
		if err != nil {
			return nil, err
		}
		return []*remote.Plan{p}, nil
	}
	hosts := remote.ActiveHosts(tool)
	switch {
	case c.Host != "":
		return one(c.Host)
	case c.Instance != "":
		for _, h := range tool.Hosts {
			if h.Active && h.InstanceID == c.Instance {
				return one(h.Host)
			}
		}
		return nil, fmt.Errorf("tool %s has no active instance %s; its active instances: %s", tool.Name, c.Instance, strings.Join(activeInstances(tool), ", "))
	case len(hosts) == 0:
		_, err := remote.RandomHost(tool, nil) // the error that says so
		return nil, err
	case c.All:
		var plans []*remote.Plan
		var errs []error
		for _, h := range hosts {
			p, err := one(h)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			plans = append(plans, p[0])
		}
		if len(errs) > 0 {
			return nil, fmt.Errorf("nothing ran: %d of %d hosts cannot run the tool (narrow with --label, or fix the records): %w",
				len(errs), len(hosts), errList(errs))
		}
		return plans, nil
	case c.Any:
		// One of the hosts whose entry can run, at random: a host whose
		// record is refused is skipped, and said so.
		rand.Shuffle(len(hosts), func(i, j int) { hosts[i], hosts[j] = hosts[j], hosts[i] })
		var errs []error
		for _, h := range hosts {
			p, err := one(h)
			if err == nil {
				return p, nil
			}
			errs = append(errs, err)
			fmt.Fprintf(stderr, "runspec-registry: skipping %s: %s\n", printable(h), printable(err.Error()))
		}
		return nil, fmt.Errorf("no host can run the tool: %w", errList(errs))
	case len(hosts) > 1:
		return nil, fmt.Errorf("tool %s is offered on %d hosts: %s; choose one with --host, or use --any or --all",
			tool.Name, len(hosts), strings.Join(hosts, ", "))
	}
	return one(hosts[0])
}

// activeInstances lists the instance ids of the tool's active entries.
func activeInstances(tool registry.Tool) []string {
	var ids []string
	for _, h := range tool.Hosts {
		if h.Active {
			ids = append(ids, h.InstanceID+" on "+h.Host)
		}
	}
	slices.Sort(ids)
	return ids
}

// stopped reports a run stopped by Ctrl-C or --timeout, with its status.
func stopped(ctx context.Context) (exitStatus, string, bool) {
	if ctx.Err() == nil {
		return 0, "", false
	}
	if errors.Is(context.Cause(ctx), errTimeout) {
		return statusTimeout, "stopped: --timeout reached", true
	}
	return statusInterrupted, "stopped: interrupted", true
}

// runOne runs one plan with the command's own stdout and stderr.
func (c *runCmd) runOne(ctx context.Context, kctx *kong.Context, runner *remote.Runner, p *remote.Plan) error {
	status, err := runner.Run(ctx, p, kctx.Stdout, kctx.Stderr)
	if st, msg, ok := stopped(ctx); ok {
		fmt.Fprintf(kctx.Stderr, "runspec-registry: %s on %s %s (the command on the host was stopped too)\n", printable(p.Tool), printable(p.Host), msg)
		return st
	}
	var ee *remote.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Status == 255:
		fmt.Fprintf(kctx.Stderr, "runspec-registry: %s\n", printable(err.Error()))
		return exitStatus(255)
	case errors.As(err, &ee):
		return exitStatus(status) // the tool's status, as ssh gives it
	}
	return err
}

// hostResult is the outcome of a run on one host of --all.
type hostResult struct {
	host     string
	status   int // -1: stopped before it ended
	duration time.Duration
	note     string
}

// runAll runs every plan, Parallel at a time, each line of output
// prefixed with its host, and prints a summary on stderr.
func (c *runCmd) runAll(ctx context.Context, kctx *kong.Context, runner *remote.Runner, plans []*remote.Plan) error {
	var mu sync.Mutex // one line at a time on each stream
	results := make([]hostResult, len(plans))
	sem := make(chan struct{}, c.Parallel)
	var wg sync.WaitGroup
	for i, p := range plans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = hostResult{host: p.Host, status: -1, note: "not started"}
				return
			}
			defer func() { <-sem }()
			out := &prefixWriter{mu: &mu, w: kctx.Stdout, prefix: p.Host + ": "}
			errw := &prefixWriter{mu: &mu, w: kctx.Stderr, prefix: p.Host + ": "}
			start := time.Now()
			status, err := runner.Run(ctx, p, out, errw)
			out.Flush()
			errw.Flush()
			r := hostResult{host: p.Host, status: status, duration: time.Since(start)}
			var ee *remote.ExitError
			switch {
			case ctx.Err() != nil:
				r.status, r.note = -1, "stopped"
			case errors.As(err, &ee) && ee.Status == 255:
				r.note = "ssh failed: " + lastLine(ee.Stderr)
			case err != nil && !errors.As(err, &ee):
				r.note = err.Error()
			}
			results[i] = r
		}()
	}
	wg.Wait()

	worst, failed := 0, 0
	t := newTable(kctx.Stderr, "HOST", "STATUS", "DURATION", "")
	for _, r := range results {
		status := fmt.Sprint(r.status)
		if r.status == -1 {
			status = "-"
		}
		if r.status != 0 {
			failed++
		}
		worst = max(worst, r.status)
		t.row(r.host, status, r.duration.Round(time.Millisecond).String(), r.note)
	}
	t.flush()
	fmt.Fprintf(kctx.Stderr, "%d hosts: %d succeeded, %d failed\n", len(results), len(results)-failed, failed)
	if st, msg, ok := stopped(ctx); ok {
		fmt.Fprintf(kctx.Stderr, "runspec-registry: %s\n", msg)
		return st
	}
	if failed > 0 {
		return exitStatus(max(worst, 1))
	}
	return nil
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// prefixWriter writes each line it is given to w with prefix in front,
// whole lines at a time under mu (shared by the writers of one stream), so
// that lines of different hosts never mix. Flush writes a last line that
// has no newline.
type prefixWriter struct {
	mu     *sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte // the start of a line not yet ended
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	n := len(b)
	p.buf = append(p.buf, b...)
	i := bytes.LastIndexByte(p.buf, '\n')
	if i < 0 {
		return n, nil
	}
	var out []byte
	for _, line := range bytes.SplitAfter(p.buf[:i+1], []byte("\n")) {
		if len(line) > 0 {
			out = append(append(out, p.prefix...), line...)
		}
	}
	p.buf = append(p.buf[:0], p.buf[i+1:]...)
	p.mu.Lock()
	defer p.mu.Unlock()
	_, err := p.w.Write(out)
	return n, err
}

// Flush writes what is left of a line without a newline, ending it.
func (p *prefixWriter) Flush() {
	if len(p.buf) == 0 {
		return
	}
	line := append(append([]byte(p.prefix), p.buf...), '\n')
	p.buf = nil
	p.mu.Lock()
	defer p.mu.Unlock()
	p.w.Write(line)
}

// errList is several errors on one line, each after a "; " (errors.Join
// breaks lines, which the command's error line would print escaped); it
// unwraps to each, for errors.Is.
type errList []error

func (l errList) Error() string {
	msgs := make([]string, len(l))
	for i, err := range l {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "; ")
}

func (l errList) Unwrap() []error { return l }

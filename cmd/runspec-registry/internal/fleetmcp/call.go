// call.go answers tools/call: the arguments without runspec_host, the
// entry on the chosen host (run.Select), the plan (run.Runner.Plan, which
// validates the arguments), the autonomy read again from the record of
// the instance that runs it, approval for confirm tools, the run with
// progress notifications, and the answer with its output capped.

package fleetmcp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

// errorResult is an answer with isError and one text.
func errorResult(format string, a ...any) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf(format, a...)}}}
}

// call answers a call of the MCP tool name.
func (s *Server) call(ctx context.Context, req *mcp.CallToolRequest, name string) *mcp.CallToolResult {
	e := s.cat.Load().lookup(name)
	if e == nil {
		return errorResult("Tool %s is no longer offered by any active host.", name)
	}
	args, host, err := splitArgs(req.Params.Arguments)
	if err != nil {
		return errorResult("Invalid arguments for %s: %v.", name, err)
	}
	if host == "" {
		if len(e.hosts) != 1 {
			return errorResult("Invalid arguments for %s: %s is required; the active hosts that offer it: %s.",
				name, HostArg, strings.Join(e.hosts, ", "))
		}
		host = e.hosts[0]
	}
	tool := e.tool()
	h, err := run.Select(tool, host, "")
	if err != nil {
		return errorResult("%s", runMessage(err))
	}
	schema, err := e.compiled()
	if err != nil {
		return errorResult("%s", runMessage(err))
	}
	plan, err := s.opts.Runner.Plan(run.Call{Tool: tool, Host: h, Args: args, Schema: schema})
	if err != nil {
		return errorResult("%s", runMessage(err))
	}

	level, res := s.currentAutonomy(ctx, e, h)
	if res != nil {
		return res
	}
	switch level {
	case Manual:
		return errorResult("Tool %s is manual on %s now (x-autonomy): only a person runs it, not over MCP.", name, host)
	case Confirm:
		p := req.Params
		if p.RequestState != "" || len(p.InputResponses) > 0 {
			if err := s.approved(p, name, plan); err != nil {
				s.log.Info("mcp call not approved", "tool", e.runspec, "host", host, "reason", err)
				return errorResult("Not run: %v. %s on %s needs a person's approval (x-autonomy: confirm).", err, name, host)
			}
			break
		}
		if !canElicit(req.ClientCapabilities()) {
			msg := fmt.Sprintf("Not run: %s is a confirm tool (x-autonomy), and a person must approve this call; "+
				"this MCP client cannot ask one (it does not support elicitation). Ask a person to run it.", name)
			if s.opts.PrintCommands {
				msg += "\n\nThe command line that would run:\n" + plan.String()
			}
			return errorResult("%s", msg)
		}
		return s.approvalRequest(e, plan, s.runAs(h))
	}
	return s.execute(ctx, req, e, plan, level)
}

// currentAutonomy reads the record of the instance that runs h again and
// returns the level that applies now: the catalog's, the record's and the
// cap, the strictest. A record that is gone, inactive, no longer offers
// the tool or now runs something else stops the call.
func (s *Server) currentAutonomy(ctx context.Context, e *entry, h registry.ToolHost) (Autonomy, *mcp.CallToolResult) {
	rec, err := s.opts.Source.Instance(ctx, h.InstanceID)
	if err != nil {
		return 0, errorResult("Not run: cannot read the record of instance %s on %s from the registry: %v.", h.InstanceID, h.Host, err)
	}
	if !rec.Active {
		others := slices.DeleteFunc(slices.Clone(e.hosts), func(x string) bool { return x == h.Host })
		if len(others) == 0 {
			return 0, errorResult("Not run: host %s is no longer active, and no other active host offers %s.", h.Host, e.name)
		}
		return 0, errorResult("Not run: host %s is no longer active; the active hosts that offer %s: %s.", h.Host, e.name, strings.Join(others, ", "))
	}
	for _, raw := range rec.Tools {
		name, m, ok := readToolMeta(raw)
		if !ok || name != e.runspec {
			continue
		}
		want := [4]registry.ExecField{h.Command, h.RunAs, h.BecomeMethod, h.BecomeFlags}
		for i := range want {
			if !sameField(want[i], m.exec[i]) {
				return 0, errorResult("Not run: the tool %s changed on %s since the listing was read; try again.", e.name, h.Host)
			}
		}
		return Stricter(Stricter(e.autonomy, m.autonomy), s.opts.MaxAutonomy), nil
	}
	return 0, errorResult("Not run: host %s no longer offers %s; try again.", h.Host, e.name)
}

// runAs says who the command runs as, for an approval.
func (s *Server) runAs(h registry.ToolHost) string {
	if u := h.RunAs.Value; u != "" {
		method := h.BecomeMethod.Value
		if method == "" {
			method = "sudo"
		}
		return u + " (through " + method + ")"
	}
	if s.opts.SSHUser != "" {
		return s.opts.SSHUser + " (the SSH user)"
	}
	return "the SSH user (as the ssh configuration of this server's user says)"
}

// execute runs the plan and answers its output.
func (s *Server) execute(ctx context.Context, req *mcp.CallToolRequest, e *entry, plan *run.Plan, level Autonomy) *mcp.CallToolResult {
	if s.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
	}
	stdout := &capped{max: s.opts.MaxOutput}
	stderr := &capped{max: s.opts.MaxOutput}
	start := time.Now()
	stop := s.progress(ctx, req, plan, stdout, stderr, start)
	status, err := s.opts.Runner.Run(ctx, plan, stdout, stderr)
	stop()
	took := time.Since(start)
	s.log.Info("mcp call", "tool", plan.Tool, "host", plan.Host, "instance", plan.InstanceID, "autonomy", level.String(),
		"status", status, "duration", took)

	var exit *run.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		var b strings.Builder
		fmt.Fprintf(&b, "The command exited with status %d on %s.", status, plan.Host)
		if status == 255 {
			b.WriteString(" " + runMessage(err) + ".")
		}
		b.WriteString("\n\nstdout:\n" + stdout.text())
		if c := stdout.cut("stdout"); c != "" {
			b.WriteString("\n" + c)
		}
		b.WriteString("\n\nstderr:\n" + stderr.text())
		if c := stderr.cut("stderr"); c != "" {
			b.WriteString("\n" + c)
		}
		return errorResult("%s", b.String())
	case ctx.Err() != nil:
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return errorResult("Stopped after the time limit (%v): the command on %s was stopped.", s.opts.Timeout, plan.Host)
		}
		return errorResult("Cancelled: the command on %s was stopped.", plan.Host)
	default:
		return errorResult("%s", runMessage(err))
	}

	res := &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: stdout.text()}}}
	var notes []string
	if c := stdout.cut("stdout"); c != "" {
		notes = append(notes, c)
	}
	if t := stderr.text(); t != "" {
		notes = append(notes, "stderr:\n"+t)
		if c := stderr.cut("stderr"); c != "" {
			notes = append(notes, c)
		}
	}
	if level == Supervised {
		notes = append(notes, "Supervised tool (x-autonomy: supervised): a person should review this result.")
	}
	for _, n := range notes {
		res.Content = append(res.Content, &mcp.TextContent{Text: n})
	}
	return res
}

// progress sends progress notifications every ProgressInterval while a
// call runs, if the client gave a progress token; the function it
// returns stops them.
func (s *Server) progress(ctx context.Context, req *mcp.CallToolRequest, plan *run.Plan, stdout, stderr *capped, start time.Time) func() {
	token := req.Params.GetProgressToken()
	if token == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(s.opts.ProgressInterval)
		defer t.Stop()
		for n := 1; ; n++ {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{
				ProgressToken: token, Progress: float64(n),
				Message: fmt.Sprintf("running on %s for %v; %d bytes of output so far", plan.Host,
					time.Since(start).Round(time.Second), stdout.total.Load()+stderr.total.Load()),
			})
			if err != nil {
				s.log.Debug("progress notification failed", "err", err)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}

// runMessage is a run error for people: without the package's prefix.
func runMessage(err error) string {
	msg := strings.TrimPrefix(err.Error(), "run: ")
	if msg != "" {
		msg = strings.ToUpper(msg[:1]) + msg[1:]
	}
	return msg
}

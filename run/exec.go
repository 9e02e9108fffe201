// exec.go runs a plan with the system's OpenSSH client: its own standard
// input (never the calling process's), stdout and stderr streamed to the
// caller's writers, and cancellation that stops the remote command through
// the wrapper (wrapper.go).

package run

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
)

// Run runs the plan's ssh command line and returns the remote command's
// exit status.
//
// ssh's standard input is a pipe that Run owns and never writes to: the
// command cannot read the calling process's input (in an MCP server, the
// protocol stream), and the remote wrapper stops the command when the pipe
// reaches end of input. Standard output and error are copied to stdout and
// stderr as they come (nil discards).
//
// When ctx is done, Run closes the pipe: the wrapper sends SIGTERM to the
// command, its process group and its descendants, then SIGKILL after
// about 5 s, and ssh exits when they are gone. If ssh has not exited
// WaitDelay after the pipe was closed (the host is unreachable, say), Run
// kills it. It then returns -1 and an error that matches ctx's error
// (context.Canceled, context.DeadlineExceeded).
//
// Otherwise the error is nil for status 0, and an *ExitError for any other
// status: it matches ErrExitStatus, and also ErrSSH for 255, which is how
// ssh reports its own failure (it could not connect, verify the host key
// or log in); the error then carries the end of stderr, which says why.
// A status of -1 with another error means ssh could not be started.
func (r *Runner) Run(ctx context.Context, p *Plan, stdout, stderr io.Writer) (int, error) {
	if p == nil || len(p.SSH) == 0 {
		return -1, errors.New("run: Run needs a plan from Runner.Plan")
	}
	in, out, err := os.Pipe()
	if err != nil {
		return -1, fmt.Errorf("run: %w", err)
	}
	defer out.Close()
	tail := &tailBuffer{max: 1024}
	cmd := exec.CommandContext(ctx, p.SSH[0], p.SSH[1:]...)
	cmd.Stdin = in // an *os.File: ssh gets it directly, nothing copies into it
	cmd.Stdout = stdout
	if stderr != nil {
		cmd.Stderr = io.MultiWriter(stderr, tail)
	} else {
		cmd.Stderr = tail
	}
	// On cancellation, end ssh's input: the wrapper on the host stops the
	// command and ssh exits; os/exec kills ssh if it has not after
	// WaitDelay.
	cmd.Cancel = out.Close
	cmd.WaitDelay = r.waitDelay
	if err := cmd.Start(); err != nil {
		in.Close()
		return -1, fmt.Errorf("run: start %s: %w", p.SSH[0], err)
	}
	in.Close() // ssh has its copy
	err = cmd.Wait()
	if cerr := ctx.Err(); cerr != nil {
		if cause := context.Cause(ctx); cause != cerr {
			return -1, fmt.Errorf("run: %s on %s: stopped: %w: %w", p.Tool, p.Host, cerr, cause)
		}
		return -1, fmt.Errorf("run: %s on %s: stopped: %w", p.Tool, p.Host, cerr)
	}
	if err == nil {
		return 0, nil
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.Exited() {
		status := exit.ExitCode()
		e := &ExitError{Host: p.Host, Status: status}
		if status == 255 {
			e.Stderr = tail.String()
		}
		return status, e
	}
	return -1, fmt.Errorf("run: %s on %s: %w", p.Tool, p.Host, err)
}

// tailBuffer keeps the last max bytes written to it. os/exec writes to it
// from one goroutine and Wait returns after the last write.
type tailBuffer struct {
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.b = append(t.b[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.b) + len(p) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}

func (t *tailBuffer) String() string { return string(t.b) }

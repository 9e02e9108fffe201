// cancel_test.go proves on the test host that cancelling a run stops the
// remote command: after a context timeout and after cancel, no process of
// the tool is left (pgrep -f a unique marker), for each row that changes
// user or not; and, as a control, that without the wrapper killing ssh
// leaves the command running.

package run_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/shell"
	"github.com/runspec/registry/run"
)

// The ways a slow tool may take SIGTERM.
type temper int

const (
	plain    temper = iota // dies of it, leaving its children to others
	careful                // stops its children (kill 0), as a careful tool does
	stubborn               // ignores it, and so do its children: only SIGKILL stops them
)

// slowTool is a tool that starts a child, which starts a grandchild, says
// "ready" once both run, and runs until killed. Every one of its
// processes has the script's path, and so the marker, in its command line.
func slowTool(how temper) string {
	trap := ""
	switch how {
	case careful:
		trap = "trap 'kill 0; exit 143' TERM\n"
	case stubborn:
		trap = "trap '' TERM\n"
	}
	return "#!/bin/sh\n" + trap +
		"case $1 in\n" +
		"child) \"$0\" grandchild & while :; do sleep 1; done ;;\n" +
		"grandchild) while :; do sleep 1; done ;;\n" +
		"esac\n" +
		"\"$0\" child &\n" +
		// wait until the grandchild runs, so that the whole tree exists
		"while ! pgrep -f \"$0 grandchild\" >/dev/null; do sleep 0.05; done\n" +
		"echo ready\n" +
		"while :; do sleep 1; done\n"
}

// marker returns a string that appears in no other process.
func marker(t *testing.T) string {
	var b [6]byte
	rand.Read(b[:])
	return "rsmark" + hex.EncodeToString(b[:])
}

// processes returns the processes whose command line has m (pgrep -af).
func processes(t *testing.T, m string) string {
	out, err := exec.Command("pgrep", "-af", m).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() == 1 {
			return "" // none
		}
		t.Errorf("pgrep: %v", err) // not Fatal: called from goroutines
		return ""
	}
	return strings.TrimSpace(string(out))
}

// waitNone waits until no process has m, and fails the test with those
// left if some still do after d.
func waitNone(t *testing.T, m string, d time.Duration) {
	deadline := time.Now().Add(d)
	for {
		left := processes(t, m)
		if left == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of the tool left %v after the run stopped:\n%s", d, left)
			killAll(t, m)
			return
		}
		time.Sleep(20 * time.Millisecond) // polling the process table: there is nothing to wait on
	}
}

// killAll kills, by pid, the processes that the test started and left.
func killAll(t *testing.T, m string) {
	for _, line := range strings.Split(processes(t, m), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if pid, err := strconv.Atoi(f[0]); err == nil {
			if p, err := os.FindProcess(pid); err == nil {
				p.Kill()
			}
		}
	}
}

// signalWriter collects output and closes ready at the first "ready"
// line.
type signalWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ready chan struct{}
	once  sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), "ready\n") {
		w.once.Do(func() { close(w.ready) })
	}
	return len(p), nil
}

func (w *signalWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestRunCancel(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: cancellation takes a few seconds per row")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("no pgrep (procps): cannot look for processes left behind")
	}
	f := newFixture(t)
	type cancelRow struct {
		row
		how temper
	}
	rows := []cancelRow{
		{row: row{name: "as the SSH user"}},
		// Only the wrapper's SIGKILL, after about 5 s, stops this one.
		{row: row{name: "as the SSH user, a tool that ignores SIGTERM"}, how: stubborn},
	}
	if f.target != "" {
		rows = append(rows,
			cancelRow{row: row{name: "sudo -u", runAs: f.target, method: "sudo"}},
			cancelRow{row: row{name: "su -c", runAs: f.target, method: "su"}},
			// su's child is in a session of its own, out of the
			// command's group: the wrapper finds its group through ps.
			cancelRow{row: row{name: "su -c, a tool that ignores SIGTERM", runAs: f.target, method: "su"}, how: stubborn},
			// Logged in as a user who is not root: the tool's processes
			// belong to another user, which only sudo may signal; sudo
			// relays SIGTERM to the tool, which stops its children.
			cancelRow{row: row{name: "sudo -u, logged in as another user", login: f.login, runAs: f.target, method: "sudo"}, how: careful},
		)
	} else {
		t.Log("not root: only the row without a change of user runs")
	}
	for _, rw := range rows {
		// Both ways of stopping at once: the waits are on the host, and
		// go test runs only GOMAXPROCS parallel subtests at a time.
		t.Run(rw.name, func(t *testing.T) {
			t.Parallel()
			var wg sync.WaitGroup
			for _, mode := range []string{"timeout", "cancel"} {
				wg.Go(func() { cancelOnce(t, f, rw.row, rw.how, mode) })
			}
			wg.Wait()
		})
	}
}

// cancelOnce runs the slow tool with the row, stops it by a context
// timeout or a cancel once it is ready, and checks that Run returns soon
// and that no process of the tool is left. It reports with t.Errorf only:
// it runs in a goroutine of the test.
func cancelOnce(t *testing.T, f *fixture, rw row, how temper, mode string) {
	m := marker(t)
	script := f.s.Script(t, "slow-"+m, slowTool(how))
	defer killAll(t, m) // whatever happens, leave nothing
	h := rw.entry(script)
	r, err := run.New(run.Options{ConfigFile: f.s.Config, User: rw.login, WaitDelay: 30 * time.Second})
	if err != nil {
		t.Error(err)
		return
	}
	p, err := r.Plan(run.Call{Tool: registry.Tool{Name: "slow", Hosts: []registry.ToolHost{h}}, Host: h, Env: rw.env})
	if err != nil {
		t.Error(err)
		return
	}
	out := &signalWriter{ready: make(chan struct{})}
	var stderr bytes.Buffer
	var ctx context.Context
	var cancel context.CancelFunc
	want := context.Canceled
	if mode == "timeout" {
		ctx, cancel = context.WithTimeout(t.Context(), 2500*time.Millisecond)
		want = context.DeadlineExceeded
	} else {
		ctx, cancel = context.WithCancel(t.Context())
	}
	defer cancel()
	type ran struct {
		status int
		err    error
	}
	done := make(chan ran, 1)
	go func() {
		status, err := r.Run(ctx, p, out, &stderr)
		done <- ran{status, err}
	}()
	select {
	case <-out.ready:
	case res := <-done:
		t.Errorf("%s: the tool stopped before it was ready: status %d, %v\nstdout %q\nstderr %q",
			mode, res.status, res.err, out, stderr.String())
		return
	}
	if left := processes(t, m); strings.Count(left, "\n") < 2 {
		t.Errorf("%s: the tool is ready, but fewer than 3 of its processes run:\n%s", mode, left)
	}
	var stopped time.Time
	if mode == "cancel" {
		stopped = time.Now()
		cancel()
	} else {
		<-ctx.Done()
		stopped = time.Now()
	}
	res := <-done
	took := time.Since(stopped)
	if res.status != -1 || !errors.Is(res.err, want) {
		t.Errorf("%s: status %d, err %v; want -1 and %v", mode, res.status, res.err, want)
	}
	// The wrapper stopped the command and ssh exited by itself: Run did
	// not wait for WaitDelay (30 s) to kill ssh.
	if took > 10*time.Second {
		t.Errorf("%s: Run returned %v after the cancellation: ssh had to be killed", mode, took)
	}
	t.Logf("%s: %s: Run returned %v after the cancellation; stderr %q", mode, p.Command, took.Round(time.Millisecond), stderr.String())
	// The wrapper's watchdog (whose command line also has the marker) may
	// outlive ssh by a moment.
	waitNone(t, m, 10*time.Second)
}

// TestRunCancelLimit shows the documented limit: logged in as a user who
// is not root and running the tool as another user through sudo, the
// wrapper can signal sudo only. sudo relays SIGTERM to the tool, which
// stops; children that a careless tool leaves behind keep running as the
// other user and keep ssh's output open, so Run kills ssh after
// WaitDelay. The test checks the part that is promised (the tool itself
// stops, Run returns after WaitDelay) and logs what is left.
func TestRunCancelLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("no pgrep (procps)")
	}
	f := newFixture(t)
	if f.target == "" {
		t.Skip("not root: no users to log in as and to become")
	}
	m := marker(t)
	script := f.s.Script(t, "slow-"+m, slowTool(plain))
	t.Cleanup(func() { killAll(t, m) })
	h := row{runAs: f.target, method: "sudo"}.entry(script)
	r := newRunner(t, run.Options{ConfigFile: f.s.Config, User: f.login, WaitDelay: 2 * time.Second})
	p, err := r.Plan(run.Call{Tool: registry.Tool{Name: "slow", Hosts: []registry.ToolHost{h}}, Host: h})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &signalWriter{ready: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(ctx, p, out, nil)
		done <- err
	}()
	<-out.ready
	stopped := time.Now()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("err %v, want context.Canceled", err)
	}
	took := time.Since(stopped)
	if took < 2*time.Second || took > 8*time.Second {
		t.Errorf("Run returned %v after the cancellation, want about WaitDelay (2s)", took)
	}
	// The tool itself (its command line ends with the script's path)
	// stopped: sudo relayed SIGTERM.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processes(t, m)
		if !strings.Contains(left+"\n", script+"\n") {
			t.Logf("the tool stopped; left behind as %s (beyond the SSH user's rights):\n%s", f.target, left)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the tool itself is still running:\n%s", left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunCancelControl is the control experiment: the same tool run with
// plain ssh, no wrapper, and ssh killed, keeps running on the host. It
// shows that TestRunCancel's check can fail, and why the wrapper exists.
func TestRunCancelControl(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	if _, err := exec.LookPath("pgrep"); err != nil {
		t.Skip("no pgrep (procps)")
	}
	f := newFixture(t)
	m := marker(t)
	script := f.s.Script(t, "slow-"+m, slowTool(plain))
	t.Cleanup(func() { killAll(t, m) })
	ctx, cancel := context.WithCancel(t.Context())
	cmd := f.s.Command(ctx, "web-1", shell.Quote(script))
	out := &signalWriter{ready: make(chan struct{})}
	cmd.Stdout = out
	stdin, err := cmd.StdinPipe() // open, like Run's
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	<-out.ready
	cancel() // kills ssh
	cmd.Wait()
	// Nothing to wait for: the point is that the processes stay. Give the
	// host the time that TestRunCancel gives it, then look.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && processes(t, m) != "" {
		time.Sleep(100 * time.Millisecond)
	}
	if left := processes(t, m); strings.Count(left, "\n") < 2 {
		t.Errorf("without the wrapper, killing ssh stopped the tool (left: %q): the control shows nothing", left)
	}
}

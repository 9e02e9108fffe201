// binary.go runs etcd from an installed binary (Debian's etcd-server is 3.4) as
// processes that a test can kill (SIGKILL), pause (SIGSTOP) and resume.

package etcdtest

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// A Process is an etcd server started from an installed binary.
type Process struct {
	Endpoint string // its client URL
	Version  string // as etcd --version says, e.g. 3.4.23
	cmd      *exec.Cmd
	logs     *syncBuffer
	// probe asks for health and metrics, with a timeout: a paused member
	// must not hang the caller.
	probe *http.Client
}

// StartBinary starts the etcd binary named by $ETCD_BIN, or found as "etcd"
// on $PATH (Debian's etcd-server package installs /usr/bin/etcd), as a
// one-member cluster on loopback ports with a fresh data directory. It skips
// the test if there is no binary. The process is killed when the test ends.
func StartBinary(t testing.TB) *Process {
	t.Helper()
	return StartBinaryCluster(t, 1)[0]
}

// StartBinaryCluster is StartBinary for a cluster of n members, one process
// each.
func StartBinaryCluster(t testing.TB, n int) []*Process {
	t.Helper()
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("etcd"); err != nil {
			t.Skip("no etcd binary: install Debian's etcd-server (apt-get install etcd-server) or set ETCD_BIN")
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", bin, err)
	}
	version := "unknown"
	if m := regexp.MustCompile(`etcd Version: (\S+)`).FindSubmatch(out); m != nil {
		version = string(m[1])
	}
	ps := make([]*Process, n)
	var peers, initial []string
	started := time.Now()
	for i := range ps {
		client, peer := freeURL(t), freeURL(t)
		ps[i] = &Process{Endpoint: client.String(), Version: version, probe: &http.Client{Timeout: time.Second}}
		peers = append(peers, peer.String())
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peer.String()))
	}
	for i, p := range ps {
		p.logs = new(syncBuffer)
		p.cmd = exec.Command(bin,
			"--name", fmt.Sprintf("m%d", i),
			"--data-dir", t.TempDir(),
			"--listen-client-urls", p.Endpoint, "--advertise-client-urls", p.Endpoint,
			"--listen-peer-urls", peers[i], "--initial-advertise-peer-urls", peers[i],
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-token", "etcdtest",
			"--log-level", "warn",
			"--unsafe-no-fsync", // test data: speed over durability (etcd 3.4.10 and later)
		)
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		t.Cleanup(p.Kill)
	}
	for _, p := range ps {
		if err := p.waitHealthy(started.Add(30 * time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("etcd %s (%s): %d member(s), first at %s", version, bin, n, ps[0].Endpoint)
	return ps
}

func (p *Process) healthy() bool {
	resp, err := p.probe.Get(p.Endpoint + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// waitHealthy waits until the member answers /health with 200 (it has a
// leader), until deadline.
func (p *Process) waitHealthy(deadline time.Time) error {
	for !p.healthy() {
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd %s at %s not healthy in time; its output:\n%s", p.Version, p.Endpoint, p.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// Kill kills the process with SIGKILL, as a crash, and waits for it.
func (p *Process) Kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// Restart starts the process again after Kill, on its data directory, and
// waits up to 30 s until it is healthy (which needs a quorum).
func (p *Process) Restart() error {
	if p.cmd.ProcessState == nil {
		return fmt.Errorf("etcd at %s: restarted while running", p.Endpoint)
	}
	cmd := exec.Command(p.cmd.Path, p.cmd.Args[1:]...)
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("restart etcd at %s: %w", p.Endpoint, err)
	}
	p.cmd = cmd
	return p.waitHealthy(time.Now().Add(30 * time.Second))
}

// Pause stops the process with SIGSTOP: it keeps its connections open and
// answers nothing, as a member whose machine hangs. Resume continues it.
func (p *Process) Pause() error { return p.cmd.Process.Signal(syscall.SIGSTOP) }

// Resume continues the process after Pause, with SIGCONT.
func (p *Process) Resume() error { return p.cmd.Process.Signal(syscall.SIGCONT) }

// IsLeader reports whether this member leads its cluster (false if it does
// not answer within a second).
func (p *Process) IsLeader() bool {
	resp, err := p.probe.Get(p.Endpoint + "/metrics")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return regexp.MustCompile(`(?m)^etcd_server_is_leader 1$`).Match(b)
}

// syncBuffer is a bytes.Buffer safe for the process's two writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

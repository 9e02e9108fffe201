package etcdtest

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"syscall"
	"testing"
	"time"
)

// A Process is an etcd server started from an installed binary.
type Process struct {
	Endpoint string // its client URL
	Version  string // as etcd --version says, e.g. 3.4.23
	cmd      *exec.Cmd
}

// StartBinary starts the etcd binary named by $ETCD_BIN, or found as "etcd"
// on $PATH (Debian's etcd-server package installs /usr/bin/etcd), as a
// one-member cluster on loopback ports with a fresh data directory. It skips
// the test if there is no binary. The process is killed when the test ends.
func StartBinary(t testing.TB) *Process {
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
	p := &Process{Version: "unknown"}
	if m := regexp.MustCompile(`etcd Version: (\S+)`).FindSubmatch(out); m != nil {
		p.Version = string(m[1])
	}
	client, peer := freeURL(t), freeURL(t)
	p.Endpoint = client.String()
	var logs bytes.Buffer
	p.cmd = exec.Command(bin,
		"--name", "default",
		"--data-dir", t.TempDir(),
		"--listen-client-urls", client.String(), "--advertise-client-urls", client.String(),
		"--listen-peer-urls", peer.String(), "--initial-advertise-peer-urls", peer.String(),
		"--initial-cluster", "default="+peer.String(),
		"--log-level", "warn",
		"--unsafe-no-fsync", // test data: speed over durability (etcd 3.4.10 and later)
	)
	p.cmd.Stdout, p.cmd.Stderr = &logs, &logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.Endpoint + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd %s not healthy after 30s; its output:\n%s", p.Version, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("etcd %s (%s) at %s", p.Version, bin, p.Endpoint)
	return p
}

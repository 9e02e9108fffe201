// users.go creates throwaway users on the test host, for the rows of a run
// that change user (sudo -u, su) and for logging in as someone other than
// root. Only root can; the functions skip the test otherwise.

package sshtest

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NewUser creates a user with a unique name (rs followed by hex digits),
// /bin/sh as its shell, a home in a temporary directory and no password
// ("*": sshd without PAM refuses the "!" of a locked account), and deletes it
// when the test ends. It skips the test unless it runs as root with
// useradd and userdel installed.
func NewUser(t testing.TB) string {
	t.Helper()
	requireRoot(t, "useradd", "userdel")
	var b [4]byte
	rand.Read(b[:])
	name := "rs" + hex.EncodeToString(b[:])
	home := t.TempDir()
	if err := os.Chmod(filepath.Dir(home), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/bin/sh", "-U", "-p", "*", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		// sshd's process for a session of the user may outlive the
		// session by a moment; a test may also leave processes of the
		// user behind (some tests check that none is). Wait a little, then
		// stop those left, by pid, so that userdel can go on.
		waitGone(name, 2*time.Second)
		if out, err := exec.Command("pgrep", "-u", name).Output(); err == nil {
			ps, _ := exec.Command("ps", "-o", "pid,args", "-u", name).Output()
			var pids []string
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil {
					if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
						pids = append(pids, f)
					}
				}
			}
			t.Logf("killed processes that user %s left behind: %s\n%s", name, strings.Join(pids, " "), ps)
			waitGone(name, 5*time.Second)
		}
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
	})
	if out, err := exec.Command("chown", name+":", home).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v\n%s", home, err, out)
	}
	return name
}

// waitGone waits, for at most d, until the user has no process.
func waitGone(name string, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if exec.Command("pgrep", "-u", name).Run() != nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// AllowSudo lets user from run any command as user to with sudo, without
// a password, through a file in /etc/sudoers.d that is removed when the
// test ends. It skips the test unless it runs as root with sudo installed.
func AllowSudo(t testing.TB, from, to string) {
	t.Helper()
	requireRoot(t, "sudo", "visudo")
	for _, u := range []string{from, to} {
		if u == "" || strings.ContainsAny(u, " \t\n,:=()#\\/.") {
			t.Fatalf("AllowSudo: %q is not a plain user name", u)
		}
	}
	// sudo ignores files in sudoers.d whose names contain a dot.
	path := filepath.Join("/etc/sudoers.d", "sshtest-"+from+"-"+to)
	rule := from + " ALL=(" + to + ") NOPASSWD: ALL\n"
	tmp := filepath.Join(t.TempDir(), "sudoers")
	writeFile(t, tmp, rule, 0o440)
	if out, err := exec.Command("visudo", "-c", "-q", "-f", tmp).CombinedOutput(); err != nil {
		t.Fatalf("visudo -c %q: %v\n%s", rule, err, out)
	}
	writeFile(t, path, rule, 0o440)
	t.Cleanup(func() {
		if err := os.Remove(path); err != nil {
			t.Errorf("remove %s: %v", path, err)
		}
	})
}

// requireRoot skips the test unless it runs as root and the tools are
// installed.
func requireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("not root: cannot create users or sudo rules (these rows run as root, as CI does)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on $PATH: %v", tool, err)
		}
	}
}

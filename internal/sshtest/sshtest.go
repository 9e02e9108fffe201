// Package sshtest runs a throwaway OpenSSH server for tests: the system's
// sshd on a random loopback port, with its own host key, user key,
// known_hosts and an ssh_config that maps host names (web-1, web-2, web-3,
// and aliases for benchmarks) to it, all in a test's temporary directory.
// Tests then run the system's ssh client with -F Server.Config, exactly as
// production runs it with ~/.ssh/config.
//
// The server also carries a tool (Server.Tool) that prints the arguments it
// receives, the user it runs as and its SSHTEST_ environment (ParseTool
// reads its output), and, when the test runs as root, throwaway users with
// sudo rights for the rows of a run that change user (NewUser, AllowSudo).
//
// Start skips the test when /usr/sbin/sshd (or $SSHD) or ssh is missing:
// install Debian's openssh-server and openssh-client. As root, sshd needs
// its privilege separation directory /run/sshd, which Start creates (and
// leaves, as the openssh-server service does: other test processes may be
// using it).
package sshtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configure Start.
type Options struct {
	// Aliases is the number of extra host names host-0 … host-(N-1) that
	// the ssh_config maps to the server, for benchmarks across many
	// hosts. If zero, there are only web-1, web-2 and web-3.
	Aliases int
}

// A Server is a running sshd and the files that reach it.
type Server struct {
	// Dir is the server's directory: keys, configs, bin/. It and its
	// parent are world-readable (0755) so that other users (sudo -u, su)
	// can run the tools in it; the private keys in it are 0600.
	Dir string
	// Port is the loopback port sshd listens on.
	Port int
	// Config is the ssh_config file: run ssh with -F Config.
	Config string
	// User is the user that the host names log in as: the user running
	// the test.
	User string
	// Hosts are the host names that reach the server: web-1, web-2, web-3,
	// then the aliases.
	Hosts []string
	// Down is a host name whose port nothing listens on: ssh to it fails
	// (exit status 255).
	Down string
	// Tool is the path of the argument-printing tool on the host (see
	// ParseTool).
	Tool string

	sshd *exec.Cmd
	logs *syncBuffer
	exit chan struct{} // closed when sshd has exited
}

// Start starts sshd for the test and stops it when the test ends. It skips
// the test when sshd or ssh is not installed.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	sshd := os.Getenv("SSHD")
	if sshd == "" {
		sshd = "/usr/sbin/sshd"
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Skipf("no sshd at %s (install openssh-server, or set $SSHD): %v", sshd, err)
	}
	for _, tool := range []string{"ssh", "ssh-keygen"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("no %s on $PATH (install openssh-client): %v", tool, err)
		}
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("current user: %v", err)
	}
	dir := t.TempDir()
	// Other users must reach the tools (sudo -u, su) and read
	// authorized_keys (sshd reads it as the user logging in).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{Dir: dir, User: u.Username, Config: filepath.Join(dir, "ssh_config"), Down: "down"}
	if err := os.Mkdir(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	keygen(t, filepath.Join(dir, "host_key"))
	keygen(t, filepath.Join(dir, "id_ed25519"))
	pub, err := os.ReadFile(filepath.Join(dir, "id_ed25519.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "authorized_keys"), string(pub), 0o644)
	s.Tool = buildTool(t, filepath.Join(dir, "bin", "argv-tool"))
	if os.Geteuid() == 0 {
		// sshd as root refuses to start without it.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshd's privilege separation directory: %v", err)
		}
	}

	s.Hosts = []string{"web-1", "web-2", "web-3"}
	for i := range o.Aliases {
		s.Hosts = append(s.Hosts, "host-"+strconv.Itoa(i))
	}
	var lastErr error
	for range 5 { // the port found free may be taken before sshd binds it
		s.Port = freePort(t)
		if lastErr = s.start(t, sshd); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatal(lastErr)
	}
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "known_hosts"),
		fmt.Sprintf("[127.0.0.1]:%d %s", s.Port, hostPub), 0o644)
	s.writeConfig(t, freePort(t))
	return s
}

// start writes sshd's config, starts it and waits until it listens.
func (s *Server) start(t testing.TB, sshd string) error {
	t.Helper()
	cfg := filepath.Join(s.Dir, "sshd_config")
	lines := []string{
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(s.Dir, "host_key"),
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + filepath.Join(s.Dir, "authorized_keys"),
		"StrictModes no", // the keys live in a temporary directory
		"UsePAM no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitUserEnvironment no",
		"X11Forwarding no",
		"AllowTcpForwarding no",
		"PrintMotd no",
		"UseDNS no",
		"MaxStartups 200",
		"MaxSessions 200",
		"LogLevel INFO",         // "Server listening on ..." says it is ready
		"PerSourcePenalties no", // OpenSSH 9.8 and later: do not punish the tests' failures
	}
	writeFile(t, cfg, strings.Join(lines, "\n")+"\n", 0o644)
	if out, err := exec.Command(sshd, "-t", "-f", cfg).CombinedOutput(); err != nil {
		if !bytes.Contains(out, []byte("PerSourcePenalties")) {
			return fmt.Errorf("sshd -t -f %s: %v\n%s", cfg, err, out)
		}
		lines = lines[:len(lines)-1] // an OpenSSH before 9.8
		writeFile(t, cfg, strings.Join(lines, "\n")+"\n", 0o644)
	}

	s.logs = new(syncBuffer)
	s.exit = make(chan struct{})
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg, "-p", strconv.Itoa(s.Port))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = s.logs
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", sshd, err)
	}
	ready := make(chan struct{})
	go func() {
		// Copy sshd's log, and say when it listens.
		notify := ready
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.WriteString(line + "\n")
			if notify != nil && strings.Contains(line, "Server listening on") {
				close(notify)
				notify = nil
			}
		}
		io.Copy(io.Discard, stderr)
		cmd.Wait()
		close(s.exit)
	}()
	select {
	case <-ready:
	case <-s.exit:
		return fmt.Errorf("sshd exited before listening:\n%s", s.logs.String())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-s.exit
		return fmt.Errorf("sshd did not listen within 30s:\n%s", s.logs.String())
	}
	s.sshd = cmd
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.exit:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-s.exit
		}
	})
	return nil
}

// writeConfig writes the ssh_config that maps the host names to the
// server, and Down to downPort.
func (s *Server) writeConfig(t testing.TB, downPort int) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "# ssh_config of an sshtest server: use ssh -F %s\n", s.Config)
	for _, h := range s.Hosts {
		fmt.Fprintf(&b, "Host %s\n\tHostName 127.0.0.1\n\tPort %d\n", h, s.Port)
	}
	fmt.Fprintf(&b, "Host %s\n\tHostName 127.0.0.1\n\tPort %d\n", s.Down, downPort)
	fmt.Fprintf(&b, "Host *\n"+
		"\tUser %s\n"+
		"\tIdentityFile %s\n"+
		"\tIdentitiesOnly yes\n"+
		"\tUserKnownHostsFile %s\n"+
		"\tGlobalKnownHostsFile /dev/null\n"+
		"\tStrictHostKeyChecking yes\n"+
		"\tCheckHostIP no\n"+
		"\tBatchMode yes\n"+
		"\tConnectTimeout 10\n"+
		"\tControlMaster no\n"+
		"\tForwardAgent no\n"+
		"\tLogLevel ERROR\n",
		s.User, filepath.Join(s.Dir, "id_ed25519"), filepath.Join(s.Dir, "known_hosts"))
	writeFile(t, s.Config, b.String(), 0o644)
}

// Logs returns what sshd has logged so far.
func (s *Server) Logs() string { return s.logs.String() }

// Command returns an ssh command that runs remote (a shell command line)
// on host through the server's config, for tests that need ssh without the
// code under test.
func (s *Server) Command(ctx context.Context, host, remote string) *exec.Cmd {
	return exec.CommandContext(ctx, "ssh", "-F", s.Config, "-o", "BatchMode=yes", "-T", "--", host, remote)
}

// Script writes an executable file (mode 0755) named name into the
// server's bin directory and returns its path. body is the whole file,
// #! line included.
func (s *Server) Script(t testing.TB, name, body string) string {
	t.Helper()
	if strings.ContainsRune(name, '/') {
		t.Fatalf("Script: %q is not a file name", name)
	}
	p := filepath.Join(s.Dir, "bin", name)
	writeFile(t, p, body, 0o755)
	return p
}

// ToolOutput is what Server.Tool printed.
type ToolOutput struct {
	Args []string          // its arguments, without the program name
	User string            // the user it ran as
	Env  map[string]string // its SSHTEST_ environment variables
}

// ErrToolOutput reports output that is not the tool's.
var ErrToolOutput = errors.New("sshtest: not the output of the tool")

// ParseTool reads the output of Server.Tool.
func ParseTool(out []byte) (ToolOutput, error) {
	lines := strings.SplitN(string(out), "\n", 4)
	if len(lines) != 4 || lines[3] != "" {
		return ToolOutput{}, fmt.Errorf("%w: %q", ErrToolOutput, out)
	}
	var o ToolOutput
	if err := json.Unmarshal([]byte(lines[0]), &o.Args); err != nil {
		return ToolOutput{}, fmt.Errorf("%w: arguments %q: %v", ErrToolOutput, lines[0], err)
	}
	o.User = lines[1]
	if err := json.Unmarshal([]byte(lines[2]), &o.Env); err != nil {
		return ToolOutput{}, fmt.Errorf("%w: environment %q: %v", ErrToolOutput, lines[2], err)
	}
	return o, nil
}

// buildTool builds the argvtool command into path.
func buildTool(t testing.TB, path string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("sshtest builds its tool with the go command, which is not on $PATH: %v", err)
	}
	cmd := exec.Command(goBin, "build", "-o", path, "github.com/runspec/registry/internal/sshtest/argvtool")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build argvtool: %v\n%s", err, out)
	}
	if err := os.Chmod(path, 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// keygen makes an ed25519 key pair without a passphrase at path and
// path.pub.
func keygen(t testing.TB, path string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sshtest", "-f", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) WriteString(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b.WriteString(s)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

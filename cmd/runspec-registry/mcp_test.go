// mcp_test.go tests the mcp command: its flags (what goes together, TLS
// or --insecure beyond loopback), and the built binary over real stdio and
// over streamable HTTP and HTTPS (without, with a wrong and with the right
// token, a bad Origin, a generated token file) against internal/sshtest's
// sshd: a call arrives on the host with its arguments byte for byte and as
// its x-run-as user, and a cancelled call stops the remote command.

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/sshtest"
)

func TestMCPFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"stdio", nil, ""},
		{"loopback HTTP", []string{"--listen", "127.0.0.1:8766"}, ""},
		{"localhost HTTP", []string{"--listen", "localhost:8766"}, ""},
		{"IPv6 loopback", []string{"--listen", "[::1]:8766"}, ""},
		{"all addresses in clear", []string{"--listen", ":8766"}, "not a loopback address"},
		{"LAN address in clear", []string{"--listen", "192.0.2.1:8766"}, "not a loopback address"},
		{"insecure", []string{"--listen", "0.0.0.0:8766", "--insecure"}, ""},
		{"TLS", []string{"--listen", "0.0.0.0:8766", "--tls-cert", "c.pem", "--tls-key", "k.pem"}, ""},
		{"cert without key", []string{"--listen", "127.0.0.1:8766", "--tls-cert", "c.pem"}, "go together"},
		{"token file without HTTP", []string{"--token-file", "t"}, "HTTP only"},
		{"not host:port", []string{"--listen", "8766"}, "host:port"},
		{"bad autonomy", []string{"--autonomy", "yolo"}, "autonomy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, nil, append([]string{"mcp"}, tt.args...)...)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
	c, err := parse(t, nil, "mcp", "--label", "env=prod", "--label", "team=a,b", "--tool", "deploy*", "--agent", "ops")
	if err != nil {
		t.Fatal(err)
	}
	got := []any{c.MCP.Label, c.MCP.Tool, c.MCP.Agent, c.MCP.Autonomy, c.MCP.Registry}
	want := []any{[]string{"env=prod", "team=a,b"}, []string{"deploy*"}, "ops", "autonomous", "http://127.0.0.1:8765"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("flags mismatch (-want +got):\n%s", diff)
	}
}

// mcpArgvSchema is the schema of sshtest's argument-printing tool, in the
// order its flags are passed.
const mcpArgvSchema = `{"type":"object","properties":{
	"message":{"type":"string"},
	"tag":{"type":"array","items":{"type":"string"}},
	"flag":{"type":"boolean"},
	"count":{"type":"integer"}
},"required":["message"]}`

// mcpFleet is a registry in the test process with agents whose tools run
// on an sshtest host.
type mcpFleet struct {
	ssh     *sshtest.Server
	reg     *registry.Registry
	url     string
	runAs   string // the user the tools run as: a sudo target as root, else the SSH user
	marker  string // a file that the confirm tool creates when it runs
	pidFile string // where the sleeper tool writes its pid
}

func newMCPFleet(t *testing.T) *mcpFleet {
	t.Helper()
	s := sshtest.Start(t, sshtest.Options{})
	f := &mcpFleet{ssh: s, runAs: s.User, marker: s.Dir + "/confirm-ran"}
	runAs := ""
	if os.Geteuid() == 0 {
		f.runAs = sshtest.NewUser(t)
		sshtest.AllowSudo(t, s.User, f.runAs)
		runAs = f.runAs
	} else {
		t.Log("not root: the tools run as the SSH user, not through sudo")
	}
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	hs := httptest.NewServer(reg)
	t.Cleanup(hs.Close)
	f.url = hs.URL
	touch := s.Script(t, "touch-marker", "#!/bin/sh\ntouch "+f.marker+"\necho touched\n")
	f.pidFile = s.Dir + "/sleeper.pid"
	sleeper := s.Script(t, "sleeper", "#!/bin/sh\necho $$ > "+f.pidFile+"\nexec sleep 120\n")
	tools := []string{
		`{"name":"argv","description":"Print the arguments","x-command":` + quoteJSON(s.Tool) + `,"x-run-as":` + quoteJSON(runAs) +
			`,"x-autonomy":"autonomous","inputSchema":` + mcpArgvSchema + `}`,
		`{"name":"needs-ok","description":"Touch a file","x-command":` + quoteJSON(touch) + `,"x-autonomy":"confirm"}`,
		`{"name":"by-hand","description":"Only by hand","x-command":` + quoteJSON(touch) + `,"x-autonomy":"manual"}`,
		`{"name":"sleeper","description":"Sleep","x-command":` + quoteJSON(sleeper) + `,"x-autonomy":"autonomous"}`,
	}
	f.agent(t, "a1", "web-1", tools...)
	f.agent(t, "a2", "web-2", tools[0])
	return f
}

func (f *mcpFleet) agent(t *testing.T, id, host string, tools ...string) {
	t.Helper()
	ctx := context.Background()
	if err := f.reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: host}); err != nil {
		t.Fatal(err)
	}
	raw := make([]json.RawMessage, len(tools))
	for i, s := range tools {
		raw[i] = json.RawMessage(s)
	}
	if err := f.reg.UpdateTools(ctx, id, raw); err != nil {
		t.Fatal(err)
	}
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// hostile are arguments that must arrive as they are: quotes, command
// substitution, newlines, words that look like flags.
var hostile = map[string]any{
	"runspec_host": "web-2",
	"message":      "it's $(id) `id` \"q\" \\ ; rm -rf / \n\ttab ünï €",
	"tag":          []any{"a b", "--flag", "'", "", "-u root"},
	"flag":         true,
	"count":        3,
}

var hostileArgv = []string{
	"--message", "it's $(id) `id` \"q\" \\ ; rm -rf / \n\ttab ünï €",
	"--tag", "a b", "--tag", "--flag", "--tag", "'", "--tag", "", "--tag", "-u root",
	"--flag", "--count", "3",
}

// checkFleetCalls runs the calls every transport must get right.
func checkFleetCalls(t *testing.T, f *mcpFleet, cs *mcp.ClientSession) {
	t.Helper()
	ctx := t.Context()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, tl := range tools.Tools {
		listed = append(listed, tl.Name)
	}
	if diff := cmp.Diff([]string{"argv", "needs-ok", "sleeper"}, listed); diff != "" {
		t.Errorf("listing mismatch (-want +got):\n%s", diff)
	}

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "argv", Arguments: hostile})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("argv failed: %s", resultText(res))
	}
	out, err := sshtest.ParseTool([]byte(res.Content[0].(*mcp.TextContent).Text))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(hostileArgv, out.Args); diff != "" {
		t.Errorf("arguments on the host mismatch (-want +got):\n%s", diff)
	}
	if out.User != f.runAs {
		t.Errorf("ran as %s, want %s", out.User, f.runAs)
	}

	// manual: not callable; confirm without elicitation: not run.
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "by-hand"}); err == nil && !res.IsError {
		t.Errorf("a manual tool ran: %s", resultText(res))
	}
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "needs-ok"})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(resultText(res), "a person must approve") {
		t.Errorf("a confirm tool without elicitation: %s", resultText(res))
	}
	if _, err := os.Stat(f.marker); err == nil {
		t.Errorf("the confirm tool ran without approval")
	}

	// An exit status, and an unknown host.
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "argv", Arguments: map[string]any{"runspec_host": "web-9", "message": "m"}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.IsError || !strings.Contains(resultText(res), "web-1, web-2") {
		t.Errorf("an unknown host: %s", resultText(res))
	}
}

// checkCancel cancels a call of the sleeper tool once it runs on the
// host, and checks that the remote command stops.
func checkCancel(t *testing.T, f *mcpFleet, cs *mcp.ClientSession) {
	t.Helper()
	os.Remove(f.pidFile)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	called := make(chan error, 1)
	go func() {
		_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "sleeper", Arguments: map[string]any{"runspec_host": "web-1"}})
		called <- err
	}()
	pid := 0
	waitUntil(t, "the sleeper to start on the host", func() bool {
		b, err := os.ReadFile(f.pidFile)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
		return err == nil
	})
	cancel()
	if err := <-called; err == nil {
		t.Error("a cancelled call answered without an error")
	}
	waitUntil(t, "the remote command to stop", func() bool { return syscall.Kill(pid, 0) != nil })
}

// waitUntil polls cond (every 20ms, for at most 20s): for conditions of
// other processes, which send nothing to wait on.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 20s for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func resultText(res *mcp.CallToolResult) string {
	if res == nil {
		return "<nil>"
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// lines collects a process's stderr and finds a line in it.
type lines struct {
	mu   sync.Mutex
	text strings.Builder
	cond *sync.Cond
}

func collect(t *testing.T, cmd *exec.Cmd) *lines {
	t.Helper()
	l := &lines{}
	l.cond = sync.NewCond(&l.mu)
	r, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.text.WriteString(sc.Text() + "\n")
			l.cond.Broadcast()
			l.mu.Unlock()
		}
		l.mu.Lock()
		l.text.WriteString("[end]\n")
		l.cond.Broadcast()
		l.mu.Unlock()
	}()
	return l
}

// find waits for a line matching re and returns its first group.
func (l *lines) find(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	timer := time.AfterFunc(30*time.Second, func() { l.mu.Lock(); l.cond.Broadcast(); l.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(30 * time.Second)
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if m := re.FindStringSubmatch(l.text.String()); m != nil {
			return m[1]
		}
		if strings.HasSuffix(l.text.String(), "[end]\n") || time.Now().After(deadline) {
			t.Fatalf("no line matching %s in:\n%s", re, l.text.String())
		}
		l.cond.Wait()
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.text.String()
}

func TestMCPBinary(t *testing.T) {
	bin := buildBinary(t)
	f := newMCPFleet(t)
	base := []string{"mcp", "--registry", f.url, "--ssh-config", f.ssh.Config}

	t.Run("stdio", func(t *testing.T) {
		cmd := exec.Command(bin, base...)
		logs := collect(t, cmd)
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := c.Connect(t.Context(), &mcp.CommandTransport{Command: cmd}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, logs)
		}
		defer cs.Close()
		checkFleetCalls(t, f, cs)
		checkCancel(t, f, cs)
	})

	t.Run("https", func(t *testing.T) {
		dir := t.TempDir()
		pool := writeCert(t, dir)
		const token = "tls-t0ken-0123456789"
		cmd := exec.Command(bin, append(base, "--listen", "127.0.0.1:0", "--tls-cert", dir+"/cert.pem", "--tls-key", dir+"/key.pem")...)
		cmd.Env = append(os.Environ(), tokenEnv+"="+token)
		logs := collect(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		url := logs.find(t, regexp.MustCompile(`msg=listening url=(\S+)`))
		if !strings.HasPrefix(url, "https://") {
			t.Fatalf("listening on %s, want https", url)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
			Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token, tr}}}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, logs)
		}
		defer cs.Close()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "argv", Arguments: map[string]any{"runspec_host": "web-1", "message": "over TLS"}})
		if err != nil || res.IsError {
			t.Fatalf("call over TLS: %v %s", err, resultText(res))
		}
	})

	t.Run("http", func(t *testing.T) {
		const token = "t0ken-for-the-test-0123456789"
		cmd := exec.Command(bin, append(base, "--listen", "127.0.0.1:0")...)
		cmd.Env = append(os.Environ(), tokenEnv+"="+token)
		logs := collect(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		url := logs.find(t, regexp.MustCompile(`msg=listening url=(\S+)`))
		for _, tt := range []struct {
			name, auth, origin string
			want               int
		}{
			{"no token", "", "", http.StatusUnauthorized},
			{"wrong token", "Bearer " + token + "x", "", http.StatusUnauthorized},
			{"bad origin", "Bearer " + token, "http://evil.example", http.StatusForbidden},
		} {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("%s: status %d, want %d", tt.name, resp.StatusCode, tt.want)
			}
		}
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
			Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token: token}}}, nil)
		if err != nil {
			t.Fatalf("connect: %v\n%s", err, logs)
		}
		defer cs.Close()
		checkFleetCalls(t, f, cs)
		if strings.Contains(logs.String(), token) {
			t.Errorf("the token is in the log:\n%s", logs)
		}
	})

	t.Run("generated token", func(t *testing.T) {
		cmd := exec.Command(bin, append(base, "--listen", "127.0.0.1:0")...)
		env := []string{"XDG_RUNTIME_DIR=" + t.TempDir()}
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, tokenEnv+"=") && !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
				env = append(env, kv)
			}
		}
		cmd.Env = env
		logs := collect(t, cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		path := logs.find(t, regexp.MustCompile(`token_file=(\S+)`))
		url := logs.find(t, regexp.MustCompile(`msg=listening url=(\S+)`))
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		token := strings.TrimSpace(string(b))
		if len(token) < 32 || strings.Contains(logs.String(), token) {
			t.Errorf("token %q too short or in the log:\n%s", token, logs)
		}
		c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
		cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
			Endpoint: url, HTTPClient: &http.Client{Transport: bearer{token: token}}}, nil)
		if err != nil {
			t.Fatalf("connect with the generated token: %v\n%s", err, logs)
		}
		cs.Close()
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if _, err := os.Stat(path); err == nil {
			t.Errorf("the token file %s is left after the server stopped", path)
		}
	})
}

// bearer adds a bearer token to each request, sent by next (or
// http.DefaultTransport).
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	if b.next == nil {
		return http.DefaultTransport.RoundTrip(r)
	}
	return b.next.RoundTrip(r)
}

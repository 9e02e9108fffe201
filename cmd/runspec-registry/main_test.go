// main_test.go tests the command: flag parsing with kong, and end-to-end runs
// of the built binary (plain HTTP, HTTPS with a generated certificate, an API
// key) driving a whole agent life over real sockets.

package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
)

func parse(t *testing.T, env map[string]string, args ...string) (*cli, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c cli
	var out bytes.Buffer
	p, err := newParser(&c, kong.Exit(func(int) {}), kong.Writers(&out, &out), kong.Vars{"version": "test"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Parse(args)
	return &c, err
}

func TestFlags(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Serve
	got := []any{s.Host, s.Port, s.PurgeInterval, s.HeartbeatInterval, s.RetainInactive, s.RateLimitWrite, s.RateLimitHeartbeat, s.MaxBodyBytes, s.MaxTools, s.APIKey == nil}
	want := []any{"0.0.0.0", 8765, 60 * time.Second, 30 * time.Second, 72 * time.Hour, 60, 120, int64(1 << 20), 10000, true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults mismatch (-want +got):\n%s", diff)
	}

	c, err = parse(t, map[string]string{"RUNSPEC_REGISTRY_PORT": "9000", "RUNSPEC_REGISTRY_API_KEY": "s3cret"},
		"--reload", "--heartbeat-interval", "5s", "--trusted-proxies", "10.0.0.0/8,192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := c.Serve.options(nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Serve.Port != 9000 || opts.APIKey != "s3cret" || opts.HeartbeatInterval != 5*time.Second || len(opts.TrustedProxies) != 2 || !c.Serve.Reload {
		t.Errorf("env and flags not applied: port %d key %q interval %v proxies %v reload %v",
			c.Serve.Port, opts.APIKey, opts.HeartbeatInterval, opts.TrustedProxies, c.Serve.Reload)
	}
}

func TestOptionErrors(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	os.WriteFile(keyFile, []byte("  from-file\n"), 0o600)
	emptyFile := filepath.Join(t.TempDir(), "empty")
	os.WriteFile(emptyFile, []byte("\n"), 0o600)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		wantKey string
	}{
		{"empty key flag", []string{"--api-key", ""}, nil, "API key is empty", ""},
		{"empty key env", nil, map[string]string{"RUNSPEC_REGISTRY_API_KEY": ""}, "API key is empty", ""},
		{"key file", []string{"--api-key-file", keyFile}, nil, "", "from-file"},
		{"empty key file", []string{"--api-key-file", emptyFile}, nil, "is empty", ""},
		{"two keys", []string{"--api-key", "a", "--api-key-file", keyFile}, nil, "once", ""},
		{"bad proxy", []string{"--trusted-proxies", "nonsense"}, nil, "neither a CIDR", ""},
		{"bad purge interval", []string{"--purge-interval", "0"}, nil, "purge-interval", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parse(t, tt.env, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := c.Serve.options(nil)
			if tt.wantErr == "" {
				if err != nil || opts.APIKey != tt.wantKey {
					t.Fatalf("options: key %q, err %v; want key %q", opts.APIKey, err, tt.wantKey)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("options error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

// buildBinary builds the command once per test binary run.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := filepath.Join(t.TempDir(), "runspec-registry")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// server is a running binary.
type server struct {
	cmd  *exec.Cmd
	url  string
	logs logBuffer
	done chan error
}

// logBuffer collects the server's log lines as they come.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) add(line string) {
	b.mu.Lock()
	b.buf.WriteString(line + "\n")
	b.mu.Unlock()
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// listeningRE finds the address in the "listening" line, text or JSON.
var listeningRE = regexp.MustCompile(`msg=listening url=(\S+)|"msg":"listening","url":"([^"]+)"`)

// start runs bin with args and waits for its "listening" log line.
func start(t *testing.T, bin string, env []string, args ...string) *server {
	t.Helper()
	if !slices.Contains(args, "--in-memory") && !slices.Contains(args, "--data-dir") && !slices.Contains(args, "etcd") {
		args = append(args, "--data-dir", t.TempDir()) // never the real state directory
	}
	cmd := exec.Command(bin, append([]string{"--host", "127.0.0.1", "--port", "0"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, done: make(chan error, 1)}
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			s.logs.add(sc.Text())
			if m := listeningRE.FindStringSubmatch(sc.Text()); m != nil {
				urls <- m[1] + m[2]
			}
		}
		s.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
	})
	select {
	case s.url = <-urls:
	case err := <-s.done:
		t.Fatalf("server exited before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not log its address within 30s")
	}
	return s
}

// stop sends SIGTERM and waits for a clean exit.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
}

type agent struct {
	t      *testing.T
	client *http.Client
	base   string
	key    string
}

func (a agent) do(method, path, body string) (int, string) {
	a.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.base+path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if a.key != "" {
		req.Header.Set("X-API-Key", a.key)
	}
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func (a agent) expect(method, path, body string, wantCode int, wantBody string) string {
	a.t.Helper()
	code, got := a.do(method, path, body)
	if code != wantCode || (wantBody != "" && got != wantBody) {
		a.t.Fatalf("%s %s: %d %s, want %d %s", method, path, code, got, wantCode, wantBody)
	}
	return got
}

// life drives what the real agent does: register, post tools, heartbeat
// with no body, appear in /tools, deregister on SIGTERM.
func (a agent) life() {
	a.t.Helper()
	a.expect("POST", "/instances", `{"instance_id":"e2e-1","name":"ops","version":"1","host":"web-1"}`, 201, `{"status":"ok"}`)
	a.expect("POST", "/instances/e2e-1/heartbeat", "", 200, `{"status":"refresh"}`)
	a.expect("POST", "/instances/e2e-1/tools", `{"tools":[{"name":"deploy","description":"Deploy","inputSchema":{"type":"object"},"x-command":"/bin/deploy","x-run-as":"oracle"}]}`, 200, `{"status":"ok"}`)
	a.expect("POST", "/instances/e2e-1/heartbeat", "", 200, `{"status":"ack"}`)
	a.expect("GET", "/tools", "", 200,
		`[{"name":"deploy","description":"Deploy","inputSchema":{"type":"object"},"hosts":[{"host":"web-1","x-command":"/bin/deploy","x-run-as":"oracle"}]}]`)
	a.expect("DELETE", "/instances/e2e-1", "", 200, `{"status":"ok"}`)
	a.expect("GET", "/tools", "", 200, `[]`)
	var in struct{ Active bool }
	json.Unmarshal([]byte(a.expect("GET", "/instances/e2e-1", "", 200, "")), &in)
	if in.Active {
		a.t.Fatal("instance still active after DELETE")
	}
	a.expect("GET", "/health", "", 200, `{"status":"ok"}`)
}

func TestEndToEnd(t *testing.T) {
	bin := buildBinary(t)

	t.Run("plain", func(t *testing.T) {
		s := start(t, bin, nil, "--rate-limit-write", "0")
		agent{t: t, client: http.DefaultClient, base: s.url}.life()
		s.stop(t)
	})

	t.Run("api key", func(t *testing.T) {
		s := start(t, bin, []string{"RUNSPEC_REGISTRY_API_KEY=k-e2e"}, "--rate-limit-write", "0")
		a := agent{t: t, client: http.DefaultClient, base: s.url}
		a.expect("POST", "/instances", `{"instance_id":"x"`, 403, `{"detail":"Invalid or missing API key"}`)
		a.key = "wrong"
		a.expect("POST", "/instances/x/heartbeat", "", 403, `{"detail":"Invalid or missing API key"}`)
		a.key = "k-e2e"
		a.life()
		if strings.Contains(s.logs.String(), "k-e2e") {
			t.Error("the API key appears in the log")
		}
		s.stop(t)
	})

	t.Run("tls", func(t *testing.T) {
		dir := t.TempDir()
		pool := writeCert(t, dir)
		s := start(t, bin, nil, "--rate-limit-write", "0",
			"--ssl-certfile", filepath.Join(dir, "cert.pem"), "--ssl-keyfile", filepath.Join(dir, "key.pem"))
		if !strings.HasPrefix(s.url, "https://") {
			t.Fatalf("url %s is not https", s.url)
		}
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		agent{t: t, client: client, base: s.url}.life()
		old := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
		if _, err := old.Get(s.url + "/health"); err == nil {
			t.Error("TLS 1.1 accepted")
		}
		s.stop(t)
	})

	t.Run("rate limit", func(t *testing.T) {
		s := start(t, bin, nil, "--rate-limit-write", "5")
		a := agent{t: t, client: http.DefaultClient, base: s.url}
		for i := 0; i < 5; i++ {
			a.expect("POST", "/instances", `{"instance_id":"r","name":"ops","version":"1","host":"h"}`, 201, "")
		}
		req, _ := http.NewRequest("POST", s.url+"/instances", strings.NewReader(`{}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
			t.Errorf("6th register: %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		s.stop(t)
	})

	t.Run("empty api key refuses to start", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, bin, "--port", "0", "--in-memory", "--api-key", "").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "API key is empty") {
			t.Fatalf("exit %v, output %s; want a failure naming the empty key", err, out)
		}
	})
}

// writeCert writes a self-signed certificate for 127.0.0.1 into dir and
// returns a pool that trusts it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "runspec-registry test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

func TestEtcdFlags(t *testing.T) {
	c, err := parse(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Serve.EtcdEndpoints; !slices.Equal(got, []string{"http://127.0.0.1:2379"}) || c.Serve.EtcdPrefix != "/runspec-registry/" {
		t.Errorf("defaults: endpoints %v prefix %q", got, c.Serve.EtcdPrefix)
	}
	if _, err := parse(t, nil, "--store", "zookeeper"); err == nil {
		t.Error("--store zookeeper accepted")
	}
	c, err = parse(t, map[string]string{"RUNSPEC_REGISTRY_ETCD_ENDPOINTS": "http://a:2379,http://b:2379"},
		"--store", "etcd", "--etcd-prefix", "/fleet/")
	if err != nil {
		t.Fatal(err)
	}
	f := c.Serve.storeFlags
	if diff := cmp.Diff([]any{"etcd", []string{"http://a:2379", "http://b:2379"}, "/fleet/"},
		[]any{f.Store, f.EtcdEndpoints, f.EtcdPrefix}); diff != "" {
		t.Errorf("etcd flags (-want +got):\n%s", diff)
	}

	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	for _, tt := range []struct{ ca, cert, key, want string }{
		{filepath.Join(dir, "missing.pem"), "", "", "--etcd-cacert"},
		{notPEM, "", "", "no PEM certificate"},
		{"", notPEM, "", "go together"},
		{"", notPEM, notPEM, "--etcd-cert/--etcd-key"},
	} {
		if _, err := etcdTLS(tt.ca, tt.cert, tt.key); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("etcdTLS(%q, %q, %q) = %v, want an error with %q", tt.ca, tt.cert, tt.key, err, tt.want)
		}
	}
}

// TestEtcdUnreachable: with no etcd, serve exits with an error that names
// the endpoint.
func TestEtcdUnreachable(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "--store", "etcd", "--etcd-endpoints", "http://127.0.0.1:1", "--port", "0")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("serve without etcd exited 0:\n%s", out)
	}
	if !strings.Contains(string(out), "127.0.0.1:1") {
		t.Errorf("the error does not name the endpoint:\n%s", out)
	}
}

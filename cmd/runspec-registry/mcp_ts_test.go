// mcp_ts_test.go drives the built binary from a client that is not ours:
// the TypeScript MCP SDK's (testdata/mcp-ts/client.mjs, with
// @modelcontextprotocol/sdk at the version package-lock.json pins),
// installed with npm ci into a temporary directory, over stdio and
// streamable HTTP, against an sshtest host and a registry whose agents
// really expire. It skips when node or npm is missing.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestTypeScriptClient(t *testing.T) {
	if testing.Short() {
		t.Skip("installs the TypeScript MCP SDK with npm and runs the binary")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("no node on $PATH: install nodejs and npm (Debian's packages) to run the TypeScript client")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("no npm on $PATH: install npm (Debian's package) to run the TypeScript client")
	}
	dir := t.TempDir()
	for _, name := range []string{"package.json", "package-lock.json", "client.mjs"} {
		b, err := os.ReadFile(filepath.Join("testdata", "mcp-ts", name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	install := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	install.Dir = dir
	if out, err := install.CombinedOutput(); err != nil {
		if regexp.MustCompile(`ENOTFOUND|EAI_AGAIN|ETIMEDOUT|ECONNREFUSED|ECONNRESET`).Match(out) {
			t.Skipf("npm ci could not reach the npm registry (no network?): %v\n%s", err, out)
		}
		t.Fatalf("npm ci: %v\n%s", err, out)
	}

	bin := buildBinary(t)
	f := newMCPFleet(t)
	// The registry's timers expire the TypeScript client's agent.
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.reg.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	f.agent(t, "a9", "web-3", `{"name":"ns.tool","description":"An aliased name","x-command":"/bin/true","x-autonomy":"autonomous"}`)

	args := []string{"mcp", "--registry", f.url, "--ssh-config", f.ssh.Config}
	const token = "ts-t0ken-0123456789abcdef"
	srv := exec.Command(bin, append(args, "--listen", "127.0.0.1:0")...)
	srv.Env = append(os.Environ(), tokenEnv+"="+token)
	logs := collect(t, srv)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	url := logs.find(t, regexp.MustCompile(`msg=listening url=(\S+)`))

	argsJSON, _ := json.Marshal(args)
	script := exec.CommandContext(ctx, node, "client.mjs")
	script.Dir = dir
	script.Env = append(os.Environ(), "MCP_BIN="+bin, "MCP_ARGS="+string(argsJSON), "REGISTRY_URL="+f.url,
		"MCP_HTTP_URL="+url, "MCP_TOKEN="+token)
	out, err := script.CombinedOutput()
	t.Logf("client.mjs:\n%s", out)
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Errorf("client.mjs failed (status %d): see its lines above", exit.ExitCode())
	case err != nil:
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^[1-9]\d* passed, 0 failed$`).Match(out) {
		t.Errorf("client.mjs did not report its checks")
	}
	if _, err := os.Stat(f.marker); err == nil {
		t.Errorf("the confirm tool ran without approval")
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token is in the server's log")
	}
}

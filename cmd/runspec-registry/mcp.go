// mcp.go holds the mcp command: the fleet as one MCP server
// (internal/fleetmcp), over stdio or streamable HTTP, with its flags, the
// bearer token of HTTP and the rule that HTTP beyond loopback needs TLS.

package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/alecthomas/kong"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/client"
	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
	sshrun "github.com/runspec/registry/run" // "run" is a test helper of this package
)

// tokenEnv is the environment variable that holds the HTTP bearer token.
const tokenEnv = "RUNSPEC_REGISTRY_MCP_TOKEN"

// mcpCmd is the mcp command: its flags, and Run.
type mcpCmd struct {
	clientFlags `embed:""`
	sshFlags    `embed:""`

	Listen        string   `name:"listen" placeholder:"ADDR" help:"Serve streamable HTTP at http(s)://ADDR/mcp instead of stdio (host:port)."`
	TokenFile     string   `name:"token-file" type:"path" help:"File holding the bearer token HTTP clients must send (default: $RUNSPEC_REGISTRY_MCP_TOKEN, else one is generated into a 0600 file whose path is logged)."`
	TLSCert       string   `name:"tls-cert" type:"path" help:"TLS certificate chain (PEM) for HTTP."`
	TLSKey        string   `name:"tls-key" type:"path" help:"TLS private key (PEM) for HTTP."`
	Insecure      bool     `name:"insecure" help:"Allow plain HTTP on an address that is not loopback (the token then crosses the network in clear)."`
	Autonomy      string   `name:"autonomy" default:"autonomous" enum:"manual,confirm,supervised,autonomous" help:"Cap on what runs without asking a person: a tool runs unasked only if both its x-autonomy and this allow it (manual, confirm, supervised, autonomous)."`
	PrintCommands bool     `name:"print-commands" help:"When a client cannot ask a person to approve a confirm tool, include the ready-to-run ssh command line in the refusal."`
	Tool          []string `name:"tool" placeholder:"GLOB" sep:"none" help:"Offer only tools whose name matches GLOB (repeatable)."`
	Agent         string   `name:"agent" placeholder:"NAME" help:"Offer only the tools of agents of this name."`
	Label         []string `name:"label" placeholder:"K=V" sep:"none" help:"Offer only the tools of instances with this label (repeatable: all must match)."`
	LogFormat     string   `name:"log-format" default:"text" enum:"text,json" help:"Log format (on stderr): text or json."`
	LogLevel      string   `name:"log-level" default:"info" enum:"debug,info,warn,error" help:"Log level."`
}

// AfterApply checks the flags that go together before anything starts.
func (m *mcpCmd) AfterApply() error {
	if (m.TLSCert == "") != (m.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if m.Listen == "" {
		for flag, set := range map[string]bool{"--token-file": m.TokenFile != "", "--tls-cert": m.TLSCert != "", "--insecure": m.Insecure} {
			if set {
				return fmt.Errorf("%s applies to HTTP only: add --listen ADDR", flag)
			}
		}
		return nil
	}
	host, _, err := net.SplitHostPort(m.Listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %v (write host:port, e.g. 127.0.0.1:8766)", m.Listen, err)
	}
	if !loopbackHost(host) && m.TLSCert == "" && !m.Insecure {
		return fmt.Errorf("--listen %s is not a loopback address: serve TLS (--tls-cert, --tls-key) or say --insecure", m.Listen)
	}
	return nil
}

// loopbackHost reports whether a listen host is loopback only ("" and
// 0.0.0.0 are every address).
func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// server builds the fleet's MCP server from the flags.
func (m *mcpCmd) server(log *slog.Logger, version string) (*fleetmcp.Server, error) {
	labels, err := fleetmcp.ParseLabels(m.Label)
	if err != nil {
		return nil, err
	}
	level, err := fleetmcp.ParseAutonomy(m.Autonomy)
	if err != nil {
		return nil, err
	}
	c, err := client.New(m.Registry, client.Options{APIKey: m.RegistryKey, CAFile: m.RegistryCert, Logger: log})
	if err != nil {
		return nil, err
	}
	r, err := sshrun.New(sshrun.Options{SSH: m.SSHBinary, ConfigFile: m.SSHConfig, SSHOptions: m.SSHOption, User: m.SSHUser})
	if err != nil {
		return nil, err
	}
	return fleetmcp.New(fleetmcp.Options{
		Source: c, Runner: r,
		View:          fleetmcp.View{Tools: m.Tool, Agent: m.Agent, Labels: labels},
		MaxAutonomy:   level,
		PrintCommands: m.PrintCommands,
		SSHUser:       m.SSHUser,
		Timeout:       m.Timeout,
		Version:       version,
		Logger:        log,
	})
}

// Run serves until ctx ends (SIGINT, SIGTERM) or, on stdio, until the
// client closes its end.
func (m *mcpCmd) Run(ctx context.Context, vars kong.Vars) error {
	// main's GOGC=50 suits the registry; here the heap is the catalog,
	// which stays, and the garbage is the answers' encoding: Go's default
	// halves the collections. GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(100)
	}
	log, err := newLogger(os.Stderr, m.LogFormat, m.LogLevel)
	if err != nil {
		return err
	}
	s, err := m.server(log, vars["version"])
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	watched := make(chan error, 1)
	go func() { watched <- s.Run(ctx) }()
	defer func() { cancel(); <-watched }()

	// Serve once the fleet is listed, so that a first tools/list is not
	// empty; a registry that does not answer is logged and retried.
	select {
	case <-s.Ready():
	case <-time.After(15 * time.Second):
		log.Warn("the registry has not answered yet: serving an empty listing until it does", "registry", m.Registry)
	case <-ctx.Done():
		return nil
	}
	if m.Listen == "" {
		log.Info("serving MCP on stdio", "registry", m.Registry)
		err := s.MCP().Run(ctx, &mcp.StdioTransport{})
		if ctx.Err() != nil || errors.Is(err, mcp.ErrConnectionClosed) {
			return nil
		}
		return err
	}
	return m.serveHTTP(ctx, s, log)
}

// serveHTTP serves streamable HTTP at --listen until ctx ends.
func (m *mcpCmd) serveHTTP(ctx context.Context, s *fleetmcp.Server, log *slog.Logger) error {
	token, cleanup, err := m.token(log)
	if err != nil {
		return err
	}
	defer cleanup()
	h, err := s.Handler(fleetmcp.HTTPOptions{Token: token})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", m.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          serverErrorLog(log),
		// No WriteTimeout: answers are event streams that last as long
		// as a run or a session.
	}
	scheme := "http"
	if m.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(m.TLSCert, m.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("loading the TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
		ln = tls.NewListener(ln, srv.TLSConfig)
		scheme = "https"
	}
	log.Info("listening", "url", scheme+"://"+ln.Addr().String()+fleetmcp.Path, "registry", m.Registry)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		srv.Close()
	}
	return nil
}

// token returns the bearer token: from --token-file, else from the
// environment, else a new one written to a 0600 file (removed at exit)
// whose path is logged. The token itself is never logged.
func (m *mcpCmd) token(log *slog.Logger) (string, func(), error) {
	nothing := func() {}
	if m.TokenFile != "" {
		b, err := os.ReadFile(m.TokenFile)
		if err != nil {
			return "", nothing, fmt.Errorf("--token-file: %w", err)
		}
		t := strings.TrimSpace(string(b))
		if t == "" {
			return "", nothing, fmt.Errorf("--token-file %s is empty", m.TokenFile)
		}
		return t, nothing, nil
	}
	if t, ok := os.LookupEnv(tokenEnv); ok {
		if t = strings.TrimSpace(t); t == "" {
			return "", nothing, fmt.Errorf("%s is empty", tokenEnv)
		}
		return t, nothing, nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	t := hex.EncodeToString(b)
	dir := os.Getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "runspec-registry-mcp-token-*") // mode 0600
	if err != nil {
		return "", nothing, fmt.Errorf("writing a token file: %w", err)
	}
	path := f.Name()
	if _, err := f.WriteString(t + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", nothing, fmt.Errorf("writing the token file: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", nothing, err
	}
	abs, _ := filepath.Abs(path)
	log.Info("generated a bearer token for HTTP clients: send it as Authorization: Bearer TOKEN", "token_file", abs)
	return t, func() { os.Remove(path) }, nil
}

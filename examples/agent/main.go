// Command agent is an example runspec agent: it registers one tool (hello
// by default) under this host's name with a registry, heartbeats, survives
// registry restarts and outages, and deregisters when interrupted. It needs
// a registry to talk to, and retries until one answers:
//
//	go run ./cmd/runspec-registry --in-memory &     # a registry on :8765
//	go run ./examples/agent                         # registry at http://127.0.0.1:8765
//	go run ./examples/agent -url https://registry:8765 -cafile ca.pem -tool deploy
//	go run ./examples/agent -url http://127.0.0.1:8080/registry   # the one examples/embed serves
//
// The API key comes from -key or, better (flags show in ps), from
// RUNSPEC_REGISTRY_API_KEY.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runspec/registry/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(1)
	}
}

// run parses args, then runs the agent until ctx ends.
func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8765", "registry base URL")
	key := fs.String("key", "", "API key for writes (default: $RUNSPEC_REGISTRY_API_KEY)")
	tool := fs.String("tool", "hello", "name of the tool to offer")
	name := fs.String("name", "example", "agent (group) name")
	host := fs.String("host", "", "host name to register under (default: this host's name)")
	caFile := fs.String("cafile", "", "PEM file of the CAs to trust for an https registry")
	interval := fs.Duration("interval", 10*time.Second, "heartbeat interval")
	debug := fs.Bool("debug", false, "log every request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = os.Getenv("RUNSPEC_REGISTRY_API_KEY")
	}
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	c, err := client.New(*url, client.Options{APIKey: *key, CAFile: *caFile, Logger: log})
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()
	schema, err := json.Marshal(map[string]any{
		"name":        *tool,
		"description": "Say hello",
		"inputSchema": map[string]any{
			"type":       "object",
			"properties": map[string]any{"name": map[string]any{"type": "string"}},
		},
		"x-command": "echo hello",
	})
	if err != nil {
		return err
	}
	a, err := client.NewAgent(c, client.AgentConfig{
		Name:              *name,
		Host:              *host,
		Tools:             []json.RawMessage{schema},
		HeartbeatInterval: *interval,
	})
	if err != nil {
		return err
	}
	// Run retries an absent registry for ever; say once what it waits for.
	if err := c.Health(ctx); err != nil {
		log.Warn("no registry answers: start one (go run ./cmd/runspec-registry --in-memory) or give -url; retrying",
			"registry", *url, "err", err)
	}
	cfg := a.Config()
	log.Info("agent starting", "registry", *url, "instance_id", a.ID(), "name", cfg.Name, "host", cfg.Host, "tool", *tool)
	if err := a.Run(ctx); err != nil {
		return fmt.Errorf("deregistering: %w", err)
	}
	log.Info("agent deregistered", "instance_id", a.ID())
	return nil
}

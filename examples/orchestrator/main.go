// Command orchestrator is an example discovery client: it watches a tool
// (hello by default) in a registry and prints which hosts can run it,
// updating live as agents start and stop. It needs a registry to watch, and
// retries until one answers:
//
//	go run ./cmd/runspec-registry --in-memory &     # a registry on :8765
//	go run ./examples/agent &                       # an agent offering hello
//	go run ./examples/orchestrator                  # registry at http://127.0.0.1:8765
//	go run ./examples/orchestrator -url https://registry:8765 -cafile ca.pem -tool deploy
//	go run ./examples/orchestrator -url http://127.0.0.1:8080/registry   # the one examples/embed serves
//
// The API key (needed only when reads are protected) comes from -key or
// RUNSPEC_REGISTRY_API_KEY.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/runspec/registry/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orchestrator:", err)
		os.Exit(1)
	}
}

// run parses args, then prints the hosts of the tool at each change until
// ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("orchestrator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:8765", "registry base URL")
	key := fs.String("key", "", "API key (default: $RUNSPEC_REGISTRY_API_KEY)")
	tool := fs.String("tool", "hello", "name of the tool to watch")
	caFile := fs.String("cafile", "", "PEM file of the CAs to trust for an https registry")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		*key = os.Getenv("RUNSPEC_REGISTRY_API_KEY")
	}
	c, err := client.New(*url, client.Options{APIKey: *key, CAFile: *caFile})
	if err != nil {
		return err
	}
	defer c.CloseIdleConnections()

	fmt.Fprintf(stdout, "watching tool %q at %s\n", *tool, *url)
	if err := c.Health(ctx); err != nil { // the watch retries for ever: say once what it waits for
		fmt.Fprintf(stderr, "orchestrator: no registry answers at %s (%v): start one (go run ./cmd/runspec-registry --in-memory) or give -url\n", *url, err)
	}
	last := ""
	for u, err := range c.WatchTool(ctx, *tool) {
		var line string
		switch {
		case err != nil:
			line = fmt.Sprintf("registry unavailable (retrying): %v", err)
		case !u.Found:
			line = fmt.Sprintf("no host can run %s", *tool)
		default:
			hosts := u.HostNames()
			line = fmt.Sprintf("%s can run on %d host(s): %s", *tool, len(hosts), strings.Join(hosts, ", "))
		}
		if line != last { // repeated errors and unchanged host lists print once
			fmt.Fprintf(stdout, "%s %s\n", time.Now().Format("15:04:05.000"), line)
			last = line
		}
	}
	return nil
}

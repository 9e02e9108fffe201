// Command runspec-registry serves a runspec registry over HTTP(S): the thin
// wrapper that copies its flags into registry.Options and mounts the
// registry's handler.
//
// main.go holds the command tree (kong), main and the version; each command
// lives in the file named for it (serve.go, backup.go), the store choice in
// store.go, the flags that exclude each other in conflicts.go, logging in
// logging.go, the help in help.go, the command's own flag kinds in flags.go
// and the flags shared by client commands in client.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/alecthomas/kong"
	"github.com/runspec/registry/cmd/runspec-registry/internal/startgc"
)

// version is set at build time with -ldflags "-X main.version=…"; otherwise
// the module version from the build information is shown.
var version = ""

// cli is the command tree. serve is the default: flags without a command
// are serve's.
type cli struct {
	Serve   serveCmd   `cmd:"" default:"withargs" help:"Serve the registry (the default command)."`
	Backup  backupCmd  `cmd:"" help:"Write a consistent copy of the data file, also while the registry runs."`
	Version versionCmd `cmd:"" help:"Print the version."`
	MCP     mcpCmd     `cmd:"" name:"mcp" help:"Serve the fleet's tools as one MCP server (stdio, or streamable HTTP with --listen)."`

	Run        runCmd        `cmd:"" help:"Run a tool on a host that offers it, over ssh, as the registry says it runs there. run's flags come before the tool's name: everything after it is the tool's."`
	Which      whichCmd      `cmd:"" help:"Show the hosts that offer a tool and the command run would execute on each, without connecting."`
	Tools      toolsCmd      `cmd:"" help:"List the tools, or show one tool host by host."`
	Hosts      hostsCmd      `cmd:"" help:"List the hosts and the agents on them."`
	Instances  instancesCmd  `cmd:"" help:"List the instance records, or show one."`
	Watch      watchCmd      `cmd:"" help:"Print each change of the tools (or of one tool) as it happens, until Ctrl-C."`
	Deregister deregisterCmd `cmd:"" help:"Mark an instance inactive, as its agent does when it stops."`
	Export     exportCmd     `cmd:"" help:"Print the fleet for Ansible, Rundeck, ssh, SuperPuTTY or MobaXterm."`

	// Client commands, which talk to a running registry (run, which, mcp,
	// tools, hosts, instances, watch, deregister, export), go here, each
	// in its own file and each embedding the shared flags:
	//
	//	type toolsCmd struct {
	//		clientFlags `embed:""`
	//		...
	//	}

	VersionFlag kong.VersionFlag `name:"version" help:"Print the version and exit."`
}

func main() {
	var c cli
	parser, err := newParser(&c, kong.BindTo(signalContext(), (*context.Context)(nil)))
	if err != nil {
		panic(err) // a mistake in the command tree
	}
	kctx, err := parser.Parse(os.Args[1:])
	parser.FatalIfErrorf(err)
	// The registry's live data is small next to the garbage that parsing
	// tool lists and serving listings makes; GOGC=50 keeps the heap closer to
	// it (peak RSS at 20,000 agents x 20 tools: 176 MiB instead of 242 MiB,
	// same throughput; see BENCHMARKS.md). GOGC in the environment wins.
	// Only serve: the client commands are short-lived, and the extra
	// collections cost run about 2 ms of its start (BENCHMARKS.md). Until
	// here the collector was off (startgc).
	if kctx.Selected() == parser.Model.DefaultCmd {
		startgc.Restore(50)
	} else {
		startgc.Restore(100)
	}
	err = kctx.Run()
	if errors.As(err, new(loggedError)) {
		os.Exit(1)
	}
	if status := exitStatus(0); errors.As(err, &status) {
		os.Exit(int(status)) // the command has said why (run: the tool's status)
	}
	kctx.FatalIfErrorf(err)
}

// newParser builds the command-line parser of c; tests add kong.Exit and
// kong.Writers.
func newParser(c *cli, opts ...kong.Option) (*kong.Kong, error) {
	return kong.New(c, append([]kong.Option{
		kong.Name("runspec-registry"),
		kong.Description("A registry for fleets of runspec agents: which tools exist on which hosts, and how to run them."),
		kong.Vars{"version": buildVersion()},
		kong.NamedMapper("interval", intervalMapper{}),
		kong.Help(helpPrinter),
	}, opts...)...)
}

// signalContext ends at SIGINT or SIGTERM. SIGHUP is serve's (a reload).
func signalContext() context.Context {
	ctx, _ := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return ctx
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}

// versionCmd prints the version, as --version does.
type versionCmd struct{}

// Run prints the version that --version prints.
func (versionCmd) Run(kctx *kong.Context, vars kong.Vars) error {
	_, err := fmt.Fprintln(kctx.Stdout, vars["version"])
	return err
}

// example_test.go holds the runnable examples of the package
// documentation: plans built from a registry's answer, printed, never run
// (no network).

package run_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

// An agent on web-1 registers a deploy tool that runs as oracle through
// sudo; a caller asks the registry for it and builds the command that
// would run there.
func Example() {
	ctx := context.Background()
	reg, _ := registry.New(registry.Options{})
	reg.Register(ctx, registry.Registration{ID: "7f1c", Name: "ops", Version: "1", Host: "web-1"})
	reg.UpdateTools(ctx, "7f1c", []json.RawMessage{json.RawMessage(`{
		"name": "deploy",
		"inputSchema": {"type": "object", "properties": {
			"environment": {"type": "string", "enum": ["staging", "production"]},
			"dry-run": {"type": "boolean"},
			"message": {"type": "string"}
		}, "required": ["environment"]},
		"x-command": "/usr/local/bin/deploy", "x-run-as": "oracle", "x-become-flags": "-H"
	}`)})

	tool, _, _ := reg.Tool(ctx, "deploy", registry.Filter{ActiveOnly: true})
	entry, err := run.Select(tool, "web-1", "")
	if err != nil {
		fmt.Println(err)
		return
	}
	r, _ := run.New(run.Options{})
	plan, err := r.Plan(run.Call{
		Tool: tool, Host: entry,
		Args: map[string]any{"environment": "staging", "dry_run": true, "message": "it's $(live)"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(plan.Command)
	fmt.Println(plan.SSH[:6])

	_, err = r.Plan(run.Call{Tool: tool, Host: entry, Args: map[string]any{"environment": "qa", "force": true}})
	fmt.Println(err)
	// Output:
	// sudo -H -u oracle /usr/local/bin/deploy --environment staging --dry-run --message 'it'"'"'s $(live)'
	// [ssh -o BatchMode=yes -T -- web-1]
	// run: invalid arguments for deploy: environment: value must be one of 'staging', 'production'; force: not an argument of the tool (its arguments: environment, dry-run, message)
}

// A record whose become flags would run a shell is refused, whatever the
// quoting.
func ExampleRunner_Plan_refused() {
	entry := registry.ToolHost{
		Host: "web-1", InstanceID: "7f1c", Active: true,
		Command:     registry.ExecField{Set: true, Value: "/usr/local/bin/deploy"},
		RunAs:       registry.ExecField{Set: true, Value: "root"},
		BecomeFlags: registry.ExecField{Set: true, Value: "-H /bin/sh -c id --"},
	}
	r, _ := run.New(run.Options{})
	_, err := r.Plan(run.Call{Tool: registry.Tool{Name: "deploy"}, Host: entry})
	fmt.Println(errors.Is(err, run.ErrBecomeFlag), errors.Is(err, run.ErrRefused))
	fmt.Println(err)
	// Output:
	// true true
	// run: refused: x-become-flags "-H /bin/sh -c id --" of instance 7f1c: flag '/bin/sh' is not allowed for sudo (allowed: -H --set-home -n --non-interactive -S --stdin -k --reset-timestamp -P --preserve-groups)
}

// Arguments written as runspec's command line become the JSON values
// that a call takes.
func ExampleSchema_ParseFlags() {
	s, _ := run.CompileSchema(json.RawMessage(`{"properties": {
		"environment": {"type": "string"},
		"dry-run": {"type": "boolean"},
		"tag": {"type": "array", "items": {"type": "string"}},
		"replicas": {"type": "integer"}
	}}`))
	args, err := s.ParseFlags([]string{"--environment", "staging", "--dry_run", "--tag", "a", "--tag=b", "--replicas", "3"})
	fmt.Println(args, err)
	// Output:
	// map[dry-run:true environment:staging replicas:3 tag:[a b]] <nil>
}

// deregister.go holds the deregister command: mark an instance inactive,
// as its agent does when it stops (the record is kept as history).

package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/alecthomas/kong"

	"github.com/runspec/registry/client"
)

// deregisterCmd is the deregister command.
type deregisterCmd struct {
	clientFlags `embed:""`
	ID          string `arg:"" name:"id" help:"The instance id."`
}

// Run deregisters the instance. The registry answers an unknown id with
// success (the protocol's DELETE is idempotent); the command looks the
// id up first, so that a mistyped id is an error.
func (c *deregisterCmd) Run(ctx context.Context, kctx *kong.Context) error {
	return safeError(c.run(ctx, kctx))
}

func (c *deregisterCmd) run(ctx context.Context, kctx *kong.Context) error {
	cl, err := c.connect()
	if err != nil {
		return err
	}
	in, err := cl.Instance(ctx, c.ID)
	if errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("instance %s not found", c.ID)
	}
	if err != nil {
		return err
	}
	if err := cl.Deregister(ctx, c.ID); err != nil {
		return err
	}
	note := ""
	if !in.Active {
		note = " (it was inactive already)"
	}
	_, err = fmt.Fprintf(kctx.Stdout, "deregistered %s: agent %s on %s%s\n", printable(in.ID), printable(in.Name), printable(in.Host), note)
	return err
}

// help.go prints the help: "runspec-registry --help", with no command,
// lists the commands and then the flags of serve, the default command,
// which kong on its own would leave to "serve --help".

package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/alecthomas/kong"
)

// helpPrinter is kong's help, except without a command, where it shows the
// commands and the default command's flags.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	app := ctx.Model
	def := app.DefaultCmd
	if ctx.Selected() != nil || def == nil {
		return kong.DefaultHelpPrinter(options, ctx)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s [%s] [flags]\n", app.Name, def.Name)
	fmt.Fprintf(&b, "       %s <command> [flags]\n\n", app.Name)
	b.WriteString(wrap(app.Help, 80) + "\n\nCommands:\n")
	for _, cmd := range app.Leaves(true) {
		fmt.Fprintf(&b, "  %s\n    %s\n", cmd.Summary(), cmd.Help)
	}
	if _, err := fmt.Fprint(ctx.Stdout, b.String()); err != nil {
		return err
	}

	// The default command's help as kong prints it for "serve --help",
	// from a copy of the context that has it selected.
	withDefault := *ctx
	withDefault.Path = append(slices.Clone(ctx.Path), &kong.Path{Parent: app.Node, Command: def})
	options.NoAppSummary = true
	if err := kong.DefaultHelpPrinter(options, &withDefault); err != nil {
		return err
	}
	_, err := fmt.Fprintf(ctx.Stdout, "\nRun \"%s <command> --help\" for more information on a command.\n", app.Name)
	return err
}

// wrap breaks text into lines of at most width columns, at spaces.
func wrap(text string, width int) string {
	var b strings.Builder
	col := 0
	for _, word := range strings.Fields(text) {
		switch {
		case col == 0:
		case col+1+len(word) > width:
			b.WriteByte('\n')
			col = 0
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

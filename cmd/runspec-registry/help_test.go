// help_test.go tests what --help shows with and without a command, and the
// version command next to --version.

package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
)

// run parses args like main and runs the command, returning its output.
func run(t *testing.T, args ...string) (stdout string, exit int, err error) {
	t.Helper()
	var c cli
	var out bytes.Buffer
	exit = -1
	p, err := newParser(&c, kong.Exit(func(code int) { exit = code; panic(exitPanic{}) }),
		kong.Writers(&out, &out), kong.Vars{"version": "v9.9.9-test"})
	if err != nil {
		t.Fatal(err)
	}
	func() {
		defer func() {
			if r := recover(); r != nil && r != (exitPanic{}) {
				panic(r)
			}
		}()
		var kctx *kong.Context
		if kctx, err = p.Parse(args); err == nil {
			err = kctx.Run()
		}
	}()
	return out.String(), exit, err
}

// exitPanic stops a parse where kong would exit the process.
type exitPanic struct{}

func TestHelp(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string // in this order
		notWant []string
	}{
		{
			args: []string{"--help"},
			want: []string{
				"Usage: runspec-registry [serve] [flags]",
				"Commands:", "serve [flags]", "backup <file> [flags]", "version",
				"Flags:", "--help", "--version", "--host=", "--port=8765", "--api-key=", "--purge-interval=60",
				"--log-format=", "--store=", "--in-memory", "--data-dir=", "--etcd-endpoints=", "--etcd-key=",
				`Run "runspec-registry <command> --help"`,
			},
			notWant: []string{"--reload", "--etcd-keepalive-window", "--force"},
		},
		{
			args:    []string{"-h"},
			want:    []string{"Usage: runspec-registry [serve] [flags]", "--port=8765"},
			notWant: []string{"--force"},
		},
		{
			args:    []string{"serve", "--help"},
			want:    []string{"Usage: runspec-registry serve [flags]", "--port=8765", "--store="},
			notWant: []string{"Commands:", "--force"},
		},
		{
			args:    []string{"backup", "--help"},
			want:    []string{"Usage: runspec-registry backup <file> [flags]", "--data-dir=", "--force"},
			notWant: []string{"--port"},
		},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, exit, err := run(t, tt.args...)
			if err != nil || exit != 0 {
				t.Fatalf("exit %d, err %v\n%s", exit, err, out)
			}
			rest := out
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("no %q (in this order) in:\n%s", w, out)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(out, w) {
					t.Errorf("%q in:\n%s", w, out)
				}
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}} {
		out, exit, err := run(t, args...)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff("v9.9.9-test\n", out); diff != "" {
			t.Errorf("%v: mismatch (-want +got):\n%s", args, diff)
		}
		if args[0] == "--version" && exit != 0 {
			t.Errorf("--version: exit %d", exit)
		}
	}
}

// sshtest_test.go checks the harness itself: the server answers through
// the system's ssh client on every host name, the tool reports what it
// received, and the unreachable host fails as ssh fails.

package sshtest_test

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/internal/shell"
	"github.com/runspec/registry/internal/sshtest"
)

func TestServer(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{Aliases: 2})
	if diff := cmp.Diff([]string{"web-1", "web-2", "web-3", "host-0", "host-1"}, s.Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
	for _, h := range s.Hosts {
		args := []string{"a b", "it's", "", "$(id)"}
		out, err := s.Command(t.Context(), h, "SSHTEST_X='y z' "+shell.Join(append([]string{s.Tool}, args...))).Output()
		if err != nil {
			t.Fatalf("ssh %s: %v\n%s", h, err, s.Logs())
		}
		got, err := sshtest.ParseTool(out)
		if err != nil {
			t.Fatal(err)
		}
		want := sshtest.ToolOutput{Args: args, User: s.User, Env: map[string]string{"SSHTEST_X": "y z"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: tool output (-want +got):\n%s", h, diff)
		}
	}
}

func TestDown(t *testing.T) {
	s := sshtest.Start(t, sshtest.Options{})
	var stderr bytes.Buffer
	cmd := s.Command(t.Context(), s.Down, "true")
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 255 {
		t.Fatalf("ssh %s: %v, want exit status 255; stderr: %s", s.Down, err, stderr.String())
	}
}

func TestParseTool(t *testing.T) {
	for _, bad := range []string{"", "[]\n", "[]\nroot\n", "x\nroot\n{}\n", "[]\nroot\n{}\nmore\n"} {
		if _, err := sshtest.ParseTool([]byte(bad)); !errors.Is(err, sshtest.ErrToolOutput) {
			t.Errorf("ParseTool(%q) = %v, want ErrToolOutput", bad, err)
		}
	}
}

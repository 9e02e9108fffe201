// labels_test.go checks that the query commands send every --label flag,
// so that the registry ANDs them: two values of one key match nothing, in
// either order, and the same pair twice is that pair.

package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestLabelsSameKey(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	both := []string{"--label", "env=staging", "--label", "env=prod"}
	reverse := []string{"--label", "env=prod", "--label", "env=staging"}
	twice := []string{"--label", "env=prod", "--label", "env=prod"}
	with := func(cmd []string, labels []string, rest ...string) []string {
		return append(append(append(cmd[:len(cmd):len(cmd)], "--registry", r.url), labels...), rest...)
	}
	tests := []struct {
		name   string
		args   []string
		status int
		stdout string // stdout exactly; or
		target string // stdout is the answer to this request, byte for byte; or
		has    string // in stdout (status 0) or stderr (status 1)
	}{
		{name: "hosts", args: with([]string{"hosts"}, both, "-o", "json"), stdout: "[]\n"},
		{name: "hosts reverse", args: with([]string{"hosts"}, reverse),
			stdout: "HOST  AGENT  STATE  LAST SEEN  TOOLS  VERSION  INSTANCE  LABELS\n"},
		{name: "hosts twice", args: with([]string{"hosts"}, twice), stdout: "" +
			"HOST   AGENT  STATE   LAST SEEN  TOOLS  VERSION  INSTANCE  LABELS\n" +
			"web-1  ops    active  12s ago    2      1        a1        env=prod,team=a\n"},
		{name: "tools", args: with([]string{"tools"}, both, "-o", "json"), stdout: "[]\n"},
		{name: "tools reverse", args: with([]string{"tools"}, reverse), stdout: "TOOL  HOSTS  DESCRIPTION\n"},
		{name: "tools twice", args: with([]string{"tools"}, twice, "-o", "json"),
			target: "/tools?active=true&detail=true&label=env%3Dprod"},
		{name: "tools deploy", args: with([]string{"tools", "deploy"}, both), status: 1,
			has: "tool deploy not found: no active instance offers it"},
		{name: "instances", args: with([]string{"instances"}, both, "-o", "json"), stdout: "[]\n"},
		{name: "instances twice", args: with([]string{"instances"}, twice, "-o", "json"),
			target: "/instances?active=false&detail=true&label=env%3Dprod"},
		{name: "which", args: with([]string{"which"}, both, "deploy"), status: 1,
			has: "tool deploy: no instance offers the tool with the labels env=staging,env=prod"},
		{name: "which twice", args: with([]string{"which"}, twice, "deploy"), has: "hosts: 1\n\nweb-1  active"},
		{name: "run", args: with([]string{"run", "--dry-run"}, both, "deploy"), status: 1,
			has: "tool deploy: no instance offers the tool with the labels env=staging,env=prod"},
		{name: "run reverse", args: with([]string{"run", "--dry-run"}, reverse, "deploy"), status: 1,
			has: "tool deploy: no instance offers the tool with the labels env=prod,env=staging"},
		{name: "run twice", args: with([]string{"run", "--dry-run"}, twice, "deploy"), has: "web-1"},
		{name: "export ssh-config", args: with([]string{"export", "ssh-config"}, both),
			target: "/export/ssh-config?label=env%3Dnone"},
		{name: "export ansible reverse", args: with([]string{"export", "ansible"}, reverse),
			target: "/export/ansible?label=env%3Dnone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := runCLI(t.Context(), t, tt.args...)
			out := res.stdout
			if tt.status != 0 {
				out = res.stderr
			}
			if res.status != tt.status || !strings.Contains(out, tt.has) {
				t.Fatalf("status %d, stdout %q, stderr %q; want %d and %q", res.status, res.stdout, res.stderr, tt.status, tt.has)
			}
			want := tt.stdout
			switch {
			case tt.target != "":
				want = rawAnswer(t, r.url+tt.target)
				if !strings.HasPrefix(tt.target, "/export/") {
					want = strings.TrimSuffix(want, "\n") + "\n" // as --output json prints it
				}
			case tt.has != "":
				return
			}
			if diff := cmp.Diff(want, res.stdout); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
	if strings.Contains(runCLI(t.Context(), t, with([]string{"which"}, twice, "deploy")...).stdout, "web-2") {
		t.Errorf("which --label env=prod twice shows web-2")
	}
}

// rawAnswer is the body of the answer to GET url, byte for byte.
func rawAnswer(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

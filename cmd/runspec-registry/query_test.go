// query_test.go checks the query commands against an in-process registry:
// tools, hosts and instances as tables (exact text) and as the API's JSON
// byte for byte, filters, not found (exit status 1), deregister, and watch
// printing changes as they happen.

package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// queryFleet is two active agents on web-1 and web-2, and an inactive one.
var queryFleet = []testAgent{
	{id: "a1", name: "ops", host: "web-1", labels: map[string]string{"env": "prod", "team": "a"}, tools: []string{
		`{"name":"deploy","description":"Deploy the app\nin two lines","inputSchema":{"type":"object"},"x-command":"/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
		`{"name":"status","x-command":"/bin/status"}`,
	}},
	{id: "a2", name: "ops", host: "web-2", labels: map[string]string{"env": "staging"}, tools: []string{
		`{"name":"deploy","description":"Deploy the app\nin two lines","x-command":"/bin/deploy"}`,
	}},
	{id: "a3", name: "old", host: "old-1", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}, gone: true},
}

func TestQueryTables(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"tools"}, "" +
			"TOOL    HOSTS  DESCRIPTION\n" +
			"deploy  2      Deploy the app …\n" +
			"status  1      \n"},
		{[]string{"tools", "--inactive"}, "" +
			"TOOL    HOSTS            DESCRIPTION\n" +
			"deploy  2 (+1 inactive)  Deploy the app …\n" +
			"status  1                \n"},
		{[]string{"tools", "--label", "env=staging"}, "" +
			"TOOL    HOSTS  DESCRIPTION\n" +
			"deploy  1      Deploy the app …\n"},
		{[]string{"tools", "--host", "web-1"}, "" +
			"TOOL    HOSTS  DESCRIPTION\n" +
			"deploy  1      Deploy the app …\n" +
			"status  1      \n"},
		{[]string{"tools", "deploy", "--inactive"}, "" +
			"deploy: Deploy the app …\n" +
			"hosts: 2 (+1 inactive)\n\n" +
			"HOST   STATE     LAST SEEN  AGENT  INSTANCE  COMMAND      RUN AS  BECOME   LABELS\n" +
			"web-1  active    12s ago    ops    a1        /bin/deploy  oracle  sudo -H  env=prod,team=a\n" +
			"web-2  active    12s ago    ops    a2        /bin/deploy                   env=staging\n" +
			"old-1  inactive  12s ago    old    a3        /bin/deploy                   \n"},
		{[]string{"hosts"}, "" +
			"HOST   AGENT  STATE   LAST SEEN  TOOLS  VERSION  INSTANCE  LABELS\n" +
			"web-1  ops    active  12s ago    2      1        a1        env=prod,team=a\n" +
			"web-2  ops    active  12s ago    1      1        a2        env=staging\n"},
		{[]string{"hosts", "--inactive", "--name", "old"}, "" +
			"HOST   AGENT  STATE     LAST SEEN  TOOLS  VERSION  INSTANCE  LABELS\n" +
			"old-1  old    inactive  12s ago    1      1        a3        \n"},
		{[]string{"instances"}, "" +
			"INSTANCE  AGENT  HOST   STATE     LAST SEEN  TOOLS  VERSION  OWNER  LABELS\n" +
			"a1        ops    web-1  active    12s ago    2      1               env=prod,team=a\n" +
			"a2        ops    web-2  active    12s ago    1      1               env=staging\n" +
			"a3        old    old-1  inactive  12s ago    1      1               \n"},
		{[]string{"instances", "--active", "--label", "team=a"}, "" +
			"INSTANCE  AGENT  HOST   STATE   LAST SEEN  TOOLS  VERSION  OWNER  LABELS\n" +
			"a1        ops    web-1  active  12s ago    2      1               env=prod,team=a\n"},
		{[]string{"instances", "a3"}, "" +
			"instance   a3\n" +
			"agent      old\n" +
			"host       old-1\n" +
			"version    1\n" +
			"state      inactive, last seen 12s ago, inactive since 12s ago\n" +
			"heartbeat  every 30s\n\n" +
			"TOOL    COMMAND      RUN AS  DESCRIPTION\n" +
			"deploy  /bin/deploy          \n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t.Context(), t, append(tt.args, "--registry", r.url)...)
			if res.status != 0 || res.stderr != "" {
				t.Fatalf("status %d, stderr %q", res.status, res.stderr)
			}
			if diff := cmp.Diff(tt.want, res.stdout); diff != "" {
				t.Errorf("output mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQueryJSON checks that --output json prints the API's answer to the
// same request, byte for byte.
func TestQueryJSON(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	tests := []struct {
		args   []string
		target string // the API request whose answer it prints
	}{
		{[]string{"tools"}, "/tools?active=true&detail=true"},
		{[]string{"tools", "--inactive", "--label", "env=prod"}, "/tools?active=false&detail=true&label=env%3Dprod"},
		{[]string{"tools", "deploy"}, "/tools/deploy?active=true&detail=true"},
		{[]string{"hosts", "--name", "ops"}, "/hosts?active=true&detail=true&name=ops"},
		{[]string{"instances"}, "/instances?active=false&detail=true"},
		{[]string{"instances", "a1"}, "/instances/a1?detail=true"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t.Context(), t, append(tt.args, "--registry", r.url, "-o", "json")...)
			if res.status != 0 {
				t.Fatalf("status %d: %s", res.status, res.stderr)
			}
			resp, err := http.Get(r.url + tt.target)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			want, _ := io.ReadAll(resp.Body)
			if diff := cmp.Diff(strings.TrimSuffix(string(want), "\n")+"\n", res.stdout); diff != "" {
				t.Errorf("output is not the API's answer (-want +got):\n%s", diff)
			}
		})
	}
}

func TestQueryNotFound(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"tools", "nope"}, "tool nope not found: no active instance offers it"},
		{[]string{"tools", "nope", "--inactive"}, "tool nope not found: no instance offers it"},
		{[]string{"instances", "nope"}, "instance nope not found"},
		{[]string{"deregister", "nope"}, "instance nope not found"},
		{[]string{"tools", "--label", "env"}, "--label takes KEY=VALUE"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t.Context(), t, append(tt.args, "--registry", r.url)...)
			if res.status != 1 || !strings.Contains(res.stderr, tt.want) || res.stdout != "" {
				t.Errorf("status %d, stdout %q, stderr %q; want 1 and %q", res.status, res.stdout, res.stderr, tt.want)
			}
		})
	}
	// A registry that does not answer is an error too.
	res := runCLI(t.Context(), t, "tools", "--registry", "http://127.0.0.1:1")
	if res.status != 1 || !strings.Contains(res.stderr, "connection refused") {
		t.Errorf("unreachable registry: status %d, stderr %q", res.status, res.stderr)
	}
}

func TestDeregister(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	res := runCLI(t.Context(), t, "deregister", "--registry", r.url, "a1")
	if res.status != 0 || res.stdout != "deregistered a1: agent ops on web-1\n" {
		t.Fatalf("status %d, stdout %q, stderr %q", res.status, res.stdout, res.stderr)
	}
	in, err := r.c.Instance(t.Context(), "a1")
	if err != nil || in.Active {
		t.Errorf("after deregister: %+v, %v; want inactive", in, err)
	}
	res = runCLI(t.Context(), t, "deregister", "--registry", r.url, "a1")
	if res.status != 0 || !strings.Contains(res.stdout, "inactive already") {
		t.Errorf("again: status %d, stdout %q", res.status, res.stdout)
	}
}

// TestWatch follows the tools and one tool while instances come and go,
// and checks each change is printed as it happens; Ctrl-C (the context)
// ends the watch with status 0.
func TestWatch(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		// the lines expected after each step (without the time)
		start, added, changed, removed string
	}{
		{"all tools", []string{"watch", "-o", "table"},
			"= deploy on web-1 (instance a1, agent ops, runs /bin/deploy as oracle via sudo -H)",
			"+ deploy on web-3 (instance a9, agent ops, runs /bin/deploy)",
			"~ deploy on web-3 (instance a9, agent ops, runs /bin/deploy-v2)",
			"- deploy on web-3 (instance a9, agent ops)"},
		{"one tool as JSON", []string{"watch", "deploy", "-o", "json"},
			`"change":"present","tool":"deploy","host":"web-1","instance_id":"a1","agent":"ops","x-command":"/bin/deploy","x-run-as":"oracle","become":"sudo -H"`,
			`"change":"added","tool":"deploy","host":"web-3","instance_id":"a9","agent":"ops","x-command":"/bin/deploy"}`,
			`"change":"changed","tool":"deploy","host":"web-3","instance_id":"a9","agent":"ops","x-command":"/bin/deploy-v2"}`,
			`"change":"removed","tool":"deploy","host":"web-3","instance_id":"a9","agent":"ops","x-command":"/bin/deploy-v2"}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRegistry(t)
			r.add(queryFleet[0])
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			out := &syncBuffer{}
			done := make(chan cliResult, 1)
			go func() { done <- runCLIOut(ctx, t, out, append(tt.args, "--registry", r.url)...) }()
			waitLine := func(want string) {
				t.Helper()
				deadline := time.Now().Add(10 * time.Second)
				for !strings.Contains(out.String(), want) {
					if time.Now().After(deadline) {
						t.Fatalf("no %q within 10s in:\n%s", want, out)
					}
					time.Sleep(10 * time.Millisecond) // polling the command's output: there is nothing to wait on
				}
			}
			waitLine(tt.start)
			r.add(testAgent{id: "a9", name: "ops", host: "web-3", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}})
			waitLine(tt.added)
			if err := r.c.UpdateTools(ctx, "a9", []json.RawMessage{json.RawMessage(`{"name":"deploy","x-command":"/bin/deploy-v2"}`)}); err != nil {
				t.Fatal(err)
			}
			waitLine(tt.changed)
			if err := r.c.Deregister(ctx, "a9"); err != nil {
				t.Fatal(err)
			}
			waitLine(tt.removed)
			cancel()
			res := <-done
			if res.status != 0 || res.err != nil {
				t.Errorf("after Ctrl-C: status %d, err %v", res.status, res.err)
			}
			// Each change once: the unchanged web-1 entry is not repeated.
			once := "deploy on web-1"
			if strings.Contains(tt.name, "JSON") {
				once = `"host":"web-1"`
			}
			if n := strings.Count(out.String(), once); n != 1 {
				t.Errorf("web-1 printed %d times:\n%s", n, out)
			}
		})
	}
}

// TestWhichArguments checks how which reads its command line: its flags
// before or after the tool's name, the tool's arguments after "--".
func TestWhichArguments(t *testing.T) {
	r := newTestRegistry(t)
	r.add(queryFleet...)
	tests := []struct {
		args   []string
		status int
		want   string // in stdout, or in stderr for an error
	}{
		{[]string{"which", "deploy", "--label", "env=staging"}, 0, "\nweb-2  active"},
		{[]string{"which", "--label", "env=prod", "deploy"}, 0, "remote           sudo -H -u oracle /bin/deploy\n"},
		{[]string{"which", "deploy", "--label", "env=prod", "--", "--dry_run"}, 1, "dry_run: not an argument of the tool: it takes no arguments"},
		{[]string{"which", "deploy", "--dry-run"}, 1, "unknown flag --dry-run"},
		{[]string{"which", "status", "--", "--x"}, 1, "x: not an argument of the tool"},
		{[]string{"which", "status", "--args-json", "{}"}, 0, "remote           /bin/status\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t.Context(), t, append(tt.args[:1:1], append([]string{"--registry", r.url}, tt.args[1:]...)...)...)
			out := res.stdout
			if tt.status != 0 {
				out = res.stderr
			}
			if res.status != tt.status || !strings.Contains(out, tt.want) {
				t.Errorf("status %d, stdout %q, stderr %q; want %d and %q", res.status, res.stdout, res.stderr, tt.status, tt.want)
			}
			if tt.args[2] == "--label" && tt.args[3] == "env=staging" && strings.Contains(res.stdout, "web-1") {
				t.Errorf("--label after the tool's name was not applied:\n%s", res.stdout)
			}
		})
	}
}

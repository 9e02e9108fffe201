// export_fleet_test.go checks the fleet exports (GET /export/ansible,
// /export/rundeck, /export/ssh-config): each output parsed back and
// compared whole, for a plain fleet and for one with hostile hosts, names
// and execution fields (which must change no other field), the ?user= and
// ?format= checks, the log line that counts what was left out, filters,
// read auth, and the ssh_config read by the real ssh client (ssh -G).

package registry_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// fleetAgent is an instance of the export tests: its registration and its
// tools.
type fleetAgent struct {
	id, name, host string
	labels         map[string]string
	tools          []string
	gone           bool
}

// loadAgents registers the agents through h's HTTP API.
func loadAgents(h *harness, agents []fleetAgent) {
	h.tb.Helper()
	for _, a := range agents {
		body, _ := json.Marshal(map[string]any{"instance_id": a.id, "name": a.name, "version": "1", "host": a.host, "labels": a.labels})
		h.must(http.StatusCreated, "POST", "/instances", string(body))
		h.postTools(a.id, a.tools...)
		if a.gone {
			h.deregister(a.id)
		}
	}
}

// plainFleet is a fleet without hostile values.
var plainFleet = []fleetAgent{
	{id: "a1", name: "ops", host: "web-1", labels: map[string]string{"env": "prod"}, tools: []string{
		`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
		`{"name":"status","x-command":"/bin/status","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
	}},
	// The tools of web-2 disagree on x-run-as: no become variables.
	{id: "a2", name: "ops", host: "web-2", labels: map[string]string{"env": "staging"}, tools: []string{
		`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle"}`,
		`{"name":"status","x-command":"/bin/status"}`,
	}},
	{id: "a3", name: "db-admin", host: "db-1", tools: []string{
		`{"name":"backup","x-command":"/bin/backup","x-run-as":"postgres","x-become-method":"su","x-become-flags":"-l"}`,
	}},
	// db.admin and db-admin are both agent_db_admin: that group is left out.
	{id: "a4", name: "db.admin", host: "db-2"},
	{id: "a5", name: "old", host: "old-1", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}, gone: true},
	{id: "a6", name: "ops", host: "10.0.0.7", tools: []string{`{"name":"status","x-command":"/bin/status","x-run-as":"svc"}`}},
}

// hostileHosts are host names that no export may write: each would
// change another field, or another tool would read it as something else.
var hostileHosts = []string{
	"evil host", "evil#1", "evil*", "evil?", "!evil", `"evil"`, "'evil'", "evil,db", "evil=1", "evil${x}",
	"{{ lookup('pipe','id') }}", "-oProxyCommand=touch /tmp/pwned", "user@evil", "evil:22", "ssh://evil", "%h", "évil",
}

// hostileFleet is plainFleet's first agent, hostile hosts, hostile names on
// plain hosts, and hostile execution fields.
func hostileFleet() []fleetAgent {
	agents := []fleetAgent{plainFleet[0]}
	for i, host := range hostileHosts {
		agents = append(agents, fleetAgent{id: fmt.Sprintf("h%d", i), name: "ops", host: host,
			tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}})
	}
	return append(agents,
		fleetAgent{id: "n1", name: "{{ lookup('pipe','id') }}", host: "web-2", tools: []string{
			`{"name":"a,b","x-command":"/x"}`, `{"name":"${node.username}","x-command":"/x"}`,
			`{"name":"{% raw %}","x-command":"/x"}`, `{"name":"good","x-command":"/x"}`, `{"name":" spaced","x-command":"/x"}`,
		}},
		fleetAgent{id: "n2", name: "ops", host: "web-3", tools: []string{`{"name":"t","x-command":"/t","x-run-as":"oracle\nansible_become_user: root"}`}},
		fleetAgent{id: "n3", name: "ops", host: "web-4", tools: []string{`{"name":"t","x-command":"/t","x-run-as":"root; id"}`}},
		fleetAgent{id: "n4", name: "ops", host: "web-5", tools: []string{`{"name":"t","x-command":"/t","x-run-as":"svc","x-become-method":"sh -c"}`}},
		fleetAgent{id: "n5", name: "ops", host: "web-6", tools: []string{`{"name":"t","x-command":"/t","x-run-as":"svc","x-become-flags":"-H /bin/sh -c 'id' --"}`}},
		fleetAgent{id: "n6", name: "ops", host: "web-7", tools: []string{`{"name":"t","x-command":"/t","x-run-as":"svc","x-become-flags":"{{ x }}"}`}},
		fleetAgent{id: "n7", name: "ops", host: "web-8", tools: []string{`{"name":"t","x-command":"/t","x-run-as":["root"]}`}},
	)
}

func TestExportAnsible(t *testing.T) {
	vars := func(agents, tools []any, more ...any) map[string]any {
		m := map[string]any{"runspec_agents": agents, "runspec_tools": tools}
		for i := 0; i+1 < len(more); i += 2 {
			m[more[i].(string)] = more[i+1]
		}
		return m
	}
	oracle := []any{"ansible_become_user", "oracle", "ansible_become_method", "sudo", "ansible_become_flags", "-H"}
	tests := []struct {
		name   string
		agents []fleetAgent
		target string
		want   map[string]any
		log    string // in the log line
	}{
		{"plain", plainFleet, "/export/ansible", map[string]any{
			"all":         map[string]any{"children": []any{"ungrouped", "agent_ops", "tool_backup", "tool_deploy", "tool_status"}},
			"ungrouped":   map[string]any{"hosts": []any{"db-2"}},
			"agent_ops":   map[string]any{"hosts": []any{"10.0.0.7", "web-1", "web-2"}},
			"tool_backup": map[string]any{"hosts": []any{"db-1"}},
			"tool_deploy": map[string]any{"hosts": []any{"web-1", "web-2"}},
			"tool_status": map[string]any{"hosts": []any{"10.0.0.7", "web-1", "web-2"}},
			"_meta": map[string]any{"hostvars": map[string]any{
				"web-1":    vars([]any{"ops"}, []any{"deploy", "status"}, oracle...),
				"web-2":    vars([]any{"ops"}, []any{"deploy", "status"}),
				"db-1":     vars([]any{"db-admin"}, []any{"backup"}, "ansible_become_user", "postgres", "ansible_become_method", "su", "ansible_become_flags", "-l"),
				"db-2":     vars([]any{"db.admin"}, []any{}),
				"10.0.0.7": vars([]any{"ops"}, []any{"status"}, "ansible_become_user", "svc"),
			}},
		}, `colliding_groups=agent_db_admin`},
		{"inactive, user and a label", plainFleet, "/export/ansible?active=false&user=deploy&label=env%3Dprod", map[string]any{
			"all":         map[string]any{"children": []any{"ungrouped", "agent_ops", "tool_deploy", "tool_status"}},
			"ungrouped":   map[string]any{"hosts": []any{}},
			"agent_ops":   map[string]any{"hosts": []any{"web-1"}},
			"tool_deploy": map[string]any{"hosts": []any{"web-1"}},
			"tool_status": map[string]any{"hosts": []any{"web-1"}},
			"_meta": map[string]any{"hostvars": map[string]any{
				"web-1": vars([]any{"ops"}, []any{"deploy", "status"}, append([]any{"ansible_user", "deploy"}, oracle...)...),
			}},
		}, ""},
		{"hostile", hostileFleet(), "/export/ansible", map[string]any{
			"all": map[string]any{"children": []any{"ungrouped", "agent_ops", "tool___node_username_", "tool__spaced",
				"tool_a_b", "tool_deploy", "tool_good", "tool_status", "tool_t"}},
			"ungrouped":             map[string]any{"hosts": []any{}},
			"agent_ops":             map[string]any{"hosts": []any{"web-1", "web-3", "web-4", "web-5", "web-6", "web-7", "web-8"}},
			"tool___node_username_": map[string]any{"hosts": []any{"web-2"}},
			"tool__spaced":          map[string]any{"hosts": []any{"web-2"}},
			"tool_a_b":              map[string]any{"hosts": []any{"web-2"}},
			"tool_deploy":           map[string]any{"hosts": []any{"web-1"}},
			"tool_good":             map[string]any{"hosts": []any{"web-2"}},
			"tool_status":           map[string]any{"hosts": []any{"web-1"}},
			"tool_t":                map[string]any{"hosts": []any{"web-3", "web-4", "web-5", "web-6", "web-7", "web-8"}},
			"_meta": map[string]any{"hostvars": map[string]any{
				"web-1": vars([]any{"ops"}, []any{"deploy", "status"}, oracle...),
				"web-2": vars([]any{}, []any{" spaced", "${node.username}", "a,b", "good"}),
				"web-3": vars([]any{"ops"}, []any{"t"}),
				"web-4": vars([]any{"ops"}, []any{"t"}),
				"web-5": vars([]any{"ops"}, []any{"t"}),
				"web-6": vars([]any{"ops"}, []any{"t"}),
				"web-7": vars([]any{"ops"}, []any{"t"}),
				"web-8": vars([]any{"ops"}, []any{"t"}),
			}},
		}, fmt.Sprintf("hosts_left_out=%d names_left_out=2 values_left_out=6", len(hostileHosts))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newHarness(t, registry.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			loadAgents(h, tt.agents)
			logs.Reset()
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if diff := cmp.Diff(any(tt.want), decodeJSON(t, rec.Body.Bytes())); diff != "" {
				t.Errorf("inventory mismatch (-want +got):\n%s", diff)
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q does not say %q", logs.String(), tt.log)
			}
			if tt.log == "" && strings.Contains(logs.String(), "left out") {
				t.Errorf("log %q says something was left out", logs.String())
			}
			if body := rec.Body.String(); strings.Contains(body, "{{") || strings.Contains(body, "{%") || strings.Contains(body, "{#") {
				t.Errorf("the inventory has a value Ansible would template:\n%s", body)
			}
		})
	}
}

// rundeckFleet is the Rundeck JSON of the plain fleet's active hosts, for
// user (empty: no username).
func rundeckFleet(user string) map[string]any {
	node := func(host, tags string) map[string]any {
		n := map[string]any{"nodename": host, "hostname": host, "tags": tags}
		if user != "" {
			n["username"] = user
		}
		return n
	}
	return map[string]any{
		"10.0.0.7": node("10.0.0.7", "ops,status"),
		"db-1":     node("db-1", "db-admin,backup"),
		"db-2":     node("db-2", "db.admin"),
		"web-1":    node("web-1", "ops,deploy,status"),
		"web-2":    node("web-2", "ops,deploy,status"),
	}
}

func TestExportRundeckJSON(t *testing.T) {
	tests := []struct {
		name   string
		agents []fleetAgent
		target string
		accept string
		want   map[string]any
		log    string
	}{
		{"plain", plainFleet, "/export/rundeck", "", rundeckFleet(""), ""},
		{"a user", plainFleet, "/export/rundeck?user=deploy&format=json", "application/yaml", rundeckFleet("deploy"), ""},
		{"JSON preferred", plainFleet, "/export/rundeck", "application/yaml;q=0.5, application/json", rundeckFleet(""), ""},
		{"hostile", hostileFleet(), "/export/rundeck", "", map[string]any{
			"web-1": map[string]any{"nodename": "web-1", "hostname": "web-1", "tags": "ops,deploy,status"},
			// web-2's agent name has a comma; "a,b", "${node.username}" and " spaced" cannot be tags.
			"web-2": map[string]any{"nodename": "web-2", "hostname": "web-2", "tags": "good,{% raw %}"},
			"web-3": map[string]any{"nodename": "web-3", "hostname": "web-3", "tags": "ops,t"},
			"web-4": map[string]any{"nodename": "web-4", "hostname": "web-4", "tags": "ops,t"},
			"web-5": map[string]any{"nodename": "web-5", "hostname": "web-5", "tags": "ops,t"},
			"web-6": map[string]any{"nodename": "web-6", "hostname": "web-6", "tags": "ops,t"},
			"web-7": map[string]any{"nodename": "web-7", "hostname": "web-7", "tags": "ops,t"},
			"web-8": map[string]any{"nodename": "web-8", "hostname": "web-8", "tags": "ops,t"},
		}, fmt.Sprintf("hosts_left_out=%d names_left_out=4", len(hostileHosts))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newHarness(t, registry.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			loadAgents(h, tt.agents)
			logs.Reset()
			rec := h.must(http.StatusOK, "GET", tt.target, "", func(r *http.Request) {
				if tt.accept != "" {
					r.Header.Set("Accept", tt.accept)
				}
			})
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			if diff := cmp.Diff(any(tt.want), decodeJSON(t, rec.Body.Bytes())); diff != "" {
				t.Errorf("resource model mismatch (-want +got):\n%s", diff)
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q does not say %q", logs.String(), tt.log)
			}
		})
	}
}

// TestExportRundeckYAML checks that YAML is chosen by ?format=yaml and by
// Accept, and its exact text for a small fleet. (The command's tests read
// it back with a YAML parser and compare it with the JSON.)
func TestExportRundeckYAML(t *testing.T) {
	h := newHarness(t, registry.Options{})
	loadAgents(h, []fleetAgent{
		{id: "a1", name: "ops", host: "web-1", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`, `{"name":"say \"hi\" \\ \u00e9","x-command":"/x"}`}},
	})
	want := "\"web-1\":\n  nodename: \"web-1\"\n  hostname: \"web-1\"\n  username: \"deploy\"\n  tags: \"ops,deploy,say \\\"hi\\\" \\\\ \u00e9\"\n"
	for _, tt := range []struct{ target, accept string }{
		{"/export/rundeck?format=yaml&user=deploy", ""},
		{"/export/rundeck?user=deploy", "application/yaml"},
		{"/export/rundeck?user=deploy", "text/yaml, application/json;q=0.9"},
		{"/export/rundeck?user=deploy", "application/x-yaml"},
	} {
		t.Run(tt.target+" "+tt.accept, func(t *testing.T) {
			rec := h.must(http.StatusOK, "GET", tt.target, "", func(r *http.Request) { r.Header.Set("Accept", tt.accept) })
			if ct := rec.Header().Get("Content-Type"); ct != "application/yaml" {
				t.Errorf("Content-Type %q, want application/yaml", ct)
			}
			if diff := cmp.Diff(want, rec.Body.String()); diff != "" {
				t.Errorf("YAML mismatch (-want +got):\n%s", diff)
			}
		})
	}
	empty := newHarness(t, registry.Options{})
	if got := empty.must(http.StatusOK, "GET", "/export/rundeck?format=yaml", "").Body.String(); got != "{}\n" {
		t.Errorf("empty YAML %q, want {}", got)
	}
	if got := empty.must(http.StatusOK, "GET", "/export/rundeck", "").Body.String(); got != "{}\n" {
		t.Errorf("empty JSON %q, want {}", got)
	}
}

// sshBlock is one Host block of an ssh_config, its keywords in order.
type sshBlock struct {
	Host string
	Keys [][2]string
}

// parseSSHConfig reads an ssh_config as ssh does for these files: a
// keyword and its arguments per line, '#' lines are comments, Host starts
// a block. It fails the test on anything else.
func parseSSHConfig(t *testing.T, text string) []sshBlock {
	t.Helper()
	var blocks []sshBlock
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			t.Fatalf("line %q is not one keyword and one argument", line)
		}
		if f[0] == "Host" {
			blocks = append(blocks, sshBlock{Host: f[1]})
			continue
		}
		if len(blocks) == 0 {
			t.Fatalf("line %q before any Host", line)
		}
		blocks[len(blocks)-1].Keys = append(blocks[len(blocks)-1].Keys, [2]string{f[0], f[1]})
	}
	return blocks
}

func TestExportSSHConfig(t *testing.T) {
	block := func(host, user string) sshBlock {
		b := sshBlock{Host: host, Keys: [][2]string{{"HostName", host}}}
		if user != "" {
			b.Keys = append(b.Keys, [2]string{"User", user})
		}
		return b
	}
	tests := []struct {
		name   string
		agents []fleetAgent
		target string
		want   []sshBlock
		log    string
	}{
		{"plain", plainFleet, "/export/ssh-config", []sshBlock{
			block("10.0.0.7", ""), block("db-1", ""), block("db-2", ""), block("web-1", ""), block("web-2", ""),
		}, ""},
		{"a user and inactive hosts", plainFleet, "/export/ssh-config?user=deploy&active=false", []sshBlock{
			block("10.0.0.7", "deploy"), block("db-1", "deploy"), block("db-2", "deploy"), block("old-1", "deploy"),
			block("web-1", "deploy"), block("web-2", "deploy"),
		}, ""},
		{"a label", plainFleet, "/export/ssh-config?label=env%3Dstaging", []sshBlock{block("web-2", "")}, ""},
		{"hostile", hostileFleet(), "/export/ssh-config?user=u", []sshBlock{
			block("web-1", "u"), block("web-2", "u"), block("web-3", "u"), block("web-4", "u"), block("web-5", "u"),
			block("web-6", "u"), block("web-7", "u"), block("web-8", "u"),
		}, fmt.Sprintf("hosts_left_out=%d", len(hostileHosts))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := newHarness(t, registry.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			loadAgents(h, tt.agents)
			logs.Reset()
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if mt, _, _ := mime.ParseMediaType(rec.Header().Get("Content-Type")); mt != "text/plain" {
				t.Errorf("Content-Type %q, want text/plain", rec.Header().Get("Content-Type"))
			}
			if diff := cmp.Diff(tt.want, parseSSHConfig(t, rec.Body.String())); diff != "" {
				t.Errorf("ssh_config mismatch (-want +got):\n%s", diff)
			}
			if tt.log != "" && !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q does not say %q", logs.String(), tt.log)
			}
		})
	}
}

// TestExportSSHConfigReadBySSH gives the export to the real ssh client:
// ssh -G shows, for each host, the HostName and User the file gives it,
// and a host the file does not name is untouched.
func TestExportSSHConfigReadBySSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skipf("no ssh on $PATH (install openssh-client): %v", err)
	}
	h := newHarness(t, registry.Options{})
	loadAgents(h, hostileFleet())
	loadAgents(h, []fleetAgent{{id: "v6", name: "ops", host: "fe80::1"}})
	rec := h.must(http.StatusOK, "GET", "/export/ssh-config?user=deploy", "")
	file := filepath.Join(t.TempDir(), "ssh_config")
	if err := os.WriteFile(file, rec.Body.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	sshG := func(host string) map[string]string {
		out, err := exec.CommandContext(t.Context(), "ssh", "-G", "-F", file, "--", host).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh -G -F %s %s: %v\n%s\n%s", file, host, err, out, rec.Body)
		}
		got := map[string]string{}
		for _, line := range strings.Split(string(out), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok && (k == "hostname" || k == "user") {
				got[k] = v
			}
		}
		return got
	}
	for _, host := range []string{"web-1", "web-2", "web-8", "fe80::1"} {
		if diff := cmp.Diff(map[string]string{"hostname": host, "user": "deploy"}, sshG(host)); diff != "" {
			t.Errorf("ssh -G %s mismatch (-want +got):\n%s", host, diff)
		}
	}
	// A host left out of the file gets ssh's defaults: its own name, the
	// local user.
	if got := sshG("evil"); got["hostname"] != "evil" || got["user"] == "deploy" {
		t.Errorf("ssh -G evil = %v: the file configured a host it does not name", got)
	}
}

func TestExportFleetQueryChecks(t *testing.T) {
	h := newHarness(t, registry.Options{})
	loadAgents(h, plainFleet[:1])
	for _, ep := range []string{"/export/ansible", "/export/rundeck", "/export/ssh-config"} {
		for _, user := range []string{"a b", "a#b", `"q"`, "*", "!x", "-oProxyCommand=x", "${x}", "{{x}}", "%h", "a,b", "a\nb", "-"} {
			t.Run(ep+"/"+user, func(t *testing.T) {
				if diff := cmp.Diff([][]string{{"query", "user"}}, detailLocs(t, h.do("GET", ep+"?user="+url.QueryEscape(user), ""))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
		t.Run(ep+"/bad active", func(t *testing.T) {
			if diff := cmp.Diff([][]string{{"query", "active"}}, detailLocs(t, h.do("GET", ep+"?active=maybe", ""))); diff != "" {
				t.Errorf("locs mismatch (-want +got):\n%s", diff)
			}
		})
		t.Run(ep+"/HEAD", func(t *testing.T) {
			get := h.must(http.StatusOK, "GET", ep, "")
			head := h.must(http.StatusOK, "HEAD", ep, "")
			if head.Header().Get("ETag") != get.Header().Get("ETag") || head.Header().Get("Content-Type") != get.Header().Get("Content-Type") {
				t.Errorf("HEAD headers %v differ from GET's %v", head.Header(), get.Header())
			}
			rec := h.do("GET", ep, "", func(r *http.Request) { r.Header.Set("If-None-Match", get.Header().Get("ETag")) })
			if rec.Code != http.StatusNotModified {
				t.Errorf("If-None-Match: %d, want 304", rec.Code)
			}
		})
	}
	if diff := cmp.Diff([][]string{{"query", "format"}}, detailLocs(t, h.do("GET", "/export/rundeck?format=xml", ""))); diff != "" {
		t.Errorf("format: locs mismatch (-want +got):\n%s", diff)
	}
}

// TestExportFleetReadAuth checks that the exports are reads: with
// ReadAuth they need a key with a reading role.
func TestExportFleetReadAuth(t *testing.T) {
	h := newHarness(t, registry.Options{ReadAuth: true, Keys: keysFile(t), AuthFailures: -1})
	for _, ep := range []string{"/export/ansible", "/export/rundeck", "/export/ssh-config"} {
		for caller, want := range map[string]int{anon: http.StatusForbidden, badKey: http.StatusForbidden, reader: http.StatusOK, agentA: http.StatusOK} {
			for _, method := range []string{"GET", "HEAD"} {
				if rec := h.do(method, ep, "", as(caller)); rec.Code != want {
					t.Errorf("%s %s as %s: %d, want %d", method, ep, caller, rec.Code, want)
				}
			}
		}
	}
}

// export_test.go checks the export command: each subcommand prints the
// registry's export byte for byte, ansible --host prints one host's
// variables, the Rundeck YAML read back by a YAML parser describes the
// same nodes as the JSON (also with hostile names), and Debian's
// ansible-inventory reads the inventory through contrib/ansible's
// wrapper script with the groups and host variables expected, no value
// that Ansible would template, and no --host call.

package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	yaml "go.yaml.in/yaml/v2"
)

// exportFleet has become fields all of web-1's tools agree on, a host
// whose tools disagree, an inactive host and hostile names and hosts.
var exportFleet = []testAgent{
	{id: "a1", name: "ops", host: "web-1", labels: map[string]string{"env": "prod"}, tools: []string{
		`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
		`{"name":"status","x-command":"/bin/status","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
	}},
	{id: "a2", name: "ops", host: "web-2", tools: []string{
		`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle"}`, `{"name":"status","x-command":"/bin/status"}`,
	}},
	{id: "a3", name: "old", host: "old-1", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}, gone: true},
	{id: "h1", name: "{{ lookup('pipe','id') }}", host: "web-3", tools: []string{
		`{"name":"{% raw %}x","x-command":"/x"}`, `{"name":"a,b","x-command":"/x"}`, `{"name":"say \"hi\" \\ é","x-command":"/x"}`,
		`{"name":"t","x-command":"/x","x-run-as":"root; id"}`,
	}},
	{id: "h2", name: "ops", host: "evil host", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}},
	{id: "h3", name: "ops", host: "-oProxyCommand=touch /tmp/pwned", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}},
	{id: "h4", name: "ops", host: "{{ lookup('pipe','id') }}", tools: []string{`{"name":"deploy","x-command":"/bin/deploy"}`}},
}

// apiGet reads a registry path as it answers.
func apiGet(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", url, resp.Status, b)
	}
	return b
}

func TestExportCommands(t *testing.T) {
	r := newTestRegistry(t)
	r.add(exportFleet...)
	tests := []struct {
		args   []string
		target string
	}{
		{[]string{"ansible"}, "/export/ansible"},
		{[]string{"ansible", "--list", "--user", "deploy", "--label", "env=prod"}, "/export/ansible?user=deploy&label=env%3Dprod"},
		{[]string{"rundeck"}, "/export/rundeck?format=json"},
		{[]string{"rundeck", "--format", "yaml", "--inactive", "--user", "u"}, "/export/rundeck?format=yaml&active=false&user=u"},
		{[]string{"ssh-config", "--user", "deploy"}, "/export/ssh-config?user=deploy"},
		{[]string{"superputty"}, "/export/superputty"},
		{[]string{"mobaxterm", "--inactive"}, "/export/mobaxterm?active=false"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			res := runCLI(t.Context(), t, append([]string{"export", tt.args[0], "--registry", r.url}, tt.args[1:]...)...)
			if res.status != 0 {
				t.Fatalf("status %d: %s", res.status, res.stderr)
			}
			if diff := cmp.Diff(string(apiGet(t, r.url+tt.target)), res.stdout); diff != "" {
				t.Errorf("output is not the export (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("ansible --host", func(t *testing.T) {
		var inv struct {
			Meta struct {
				HostVars map[string]any `json:"hostvars"`
			} `json:"_meta"`
		}
		if err := json.Unmarshal(apiGet(t, r.url+"/export/ansible"), &inv); err != nil {
			t.Fatal(err)
		}
		for host, want := range map[string]any{"web-1": inv.Meta.HostVars["web-1"], "nowhere": map[string]any{}} {
			res := runCLI(t.Context(), t, "export", "ansible", "--registry", r.url, "--host", host)
			var got any
			if err := json.Unmarshal([]byte(res.stdout), &got); err != nil || res.status != 0 {
				t.Fatalf("--host %s: status %d, %v: %q", host, res.status, err, res.stdout)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("--host %s mismatch (-want +got):\n%s", host, diff)
			}
		}
		if res := runCLI(t.Context(), t, "export", "ansible", "--registry", r.url, "--list", "--host", "web-1"); res.status != 1 {
			t.Errorf("--list with --host: status %d", res.status)
		}
	})
	t.Run("bad user", func(t *testing.T) {
		res := runCLI(t.Context(), t, "export", "ssh-config", "--registry", r.url, "--user", "a b")
		if res.status != 1 || !strings.Contains(res.stderr, "query.user") {
			t.Errorf("status %d, stderr %q", res.status, res.stderr)
		}
	})
}

// TestRundeckYAMLMatchesJSON reads the Rundeck export back with a YAML
// parser (YAML 1.1, as Rundeck's SnakeYAML) and compares the nodes with
// those of the JSON.
func TestRundeckYAMLMatchesJSON(t *testing.T) {
	r := newTestRegistry(t)
	r.add(exportFleet...)
	for _, q := range []string{"", "&user=deploy", "&active=false"} {
		var fromJSON, fromYAML map[string]map[string]string
		if err := json.Unmarshal(apiGet(t, r.url+"/export/rundeck?format=json"+q), &fromJSON); err != nil {
			t.Fatal(err)
		}
		y := apiGet(t, r.url+"/export/rundeck?format=yaml"+q)
		if err := yaml.UnmarshalStrict(y, &fromYAML); err != nil {
			t.Fatalf("YAML: %v\n%s", err, y)
		}
		if diff := cmp.Diff(fromJSON, fromYAML); diff != "" {
			t.Errorf("%s: JSON and YAML differ (-json +yaml):\n%s", q, diff)
		}
		// web-3 is there, without the names a tag cannot carry.
		if got := fromYAML["web-3"]["tags"]; got != `say "hi" \ é,t,{% raw %}x` {
			t.Errorf("%s: web-3 tags %q", q, got)
		}
		if len(fromJSON) < 3 {
			t.Errorf("%s: only %d nodes", q, len(fromJSON))
		}
	}
}

// TestAnsibleInventoryScript runs Debian's ansible-inventory on the
// wrapper script, as Ansible users will, and reads its --list.
func TestAnsibleInventoryScript(t *testing.T) {
	inventory, err := exec.LookPath("ansible-inventory")
	if err != nil {
		t.Skipf("no ansible-inventory (install ansible-core): %v", err)
	}
	bin := buildBinary(t) // skips with -short
	r := newTestRegistry(t)
	r.add(exportFleet...)
	dir := t.TempDir()
	// A stand-in for runspec-registry that notes each call's arguments,
	// to show that Ansible never calls --host.
	calls := filepath.Join(dir, "calls")
	logging := filepath.Join(dir, "runspec-registry")
	if err := os.WriteFile(logging, []byte("#!/bin/sh\necho \"$*\" >>"+calls+"\nexec "+bin+" \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	script, err := filepath.Abs("../../contrib/ansible/runspec-inventory")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), inventory, "-i", script, "--list")
	cmd.Env = append(os.Environ(), "RUNSPEC_REGISTRY_URL="+r.url, "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir, "ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"), "ANSIBLE_INVENTORY_UNPARSED_FAILED=true")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ansible-inventory: %v\n%s", err, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("ansible-inventory --list: %v\n%s", err, out)
	}
	if strings.Contains(string(out), "{{") || strings.Contains(string(out), "{%") || strings.Contains(string(out), "{#") {
		t.Errorf("the inventory has a value Ansible would template:\n%s", out)
	}
	hosts := func(group string) []any {
		g, _ := got[group].(map[string]any)
		h, _ := g["hosts"].([]any)
		slices.SortFunc(h, func(a, b any) int { return strings.Compare(a.(string), b.(string)) })
		return h
	}
	for group, want := range map[string][]any{
		"agent_ops":   {"web-1", "web-2"},
		"tool_deploy": {"web-1", "web-2"},
		"tool_status": {"web-1", "web-2"},
		"tool_a_b":    {"web-3"},
		"tool_t":      {"web-3"},
	} {
		if diff := cmp.Diff(want, hosts(group)); diff != "" {
			t.Errorf("group %s mismatch (-want +got):\n%s", group, diff)
		}
	}
	children, _ := got["all"].(map[string]any)["children"].([]any)
	for _, want := range []string{"ungrouped", "agent_ops", "tool_deploy", "tool_say__hi_____", "tool_t"} {
		if !slices.Contains(children, any(want)) {
			t.Errorf("all's children %v lack %s", children, want)
		}
	}
	hostvars := got["_meta"].(map[string]any)["hostvars"].(map[string]any)
	want := map[string]any{
		"web-1": map[string]any{"ansible_become_user": "oracle", "ansible_become_method": "sudo", "ansible_become_flags": "-H",
			"runspec_agents": []any{"ops"}, "runspec_tools": []any{"deploy", "status"}},
		"web-2": map[string]any{"runspec_agents": []any{"ops"}, "runspec_tools": []any{"deploy", "status"}},
		"web-3": map[string]any{"runspec_agents": []any{}, "runspec_tools": []any{"a,b", `say "hi" \ é`, "t"}},
	}
	if diff := cmp.Diff(want, hostvars); diff != "" {
		t.Errorf("hostvars mismatch (-want +got):\n%s", diff)
	}
	log, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("export ansible --list\n", string(log)); diff != "" {
		t.Errorf("the calls Ansible made mismatch (-want +got):\n%s", diff)
	}
}

// export_fleet_bytes_test.go pins the bytes of the fleet exports (GET
// /export/ansible, /export/rundeck, /export/ssh-config) and of their log
// line: a varied fleet with hostile values, left-out entries, colliding
// groups, restarts and inactive records, against golden files, and a fleet
// large enough that every answer spans many chunks, against the length and
// hash of its bytes. Refresh with go test -run TestExportFleetBytes -update.

package registry_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// bytesFleet is the varied fleet: hostileFleet, the rest of plainFleet,
// and names that collide, hold characters JSON and YAML escape, or that
// Ansible would template, on hosts shared by several agents.
func bytesFleet() (old, fresh []fleetAgent) {
	old = []fleetAgent{
		// Inactive by the time of the exports: only ?active=false shows them.
		{id: "i1", name: "ops", host: "idle-1", tools: []string{`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle"}`}},
		{id: "i2", name: "batch", host: "web-1", labels: map[string]string{"env": "prod"}, tools: []string{`{"name":"nightly","x-command":"/bin/n"}`}},
	}
	fresh = append(hostileFleet(), plainFleet[1:]...)
	fresh = append(fresh,
		fleetAgent{id: "e1", name: "x-y", host: "coll-1", tools: []string{
			`{"name":"t-1","x-command":"/t"}`, `{"name":"t.1","x-command":"/t"}`, `{"name":"Ünï","x-command":"/u"}`,
			`{"name":"a<b&c>","x-command":"/a"}`, `{"name":"q\"b\\s","x-command":"/q"}`, `{"name":"mid·dot ünï","x-command":"/l"}`,
		}},
		fleetAgent{id: "e2", name: "x.y", host: "coll-2", tools: []string{`{"name":"t-1","x-command":"/t"}`}},
		// A restart on web-1: two records of ops, the second with a tool
		// of its own.
		fleetAgent{id: "a1b", name: "ops", host: "web-1", labels: map[string]string{"env": "prod"}, tools: []string{
			`{"name":"zeta","x-command":"/z","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
			`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-become-flags":"-H"}`,
		}},
		fleetAgent{id: "e3", name: "日本", host: "db-3", tools: []string{`{"name":"日本","x-command":"/j","x-run-as":"postgres"}`, `{"name":"{{ t }}","x-command":"/t"}`}},
		fleetAgent{id: "e4", name: "{# c #}", host: "db-4", tools: []string{`{"name":"{{ t }}","x-command":"/t"}`}},
		fleetAgent{id: "e5", name: "ops", host: "web-9", labels: map[string]string{"env": "prod"}, tools: []string{
			`{"name":"status","x-command":"/bin/status","x-run-as":"svc","x-become-method":"su"}`,
		}},
		fleetAgent{id: "e6", name: "web", host: "web-9", tools: []string{`{"name":"status","x-command":"/bin/status","x-run-as":"svc","x-become-method":"su"}`}},
		fleetAgent{id: "e7", name: "Ops", host: "web-10", tools: []string{`{"name":"Status","x-command":"/s"}`}},
	)
	return old, fresh
}

// fleetTargets are the requests whose answers are pinned.
var fleetTargets = []struct {
	file   string
	target string
	accept string
}{
	{"ansible.json", "/export/ansible", ""},
	{"ansible-inactive-user.json", "/export/ansible?active=false&user=deploy", ""},
	{"ansible-label.json", "/export/ansible?label=env%3Dprod", ""},
	{"ansible-none.json", "/export/ansible?label=env%3Dnone", ""},
	{"rundeck.json", "/export/rundeck", ""},
	{"rundeck-inactive-user.json", "/export/rundeck?active=false&user=deploy", ""},
	{"rundeck-none.json", "/export/rundeck?label=env%3Dnone", ""},
	{"rundeck.yaml", "/export/rundeck?format=yaml", ""},
	{"rundeck-accept.yaml", "/export/rundeck?user=deploy", "application/yaml"},
	{"rundeck-none.yaml", "/export/rundeck?format=yaml&label=env%3Dnone", ""},
	{"ssh_config", "/export/ssh-config", ""},
	{"ssh_config-inactive-user", "/export/ssh-config?active=false&user=deploy", ""},
	{"ssh_config-none", "/export/ssh-config?label=env%3Dnone", ""},
}

// noTime drops the time of log records, so that the log line is golden.
func noTime(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		return slog.Attr{}
	}
	return a
}

func TestExportFleetBytes(t *testing.T) {
	var logs strings.Builder
	h := newHarness(t, registry.Options{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{ReplaceAttr: noTime}))})
	old, fresh := bytesFleet()
	loadAgents(h, old)
	h.clock.Advance(5 * time.Minute)
	loadAgents(h, fresh)
	for _, tt := range fleetTargets {
		t.Run(tt.file, func(t *testing.T) {
			logs.Reset()
			var opts []reqOpt
			if tt.accept != "" {
				opts = append(opts, func(r *http.Request) { r.Header.Set("Accept", tt.accept) })
			}
			rec := h.must(http.StatusOK, "GET", tt.target, "", opts...)
			got := "GET " + tt.target + "\n" + logs.String() + "\n" + rec.Body.String()
			golden(t, filepath.Join("testdata", "exports", tt.file), got)
		})
	}
}

// golden compares got with the file, or writes it with -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("%s: the answer changed:\n--- want\n%s\n--- got\n%s", file, want, got)
	}
}

// largeBytesFleet loads n hosts with agent and tool names that repeat,
// collide and spread over many groups, a tool on every host, and a few
// hostile hosts and names: every export of it spans many chunks, and with
// n = 10,000 its walks pass maxVisit and its batches (export_ansible.go)
// fill more than once.
func largeBytesFleet(t *testing.T, reg *registry.Registry, n int) {
	ctx := context.Background()
	for i := range n {
		host := fmt.Sprintf("host-%05d", i*7919%n)
		switch i % 97 {
		case 13:
			host = fmt.Sprintf("bad host %d", i)
		case 29:
			host = fmt.Sprintf("10.1.%d.%d", i/256%256, i%256)
		}
		name := fmt.Sprintf("agent-%d", i%37)
		if i%11 == 0 {
			name = fmt.Sprintf("agent.%d", i%37) // collides with agent-N where both exist
		}
		if i%4 == 0 {
			name = fmt.Sprintf("solo-%d", i) // a group of its own
		}
		id := fmt.Sprintf("id-%05d", i)
		if err := reg.Register(ctx, registry.Registration{ID: id, Name: name, Version: "1", Host: host,
			Labels: map[string]string{"env": []string{"prod", "dev"}[i%2]}}); err != nil {
			t.Fatal(err)
		}
		tools := []json.RawMessage{json.RawMessage(`{"name":"everywhere","x-command":"/bin/e","x-run-as":"svc"}`)}
		for j := range i % 5 {
			tn := fmt.Sprintf("tool-%d", (i+j*13)%1500)
			switch (i + j) % 53 {
			case 7:
				tn = "tool." + tn[5:]
			case 8:
				tn = "{{ x }}" + tn
			case 9:
				tn = "tag,sep" + tn
			}
			runAs := []string{"svc", "oracle", "root; id", "svc"}[(i+j)%4]
			tools = append(tools, json.RawMessage(fmt.Sprintf(`{"name":%q,"x-command":"/bin/x","x-run-as":%q,"x-become-method":"sudo"}`, tn, runAs)))
		}
		if err := reg.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
}

// TestExportFleetBytesLarge pins the length and hash of the exports of a
// fleet of 10,000 hosts (0.5 to 2 MB each).
func TestExportFleetBytesLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("a fleet of 10,000 hosts")
	}
	h := newHarness(t, registry.Options{})
	largeBytesFleet(t, h.reg, 10000)
	var got strings.Builder
	for _, target := range []string{"/export/ansible", "/export/ansible?active=false&user=u&label=env%3Dprod",
		"/export/rundeck", "/export/rundeck?format=yaml&user=u", "/export/ssh-config?user=u"} {
		rec := h.must(http.StatusOK, "GET", target, "")
		fmt.Fprintf(&got, "%s %d %x\n", target, rec.Body.Len(), sha256.Sum256(rec.Body.Bytes()))
	}
	file := filepath.Join("testdata", "exports", "large.sums")
	if *update {
		golden(t, file, got.String())
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got.String()); diff != "" {
		t.Errorf("the answers changed (-want +got):\n%s", diff)
	}
}

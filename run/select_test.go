// select_test.go checks which entry runs: one per host when the entries
// there agree, a refusal naming the instance ids when they differ, an
// instance id to pick one, the hosts that offer a tool.

package run_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/run"
)

func hostEntry(host, id, command string, active bool, seen int) registry.ToolHost {
	return registry.ToolHost{Host: host, InstanceID: id, Name: "ops", Command: str(command), Active: active,
		LastSeen: time.Unix(int64(seen), 0)}
}

func TestSelect(t *testing.T) {
	tool := registry.Tool{Name: "deploy", Hosts: []registry.ToolHost{
		hostEntry("web-1", "a", "/bin/deploy", true, 10),
		hostEntry("web-1", "b", "/bin/deploy", true, 20), // agrees with a, seen later
		hostEntry("web-2", "c", "/bin/deploy", true, 10),
		hostEntry("web-2", "d", "/opt/deploy", true, 10), // differs from c
		hostEntry("web-2", "e", "/usr/bin/other", false, 30),
		hostEntry("web-3", "f", "/bin/deploy", false, 10), // inactive only
	}}
	tests := []struct {
		name, host, id string
		want           string // instance id
		err            error
		hostErr        *run.HostError
	}{
		{name: "agreeing entries run once, the latest seen", host: "web-1", want: "b"},
		{name: "an instance id picks one", host: "web-1", id: "a", want: "a"},
		{name: "differing entries are refused", host: "web-2", err: run.ErrAmbiguous,
			hostErr: &run.HostError{Tool: "deploy", Host: "web-2", InstanceIDs: []string{"c", "d"}, Err: run.ErrAmbiguous}},
		{name: "an instance id picks among differing entries", host: "web-2", id: "d", want: "d"},
		{name: "an inactive instance id is unknown", host: "web-2", id: "e", err: run.ErrUnknownInstance,
			hostErr: &run.HostError{Tool: "deploy", Host: "web-2", InstanceID: "e", InstanceIDs: []string{"c", "d"}, Err: run.ErrUnknownInstance}},
		{name: "an instance of another host is unknown", host: "web-1", id: "c", err: run.ErrUnknownInstance,
			hostErr: &run.HostError{Tool: "deploy", Host: "web-1", InstanceID: "c", InstanceIDs: []string{"a", "b"}, Err: run.ErrUnknownInstance}},
		{name: "a host with inactive entries only", host: "web-3", err: run.ErrUnknownHost,
			hostErr: &run.HostError{Tool: "deploy", Host: "web-3", Hosts: []string{"web-1", "web-2"}, Err: run.ErrUnknownHost}},
		{name: "an unknown host lists the hosts", host: "db-1", err: run.ErrUnknownHost,
			hostErr: &run.HostError{Tool: "deploy", Host: "db-1", Hosts: []string{"web-1", "web-2"}, Err: run.ErrUnknownHost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := run.Select(tool, tt.host, tt.id)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				var he *run.HostError
				if !errors.As(err, &he) {
					t.Fatalf("err = %T, want *HostError", err)
				}
				// The sentinel is checked above; compare the rest.
				want, got := *tt.hostErr, *he
				want.Err, got.Err = nil, nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("HostError mismatch (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.InstanceID != tt.want {
				t.Errorf("selected %s, want %s", got.InstanceID, tt.want)
			}
		})
	}
}

func TestSelectMessages(t *testing.T) {
	tool := registry.Tool{Name: "deploy", Hosts: []registry.ToolHost{
		hostEntry("web-2", "c", "/bin/deploy", true, 10),
		hostEntry("web-2", "d", "/opt/deploy", true, 10),
	}}
	_, err := run.Select(tool, "web-2", "")
	if want := "run: tool deploy on host web-2: the tool's entries on that host differ: pick an instance id; instance ids: c, d"; err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
	_, err = run.Select(tool, "db-1", "")
	if want := "run: tool deploy is not offered on host db-1; hosts that offer it: web-2"; err.Error() != want {
		t.Errorf("message\n got %s\nwant %s", err, want)
	}
}

func TestSelectDifferInEveryField(t *testing.T) {
	base := hostEntry("web-1", "a", "/bin/deploy", true, 10)
	for name, change := range map[string]func(*registry.ToolHost){
		"command":       func(h *registry.ToolHost) { h.Command = str("/bin/other") },
		"run-as":        func(h *registry.ToolHost) { h.RunAs = str("oracle") },
		"become method": func(h *registry.ToolHost) { h.BecomeMethod = str("su") },
		"become flags":  func(h *registry.ToolHost) { h.BecomeFlags = str("-H") },
		"absent or empty": func(h *registry.ToolHost) {
			h.RunAs = str("") // present but empty is not the same record as absent
		},
		"owner": func(h *registry.ToolHost) { h.Owner = "another-identity" }, // same fields, another owner
	} {
		t.Run(name, func(t *testing.T) {
			other := base
			other.InstanceID = "b"
			change(&other)
			tool := registry.Tool{Name: "deploy", Hosts: []registry.ToolHost{base, other}}
			if _, err := run.Select(tool, "web-1", ""); !errors.Is(err, run.ErrAmbiguous) {
				t.Errorf("err = %v, want ErrAmbiguous", err)
			}
		})
	}
}

func TestActiveAndRandomHosts(t *testing.T) {
	tool := registry.Tool{Name: "deploy", Hosts: []registry.ToolHost{
		hostEntry("web-2", "a", "/bin/deploy", true, 1),
		hostEntry("web-1", "b", "/bin/deploy", true, 1),
		hostEntry("web-1", "c", "/bin/deploy", true, 1),
		hostEntry("web-3", "d", "/bin/deploy", false, 1),
	}}
	if diff := cmp.Diff([]string{"web-1", "web-2"}, run.ActiveHosts(tool)); diff != "" {
		t.Errorf("active hosts mismatch (-want +got):\n%s", diff)
	}
	r := rand.New(rand.NewPCG(1, 2))
	seen := map[string]int{}
	for range 200 {
		h, err := run.RandomHost(tool, r)
		if err != nil {
			t.Fatal(err)
		}
		seen[h]++
	}
	if len(seen) != 2 || seen["web-1"] < 50 || seen["web-2"] < 50 {
		t.Errorf("random hosts %v, want web-1 and web-2 about equally (each host once, whatever its entries)", seen)
	}
	if h, err := run.RandomHost(tool, nil); err != nil || (h != "web-1" && h != "web-2") {
		t.Errorf("RandomHost(nil rand) = %q, %v", h, err)
	}
	if _, err := run.RandomHost(registry.Tool{Name: "x"}, nil); !errors.Is(err, run.ErrNoHosts) {
		t.Errorf("RandomHost of a tool without hosts: %v, want ErrNoHosts", err)
	}
}

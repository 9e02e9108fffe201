// fleet_internal_test.go checks the fleet on its own: which records it
// keeps, members in registration order whatever order changes come in,
// the tool names each change touches, which events need a read, and the
// interning of tool objects.

package fleetmcp

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	registry "github.com/runspec/registry"
)

// inst is an active record offering tools.
func inst(id, host string, tools ...string) registry.Instance {
	in := registry.Instance{ID: id, Name: "ops", Host: host, Active: true}
	for _, t := range tools {
		in.Tools = append(in.Tools, json.RawMessage(fmt.Sprintf(`{"name":%q,"x-command":"/bin/%s"}`, t, t)))
	}
	return in
}

// membersOf returns the members of each tool name as ids.
func membersOf(f *fleet) map[string][]string {
	out := map[string][]string{}
	for name, ms := range f.members {
		for _, r := range ms {
			out[name] = append(out[name], r.id)
		}
	}
	return out
}

func TestFleet(t *testing.T) {
	type step struct {
		seen    []registry.Instance // read, in this order
		events  []registry.Event    // then applied
		members map[string][]string
		touched []string
		read    []string // the ids the events want read
	}
	ev := func(kind, id string) registry.Event { return registry.Event{Kind: kind, InstanceID: id, Name: "ops"} }
	tests := []struct {
		name  string
		view  View
		steps []step
	}{
		{"registration order, whatever order reads come in", View{}, []step{
			{seen: []registry.Instance{inst("b", "h1", "deploy"), inst("a", "h2", "deploy", "status")},
				members: map[string][]string{"deploy": {"b", "a"}, "status": {"a"}}, touched: []string{"deploy", "status"}},
			{seen: []registry.Instance{inst("a", "h2", "deploy")}, // a posts fewer tools: it keeps its place
				members: map[string][]string{"deploy": {"b", "a"}}, touched: []string{"deploy", "status"}},
			{seen: []registry.Instance{inst("c", "h3", "deploy"), inst("b", "h1", "deploy")},
				members: map[string][]string{"deploy": {"b", "a", "c"}}, touched: []string{"deploy"}},
		}},
		{"events", View{}, []step{
			{seen: []registry.Instance{inst("a", "h1", "deploy"), inst("b", "h2", "deploy")},
				members: map[string][]string{"deploy": {"a", "b"}}, touched: []string{"deploy"}},
			{events: []registry.Event{ev(registry.EventTools, "a"), ev(registry.EventActive, "b")},
				members: map[string][]string{"deploy": {"a", "b"}}, read: []string{"a", "b"}},
			{events: []registry.Event{ev(registry.EventInactive, "a")},
				members: map[string][]string{"deploy": {"b"}}, touched: []string{"deploy"}},
			{events: []registry.Event{ev(registry.EventRegistered, "b")}, // tools reset
				members: map[string][]string{}, touched: []string{"deploy"}},
			{events: []registry.Event{ev(registry.EventDeleted, "a"), ev(registry.EventRegistered, "a")},
				seen:    []registry.Instance{inst("a", "h1", "deploy"), inst("b", "h2", "deploy")},
				members: map[string][]string{"deploy": {"b", "a"}}, touched: []string{"deploy"}}, // a came back last
		}},
		{"the view", View{Agent: "ops", Labels: map[string]string{"env": "prod"}, Tools: []string{"d*"}}, []step{
			{seen: []registry.Instance{
				func() registry.Instance {
					in := inst("a", "h1", "deploy", "status")
					in.Labels = map[string]string{"env": "prod"}
					return in
				}(),
				inst("b", "h2", "deploy"), // no label
				func() registry.Instance {
					in := inst("c", "h3", "deploy")
					in.Labels, in.Name = map[string]string{"env": "prod"}, "db"
					return in
				}(),
				func() registry.Instance {
					in := inst("d", "h4", "deploy")
					in.Labels, in.Active = map[string]string{"env": "prod"}, false
					return in
				}(),
			}, members: map[string][]string{"deploy": {"a"}}, touched: []string{"deploy"}},
			{events: []registry.Event{{Kind: registry.EventTools, InstanceID: "c", Name: "db"}, ev(registry.EventTools, "b")},
				members: map[string][]string{"deploy": {"a"}}, read: []string{"b"}}, // not db: no read
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFleet(tt.view)
			for i, st := range tt.steps {
				var read []string
				for _, e := range st.events {
					if f.apply(e) {
						read = append(read, e.InstanceID)
					}
				}
				for _, in := range st.seen {
					f.seen(in)
				}
				if diff := cmp.Diff(st.members, membersOf(f)); diff != "" {
					t.Errorf("step %d: members mismatch (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(st.touched, f.take(), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("step %d: touched mismatch (-want +got):\n%s", i, diff)
				}
				if diff := cmp.Diff(st.read, read); diff != "" {
					t.Errorf("step %d: reads mismatch (-want +got):\n%s", i, diff)
				}
			}
		})
	}
}

// TestFleetCopiesMembers: members a catalog holds are never changed: the
// first change after a take copies them.
func TestFleetCopiesMembers(t *testing.T) {
	f := newFleet(View{})
	f.seen(inst("a", "h1", "deploy"))
	f.take()
	held := f.members["deploy"]
	f.seen(inst("b", "h2", "deploy"))
	f.seen(inst("a", "h1", "deploy"))
	if len(held) != 1 || held[0].id != "a" {
		t.Errorf("the members held changed: %v", held)
	}
}

// TestFleetInterns: records of one kind share their tool objects, and the
// objects no record uses are forgotten once they are many.
func TestFleetInterns(t *testing.T) {
	f := newFleet(View{})
	f.seen(inst("a", "h1", "deploy"))
	f.seen(inst("b", "h2", "deploy"))
	if f.recs["a"].tools[0] != f.recs["b"].tools[0] {
		t.Error("two records of the same tool object do not share it")
	}
	for i := range 3000 {
		f.seen(inst("a", "h1", fmt.Sprint("t", i)))
	}
	f.sweep()
	if n := len(f.objs); n != 2 {
		t.Errorf("%d tool objects kept after a sweep, want 2 (deploy of b, t2999 of a)", n)
	}
}

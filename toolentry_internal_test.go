// toolentry_internal_test.go pins the tool entries, whose members leave
// vacant slots (see toolEntry): after any sequence of registrations,
// re-registrations, tool posts and deletions, each entry lists exactly the
// instances offering its tool, by seq, its counts are right, the vacant
// slots never outnumber max(members, compactAt), and no answer shows one.

package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestToolEntriesAfterRestarts(t *testing.T) {
	seeds := uint64(8)
	if testing.Short() {
		seeds = 2
	}
	for seed := range seeds {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			r, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			ctx := t.Context()
			rng := rand.New(rand.NewPCG(seed, 1))
			names := []string{"a", "b", "c", "d", "e"}
			for step := range 1500 {
				id := fmt.Sprint("id-", rng.IntN(60))
				var op string
				switch k := rng.IntN(10); {
				case k < 4:
					op = "register"
					err = r.Register(ctx, Registration{ID: id, Name: "svc", Host: fmt.Sprint("h", rng.IntN(8))})
				case k < 9:
					tools := []json.RawMessage{}
					for _, n := range names {
						if rng.IntN(3) > 0 {
							tools = append(tools, json.RawMessage(fmt.Sprintf(`{"name":%q,"x-command":"/bin/%d"}`, n, rng.IntN(2))))
						}
					}
					op = fmt.Sprint("tools ", len(tools))
					err = r.UpdateTools(ctx, id, tools)
				default:
					op = "delete"
					err = r.Delete(ctx, id)
				}
				if err != nil && !isNotFound(err) {
					t.Fatalf("step %d: %s %s: %v", step, op, id, err)
				}
				checkToolEntries(t, r, fmt.Sprintf("step %d (%s %s)", step, op, id))
			}
		})
	}
}

// TestRollingRestartKeepsEntriesDense restarts every agent of a fleet that
// shares one tool, one after another, and checks that the entry reuses the
// slots (no compaction needed, no vacant slot left).
func TestRollingRestartKeepsEntriesDense(t *testing.T) {
	r, _ := New(Options{})
	ctx := t.Context()
	tools := []json.RawMessage{json.RawMessage(`{"name":"shared"}`)}
	const n = 200
	for i := range n {
		id := fmt.Sprint("a", i)
		if err := r.Register(ctx, Registration{ID: id, Name: "ops", Host: fmt.Sprint("h", i)}); err != nil {
			t.Fatal(err)
		}
		if err := r.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		id := fmt.Sprint("a", i)
		if err := r.Register(ctx, Registration{ID: id, Name: "ops", Host: fmt.Sprint("h", i)}); err != nil {
			t.Fatal(err)
		}
		checkToolEntries(t, r, "after the registration of "+id)
		if err := r.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
	checkToolEntries(t, r, "after the restarts")
	e := r.v.tools["shared"]
	if len(e.members) != n || e.vacancies() != 0 {
		t.Errorf("after a rolling restart: %d slots, %d vacant; want %d and 0", len(e.members), e.vacancies(), n)
	}
}

func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// checkToolEntries compares every tool entry with the instances' own tool
// lists, and the grouped answers with them.
func checkToolEntries(t *testing.T, r *Registry, when string) {
	t.Helper()
	r.mu.RLock()
	want := make(map[string][]string) // tool name → ids of the instances offering it, by seq
	for _, in := range r.v.insts {
		if ts := in.tools.Load(); ts != nil {
			for _, tr := range ts.list {
				want[tr.s.name] = append(want[tr.s.name], in.id)
			}
		}
	}
	got := make(map[string][]string)
	for name, e := range r.v.tools {
		var live, vacant int
		for j, m := range e.members {
			if j > 0 && e.members[j-1].in.seq >= m.in.seq {
				t.Errorf("%s: tool %s: slot %d (seq %d) after seq %d", when, name, j, m.in.seq, e.members[j-1].in.seq)
			}
			if m.vacant() {
				if p := m.in; !p.deleted || p.tools.Load() != nil || p.system != nil || p.labels != nil || p.id != "" {
					t.Errorf("%s: tool %s: vacant slot %d holds an instance, not a placeholder: %+v", when, name, j, p)
				}
				vacant++
				continue
			}
			live++
			if m.in.deleted {
				t.Errorf("%s: tool %s lists the deleted instance %s", when, name, m.in.id)
			}
			got[name] = append(got[name], m.in.id)
		}
		if live != e.live || vacant != e.vacancies() {
			t.Errorf("%s: tool %s counts %d members and %d vacant slots, holds %d and %d", when, name, e.live, e.vacancies(), live, vacant)
		}
		if live == 0 {
			t.Errorf("%s: tool %s has an entry and no member", when, name)
		}
		if vacant > max(live, compactAt) {
			t.Errorf("%s: tool %s: %d vacant slots for %d members", when, name, vacant, live)
		}
	}
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range want {
			if !yield(n) {
				return
			}
		}
	})
	if diff := cmp.Diff(names, r.v.names, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("%s: tool names (-want +got):\n%s", when, diff)
	}
	r.mu.RUnlock()
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: tool entries (-want +got):\n%s", when, diff)
	}
	tools, _, err := r.Tools(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	answered := make(map[string][]string)
	for _, tl := range tools {
		for _, h := range tl.Hosts {
			answered[tl.Name] = append(answered[tl.Name], h.InstanceID)
		}
	}
	if diff := cmp.Diff(want, answered, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("%s: GET /tools (-want +got):\n%s", when, diff)
	}
}

// TestVacantSlotsHoldNothingThatLeft is the review's case of db2cda2:
// instances that drop a tool and are deleted, or restart and never post
// again, must not stay reachable from the slots they left (there, each
// kept its system object, up to a body's size, past --max-instances).
func TestVacantSlotsHoldNothingThatLeft(t *testing.T) {
	r, _ := New(Options{MaxInstances: 10})
	ctx := t.Context()
	const names = 20
	var all []json.RawMessage
	for i := range names {
		all = append(all, json.RawMessage(fmt.Sprintf(`{"name":"t%d"}`, i)))
	}
	// One agent keeps every entry alive.
	if err := r.Register(ctx, Registration{ID: "keeper", Name: "app", Host: "k"}); err != nil {
		t.Fatal(err)
	}
	if err := r.UpdateTools(ctx, "keeper", all); err != nil {
		t.Fatal(err)
	}
	for j := range 8 * names {
		id := fmt.Sprint("d", j)
		tool := []json.RawMessage{all[j%names]}
		steps := []func() error{
			func() error { return r.Register(ctx, Registration{ID: id, Name: "app", Host: "d"}) },
			func() error { _, err := r.Heartbeat(ctx, id, json.RawMessage(`{"blob":"x"}`)); return err },
			func() error { return r.UpdateTools(ctx, id, tool) },
		}
		if j%2 == 0 {
			// drops its tool, then is deleted
			steps = append(steps, func() error { return r.UpdateTools(ctx, id, []json.RawMessage{}) })
		} else {
			// restarts and never posts its tools again, then is deleted
			steps = append(steps, func() error { return r.Register(ctx, Registration{ID: id, Name: "app", Host: "d"}) })
		}
		steps = append(steps, func() error { return r.Delete(ctx, id) })
		for k, step := range steps {
			if err := step(); err != nil {
				t.Fatalf("instance %s, step %d: %v", id, k, err)
			}
		}
	}
	checkToolEntries(t, r, "after the deletions")
	r.mu.RLock()
	defer r.mu.RUnlock()
	var vacant int
	for _, e := range r.v.tools {
		vacant += e.vacancies()
		for _, m := range e.members {
			if m.in.id != "" && m.in.id != "keeper" {
				t.Errorf("tool %s: a slot holds the instance %s (deleted %v)", e.name, m.in.id, m.in.deleted)
			}
		}
	}
	if vacant == 0 {
		t.Error("no vacant slot: the test no longer makes any")
	}
}

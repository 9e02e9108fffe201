// dueheap_test.go checks dueHeap on its own: set, remove, before and next,
// set to math.MaxInt64 taking an entry out, each entry knowing its place, and
// the heap order under random operations against a naive model.

package registry

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// newHeapInstances returns n instances named i0…, registered in that
// order, that are in no heap (neither the deadline heap nor the inactive
// one).
func newHeapInstances(n int) []*instance {
	ins := make([]*instance, n)
	for i := range ins {
		ins[i] = &instance{id: fmt.Sprint("i", i), seq: uint64(i + 1), heapIdx: -1, inactiveIdx: -1}
	}
	return ins
}

// dueIDs returns the ids of ins, sorted.
func dueIDs(ins []*instance) []string {
	ids := []string{}
	for _, in := range ins {
		ids = append(ids, in.id)
	}
	slices.Sort(ids)
	return ids
}

// checkDueHeap checks that every entry knows its position and that no
// entry is due before its parent.
func checkDueHeap(t *testing.T, h dueHeap) {
	t.Helper()
	for i, in := range h {
		if in.heapIdx != i {
			t.Fatalf("%s at position %d has heapIdx %d", in.id, i, in.heapIdx)
		}
		if p := (i - 1) / 2; i > 0 && h[p].due > in.due {
			t.Fatalf("%s (due %d) at %d is below %s (due %d) at %d", in.id, in.due, i, h[p].id, h[p].due, p)
		}
	}
}

func TestDueHeap(t *testing.T) {
	ins := newHeapInstances(4)
	a, b, c, d := ins[0], ins[1], ins[2], ins[3]
	var h dueHeap
	if _, ok := h.next(); ok {
		t.Fatal("next of an empty heap: ok")
	}
	if got := h.before(math.MaxInt64); len(got) != 0 {
		t.Fatalf("before of an empty heap = %v", dueIDs(got))
	}

	h.set(a, 30)
	h.set(b, 10)
	h.set(c, 20)
	h.set(d, 40)
	checkDueHeap(t, h)
	if next, ok := h.next(); !ok || next != 10 {
		t.Errorf("next = %d, %v; want 10, true", next, ok)
	}
	tests := []struct {
		now  int64
		want []string
	}{
		{10, []string{}}, // due at 10 is not due before 10
		{11, []string{"i1"}},
		{30, []string{"i1", "i2"}},
		{31, []string{"i0", "i1", "i2"}},
		{math.MaxInt64, []string{"i0", "i1", "i2", "i3"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, dueIDs(h.before(tt.now))); diff != "" {
			t.Errorf("before(%d) mismatch (-want +got):\n%s", tt.now, diff)
		}
	}

	// Moving an entry later and earlier keeps it once, in order.
	h.set(b, 50)
	h.set(d, 5)
	checkDueHeap(t, h)
	if len(h) != 4 {
		t.Fatalf("len = %d after moving entries, want 4", len(h))
	}
	if next, _ := h.next(); next != 5 {
		t.Errorf("next = %d after moving i3 to 5, want 5", next)
	}

	// math.MaxInt64 means never: the entry leaves the heap.
	h.set(d, math.MaxInt64)
	checkDueHeap(t, h)
	if d.heapIdx != -1 || len(h) != 3 {
		t.Fatalf("after set(i3, MaxInt64): heapIdx %d, len %d; want -1, 3", d.heapIdx, len(h))
	}
	if diff := cmp.Diff([]string{"i0", "i1", "i2"}, dueIDs(h.before(math.MaxInt64))); diff != "" {
		t.Errorf("entries after set(i3, MaxInt64) mismatch (-want +got):\n%s", diff)
	}
	h.set(d, math.MaxInt64) // not in the heap: nothing to do
	if len(h) != 3 {
		t.Fatalf("len = %d after a second set(i3, MaxInt64), want 3", len(h))
	}

	h.remove(c)
	h.remove(c) // not in the heap any more: nothing to do
	checkDueHeap(t, h)
	if c.heapIdx != -1 || len(h) != 2 {
		t.Fatalf("after remove(i2): heapIdx %d, len %d; want -1, 2", c.heapIdx, len(h))
	}
	if next, _ := h.next(); next != 30 {
		t.Errorf("next = %d after removing i2, want 30", next)
	}
	h.remove(a)
	h.remove(b)
	if _, ok := h.next(); ok || len(h) != 0 {
		t.Errorf("after removing every entry: len %d, next ok = %v", len(h), ok)
	}
}

// TestDueHeapModel runs random sets, removals and queries against a map of
// id to due time.
func TestDueHeapModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 1))
			ins := newHeapInstances(30)
			var h dueHeap
			model := map[string]int64{} // the entries in the heap
			for step := range 2000 {
				in := ins[rng.IntN(len(ins))]
				switch op := rng.IntN(10); {
				case op < 5:
					due := rng.Int64N(1000) // repeated due times included
					h.set(in, due)
					model[in.id] = due
				case op < 6:
					h.set(in, math.MaxInt64)
					delete(model, in.id)
				case op < 8:
					h.remove(in)
					delete(model, in.id)
				default:
					now := rng.Int64N(1100)
					want := []string{}
					for id, due := range model {
						if due < now {
							want = append(want, id)
						}
					}
					slices.Sort(want)
					if diff := cmp.Diff(want, dueIDs(h.before(now))); diff != "" {
						t.Fatalf("step %d: before(%d) mismatch (-model +heap):\n%s", step, now, diff)
					}
				}
				checkDueHeap(t, h)
				if diff := cmp.Diff(append([]string{}, slices.Sorted(maps.Keys(model))...), dueIDs(h)); diff != "" {
					t.Fatalf("step %d: entries mismatch (-model +heap):\n%s", step, diff)
				}
				next, ok := h.next()
				if ok != (len(model) > 0) {
					t.Fatalf("step %d: next ok = %v with %d entries", step, ok, len(model))
				}
				if earliest := slices.Min(append(slices.Collect(maps.Values(model)), math.MaxInt64)); ok && next != earliest {
					t.Fatalf("step %d: next = %d, the earliest due is %d", step, next, earliest)
				}
			}
		})
	}
}

// inactiveheap_test.go checks inactiveHeap on its own: the oldest by
// inactiveAt then registration order, whatever order the entries come in,
// each entry knowing its place, under random pushes and removals against a
// naive model.

package registry

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// checkInactiveHeap checks that every entry knows its position and that no
// entry is older than its parent.
func checkInactiveHeap(t *testing.T, h inactiveHeap) {
	t.Helper()
	for i, in := range h {
		if in.inactiveIdx != i {
			t.Fatalf("%s at position %d has inactiveIdx %d", in.id, i, in.inactiveIdx)
		}
		if p := (i - 1) / 2; i > 0 && h.Less(i, p) {
			t.Fatalf("%s (inactive at %d) at %d is below %s (at %d) at %d", in.id, in.inactiveAt, i, h[p].id, h[p].inactiveAt, p)
		}
	}
}

func TestInactiveHeap(t *testing.T) {
	ins := newHeapInstances(4)
	a, b, c, d := ins[0], ins[1], ins[2], ins[3]
	var h inactiveHeap
	if in := h.oldest(); in != nil {
		t.Fatalf("oldest of an empty heap = %s", in.id)
	}
	// Pushed newest first, as one Purge may push them (shard by shard).
	a.inactiveAt, b.inactiveAt, c.inactiveAt, d.inactiveAt = 30, 20, 20, 10
	for _, in := range []*instance{a, c, b, d} {
		h.push(in)
		checkInactiveHeap(t, h)
	}
	h.push(d) // in the heap already: nothing to do
	var got []string
	for h.oldest() != nil {
		in := h.oldest()
		got = append(got, in.id)
		h.remove(in)
		h.remove(in) // not in the heap any more: nothing to do
		checkInactiveHeap(t, h)
		if in.inactiveIdx != -1 {
			t.Fatalf("after remove(%s): inactiveIdx %d, want -1", in.id, in.inactiveIdx)
		}
	}
	// i1 and i2 went inactive at the same instant: i1 registered first.
	if want := []string{"i3", "i1", "i2", "i0"}; !slices.Equal(got, want) {
		t.Errorf("oldest first: %v, want %v", got, want)
	}
}

// TestInactiveHeapModel runs random pushes (some of an entry whose time
// changed) and removals against a search of the entries in the heap.
func TestInactiveHeapModel(t *testing.T) {
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 2))
			ins := newHeapInstances(30)
			var h inactiveHeap
			in := map[*instance]bool{}
			for step := range 2000 {
				x := ins[rng.IntN(len(ins))]
				if rng.IntN(3) < 2 {
					if !in[x] || rng.IntN(4) == 0 { // in the heap: push moves it
						x.inactiveAt = rng.Int64N(100) // repeated times included
					}
					h.push(x)
					in[x] = true
				} else {
					h.remove(x)
					delete(in, x)
				}
				checkInactiveHeap(t, h)
				if len(h) != len(in) {
					t.Fatalf("step %d: %d entries, the model has %d", step, len(h), len(in))
				}
				var want *instance
				for x := range in {
					if want == nil || cmp.Or(cmp.Compare(x.inactiveAt, want.inactiveAt), cmp.Compare(x.seq, want.seq)) < 0 {
						want = x
					}
				}
				if got := h.oldest(); got != want {
					t.Fatalf("step %d: oldest %v, want %v", step, got, want)
				}
			}
		})
	}
}

// dueheap.go defines dueHeap, the heap of instances by their next due time
// (the deadline while active, the deletion time while inactive). Heartbeats
// do not touch it: when an entry comes due, settle finds the later deadline
// and moves the entry, so its work is one step per instance per TTL.

package registry

import (
	"container/heap"
	"math"
)

// dueHeap orders instances by their due field; each instance knows its
// position (heapIdx, -1 when not in the heap).
type dueHeap []*instance

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	in := x.(*instance)
	in.heapIdx = len(*h)
	*h = append(*h, in)
}
func (h *dueHeap) Pop() any {
	old := *h
	in := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	in.heapIdx = -1
	return in
}

// set puts in in the heap at due, or takes it out if due is math.MaxInt64
// (never: an instance whose liveness is a Cluster's).
func (h *dueHeap) set(in *instance, due int64) {
	if due == math.MaxInt64 {
		h.remove(in)
		return
	}
	in.due = due
	if in.heapIdx < 0 {
		heap.Push(h, in)
	} else {
		heap.Fix(h, in.heapIdx)
	}
}

func (h *dueHeap) remove(in *instance) {
	if in.heapIdx >= 0 {
		heap.Remove(h, in.heapIdx)
	}
}

// before returns the instances due before now, visiting only them.
func (h dueHeap) before(now int64) []*instance {
	var out []*instance
	h.visit(now, func(in *instance) { out = append(out, in) })
	return out
}

// visit calls f for each instance due before now, visiting only them, in no
// particular order.
func (h dueHeap) visit(now int64, f func(*instance)) {
	var walk func(i int)
	walk = func(i int) {
		if i >= len(h) || h[i].due >= now {
			return
		}
		f(h[i])
		walk(2*i + 1)
		walk(2*i + 2)
	}
	walk(0)
}

// next returns the earliest due time, if any.
func (h dueHeap) next() (int64, bool) {
	if len(h) == 0 {
		return 0, false
	}
	return h[0].due, true
}

// inactiveheap.go defines inactiveHeap, the inactive instances by when they
// became inactive, so that a full registry (Options.MaxInstances) finds the
// oldest in O(1). It is ordered whatever order they arrive in: several that
// one Purge expires come shard by shard, a load or a snapshot in any order.

package registry

import (
	"cmp"
	"container/heap"
)

// inactiveHeap orders instances by inactiveAt, then by registration order
// (seq), so that every registry on the same records (restarted from its
// file, a replica) picks the same one. Each instance knows its position
// (inactiveIdx, -1 when not in the heap).
type inactiveHeap []*instance

func (h inactiveHeap) Len() int { return len(h) }
func (h inactiveHeap) Less(i, j int) bool {
	return cmp.Or(cmp.Compare(h[i].inactiveAt, h[j].inactiveAt), cmp.Compare(h[i].seq, h[j].seq)) < 0
}
func (h inactiveHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].inactiveIdx, h[j].inactiveIdx = i, j
}
func (h *inactiveHeap) Push(x any) {
	in := x.(*instance)
	in.inactiveIdx = len(*h)
	*h = append(*h, in)
}
func (h *inactiveHeap) Pop() any {
	old := *h
	in := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	in.inactiveIdx = -1
	return in
}

// push adds in, or moves it if its inactiveAt changed.
func (h *inactiveHeap) push(in *instance) {
	if in.inactiveIdx < 0 {
		heap.Push(h, in)
	} else {
		heap.Fix(h, in.inactiveIdx)
	}
}

func (h *inactiveHeap) remove(in *instance) {
	if in.inactiveIdx >= 0 {
		heap.Remove(h, in.inactiveIdx)
	}
}

// oldest is the instance inactive the longest, or nil.
func (h inactiveHeap) oldest() *instance {
	if len(h) == 0 {
		return nil
	}
	return h[0]
}

// batch.go defines a batch: the smallest distinct keys after a cursor that
// a walk in any order meets, at most a fixed number of them. An answer
// that must be written in an order that no index keeps (the Ansible
// export's groups, by a name reduced to the group's characters) walks the
// index once per batch and writes the batch, instead of sorting a copy of
// the index: its memory is the batch's, whatever the fleet's size, at the
// cost of one walk per batch.

package registry

import "slices"

// A batch collects, over one walk, the smallest keys (by cmp) greater than
// the last key of the previous batch, each once, at most size of them.
// Keys must stay valid once the lock is released (immutable strings, or
// pointers to records whose fields read here never change).
type batch[T any] struct {
	cmp     func(a, b T) int
	size    int
	keys    []T  // at most 2*size: cut back to size when full
	after   T    // the last key of the previous batch
	started bool // after is set
	bound   T    // once keys were cut: no key at or past it can join
	bounded bool
}

func newBatch[T any](size int, cmp func(a, b T) int) *batch[T] {
	return &batch[T]{cmp: cmp, size: size, keys: make([]T, 0, 2*size)}
}

// want reports whether x could join the batch: a walk checks it before the
// costlier checks of whether x qualifies.
func (b *batch[T]) want(x T) bool {
	return (!b.started || b.cmp(x, b.after) > 0) && (!b.bounded || b.cmp(x, b.bound) < 0)
}

// add adds x, which want accepted. A walk often meets a key many times in
// a row (an agent name on host after host): a repeat of the last key added
// is dropped at once.
func (b *batch[T]) add(x T) {
	if n := len(b.keys); n > 0 && b.cmp(b.keys[n-1], x) == 0 {
		return
	}
	b.keys = append(b.keys, x)
	if len(b.keys) == cap(b.keys) {
		b.cut()
	}
}

// cut sorts the keys, drops repeats and keeps the size smallest.
func (b *batch[T]) cut() {
	slices.SortFunc(b.keys, b.cmp)
	b.keys = slices.CompactFunc(b.keys, func(x, y T) bool { return b.cmp(x, y) == 0 })
	if len(b.keys) > b.size {
		clear(b.keys[b.size:])
		b.keys = b.keys[:b.size]
		b.bound, b.bounded = b.keys[b.size-1], true
	}
}

// done ends the walk: it returns the batch, in order, and whether it is
// the last (the walk met no key past it).
func (b *batch[T]) done() (keys []T, last bool) {
	b.cut()
	return b.keys, !b.bounded
}

// next starts the batch after the one that done returned.
func (b *batch[T]) next() {
	if n := len(b.keys); n > 0 {
		b.after, b.started = b.keys[n-1], true
	}
	clear(b.keys)
	b.keys = b.keys[:0]
	var zero T
	b.bound, b.bounded = zero, false
}

// all visits every key in order, a batch at a time: for each batch it
// calls walk, which offers the keys of one pass over the index (want,
// add), then visit for each key of the batch. It stops, reporting false,
// when visit does.
func (b *batch[T]) all(walk func(), visit func(T) bool) bool {
	for b.reset(); ; b.next() {
		walk()
		keys, last := b.done()
		for _, k := range keys {
			if !visit(k) {
				return false
			}
		}
		if last {
			return true
		}
	}
}

// reset starts over, from the first key.
func (b *batch[T]) reset() {
	b.next()
	var zero T
	b.after, b.started = zero, false
}

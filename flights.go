// flights.go lets readers of the same answer share one encoding: the
// waiters that one change wakes ask for the same listing at the same index
// at the same moment, and all but the first wait for its bytes instead of
// encoding them again. A shared body is held once, in chunks, and written to
// each reader a chunk at a time; the bytes of the bodies alive (kept for
// late readers, or still being written to one) are bounded by a budget, so
// that what sharing holds is bounded in all, not per reader. An answer
// larger than maxSharedBytes, or one that finds the budget spent, streams
// to each reader instead, one chunk of memory each: then readers cost an
// encoding each (CPU) rather than memory.

package registry

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"
)

// Bounds of the shared answers: how many are kept for late readers, the
// largest one shared, and the bytes of all those alive. A shared body costs
// its size once, whoever reads it; past these bounds readers cost CPU (an
// encoding each) instead of memory.
const (
	maxFlights     = 4096
	maxSharedBytes = 8 << 20
	maxFlightBytes = 32 << 20
)

// A budget counts the bytes of the shared bodies alive, those kept by their
// owner (a map) or still held by a reader.
type budget struct {
	mu    sync.Mutex // also guards the owner's map
	held  int
	limit int
}

// A body is an answer encoded once, in blocks that are never modified, with
// the strong ETag of its bytes. Each holder (its owner's map, each reader)
// has a reference; the last to let go returns its blocks to the budget.
type body struct {
	blocks [][]byte
	size   int // bytes of the answer
	held   int // bytes of its blocks, as the budget counts them
	etag   string
	refs   atomic.Int64
	owner  *budget
}

// release lets go of a reference.
func (b *body) release() {
	if b.refs.Add(-1) == 0 {
		b.owner.mu.Lock()
		b.owner.held -= b.held
		b.owner.mu.Unlock()
	}
}

// releaseLocked is release with the owner's mu held.
func (b *body) releaseLocked() {
	if b.refs.Add(-1) == 0 {
		b.owner.held -= b.held
	}
}

// errTooLarge stops an encoding that a keeper cannot hold.
var errTooLarge = errors.New("answer too large to share")

// Blocks of a kept body grow from minBlock to maxBlock, multiples of the
// heap's pages: a body wastes less than its last block, and the budget
// counts what is allocated.
const (
	minBlock = 64 << 10
	maxBlock = 1 << 20
)

// A keeper holds the bytes of an answer as they are encoded, reserving its
// blocks from its budget (room makes room when it is spent), until the
// answer is whole or turns out larger than max.
type keeper struct {
	owner  *budget
	room   func(n int) bool // reserves n bytes, with owner.mu held
	max    int
	blocks [][]byte // the last one is being filled
	size   int
	held   int // reserved: the blocks' capacity
	tried  int // the size it was refused at, when over max (0: the budget refused)
	h      maphash.Hash
}

func newKeeper(owner *budget, seed maphash.Seed, max int, room func(n int) bool) *keeper {
	k := &keeper{owner: owner, room: room, max: max}
	k.h.SetSeed(seed)
	return k
}

// emit is a chunker's emit: it keeps a copy of each chunk, or stops the
// encoding with errTooLarge. An answer that is whole in its first chunk
// (most lookups) is kept in a block of its own size, not minBlock: the
// cache holds as many small answers as its bytes allow.
func (k *keeper) emit(chunk []byte, final bool) error {
	if k.size+len(chunk) > k.max {
		k.tried = k.size + len(chunk)
		return errTooLarge
	}
	k.h.Write(chunk)
	k.size += len(chunk)
	for len(chunk) > 0 {
		last := len(k.blocks) - 1
		if last < 0 || len(k.blocks[last]) == cap(k.blocks[last]) {
			n := minBlock
			switch {
			case last >= 0:
				n = min(2*cap(k.blocks[last]), maxBlock)
			case final:
				n = len(chunk)
			}
			k.owner.mu.Lock()
			ok := k.room(n)
			if ok {
				k.owner.held += n
			}
			k.owner.mu.Unlock()
			if !ok {
				return errTooLarge
			}
			k.held += n
			k.blocks = append(k.blocks, make([]byte, 0, n))
			last++
		}
		b := k.blocks[last]
		m := min(len(chunk), cap(b)-len(b))
		k.blocks[last] = append(b, chunk[:m]...)
		chunk = chunk[m:]
	}
	return nil
}

// drop gives back what the keeper holds.
func (k *keeper) drop() {
	k.owner.mu.Lock()
	k.owner.held -= k.held
	k.owner.mu.Unlock()
	k.blocks, k.size, k.held = nil, 0, 0
}

// body turns the whole answer into a body with one reference, the
// caller's. Its ETag is the strong one of a buffered answer (strongETag).
func (k *keeper) body() *body {
	b := &body{blocks: k.blocks, size: k.size, held: k.held, etag: hashETag(k.h.Sum64()), owner: k.owner}
	b.refs.Store(1)
	k.blocks = nil
	return b
}

type flights struct {
	budget // mu guards m
	m      map[string]*flight
}

// A flight is one encoding of an answer at an index (and heartbeat count).
// Its body is held by the map while the flight is the current one of its
// key, and for the followers still waiting for it after that (a change
// that comes while the leader encodes makes a new flight; the old one's
// followers still get the old body).
type flight struct {
	key        string
	idx, extra uint64
	done       chan struct{} // closed when body is set, or known not to be
	once       sync.Once
	owner      *flights

	// Guarded by owner.mu.
	body    *body // nil: not shared (too large, or given up)
	size    int   // of the answer when its leader ended (0: unknown)
	large   bool  // the last answer of key was too large to share: stream at once
	waiting int   // followers that have not taken the body yet
	gone    bool  // no longer in the map
}

// join returns the flight of key at (idx, extra), and whether the caller
// leads it (encodes the answer and shares it).
func (fs *flights) join(key string, idx, extra uint64) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	old := fs.m[key]
	if old != nil && old.idx == idx && old.extra == extra {
		old.waiting++
		return old, false
	}
	if fs.m == nil || len(fs.m) >= maxFlights {
		for _, f := range fs.m {
			f.leaveMap()
		}
		fs.m = make(map[string]*flight)
	}
	if fs.limit == 0 {
		fs.limit = maxFlightBytes
	}
	f := &flight{key: key, idx: idx, extra: extra, done: make(chan struct{}), owner: fs}
	if old != nil {
		f.large = old.size > maxSharedBytes
		old.leaveMap()
	}
	fs.m[key] = f
	return f, true
}

// lookup returns the shared body of key at (idx, extra), with a reference
// for the caller, if one is kept.
func (fs *flights) lookup(key string, idx, extra uint64) *body {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[key]; f != nil && f.idx == idx && f.extra == extra && f.body != nil {
		f.body.refs.Add(1)
		return f.body
	}
	return nil
}

// room makes room for n more bytes of shared bodies, dropping the bodies
// kept for late readers if it must (those no reader holds: dropping the
// others would free nothing). Called with fs.mu held.
func (fs *flights) room(n int) bool {
	if fs.held+n <= fs.limit {
		return true
	}
	for k, f := range fs.m {
		if f.body == nil || f.body.refs.Load() > 1 || f.waiting > 0 {
			continue
		}
		delete(fs.m, k)
		f.leaveMap()
		if fs.held+n <= fs.limit {
			return true
		}
	}
	return false
}

// keeper returns a keeper for the body of a flight.
func (fs *flights) keeper(seed maphash.Seed) *keeper {
	return newKeeper(&fs.budget, seed, maxSharedBytes, fs.room)
}

// leaveMap notes that the flight is no longer its key's in the map: its
// body goes once no follower waits for it. Called with owner.mu held.
func (f *flight) leaveMap() {
	f.gone = true
	if f.waiting == 0 {
		f.dropLocked()
	}
}

// dropLocked lets go of the flight's body, if it has one. Called with
// owner.mu held.
func (f *flight) dropLocked() {
	if f.body != nil {
		f.body.releaseLocked()
		f.body = nil
	}
}

// share gives the flight its body (one more reference, the flight's) while
// it is its key's, or followers wait for it.
func (f *flight) share(b *body) {
	f.once.Do(func() {
		fs := f.owner
		fs.mu.Lock()
		f.size = b.size
		if !f.gone || f.waiting > 0 {
			b.refs.Add(1)
			f.body = b
		}
		fs.mu.Unlock()
		close(f.done)
	})
}

// take is a follower's: it returns the flight's body with a reference for
// the caller, or nil if it has none.
func (f *flight) take() *body {
	fs := f.owner
	fs.mu.Lock()
	defer fs.mu.Unlock()
	b := f.body
	if b != nil {
		b.refs.Add(1)
	}
	f.leaveLocked()
	return b
}

// leave is a follower's that stops waiting.
func (f *flight) leave() {
	f.owner.mu.Lock()
	f.leaveLocked()
	f.owner.mu.Unlock()
}

func (f *flight) leaveLocked() {
	f.waiting--
	if f.gone && f.waiting == 0 {
		f.dropLocked()
	}
}

// streams says that the answer streams (it is too large, or its leader
// gave up) and is at least size bytes (0: unknown): every reader encodes
// its own.
func (f *flight) streams(size int) {
	f.once.Do(func() {
		f.measured(size)
		close(f.done)
	})
}

// measured records the size of the answer, which tells the next flight of
// its key whether to try to share it.
func (f *flight) measured(size int) {
	f.owner.mu.Lock()
	f.size = size
	f.owner.mu.Unlock()
}

// pending.go keeps the writes the registry makes on its own (expiries,
// deletions after the retention, revivals by a heartbeat) until its Store
// has them: such a change is applied in memory at once, and when its Store
// write fails it stays pending and is retried, with back-off, until stored.
// A pending write of an instance that a later write replaced is dropped:
// that write stored the newer state. (Writes that clients make fail with
// 503 instead, and are not applied: local.go.)

package registry

import (
	"context"
	"sync"
	"time"
)

// Back-off of pending writes.
const (
	pendingMinWait = time.Second
	pendingMaxWait = time.Minute
)

// A pendingWrite is what is owed to the Store for one instance.
type pendingWrite uint8

const (
	pendingState  pendingWrite = iota + 1 // its liveness (SetStates)
	pendingDelete                         // the deletion of its record
)

// pending is the set of writes owed to the Store.
type pending struct {
	mu       sync.Mutex
	m        map[*instance]pendingWrite
	failures int       // consecutive failed retries
	next     time.Time // no retry before
	lastErr  error
}

// add keeps the writes of ins, which failed with err.
func (p *pending) add(kind pendingWrite, ins []*instance, err error) {
	if len(ins) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = make(map[*instance]pendingWrite)
	}
	for _, in := range ins {
		p.m[in] = kind
	}
	p.lastErr = err
}

// count returns how many writes are pending, and the last failure.
func (p *pending) count() (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.m), p.lastErr
}

// PendingWrites returns how many of the writes the registry made on its own
// (expiries, deletions, revivals) its Store has not stored yet, and why the
// last try failed. They are retried until stored.
func (r *Registry) PendingWrites() (int, error) { return r.pending.count() }

// retryPending writes what is pending, shard by shard, under each shard's
// write lock, unless the back-off says not yet.
func (w *localWriter) retryPending(ctx context.Context) {
	r := w.r
	p := &r.pending
	p.mu.Lock()
	if len(p.m) == 0 || time.Now().Before(p.next) {
		p.mu.Unlock()
		return
	}
	var byShard [numShards]map[*instance]pendingWrite
	for in, kind := range p.m {
		i := r.shardIndex(in.id)
		if byShard[i] == nil {
			byShard[i] = make(map[*instance]pendingWrite)
		}
		byShard[i][in] = kind
	}
	p.mu.Unlock()
	var failed error
	for i, writes := range byShard {
		if writes == nil {
			continue
		}
		if err := w.retryShard(ctx, &r.shards[i], writes); err != nil {
			failed = err
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if failed == nil {
		p.failures, p.next, p.lastErr = 0, time.Time{}, nil
		return
	}
	p.failures++
	wait := min(pendingMinWait<<min(p.failures, 16), pendingMaxWait)
	p.next, p.lastErr = time.Now().Add(wait), failed
	r.log.Warn("store writes still pending", "pending", len(p.m), "retry_in", wait, "err", failed)
}

// retryShard writes the pending writes of one shard.
func (w *localWriter) retryShard(ctx context.Context, s *shard, writes map[*instance]pendingWrite) error {
	r := w.r
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var states, deletes, done []*instance
	for in, kind := range writes {
		cur := r.lookup(in.id)
		switch {
		case kind == pendingState && cur == in:
			states = append(states, in)
		case kind == pendingDelete && cur == nil:
			deletes = append(deletes, in)
		default:
			done = append(done, in) // replaced since: its write stored the newer state
		}
	}
	err := w.storeStates(ctx, states)
	if err == nil {
		done = append(done, states...)
		if err = w.storeDelete(ctx, deletes); err == nil {
			done = append(done, deletes...)
		}
	}
	p := &r.pending
	p.mu.Lock()
	for _, in := range done {
		if p.m[in] == writes[in] {
			delete(p.m, in)
		}
	}
	p.mu.Unlock()
	return err
}

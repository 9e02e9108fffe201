// local.go is the write path of a Registry that owns its records: writes go
// to its Store (a file, or none for memory only), then to the view, one id
// at a time under its shard's write lock; liveness is the local deadline of
// each instance (liveness.go), applied by settle.

package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"
)

// localWriter is the write path of a registry that owns its records.
type localWriter struct {
	r     *Registry
	store Store // nil: records live only in memory
}

var _ writer = (*localWriter)(nil)

// newLocalWriter starts r's change index at the clock and loads the
// records of store, if there is one.
func newLocalWriter(ctx context.Context, r *Registry, store Store) (*localWriter, error) {
	// The index starts at the clock in microseconds, so that it does not go
	// backwards across a restart unless the registry made more than a
	// million changes a second.
	r.v.init(uint64(max(r.base.UnixMicro(), 1)), func(cur uint64) uint64 { return cur + 1 }, r.opts.NotifyInterval)
	w := &localWriter{r: r, store: store}
	if store != nil {
		w.store = timedStore{store, &r.counts}
	}
	if store != nil {
		if err := w.load(ctx); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *localWriter) health() error { return nil }

func (w *localWriter) revision() (uint64, bool) { return 0, false }

func (w *localWriter) lag() (uint64, bool) { return 0, false }

// storeFailed is the error of a client's write whose Store write failed:
// nothing was applied in memory, and the client may retry (503 with
// Retry-After). The registry recovers by itself when the Store works again.
func storeFailed(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func (w *localWriter) run(ctx context.Context) error { return nil }

func (w *localWriter) register(ctx context.Context, reg Registration) error {
	r := w.r
	if err := w.makeRoom(ctx, reg.ID); err != nil {
		return err
	}
	s := r.shard(reg.ID)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	now := r.clock()
	old := r.lookup(reg.ID)
	var seq uint64
	owner := ownerFor(ctx)
	if old != nil {
		if !mayActOn(identityOf(ctx), old.owner) {
			return errNotOwner
		}
		seq, owner = old.seq, old.owner
	} else {
		seq = r.nextSeq.Add(1)
	}
	in := r.newInstance(reg, seq, now)
	in.owner = owner
	if w.store != nil {
		if err := w.store.Put(ctx, r.record(in, nil)); err != nil {
			return storeFailed(err)
		}
	}
	r.mu.Lock()
	r.v.register(s, in, old)
	r.mu.Unlock()
	r.wakeRun()
	return nil
}

// makeRoom deletes the oldest inactive records while the registry is full
// and id is new. (Concurrent registrations may go past the limit by as many
// as they are.)
func (w *localWriter) makeRoom(ctx context.Context, id string) error {
	r := w.r
	settled := false
	for {
		r.mu.RLock()
		full := len(r.v.insts) >= r.opts.MaxInstances
		oldest := r.v.oldest.oldest()
		r.mu.RUnlock()
		if !full || r.lookup(id) != nil {
			return nil
		}
		if oldest == nil && !settled {
			// Expiries may be due that Run has not applied yet: an
			// instance past its deadline is inactive in every answer,
			// so it makes room too.
			settled = true
			r.settleDue(ctx)
			continue
		}
		if oldest == nil {
			return ErrFull
		}
		if err := w.evict(ctx, oldest); err != nil {
			return err
		}
	}
}

// evict deletes in, if it is still inactive, from the Store and memory.
func (w *localWriter) evict(ctx context.Context, in *instance) error {
	r := w.r
	s := r.shard(in.id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	r.mu.RLock()
	still := in.inactiveIdx >= 0 && !in.deleted
	r.mu.RUnlock()
	if !still {
		return nil // revived or deleted meanwhile: look again
	}
	if err := w.storeDelete(ctx, []*instance{in}); err != nil {
		return storeFailed(err)
	}
	r.mu.Lock()
	r.v.delete([]*instance{in}, r.shard)
	r.mu.Unlock()
	r.log.Info("registry full: deleted the oldest inactive record to make room", "id", in.id, "max_instances", r.opts.MaxInstances)
	return nil
}

// heartbeat moves last_seen of an active instance within its deadline with
// a compare-and-swap (no registry-wide lock, no allocation), and takes the
// slow path, revive, when the instance changes state.
func (w *localWriter) heartbeat(ctx context.Context, in *instance, system json.RawMessage) (HeartbeatStatus, bool, error) {
	r := w.r
	now := r.clock()
	if system != nil {
		in.setSystem(system, now)
	}
	if in.touch(now) {
		r.beats.Add(1)
		return in.status(), false, nil
	}
	st, err := w.revive(ctx, in.id, system, now)
	return st, err == nil, err
}

// revive is the slow path of a heartbeat: the instance is inactive, or past
// its deadline, and changes state.
func (w *localWriter) revive(ctx context.Context, id string, system json.RawMessage, now int64) (HeartbeatStatus, error) {
	r := w.r
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now = max(now, r.clock()) // the lock may have taken a while
	in := r.lookup(id)        // it may have been replaced or deleted meanwhile
	if in == nil {
		return Refresh, nil
	}
	if system != nil {
		in.setSystem(system, now)
	}
	r.mu.Lock()
	// Apply the expiry first if it happened, so that it is announced.
	if _, gone := r.v.settle(in, now, r.opts.RetainInactive); gone {
		r.v.delete([]*instance{in}, r.shard)
		r.mu.Unlock()
		if err := w.storeDelete(ctx, []*instance{in}); err != nil {
			r.log.Error("store delete failed; retried until stored", "id", id, "err", err)
			r.pending.add(pendingDelete, []*instance{in}, err)
		}
		return Refresh, nil
	}
	r.v.revive(in, now)
	r.mu.Unlock()
	r.wakeRun()
	if err := w.storeStates(ctx, []*instance{in}); err != nil {
		// Memory has the revival, and the agent's heartbeat succeeded: the
		// store gets it when it works again.
		r.log.Error("store update failed; retried until stored", "id", id, "err", err)
		r.pending.add(pendingState, []*instance{in}, err)
	}
	return in.status(), nil
}

func (w *localWriter) setTools(ctx context.Context, id string, parsed []parsedTool) error {
	r := w.r
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	in := r.lookup(id)
	if in == nil {
		return errNotStored(id)
	}
	if !mayActOn(identityOf(ctx), in.owner) {
		return errNotOwner
	}
	if w.store != nil {
		if err := w.store.Put(ctx, r.record(in, parsed)); err != nil {
			return storeFailed(err)
		}
	}
	r.mu.Lock()
	r.v.setTools(in, parsed)
	r.mu.Unlock()
	return nil
}

func (w *localWriter) deregister(ctx context.Context, id string) error {
	r := w.r
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	in := r.lookup(id)
	if in == nil {
		return nil
	}
	if !mayActOn(identityOf(ctx), in.owner) {
		return errNotOwner
	}
	now := r.clock()
	if w.store != nil {
		// On disk before memory: a failed write leaves the instance as it
		// was, and a retry writes again.
		seen, active := unpack(in.live.Load())
		st := State{ID: id, LastSeen: r.wall(seen).Round(0), InactiveSince: r.wall(min(now, in.deadline(seen))).Round(0)}
		if !active {
			r.mu.RLock()
			st.InactiveSince = r.wall(in.inactiveAt).Round(0)
			r.mu.RUnlock()
		}
		if err := w.store.SetStates(ctx, []State{st}); err != nil {
			return storeFailed(err)
		}
	}
	r.mu.Lock()
	r.v.deregister(in, now, r.opts.RetainInactive)
	r.mu.Unlock()
	return nil
}

func (w *localWriter) delete(ctx context.Context, id string) error {
	r := w.r
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	in := r.lookup(id)
	if in == nil {
		return nil
	}
	if err := w.storeDelete(ctx, []*instance{in}); err != nil {
		return storeFailed(err)
	}
	r.mu.Lock()
	r.v.delete([]*instance{in}, r.shard)
	r.mu.Unlock()
	return nil
}

// settle applies expiry and retention to the instances due at now, found in
// the deadline heap, shard by shard.
func (w *localWriter) settle(ctx context.Context, now int64) (int64, error) {
	r := w.r
	r.mu.Lock()
	due := r.expiry.filter(r, r.v.due.before(now), now)
	r.mu.Unlock()

	// Settle shard by shard, holding the shard's write lock so that the
	// Store sees each id's writes in the order the registry made them.
	var byShard [numShards][]*instance
	for _, in := range due {
		i := r.shardIndex(in.id)
		byShard[i] = append(byShard[i], in)
	}
	for i, ins := range byShard {
		if len(ins) == 0 {
			continue
		}
		if err := w.settleShard(ctx, &r.shards[i], ins, now); err != nil && ctx.Err() == nil {
			r.log.Error("purge: store write failed", "err", err)
		}
	}

	r.mu.RLock()
	next, ok := r.v.due.next()
	if !ok {
		next = math.MaxInt64
	}
	next = r.expiry.next(next, now)
	r.mu.RUnlock()
	return next, ctx.Err()
}

func (w *localWriter) settleShard(ctx context.Context, s *shard, ins []*instance, now int64) error {
	r := w.r
	// The change is made in memory below whatever happens to the caller (a
	// read that ends, Run stopping): the Store must get it too.
	ctx = context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var expired, deleted []*instance
	r.mu.Lock()
	for _, in := range ins {
		exp, gone := r.v.settle(in, now, r.opts.RetainInactive)
		switch {
		case gone:
			deleted = append(deleted, in)
		case exp:
			expired = append(expired, in)
		}
	}
	r.v.delete(deleted, r.shard)
	r.mu.Unlock()
	// Memory has the changes whatever the Store says: what it does not
	// take stays pending, and is retried until stored.
	serr := w.storeStates(ctx, expired)
	if serr != nil {
		r.pending.add(pendingState, expired, serr)
	}
	derr := w.storeDelete(ctx, deleted)
	if derr != nil {
		r.pending.add(pendingDelete, deleted, derr)
	}
	return errors.Join(serr, derr)
}

func (w *localWriter) checkpoint(ctx context.Context) error {
	if _, err := w.settle(ctx, w.r.clock()); err != nil {
		return err
	}
	w.retryPending(ctx)
	if w.store == nil {
		return nil // memory keeps every heartbeat already
	}
	return w.r.checkpointShards(ctx, w.store.Touch)
}

// storeStates writes the liveness of ins to the Store, if there is one.
// Called with their shard's wmu held.
func (w *localWriter) storeStates(ctx context.Context, ins []*instance) error {
	if w.store == nil || len(ins) == 0 {
		return nil
	}
	states := make([]State, len(ins))
	for i, in := range ins {
		states[i] = w.r.state(in)
	}
	return w.store.SetStates(ctx, states)
}

// storeDelete deletes the records of ins from the Store, if there is one.
func (w *localWriter) storeDelete(ctx context.Context, ins []*instance) error {
	if w.store == nil || len(ins) == 0 {
		return nil
	}
	ids := make([]string, len(ins))
	for i, in := range ins {
		ids[i] = in.id
	}
	return w.store.Delete(ctx, ids)
}

// load fills an empty registry from its store; instance.restored applies
// the restart rule to each record. A load that takes longer than
// loadProgress logs its progress (records so far, seconds) that often, and
// how long it took at the end.
func (w *localWriter) load(ctx context.Context) error {
	r := w.r
	now := r.clock()
	start := time.Now() // the real time the load takes, whatever Options.Now says
	next := start.Add(loadProgress)
	var maxSeq uint64
	n := 0
	err := w.store.Load(ctx, func(rec Record) error {
		if err := w.restore(rec, now); err != nil {
			return fmt.Errorf("registry: stored record %q: %w", rec.ID, err)
		}
		maxSeq = max(maxSeq, rec.Seq)
		if n++; n%1024 == 0 && time.Now().After(next) {
			r.log.Info("loading records", "records", n, "seconds", time.Since(start).Seconds())
			next = time.Now().Add(loadProgress)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if took := time.Since(start); took > loadProgress {
		r.log.Info("records loaded from the store", "records", n, "seconds", took.Seconds())
	}
	r.nextSeq.Store(maxSeq)
	return nil
}

// loadProgress is how often a long load logs its progress.
const loadProgress = 2 * time.Second

func (w *localWriter) restore(rec Record, now int64) error {
	r := w.r
	in, parsed, err := r.instanceOf(rec)
	if err != nil {
		return err
	}
	in.system, in.sysAt = rec.System, r.systemAt(rec)
	in.restored(rec.Active, rec.InactiveSince, r.base, now, r.opts.HeartbeatInterval)
	s := r.shard(rec.ID)
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.m[rec.ID] != nil {
		return fmt.Errorf("stored twice")
	}
	r.v.register(s, in, nil)
	if parsed != nil {
		r.v.setTools(in, parsed)
	}
	return nil
}

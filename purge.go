// purge.go drives liveness: Purge applies what is due (expiry at the exact
// deadline, deletion after the retention), and Run calls it from a timer set
// at the next deadline, and writes heartbeat checkpoints to the Store.

package registry

import (
	"context"
	"math"
	"time"
)

// Purge marks inactive every instance whose deadline has passed and deletes
// the inactive records older than Options.RetainInactive. Its work is
// proportional to the instances that are due, found in a deadline heap, not
// to the size of the registry. Reads never show an instance active after its
// deadline even if Purge has not run yet; Purge makes the change final (and
// written to the Store). Run calls Purge at every deadline.
func (r *Registry) Purge(ctx context.Context) error {
	_, err := r.purge(ctx)
	return err
}

// purge is Purge that also returns the next due time (math.MaxInt64 if none).
func (r *Registry) purge(ctx context.Context) (next int64, err error) {
	if r.cluster != nil {
		next, err := r.purgeCluster(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Error("purge: cluster delete failed", "err", err)
		}
		return next, ctx.Err()
	}
	now := r.clock()
	r.mu.RLock()
	due := r.v.due.before(now)
	r.mu.RUnlock()

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
		if err := r.settleShard(ctx, &r.shards[i], ins, now); err != nil && ctx.Err() == nil {
			r.log.Error("purge: store write failed", "err", err)
		}
	}

	r.mu.RLock()
	next, ok := r.v.due.next()
	r.mu.RUnlock()
	if !ok {
		next = math.MaxInt64
	}
	return next, ctx.Err()
}

func (r *Registry) settleShard(ctx context.Context, s *shard, ins []*instance, now int64) error {
	// The change is made in memory below whatever happens to the caller (a
	// read that ends, Run stopping): the Store must get it too.
	ctx = context.WithoutCancel(ctx)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var expired, deleted []*instance
	r.mu.Lock()
	for _, in := range ins {
		exp, del := r.v.settle(s, in, now, r.opts.RetainInactive)
		switch {
		case del:
			deleted = append(deleted, in)
		case exp:
			expired = append(expired, in)
		}
	}
	r.mu.Unlock()
	if err := r.storeUpdate(ctx, expired); err != nil {
		return err
	}
	return r.storeDelete(ctx, deleted)
}

// Run applies expiry and retention at each due time (a timer set at the next
// deadline, so an expiry is applied when it happens, plus a sweep every
// Options.PurgeInterval), and writes heartbeat checkpoints to the Store every
// Options.CheckpointInterval. It returns when ctx is done, after a last
// checkpoint, with that checkpoint's error.
//
// In cluster mode Run also feeds the view from the Cluster's change stream;
// the registry's writes wait for it.
func (r *Registry) Run(ctx context.Context) error {
	if r.cluster != nil {
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			if err := r.runWatch(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("cluster watch ended", "err", err)
			}
		}()
		defer func() { <-watched }()
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	sweep := time.NewTicker(r.opts.PurgeInterval)
	defer sweep.Stop()
	var checkpoints <-chan time.Time
	if r.store != nil {
		t := time.NewTicker(r.opts.CheckpointInterval)
		defer t.Stop()
		checkpoints = t.C
	}
	purge := func() {
		next, err := r.purge(ctx)
		if err != nil {
			return
		}
		d := time.Duration(next-r.clock()) + time.Nanosecond // due means strictly after
		timer.Reset(min(max(d, 0), r.opts.PurgeInterval))
	}
	for {
		select {
		case <-ctx.Done():
			return r.Checkpoint(context.WithoutCancel(ctx))
		case <-timer.C:
			purge()
		case <-r.wake:
			purge()
		case <-sweep.C:
			purge()
		case <-checkpoints:
			if err := r.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("checkpoint failed", "err", err)
			}
		}
	}
}

// Checkpoint applies what is due (as Purge; in cluster mode Run does that at
// each due time), then writes to the Store the
// last_seen and system of every instance that heartbeated since the last
// checkpoint. Run calls it periodically and when it ends; without a Store it
// does nothing.
func (r *Registry) Checkpoint(ctx context.Context) error {
	if r.store == nil {
		return nil
	}
	if r.cluster == nil { // in cluster mode Run's timer is set at the next deletion
		if _, err := r.purge(ctx); err != nil {
			return err
		}
	}
	r.cpMu.Lock()
	defer r.cpMu.Unlock()
	var first error // a shard that fails must not keep the others unwritten
	for i := range r.shards {
		if err := r.checkpointShard(ctx, &r.shards[i]); err != nil && first == nil {
			first = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return first
}

// checkpointShard writes the heartbeats of one shard, holding its write
// lock so that no re-registration slips between reading an instance and
// writing what was read, and so that writes of other shards go on
// meanwhile.
func (r *Registry) checkpointShard(ctx context.Context, s *shard) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	type mark struct {
		in     *instance
		seen   int64
		sysVer uint64
	}
	var seen []Seen
	var marks []mark
	s.mu.RLock()
	for _, in := range s.m {
		last := in.lastSeen()
		sys, ver, at := in.systemVersion()
		if last == in.cpSeen.Load() && ver == in.cpSysVer.Load() {
			continue
		}
		sn := Seen{ID: in.id, LastSeen: r.wall(last).Round(0)}
		if ver != in.cpSysVer.Load() {
			sn.System, sn.SystemAt = sys, r.wall(at).Round(0)
		}
		seen = append(seen, sn)
		marks = append(marks, mark{in, last, ver})
	}
	s.mu.RUnlock()
	if len(seen) == 0 {
		return nil
	}
	if err := r.store.Touch(ctx, seen); err != nil {
		return err
	}
	for _, m := range marks {
		m.in.cpSeen.Store(m.seen)
		m.in.cpSysVer.Store(m.sysVer)
	}
	return nil
}

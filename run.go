// run.go drives what time brings: Purge applies what is due (expiry at the
// exact deadline, deletion after the retention), Run calls it from a timer
// set at the next due time and writes checkpoints of heartbeats, and runs
// the write path's background work (a Cluster's change stream).

package registry

import (
	"context"
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
	next, err = r.w.settle(ctx, r.clock())
	if err != nil && ctx.Err() == nil {
		r.log.Error("purge failed", "err", err)
	}
	return next, ctx.Err()
}

// Run applies expiry and retention at each due time (a timer set at the next
// deadline, so an expiry is applied when it happens, plus a sweep every
// Options.PurgeInterval), and writes heartbeat checkpoints every
// Options.CheckpointInterval. It returns when ctx is done, after a last
// checkpoint, with that checkpoint's error.
//
// A replica (Options.Cluster) also follows the Cluster's change stream in
// Run: its writes wait for it.
func (r *Registry) Run(ctx context.Context) error {
	background := make(chan struct{})
	go func() {
		defer close(background)
		if err := r.w.run(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("change stream ended", "err", err)
		}
	}()
	defer func() { <-background }()
	timer := time.NewTimer(0)
	defer timer.Stop()
	sweep := time.NewTicker(r.opts.PurgeInterval)
	defer sweep.Stop()
	checkpoints := time.NewTicker(r.opts.CheckpointInterval)
	defer checkpoints.Stop()
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
			r.flushRefusals(ctx)
		case <-checkpoints.C:
			if err := r.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("checkpoint failed", "err", err)
			}
		}
	}
}

// Checkpoint applies what is due (as Purge), then writes to the Store (or
// Cluster) the last_seen and system of every instance that heartbeated
// since the last checkpoint. Run calls it periodically and when it ends;
// with neither a Store nor a Cluster there is nothing to write.
func (r *Registry) Checkpoint(ctx context.Context) error { return r.w.checkpoint(ctx) }

// checkpointShards writes, with touch, the heartbeats of every shard since
// the last checkpoint.
func (r *Registry) checkpointShards(ctx context.Context, touch func(context.Context, []Seen) error) error {
	r.cpMu.Lock()
	defer r.cpMu.Unlock()
	var first error // a shard that fails must not keep the others unwritten
	for i := range r.shards {
		if err := r.checkpointShard(ctx, &r.shards[i], touch); err != nil && first == nil {
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
func (r *Registry) checkpointShard(ctx context.Context, s *shard, touch func(context.Context, []Seen) error) error {
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
	if err := touch(ctx, seen); err != nil {
		return err
	}
	for _, m := range marks {
		m.in.cpSeen.Store(m.seen)
		m.in.cpSysVer.Store(m.sysVer)
	}
	return nil
}

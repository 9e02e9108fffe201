// cluster.go lets several registries (replicas) share one fleet through a
// Cluster: a Store that several processes share (etcd) and that streams its
// changes. In cluster mode a write goes to the Cluster, and every replica's
// view, indexes and change index are fed by the Cluster's change stream, so
// that every replica answers alike once it has caught up.

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// ErrUnavailable reports that the registry cannot reach its shared store:
// the write was not made (or not confirmed), and the caller may retry. The
// handler answers it with 503 and a Retry-After header.
var ErrUnavailable = errors.New("registry: store unavailable")

// A Cluster is a Store shared by several registries, such as the etcd
// backend in store/etcd. When Options.Store is a Cluster, the Registry runs
// in cluster mode:
//
//   - writes go to the Cluster and are answered once this registry's view has
//     applied them (read-your-writes);
//   - the view is filled by Snapshot and kept current by Watch, which Run
//     drives: without Run, writes time out;
//   - liveness is the Cluster's: a heartbeat calls KeepAlive, and an instance
//     becomes inactive when the Cluster says so (an etcd lease expiring), not
//     at a local deadline;
//   - the change index (X-Registry-Index) is the Cluster's revision, the same
//     on every replica.
type Cluster interface {
	Store

	// Snapshot returns every record, as a Change with Reset set, at the
	// revision where Watch is to continue.
	Snapshot(ctx context.Context) (Change, error)

	// Watch calls apply with each change after revision rev, in revision
	// order, one call per revision, until ctx is done. If it loses its
	// place (history compacted), it calls apply with a fresh snapshot
	// (Reset). It retries on its own while the Cluster is unreachable.
	Watch(ctx context.Context, rev uint64, apply func(Change)) error

	// Written is the revision of the latest write this Cluster value made.
	Written() uint64

	// KeepAlive extends the life of id's liveness, as a heartbeat does. It
	// reports false if id is not active in the Cluster.
	KeepAlive(ctx context.Context, id string) (bool, error)

	// SetTools replaces the tool list of id, leaving its liveness alone. It
	// returns an error matching ErrNotFound if id is not stored.
	SetTools(ctx context.Context, id string, tools []json.RawMessage) error

	// DeleteInactive deletes the records of ids that are inactive; active or
	// unknown ones are skipped.
	DeleteInactive(ctx context.Context, ids []string) error

	// Err is nil while the Cluster is reachable and its change stream is
	// current, and says what is wrong otherwise.
	Err() error
}

// A Change is one revision of a Cluster, or a whole snapshot. The Registry
// takes it over: it clears the tool lists of its Updates as it applies them.
type Change struct {
	Rev uint64
	// Reset: Updates hold every record at Rev; ids not among them are gone.
	Reset   bool
	Updates []Update
}

// An Update is the state of one record after a change.
type Update struct {
	Record
	// Deleted: the record is gone; only ID is set.
	Deleted bool
	// Fields: the registration or the tool list changed, and Record.Tools
	// holds the list. Otherwise only liveness (Active, LastSeen,
	// InactiveSince, System) may have changed, and Tools is not set.
	Fields bool
}

// maxCatchUp bounds how long a write waits for the view to show it.
const maxCatchUp = 10 * time.Second

// applied tracks the Cluster revision the view has applied.
type applied struct {
	mu  sync.Mutex
	rev uint64
	ch  chan struct{} // closed when rev moves
}

func (a *applied) set(rev uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if rev > a.rev {
		a.rev = rev
		if a.ch != nil {
			close(a.ch)
			a.ch = nil
		}
	}
}

func (a *applied) get() (uint64, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ch == nil {
		a.ch = make(chan struct{})
	}
	return a.rev, a.ch
}

// catchUp waits until the view has applied every write of this registry.
func (r *Registry) catchUp(ctx context.Context) error {
	target := r.cluster.Written()
	timer := time.NewTimer(maxCatchUp)
	defer timer.Stop()
	for {
		rev, moved := r.applied.get()
		if rev >= target {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("%w: the write is stored, but this replica's view is %d revisions behind it", ErrUnavailable, target-rev)
		}
	}
}

// unavailable wraps a Cluster error so that it matches ErrUnavailable,
// unless it is a caller's error (a cancelled request, a missing record).
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound) ||
		errors.Is(err, context.Canceled) || errors.Is(err, ErrInvalid) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// Health is nil while the registry can serve writes: always, unless its
// Store is a Cluster that is unreachable or whose change stream is behind.
// Reads keep answering from the last view meanwhile.
func (r *Registry) Health() error {
	if r.cluster == nil {
		return nil
	}
	if err := r.cluster.Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// replicate makes one write through the Cluster and waits until this
// registry's view shows it.
func (r *Registry) replicate(ctx context.Context, write func() error) error {
	if err := r.Health(); err != nil {
		return err
	}
	if err := write(); err != nil {
		return unavailable(err)
	}
	return r.catchUp(ctx)
}

func (r *Registry) clusterRegister(ctx context.Context, reg Registration) error {
	now := r.now().Round(0)
	// Seq 0: the Cluster orders ids itself, the same for every replica.
	rec := Record{ID: reg.ID, Name: reg.Name, Version: reg.Version, Host: reg.Host,
		Registered: now, LastSeen: now, HeartbeatInterval: r.interval(reg), Active: true}
	return r.replicate(ctx, func() error { return r.cluster.Put(ctx, rec) })
}

func (r *Registry) clusterHeartbeat(ctx context.Context, inst *instance, system json.RawMessage) (HeartbeatStatus, error) {
	if err := r.Health(); err != nil {
		return "", err
	}
	now := r.clock()
	if system != nil {
		inst.setSystem(system, now)
	}
	if _, active := unpack(inst.live.Load()); active {
		ok, err := r.cluster.KeepAlive(ctx, inst.id)
		if err != nil {
			return "", unavailable(err)
		}
		if ok {
			inst.touch(now)
			r.beats.Add(1)
			return inst.status(), nil
		}
	}
	// Inactive (or its lease just ended): make it active again.
	st := State{ID: inst.id, Active: true, LastSeen: r.wall(now).Round(0)}
	if err := r.replicate(ctx, func() error { return r.cluster.Update(ctx, []State{st}) }); err != nil {
		return "", err
	}
	if inst = r.lookup(inst.id); inst == nil { // deleted meanwhile
		return Refresh, nil
	}
	if system != nil {
		// The revival brought back the stored system: this one is newer,
		// and the next checkpoint writes it.
		inst.setSystem(system, now)
	}
	return inst.status(), nil
}

func (r *Registry) clusterSetTools(ctx context.Context, id string, parsed []parsedTool) error {
	tools := toolObjects(parsed)
	return r.replicate(ctx, func() error { return r.cluster.SetTools(ctx, id, tools) })
}

func (r *Registry) clusterDeregister(ctx context.Context, id string) error {
	// An id this view does not know may be one it has not seen yet: the
	// Cluster skips ids it does not store.
	st := State{ID: id, InactiveSince: r.now().Round(0)}
	if inst := r.lookup(id); inst != nil {
		st.LastSeen = r.wall(inst.lastSeen()).Round(0)
	}
	return r.replicate(ctx, func() error { return r.cluster.Update(ctx, []State{st}) })
}

// purgeCluster asks the Cluster to delete the inactive records past their
// retention, and returns when the next one is due (math.MaxInt64: none).
// Every replica may ask; the Cluster deletes each record once, and only if
// it is still inactive.
func (r *Registry) purgeCluster(ctx context.Context) (next int64, err error) {
	next = math.MaxInt64
	if r.opts.RetainInactive < 0 {
		return next, nil
	}
	now := r.clock()
	var ids []string
	r.mu.RLock()
	for _, in := range r.v.insts {
		if _, active := unpack(in.live.Load()); !active {
			if end := in.inactiveAt + int64(r.opts.RetainInactive); now > end {
				ids = append(ids, in.id)
			} else {
				next = min(next, end)
			}
		}
	}
	r.mu.RUnlock()
	if len(ids) == 0 {
		return next, nil
	}
	return next, r.cluster.DeleteInactive(ctx, ids)
}

// runWatch feeds the view from the Cluster until ctx is done.
func (r *Registry) runWatch(ctx context.Context) error {
	rev, _ := r.applied.get()
	return r.cluster.Watch(ctx, rev, r.apply)
}

// apply makes the view show ch.
func (r *Registry) apply(ch Change) {
	now := r.clock()
	r.mu.Lock()
	r.v.at = ch.Rev
	if ch.Reset {
		keep := make(map[string]bool, len(ch.Updates))
		for _, u := range ch.Updates {
			if !u.Deleted {
				keep[u.ID] = true
			}
		}
		for _, in := range append([]*instance(nil), r.v.insts...) {
			if !keep[in.id] {
				r.v.delete(r.shard(in.id), in)
			}
		}
	}
	for i, u := range ch.Updates {
		if err := r.applyUpdate(u, now); err != nil {
			r.log.Error("cluster: bad record skipped", "id", u.ID, "rev", ch.Rev, "err", err)
		}
		// The tool list is interned now: let the collector have the copy
		// while the rest of a large snapshot is applied.
		ch.Updates[i].Tools = nil
	}
	if ch.Reset && ch.Rev > r.v.index {
		r.v.index = ch.Rev
	}
	r.v.at = 0
	r.mu.Unlock()
	r.applied.set(ch.Rev)
}

// applyUpdate applies one record's change. Called with mu held.
func (r *Registry) applyUpdate(u Update, now int64) error {
	s := r.shard(u.ID)
	in := s.m[u.ID] // writers of s.m hold r.mu, as we do
	if u.Deleted {
		if in != nil {
			r.v.delete(s, in)
		}
		return nil
	}
	rec := u.Record
	if in == nil || in.seq != rec.Seq || !r.wall(in.registered).Equal(rec.Registered) {
		return r.applyRegistration(s, in, rec, now)
	}
	if u.Fields && rec.Tools != nil {
		parsed, err := parseToolList(rec.Tools, len(rec.Tools))
		if err != nil {
			return err
		}
		r.v.setTools(in, parsed)
	}
	r.applyLiveness(in, rec, now)
	return nil
}

// applyRegistration replaces old (nil: none) by a new instance for rec.
func (r *Registry) applyRegistration(s *shard, old *instance, rec Record, now int64) error {
	parsed, err := checkRecord(rec)
	if err != nil {
		return err
	}
	if old != nil && old.seq != rec.Seq {
		// The id was deleted and registered again between two revisions
		// this replica saw: it moves in the registration order.
		r.v.delete(s, old)
		old = nil
	}
	in := r.newInstance(Registration{ID: rec.ID, Name: rec.Name, Version: rec.Version, Host: rec.Host,
		HeartbeatInterval: rec.HeartbeatInterval}, rec.Seq, int64(rec.Registered.Sub(r.base)))
	in.floor = math.MaxInt64 // liveness is the Cluster's
	seen := int64(rec.LastSeen.Sub(r.base))
	in.live.Store(pack(seen, rec.Active))
	in.cpSeen.Store(seen)
	in.system, in.sysAt = rec.System, r.systemAt(rec)
	if !rec.Active {
		in.inactiveAt = r.inactiveAt(rec, now)
	}
	r.v.register(s, in, old)
	if parsed != nil {
		r.v.setTools(in, parsed)
	}
	return nil
}

// applyLiveness applies rec's liveness, last_seen and system to in.
func (r *Registry) applyLiveness(in *instance, rec Record, now int64) {
	rs := int64(rec.LastSeen.Sub(r.base))
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		switch {
		case rec.Active && !active:
			r.v.revive(in, rs)
		case !rec.Active && active:
			if !in.live.CompareAndSwap(l, pack(max(seen, rs), false)) {
				continue
			}
			kind := EventInactive
			if !rec.InactiveSince.IsZero() {
				kind = EventDeregistered
			}
			r.v.markInactive(in, r.inactiveAt(rec, now), r.opts.RetainInactive, kind)
			r.wakeRun() // its deletion is now due at some point
		case rs > seen:
			if !in.live.CompareAndSwap(l, pack(rs, active)) {
				continue
			}
		}
		break
	}
	if rs > in.cpSeen.Load() {
		in.cpSeen.Store(rs) // written by the replica that got the heartbeat
	}
	// The stored system wins if a later heartbeat sent it than the one
	// that sent this replica's, or the same one while this replica has
	// nothing of its own to write; else this replica's own stays.
	sys, ver, at := in.systemVersion()
	pending := ver != in.cpSysVer.Load()
	if ra := r.systemAt(rec); rec.System != nil && (ra > at || ra == at && !pending) && !bytes.Equal(rec.System, sys) {
		in.setSystem(rec.System, ra)
		_, ver, _ = in.systemVersion()
		in.cpSysVer.Store(ver)
	}
}

// systemAt is when the heartbeat that sent rec.System was sent, as a clock
// offset: Record.SystemAt if the store keeps it, else its last_seen.
func (r *Registry) systemAt(rec Record) int64 {
	if rec.SystemAt.IsZero() {
		return int64(rec.LastSeen.Sub(r.base))
	}
	return int64(rec.SystemAt.Sub(r.base))
}

// inactiveAt is when rec became inactive, the same on every replica: as
// stored by a deregistration, else (its lease ended) three intervals after
// its stored last_seen; at most now.
func (r *Registry) inactiveAt(rec Record, now int64) int64 {
	if !rec.InactiveSince.IsZero() {
		return min(int64(rec.InactiveSince.Sub(r.base)), now)
	}
	return min(int64(rec.LastSeen.Add(ttlFactor*rec.HeartbeatInterval).Sub(r.base)), now)
}

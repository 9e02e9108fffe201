// cluster.go lets several registries (replicas) share one fleet through a
// Cluster (etcd, or store/memcluster in tests): the Cluster interface, the
// changes it streams, and clusterWriter, the write path of a Registry whose
// Options.Cluster is set. Its writes go to the Cluster and wait until this
// replica's view has applied the revision they committed; the view is fed
// only by the Cluster's change stream, so every replica answers alike.

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"sync"
	"time"
)

// A Cluster is a store that several registries share, such as the etcd
// backend in store/etcd. A Registry whose Options.Cluster is set runs as a
// replica:
//
//   - writes go to the Cluster, and each is answered once this replica's
//     view has applied the revision the write committed (read-your-writes);
//   - the view is filled by Snapshot and kept current by Watch, which Run
//     drives: without Run, writes time out;
//   - liveness is the Cluster's: a heartbeat calls KeepAlive, and an
//     instance becomes inactive when the Cluster says so (an etcd lease
//     ending), not at a local deadline;
//   - the change index (X-Registry-Index) is the Cluster's revision, the
//     same on every replica.
//
// Writes return the revision they committed, or 0 if they changed nothing
// (an id that is not stored). A write to a stored id takes a guard: if not
// empty, the write is made only if the record's Owner is guard (an empty
// stored Owner counts as APIKeyIdentity), and fails with an error matching
// ErrForbidden otherwise, atomically, so that replicas cannot race an
// instance away from its owner. Implementations must be safe for concurrent
// use.
type Cluster interface {
	// Snapshot calls apply with every record at one revision, in pages,
	// and returns that revision, where Watch is to continue. Each page is a
	// Change with Reset set and the snapshot's Rev, More set on all but the
	// last; the records come in Seq order across the pages, so that the
	// replica's ordered indexes append. A page holds a bounded number of
	// tool lists: a replica starting on a large fleet never holds it whole
	// twice. If Snapshot fails after some pages, a later snapshot starts
	// over; one that starts over itself (its revision compacted while it
	// read) does so at a new Rev, which is how apply knows (see Change).
	Snapshot(ctx context.Context, apply func(Change)) (uint64, error)

	// Watch calls apply with each change after revision rev, in revision
	// order, one call per revision, until ctx is done. If it loses its
	// place (history compacted), it calls apply with the pages of a fresh
	// snapshot, as Snapshot does, then goes on after its revision. It
	// retries on its own while the Cluster is unreachable.
	Watch(ctx context.Context, rev uint64, apply func(Change)) error

	// Register creates or replaces the record of rec.ID, active (with a
	// fresh liveness of 3 x rec.HeartbeatInterval) or not as rec says. A
	// rec.Seq of 0 asks the Cluster to order the id: a new id after every
	// stored one, a stored id where it was. A stored id keeps its Owner; a
	// new one gets rec.Owner.
	Register(ctx context.Context, rec Record, guard string) (uint64, error)

	// SetTools replaces the tool list of id, leaving its liveness alone. It
	// returns an error matching ErrNotFound if id is not stored.
	SetTools(ctx context.Context, id, guard string, tools []json.RawMessage) (uint64, error)

	// Deactivate makes id inactive (a deregistration) as of at, keeping its
	// record; lastSeen older than the stored one is ignored. An id already
	// inactive keeps when it went inactive: its InactiveSince, or none if
	// its liveness ended (the registry takes 3 intervals after last_seen).
	Deactivate(ctx context.Context, id, guard string, lastSeen, at time.Time) (uint64, error)

	// Activate makes id active again, last seen at lastSeen (a heartbeat of
	// an inactive instance), with a fresh liveness.
	Activate(ctx context.Context, id, guard string, lastSeen time.Time) (uint64, error)

	// KeepAlive extends the liveness of id, as a heartbeat does. It reports
	// false if id is not active in the Cluster as this value's change
	// stream delivered it (a replica keeps alive what its view shows).
	KeepAlive(ctx context.Context, id string) (bool, error)

	// Touch records heartbeats, as Store.Touch does; a System whose
	// SystemAt is set replaces the stored one only if it is later.
	Touch(ctx context.Context, seen []Seen) error

	// DeleteInactive deletes the records of ids that are inactive; active
	// or unknown ones are skipped.
	DeleteInactive(ctx context.Context, ids []string) (uint64, error)

	// Delete deletes the records of ids, active or not (an admin's purge);
	// unknown ones are skipped.
	Delete(ctx context.Context, ids []string) (uint64, error)

	// Err is nil while the Cluster is reachable and its change stream is
	// current, and says what is wrong otherwise.
	Err() error
}

// A ClusterHead is a Cluster that knows the newest revision its backend
// has answered with (the headers of etcd's answers to its writes,
// keep-alives and watch), which its change stream may not have delivered
// yet: Registry.ClusterLag is the difference.
type ClusterHead interface {
	HeadRevision() uint64
}

// A Change is one revision of a Cluster, or one page of a snapshot. The
// Registry takes it over: it clears the tool lists of its Records as it
// applies them.
type Change struct {
	Rev uint64
	// Reset: a page of a snapshot at Rev. The pages of one snapshot, taken
	// together, hold every record at Rev; ids not among them are gone. A
	// Reset page at another Rev than the pages before it begins a new
	// snapshot (the one before was abandoned part way).
	Reset bool
	// More: a Reset page that is not the last of its snapshot. The replica
	// shows Rev as applied (and deletes the ids that no page held) at the
	// last page only; until then, its reads may show some records at Rev
	// and others as they were before, each record only moving forward.
	More    bool
	Records []RecordChange
}

// A RecordChange is the state of one record after a Change.
type RecordChange struct {
	Record
	// Deleted: the record is gone; only ID is set.
	Deleted bool
	// Fields: the registration or the tool list changed, and Record.Tools
	// holds the list. Otherwise only liveness (Active, LastSeen,
	// InactiveSince, System) may have changed, and Tools is not set. A
	// tool post's list is never nil (an empty one is empty): a watched
	// change with Fields and no list is a registration, even one at the
	// same instant (Registered) as the registration it replaces.
	Fields bool
}

// maxCatchUp bounds how long a write waits for the view to show it.
const maxCatchUp = 10 * time.Second

// clusterWriter is the write path of a replica.
type clusterWriter struct {
	r       *Registry
	c       Cluster
	applied applied // the revision the view shows
	at      uint64  // the revision being applied; guarded by r.mu
	// reset is the snapshot whose pages are being applied; guarded by r.mu.
	reset struct {
		on   bool
		rev  uint64
		keep map[string]bool // the ids its pages held so far
	}
}

var _ writer = (*clusterWriter)(nil)

// newClusterWriter fills r's view from c's snapshot.
func newClusterWriter(ctx context.Context, r *Registry, c Cluster) (*clusterWriter, error) {
	w := &clusterWriter{r: r, c: c}
	r.v.init(0, w.index, r.opts.NotifyInterval)
	if _, err := c.Snapshot(ctx, w.apply); err != nil {
		return nil, fmt.Errorf("registry: cluster snapshot: %w", err)
	}
	return w, nil
}

// index gives the changes of a revision its number: the view's change
// index is the Cluster's revision.
func (w *clusterWriter) index(cur uint64) uint64 { return max(cur, w.at) }

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

// catchUp waits until the view has applied revision rev.
func (w *clusterWriter) catchUp(ctx context.Context, rev uint64) error {
	timer := time.NewTimer(maxCatchUp)
	defer timer.Stop()
	for {
		cur, moved := w.applied.get()
		if cur >= rev {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
			return fmt.Errorf("%w: the write is stored, but this replica's view is %d revisions behind it", ErrUnavailable, rev-cur)
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

func (w *clusterWriter) revision() (uint64, bool) {
	w.applied.mu.Lock()
	defer w.applied.mu.Unlock()
	return w.applied.rev, true
}

func (w *clusterWriter) lag() (uint64, bool) {
	h, ok := w.c.(ClusterHead)
	if !ok {
		return 0, false
	}
	head := h.HeadRevision() // before the view's: a lag never shows negative
	rev, _ := w.revision()
	if head <= rev {
		return 0, true
	}
	return head - rev, true
}

func (w *clusterWriter) health() error {
	if err := w.c.Err(); err != nil {
		return unavailable(err)
	}
	return nil
}

// replicate makes one write through the Cluster and waits until this
// replica's view shows the revision it committed.
func (w *clusterWriter) replicate(ctx context.Context, write func() (uint64, error)) error {
	if err := w.health(); err != nil {
		return err
	}
	start := time.Now()
	rev, err := write()
	w.r.counts.storeWrite(start, err)
	if err != nil {
		return unavailable(err)
	}
	return w.catchUp(ctx, rev)
}

func (w *clusterWriter) register(ctx context.Context, reg Registration) error {
	if err := w.makeRoom(ctx, reg.ID); err != nil {
		return err
	}
	if in := w.r.lookup(reg.ID); in != nil && !mayActOn(identityOf(ctx), in.owner) {
		return errNotOwner // the Cluster checks again, atomically
	}
	now := w.r.now().Round(0)
	// Seq 0: the Cluster orders ids itself, the same for every replica.
	rec := Record{ID: reg.ID, Name: reg.Name, Version: reg.Version, Host: reg.Host, Owner: ownerFor(ctx), Labels: reg.Labels,
		Registered: now, LastSeen: now, HeartbeatInterval: w.r.interval(reg), Active: true}
	return w.replicate(ctx, func() (uint64, error) { return w.c.Register(ctx, rec, guardFor(ctx)) })
}

// makeRoom asks the Cluster to delete the oldest inactive record when the
// registry is full and id is new. A few tries: the view may be behind the
// Cluster, where that record may be active again or gone.
func (w *clusterWriter) makeRoom(ctx context.Context, id string) error {
	r := w.r
	for range 3 {
		r.mu.RLock()
		full := len(r.v.insts) >= r.opts.MaxInstances
		var oldest string
		if in := r.v.oldest.oldest(); in != nil {
			oldest = in.id
		}
		r.mu.RUnlock()
		if !full || r.lookup(id) != nil {
			return nil
		}
		if oldest == "" {
			return ErrFull
		}
		deleted := false
		err := w.replicate(ctx, func() (uint64, error) {
			rev, err := w.c.DeleteInactive(ctx, []string{oldest})
			deleted = rev > 0
			return rev, err
		})
		if err != nil {
			return err
		}
		if deleted {
			r.log.Info("registry full: deleted the oldest inactive record to make room", "id", oldest, "max_instances", r.opts.MaxInstances)
		}
	}
	return ErrFull
}

func (w *clusterWriter) heartbeat(ctx context.Context, in *instance, system json.RawMessage) (HeartbeatStatus, bool, error) {
	if err := w.health(); err != nil {
		return "", false, err
	}
	r := w.r
	now := r.clock()
	if system != nil {
		in.setSystem(system, now)
	}
	if _, active := unpack(in.live.Load()); active {
		ok, err := w.c.KeepAlive(ctx, in.id)
		if err != nil {
			return "", false, unavailable(err)
		}
		if ok {
			in.touch(now)
			r.beats.Add(1)
			return in.status(), false, nil
		}
	}
	// Inactive (or its liveness just ended): make it active again.
	seen := r.wall(now).Round(0)
	if err := w.replicate(ctx, func() (uint64, error) { return w.c.Activate(ctx, in.id, guardFor(ctx), seen) }); err != nil {
		return "", false, err
	}
	if in = r.lookup(in.id); in == nil { // deleted meanwhile
		return Refresh, false, nil
	}
	if system != nil {
		// The revival brought back the stored system: this one is newer,
		// and the next checkpoint writes it.
		in.setSystem(system, now)
	}
	return in.status(), true, nil
}

func (w *clusterWriter) setTools(ctx context.Context, id string, parsed []parsedTool) error {
	if in := w.r.lookup(id); in != nil && !mayActOn(identityOf(ctx), in.owner) {
		return errNotOwner
	}
	tools := toolObjects(parsed)
	return w.replicate(ctx, func() (uint64, error) { return w.c.SetTools(ctx, id, guardFor(ctx), tools) })
}

func (w *clusterWriter) deregister(ctx context.Context, id string) error {
	// An id this view does not know may be one it has not seen yet: the
	// Cluster skips ids it does not store.
	var seen time.Time
	if in := w.r.lookup(id); in != nil {
		if !mayActOn(identityOf(ctx), in.owner) {
			return errNotOwner
		}
		seen = w.r.wall(in.lastSeen()).Round(0)
	}
	// Now, whatever the view shows: it may be behind the Cluster, which
	// keeps the time of an instance already inactive.
	at := w.r.now().Round(0)
	return w.replicate(ctx, func() (uint64, error) { return w.c.Deactivate(ctx, id, guardFor(ctx), seen, at) })
}

func (w *clusterWriter) delete(ctx context.Context, id string) error {
	return w.replicate(ctx, func() (uint64, error) { return w.c.Delete(ctx, []string{id}) })
}

// settle asks the Cluster to delete the inactive records past their
// retention, and returns when the next one is due (math.MaxInt64: none).
// Every replica may ask; the Cluster deletes each record once, and only if
// it is still inactive. Expiry is the Cluster's: nothing else is due here.
func (w *clusterWriter) settle(ctx context.Context, now int64) (int64, error) {
	r := w.r
	next := int64(math.MaxInt64)
	if r.opts.RetainInactive < 0 {
		return next, nil
	}
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
	_, err := w.c.DeleteInactive(ctx, ids)
	return next, err
}

// checkpoint writes the heartbeats this replica took. (Run's timer asks
// for deletions at their due time.)
func (w *clusterWriter) checkpoint(ctx context.Context) error {
	return w.r.checkpointShards(ctx, w.c.Touch)
}

// run feeds the view from the Cluster until ctx is done.
func (w *clusterWriter) run(ctx context.Context) error {
	rev, _ := w.applied.get()
	return w.c.Watch(ctx, rev, w.apply)
}

// apply makes the view show ch. The pages of a snapshot (Reset) are
// applied as they come; the ids they held are collected, and at the last
// page the others are deleted and the snapshot's revision is applied.
func (w *clusterWriter) apply(ch Change) {
	r := w.r
	now := r.clock()
	r.mu.Lock()
	w.at = ch.Rev
	switch {
	case ch.Reset && (!w.reset.on || w.reset.rev != ch.Rev):
		// A new snapshot. One abandoned part way leaves the records of its
		// pages applied: each is at a later revision than the view was,
		// and this snapshot brings them all to its own.
		w.reset.on, w.reset.rev, w.reset.keep = true, ch.Rev, make(map[string]bool, len(ch.Records))
	case !ch.Reset && w.reset.on:
		w.reset.on, w.reset.keep = false, nil
	}
	for i, u := range ch.Records {
		if ch.Reset && !u.Deleted {
			w.reset.keep[u.ID] = true
		}
		if err := w.applyRecord(u, ch.Reset, now); err != nil {
			r.log.Error("cluster: bad record skipped", "id", u.ID, "rev", ch.Rev, "err", err)
		}
		// The tool list is interned now: let the collector have the copy
		// while the rest of a large snapshot is applied.
		ch.Records[i].Tools = nil
	}
	if ch.Reset && !ch.More {
		var gone []*instance
		for _, in := range r.v.insts {
			if !w.reset.keep[in.id] {
				gone = append(gone, in)
			}
		}
		r.v.delete(gone, r.shard)
		w.reset.on, w.reset.keep = false, nil
		// The events of a snapshot do not say what changed before it: a
		// stream resumed from before it must re-list.
		r.v.index = max(r.v.index, ch.Rev)
		r.v.evicted = max(r.v.evicted, ch.Rev)
		r.v.w.changed(r.v.index, topic{kind: topicAll})
	}
	w.at = 0
	r.mu.Unlock()
	if !ch.More {
		w.applied.set(ch.Rev)
	}
}

// applyRecord applies one record's change, from a snapshot's page if
// reset. Called with r.mu held.
func (w *clusterWriter) applyRecord(u RecordChange, reset bool, now int64) error {
	r := w.r
	s := r.shard(u.ID)
	in := s.m[u.ID] // writers of s.m hold r.mu, as we do
	if u.Deleted {
		if in != nil {
			r.v.delete([]*instance{in}, r.shard)
		}
		return nil
	}
	rec := u.Record
	if in == nil || in.seq != rec.Seq || !r.wall(in.registered).Equal(rec.Registered) || reregistered(in, u, reset) {
		return w.applyRegistration(s, in, rec, now)
	}
	if u.Fields && rec.Tools != nil {
		parsed, err := parseStoredTools(rec.Tools)
		if err != nil {
			return err
		}
		r.v.setTools(in, parsed)
	}
	w.applyLiveness(in, rec, now)
	return nil
}

// reregistered reports whether u, a change of in's record with in's Seq
// and Registered, is a registration that replaced it at the same instant
// (two requests within the clock's resolution). A tool post always carries
// a list, empty maybe, and only a registration clears it: a watched change
// of the fields without one is a registration. A snapshot's page carries
// the fields of every record, changed or not; there, other fields or a
// list gone show it.
func reregistered(in *instance, u RecordChange, reset bool) bool {
	switch {
	case !u.Fields:
		return false
	case !reset:
		return u.Tools == nil
	}
	return (u.Tools == nil && in.tools.Load() != nil) || in.name != u.Name || in.version != u.Version ||
		in.host != u.Host || !maps.Equal(in.labels, u.Labels)
}

// applyRegistration replaces old (nil: none) by a new instance for rec.
func (w *clusterWriter) applyRegistration(s *shard, old *instance, rec Record, now int64) error {
	r := w.r
	if old != nil && old.seq != rec.Seq {
		// The id was deleted and registered again between two revisions
		// this replica saw: it moves in the registration order.
		r.v.delete([]*instance{old}, r.shard)
		old = nil
	}
	in, parsed, err := r.instanceOf(rec)
	if err != nil {
		return err
	}
	in.floor = math.MaxInt64 // liveness is the Cluster's: no local deadline
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
func (w *clusterWriter) applyLiveness(in *instance, rec Record, now int64) {
	r := w.r
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
			// Retention is the Cluster's too (settle asks it to delete):
			// the view schedules nothing.
			r.v.markInactive(in, r.inactiveAt(rec, now), -1, kind)
			r.wakeRun() // its deletion is now due at some point
		case rs > seen:
			if !in.live.CompareAndSwap(l, pack(rs, active)) {
				continue
			}
			r.beats.Add(1) // last_seen moved: answers that show it changed
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

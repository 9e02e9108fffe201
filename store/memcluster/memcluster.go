// Package memcluster is a registry.Cluster in memory, with the semantics of
// the etcd one (store/etcd): every write that changes a record makes one
// revision, Watch streams the revisions in order, an active instance lives
// on a lease of 3 x its heartbeat interval that KeepAlive extends and whose
// end makes it inactive, and Compact forgets history so that a watch behind
// it gets a fresh snapshot (Reset).
//
// It lets several Registries in one process act as replicas of one fleet,
// in tests that run in milliseconds, without etcd. Faults are injected with
// SetErr (the Cluster unreachable) and Stall (the change stream stuck while
// writes go on).
//
// Leases end when a Watch notices: the Registries' Run loops (which call
// Watch) drive them, as etcd's own server does for its leases.
package memcluster

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/runspec/registry"
)

// Options configures New.
type Options struct {
	// Now returns the current time. If nil, defaults to time.Now.
	Now func() time.Time
	// MinTTL is the shortest lease. If zero, 3 x the heartbeat interval is
	// the lease, however short (etcd's minimum is about 2 s).
	MinTTL time.Duration
	// PageSize is the most records one page of a snapshot holds. If zero,
	// defaults to DefaultPageSize.
	PageSize int
}

// DefaultPageSize is the page size of snapshots when Options.PageSize is
// zero: the etcd Cluster's.
const DefaultPageSize = 100

// Cluster is a registry.Cluster in memory. Create one with New; its methods
// are safe for concurrent use. One Cluster is shared by every replica.
type Cluster struct {
	opts Options

	mu        sync.Mutex
	rev       uint64
	nextSeq   uint64
	recs      map[string]*entry
	history   []registry.Change // changes after compacted, in order
	compacted uint64
	changed   chan struct{} // closed at each new revision
	err       error         // injected by SetErr
	stalled   bool          // Stall: watches deliver nothing
}

// entry is one stored record and its lease.
type entry struct {
	rec   registry.Record
	lease time.Time // when the lease ends; zero while inactive
}

var (
	_ registry.Cluster     = (*Cluster)(nil)
	_ registry.ClusterHead = (*Cluster)(nil)
)

// New returns an empty Cluster.
func New(opts Options) *Cluster {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PageSize <= 0 {
		opts.PageSize = DefaultPageSize
	}
	return &Cluster{opts: opts, recs: make(map[string]*entry), changed: make(chan struct{})}
}

func (c *Cluster) ttl(interval time.Duration) time.Duration { return max(3*interval, c.opts.MinTTL) }

// commit makes one revision of the records of ids (nil entries: deleted)
// and returns it. Called with mu held.
func (c *Cluster) commit(fields bool, ids ...string) uint64 {
	c.rev++
	ch := registry.Change{Rev: c.rev}
	for _, id := range ids {
		e := c.recs[id]
		if e == nil {
			ch.Records = append(ch.Records, registry.RecordChange{Record: registry.Record{ID: id}, Deleted: true})
			continue
		}
		rc := registry.RecordChange{Record: e.rec, Fields: fields}
		if !fields {
			rc.Tools = nil
		}
		ch.Records = append(ch.Records, rc)
	}
	c.history = append(c.history, ch)
	close(c.changed)
	c.changed = make(chan struct{})
	return c.rev
}

// writable is the error of a write while the Cluster is unreachable.
func (c *Cluster) writable() error {
	if c.err != nil {
		return fmt.Errorf("memcluster: %w", c.err)
	}
	return nil
}

// guarded is the error of a write whose guard the record's owner does not
// match (see registry.Cluster), or nil.
func guarded(e *entry, guard string) error {
	owner := e.rec.Owner
	if owner == "" {
		owner = registry.APIKeyIdentity
	}
	if guard != "" && guard != owner {
		return fmt.Errorf("memcluster: instance %q: %w", e.rec.ID, registry.ErrForbidden)
	}
	return nil
}

// Register implements registry.Cluster.
func (c *Cluster) Register(ctx context.Context, rec registry.Record, guard string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	c.expire()
	old := c.recs[rec.ID]
	switch {
	case old != nil:
		if err := guarded(old, guard); err != nil {
			return 0, err
		}
		rec.Seq, rec.Owner = old.rec.Seq, old.rec.Owner
	case rec.Seq == 0:
		c.nextSeq++
		rec.Seq = c.nextSeq
	default:
		c.nextSeq = max(c.nextSeq, rec.Seq)
	}
	e := &entry{rec: rec}
	e.rec.Tools, e.rec.Labels = slices.Clone(rec.Tools), maps.Clone(rec.Labels)
	if rec.Active {
		e.rec.InactiveSince = time.Time{}
		e.lease = c.opts.Now().Add(c.ttl(rec.HeartbeatInterval))
	}
	c.recs[rec.ID] = e
	return c.commit(true, rec.ID), nil
}

// SetTools implements registry.Cluster.
func (c *Cluster) SetTools(ctx context.Context, id, guard string, tools []json.RawMessage) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	e := c.recs[id]
	if e == nil {
		return 0, fmt.Errorf("memcluster: instance %q: %w", id, registry.ErrNotFound)
	}
	if err := guarded(e, guard); err != nil {
		return 0, err
	}
	e.rec.Tools = slices.Clone(tools)
	if e.rec.Tools == nil {
		e.rec.Tools = []json.RawMessage{}
	}
	return c.commit(true, id), nil
}

// Deactivate implements registry.Cluster.
func (c *Cluster) Deactivate(ctx context.Context, id, guard string, lastSeen, at time.Time) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.liveness(id, guard, lastSeen)
	if e == nil {
		return 0, err
	}
	if e.rec.Active { // one already inactive keeps when it went inactive
		e.rec.InactiveSince = at
	}
	e.rec.Active, e.lease = false, time.Time{}
	return c.commit(false, id), nil
}

// liveness is the entry of id for a change of its liveness, with its
// last_seen moved to lastSeen if that is later: nil if there is none, or
// if the Cluster cannot be written or guard does not own it (the error).
// Called with c.mu held.
func (c *Cluster) liveness(id, guard string, lastSeen time.Time) (*entry, error) {
	if err := c.writable(); err != nil {
		return nil, err
	}
	c.expire()
	e := c.recs[id]
	if e == nil {
		return nil, nil
	}
	if err := guarded(e, guard); err != nil {
		return nil, err
	}
	if lastSeen.After(e.rec.LastSeen) {
		e.rec.LastSeen = lastSeen
	}
	return e, nil
}

// Activate implements registry.Cluster.
func (c *Cluster) Activate(ctx context.Context, id, guard string, lastSeen time.Time) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.liveness(id, guard, lastSeen)
	if e == nil {
		return 0, err
	}
	e.rec.Active, e.rec.InactiveSince = true, time.Time{}
	e.lease = c.opts.Now().Add(c.ttl(e.rec.HeartbeatInterval))
	return c.commit(false, id), nil
}

// KeepAlive implements registry.Cluster.
func (c *Cluster) KeepAlive(ctx context.Context, id string) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return false, err
	}
	c.expire()
	e := c.recs[id]
	if e == nil || e.lease.IsZero() {
		return false, nil
	}
	e.lease = c.opts.Now().Add(c.ttl(e.rec.HeartbeatInterval))
	return true, nil
}

// Touch implements registry.Cluster. Like etcd's, it makes a revision for
// the records whose last_seen or system it changes.
func (c *Cluster) Touch(ctx context.Context, seen []registry.Seen) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return err
	}
	var ids []string
	for _, sn := range seen {
		e := c.recs[sn.ID]
		if e == nil {
			continue
		}
		changed := false
		if sn.LastSeen.After(e.rec.LastSeen) {
			e.rec.LastSeen, changed = sn.LastSeen, true
		}
		stored := e.rec.SystemAt
		if stored.IsZero() {
			stored = e.rec.LastSeen
		}
		if sn.System != nil && (sn.SystemAt.IsZero() || e.rec.System == nil || sn.SystemAt.After(stored)) &&
			string(sn.System) != string(e.rec.System) {
			e.rec.System, e.rec.SystemAt, changed = sn.System, sn.SystemAt, true
		}
		if changed && !slices.Contains(ids, sn.ID) {
			ids = append(ids, sn.ID)
		}
	}
	if len(ids) > 0 {
		c.commit(false, ids...)
	}
	return nil
}

// DeleteInactive implements registry.Cluster.
func (c *Cluster) DeleteInactive(ctx context.Context, ids []string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	c.expire()
	var last uint64
	for _, id := range ids {
		if e := c.recs[id]; e != nil && !e.rec.Active {
			delete(c.recs, id)
			last = c.commit(false, id)
		}
	}
	return last, nil
}

// Delete implements registry.Cluster: one revision per record deleted.
func (c *Cluster) Delete(ctx context.Context, ids []string) (uint64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.writable(); err != nil {
		return 0, err
	}
	var last uint64
	for _, id := range ids {
		if c.recs[id] != nil {
			delete(c.recs, id)
			last = c.commit(false, id)
		}
	}
	return last, nil
}

// Err implements registry.Cluster.
func (c *Cluster) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.err != nil:
		return fmt.Errorf("memcluster: %w", c.err)
	case c.stalled:
		return fmt.Errorf("memcluster: the change stream is stalled at revision %d", c.rev)
	}
	return nil
}

// SetErr makes the Cluster unreachable: every write fails with err, and
// Err reports it, until SetErr(nil). Watches keep their place.
func (c *Cluster) SetErr(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.err = err
}

// Stall stops (true) or resumes (false) the delivery of changes to
// watches, while writes go on: a replica's change stream broken and
// resumed.
func (c *Cluster) Stall(stalled bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stalled = stalled
	close(c.changed)
	c.changed = make(chan struct{})
}

// Compact forgets the history up to the current revision: a Watch that has
// not delivered it yet gets a Reset snapshot instead.
func (c *Cluster) Compact() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.compacted = c.rev
	c.history = nil
	close(c.changed)
	c.changed = make(chan struct{})
}

// HeadRevision implements registry.ClusterHead: the Cluster's revision,
// which the change stream delivers at once.
func (c *Cluster) HeadRevision() uint64 { return c.Rev() }

// Rev returns the current revision.
func (c *Cluster) Rev() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.rev
}

// Snapshot implements registry.Cluster: pages of Options.PageSize records.
func (c *Cluster) Snapshot(ctx context.Context, apply func(registry.Change)) (uint64, error) {
	c.mu.Lock()
	if err := c.writable(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	c.expire()
	rev, recs := c.snapshot()
	c.mu.Unlock()
	c.pages(rev, recs, apply)
	return rev, nil
}

// snapshot is every record at the current revision, in Seq order. Called
// with mu held.
func (c *Cluster) snapshot() (uint64, []registry.RecordChange) {
	recs := make([]registry.RecordChange, 0, len(c.recs))
	for _, e := range c.recs {
		recs = append(recs, registry.RecordChange{Record: e.rec, Fields: true})
	}
	slices.SortFunc(recs, func(a, b registry.RecordChange) int { return cmp.Compare(a.Seq, b.Seq) })
	return c.rev, recs
}

// pages calls apply with the pages of a snapshot of recs at rev: at least
// one (an empty fleet makes one empty page).
func (c *Cluster) pages(rev uint64, recs []registry.RecordChange, apply func(registry.Change)) {
	for {
		n := min(len(recs), c.opts.PageSize)
		apply(registry.Change{Rev: rev, Reset: true, More: n < len(recs), Records: recs[:n:n]})
		if recs = recs[n:]; len(recs) == 0 {
			return
		}
	}
}

// Watch implements registry.Cluster. It also ends the leases that come due
// while it waits.
func (c *Cluster) Watch(ctx context.Context, rev uint64, apply func(registry.Change)) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.mu.Lock()
		c.expire()
		var out []registry.Change
		var snap []registry.RecordChange
		snapRev, relist := uint64(0), false
		if !c.stalled {
			if rev < c.compacted {
				snapRev, snap = c.snapshot()
				relist, rev = true, snapRev
			}
			i, _ := slices.BinarySearchFunc(c.history, rev+1, func(ch registry.Change, r uint64) int { return cmp.Compare(ch.Rev, r) })
			for _, ch := range c.history[i:] {
				// The Registry clears the tool lists of what it applies:
				// each watch gets its own slice.
				ch.Records = slices.Clone(ch.Records)
				out = append(out, ch)
				rev = ch.Rev
			}
		}
		wake := c.changed
		next, ok := c.nextLease()
		c.mu.Unlock()
		if relist {
			c.pages(snapRev, snap, apply)
		}
		for _, ch := range out {
			apply(ch)
		}
		if ok {
			timer.Reset(max(next.Sub(c.opts.Now()), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		case <-timer.C:
		}
	}
}

// expire ends the leases that are due, one revision each, as etcd does.
// Called with mu held.
func (c *Cluster) expire() {
	now := c.opts.Now()
	var due []*entry
	for _, e := range c.recs {
		if !e.lease.IsZero() && now.After(e.lease) {
			due = append(due, e)
		}
	}
	slices.SortFunc(due, func(a, b *entry) int { return a.lease.Compare(b.lease) })
	for _, e := range due {
		e.lease = time.Time{}
		e.rec.Active = false // InactiveSince stays zero: the lease ended
		c.commit(false, e.rec.ID)
	}
}

// nextLease is when the next lease ends. Called with mu held.
func (c *Cluster) nextLease() (time.Time, bool) {
	var next time.Time
	for _, e := range c.recs {
		if !e.lease.IsZero() && (next.IsZero() || e.lease.Before(next)) {
			next = e.lease
		}
	}
	return next, !next.IsZero()
}

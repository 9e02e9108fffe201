// watch.go reads the registry's keys back: Snapshot lists them at one
// revision, in pages, and Watch follows their changes from there.

package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/runspec/registry"
)

// pageSize is how many keys one range request of a listing reads.
const pageSize = 2000

// A snapshot hands its records over in pages of at most snapshotPage
// records, fewer when their values are large: a page aims at pageBytes of
// record values, the next one shrinking (or growing back) to fit.
const (
	snapshotPage = 100
	pageBytes    = 1 << 20
)

// snapshotTries is how often Snapshot starts over when the revision it
// reads at is compacted meanwhile.
const snapshotTries = 3

// Snapshot implements registry.Cluster. It reads at one revision: the
// schemas, the liveness keys (empty: the lease is in their metadata) and
// the seen keys first, then the record keys (keys only) to learn the
// ids and their create revisions, the registration order; then the record
// values in that order, a page at a time, each page's tool lists built and
// handed to apply before the next page is read. Memory holds one page of
// tool lists, the schemas and what the Store keeps of each id anyway.
func (s *Store) Snapshot(ctx context.Context, apply func(registry.Change)) (uint64, error) {
	for try := 1; ; try++ {
		rev, err := s.snapshot(ctx, apply)
		if errors.Is(err, rpctypes.ErrCompacted) && try < snapshotTries && ctx.Err() == nil {
			// Compacted while it read: start over at the current revision,
			// which tells apply that this is a new snapshot.
			s.log.Warn("etcd snapshot compacted while it read; starting over", "rev", rev)
			continue
		}
		return uint64(rev), err
	}
}

// recordKey is a record's id and create revision, from a keys-only listing.
type recordKey struct {
	id        string
	createRev int64
}

func (s *Store) snapshot(ctx context.Context, apply func(registry.Change)) (int64, error) {
	ents := make(map[string]*entry)
	ent := func(id string) *entry {
		e := ents[id]
		if e == nil {
			e = &entry{}
			ents[id] = e
		}
		return e
	}
	schemas := make(map[string][]byte)
	rev, err := s.scan(ctx, s.prefix+schemaDir, 0, false, func(kv *mvccpb.KeyValue) error {
		schemas[string(kv.Key[len(s.prefix)+len(schemaDir):])] = kv.Value
		return nil
	})
	if err != nil {
		return 0, err
	}
	// Liveness keys are empty: read whole, as keys only they would cost
	// the same, and etcd 3.7 answers keys only from its index, without the
	// lease.
	if _, err := s.scan(ctx, s.prefix+liveDir, rev, false, func(kv *mvccpb.KeyValue) error {
		ent(string(kv.Key[len(s.prefix)+len(liveDir):])).lease = kv.Lease
		return nil
	}); err != nil {
		return rev, err
	}
	if _, err := s.scan(ctx, s.prefix+seenDir, rev, false, func(kv *mvccpb.KeyValue) error {
		id := string(kv.Key[len(s.prefix)+len(seenDir):])
		return ent(id).apply(seenDir, id, kv, false, nil)
	}); err != nil {
		return rev, err
	}
	var keys []recordKey
	if _, err := s.scan(ctx, s.prefix+recordDir, rev, true, func(kv *mvccpb.KeyValue) error {
		keys = append(keys, recordKey{string(kv.Key[len(s.prefix)+len(recordDir):]), kv.CreateRevision})
		return nil
	}); err != nil {
		return rev, err
	}
	slices.SortFunc(keys, func(a, b recordKey) int { return cmp.Compare(a.createRev, b.createRev) })
	n := snapshotPage
	for {
		page := keys[:min(n, len(keys))]
		keys = keys[len(page):]
		ch, size, err := s.page(ctx, rev, page, ents, schemas)
		if err != nil {
			return rev, err
		}
		ch.More = len(keys) > 0
		if !ch.More {
			// The Store's state before the last page is applied: once it
			// is, writes waiting for the snapshot go on, keep-alives too.
			s.mu.Lock()
			s.ents, s.schemas = ents, schemas
			s.mu.Unlock()
		}
		apply(ch)
		if !ch.More {
			return rev, nil
		}
		if size > 0 {
			n = max(1, min(snapshotPage, 2*n, n*pageBytes/size))
		}
	}
}

// page reads the values of the records of keys at rev and returns them as
// one page of a snapshot, with the bytes of record values it read.
func (s *Store) page(ctx context.Context, rev int64, keys []recordKey, ents map[string]*entry, schemas map[string][]byte) (registry.Change, int, error) {
	ch := registry.Change{Rev: uint64(rev), Reset: true}
	if len(keys) == 0 {
		return ch, 0, nil
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpGet(s.key(recordDir, k.id), clientv3.WithRev(rev))
	}
	resp, err := s.txn(ctx, nil, ops...)
	if err != nil {
		return ch, 0, fmt.Errorf("etcd: list records: %w", err)
	}
	size := 0
	for i, k := range keys {
		kv := first(resp, i)
		if kv == nil {
			continue // listed at rev, so not possible; skip it rather than fail
		}
		size += len(kv.Value)
		var rv recordValue
		if err := json.Unmarshal(kv.Value, &rv); err != nil {
			return ch, 0, fmt.Errorf("etcd: record %q: %w", k.id, err)
		}
		e := ents[k.id]
		if e == nil {
			e = &entry{}
			ents[k.id] = e
		}
		fields := rv
		fields.Tools = nil
		e.rec, e.createRev = &fields, kv.CreateRevision
		rec := e.record(k.id)
		if rec.Tools, err = tools(&rv, schemas); err != nil {
			s.log.Error("etcd: tool list skipped", "id", k.id, "err", err)
		}
		ch.Records = append(ch.Records, registry.RecordChange{Record: rec, Fields: true})
	}
	// Records stored with their own Seq may come out of create-revision
	// order: the page, at least, is in Seq order.
	slices.SortStableFunc(ch.Records, func(a, b registry.RecordChange) int { return cmp.Compare(a.Seq, b.Seq) })
	return ch, size, nil
}

// split returns the directory and id of one of the Store's keys.
func (s *Store) split(key []byte) (dir, id string, ok bool) {
	k, ok := strings.CutPrefix(string(key), s.prefix)
	if !ok || len(k) < 2 {
		return "", "", false
	}
	switch dir = k[:2]; dir {
	case recordDir, seenDir, liveDir, schemaDir:
		return dir, k[2:], true
	}
	return "", "", false
}

// apply sets the part of e that kv holds (deleted: kv was deleted). A record
// keeps its full value, tools included, in recs.
func (e *entry) apply(dir, id string, kv *mvccpb.KeyValue, deleted bool, recs map[string]*recordValue) error {
	switch dir {
	case recordDir:
		if deleted {
			e.rec = nil
			return nil
		}
		var rv recordValue
		if err := json.Unmarshal(kv.Value, &rv); err != nil {
			return fmt.Errorf("etcd: record %q: %w", id, err)
		}
		recs[id] = &rv
		fields := rv
		fields.Tools = nil
		e.rec, e.createRev = &fields, kv.CreateRevision
	case seenDir:
		if deleted {
			e.seen = seenValue{}
			return nil
		}
		var sv seenValue
		if err := json.Unmarshal(kv.Value, &sv); err != nil {
			return fmt.Errorf("etcd: seen %q: %w", id, err)
		}
		e.seen = sv
	case liveDir:
		e.lease = kv.Lease
		if deleted {
			e.lease = 0
		}
		e.kaAt = time.Time{}
	}
	return nil
}

// watchRetry is the pause before a lost watch is opened again.
const watchRetry = 500 * time.Millisecond

// Watch implements registry.Cluster.
func (s *Store) Watch(ctx context.Context, rev uint64, apply func(registry.Change)) error {
	for {
		next, err := s.watch(ctx, rev, apply)
		rev = max(rev, next)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.watchErr.Store(&err)
		s.log.Warn("etcd watch lost; resuming", "rev", rev, "err", err)
		if errors.Is(err, rpctypes.ErrCompacted) {
			snap, err := s.Snapshot(ctx, apply)
			if err == nil {
				rev = snap
				continue
			}
			s.log.Warn("etcd snapshot failed", "err", err)
		}
		if errors.Is(err, errStalled) {
			continue // at once: the stream, not etcd, is at fault
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(watchRetry):
		}
	}
}

// watch follows the changes after rev until the stream fails, and returns
// the last revision applied.
func (s *Store) watch(ctx context.Context, rev uint64, apply func(registry.Change)) (uint64, error) {
	// clientv3 shares one gRPC stream among watches with the same metadata:
	// a new attempt gets its own, so that it does not inherit a stuck one.
	attempt := strconv.FormatUint(s.attempts.Add(1), 10)
	wctx, cancel := context.WithCancel(metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "watch-attempt", attempt))
	defer cancel()
	wch := s.c.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(int64(rev)+1),
		clientv3.WithProgressNotify(), clientv3.WithCreatedNotify())
	tick := time.NewTicker(stallLimit / 4)
	defer tick.Stop()
	progress := time.Now()
	for {
		var resp clientv3.WatchResponse
		select {
		case r, ok := <-wch:
			if !ok {
				if err := ctx.Err(); err != nil {
					return rev, err
				}
				return rev, errors.New("etcd: watch closed")
			}
			resp = r
		case now := <-tick.C:
			// A watch whose member died may wait long for its connection
			// to be replaced, while writes wait for it: open a new one.
			if s.written.Load() <= rev {
				progress = now
			} else if now.Sub(progress) > stallLimit {
				return rev, errStalled
			}
			continue
		}
		progress = time.Now()
		s.saw(resp.Header.Revision)
		if resp.CompactRevision != 0 {
			return rev, rpctypes.ErrCompacted
		}
		if err := resp.Err(); err != nil {
			return rev, err
		}
		if resp.Created {
			s.watchErr.Store(nil)
			continue
		}
		if resp.IsProgressNotify() {
			if h := uint64(resp.Header.Revision); h > rev {
				rev = h
				apply(registry.Change{Rev: rev})
			}
			continue
		}
		evs := resp.Events
		for len(evs) > 0 {
			n := 1
			for n < len(evs) && evs[n].Kv.ModRevision == evs[0].Kv.ModRevision {
				n++
			}
			ch := s.change(evs[:n])
			evs = evs[n:]
			apply(ch)
			rev = ch.Rev
		}
	}
}

// stallLimit is how long a watch may go without news while this Store's
// own writes wait for it, before it is replaced.
const stallLimit = time.Second

var errStalled = errors.New("etcd: watch stalled behind this replica's writes")

// change applies the events of one revision to the Store's state and
// returns them as a registry.Change.
func (s *Store) change(evs []*clientv3.Event) registry.Change {
	ch := registry.Change{Rev: uint64(evs[0].Kv.ModRevision)}
	recs := make(map[string]*recordValue)
	var order []string
	touched := make(map[string]bool)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ev := range evs {
		dir, id, ok := s.split(ev.Kv.Key)
		if !ok {
			continue
		}
		deleted := ev.Type == mvccpb.DELETE
		if dir == schemaDir {
			if deleted {
				delete(s.schemas, id)
			} else {
				s.schemas[id] = ev.Kv.Value
			}
			continue
		}
		e := s.ents[id]
		if e == nil {
			if deleted {
				continue
			}
			e = &entry{}
			s.ents[id] = e
		}
		if err := e.apply(dir, id, ev.Kv, deleted, recs); err != nil {
			s.log.Error("etcd: bad value skipped", "key", string(ev.Kv.Key), "err", err)
			continue
		}
		if !touched[id] {
			touched[id] = true
			order = append(order, id)
		}
	}
	for _, id := range order {
		e := s.ents[id]
		if e.rec == nil {
			if e.lease == 0 && e.seen.LastSeen.IsZero() {
				delete(s.ents, id)
			}
			ch.Records = append(ch.Records, registry.RecordChange{Record: registry.Record{ID: id}, Deleted: true})
			continue
		}
		u := registry.RecordChange{Record: e.record(id)}
		if rv := recs[id]; rv != nil {
			tl, err := tools(rv, s.schemas)
			if err != nil {
				s.log.Error("etcd: tool list skipped", "id", id, "err", err)
			}
			u.Record.Tools, u.Fields = tl, true
		}
		ch.Records = append(ch.Records, u)
	}
	return ch
}

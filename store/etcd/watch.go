// watch.go reads the registry's keys back: Load and Snapshot list them at
// one revision, and Watch follows their changes from there.

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

// pageSize is how many keys one range request of a snapshot reads.
const pageSize = 2000

// Snapshot implements registry.Cluster. It reads every key under the prefix
// at one revision, page by page, and makes that the Store's state.
func (s *Store) Snapshot(ctx context.Context) (registry.Change, error) {
	ents := make(map[string]*entry)
	recs := make(map[string]*recordValue)
	schemas := make(map[string][]byte)
	rev, err := s.scan(ctx, s.prefix, 0, false, func(kv *mvccpb.KeyValue) error {
		return s.load(kv, ents, recs, schemas)
	})
	if err != nil {
		return registry.Change{}, err
	}
	ch := registry.Change{Rev: uint64(rev), Reset: true}
	for id, e := range ents {
		if e.rec == nil {
			continue // a seen or live key without its record
		}
		rec := e.record(id)
		var err error
		if rec.Tools, err = tools(recs[id], schemas); err != nil {
			s.log.Error("etcd: tool list skipped", "id", id, "err", err)
		}
		delete(recs, id) // its tool references are not needed any more
		ch.Records = append(ch.Records, registry.RecordChange{Record: rec, Fields: true})
	}
	slices.SortFunc(ch.Records, func(a, b registry.RecordChange) int { return cmp.Compare(a.Seq, b.Seq) })
	s.mu.Lock()
	s.ents, s.schemas = ents, schemas
	s.mu.Unlock()
	return ch, nil
}

// load adds one listed key to a snapshot's state.
func (s *Store) load(kv *mvccpb.KeyValue, ents map[string]*entry, recs map[string]*recordValue, schemas map[string][]byte) error {
	dir, id, ok := s.split(kv.Key)
	if !ok {
		return nil // not ours (e.g. the probe's key)
	}
	if dir == schemaDir {
		schemas[id] = kv.Value
		return nil
	}
	e := ents[id]
	if e == nil {
		e = &entry{}
		ents[id] = e
	}
	return e.apply(dir, id, kv, false, recs)
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
			snap, err := s.Snapshot(ctx)
			if err == nil {
				apply(snap)
				rev = snap.Rev
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

// gc.go collects tool schemas that no record refers to any more (agents
// whose tools changed, records deleted after their retention), so that etcd
// does not grow with every tool version ever posted.

package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// DefaultSchemaGCInterval is how often a Store collects unused schemas
// when Config.SchemaGCInterval is zero.
const DefaultSchemaGCInterval = time.Hour

func (s *Store) gcLoop(ctx context.Context, every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	var unused map[string]int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			next, err := s.collectSchemas(ctx, unused)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("etcd: schema collection failed", "err", err)
				}
				continue
			}
			unused = next
		}
	}
}

// collectSchemas deletes the schemas that no record refers to now and that
// no record referred to at the previous collection either (prev: unused
// schemas then, with their revisions), unchanged since: a writer that has
// just stored a schema has a whole period to store the record using it. A
// deletion happens only if no record was written since the scan, and a
// record's transaction checks that its schemas exist (up to 100 of them),
// so a record written meanwhile keeps its schemas. It returns the unused
// schemas, for the next collection.
func (s *Store) collectSchemas(ctx context.Context, prev map[string]int64) (map[string]int64, error) {
	used := make(map[string]bool)
	rev, err := s.scan(ctx, s.prefix+recordDir, 0, false, func(kv *mvccpb.KeyValue) error {
		var rv recordValue
		if err := json.Unmarshal(kv.Value, &rv); err != nil {
			return fmt.Errorf("record %s: %w", kv.Key, err)
		}
		for _, t := range rv.Tools {
			used[t.Schema] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	unused := make(map[string]int64)
	if _, err := s.scan(ctx, s.prefix+schemaDir, rev, true, func(kv *mvccpb.KeyValue) error {
		if h := string(kv.Key[len(s.prefix+schemaDir):]); !used[h] {
			unused[h] = kv.ModRevision
		}
		return nil
	}); err != nil {
		return nil, err
	}
	// Delete in batches, each only if no record was written since the
	// scan (one that did may use a schema believed unused) and the schemas
	// are unchanged. If a record was, the next collection tries again.
	var batch []string
	deleted := 0
	flush := func() (bool, error) {
		cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.prefix+recordDir), "<", rev+1).WithPrefix()}
		var ops []clientv3.Op
		for _, h := range batch {
			key := s.key(schemaDir, h)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", unused[h]))
			ops = append(ops, clientv3.OpDelete(key))
		}
		resp, err := s.txn(ctx, cmps, ops...)
		if err != nil || !resp.Succeeded {
			return false, err
		}
		for _, h := range batch {
			delete(unused, h)
		}
		deleted += len(batch)
		batch = batch[:0]
		return true, nil
	}
	for h, mr := range unused {
		if prev[h] != mr {
			continue
		}
		batch = append(batch, h)
		if len(batch) == gcBatch {
			if ok, err := flush(); !ok {
				return unused, err
			}
		}
	}
	if len(batch) > 0 {
		if _, err := flush(); err != nil {
			return unused, err
		}
	}
	if deleted > 0 {
		s.log.Info("etcd: unused tool schemas deleted", "count", deleted)
	}
	return unused, nil
}

// gcBatch is how many schemas one deletion covers (with their compares and
// the records' one, within etcd's 128).
const gcBatch = 100

// scan calls fn for every key under prefix at revision rev (0: the current
// one), page by page, and returns the revision it read at.
func (s *Store) scan(ctx context.Context, prefix string, rev int64, keysOnly bool, fn func(*mvccpb.KeyValue) error) (int64, error) {
	end := clientv3.GetPrefixRangeEnd(prefix)
	key := prefix
	for {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(pageSize)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		if keysOnly {
			opts = append(opts, clientv3.WithKeysOnly())
		}
		gctx, cancel := s.ctx(ctx)
		resp, err := s.c.Get(gctx, key, opts...)
		cancel()
		if err != nil {
			return 0, fmt.Errorf("etcd: list %s: %w", prefix, err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if err := fn(kv); err != nil {
				return 0, err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		key = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

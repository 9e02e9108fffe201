// Package etcd is a registry.Cluster on etcd: several registries (replicas)
// share one fleet through an etcd cluster, each answering reads from its own
// memory, fed by an etcd watch.
//
// Liveness lives in etcd leases: each active instance has a key attached to
// a lease of 3 x its heartbeat interval (whole seconds, at least 2 s). A
// heartbeat on any replica is a lease keep-alive, not a write; when an agent
// stops, etcd expires the lease, deletes the key, and every replica sees the
// deletion and marks the instance inactive. Each replica writes the
// last_seen (and system) of the instances heartbeated through it in one
// batch per checkpoint, so another replica may show a last_seen older by up
// to the registry's CheckpointInterval; active itself is exact everywhere.
//
// The registry never writes per heartbeat, but etcd keeps every revision
// until it is compacted: run etcd with auto-compaction (for example
// --auto-compaction-mode=periodic --auto-compaction-retention=1h).
//
// Tested against etcd 3.7 (in-process, go.etcd.io/etcd/server/v3/embed) and
// Debian's etcd-server 3.4.
package etcd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/runspec/registry"
)

// DefaultPrefix is the key prefix used when Config.Prefix is empty.
const DefaultPrefix = "/runspec-registry/"

// etcd's default limits: 128 operations per transaction and 1.5 MiB per
// request. Batches stay well within both.
const (
	maxOps        = 120
	maxBatchBytes = 1 << 20
	// maxRecordBytes bounds one record key: a longer tool list is refused.
	maxRecordBytes = 1400 << 10
)

// Config configures Open.
type Config struct {
	// Endpoints are the etcd client URLs, e.g. http://127.0.0.1:2379.
	Endpoints []string
	// Prefix is the key prefix of this registry's keys. If empty,
	// DefaultPrefix. Replicas of one registry use the same prefix.
	Prefix string
	// TLS, if not nil, is used to connect to etcd.
	TLS *tls.Config
	// Username and Password, if Username is not empty, authenticate.
	Username, Password string
	// DialTimeout bounds Open's first connection. If zero, 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds each call to etcd. If zero, 5 s.
	RequestTimeout time.Duration
	// KeepAliveWindow: heartbeats of one instance closer together than this
	// share one lease keep-alive, so the lease may end up to this much
	// earlier than 3 intervals after the last heartbeat. If zero, a tenth
	// of the lease's TTL, at most 1 s; if negative, every heartbeat sends
	// its own keep-alive.
	KeepAliveWindow time.Duration
	// SchemaGCInterval is how often the Store deletes the tool schemas that
	// no record has used for that long. If zero, DefaultSchemaGCInterval;
	// if negative, never.
	SchemaGCInterval time.Duration
	// Logger receives the Store's warnings. If nil, nothing is logged.
	Logger *slog.Logger
}

// Store is a registry.Cluster on etcd. Open one, pass it as
// registry.Options.Store, run the Registry's Run, and Close it after Run
// returns.
type Store struct {
	c       *clientv3.Client
	prefix  string
	timeout time.Duration
	window  time.Duration // Config.KeepAliveWindow
	log     *slog.Logger
	written atomic.Uint64
	head    atomic.Uint64 // the newest revision an answer of etcd's carried (HeadRevision)
	ka      keepAlives
	bgMu    sync.Mutex
	closed  bool           // guarded by bgMu: no more revocations
	bg      sync.WaitGroup // lease revocations in flight
	// attempts counts watch streams opened.
	attempts atomic.Uint64

	mu      sync.Mutex
	ents    map[string]*entry // as of the change stream
	schemas map[string][]byte // by hash: seen in the stream or written here

	watchErr atomic.Pointer[error] // why the watch is not current, if it is not
	probeErr atomic.Pointer[error] // the last probe's failure, if it failed
	stop     context.CancelFunc
	wg       sync.WaitGroup // the probe and the schema collector
}

var (
	_ registry.Cluster     = (*Store)(nil)
	_ registry.ClusterHead = (*Store)(nil)
)

// A connection to a member silent for keepAliveTime is pinged, and closed
// if the ping is not answered within keepAliveTimeout: requests and
// watches move to the other members. 10 s is gRPC's shortest ping interval
// (etcd itself refuses pings more often than every 5 s).
const (
	keepAliveTime    = 10 * time.Second
	keepAliveTimeout = 2 * time.Second
)

// Open connects to etcd and checks that it answers.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Endpoints) == 0 {
		return nil, errors.New("etcd: no endpoints")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(cfg.Prefix, "/") {
		cfg.Prefix += "/"
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 5 * time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   cfg.Endpoints,
		DialTimeout: cfg.DialTimeout,
		// A member that hangs (paused, frozen) keeps its connections open:
		// without pings the client went on sending it requests, which
		// timed out, and writes failed for as long as it hung.
		DialKeepAliveTime:    keepAliveTime,
		DialKeepAliveTimeout: keepAliveTimeout,
		TLS:                  cfg.TLS,
		Username:             cfg.Username,
		Password:             cfg.Password,
		Logger:               zap.NewNop(),
		Context:              ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd: connect to %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	s := &Store{c: c, prefix: cfg.Prefix, timeout: cfg.RequestTimeout, window: cfg.KeepAliveWindow, log: cfg.Logger,
		ents: make(map[string]*entry), schemas: make(map[string][]byte)}
	s.ka.c, s.ka.saw = c, s.saw
	if err := s.probe(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd: %s: %w", strings.Join(cfg.Endpoints, ","), err)
	}
	pctx, stop := context.WithCancel(context.Background())
	s.stop = stop
	s.wg.Add(1)
	go s.probeLoop(pctx)
	if cfg.SchemaGCInterval == 0 {
		cfg.SchemaGCInterval = DefaultSchemaGCInterval
	}
	if cfg.SchemaGCInterval > 0 {
		s.wg.Add(1)
		go s.gcLoop(pctx, cfg.SchemaGCInterval)
	}
	return s, nil
}

// Close stops the Store and closes its connection. It leaves the leases:
// the instances stay active while other replicas keep them alive.
func (s *Store) Close() error {
	s.stop()
	s.wg.Wait()
	s.ka.close()
	s.bgMu.Lock()
	s.closed = true
	s.bgMu.Unlock()
	s.bg.Wait()
	return s.c.Close()
}

// probeInterval is how often a Store checks that etcd answers: Err follows
// an outage and a recovery within about this much plus RequestTimeout.
const probeInterval = time.Second

func (s *Store) probeLoop(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.probe(ctx); err != nil && ctx.Err() == nil {
				s.probeErr.Store(&err)
			} else {
				s.probeErr.Store(nil)
			}
		}
	}
}

// probe makes a linearizable read, which needs a quorum.
func (s *Store) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, min(s.timeout, 2*probeInterval))
	defer cancel()
	_, err := s.c.Get(ctx, s.prefix+"health", clientv3.WithCountOnly())
	if err != nil {
		return fmt.Errorf("etcd does not answer: %w", err)
	}
	return nil
}

// Err implements registry.Cluster.
func (s *Store) Err() error {
	if p := s.probeErr.Load(); p != nil {
		return *p
	}
	if p := s.watchErr.Load(); p != nil {
		return *p
	}
	return nil
}

// saw notes the revision an answer of etcd's carried in its header.
func (s *Store) saw(rev int64) {
	for {
		old := s.head.Load()
		if uint64(rev) <= old || s.head.CompareAndSwap(old, uint64(rev)) {
			return
		}
	}
}

// HeadRevision is the newest etcd revision this Store has heard of: the
// headers of its transactions, keep-alives and watch answers. A replica
// whose view has applied less is that far behind (registry.ClusterLag);
// while heartbeats pass through it, a stalled watch shows as a growing
// lag.
func (s *Store) HeadRevision() uint64 { return s.head.Load() }

func (s *Store) wrote(rev int64) {
	for {
		old := s.written.Load()
		if uint64(rev) <= old || s.written.CompareAndSwap(old, uint64(rev)) {
			return
		}
	}
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

func (s *Store) key(dir, id string) string { return s.prefix + dir + id }

// ttl is the lease of an instance with heartbeat interval d: 3 x d in whole
// seconds, at least 2 (etcd's own minimum is about that).
func ttl(d time.Duration) int64 {
	return max(2, int64(math.Ceil((3 * d).Seconds())))
}

func (s *Store) grant(ctx context.Context, interval time.Duration) (clientv3.LeaseID, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.c.Grant(ctx, ttl(interval))
	if err != nil {
		return 0, fmt.Errorf("etcd: grant lease: %w", err)
	}
	return resp.ID, nil
}

// txn commits one transaction and, if it changed a key, records its
// revision: the watch delivers it, and the write's caller waits for that.
// (A revision that changed nothing may belong to another prefix, and never
// come: see rev.)
func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (*clientv3.TxnResponse, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	s.saw(resp.Header.GetRevision())
	if resp.Succeeded && changed(ops, resp) {
		s.wrote(resp.Header.Revision)
	}
	return resp, nil
}

// rev is the revision that a transaction committed, or 0 if it changed no
// key (nothing for the watch to deliver).
func rev(ops []clientv3.Op, resp *clientv3.TxnResponse) uint64 {
	if resp == nil || !resp.Succeeded || !changed(ops, resp) {
		return 0
	}
	return uint64(resp.Header.Revision)
}

// changed reports whether a transaction that succeeded changed a key.
func changed(ops []clientv3.Op, resp *clientv3.TxnResponse) bool {
	for i, op := range ops {
		switch {
		case op.IsPut():
			return true
		case op.IsDelete():
			if resp.Responses[i].GetResponseDeleteRange().GetDeleted() > 0 {
				return true
			}
		}
	}
	return false
}

// Register implements registry.Cluster: it replaces the record, its seen
// key and its liveness (a new lease if rec is active), keeping a stored
// record's owner, with a compare-and-swap on the record so that the guard
// holds.
func (s *Store) Register(ctx context.Context, rec registry.Record, guard string) (uint64, error) {
	rk := s.key(recordDir, rec.ID)
	var lease clientv3.LeaseID // granted once, for every try
	for {
		kv, err := s.get(ctx, rk)
		if err != nil {
			return 0, s.unused(lease, err)
		}
		cmp := clientv3.Compare(clientv3.CreateRevision(rk), "=", 0)
		if kv != nil {
			var cur recordValue
			if err := json.Unmarshal(kv.Value, &cur); err != nil {
				return 0, s.unused(lease, fmt.Errorf("etcd: record %q: %w", rec.ID, err))
			}
			if err := guarded(rec.ID, cur.Owner, guard); err != nil {
				return 0, s.unused(lease, err)
			}
			rec.Owner = cur.Owner
			cmp = clientv3.Compare(clientv3.ModRevision(rk), "=", kv.ModRevision)
		}
		val, schemas, err := encodeRecord(rec)
		if err != nil {
			return 0, s.unused(lease, err)
		}
		if len(val) > maxRecordBytes {
			return 0, s.unused(lease, fmt.Errorf("etcd: the record of %q is %d bytes, more than the %d an etcd request takes", rec.ID, len(val), maxRecordBytes))
		}
		sv := seenValue{LastSeen: rec.LastSeen, System: rec.System}
		if !rec.Active {
			sv.setInactive(rec.InactiveSince)
		}
		if rec.System != nil && !rec.SystemAt.IsZero() {
			sv.SystemAt = &rec.SystemAt
		}
		ops := []clientv3.Op{
			clientv3.OpGet(s.key(liveDir, rec.ID)), // its old lease, to revoke
			clientv3.OpPut(rk, string(val)),
			clientv3.OpPut(s.key(seenDir, rec.ID), string(encodeSeen(sv))),
		}
		if rec.Active {
			if lease == 0 {
				if lease, err = s.grant(ctx, rec.HeartbeatInterval); err != nil {
					return 0, err
				}
			}
			ops = append(ops, clientv3.OpPut(s.key(liveDir, rec.ID), "", clientv3.WithLease(lease)))
		} else {
			ops = append(ops, clientv3.OpDelete(s.key(liveDir, rec.ID)))
		}
		resp, err := s.txnWithSchemas(ctx, schemas, []clientv3.Cmp{cmp}, ops)
		if err != nil {
			// The write may have happened (a timeout after the commit): the
			// lease may be in use, and is left to expire if it is not.
			return 0, err
		}
		if !resp.Succeeded {
			continue // registered or changed meanwhile: look again
		}
		if old := first(resp, 0); old != nil && old.Lease != 0 {
			s.revoke(clientv3.LeaseID(old.Lease))
		}
		return rev(ops, resp), nil
	}
}

// unused revokes a lease that a write granted and then did not make, and
// returns err.
func (s *Store) unused(lease clientv3.LeaseID, err error) error {
	if lease != 0 {
		s.revoke(lease)
	}
	return err
}

// guarded is the error of a write to the record of id, owned by owner, that
// guard does not allow (see registry.Cluster), or nil.
func guarded(id, owner, guard string) error {
	if owner == "" {
		owner = registry.APIKeyIdentity
	}
	if guard != "" && guard != owner {
		return fmt.Errorf("etcd: instance %q: %w", id, registry.ErrForbidden)
	}
	return nil
}

// maxSchemaCompares is how many schemas a record's transaction checks to
// exist (etcd takes 128 compares at most).
const maxSchemaCompares = 100

// txnWithSchemas stores the schemas a record refers to, then commits the
// record's transaction (cmps, ops), checking that those schemas still
// exist: the schema collector may have deleted one this Store believed
// stored. It returns the last try's response, and an error if the
// transaction did not succeed.
func (s *Store) txnWithSchemas(ctx context.Context, schemas map[string][]byte, cmps []clientv3.Cmp, ops []clientv3.Op) (*clientv3.TxnResponse, error) {
	for try := 0; ; try++ {
		if err := s.putSchemas(ctx, schemas); err != nil {
			return nil, err
		}
		all := cmps
		if len(schemas) <= maxSchemaCompares {
			all = slices.Clone(cmps)
			for h := range schemas {
				all = append(all, clientv3.Compare(clientv3.CreateRevision(s.key(schemaDir, h)), ">", 0))
			}
		}
		resp, err := s.txn(ctx, all, ops...)
		if err != nil || resp.Succeeded {
			return resp, err
		}
		if try == 3 {
			return resp, errors.New("etcd: the transaction kept failing its checks")
		}
		// A schema was collected, or (with cmps) another write won:
		// write the schemas again, and let the caller retry its own.
		s.mu.Lock()
		for h := range schemas {
			delete(s.schemas, h)
		}
		s.mu.Unlock()
		if len(cmps) > 0 {
			return resp, nil
		}
	}
}

// putSchemas stores the schemas this Store does not know to be stored.
// Schemas are immutable (keyed by their hash), so they go before the record
// that refers to them, in as many transactions as etcd's limits need.
func (s *Store) putSchemas(ctx context.Context, all map[string][]byte) error {
	schemas := make(map[string][]byte)
	s.mu.Lock()
	for h, b := range all {
		if _, ok := s.schemas[h]; !ok {
			schemas[h] = b
		}
	}
	s.mu.Unlock()
	var ops []clientv3.Op
	size := 0
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		_, err := s.txn(ctx, nil, ops...)
		ops, size = ops[:0], 0
		return err
	}
	for h, b := range schemas {
		if len(ops) == maxOps || size+len(b) > maxBatchBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		ops = append(ops, clientv3.OpPut(s.key(schemaDir, h), string(b)))
		size += len(b) + len(h) + len(s.prefix) + 16
	}
	if err := flush(); err != nil {
		return err
	}
	s.mu.Lock()
	for h, b := range schemas {
		s.schemas[h] = b
	}
	s.mu.Unlock()
	return nil
}

// SetTools implements registry.Cluster.
func (s *Store) SetTools(ctx context.Context, id, guard string, tools []json.RawMessage) (uint64, error) {
	var rv recordValue
	schemas, err := splitTools(tools, &rv)
	if err != nil {
		return 0, err
	}
	key := s.key(recordDir, id)
	for {
		kv, err := s.get(ctx, key)
		if err != nil {
			return 0, err
		}
		if kv == nil {
			return 0, fmt.Errorf("etcd: instance %q: %w", id, registry.ErrNotFound)
		}
		var cur recordValue
		if err := json.Unmarshal(kv.Value, &cur); err != nil {
			return 0, fmt.Errorf("etcd: record %q: %w", id, err)
		}
		if err := guarded(id, cur.Owner, guard); err != nil {
			return 0, err
		}
		cur.Tools = rv.Tools
		val, err := json.Marshal(cur)
		if err != nil {
			return 0, err
		}
		if len(val) > maxRecordBytes {
			return 0, fmt.Errorf("etcd: the record of %q is %d bytes, more than the %d an etcd request takes", id, len(val), maxRecordBytes)
		}
		ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
		resp, err := s.txnWithSchemas(ctx, schemas, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)}, ops)
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return rev(ops, resp), nil
		}
		// Re-registered meanwhile: post the list to the new registration.
	}
}

func (s *Store) get(ctx context.Context, key string) (*mvccpb.KeyValue, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("etcd: %w", err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0], nil
}

// Deactivate implements registry.Cluster: it deletes the liveness key (and
// revokes its lease, so that keep-alives fail at once everywhere). Without
// a liveness key the instance is already inactive, and its inactive_since
// (none if its lease ended) stays.
func (s *Store) Deactivate(ctx context.Context, id, guard string, lastSeen, at time.Time) (uint64, error) {
	return s.setState(ctx, registry.State{ID: id, LastSeen: lastSeen, InactiveSince: at}, guard)
}

// Activate implements registry.Cluster: it grants a new lease unless the
// liveness key exists.
func (s *Store) Activate(ctx context.Context, id, guard string, lastSeen time.Time) (uint64, error) {
	return s.setState(ctx, registry.State{ID: id, Active: true, LastSeen: lastSeen}, guard)
}

// setState writes the liveness of st.ID and returns the revision it
// committed (0: not stored).
func (s *Store) setState(ctx context.Context, st registry.State, guard string) (uint64, error) {
	rk, sk, lk := s.key(recordDir, st.ID), s.key(seenDir, st.ID), s.key(liveDir, st.ID)
	// A lease granted for a try that lost its race serves the next try;
	// one left unused at the end is revoked.
	var granted clientv3.LeaseID
	var grantedFor time.Duration
	defer func() {
		if granted != 0 {
			s.revoke(granted)
		}
	}()
	for {
		resp, err := s.txn(ctx, nil, clientv3.OpGet(rk), clientv3.OpGet(sk), clientv3.OpGet(lk))
		if err != nil {
			return 0, err
		}
		rkv, skv, lkv := first(resp, 0), first(resp, 1), first(resp, 2)
		if rkv == nil {
			return 0, nil // not stored: skipped
		}
		var rv recordValue
		if err := json.Unmarshal(rkv.Value, &rv); err != nil {
			return 0, fmt.Errorf("etcd: record %q: %w", st.ID, err)
		}
		if err := guarded(st.ID, rv.Owner, guard); err != nil {
			return 0, err
		}
		var sv seenValue
		if skv != nil {
			if err := json.Unmarshal(skv.Value, &sv); err != nil {
				return 0, fmt.Errorf("etcd: seen %q: %w", st.ID, err)
			}
		}
		if st.LastSeen.After(sv.LastSeen) {
			sv.LastSeen = st.LastSeen
		}
		switch {
		case st.Active:
			sv.setInactive(time.Time{})
		case lkv != nil:
			sv.setInactive(st.InactiveSince)
		}
		// else: already inactive, it keeps when it went inactive.
		ops := []clientv3.Op{clientv3.OpPut(sk, string(encodeSeen(sv)))}
		switch {
		case st.Active && lkv == nil:
			if granted != 0 && grantedFor != rv.Interval {
				s.revoke(granted)
				granted = 0
			}
			if granted == 0 {
				if granted, err = s.grant(ctx, rv.Interval); err != nil {
					return 0, err
				}
				grantedFor = rv.Interval
			}
			ops = append(ops, clientv3.OpPut(lk, "", clientv3.WithLease(granted)))
		case !st.Active && lkv != nil:
			ops = append(ops, clientv3.OpDelete(lk))
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(rk), "=", rkv.ModRevision),
			clientv3.Compare(clientv3.ModRevision(sk), "=", modRev(skv)),
			clientv3.Compare(clientv3.ModRevision(lk), "=", modRev(lkv)),
		}
		if resp, err = s.txn(ctx, cmps, ops...); err != nil {
			// The write may have happened: the lease may be in use.
			granted = 0
			return 0, err
		}
		if !resp.Succeeded {
			continue
		}
		switch {
		case st.Active && lkv == nil:
			granted = 0 // in use
		case !st.Active && lkv != nil:
			// Its keep-alives must fail at once, also on a replica whose
			// view has not yet seen the deregistration.
			s.revoke(clientv3.LeaseID(lkv.Lease))
		}
		return rev(ops, resp), nil
	}
}

// revoke ends a lease that no key needs any more, in the background: a
// failure only leaves it to expire at its TTL.
func (s *Store) revoke(lease clientv3.LeaseID) {
	s.bgMu.Lock()
	defer s.bgMu.Unlock()
	if s.closed {
		return // it expires at its TTL
	}
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := s.ctx(context.Background())
		defer cancel()
		s.c.Revoke(ctx, lease)
	}()
}

func first(resp *clientv3.TxnResponse, i int) *mvccpb.KeyValue {
	if kvs := resp.Responses[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
		return kvs[0]
	}
	return nil
}

func modRev(kv *mvccpb.KeyValue) int64 {
	if kv == nil {
		return 0
	}
	return kv.ModRevision
}

// touchBatch is how many ids one Touch transaction covers (two compares
// and one put each would exceed maxOps beyond that).
const touchBatch = maxOps / 2

// Touch implements registry.Store: a read and a conditional write per batch
// of ids, retried while another replica writes the same keys.
func (s *Store) Touch(ctx context.Context, seen []registry.Seen) error {
	for len(seen) > 0 {
		n := min(len(seen), touchBatch) // touch halves a batch whose values are too big
		if err := s.touch(ctx, seen[:n]); err != nil {
			return err
		}
		seen = seen[n:]
	}
	return nil
}

func (s *Store) touch(ctx context.Context, seen []registry.Seen) error {
	seen = mergeSeen(seen)
	for {
		gets := make([]clientv3.Op, len(seen))
		for i, sn := range seen {
			gets[i] = clientv3.OpGet(s.key(seenDir, sn.ID))
		}
		resp, err := s.txn(ctx, nil, gets...)
		if err != nil {
			return err
		}
		var cmps []clientv3.Cmp
		var puts []clientv3.Op
		size := 0
		for i, sn := range seen {
			kv := first(resp, i)
			if kv == nil {
				continue // not stored (the seen key goes with the record)
			}
			var sv seenValue
			if err := json.Unmarshal(kv.Value, &sv); err != nil {
				return fmt.Errorf("etcd: seen %q: %w", sn.ID, err)
			}
			changed := false
			if sn.LastSeen.After(sv.LastSeen) {
				sv.LastSeen, changed = sn.LastSeen, true
			}
			// A system with its time replaces the stored one only if a
			// later heartbeat sent it: another replica may have written a
			// newer one. One without replaces it (Store's contract).
			if at := sn.SystemAt; sn.System != nil && (at.IsZero() || sv.System == nil || at.After(sv.systemAt())) &&
				!bytes.Equal(sn.System, sv.System) {
				sv.System, sv.SystemAt, changed = sn.System, nil, true
				if !at.IsZero() {
					sv.SystemAt = &at
				}
			}
			if !changed {
				continue
			}
			key := s.key(seenDir, sn.ID)
			val := encodeSeen(sv)
			size += len(key) + len(val)
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision))
			puts = append(puts, clientv3.OpPut(key, string(val)))
		}
		if len(puts) == 0 {
			return nil
		}
		if size > maxBatchBytes && len(seen) > 1 {
			// The stored values (large systems) make the batch too big
			// for one request: halve it.
			if err := s.touch(ctx, seen[:len(seen)/2]); err != nil {
				return err
			}
			return s.touch(ctx, seen[len(seen)/2:])
		}
		if resp, err = s.txn(ctx, cmps, puts...); err != nil || resp.Succeeded {
			return err
		}
	}
}

// mergeSeen folds the heartbeats of one id into one (etcd refuses a
// transaction that writes a key twice): the latest time, the last system.
func mergeSeen(seen []registry.Seen) []registry.Seen {
	at := make(map[string]int, len(seen))
	out := make([]registry.Seen, 0, len(seen))
	for _, sn := range seen {
		i, ok := at[sn.ID]
		if !ok {
			at[sn.ID] = len(out)
			out = append(out, sn)
			continue
		}
		if sn.LastSeen.After(out[i].LastSeen) {
			out[i].LastSeen = sn.LastSeen
		}
		if sn.System != nil {
			out[i].System = sn.System
		}
	}
	return out
}

// Delete implements registry.Cluster.
func (s *Store) Delete(ctx context.Context, ids []string) (uint64, error) {
	var last uint64
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for len(ids) > 0 {
		n := min(len(ids), maxOps/3)
		var ops []clientv3.Op
		for _, id := range ids[:n] {
			for _, dir := range []string{recordDir, seenDir, liveDir} {
				ops = append(ops, clientv3.OpDelete(s.key(dir, id)))
			}
		}
		resp, err := s.txn(ctx, nil, ops...)
		if err != nil {
			return last, err
		}
		last = max(last, rev(ops, resp))
		ids = ids[n:]
	}
	return last, nil
}

// DeleteInactive implements registry.Cluster: each record goes only if its
// liveness key is absent, so a replica that has not yet seen a revival
// cannot delete a live instance.
func (s *Store) DeleteInactive(ctx context.Context, ids []string) (uint64, error) {
	var last uint64
	for _, id := range ids {
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.CreateRevision(s.key(liveDir, id)), "=", 0),
			clientv3.Compare(clientv3.CreateRevision(s.key(recordDir, id)), ">", 0),
		}
		ops := []clientv3.Op{clientv3.OpDelete(s.key(recordDir, id)), clientv3.OpDelete(s.key(seenDir, id))}
		resp, err := s.txn(ctx, cmps, ops...)
		if err != nil {
			return last, err
		}
		last = max(last, rev(ops, resp))
	}
	return last, nil
}

// KeepAlive implements registry.Cluster. Heartbeats of one instance that
// come closer together than Config.KeepAliveWindow share one keep-alive.
func (s *Store) KeepAlive(ctx context.Context, id string) (bool, error) {
	now := time.Now()
	s.mu.Lock()
	e := s.ents[id]
	if e == nil || e.lease == 0 {
		s.mu.Unlock()
		return false, nil
	}
	lease, window := e.lease, s.coalesceWindow(e)
	if now.Sub(e.kaAt) < window {
		s.mu.Unlock()
		return true, nil
	}
	s.mu.Unlock()
	kctx, cancel := context.WithTimeoutCause(ctx, s.timeout, errKeepAliveTimeout)
	defer cancel()
	left, err := s.ka.keepAlive(kctx, lease)
	if errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("etcd: keep-alive: %w", err)
	}
	if left <= 0 {
		return false, nil
	}
	s.mu.Lock()
	if e := s.ents[id]; e != nil && e.lease == lease {
		e.kaAt = now
	}
	s.mu.Unlock()
	return true, nil
}

// coalesceWindow is Config.KeepAliveWindow, by default a tenth of the
// lease's TTL, at most a second: the lease may end that much earlier after a
// burst of heartbeats, never later.
func (s *Store) coalesceWindow(e *entry) time.Duration {
	if s.window != 0 || e.rec == nil {
		return s.window
	}
	return min(time.Second, time.Duration(ttl(e.rec.Interval))*time.Second/10)
}

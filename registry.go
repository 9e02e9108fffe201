// registry.go defines Registry, its Options, its errors and the write methods of
// the protocol: Register, Heartbeat, UpdateTools and Deregister.

package registry

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNotFound reports an unknown instance or tool. Test for it, and for the
// other errors of Registry methods (ErrInvalid, ErrUnavailable), with
// errors.Is.
var ErrNotFound = errors.New("registry: not found")

// Defaults used by New for zero Options fields.
const (
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultRetainInactive     = 72 * time.Hour
	DefaultPurgeInterval      = 60 * time.Second
	DefaultCheckpointInterval = 5 * time.Second
	DefaultMaxTools           = 10000
	DefaultMaxBodyBytes       = 1 << 20
)

// ttlFactor is how many heartbeat intervals an instance may miss before it is
// inactive: it is active while now - last_seen <= ttlFactor x interval.
const ttlFactor = 3

// Options configures a Registry. The zero value is a usable in-memory registry
// with the protocol's defaults, no API key and no rate limits.
type Options struct {
	// Store keeps records beyond this process (a file, a cluster).
	// If nil, records live only in the registry's memory. If it is a
	// Cluster, the registry runs in cluster mode (see Cluster), and Run must
	// be running for writes to complete.
	Store Store

	// HeartbeatInterval is the interval assumed for agents that do not send
	// heartbeat_interval when they register. If zero, defaults to 30s.
	HeartbeatInterval time.Duration

	// RetainInactive is how long an inactive record is kept before it is
	// deleted. If zero, defaults to 72h; if negative, records are kept forever.
	RetainInactive time.Duration

	// PurgeInterval is the period of Run's backstop sweep. Expiry itself is
	// driven by a timer at the next deadline, so this only bounds how late
	// Run notices a wall-clock jump. If zero, defaults to 60s.
	PurgeInterval time.Duration

	// CheckpointInterval is how often Run writes heartbeat times (last_seen,
	// system) to the Store, which does not get a write per heartbeat.
	// If zero, defaults to 5s. Unused without a Store.
	CheckpointInterval time.Duration

	// MaxTools is the most tools one instance may post. If zero, defaults to 10,000.
	MaxTools int

	// MaxBodyBytes is the largest request body the handler reads; larger
	// bodies get 413. If zero, defaults to 1 MiB.
	MaxBodyBytes int64

	// APIKey, if not empty, must be sent as X-API-Key on write requests.
	APIKey string

	// RateLimitWrite is the number of register, tools and delete requests a
	// client address may make per minute on each of those routes (a token
	// bucket with a burst of the same size). If zero, there is no limit.
	RateLimitWrite int

	// RateLimitHeartbeat is the same for heartbeats. If zero, there is no limit.
	RateLimitHeartbeat int

	// TrustedProxies are the addresses whose X-Forwarded-For header names the
	// client for rate limiting. If empty, the connection's address is used.
	TrustedProxies []netip.Prefix

	// Now returns the current time. If nil, defaults to time.Now.
	Now func() time.Time

	// Logger receives a line per write request and per error at info level,
	// and per read and heartbeat at debug level. If nil, nothing is logged.
	Logger *slog.Logger
}

// A Registry keeps the instances of a fleet of runspec agents, their tools and
// their liveness, and answers the protocol through its Handler. Create one with
// New; its methods are safe for concurrent use.
type Registry struct {
	opts    Options
	now     func() time.Time
	base    time.Time // origin of the int64 clock offsets kept in instances
	store   Store
	log     *slog.Logger
	seed    maphash.Seed
	shards  [numShards]shard
	nextSeq atomic.Uint64 // registration order of new ids
	wake    chan struct{} // tells Run that an earlier deadline exists
	handler http.Handler
	logOn   bool // a Logger was given: the handler logs requests
	keyHash [sha256.Size]byte
	limiter *limiter
	cpMu    sync.Mutex // serializes checkpoints
	epoch   string     // tells ETags of this start from those of others
	beats   atomic.Uint64

	cache answerCache // encoded GET /tools/{name} answers

	cluster Cluster // the Store, if it is a Cluster (cluster mode)
	applied applied // the Cluster revision the view shows

	mu sync.RWMutex // guards v; never held across I/O
	v  view
}

const numShards = 64

// A shard maps ids to instances for the lock-light heartbeat path, and
// serializes the persistent writes for its ids.
type shard struct {
	wmu sync.Mutex   // held across a write's Store call and its view update
	mu  sync.RWMutex // guards m; writers also hold Registry.mu
	m   map[string]*instance
}

// New returns a Registry configured by opts, loading the records of
// opts.Store if there is one. It starts no goroutine: call Run for expiry
// timers and checkpoints.
func New(opts Options) (*Registry, error) {
	logOn := opts.Logger != nil
	if err := opts.fill(); err != nil {
		return nil, err
	}
	r := &Registry{
		opts:  opts,
		now:   opts.Now,
		store: opts.Store,
		log:   opts.Logger,
		seed:  maphash.MakeSeed(),
		wake:  make(chan struct{}, 1),
		logOn: logOn,
	}
	r.keyHash = sha256.Sum256([]byte(opts.APIKey))
	r.epoch = strconv.FormatUint(rand.Uint64(), 36)
	r.limiter = newLimiter(opts.RateLimitWrite, opts.RateLimitHeartbeat, opts.Now)
	r.base = r.now()
	for i := range r.shards {
		r.shards[i].m = make(map[string]*instance)
	}
	if c, ok := r.store.(Cluster); ok {
		r.cluster = c
		r.v.clustered = true
		r.v.init(0)
		snap, err := c.Snapshot(context.Background())
		if err != nil {
			return nil, fmt.Errorf("registry: cluster snapshot: %w", err)
		}
		r.apply(snap)
	} else {
		r.v.init(uint64(max(r.base.UnixMicro(), 1)))
	}
	if r.store != nil && r.cluster == nil {
		if err := r.load(context.Background()); err != nil {
			return nil, err
		}
	}
	r.handler = r.newHandler()
	return r, nil
}

func (o *Options) fill() error {
	if o.HeartbeatInterval == 0 {
		o.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if o.HeartbeatInterval < 0 || o.HeartbeatInterval > MaxHeartbeatInterval {
		return fmt.Errorf("registry: heartbeat interval %v is not in (0, %v]", o.HeartbeatInterval, MaxHeartbeatInterval)
	}
	if o.RetainInactive == 0 {
		o.RetainInactive = DefaultRetainInactive
	}
	if o.PurgeInterval == 0 {
		o.PurgeInterval = DefaultPurgeInterval
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.PurgeInterval < 0 || o.CheckpointInterval < 0 {
		return errors.New("registry: purge and checkpoint intervals must not be negative")
	}
	if o.MaxTools == 0 {
		o.MaxTools = DefaultMaxTools
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.MaxTools < 0 || o.MaxBodyBytes < 0 || o.RateLimitWrite < 0 || o.RateLimitHeartbeat < 0 {
		return errors.New("registry: limits must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// clock returns the current time as an offset from r.base. Offsets keep the
// monotonic clock's meaning when Now is time.Now.
func (r *Registry) clock() int64 { return int64(r.now().Sub(r.base)) }

// wall turns an offset back into a time.
func (r *Registry) wall(off int64) time.Time { return r.base.Add(time.Duration(off)) }

func (r *Registry) shardIndex(id string) int { return int(maphash.String(r.seed, id) % numShards) }

func (r *Registry) shard(id string) *shard { return &r.shards[r.shardIndex(id)] }

// lookup returns the instance with id, or nil.
func (r *Registry) lookup(id string) *instance {
	s := r.shard(id)
	s.mu.RLock()
	inst := s.m[id]
	s.mu.RUnlock()
	return inst
}

// Registration is the body of POST /instances.
type Registration struct {
	ID      string
	Name    string
	Version string
	Host    string
	// HeartbeatInterval is the agent's heartbeat period. If zero, the
	// registry's Options.HeartbeatInterval applies.
	HeartbeatInterval time.Duration
}

// HeartbeatStatus is the answer to a heartbeat.
type HeartbeatStatus string

// The two answers to a heartbeat.
const (
	// Ack: the registry knows the instance and its tool list.
	Ack HeartbeatStatus = "ack"
	// Refresh: the agent must post its tool list (the instance is unknown,
	// or has not posted tools since it registered).
	Refresh HeartbeatStatus = "refresh"
)

// Register creates or replaces the record of reg.ID: active, last seen now,
// with no tool list until UpdateTools.
func (r *Registry) Register(ctx context.Context, reg Registration) error {
	if err := reg.Validate(); err != nil {
		return err
	}
	if r.cluster != nil {
		return r.clusterRegister(ctx, reg)
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
	if old != nil {
		seq = old.seq
	} else {
		seq = r.nextSeq.Add(1)
	}
	inst := r.newInstance(reg, seq, now)
	if r.store != nil {
		if err := r.store.Put(ctx, r.record(inst, nil)); err != nil {
			return fmt.Errorf("registry: store: %w", err)
		}
	}
	r.mu.Lock()
	r.v.register(s, inst, old)
	r.mu.Unlock()
	r.wakeRun()
	return nil
}

// Heartbeat records that the agent of id is alive: last_seen becomes now and
// an inactive instance becomes active again. system, if not nil, must be a
// JSON object; it replaces the stored one, and the registry keeps the slice,
// so the caller must not modify it afterwards. An unknown id is not an error:
// the answer is Refresh.
//
// A heartbeat of an active instance takes no registry-wide lock and allocates
// nothing.
func (r *Registry) Heartbeat(ctx context.Context, id string, system json.RawMessage) (HeartbeatStatus, error) {
	if system != nil && !isJSONObject(system) {
		return "", invalid(errKind(kindObject, "body", "system"))
	}
	inst := r.lookup(id)
	if inst == nil {
		return Refresh, nil
	}
	if r.cluster != nil {
		return r.clusterHeartbeat(ctx, inst, system)
	}
	now := r.clock()
	if system != nil {
		inst.setSystem(system, now)
	}
	if inst.touch(now) {
		r.beats.Add(1)
		return inst.status(), nil
	}
	return r.revive(ctx, id, system, now)
}

// revive is the slow path of Heartbeat: the instance is inactive, or past its
// deadline, and changes state.
func (r *Registry) revive(ctx context.Context, id string, system json.RawMessage, now int64) (HeartbeatStatus, error) {
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	now = max(now, r.clock()) // the lock may have taken a while
	inst := r.lookup(id)      // it may have been replaced or deleted meanwhile
	if inst == nil {
		return Refresh, nil
	}
	if system != nil {
		inst.setSystem(system, now)
	}
	r.mu.Lock()
	// Apply the expiry first if it happened, so that it is announced.
	if _, deleted := r.v.settle(s, inst, now, r.opts.RetainInactive); deleted {
		r.mu.Unlock()
		if err := r.storeDelete(ctx, []*instance{inst}); err != nil {
			r.log.Error("store delete failed", "id", id, "err", err)
		}
		return Refresh, nil
	}
	r.v.revive(inst, now)
	r.mu.Unlock()
	r.wakeRun()
	if err := r.storeUpdate(ctx, []*instance{inst}); err != nil {
		// Memory has the revival; the store catches up with the instance's
		// next state change. The agent's heartbeat still succeeded.
		r.log.Error("store update failed", "id", id, "err", err)
	}
	return inst.status(), nil
}

// UpdateTools replaces the tool list of id. Each tool must be a JSON object
// with a non-empty string "name", names must be unique, and there may be at
// most Options.MaxTools of them. Posting tools does not make an inactive
// instance active.
func (r *Registry) UpdateTools(ctx context.Context, id string, tools []json.RawMessage) error {
	parsed, err := r.parseTools(tools)
	if err != nil {
		return err
	}
	if r.cluster != nil {
		return r.clusterSetTools(ctx, id, parsed)
	}
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	inst := r.lookup(id)
	if inst == nil {
		return fmt.Errorf("instance %q: %w", id, ErrNotFound)
	}
	if r.store != nil {
		if err := r.store.Put(ctx, r.record(inst, parsed)); err != nil {
			return fmt.Errorf("registry: store: %w", err)
		}
	}
	r.mu.Lock()
	r.v.setTools(inst, parsed)
	r.mu.Unlock()
	return nil
}

// Deregister marks id inactive; its record is kept until Options.RetainInactive
// has passed. Deregistering an unknown id is not an error.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	if r.cluster != nil {
		return r.clusterDeregister(ctx, id)
	}
	s := r.shard(id)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	inst := r.lookup(id)
	if inst == nil {
		return nil
	}
	now := r.clock()
	if r.store != nil {
		// On disk before memory: a failed write leaves the instance as it
		// was, and a retry writes again.
		seen, active := unpack(inst.live.Load())
		st := State{ID: id, LastSeen: r.wall(seen).Round(0), InactiveSince: r.wall(min(now, inst.deadline(seen))).Round(0)}
		if !active {
			r.mu.RLock()
			st.InactiveSince = r.wall(inst.inactiveAt).Round(0)
			r.mu.RUnlock()
		}
		if err := r.store.Update(ctx, []State{st}); err != nil {
			return fmt.Errorf("registry: store: %w", err)
		}
	}
	r.mu.Lock()
	r.v.deregister(inst, now, r.opts.RetainInactive)
	r.mu.Unlock()
	return nil
}

// wakeRun tells Run to recompute its timer: a new deadline may be earlier.
func (r *Registry) wakeRun() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// registry.go defines Registry and its Options, and New, which fills the
// defaults and chooses the write path (writer.go) once.

package registry

import (
	"context"
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

// Defaults used by New for zero Options fields.
const (
	DefaultHeartbeatInterval  = 30 * time.Second
	DefaultRetainInactive     = 72 * time.Hour
	DefaultPurgeInterval      = 60 * time.Second
	DefaultCheckpointInterval = 5 * time.Second
	DefaultMaxTools           = 10000
	DefaultMaxInstances       = 1_000_000
	DefaultMaxBodyBytes       = 1 << 20
	DefaultBodyTimeout        = 10 * time.Second
	DefaultNotifyInterval     = 20 * time.Millisecond
	DefaultWriteTimeout       = 10 * time.Second
)

// Options configures a Registry. The zero value is a usable in-memory registry
// with the protocol's defaults, no API key and no rate limits.
type Options struct {
	// Store keeps records beyond this process (a file, as store/bolt).
	// If nil, and Cluster is nil, records live only in the registry's memory.
	Store Store

	// Cluster, if not nil, makes the registry a replica that shares its
	// fleet with the other registries of the Cluster (store/etcd): see
	// Cluster. Run must be running for writes to complete. It cannot be
	// combined with Store.
	Cluster Cluster

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

	// MaxInstances is the most records the registry holds, active or not.
	// At the limit, registering a new id deletes the oldest inactive record
	// (inactive the longest; of two since the same instant, the first
	// registered) to make room, and logs its id; when every record is
	// active, it fails with ErrFull (507). If zero, defaults to 1,000,000.
	MaxInstances int

	// MaxBodyBytes is the largest request body the handler reads; larger
	// bodies get 413. If zero, defaults to 1 MiB.
	MaxBodyBytes int64

	// BodyTimeout bounds the reading of a request body once its headers
	// are in: a client that sends its body slower is answered 408 and
	// disconnected. If zero, defaults to 10s; if negative, there is none.
	BodyTimeout time.Duration

	// WriteTimeout bounds each write of an answer: the deadline moves with
	// every chunk, so that a slow client that reads still gets a listing of
	// any size, and one that stops reading is dropped within WriteTimeout.
	// Blocking queries and event streams may wait any time between writes.
	// If zero, defaults to 10s; if negative, there is none.
	WriteTimeout time.Duration

	// NotifyInterval is the shortest time between two wake-ups of the
	// waiters of an answer (blocking queries, event streams): changes
	// closer together are told together, so that a burst of writes costs
	// each watcher one answer, not one per write. The first change after a
	// quiet spell is told at once. With many watchers the interval grows
	// (by 100µs per watcher and 4ns per byte answered to blocking queries
	// since the last wake-up, to at most 1s: 2,000 event streams are told
	// every 200ms), so that waking them never crowds out the writes. If
	// zero, defaults to 20ms; if negative, every change is told at once.
	NotifyInterval time.Duration

	// ExpiryGuard, if not zero, is a percentage: when an expiry is due and
	// more than that share of the active instances would go inactive within
	// one default TTL window (they missed a heartbeat and their deadline
	// falls within it, the one due now included), the registry stops
	// expiring before the first of them goes (see ExpiryGuard). It cannot be
	// combined with Cluster, whose leases decide expiry.
	ExpiryGuard float64

	// ExpiryGuardMax is the longest the guard holds. If zero, defaults to 15m.
	ExpiryGuardMax time.Duration

	// APIKey, if not empty, is a key that writes may send (as X-API-Key, or
	// Authorization: Bearer): the identity APIKeyIdentity, with the roles
	// agent and admin. With Keys, both apply.
	APIKey string

	// Keys are API keys with names and roles (see ParseKeys, SetKeys).
	// When there are keys (or ClientCertificates), writes need an identity,
	// and an instance belongs to the identity that first registered it.
	Keys []Key

	// ClientCertificates makes a verified TLS client certificate an
	// identity (its DNS names, else its common name), with the roles agent
	// and read. The server's tls.Config verifies certificates (ClientCAs,
	// ClientAuth); a key, when a request also carries one, decides.
	ClientCertificates bool

	// BindCertToHost lets a certificate register only instances whose host
	// is one of its DNS names (compared literally, case-insensitively), or
	// the first label of one. A wildcard name *.domain covers the hosts of
	// one label under domain, and its short name none.
	BindCertToHost bool

	// ReadAuth makes reads (listings, lookups, exports, events) need an
	// identity with the role read, agent or admin. /health is always open.
	ReadAuth bool

	// AuthFailures is how many requests with a wrong or missing key a
	// client address may make per minute before it is answered 429; a
	// request with a good key from the same address is never held back,
	// and refused requests take no token of the route limits below. The
	// addresses of an IPv6 /64 share RateLimitPrefixFactor times as many.
	// If zero, defaults to 30; if negative, there is no limit.
	AuthFailures int

	// RateLimitWrite is the number of register, tools and delete requests a
	// client address may make per minute on each of those routes (a token
	// bucket with a burst of the same size). If zero, there is no limit.
	RateLimitWrite int

	// RateLimitHeartbeat is the same for heartbeats. If zero, there is no limit.
	RateLimitHeartbeat int

	// RateLimitPrefixFactor sizes the buckets that all the addresses of one
	// IPv6 /64 share: that many times the per-address limits, AuthFailures
	// included (a /64 may be one client rotating its addresses, or a whole
	// LAN of agents). If
	// zero, defaults to 100; if negative, there are none.
	RateLimitPrefixFactor int

	// TrustedProxies are the addresses whose X-Forwarded-For header names the
	// client for rate limiting. If empty, the connection's address is used.
	TrustedProxies []netip.Prefix

	// Now returns the current time. If nil, defaults to time.Now.
	Now func() time.Time

	// Version is the version of the program that serves the registry, as
	// GET /version answers it (the library cannot know its binary's
	// version). If empty, /version answers "unknown".
	Version string

	// Logger receives the audit trail (a line per write, and refusals
	// counted per client address per minute) at info and warn level,
	// errors at error level, and a line per request at debug level. If
	// nil, nothing is logged.
	Logger *slog.Logger
}

// A Registry keeps the instances of a fleet of runspec agents, their tools and
// their liveness, and answers the protocol through its Handler. Create one with
// New; its methods are safe for concurrent use.
type Registry struct {
	opts     Options
	now      func() time.Time
	base     time.Time // origin of the int64 clock offsets kept in instances
	w        writer    // the write path, chosen by New
	log      *slog.Logger
	seed     maphash.Seed
	shards   [numShards]shard
	nextSeq  atomic.Uint64 // registration order of new ids
	wake     chan struct{} // tells Run that an earlier deadline exists
	handler  http.Handler
	keys     atomic.Pointer[keyring]
	failed   *limiter // wrong keys per client address
	refusals refusals
	counts   counters // for Metrics
	pending  pending  // the registry's own writes its Store has not taken yet
	limiter  *limiter
	// crossOrigin refuses unsafe requests that browsers send from other
	// sites (Sec-Fetch-Site, Origin).
	crossOrigin *http.CrossOriginProtection
	cpMu        sync.Mutex // serializes checkpoints
	epoch       string     // tells ETags of this start from those of others
	beats       atomic.Uint64

	cache   answerCache // encoded GET /tools/{name} answers
	flights flights     // listings shared by the readers woken by one change

	mu     sync.RWMutex // guards v and expiry; never held across I/O
	v      view
	expiry expiryGuard
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
// opts.Store (or, for a replica, the snapshot of opts.Cluster). It starts no
// goroutine: call Run for expiry timers, checkpoints and a Cluster's change
// stream.
func New(opts Options) (*Registry, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	r := &Registry{
		opts: opts,
		now:  opts.Now,
		log:  opts.Logger,
		seed: maphash.MakeSeed(),
		wake: make(chan struct{}, 1),
	}
	if err := r.SetKeys(opts.Keys); err != nil {
		return nil, err
	}
	r.failed = newLimiter(0, 0, max(opts.RateLimitPrefixFactor, 0), opts.Now)
	r.failed.perMinute[routeAuth] = max(opts.AuthFailures, 0)
	r.epoch = strconv.FormatUint(rand.Uint64(), 36)
	r.limiter = newLimiter(opts.RateLimitWrite, opts.RateLimitHeartbeat, max(opts.RateLimitPrefixFactor, 0), opts.Now)
	r.crossOrigin = http.NewCrossOriginProtection()
	r.base = r.now()
	r.counts.other.route = "other"
	r.expiry = expiryGuard{percent: opts.ExpiryGuard, window: int64(ttlFactor * opts.HeartbeatInterval), max: int64(opts.ExpiryGuardMax)}
	for i := range r.shards {
		r.shards[i].m = make(map[string]*instance)
	}
	// The one place that knows which write path this registry has.
	var err error
	if opts.Cluster != nil {
		r.w, err = newClusterWriter(context.Background(), r, opts.Cluster)
	} else {
		r.w, err = newLocalWriter(context.Background(), r, opts.Store)
	}
	if err != nil {
		return nil, err
	}
	r.v.w.watching = func() int64 { return r.counts.waiters.Load() + r.counts.streams.Load() }
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
	if o.MaxInstances == 0 {
		o.MaxInstances = DefaultMaxInstances
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.AuthFailures == 0 {
		o.AuthFailures = 30
	}
	if o.RateLimitPrefixFactor == 0 {
		o.RateLimitPrefixFactor = DefaultRateLimitPrefixFactor
	}
	if o.NotifyInterval == 0 {
		o.NotifyInterval = DefaultNotifyInterval
	}
	if o.BodyTimeout == 0 {
		o.BodyTimeout = DefaultBodyTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.MaxTools < 0 || o.MaxInstances < 0 || o.MaxBodyBytes < 0 || o.RateLimitWrite < 0 || o.RateLimitHeartbeat < 0 {
		return errors.New("registry: limits must not be negative")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.ExpiryGuardMax == 0 {
		o.ExpiryGuardMax = DefaultExpiryGuardMax
	}
	if o.ExpiryGuard < 0 || o.ExpiryGuard >= 100 || o.ExpiryGuardMax < 0 {
		return errors.New("registry: ExpiryGuard is a percentage in [0, 100), ExpiryGuardMax not negative")
	}
	if o.ExpiryGuard > 0 && o.Cluster != nil {
		return errors.New("registry: the expiry guard (Options.ExpiryGuard, --expiry-guard) cannot be used with a Cluster: " +
			"a replica's instances expire when their Cluster lease ends, not by a decision of this registry")
	}
	if o.Store != nil && o.Cluster != nil {
		return errors.New("registry: Options.Store and Options.Cluster cannot be combined: a replica keeps its records in the Cluster")
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

// wakeRun tells Run to recompute its timer: a new deadline may be earlier.
func (r *Registry) wakeRun() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

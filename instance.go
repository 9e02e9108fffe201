// instance.go defines an instance as the registry holds it in memory: fixed
// fields encoded once, a lock-free liveness word for heartbeats, and an
// immutable tool list swapped as a whole.

package registry

import (
	"encoding/json"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

type instance struct {
	id, name, version, host string
	owner                   string            // the identity that first registered the id ("": APIKeyIdentity)
	labels                  map[string]string // never modified
	labelsJSON              string            // labels as a JSON object, sorted, encoded once; "" if none
	seq                     uint64            // order of the id's first registration
	registered              int64             // clock offset of this registration
	interval                time.Duration
	ttl                     int64  // ttlFactor x interval, in nanoseconds
	floor                   int64  // the deadline is never earlier (grace after a restart)
	graced                  bool   // its expiry is not a mass expiry (a restart's grace, a guard's release); guarded by Registry.mu
	guarded                 bool   // held active by the expiry guard; guarded by Registry.mu
	heldFloor               int64  // the floor to go back to when the guard releases it
	head                    []byte // `{"instance_id":…,"name":…,"version":…,"host":…`, encoded once
	nameEnd                 int    // head[:nameEnd] ends after the name
	hostJSON                string // the host as a JSON string

	// live packs last_seen and active in one word so that a heartbeat and an
	// expiry race through compare-and-swap, not a lock. See pack.
	live atomic.Int64
	// tools is nil until a list is posted after the registration. The
	// toolSet is immutable; it is replaced under Registry.mu.
	tools atomic.Pointer[toolSet]

	sysMu  sync.Mutex
	system json.RawMessage
	sysAt  int64  // clock offset of the heartbeat that sent system
	sysVer uint64 // counts system updates

	// Guarded by Registry.mu.
	due         int64 // heap key: the deadline while active, the deletion time while inactive
	heapIdx     int   // position in the due heap, -1 when not in it
	inactiveAt  int64 // when it became inactive
	inactiveIdx int   // position in view.oldest, -1 when not in it
	index       uint64
	deleted     bool

	// What the last checkpoint wrote (in cluster mode, also what another
	// replica wrote). Atomic: the cluster's change stream sets them while a
	// checkpoint may run; a lost race costs one redundant write.
	cpSeen   atomic.Int64
	cpSysVer atomic.Uint64
}

// interval is reg's heartbeat interval, or the registry's default.
func (r *Registry) interval(reg Registration) time.Duration {
	if reg.HeartbeatInterval == 0 {
		return r.opts.HeartbeatInterval
	}
	return reg.HeartbeatInterval
}

func (r *Registry) newInstance(reg Registration, seq uint64, now int64) *instance {
	interval := r.interval(reg)
	in := &instance{
		id: reg.ID, name: reg.Name, version: reg.Version, host: reg.Host,
		seq:         seq,
		registered:  now,
		interval:    interval,
		ttl:         int64(ttlFactor * interval),
		floor:       math.MinInt64,
		heapIdx:     -1,
		inactiveIdx: -1,
	}
	in.head, in.nameEnd = appendHead(nil, in)
	in.setLabels(reg.Labels)
	in.hostJSON = string(appendString(nil, in.host))
	in.live.Store(pack(now, true))
	in.cpSeen.Store(now)
	return in
}

func (in *instance) status() HeartbeatStatus {
	if in.tools.Load() == nil {
		return Refresh
	}
	return Ack
}

// setSystem records the system object of a heartbeat sent at clock offset
// at.
func (in *instance) setSystem(sys json.RawMessage, at int64) {
	in.sysMu.Lock()
	in.system = sys
	in.sysAt = at
	in.sysVer++
	in.sysMu.Unlock()
}

// systemVersion returns the system object, its version and when it was sent.
func (in *instance) systemVersion() (json.RawMessage, uint64, int64) {
	in.sysMu.Lock()
	defer in.sysMu.Unlock()
	return in.system, in.sysVer, in.sysAt
}

func (in *instance) getSystem() json.RawMessage {
	in.sysMu.Lock()
	defer in.sysMu.Unlock()
	return in.system
}

func (in *instance) toolCount() int {
	if ts := in.tools.Load(); ts != nil {
		return len(ts.list)
	}
	return 0
}

// setLabels gives in its labels, encoded once.
func (in *instance) setLabels(labels map[string]string) {
	if len(labels) == 0 {
		return
	}
	in.labels = maps.Clone(labels)
	in.labelsJSON = string(appendLabels(nil, labels))
}

// labelKey is a canonical form of a label filter, for cache keys.
func labelKey(labels map[string]string) string {
	if len(labels) == 0 {
		return ""
	}
	return string(appendLabels(nil, labels))
}

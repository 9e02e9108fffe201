// store.go defines Store, the interface through which a Registry keeps its
// records beyond its own memory (a file), the values it exchanges with a
// Store or a Cluster (Record, State, Seen), MemStore, and how records and
// instances map to each other.

package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/runspec/registry/internal/rules"
)

// A Store keeps registry records beyond the memory of one process.
//
// The Registry keeps every record and index in memory and answers reads from
// there; a Store makes its writes durable and gives them back at start-up.
// (Registries that share their records use a Cluster instead.) The Registry
// serializes Put, SetStates and Delete for any one id
// (Touch, its periodic checkpoint, runs beside them), and does not modify a
// Record, State or Seen after passing it. Whoever opened a Store closes it,
// after Run has returned (Run's last checkpoint writes to it). Implementations must be
// safe for concurrent use: writes for different ids arrive concurrently, and
// a store should batch them rather than commit each alone.
type Store interface {
	// Load calls fn for every stored record, in any order, and returns fn's
	// first error.
	Load(ctx context.Context, fn func(Record) error) error

	// Put creates or replaces the record of rec.ID. It must be durable when
	// Put returns: the registry acknowledges the write right after. After an
	// error the write may or may not have happened.
	Put(ctx context.Context, rec Record) error

	// SetStates writes the liveness of stored records (Active, LastSeen,
	// InactiveSince), as a deregistration, an expiry or a revival leaves
	// it; as in Touch, a LastSeen older than the stored one is ignored. Ids
	// that are not stored are skipped.
	SetStates(ctx context.Context, states []State) error

	// Touch records heartbeats: a LastSeen older than the stored one is
	// ignored, a nil System leaves the stored one. It need not be durable
	// at once: the registry calls it every Options.CheckpointInterval, and
	// a crash may lose that much. Ids that are not stored are skipped.
	Touch(ctx context.Context, seen []Seen) error

	// Delete removes records. Ids that are not stored are skipped.
	Delete(ctx context.Context, ids []string) error
}

// A Record is an instance as a Store keeps it.
type Record struct {
	ID, Name, Version, Host string

	// Owner is the identity that first registered the id; "" for records
	// from before ownership existed, which belong to APIKeyIdentity.
	Owner string

	// Labels are the agent's labels, for choosing hosts; nil if none.
	Labels map[string]string

	// Seq orders ids by their first registration: grouped tools take their
	// schema from the earliest registered instance.
	Seq uint64

	Registered        time.Time // the latest (re)registration
	LastSeen          time.Time
	HeartbeatInterval time.Duration
	Active            bool
	InactiveSince     time.Time // zero while active

	// Tools are the posted tool objects; nil if none was posted since the
	// registration (an empty list was posted if it is empty but not nil).
	Tools []json.RawMessage

	System json.RawMessage // the last heartbeat's system object, or nil
	// SystemAt is when the heartbeat that sent System was sent, if the
	// Store keeps it (a Cluster should: replicas compare it); zero means
	// LastSeen.
	SystemAt time.Time
}

// State is the liveness part of a Record.
type State struct {
	ID            string
	Active        bool
	LastSeen      time.Time
	InactiveSince time.Time // zero while active
}

// Seen is what a heartbeat changes.
type Seen struct {
	ID       string
	LastSeen time.Time
	System   json.RawMessage // nil: unchanged
	SystemAt time.Time       // when the heartbeat that sent System was sent
}

// MemStore is a Store that keeps records in memory. A registry does not need
// one to work in memory; a MemStore lets tests and embedders start a new
// Registry on the records of an old one, as after a restart.
type MemStore struct {
	mu   sync.Mutex
	recs map[string]Record
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore {
	return &MemStore{recs: make(map[string]Record)}
}

// Load implements Store.
func (m *MemStore) Load(ctx context.Context, fn func(Record) error) error {
	m.mu.Lock()
	recs := make([]Record, 0, len(m.recs))
	for _, rec := range m.recs {
		recs = append(recs, rec)
	}
	m.mu.Unlock()
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// Put implements Store.
func (m *MemStore) Put(ctx context.Context, rec Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs[rec.ID] = rec
	return nil
}

// SetStates implements Store.
func (m *MemStore) SetStates(ctx context.Context, states []State) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, st := range states {
		if rec, ok := m.recs[st.ID]; ok {
			rec.Active, rec.InactiveSince = st.Active, st.InactiveSince
			if st.LastSeen.After(rec.LastSeen) {
				rec.LastSeen = st.LastSeen
			}
			m.recs[st.ID] = rec
		}
	}
	return nil
}

// Touch implements Store.
func (m *MemStore) Touch(ctx context.Context, seen []Seen) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range seen {
		if rec, ok := m.recs[s.ID]; ok {
			if s.LastSeen.After(rec.LastSeen) {
				rec.LastSeen = s.LastSeen
			}
			if s.System != nil {
				rec.System = s.System
			}
			m.recs[s.ID] = rec
		}
	}
	return nil
}

// Delete implements Store.
func (m *MemStore) Delete(ctx context.Context, ids []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		delete(m.recs, id)
	}
	return nil
}

// checkRecord checks a record read from a Store, and returns its parsed
// tool list.
func checkRecord(rec Record) ([]parsedTool, error) {
	if rec.ID == "" || !rules.Text(rec.ID) {
		return nil, fmt.Errorf("bad id %q: empty, or not valid UTF-8 without control characters", rec.ID)
	}
	if rec.Seq == 0 {
		return nil, fmt.Errorf("no registration order (seq 0)")
	}
	if rec.HeartbeatInterval < 0 || rec.HeartbeatInterval > MaxHeartbeatInterval {
		return nil, fmt.Errorf("bad heartbeat interval %v", rec.HeartbeatInterval)
	}
	if rec.Tools == nil {
		return nil, nil
	}
	return parseStoredTools(rec.Tools)
}

// instanceOf makes the instance of a stored record, with its registration
// and liveness word, and parses its tool list. The caller sets what its write
// path decides: the deadline's floor, system, when it became inactive.
func (r *Registry) instanceOf(rec Record) (*instance, []parsedTool, error) {
	parsed, err := checkRecord(rec)
	if err != nil {
		return nil, nil, err
	}
	in := r.newInstance(Registration{ID: rec.ID, Name: rec.Name, Version: rec.Version, Host: rec.Host,
		HeartbeatInterval: rec.HeartbeatInterval, Labels: rec.Labels}, rec.Seq, int64(rec.Registered.Sub(r.base)))
	in.owner = rec.Owner
	seen := int64(rec.LastSeen.Sub(r.base))
	in.live.Store(pack(seen, rec.Active))
	in.cpSeen.Store(seen)
	return in, parsed, nil
}

// record is in as a Store keeps it, with tools as its tool list (nil: none
// posted). Called with in's shard wmu held.
func (r *Registry) record(in *instance, tools []parsedTool) Record {
	st := r.state(in)
	rec := Record{
		ID: in.id, Name: in.name, Version: in.version, Host: in.host,
		Owner:             in.owner,
		Labels:            in.labels,
		Seq:               in.seq,
		Registered:        r.wall(in.registered).Round(0),
		LastSeen:          st.LastSeen,
		HeartbeatInterval: in.interval,
		Active:            st.Active,
		InactiveSince:     st.InactiveSince,
		System:            in.getSystem(),
	}
	if tools != nil {
		rec.Tools = toolObjects(tools)
	}
	return rec
}

// state is the liveness of in. Called with in's shard wmu held.
func (r *Registry) state(in *instance) State {
	seen, active := unpack(in.live.Load())
	st := State{ID: in.id, Active: active, LastSeen: r.wall(seen).Round(0)}
	if !active {
		st.InactiveSince = r.wall(in.inactiveAt).Round(0)
	}
	return st
}

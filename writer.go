// writer.go defines the write methods of the protocol (Register, Heartbeat,
// UpdateTools, Deregister) and writer, the write path that New chooses once:
// localWriter (local.go) writes to a Store, or to none, and then to the view;
// clusterWriter (cluster.go) writes to a Cluster whose change stream feeds
// the view. Each method has one body; no other code knows which it is.

package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// A writer makes the changes of one Registry: what clients ask (register,
// heartbeat, tools, deregister), what time brings (expiry and retention),
// and checkpoints of heartbeats. Every method is safe for concurrent use.
type writer interface {
	// register creates or replaces the record of a valid registration.
	register(ctx context.Context, reg Registration) error
	// heartbeat records a heartbeat of in (system: nil or a JSON object),
	// and reports whether it changed the instance's state (a revival).
	heartbeat(ctx context.Context, in *instance, system json.RawMessage) (HeartbeatStatus, bool, error)
	// setTools replaces the tool list of id, or says ErrNotFound.
	setTools(ctx context.Context, id string, parsed []parsedTool) error
	// deregister marks id inactive, keeping its record.
	deregister(ctx context.Context, id string) error
	// delete deletes the record of id at once (an admin's purge).
	delete(ctx context.Context, id string) error
	// settle applies what is due at now (expiry, deletion after the
	// retention) and returns when the next thing is due (math.MaxInt64:
	// nothing).
	settle(ctx context.Context, now int64) (int64, error)
	// checkpoint settles what is due and writes the heartbeats since the
	// last checkpoint (last_seen, system) where the records are kept.
	checkpoint(ctx context.Context) error
	// run does the background work of the write path until ctx ends (the
	// Cluster's change stream), and returns at once if there is none.
	run(ctx context.Context) error
	// health is nil while writes can be made.
	health() error
	// revision is the Cluster revision the view has applied, and false
	// for a write path without a Cluster.
	revision() (uint64, bool)
	// lag is how far the view is behind the newest revision the Cluster
	// has heard of, and false when it cannot say (ClusterHead).
	lag() (uint64, bool)
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
	// Labels are the agent's labels for choosing hosts (an addition to v1):
	// at most MaxLabels, keys and values under the rules of a host name.
	Labels map[string]string
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
// with no tool list until UpdateTools. reg must pass Validate. When ctx
// carries an identity (WithIdentity), it must be one that may register
// reg.Host, and own the id if it is stored (or be an admin); a new id
// belongs to it. The refusals match ErrForbidden.
func (r *Registry) Register(ctx context.Context, reg Registration) error {
	if err := reg.Validate(); err != nil {
		return err
	}
	if id := identityOf(ctx); id != nil && !id.MayRegister(reg.Host) {
		return &ForbiddenError{Detail: fmt.Sprintf("Identity %q may not register instances on host %q", id.Name, reg.Host)}
	}
	err := r.w.register(ctx, reg)
	if err == nil {
		r.counts.registrations.Add(1)
	}
	return err
}

// Heartbeat records that the agent of id is alive: last_seen becomes now and
// an inactive instance becomes active again. system, if not nil, must be a
// JSON object; it replaces the stored one, and the registry keeps the slice,
// so the caller must not modify it afterwards. An unknown id is not an error:
// the answer is Refresh.
//
// A heartbeat of an active instance of a registry without a Cluster takes
// no registry-wide lock and allocates nothing. When ctx carries an
// identity, it must own the instance (or be an admin): ErrForbidden.
func (r *Registry) Heartbeat(ctx context.Context, id string, system json.RawMessage) (HeartbeatStatus, error) {
	st, _, err := r.heartbeat(ctx, id, system)
	return st, err
}

// heartbeat is Heartbeat that also reports whether the instance changed
// state (for the audit trail).
func (r *Registry) heartbeat(ctx context.Context, id string, system json.RawMessage) (HeartbeatStatus, bool, error) {
	if err := checkSystem(system); err != nil {
		return "", false, err
	}
	in := r.lookup(id)
	if in == nil {
		r.counts.refreshes.Add(1)
		return Refresh, false, nil
	}
	if !mayActOn(identityOf(ctx), in.owner) {
		return "", false, errNotOwner
	}
	st, changed, err := r.w.heartbeat(ctx, in, system)
	if err == nil {
		if st == Refresh {
			r.counts.refreshes.Add(1)
		} else {
			r.counts.acks.Add(1)
		}
	}
	return st, changed, err
}

// UpdateTools replaces the tool list of id. Each tool must be a JSON object
// with a non-empty string "name", names must be unique, and there may be at
// most Options.MaxTools of them (see ValidateTools). Posting tools does not
// make an inactive instance active. When ctx carries an identity, it must
// own the instance (or be an admin): ErrForbidden.
func (r *Registry) UpdateTools(ctx context.Context, id string, tools []json.RawMessage) error {
	parsed, err := parseToolList(tools, r.opts.MaxTools)
	if err != nil {
		return err
	}
	if err := r.w.setTools(ctx, id, parsed); err != nil {
		return err
	}
	r.counts.toolPosts.Add(1)
	return nil
}

// Deregister marks id inactive; its record is kept until Options.RetainInactive
// has passed. Deregistering an unknown id is not an error. When ctx carries
// an identity, it must own the instance (or be an admin): ErrForbidden.
func (r *Registry) Deregister(ctx context.Context, id string) error {
	if err := r.w.deregister(ctx, id); err != nil {
		return err
	}
	r.counts.deregistrations.Add(1)
	return nil
}

// Delete deletes the record of id at once, active or not, instead of
// marking it inactive (DELETE /instances/{id}?purge=true). Deleting an
// unknown id is not an error. When ctx carries an identity, it must be an
// admin: ErrForbidden.
func (r *Registry) Delete(ctx context.Context, id string) error {
	if who := identityOf(ctx); who != nil && !who.Roles.Has(RoleAdmin) {
		return &ForbiddenError{Detail: fmt.Sprintf("Identity %q is not an admin: only an admin may purge", who.Name)}
	}
	if err := r.w.delete(ctx, id); err != nil {
		return err
	}
	r.counts.purges.Add(1)
	return nil
}

// Health is nil while the registry can serve writes: always, unless it is a
// replica whose Cluster is unreachable or whose change stream is behind.
// Reads keep answering from the last view meanwhile.
func (r *Registry) Health() error { return r.w.health() }

// errNotStored is the error of a write to an id the registry does not know.
func errNotStored(id string) error { return fmt.Errorf("instance %q: %w", id, ErrNotFound) }

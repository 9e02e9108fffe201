// read.go defines the read methods of the library (Instance, Instances,
// Tools, Tool, Hosts). They build Go values straight from the indexes that
// the HTTP answers are encoded from, walking a listing in chunks so that a
// large read never holds writers back, and return the change index that
// answered them.

package registry

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"
)

// Filter selects what a read shows. The zero Filter selects everything and
// does not wait.
type Filter struct {
	// ActiveOnly keeps only active instances (and tools and hosts offered by
	// one). The HTTP API sets it by default on /tools and /hosts, as v1 does.
	ActiveOnly bool
	// Host keeps only the instances on this host.
	Host string
	// Name keeps only the instances with this agent name (Instances and Hosts).
	Name string
	// Labels keeps only the instances that carry every one of these labels
	// (key and value). A map holds one value per key; over HTTP, repeated
	// ?label= filters are ANDed too, so one key given two values
	// (label=env=staging&label=env=prod) selects nothing: an empty listing,
	// a 404 for a tool, with the answer's index as usual.
	Labels map[string]string

	// AfterIndex, if not zero, makes the read wait until its answer's change
	// index passes AfterIndex (a blocking query): pass the Meta.Index of the
	// previous answer to wait for the next change. If ctx ends first, the
	// read returns ctx's error.
	AfterIndex uint64

	// none makes the filter select nothing: a label filter that gives one
	// key two values, which no instance can carry (set by parseQuery).
	none bool
}

// selects reports whether f keeps in at now (active, labels; host and name
// are the indexes' to apply).
func (f *Filter) selects(in *instance, now int64) bool {
	if f.none || f.ActiveOnly && !in.activeAt(now) {
		return false
	}
	for k, v := range f.Labels {
		if got, ok := in.labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// offers reports whether m, a member of a tool entry, is one that f
// selects (a vacant slot is not).
func (f *Filter) offers(m *member, now int64) bool { return !m.vacant() && f.selects(m.in, now) }

func (f Filter) wait() waitFor { return waitFor{on: f.AfterIndex > 0, after: f.AfterIndex} }

// Instance returns the record of id, or an error matching ErrNotFound.
// To wait for a change of one instance, follow Events.
func (r *Registry) Instance(ctx context.Context, id string) (Instance, Meta, error) {
	meta, _ := r.meta(ctx, topic{topicInstance, id}, Filter{}, func() uint64 { return r.v.instanceIndex(r.shard(id), id) })
	// Looked up under the lock: an instance found before it and replaced
	// (a re-registration) while waiting for it would show as inactive.
	// Its index too: a write between the wait and this read is both shown
	// and counted.
	r.mu.RLock()
	defer r.mu.RUnlock()
	meta.Index = r.v.instanceIndex(r.shard(id), id)
	in := r.lookup(id)
	if in == nil {
		return Instance{}, meta, fmt.Errorf("instance %q: %w", id, ErrNotFound)
	}
	return r.instanceValue(in, r.clock()), meta, nil
}

// Instances returns the records that f selects, in registration order.
func (r *Registry) Instances(ctx context.Context, f Filter) ([]Instance, Meta, error) {
	meta, err := r.meta(ctx, topic{kind: topicAll}, f, func() uint64 { return r.v.index })
	if err != nil {
		return nil, meta, err
	}
	out := []Instance{}
	err = r.collect(ctx, func() cursorIndex { return r.instances(f, false) }, func(ix cursorIndex, i int, now int64) {
		out = append(out, r.instanceValue(ix.(instIndex).items[i], now))
	})
	return out, meta, err
}

// Tools returns the tools offered by the instances that f selects, grouped
// by name, in name order.
func (r *Registry) Tools(ctx context.Context, f Filter) ([]Tool, Meta, error) {
	meta, err := r.meta(ctx, topic{kind: topicTools}, f, func() uint64 { return r.v.toolsIndex })
	if err != nil {
		return nil, meta, err
	}
	out := []Tool{}
	err = r.collect(ctx, func() cursorIndex { return r.tools(f, false) }, func(ix cursorIndex, i int, now int64) {
		x := ix.(toolIndex)
		if t, ok := r.toolValue(x.members(x.names[i]), f, now); ok {
			out = append(out, t)
		}
	})
	return out, meta, err
}

// Tool returns the tool name as offered by the instances that f selects, or
// an error matching ErrNotFound if none offers it.
func (r *Registry) Tool(ctx context.Context, name string, f Filter) (Tool, Meta, error) {
	meta, err := r.meta(ctx, topic{topicTool, name}, f, func() uint64 { return r.v.toolIndex(name) })
	if err != nil {
		return Tool{}, meta, err
	}
	r.mu.RLock()
	meta.Index = r.v.toolIndex(name) // as Instance does
	t, ok := r.toolValue(r.tools(f, false).(toolIndex).members(name), f, r.clock())
	r.mu.RUnlock()
	if !ok {
		return Tool{}, meta, fmt.Errorf("tool %q: %w", name, ErrNotFound)
	}
	return t, meta, nil
}

// Hosts returns one entry per (host, agent name) that f selects, by host
// then name.
func (r *Registry) Hosts(ctx context.Context, f Filter) ([]Host, Meta, error) {
	meta, err := r.meta(ctx, topic{kind: topicAll}, f, func() uint64 { return r.v.index })
	if err != nil {
		return nil, meta, err
	}
	out := []Host{}
	err = r.collect(ctx, func() cursorIndex { return r.hosts(f, false) }, func(ix cursorIndex, i int, now int64) {
		if in := ix.(groupIndex).groups[i].pick(f, now); in != nil {
			out = append(out, r.hostValue(in, now))
		}
	})
	return out, meta, err
}

// meta waits as f asks and returns the index of the answer to come.
func (r *Registry) meta(ctx context.Context, t topic, f Filter, indexOf func() uint64) (Meta, error) {
	idx := r.block(ctx, t, f.wait(), indexOf)
	meta := Meta{Index: idx, Stale: r.Health() != nil}
	if f.AfterIndex > 0 && idx <= f.AfterIndex {
		return meta, ctx.Err()
	}
	return meta, nil
}

// collect calls add for every item of the index that mk builds that
// matches, in order. It holds the read lock for one chunk of items at a
// time, as listings do.
func (r *Registry) collect(ctx context.Context, mk func() cursorIndex, add func(ix cursorIndex, i int, now int64)) error {
	cursor := ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.mu.RLock()
		now := r.clock()
		ix := mk()
		i := ix.seek(cursor)
		for n := 0; i < ix.len() && n < maxVisit; i, n = i+1, n+1 {
			if ix.match(i, now) {
				add(ix, i, now)
			}
		}
		end := i >= ix.len()
		if !end {
			cursor = ix.key(i - 1)
		}
		r.mu.RUnlock()
		if end {
			return nil
		}
	}
}

// instanceValue is the record of in at now. Called with r.mu held.
func (r *Registry) instanceValue(in *instance, now int64) Instance {
	out := Instance{
		ID: in.id, Name: in.name, Version: in.version, Host: in.host,
		Active:            in.activeAt(now),
		LastSeen:          micros(r.wall(in.lastSeen())),
		HeartbeatInterval: in.interval.Truncate(time.Microsecond),
		System:            slices.Clone(in.getSystem()),
		Labels:            maps.Clone(in.labels),
		Owner:             in.owner,
		ExpiryGuarded:     in.guarded,
	}
	if !out.Active {
		out.InactiveSince = micros(r.wall(r.inactiveSince(in, now)))
	}
	if ts := in.tools.Load(); ts != nil {
		out.Tools = toolObjectsOf(ts)
	}
	return out
}

// toolValue is the grouped tool of members (all offering one tool name, by
// registration order), or false if no member qualifies.
func (r *Registry) toolValue(members []member, f Filter, now int64) (Tool, bool) {
	var t Tool
	for i := range members {
		m := &members[i]
		if !f.offers(m, now) {
			continue
		}
		active := m.in.activeAt(now)
		if t.Hosts == nil {
			t = Tool{Name: m.s.name, Description: m.s.desc, InputSchema: slices.Clone(m.s.input), Hosts: []ToolHost{}}
		}
		h := ToolHost{Host: m.in.host, InstanceID: m.in.id, Name: m.in.name, Owner: m.in.owner, Labels: maps.Clone(m.in.labels),
			Run:    RunCommand(m.in.host, m.s.name),
			Active: active, LastSeen: micros(r.wall(m.in.lastSeen()))}
		if m.x != nil {
			h.Command, h.RunAs, h.BecomeMethod, h.BecomeFlags = m.x.f[0], m.x.f[1], m.x.f[2], m.x.f[3]
		}
		t.Hosts = append(t.Hosts, h)
	}
	return t, t.Hosts != nil
}

func (r *Registry) hostValue(in *instance, now int64) Host {
	return Host{Host: in.host, Name: in.name, InstanceID: in.id, Version: in.version, ToolCount: in.toolCount(),
		Active: in.activeAt(now), LastSeen: micros(r.wall(in.lastSeen())), Owner: in.owner, Labels: maps.Clone(in.labels)}
}

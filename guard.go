// guard.go is the mass-expiry guard (Options.ExpiryGuard): when more than P%
// of the active instances would go inactive within one default TTL window
// (a partition or a DNS failure between the agents and the registry, not a
// fleet that died), the registry stops expiring. It looks when an expiry is
// due: an instance would go inactive within the window if it missed a
// heartbeat (not heard from for more than its interval) and its deadline
// falls within the window, the one due now included, so that a silence is
// held from its first expiry, however its deadlines are spread over the
// window. The instances whose deadline passes stay active and say
// "expiry_guarded"; heartbeats go on as usual. The guard releases when the silent share stays below P/2 for one
// window, after Options.ExpiryGuardMax, or when an admin releases it
// (ReleaseExpiryGuard); the instances whose deadline passed while guarded
// then expire. Expiries after a restart's grace do not count.

package registry

import (
	"fmt"
	"math"
	"time"
)

// DefaultExpiryGuardMax is the default Options.ExpiryGuardMax.
const DefaultExpiryGuardMax = 15 * time.Minute

// guardPeriod is how often the guard looks again while it holds instances.
const guardPeriod = time.Second

// expiryGuard is the guard's state; guarded by Registry.mu.
type expiryGuard struct {
	percent float64 // 0: off
	window  int64   // one default TTL, in nanoseconds
	max     int64   // the longest it holds, in nanoseconds

	on         bool
	since      int64
	reason     string
	held       []*instance // kept active while on
	belowSince int64       // when the silent share fell below percent/2; 0: not below
}

// GuardState says whether the mass-expiry guard holds expiries, since when
// and why.
type GuardState struct {
	Guarded bool
	Since   time.Time
	Reason  string
	Held    int // instances kept active past their deadline
}

// filter takes the instances due at now and returns those that settle may
// handle: while the guard is on, the active ones past their deadline are
// held instead. It engages and releases the guard: when an expiry is due, it
// looks ahead (silent) rather than back at the expiries already made, so
// that a mass silence is held from its first expiry even when its deadlines
// are spread over the window. Called with r.mu held.
func (g *expiryGuard) filter(r *Registry, due []*instance, now int64) []*instance {
	if g.percent <= 0 {
		return due
	}
	g.check(r, now)
	var would []*instance
	rest := due[:0:0]
	counted := false
	for _, in := range due {
		seen, active := unpack(in.live.Load())
		if active && now > in.deadline(seen) {
			would = append(would, in)
			counted = counted || !in.graced
		} else {
			rest = append(rest, in)
		}
	}
	if !g.on && counted {
		if n, base := g.silent(r, now), r.v.active; float64(n) > g.percent/100*float64(base) {
			g.on, g.since, g.belowSince = true, now, 0
			g.reason = fmt.Sprintf("%d of %d active instances would go inactive within %v (more than %g%%)",
				n, base, time.Duration(g.window), g.percent)
			r.log.Warn("expiry guard on: expiries stopped", "reason", g.reason)
		}
	}
	if !g.on {
		return append(rest, would...)
	}
	for _, in := range would {
		if !in.guarded {
			in.guarded, in.heldFloor = true, in.floor
			in.floor = math.MaxInt64 // active in every read; out of the heap
			r.v.due.remove(in)
			g.held = append(g.held, in)
		}
	}
	return rest
}

// silent counts the active instances that would go inactive within one
// window if nothing changes: those the guard holds that have not
// heartbeated since their deadline, and those that missed a heartbeat (not
// heard from for more than their interval) whose deadline falls within the
// window, the ones already past it included. Missing a heartbeat is what
// tells a silent instance from a healthy one, whose deadline is always
// within one TTL too. An instance whose expiry is not a mass expiry
// (graced: a restart's grace, a guard's release) does not count. Its cost is
// one step per instance due within the window. Called with r.mu held.
func (g *expiryGuard) silent(r *Registry, now int64) int {
	n := 0
	for _, in := range g.held {
		if seen, active := unpack(in.live.Load()); active && !in.deleted && max(seen+in.ttl, in.heldFloor) < now {
			n++
		}
	}
	// A heap key is never later than the deadline (heartbeats move the
	// deadline, not the key), so every instance due within the window is
	// visited.
	end := now + g.window
	r.v.due.visit(end+1, func(in *instance) {
		seen, active := unpack(in.live.Load())
		if active && !in.graced && now-seen > int64(in.interval) && in.deadline(seen) <= end {
			n++
		}
	})
	return n
}

// check releases the guard when its time is up or the silence is over.
// Called with r.mu held.
func (g *expiryGuard) check(r *Registry, now int64) {
	if !g.on {
		return
	}
	if now-g.since >= g.max {
		g.release(r, fmt.Sprintf("held for %v, the most --expiry-guard-max allows", time.Duration(g.max)))
		return
	}
	silent := g.silent(r, now)
	if float64(silent) >= g.percent/200*float64(max(r.v.active, 1)) {
		g.belowSince = 0
		return
	}
	if g.belowSince == 0 {
		g.belowSince = now
	}
	if now-g.belowSince >= g.window {
		g.release(r, fmt.Sprintf("%d instances silent, below %g%% for %v", silent, g.percent/2, time.Duration(g.window)))
	}
}

// release ends the guard: the held instances whose deadline passed expire
// at the next settle, and are not counted as a mass expiry. Called with
// r.mu held.
func (g *expiryGuard) release(r *Registry, why string) {
	for _, in := range g.held {
		in.guarded, in.floor, in.graced = false, in.heldFloor, true
		if seen, active := unpack(in.live.Load()); active && !in.deleted {
			r.v.due.set(in, in.deadline(seen))
		}
	}
	r.log.Warn("expiry guard off: expiries resume", "reason", why, "held", len(g.held))
	*g = expiryGuard{percent: g.percent, window: g.window, max: g.max}
	r.wakeRun()
}

// next bounds when Run looks again: every guardPeriod while the guard is on.
func (g *expiryGuard) next(next, now int64) int64 {
	if g.on {
		return min(next, now+int64(guardPeriod))
	}
	return next
}

// ExpiryGuard returns the state of the mass-expiry guard.
func (r *Registry) ExpiryGuard() GuardState {
	r.mu.RLock()
	defer r.mu.RUnlock()
	g := &r.expiry
	if !g.on {
		return GuardState{}
	}
	return GuardState{Guarded: true, Since: r.wall(g.since), Reason: g.reason, Held: len(g.held)}
}

// ReleaseExpiryGuard ends the mass-expiry guard at once, if it is on: the
// instances it held whose deadline passed then expire. It reports whether
// the guard was on.
func (r *Registry) ReleaseExpiryGuard() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.expiry.on {
		return false
	}
	r.expiry.release(r, "released by hand")
	return true
}

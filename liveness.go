// liveness.go holds the liveness rule and everything that applies it: an
// instance is active while now - last_seen <= 3 x its heartbeat interval
// (its deadline), never before a floor (the grace after a restart); the
// packed liveness word that heartbeats move with a compare-and-swap; and
// the state changes of the view that liveness makes (expiry at the
// deadline, deletion after the retention, revival by a heartbeat,
// deregistration).

package registry

import "time"

// ttlFactor is how many heartbeat intervals an instance may miss before it is
// inactive: it is active while now - last_seen <= ttlFactor x interval.
const ttlFactor = 3

// pack makes the liveness word: seen is a clock offset, and the low bit says
// whether the instance is active.
func pack(seen int64, active bool) int64 {
	if active {
		return seen<<1 | 1
	}
	return seen << 1
}

func unpack(l int64) (seen int64, active bool) { return l >> 1, l&1 == 1 }

// touch moves last_seen to now if the instance is active and within its
// deadline, and reports whether it did. Otherwise the heartbeat changes the
// instance's state and must take the slow path.
func (in *instance) touch(now int64) bool {
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		if !active || now > in.deadline(seen) {
			return false
		}
		if now <= seen { // a later heartbeat won, or the clock stood still
			return true
		}
		if in.live.CompareAndSwap(l, pack(now, true)) {
			return true
		}
	}
}

// activeAt reports whether the instance is active at clock offset now: a read
// never shows an instance active after its deadline, even before Purge runs.
func (in *instance) activeAt(now int64) bool {
	seen, active := unpack(in.live.Load())
	return active && now <= in.deadline(seen)
}

// deadline is the last moment an instance last seen at seen is active.
func (in *instance) deadline(seen int64) int64 { return max(seen+in.ttl, in.floor) }

func (in *instance) lastSeen() int64 {
	seen, _ := unpack(in.live.Load())
	return seen
}

// deregister marks in inactive, reporting whether it was active.
func (v *view) deregister(in *instance, now int64, retain time.Duration) bool {
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		if !active {
			return false
		}
		if in.live.CompareAndSwap(l, pack(seen, false)) {
			v.markInactive(in, min(now, in.deadline(seen)), retain, EventDeregistered)
			return true
		}
	}
}

// revive makes in active again, last seen now.
func (v *view) revive(in *instance, now int64) {
	if in.touch(now) { // another heartbeat revived it first
		return
	}
	seen, _ := unpack(in.live.Load())
	now = max(now, seen) // a heartbeat that waited must not move last_seen back
	in.live.Store(pack(now, true))
	in.index = v.bump()
	v.active++
	v.oldest.remove(in)
	v.touchTools(in)
	v.due.set(in, in.deadline(now))
	v.record(EventActive, in)
}

// settle applies what is due for in at now: expiry at its deadline, and
// reports whether its retention has passed too (the caller deletes it, with
// others: view.delete). Otherwise it moves in's heap key to its current
// deadline (heartbeats extend deadlines without touching the heap).
func (v *view) settle(in *instance, now int64, retain time.Duration) (expired, gone bool) {
	if in.deleted {
		return false, false
	}
	for {
		l := in.live.Load()
		seen, active := unpack(l)
		if !active {
			break
		}
		dl := in.deadline(seen)
		if now <= dl {
			if in.graced && seen+in.ttl > in.floor {
				in.graced = false // it heartbeated past its grace: counted again
			}
			v.due.set(in, dl)
			return false, false
		}
		if in.live.CompareAndSwap(l, pack(seen, false)) {
			v.markInactive(in, dl, retain, EventInactive)
			expired = true
			break
		}
	}
	if retain < 0 { // kept forever: nothing more is due
		v.due.remove(in)
		return expired, false
	}
	if end := in.inactiveAt + int64(retain); now <= end {
		v.due.set(in, end)
		return expired, false
	}
	return expired, true
}

// inactiveSince is when in went inactive: when it was marked so, or its
// deadline if a read at now sees it past its deadline before Purge ran.
// Called with r.mu held.
func (r *Registry) inactiveSince(in *instance, now int64) int64 {
	seen, active := unpack(in.live.Load())
	if active {
		return min(in.deadline(seen), now)
	}
	return in.inactiveAt
}

// restored sets the liveness of in, loaded at now from a record that says
// whether it was active, by the restart rule. The deadline stays last_seen
// + 3 x its interval. If that is still ahead, it keeps it. If it fell while
// the registry was down, the instance gets a grace from now of
// min(3 x its own interval, 3 x defaultInterval): an agent that runs has
// time to heartbeat (its heartbeats may have fallen into the restart), and
// a dead one with a long interval expires soon. One that was inactive
// keeps when it became inactive (now, if the record does not say).
func (in *instance) restored(active bool, inactiveSince time.Time, base time.Time, now int64, defaultInterval time.Duration) {
	switch {
	case active:
		if seen, _ := unpack(in.live.Load()); seen+in.ttl < now {
			in.floor = now + min(in.ttl, int64(ttlFactor*defaultInterval))
			in.graced = true
		}
	case inactiveSince.IsZero():
		in.inactiveAt = now
	default:
		in.inactiveAt = int64(inactiveSince.Sub(base))
	}
}

func (v *view) markInactive(in *instance, at int64, retain time.Duration, kind string) {
	in.inactiveAt = at
	in.index = v.bump()
	v.active--
	if kind == EventInactive {
		v.expiries++
	}
	v.oldest.push(in)
	v.touchTools(in)
	if retain < 0 {
		v.due.remove(in)
	} else {
		v.due.set(in, at+int64(retain))
	}
	v.record(kind, in)
}

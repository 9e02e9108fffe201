// cache.go keeps the encoded answers of GET /tools/{name}, the hot lookup:
// a lookup, or each of thousands of woken waiters, writes bytes encoded once
// instead of encoding the tool again. An entry is valid while its tool's
// index is unchanged and no deadline has come due (a due deadline could
// change which instances are active before Purge records it). An answer too
// large for an entry, or one that finds the cache's budget spent by bodies
// still being written to slow readers, streams instead, a chunk at a time.

package registry

import (
	"hash/maphash"
	"net/http"
)

// maxCacheBytes bounds the memory of cached answers, those in the cache and
// those evicted but still being written to a reader: enough for the hot
// tools of a large fleet, small next to the registry itself. An entry is at
// most maxCacheEntry.
const (
	maxCacheBytes = 16 << 20
	maxCacheEntry = maxCacheBytes / 4
	maxLargeKeys  = 1024 // answers remembered as too large for an entry
)

type cacheKey struct {
	name, host, labels       string // labels: the filter's, canonical (labelKey)
	activeOnly, detail, none bool   // none: the filter selects nothing (Filter.none)
}

type cachedAnswer struct {
	index uint64
	beats uint64 // the heartbeat count, for answers that show last_seen (detail)
	body  *body
}

type answerCache struct {
	budget // mu guards m and large
	m      map[cacheKey]*cachedAnswer
	large  map[cacheKey]bool // the last answer was larger than an entry: stream it at once
}

// serveTool answers GET /tools/{name} as f selects it: from the cache when
// it can, else encoded, into the cache when it fits, or streamed.
func (r *Registry) serveTool(a *answer, name string, f Filter, detail bool) {
	k := cacheKey{name, f.Host, labelKey(f.Labels), f.ActiveOnly, detail, f.none}
	c := &r.cache
	r.mu.RLock()
	idx, beats := r.v.toolIndex(name), r.beatsIf(detail)
	next, pending := r.v.due.next()
	fresh := !pending || r.clock() < next
	var hit *body
	large := false
	if fresh {
		c.mu.Lock()
		if e := c.m[k]; e != nil && e.index == idx && e.beats == beats {
			hit = e.body
			hit.refs.Add(1)
		}
		large = c.large[k]
		c.mu.Unlock()
	}
	r.mu.RUnlock()
	if hit != nil {
		a.index = idx
		a.shared(hit)
		hit.release()
		return
	}
	missing := false
	write := func(s *chunker) bool {
		idx, beats = r.v.toolIndex(name), r.beatsIf(detail)
		next, pending := r.v.due.next()
		fresh = !pending || s.now < next
		a.index = idx
		found, ok := r.writeTool(s, r.tools(f, detail).(toolIndex).members, name, f, detail)
		missing = !found
		return found && ok
	}
	if fresh && !large {
		kp := c.keeper(r.seed)
		err := r.encode(kp.emit, write)
		switch {
		case missing:
			kp.drop()
			a.whole(http.StatusNotFound, toolNotFound)
			return
		case err == nil:
			b := kp.body()
			if fresh { // still: a deadline may have come due since
				c.put(k, idx, beats, b)
			}
			a.shared(b)
			b.release()
			return
		}
		kp.drop()
		if kp.tried > 0 {
			c.remember(k, true)
		}
	}
	err := r.encode(a.emit, write)
	switch {
	case missing:
		a.whole(http.StatusNotFound, toolNotFound)
	case err == nil && large && a.n <= maxCacheEntry:
		c.remember(k, false) // it shrank: try the cache again
	}
}

var toolNotFound = []byte(`{"detail":"Tool not found"}`)

// keeper returns a keeper for an entry.
func (c *answerCache) keeper(seed maphash.Seed) *keeper {
	c.mu.Lock()
	if c.limit == 0 {
		c.limit = maxCacheBytes
	}
	c.mu.Unlock()
	return newKeeper(&c.budget, seed, maxCacheEntry, c.room)
}

// room makes room for n more bytes, evicting entries that no reader holds,
// at random, down to 3/4 of the budget if it must. Called with c.mu held.
func (c *answerCache) room(n int) bool {
	if c.held+n <= c.limit {
		return true
	}
	for k, e := range c.m { // map order is random
		if e.body.refs.Load() > 1 {
			continue // a reader writes it: dropping it would free nothing
		}
		delete(c.m, k)
		e.body.releaseLocked()
		if c.held+n <= c.limit*3/4 {
			break
		}
	}
	return c.held+n <= c.limit
}

// put keeps b (one more reference, the cache's) as the answer of k at
// (idx, beats).
func (c *answerCache) put(k cacheKey, idx, beats uint64, b *body) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[cacheKey]*cachedAnswer)
	}
	if old := c.m[k]; old != nil {
		old.body.releaseLocked()
	}
	b.refs.Add(1)
	c.m[k] = &cachedAnswer{index: idx, beats: beats, body: b}
}

// remember notes whether the answer of k was too large for an entry.
func (c *answerCache) remember(k cacheKey, large bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !large {
		delete(c.large, k)
		return
	}
	if c.large == nil || len(c.large) >= maxLargeKeys {
		c.large = make(map[cacheKey]bool)
	}
	c.large[k] = true
}

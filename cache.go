// cache.go keeps the encoded answers of GET /tools/{name}, the hot lookup:
// a lookup, or each of thousands of woken waiters, copies bytes instead of
// encoding the tool again. An entry is valid while its tool's index is
// unchanged and no deadline has come due (a due deadline could change which
// instances are active before Purge records it).

package registry

import (
	"fmt"
	"sync"
)

// maxCacheBytes bounds the memory of cached answers: enough for the hot
// tools of a large fleet, small next to the registry itself.
const maxCacheBytes = 16 << 20

type cacheKey struct {
	name, host, labels string // labels: the filter's, canonical (labelKey)
	activeOnly, detail bool
}

type cachedAnswer struct {
	index uint64
	beats uint64 // the heartbeat count, for answers that show last_seen (detail)
	body  []byte // never modified
	etag  string
}

type answerCache struct {
	mu    sync.Mutex
	m     map[cacheKey]*cachedAnswer
	bytes int
}

// toolAnswer returns GET /tools/{name} as f selects it, from the cache when
// it can.
func (r *Registry) toolAnswer(name string, f Filter, detail bool) (*cachedAnswer, error) {
	k := cacheKey{name, f.Host, labelKey(f.Labels), f.ActiveOnly, detail}
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.clock()
	idx := r.v.toolIndex(name)
	beats := r.beatsIf(detail)
	next, pending := r.v.due.next()
	fresh := !pending || now < next
	c := &r.cache
	if fresh {
		c.mu.Lock()
		e := c.m[k]
		c.mu.Unlock()
		if e != nil && e.index == idx && e.beats == beats {
			return e, nil
		}
	}
	bp := bufPool.Get().(*[]byte)
	buf, ok := r.appendTool((*bp)[:0], r.tools(f, detail).(toolIndex).members(name), f, detail, now)
	body := append([]byte(nil), buf...) // exact size: it may stay in the cache
	*bp = buf[:0]
	bufPool.Put(bp)
	if !ok {
		return nil, fmt.Errorf("tool %q: %w", name, ErrNotFound)
	}
	e := &cachedAnswer{index: idx, beats: beats, body: body, etag: r.strongETag(body)}
	if fresh && len(body) <= maxCacheBytes/4 {
		c.mu.Lock()
		if old := c.m[k]; old != nil {
			c.bytes -= len(old.body)
		}
		if c.m == nil {
			c.m = make(map[cacheKey]*cachedAnswer)
		}
		if c.bytes+len(body) > maxCacheBytes {
			for k, old := range c.m { // map order is random: evict at random down to 3/4
				delete(c.m, k)
				c.bytes -= len(old.body)
				if c.bytes+len(body) <= maxCacheBytes*3/4 {
					break
				}
			}
		}
		c.m[k] = e
		c.bytes += len(body)
		c.mu.Unlock()
	}
	return e, nil
}

// list.go is the paging engine of listings: an ordered index seen through a
// filter (instances by registration order, tools by name, (host, name)
// groups), walked in chunks with the read lock held only while a chunk is
// filled, with cursors that never skip or repeat an item that did not change.

package registry

import (
	"slices"
	"strconv"
	"strings"
	"sync"
)

// chunkSize is how much of a listing is encoded under one hold of the lock,
// and maxVisit how many items are looked at (a filter may skip most).
const (
	chunkSize = 64 << 10
	maxVisit  = 4096
)

// A cursorIndex is an ordered index seen through a filter, as the listing
// driver walks it. Keys order the items; a cursor is the key of the last
// item of the previous page.
type cursorIndex interface {
	len() int
	key(i int) string
	seek(after string) int // the first position with a key greater than after
	match(i int, now int64) bool
	append(buf []byte, i int, now int64) ([]byte, bool) // false: no match, nothing appended
}

// list writes a JSON array of the items of the index that mk builds (called
// with the read lock held, once per chunk), starting after cursor and
// ending with the item whose key is until ("": the end of the index). emit
// receives the answer in chunks.
func (r *Registry) list(mk func() cursorIndex, cursor, until string, emit func([]byte) error) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := append((*bp)[:0], '[')
	defer func() { *bp = buf[:0] }()
	count := 0
	for {
		r.mu.RLock()
		now := r.clock()
		ix := mk()
		start, stop := ix.seek(cursor), ix.len()
		if until != "" {
			stop = ix.seek(until)
		}
		i := start
		for visited := 0; i < stop && len(buf) < chunkSize && visited < maxVisit; i, visited = i+1, visited+1 {
			mark := len(buf)
			if count > 0 {
				buf = append(buf, ',')
			}
			var ok bool
			if buf, ok = ix.append(buf, i, now); ok {
				count++
			} else {
				buf = buf[:mark]
			}
		}
		if i > start {
			cursor = ix.key(i - 1)
		}
		r.mu.RUnlock()
		if i >= stop {
			break
		}
		if err := emit(buf); err != nil {
			return err
		}
		buf = buf[:0]
	}
	buf = append(buf, ']')
	return emit(buf)
}

// pageEnd finds where a page of limit items after cursor ends, and
// returns the cursor of the next page ("" if there is none), so that a
// page can stream with its Link header. Items added between this walk and
// the page's own may make the page a little longer; none is skipped or
// repeated.
func (r *Registry) pageEnd(mk func() cursorIndex, cursor string, limit int) string {
	count := 0
	for {
		r.mu.RLock()
		now := r.clock()
		ix := mk()
		start := ix.seek(cursor)
		i := start
		for visited := 0; i < ix.len() && visited < maxVisit; i, visited = i+1, visited+1 {
			if !ix.match(i, now) {
				continue
			}
			if count == limit { // i starts the next page
				if i > start {
					cursor = ix.key(i - 1)
				}
				r.mu.RUnlock()
				return cursor
			}
			count++
		}
		end := i >= ix.len()
		if i > start {
			cursor = ix.key(i - 1)
		}
		r.mu.RUnlock()
		if end {
			return ""
		}
	}
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, chunkSize+chunkSize/4); return &b }}

// instIndex lists instances by registration order.
type instIndex struct {
	r      *Registry
	items  []*instance
	f      Filter
	detail bool
}

func seqKey(seq uint64) string { return strconv.FormatUint(seq, 10) }

func (x instIndex) len() int { return len(x.items) }

func (x instIndex) key(i int) string { return seqKey(x.items[i].seq) }

func (x instIndex) seek(after string) int {
	if after == "" {
		return 0
	}
	seq, _ := strconv.ParseUint(after, 10, 64) // validated by the caller
	i, found := slices.BinarySearchFunc(x.items, seq, bySeq)
	if found {
		i++
	}
	return i
}

func (x instIndex) match(i int, now int64) bool {
	in := x.items[i]
	return x.f.selects(in, now) && (x.f.Name == "" || in.name == x.f.Name) && (x.f.Host == "" || in.host == x.f.Host)
}

func (x instIndex) append(buf []byte, i int, now int64) ([]byte, bool) {
	if !x.match(i, now) {
		return buf, false
	}
	return x.r.appendInstance(buf, x.items[i], now, x.detail), true
}

// instances returns the index for GET /instances with f. With a host or name
// filter it gathers the few matching instances from the (host, name) groups
// instead of walking every instance.
func (r *Registry) instances(f Filter, detail bool) cursorIndex {
	if f.Host == "" && f.Name == "" {
		return instIndex{r, r.v.insts, f, detail}
	}
	var items []*instance
	for _, g := range r.v.groupsOf(f.Host) {
		if f.Name == "" || g.name == f.Name {
			items = append(items, g.members...)
		}
	}
	slices.SortFunc(items, func(a, b *instance) int { return bySeq(a, b.seq) })
	return instIndex{r, items, f, detail}
}

// groupsOf returns the (host, name) groups of host, or all groups if host
// is empty.
func (v *view) groupsOf(host string) []*hostGroup {
	if host == "" {
		return v.hosts
	}
	lo, _ := slices.BinarySearchFunc(v.hosts, hostKey{host, ""}, groupOrder)
	hi := lo
	for hi < len(v.hosts) && v.hosts[hi].host == host {
		hi++
	}
	return v.hosts[lo:hi]
}

// toolIndex lists grouped tools by name.
type toolIndex struct {
	r       *Registry
	names   []string
	members func(name string) []member
	f       Filter
	detail  bool
}

func (x toolIndex) len() int { return len(x.names) }

func (x toolIndex) key(i int) string { return x.names[i] }

func (x toolIndex) seek(after string) int {
	if after == "" {
		return 0
	}
	i, found := slices.BinarySearch(x.names, after)
	if found {
		i++
	}
	return i
}

func (x toolIndex) match(i int, now int64) bool {
	for _, m := range x.members(x.names[i]) {
		if x.f.selects(m.in, now) {
			return true
		}
	}
	return false
}

func (x toolIndex) append(buf []byte, i int, now int64) ([]byte, bool) {
	return x.r.appendTool(buf, x.members(x.names[i]), x.f, x.detail, now)
}

// tools returns the index for GET /tools with f. With a host filter it
// gathers that host's tools, each with only that host's entries.
func (r *Registry) tools(f Filter, detail bool) cursorIndex {
	if f.Host == "" {
		return toolIndex{r, r.v.names, r.v.members, f, detail}
	}
	byName := make(map[string][]member)
	for _, g := range r.v.groupsOf(f.Host) {
		for _, in := range g.members {
			if ts := in.tools.Load(); ts != nil {
				for i := range ts.list {
					t := &ts.list[i]
					byName[t.s.name] = append(byName[t.s.name], newMember(in, t))
				}
			}
		}
	}
	names := make([]string, 0, len(byName))
	for name, ms := range byName {
		names = append(names, name)
		slices.SortFunc(ms, func(a, b member) int { return memberBySeq(a, b.in.seq) })
	}
	slices.Sort(names)
	return toolIndex{r, names, func(name string) []member { return byName[name] }, f, detail}
}

func (v *view) members(name string) []member {
	if e := v.tools[name]; e != nil {
		return e.members
	}
	return nil
}

// groupIndex lists /hosts entries by host, then name.
type groupIndex struct {
	r      *Registry
	groups []*hostGroup
	f      Filter
	detail bool
}

func groupKey(host, name string) string { return host + "\x00" + name }

func (x groupIndex) len() int { return len(x.groups) }

func (x groupIndex) key(i int) string { return groupKey(x.groups[i].host, x.groups[i].name) }

func (x groupIndex) seek(after string) int {
	if after == "" {
		return 0
	}
	host, name, _ := strings.Cut(after, "\x00")
	i, found := slices.BinarySearchFunc(x.groups, hostKey{host, name}, groupOrder)
	if found {
		i++
	}
	return i
}

func (x groupIndex) match(i int, now int64) bool {
	g := x.groups[i]
	return (x.f.Name == "" || g.name == x.f.Name) && g.pick(x.f, now) != nil
}

func (x groupIndex) append(buf []byte, i int, now int64) ([]byte, bool) {
	g := x.groups[i]
	if x.f.Name != "" && g.name != x.f.Name {
		return buf, false
	}
	in := g.pick(x.f, now)
	if in == nil {
		return buf, false
	}
	return x.r.appendHostEntry(buf, in, x.detail, now), true
}

func (r *Registry) hosts(f Filter, detail bool) cursorIndex {
	return groupIndex{r, r.v.groupsOf(f.Host), f, detail}
}

// pick chooses the instance a (host, name) group shows: an active one if
// any, and among those the most recently registered.
func (g *hostGroup) pick(f Filter, now int64) *instance {
	var best *instance
	bestActive := false
	for _, in := range g.members {
		if !f.selects(in, now) {
			continue
		}
		a := in.activeAt(now)
		if best == nil || (a && !bestActive) || (a == bestActive && in.registered >= best.registered) {
			best, bestActive = in, a
		}
	}
	return best
}

// maxLimit is the largest page size.
const maxLimit = 100_000

// cursorOK checks that a cursor has the shape of the listing's keys.
func cursorOK(cursor string, numeric bool) bool {
	if cursor == "" || !numeric {
		return true
	}
	_, err := strconv.ParseUint(cursor, 10, 64)
	return err == nil
}

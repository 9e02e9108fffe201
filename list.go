// list.go is the paging engine of listings: an ordered index seen through a
// filter (instances by registration order, tools by name, (host, name)
// groups), encoded into a stream of bounded chunks with the read lock held
// only while a chunk is filled, with cursors that never skip or repeat an
// item that did not change.

package registry

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// chunkSize is how much of an answer is encoded under one hold of the lock
// before it is written; maxChunk bounds a chunk: an encoder starts no new
// part past chunkSize and splits long immutable text at maxChunk, so that
// one large item (a tool on 30,000 hosts) costs a chunk of memory, not its
// size. maxVisit is how many items are looked at under one hold of the lock
// (a filter may skip most).
const (
	chunkSize = 32 << 10
	maxChunk  = chunkSize + chunkSize/4
	maxVisit  = 4096
)

// bufCap is the capacity of a chunk's buffer: maxChunk and room for the few
// fixed bytes (a quote, a brace, a field of at most MaxFieldBytes escaped)
// an encoder appends past it before its next check, so that it never grows.
const bufCap = maxChunk + maxChunk/8

// A chunker is the chunk an answer is encoded into. Encoders append to buf
// with r.mu read-locked; once it is full, flush writes it with the lock
// released and takes the lock again: whatever an encoder read from the
// indexes before a flush must be looked up again after it (gen counts the
// releases). Text that outlives the lock (a record's encoded head, a tool's
// members, a system object: all immutable) is split across chunks as it
// comes.
type chunker struct {
	r    *Registry
	buf  []byte
	now  int64 // the clock when the lock was last taken
	gen  int   // counts releases of the lock
	emit func(chunk []byte, last bool) error
	err  error // what ended the answer early (errNotModified, errHeadOnly, a write's error)
	held bool  // r.mu is read-locked

	// While a listing writes one of its items: the index and position, so
	// that a flush inside the item can note the item's key before the
	// index it came from goes stale.
	ix  cursorIndex
	at  int
	key string
}

// encode runs fn with the read lock held on a chunker whose chunks go to
// emit, the last with last set, unless fn reports false (it stopped: an
// error, or an answer that needs no body). It returns the chunker's error.
func (r *Registry) encode(emit func(chunk []byte, last bool) error, fn func(s *chunker) bool) error {
	bp := bufPool.Get().(*[]byte)
	s := chunker{r: r, buf: (*bp)[:0], emit: emit}
	defer func() {
		if s.held {
			s.unlock()
		}
		if cap(s.buf) <= bufCap { // a buffer that grew is not kept
			*bp = s.buf[:0]
		}
		bufPool.Put(bp)
	}()
	s.lock()
	ok := fn(&s)
	s.unlock()
	if ok && s.err == nil {
		s.err = emit(s.buf, true)
	}
	return s.err
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, bufCap); return &b }}

func (s *chunker) lock() {
	s.r.mu.RLock()
	s.held = true
	s.now = s.r.clock()
}

func (s *chunker) unlock() {
	s.held = false
	s.r.mu.RUnlock()
}

// full reports whether the chunk is full: encoders check it between parts.
func (s *chunker) full() bool { return len(s.buf) >= chunkSize }

// flush writes the chunk with the lock released. It reports false if the
// answer ends there.
func (s *chunker) flush() bool {
	if s.err != nil {
		return false
	}
	if s.ix != nil { // inside a listing's item: note its key while it is valid
		s.key, s.ix = s.ix.key(s.at), nil
	}
	s.unlock()
	s.err = s.emit(s.buf, false)
	s.buf = s.buf[:0]
	s.gen++
	s.lock()
	return s.err == nil
}

// next is a boundary between parts: it flushes a full chunk. It reports
// false if the answer ends.
func (s *chunker) next() bool { return !s.full() || s.flush() }

// yield releases the lock for a moment (a long walk that fills no chunk).
func (s *chunker) yield() {
	s.unlock()
	s.gen++
	s.lock()
}

// text appends immutable text, split across chunks.
func (s *chunker) text(t string) bool {
	for len(s.buf)+len(t) > maxChunk {
		n := max(maxChunk-len(s.buf), 0)
		s.buf = append(s.buf, t[:n]...)
		t = t[n:]
		if !s.flush() {
			return false
		}
	}
	s.buf = append(s.buf, t...)
	return true
}

// bytes is text for immutable bytes.
func (s *chunker) bytes(b []byte) bool {
	for len(s.buf)+len(b) > maxChunk {
		n := max(maxChunk-len(s.buf), 0)
		s.buf = append(s.buf, b[:n]...)
		b = b[n:]
		if !s.flush() {
			return false
		}
	}
	s.buf = append(s.buf, b...)
	return true
}

// jsonString appends str as a JSON string (appendString), split across
// chunks at rune boundaries, so that a field of any length costs a chunk.
func (s *chunker) jsonString(str string) bool {
	if len(s.buf)+6*len(str)+2 <= maxChunk {
		s.buf = appendString(s.buf, str)
		return true
	}
	s.buf = append(s.buf, '"')
	for len(str) > 0 {
		n := min(len(str), max(maxChunk-len(s.buf), 6)/6)
		for n < len(str) && n > 0 && !utf8.RuneStart(str[n]) {
			n-- // a rune is escaped whole
		}
		if n == 0 { // the first rune, at most 4 bytes: no rune spans past it
			for n = 1; n < len(str) && n < utf8.UTFMax && !utf8.RuneStart(str[n]); n++ {
			}
		}
		s.buf = appendStringBody(s.buf, str[:n])
		str = str[n:]
		if !s.next() {
			return false
		}
	}
	s.buf = append(s.buf, '"')
	return true
}

// A cursorIndex is an ordered index seen through a filter, as the listing
// driver walks it. Keys order the items; a cursor is the key of the last
// item of the previous page.
type cursorIndex interface {
	len() int
	key(i int) string
	seek(after string) int // the first position with a key greater than after
	match(i int, now int64) bool
	// write writes item i, which matches at s.now. It may flush; it
	// reports false if the answer ends.
	write(s *chunker, i int) bool
}

// A frame is what a listing writes around and between its items.
type frame struct{ open, sep, close string }

// jsonArray frames a listing as a JSON array.
var jsonArray = frame{"[", ",", "]"}

// list writes the items of the index that mk builds (called with the read
// lock held, again after each flush), starting after cursor and ending with
// the item whose key is until ("": the end of the index), framed by fr. It
// reports false if the answer ended early.
func (r *Registry) list(s *chunker, mk func() cursorIndex, cursor, until string, fr frame) bool {
	if !s.text(fr.open) {
		return false
	}
	count := 0
	for {
		ix := mk()
		start, stop := ix.seek(cursor), ix.len()
		if until != "" {
			stop = ix.seek(until)
		}
		again := false
		for i, visited := start, 0; i < stop; i, visited = i+1, visited+1 {
			if visited == maxVisit {
				cursor = ix.key(i - 1)
				s.yield()
				again = true
				break
			}
			if !ix.match(i, s.now) {
				continue
			}
			if count > 0 {
				s.buf = append(s.buf, fr.sep...)
			}
			gen := s.gen
			s.ix, s.at = ix, i
			if !ix.write(s, i) {
				return false
			}
			s.ix = nil
			count++
			if s.gen != gen { // flushed inside the item: ix is stale
				cursor = s.key
				again = true
				break
			}
			if s.full() {
				cursor = ix.key(i)
				if !s.flush() {
					return false
				}
				again = true
				break
			}
		}
		if !again {
			return s.text(fr.close)
		}
	}
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

func (x instIndex) write(s *chunker, i int) bool { return x.r.writeInstance(s, x.items[i], x.detail) }

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
	ms := x.members(x.names[i])
	for j := range ms {
		if x.f.offers(&ms[j], now) {
			return true
		}
	}
	return false
}

func (x toolIndex) write(s *chunker, i int) bool {
	_, ok := x.r.writeTool(s, x.members, x.names[i], x.f, x.detail)
	return ok
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

func (x groupIndex) write(s *chunker, i int) bool {
	return x.r.writeHostEntry(s, x.groups[i].pick(x.f, s.now), x.detail)
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

// streaming_internal_test.go checks from inside the package that answers
// stream in bounded chunks: no chunk or write is larger than its bound
// however large one item is (a tool on thousands of hosts, a record of
// thousands of tools, a long text), the bytes do not depend on where the
// chunks split, an item that spans chunks stays whole while writes come
// between them, streamed answers have weak ETags made from the indexes that
// change whenever their bytes do, and a HEAD encodes one chunk at most.

package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// testClock is a clock for Options.Now that moves only when told.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// wideRegistry holds answers with large items: the tool "wide" on hosts
// instances (host-0000 ...), "tools" with 1,500 tools of its own, "sys"
// with a 200 KB system object and 16 KB of labels, and "long" whose one tool has a
// 100 KB description with multibyte text.
func wideRegistry(t testing.TB, hosts int) (*Registry, *testClock) {
	t.Helper()
	clock := &testClock{now: time.Unix(1_700_000_000, 0)}
	r, err := New(Options{Now: clock.Now, MaxBodyBytes: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	reg := func(id, host string, labels map[string]string, tools ...string) {
		t.Helper()
		if err := r.Register(ctx, Registration{ID: id, Name: "app", Version: "1", Host: host, Labels: labels}); err != nil {
			t.Fatal(err)
		}
		raw := make([]json.RawMessage, len(tools))
		for i, tl := range tools {
			raw[i] = json.RawMessage(tl)
		}
		if err := r.UpdateTools(ctx, id, raw); err != nil {
			t.Fatal(err)
		}
	}
	for i := range hosts {
		reg(fmt.Sprintf("w-%04d", i), fmt.Sprintf("host-%04d", i), nil,
			`{"name":"wide","description":"one tool on every host","x-command":"/usr/local/bin/wide","x-run-as":"svc"}`)
	}
	var many []string
	for i := range 1500 {
		many = append(many, fmt.Sprintf(`{"name":"t-%04d","description":"tool %d of many","inputSchema":{"type":"object"}}`, i, i))
	}
	reg("tools", "host-tools", nil, many...)
	labels := map[string]string{}
	for i := range MaxLabels {
		labels[fmt.Sprintf("label-%02d", i)] = strings.Repeat("é", MaxFieldBytes/2)
	}
	reg("sys", "host-sys", labels, `{"name":"wide"}`)
	var sys strings.Builder
	sys.WriteString(`{"pid":1,"blob":"`)
	for range 20000 {
		sys.WriteString(`0123456789`)
	}
	sys.WriteString(`"}`)
	if _, _, err := r.heartbeat(ctx, "sys", json.RawMessage(sys.String())); err != nil {
		t.Fatal(err)
	}
	reg("long", "host-long", nil, `{"name":"long","description":"`+strings.Repeat("ü€x", 10000)+`"}`)
	return r, clock
}

// writeSizes records the size of each Write of an answer.
type writeSizes struct {
	*httptest.ResponseRecorder
	sizes []int
}

func (w *writeSizes) Write(b []byte) (int, error) {
	w.sizes = append(w.sizes, len(b))
	return w.ResponseRecorder.Write(b)
}

func serve(r *Registry, method, target string, hdr ...string) *writeSizes {
	req := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	w := &writeSizes{ResponseRecorder: httptest.NewRecorder()}
	r.ServeHTTP(w, req)
	return w
}

// wideTargets are the answers of wideRegistry with a large item.
var wideTargets = []string{
	"/instances", "/instances?detail=true", "/instances?limit=3", "/instances/tools", "/instances/sys", "/instances/long",
	"/tools?active=false", "/tools?detail=true", "/tools?host=host-0001", "/tools/wide", "/tools/wide?detail=true",
	"/tools/long", "/hosts?detail=true", "/export/superputty?user=ops", "/export/mobaxterm",
}

// TestChunksBounded: every chunk of an answer is at most maxChunk and every
// write at most writeChunk, streamed or shared, whatever its items' size;
// the blocking query's shared answer is the same bytes.
func TestChunksBounded(t *testing.T) {
	r, _ := wideRegistry(t, 3000)
	for _, target := range wideTargets {
		t.Run(target, func(t *testing.T) {
			w := serve(r, "GET", target)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d: %.200s", w.Code, w.Body)
			}
			if !strings.HasPrefix(target, "/export") && !json.Valid(w.Body.Bytes()) {
				t.Fatalf("not JSON: %.300s", w.Body)
			}
			if m := slices.Max(w.sizes); m > writeChunk {
				t.Errorf("a write of %d bytes, want at most %d", m, writeChunk)
			}
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			idx := w.Header().Get("X-Registry-Index")
			shared := serve(r, "GET", target+sep+"index=1&wait=1s")
			if !bytes.Equal(shared.Body.Bytes(), w.Body.Bytes()) {
				t.Errorf("the blocking query's answer differs from the plain one (%d and %d bytes)", shared.Body.Len(), w.Body.Len())
			}
			if got := shared.Header().Get("X-Registry-Index"); got != idx {
				t.Errorf("index %s, want %s", got, idx)
			}
			if m := slices.Max(shared.sizes); m > writeChunk {
				t.Errorf("shared: a write of %d bytes, want at most %d", m, writeChunk)
			}
		})
	}
}

// encodeAt encodes fn into chunks, the first prefilled with pad bytes, and
// returns what follows the pad and the largest chunk.
func encodeAt(r *Registry, pad int, fn func(s *chunker) bool) ([]byte, int) {
	var out []byte
	largest := 0
	emit := func(b []byte, _ bool) error {
		out = append(out, b...)
		largest = max(largest, len(b))
		return nil
	}
	s := chunker{r: r, buf: make([]byte, pad, bufCap), emit: emit}
	s.lock()
	ok := fn(&s)
	s.unlock()
	if ok {
		emit(s.buf, true)
	}
	return out[pad:], largest
}

// TestChunkSplitsDoNotChangeBytes: the same answer encoded with its chunks
// split at other places (a prefilled first chunk) has the same bytes, and
// no chunk outgrows its buffer (bufCap).
func TestChunkSplitsDoNotChangeBytes(t *testing.T) {
	r, _ := wideRegistry(t, 2000)
	f := Filter{}
	encoders := map[string]func(s *chunker) bool{
		"instances": func(s *chunker) bool {
			return r.list(s, func() cursorIndex { return r.instances(f, true) }, "", "", jsonArray)
		},
		"tools": func(s *chunker) bool {
			return r.list(s, func() cursorIndex { return r.tools(f, true) }, "", "", jsonArray)
		},
		"one tool": func(s *chunker) bool {
			_, ok := r.writeTool(s, r.v.members, "wide", f, true)
			return ok
		},
		"one record": func(s *chunker) bool { return r.writeInstance(s, r.lookup("tools"), true) },
		"superputty": func(s *chunker) bool {
			var n exportCounts
			return r.list(s, func() cursorIndex { return exportIndex{r.hosts(f, false).(groupIndex), superPuTTY, "ops", &n} }, "", "", superPuTTY.frame)
		},
	}
	for name, fn := range encoders {
		t.Run(name, func(t *testing.T) {
			want, largest := encodeAt(r, 0, fn)
			if largest > bufCap {
				t.Errorf("a chunk of %d bytes, want at most %d", largest, bufCap)
			}
			if name != "superputty" && !json.Valid(want) {
				t.Fatalf("not JSON: %.300s", want)
			}
			for _, pad := range []int{1, 2, 5, 1000, chunkSize - 7, chunkSize, maxChunk - 3, maxChunk} {
				got, largest := encodeAt(r, pad, fn)
				if !bytes.Equal(got, want) {
					i := 0
					for i < min(len(got), len(want)) && got[i] == want[i] {
						i++
					}
					t.Errorf("pad %d: bytes differ at %d of %d (got %d bytes)", pad, i, len(want), len(got))
				}
				if largest > bufCap {
					t.Errorf("pad %d: a chunk of %d bytes, want at most %d", pad, largest, bufCap)
				}
			}
		})
	}
}

// TestJSONStringSplits: a long string written across chunks is the JSON
// string appendString makes, for text with multibyte runes, escapes and
// invalid UTF-8, wherever the chunks split.
func TestJSONStringSplits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	pieces := []string{"a", "é", "€", "𝄞", "\"", "\\", "\n", "\x01", "\xff", "\xe2\x82", "\x80", "<"}
	r, _ := New(Options{})
	for round := range 20 {
		var b strings.Builder
		for b.Len() < 3*maxChunk {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		str := b.String()
		want := appendString(nil, str)
		for _, pad := range []int{0, 1, 3, maxChunk - 10, rng.IntN(maxChunk)} {
			got, largest := encodeAt(r, pad, func(s *chunker) bool { return s.jsonString(str) })
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d, pad %d: %d bytes, want %d (valid UTF-8: %v)", round, pad, len(got), len(want), utf8.ValidString(str))
			}
			if largest > bufCap {
				t.Errorf("round %d, pad %d: a chunk of %d bytes", round, pad, largest)
			}
		}
	}
}

// TestItemSpanningChunksUnderWrites: while a grouped tool on 3,000 hosts is
// written a chunk at a time, writes come between the chunks (new hosts,
// hosts leaving, a host's tool changing). The answer stays JSON, no host
// entry is repeated, every host that offered the tool all along is there,
// in registration order, and so is every instance record of the listing.
func TestItemSpanningChunksUnderWrites(t *testing.T) {
	r, _ := wideRegistry(t, 3000)
	ctx := context.Background()
	step := 0
	emitWrites := func(out *[]byte) func(b []byte, last bool) error {
		return func(b []byte, last bool) error {
			*out = append(*out, b...)
			step++
			id := fmt.Sprintf("late-%04d", step)
			r.Register(ctx, Registration{ID: id, Name: "app", Version: "1", Host: "late-" + id})
			r.UpdateTools(ctx, id, []json.RawMessage{json.RawMessage(`{"name":"wide"}`)})
			r.Deregister(ctx, fmt.Sprintf("w-%04d", 2*step+1))                                                        // an odd one leaves
			r.UpdateTools(ctx, fmt.Sprintf("w-%04d", 4*step), []json.RawMessage{json.RawMessage(`{"name":"other"}`)}) // and one stops offering it
			return nil
		}
	}
	var out []byte
	if err := r.encode(emitWrites(&out), func(s *chunker) bool {
		_, ok := r.writeTool(s, r.v.members, "wide", Filter{}, false)
		return ok
	}); err != nil {
		t.Fatal(err)
	}
	if step < 5 {
		t.Fatalf("%d chunks: the item does not span chunks (test setup)", step)
	}
	var tool struct {
		Hosts []struct{ Host string }
	}
	if err := json.Unmarshal(out, &tool); err != nil {
		t.Fatalf("not JSON: %v", err)
	}
	seen := map[string]bool{}
	var order []string
	for _, h := range tool.Hosts {
		if seen[h.Host] {
			t.Errorf("host %s twice", h.Host)
		}
		seen[h.Host] = true
		order = append(order, h.Host)
	}
	for i := range 3000 {
		// Untouched: even ones that are not multiples of 4 up to the last
		// step's, and every one past the writes' reach.
		touched := i%2 == 1 && (i-1)/2 <= step || i%4 == 0 && i/4 <= step
		if h := fmt.Sprintf("host-%04d", i); !touched && !seen[h] {
			t.Errorf("%s offered the tool all along and is missing", h)
		}
	}
	if late := slices.IndexFunc(order, func(h string) bool { return strings.HasPrefix(h, "late") }); late < 0 || !slices.IsSorted(order[:late]) {
		t.Errorf("the hosts are not in registration order, the late ones last")
	}

	// A listing of records spanning chunks, with the same writes.
	out = out[:0]
	if err := r.encode(emitWrites(&out), func(s *chunker) bool {
		return r.list(s, func() cursorIndex { return r.instances(Filter{}, false) }, "", "", jsonArray)
	}); err != nil {
		t.Fatal(err)
	}
	var recs []struct {
		ID string `json:"instance_id"`
	}
	if err := json.Unmarshal(out, &recs); err != nil {
		t.Fatalf("listing: not JSON: %v", err)
	}
	ids := map[string]bool{}
	for _, rec := range recs {
		if ids[rec.ID] {
			t.Errorf("instance %s twice", rec.ID)
		}
		ids[rec.ID] = true
	}
	for _, id := range []string{"w-0000", "w-2999", "tools", "sys", "long"} {
		if !ids[id] {
			t.Errorf("instance %s is missing", id)
		}
	}
}

// noSharing makes every answer larger than a chunk stream: the budgets of
// shared bodies and of the lookup cache have no room.
func noSharing(r *Registry) {
	r.flights.limit = 1
	r.cache.limit = 1
}

// TestWeakETags: answers that stream carry a weak ETag made from the
// indexes. If-None-Match with it answers 304 before anything is encoded;
// it changes whenever the bytes do: with a change, at a deadline, and at a
// heartbeat for the answers that show last_seen, and only then; it differs
// between queries, not between a blocking query and a plain read.
func TestWeakETags(t *testing.T) {
	r, clock := wideRegistry(t, 1000)
	noSharing(r)
	ctx := context.Background()
	r.Register(ctx, Registration{ID: "short", Name: "app", Version: "1", Host: "host-short", HeartbeatInterval: time.Second})
	r.UpdateTools(ctx, "short", []json.RawMessage{json.RawMessage(`{"name":"wide"}`)})
	targets := []struct {
		target   string
		lastSeen bool // the answer shows last_seen
	}{
		{"/instances", true}, {"/instances?index=1&wait=1s", true}, {"/instances/sys", true},
		{"/tools?active=false", false}, {"/tools?detail=true", true}, {"/tools/wide", false}, {"/tools/wide?detail=true", true},
		{"/hosts", false}, {"/export/superputty", false}, {"/export/mobaxterm?user=ops", false},
	}
	get := func(target string, hdr ...string) *writeSizes {
		t.Helper()
		w := serve(r, "GET", target, hdr...)
		if w.Code != http.StatusOK && w.Code != http.StatusNotModified {
			t.Fatalf("GET %s: status %d", target, w.Code)
		}
		return w
	}
	before := map[string]*writeSizes{}
	etags := map[string]string{}
	for _, tt := range targets {
		w := get(tt.target)
		etag := w.Header().Get("ETag")
		if !strings.HasPrefix(etag, `W/"`) {
			t.Errorf("%s: ETag %s for %d bytes, want a weak one", tt.target, etag, w.Body.Len())
		}
		key := answerKey(httptest.NewRequest("GET", tt.target, nil))
		if other, ok := etags[etag]; ok && other != key {
			t.Errorf("%s and %s have the same ETag %s", tt.target, other, etag)
		}
		etags[etag] = key
		before[tt.target] = w
		for _, inm := range []string{etag, strings.TrimPrefix(etag, "W/"), `"x", ` + etag, "*"} {
			nm := get(tt.target, "If-None-Match", inm)
			if nm.Code != http.StatusNotModified || nm.Body.Len() != 0 || nm.Header().Get("ETag") != etag {
				t.Errorf("%s: If-None-Match %s: status %d, %d bytes, ETag %s; want 304, none, %s",
					tt.target, inm, nm.Code, nm.Body.Len(), nm.Header().Get("ETag"), etag)
			}
		}
	}
	// check asks each answer again with its last ETag: a new answer where
	// want says the bytes change (and they must). Where they do not, a
	// heartbeat must leave the ETag alone (strict); a change may move it.
	check := func(what string, strict bool, want func(target string, lastSeen bool) bool) {
		t.Helper()
		for _, tt := range targets {
			now := get(tt.target)
			changed := !bytes.Equal(now.Body.Bytes(), before[tt.target].Body.Bytes())
			if changed != want(tt.target, tt.lastSeen) {
				t.Fatalf("after %s: %s: body changed %v, want %v (test setup)", what, tt.target, changed, !changed)
			}
			w := get(tt.target, "If-None-Match", before[tt.target].Header().Get("ETag"))
			if changed && w.Code != http.StatusOK || !changed && strict && w.Code != http.StatusNotModified {
				t.Errorf("after %s: %s: status %d with the old ETag; the body changed: %v", what, tt.target, w.Code, changed)
			}
			before[tt.target] = now
		}
	}
	clock.advance(time.Second)
	if _, _, err := r.heartbeat(ctx, "sys", nil); err != nil {
		t.Fatal(err)
	}
	check("a heartbeat", true, func(_ string, lastSeen bool) bool { return lastSeen })
	clock.advance(3 * time.Second) // short's deadline: it goes inactive
	check("a deadline", false, func(target string, _ bool) bool {
		return target != "/instances/sys" && target != "/tools?active=false"
	})
	r.Register(ctx, Registration{ID: "new", Name: "app", Version: "1", Host: "host-new"})
	r.UpdateTools(ctx, "new", []json.RawMessage{json.RawMessage(`{"name":"wide"}`)})
	check("a registration", false, func(target string, _ bool) bool { return target != "/instances/sys" })
}

// TestHeadEncodesOneChunk: HEAD of a large listing answers GET's headers
// having encoded one chunk, not the whole body.
func TestHeadEncodesOneChunk(t *testing.T) {
	r, _ := wideRegistry(t, 3000)
	noSharing(r)
	for _, method := range []string{"GET", "HEAD"} {
		chunks := 0
		req := httptest.NewRequest(method, "/instances", nil)
		w := httptest.NewRecorder()
		a := r.newAnswer(w, req, 1, "application/json", 0)
		r.serveShared(a, false, func(s *chunker) bool {
			defer func() { chunks = s.gen }()
			return r.list(s, func() cursorIndex { return r.instances(Filter{}, false) }, "", "", jsonArray)
		})
		switch {
		case method == "GET" && chunks < 10:
			t.Fatalf("GET: %d chunks: the listing is too small (test setup)", chunks)
		case method == "HEAD" && chunks > 1:
			t.Errorf("HEAD encoded %d chunks, want 1", chunks)
		}
		if !strings.HasPrefix(w.Header().Get("ETag"), "W/") {
			t.Errorf("%s: ETag %q, want the weak one of a streamed answer", method, w.Header().Get("ETag"))
		}
	}
}

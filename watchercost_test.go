// watchercost_test.go checks what watchers cost writers: blocking queries
// on a large listing are answered once per flush (Options.NotifyInterval),
// not once per write, so a burst of writes costs each watcher a bounded
// number of answers; and the waiters that one change wakes share one
// encoding of a listing (up to 8 MiB, flights.go) instead of encoding it
// each.

package registry_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// postWrite posts body to url and returns the status.
func postWrite(hc *http.Client, url, body string) (int, error) {
	resp, err := hc.Post(url, "application/json", bytes.NewReader([]byte(body)))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// writeFigures are the figures of a run of writes.
type writeFigures struct {
	took    time.Duration // first to last
	slowest time.Duration // the longest write
	done    int           // writes made (fewer than asked if the cap came first)
}

// writesCap bounds a run of writes: a test whose writes are starved ends
// anyway, with the writes it could make.
const writesCap = 20 * time.Second

// timeWrites registers n new instances over HTTP, one after the other, at
// most one per pace, for at most writesCap, and returns how long they took.
func timeWrites(t *testing.T, url, prefix string, n int, pace time.Duration) writeFigures {
	t.Helper()
	hc := &http.Client{Timeout: 30 * time.Second}
	defer hc.CloseIdleConnections()
	var f writeFigures
	start := time.Now()
	for i := range n {
		if time.Since(start) > writesCap {
			break
		}
		if wait := time.Until(start.Add(time.Duration(i) * pace)); wait > 0 {
			time.Sleep(wait)
		}
		t0 := time.Now()
		st, err := postWrite(hc, url+"/instances", fmt.Sprintf(`{"instance_id":"%s-%d","name":"app","version":"1","host":"w-%d"}`, prefix, i, i))
		if err != nil || st != http.StatusCreated {
			t.Fatalf("write %d: status %d, %v", i, st, err)
		}
		f.slowest = max(f.slowest, time.Since(t0))
		f.done++
	}
	f.took = time.Since(start)
	return f
}

// TestBlockingQueriesOnLargeListing: watchers that loop on a blocking
// query of GET /instances larger than 1 MiB (the watchers woken by one
// flush share one encoding; each is sent its own copy) while 200 writes
// arrive over a second. Each watcher gets
// at most one answer per flush (NotifyInterval is 100 ms here, to make the
// bound visible), every watcher ends with the last write's index, and the
// writes take at most 3× their time without watchers (+2 s: sending the
// answers competes with them for the CPU; not checked with -race). 50
// watchers of a 1.2 MB listing, and 200 of 2.3 MB (466 MB a flush: the
// flushes space out for the bytes of the answers, waiters.go byteCost);
// with -race, 10 watchers and 50 writes.
func TestBlockingQueriesOnLargeListing(t *testing.T) {
	tests := []struct {
		name                      string
		watchers, writes, records int
		heavy                     bool // left out with -short and -race
	}{
		{"50 watchers of 1.2 MB", 50, 200, 100, false},
		{"200 watchers of 2.3 MB", 200, 200, 200, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.heavy && lighter() {
				t.Skip("left out with -short and -race")
			}
			watchers, writes, records := tt.watchers, tt.writes, tt.records
			if raceEnabled {
				watchers, writes = 10, 50
			}
			checkLargeListingWatchers(t, watchers, writes, records)
		})
	}
}

func checkLargeListingWatchers(t *testing.T, watchers, writes, records int) {
	const notify = 100 * time.Millisecond
	lb := serveLoopback(t, registry.Options{NotifyInterval: notify}, 0)
	fillFleet(t, lb.reg, records, bigTools(40))
	size := answerSize(t, lb.reg, "/instances")
	if size <= mib {
		t.Fatalf("GET /instances is %d bytes: small enough to be shared", size)
	}
	const pace = 5 * time.Millisecond // 200 writes over a second: ten flushes
	baseline := timeWrites(t, lb.url, "base", writes, pace)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: watchers}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	type watcher struct {
		answers, bytes atomic.Int64
		last           atomic.Uint64 // index of the last answer
	}
	ws := make([]watcher, watchers)
	var wg sync.WaitGroup
	start := registryIndex(t, lb.reg, "/instances")
	for i := range ws {
		w := &ws[i]
		w.last.Store(start)
		wg.Go(func() {
			for ctx.Err() == nil {
				req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/instances?index=%d&wait=30s", lb.url, w.last.Load()), nil)
				resp, err := hc.Do(req)
				if err != nil {
					return
				}
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					return
				}
				idx, _ := strconv.ParseUint(resp.Header.Get("X-Registry-Index"), 10, 64)
				w.answers.Add(1)
				w.bytes.Add(n)
				w.last.Store(idx)
			}
		})
	}
	pollUntil(t, 10*time.Second, "the watchers to park", func() bool { return goroutinesIn("registry.(*Registry).block") == watchers })
	began := time.Now()
	load := timeWrites(t, lb.url, "load", writes, pace)
	final := registryIndex(t, lb.reg, "/instances")
	pollUntil(t, 30*time.Second, "every watcher to see the last write", func() bool {
		for i := range ws {
			if ws[i].last.Load() < final {
				return false
			}
		}
		return true
	})
	// One answer per flush, from the first write until the last watcher
	// saw the last one, and one more for a flush in progress.
	window := time.Since(began)
	cancel()
	wg.Wait()
	maxAnswers := int64(window/notify) + 2
	var answers, bytesSent int64
	for i := range ws {
		w := &ws[i]
		answers += w.answers.Load()
		bytesSent += w.bytes.Load()
		if w.answers.Load() > maxAnswers {
			t.Errorf("watcher %d: %d answers in %v, want at most %d (one per %v flush)", i, w.answers.Load(), window, maxAnswers, notify)
		}
	}
	t.Logf("%d writes, one per %v: %v (slowest %v) alone, %d in %v (slowest %v) with %d watchers of a %d KB listing; "+
		"%d answers (%.1f per watcher) in %v, %d MB sent (an answer per write would be %d MB)",
		writes, pace, baseline.took, baseline.slowest, load.done, load.took, load.slowest, watchers, size/1000,
		answers, float64(answers)/float64(watchers), window, bytesSent>>20, int64(writes*watchers*size)>>20)
	if load.done < writes {
		t.Errorf("only %d of %d writes in %v with %d watchers", load.done, writes, writesCap, watchers)
	}
	// The race detector multiplies the watchers' encoding work ~10×: the
	// comparison means nothing then.
	if load.took > 3*baseline.took+2*time.Second && !raceEnabled {
		t.Errorf("the writes took %v with %d watchers, %v without", load.took, watchers, baseline.took)
	}
}

// TestWokenWaitersShareOneEncoding: the waiters that one change wakes on a
// listing of at most 1 MiB get the same bytes and strong ETag, encoded
// once: the fan-out allocates a few copies of the answer in all, not one
// per waiter. The control gives each waiter its own query string (an
// unknown parameter), which defeats the sharing: the same measure then
// sees an encoding per waiter.
func TestWokenWaitersShareOneEncoding(t *testing.T) {
	for _, shared := range []bool{true, false} {
		name := "same query"
		if !shared {
			name = "control, a query each"
		}
		t.Run(name, func(t *testing.T) { checkSharedFanOut(t, shared) })
	}
}

func checkSharedFanOut(t *testing.T, shared bool) {
	lb := serveLoopback(t, registry.Options{}, 0)
	fillFleet(t, lb.reg, 60, bigTools(40)) // ~700 KB
	waiters := 200
	if lighter() {
		waiters = 50
	}
	idx := registryIndex(t, lb.reg, "/instances")
	tr := &http.Transport{MaxIdleConnsPerHost: waiters}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	type answer struct {
		status int
		etag   string
		sum    [sha256.Size]byte
		n      int64
		err    error
		buf    []byte
		hash   hash.Hash
	}
	answers := make([]answer, waiters)
	for i := range answers {
		answers[i].buf = make([]byte, 32*kib) // before the measure
		answers[i].hash = sha256.New()
	}
	var wg sync.WaitGroup
	for i := range answers {
		a := &answers[i]
		target := fmt.Sprintf("%s/instances?index=%d&wait=30s", lb.url, idx)
		if !shared {
			target += fmt.Sprintf("&waiter=%d", i)
		}
		wg.Go(func() {
			resp, err := hc.Get(target)
			if err != nil {
				a.err = err
				return
			}
			defer resp.Body.Close()
			a.status, a.etag = resp.StatusCode, resp.Header.Get("ETag")
			a.n, a.err = io.CopyBuffer(a.hash, resp.Body, a.buf)
			a.hash.Sum(a.sum[:0])
		})
	}
	pollUntil(t, 10*time.Second, "the waiters to park", func() bool { return goroutinesIn("registry.(*Registry).block") == waiters })
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := lb.reg.Register(t.Context(), registry.Registration{ID: "new", Name: "app", Version: "1", Host: "h-new"}); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	size := answers[0].n
	alloc := int64(after.TotalAlloc - before.TotalAlloc)
	t.Logf("%d waiters woken on a %d KB listing: %d KB allocated in all (%d KB per waiter)",
		waiters, size/1000, alloc/1000, alloc/int64(waiters)/1000)
	if size <= 256*kib || size > mib {
		t.Fatalf("the listing is %d bytes, want in (256 KiB, 1 MiB]", size)
	}
	for i, a := range answers {
		if a.err != nil || a.status != http.StatusOK || a.n != size || a.sum != answers[0].sum ||
			a.etag != answers[0].etag || !strings.HasPrefix(a.etag, `"`) {
			t.Errorf("waiter %d: status %d, %d bytes, ETag %s, err %v; want 200 and the %d bytes and strong ETag %s of waiter 0",
				i, a.status, a.n, a.etag, a.err, size, answers[0].etag)
		}
	}
	limit := 4*size + int64(waiters)*64*kib
	switch {
	case shared && alloc > limit:
		t.Errorf("the fan-out allocated %d KB, want at most %d KB (4 answers + 64 KiB per waiter)", alloc/1000, limit/1000)
	case !shared && alloc < int64(waiters)*size:
		t.Errorf("control: %d KB allocated, want at least an answer per waiter (%d KB): the measure cannot see encodings", alloc/1000, int64(waiters)*size/1000)
	}
}

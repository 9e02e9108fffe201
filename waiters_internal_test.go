// waiters_internal_test.go checks the wake-up channels of blocking queries
// from inside the package: waiters that give up leave no channel behind;
// the flush interval grows with the watchers and the bytes answered them.

package registry

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// Waiters that give up leave no channel behind.
func TestWaitersThatGiveUpLeaveNoChannel(t *testing.T) {
	r, _ := New(Options{})
	for i := 0; i < 50; i++ {
		for _, path := range []string{"/tools/nope-%d", "/instances/nope-%d"} {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf(path, i)+"?index=99999999999999999&wait=1ms", nil))
			if w.Code != 404 {
				t.Fatalf("GET %s: %d", path, w.Code)
			}
		}
	}
	r.v.w.mu.Lock()
	n := len(r.v.w.byName)
	r.v.w.mu.Unlock()
	if n != 0 {
		t.Errorf("%d wait channels left after every waiter timed out", n)
	}
}

// The flush interval grows with the number of watchers, from the
// configured one to at most a second, so that waking them stays a bounded
// share of the CPU.
func TestFlushIntervalGrowsWithWatchers(t *testing.T) {
	tests := []struct {
		configured time.Duration
		watching   int64
		want       time.Duration
	}{
		{20 * time.Millisecond, 0, 20 * time.Millisecond},
		{20 * time.Millisecond, 100, 20 * time.Millisecond},
		{20 * time.Millisecond, 2000, 200 * time.Millisecond},
		{20 * time.Millisecond, 4000, 400 * time.Millisecond},
		{20 * time.Millisecond, 1_000_000, time.Second},
		{2 * time.Second, 1_000_000, 2 * time.Second}, // a configured interval beyond the cap stays
		{-1, 1_000_000, -1}, // every change told at once, as asked
	}
	for _, tt := range tests {
		w := watchers{interval: tt.configured, watching: func() int64 { return tt.watching }}
		if got := w.flushInterval(); got != tt.want {
			t.Errorf("interval %v, %d watching: %v, want %v", tt.configured, tt.watching, got, tt.want)
		}
	}
}

// The watchers the interval counts are the parked blocking queries and the
// open event streams.
func TestFlushIntervalCountsWatchers(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.counts.waiters.Add(1500)
	r.counts.streams.Add(500)
	r.v.w.mu.Lock()
	got := r.v.w.flushInterval()
	r.v.w.mu.Unlock()
	if want := 200 * time.Millisecond; got != want {
		t.Errorf("2,000 watchers: %v, want %v", got, want)
	}
}

// The flush interval also grows with the bytes of the answers to blocking
// queries since the last flush (or between the two before, if more): each
// flush sends every woken listing again whole.
func TestFlushIntervalGrowsWithAnswerBytes(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	interval := func() time.Duration {
		r.v.w.mu.Lock()
		defer r.v.w.mu.Unlock()
		return r.v.w.flushInterval()
	}
	if got, want := interval(), DefaultNotifyInterval; got != want {
		t.Fatalf("no watchers, no answers: %v, want %v", got, want)
	}
	// What counts: the answer of a blocking query that a change woke, not
	// a plain read, a poll answered at once, a wait that timed out or a
	// stream resumed with ?index=.
	lb := httptest.NewServer(r)
	defer lb.Close()
	register := func(id string) {
		if err := r.Register(t.Context(), Registration{ID: id, Name: "n", Version: "1", Host: "h"}); err != nil {
			t.Fatal(err)
		}
	}
	register("a")
	get := func(path string) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", lb.URL+path, nil)
		if path == "/events?index=1" {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			req = req.WithContext(ctx)
		}
		if resp, err := lb.Client().Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	cur := func() uint64 {
		r.mu.RLock()
		defer r.mu.RUnlock()
		return r.v.index
	}
	for _, tc := range []struct {
		name    string
		path    string
		change  bool // a registration while it waits
		counted bool
	}{
		{"a plain read", "/instances", false, false},
		{"a poll with an old index", "/instances?index=0&wait=1s", false, false},
		{"a wait that times out", fmt.Sprintf("/instances?index=%d&wait=1ms", cur()), false, false},
		{"a stream resumed", "/events?index=1", false, false},
		{"a blocking query woken", fmt.Sprintf("/instances?index=%d&wait=5s", cur()), true, true},
	} {
		r.v.w.sent.Store(0)
		done := make(chan struct{})
		go func() { get(tc.path); close(done) }()
		if tc.change {
			for r.counts.waiters.Load() == 0 { // parked
				time.Sleep(time.Millisecond)
			}
			register("b")
		}
		<-done
		if got := r.v.w.sent.Load(); (got > 0) != tc.counted {
			t.Errorf("%s (GET %s): %d bytes counted, want them counted: %v", tc.name, tc.path, got, tc.counted)
		}
	}
	r.v.w.sent.Store(0)

	r.v.w.answered(10_000_000) // 10 MB since the last flush: (10 ms + 0) × 4
	if got, want := interval(), 40*time.Millisecond; got != want {
		t.Errorf("10 MB answered: %v, want %v", got, want)
	}
	r.v.w.mu.Lock()
	r.v.w.flush(time.Now()) // those bytes are now the window before
	r.v.w.mu.Unlock()
	if got, want := interval(), 40*time.Millisecond; got != want {
		t.Errorf("10 MB answered before the last flush, none since: %v, want %v", got, want)
	}
	r.v.w.answered(466_000_000) // 200 answers of 2.3 MB
	if got, want := interval(), time.Second; got != want {
		t.Errorf("466 MB answered: %v, want %v (the cap)", got, want)
	}
	r.v.w.mu.Lock()
	r.v.w.flush(time.Now())
	r.v.w.flush(time.Now()) // two flushes with nothing answered: back to the configured interval
	r.v.w.mu.Unlock()
	if got, want := interval(), DefaultNotifyInterval; got != want {
		t.Errorf("nothing answered for two flushes: %v, want %v", got, want)
	}
}

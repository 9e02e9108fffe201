// waiters_internal_test.go checks the wake-up channels of blocking queries
// from inside the package: waiters that give up leave no channel behind.

package registry

import (
	"fmt"
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

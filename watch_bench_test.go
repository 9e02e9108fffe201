// watch_bench_test.go measures blocking queries at scale: the memory each
// parked waiter holds and the time one change takes to answer all of them.

package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// BenchmarkWaiters parks W blocking queries on
// GET /tools/deploy?index=N&wait=5m, measures the memory they hold, then
// makes one change to deploy and measures the time until the last of them
// has read its whole answer. Each iteration is one such round.
//
// The clients differ in what the memory figures include:
//
//	inproc  the handler called with httptest.NewRecorder, no sockets: the
//	        library's cost, one goroutine, a request and a recorder.
//	raw     an httptest.Server and one TCP connection per waiter that
//	        wrote its request and is read only after the figures are taken:
//	        no client goroutine, so bytes/waiter is the server side
//	        (net/http's connection with its buffers and two goroutines, and
//	        the handler) plus one client socket.
//	http    the same server, and a net/http Client with one connection per
//	        waiter: bytes/waiter includes the client side (three goroutines
//	        and two buffers per connection) in the same process.
//
// Figures: bytes/waiter is the growth of HeapInuse+StackInuse (after a GC)
// divided by W, stack-B/waiter its StackInuse part, goroutines/waiter the
// growth of runtime.NumGoroutine; fanout-ms is the time from the change to
// the last complete answer, fanout-p50-ms to the median one.
//
// 5,000 raw or http waiters hold 10,000 descriptors in this process: the
// limit must allow it (ulimit -n). A full run takes about half a minute:
//
//	go test -run '^$' -bench Waiters .
func BenchmarkWaiters(b *testing.B) {
	for _, client := range []string{"inproc", "raw", "http"} {
		for _, w := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("client=%s/waiters=%d", client, w), func(b *testing.B) {
				benchWaiters(b, client, w)
			})
		}
	}
}

// waiterFigures are the measurements of one round.
type waiterFigures struct {
	bytes, stack, goroutines float64 // per waiter
	fanout, p50              time.Duration
}

func benchWaiters(b *testing.B, client string, w int) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	fleet{
		{ID: "a", Name: "app", Host: "host-a", Tools: []string{`{"name":"deploy","x-command":"/deploy"}`}},
		{ID: "b", Name: "app", Host: "host-b"},
	}.add(b, reg)
	var entered atomic.Int64 // requests that reached the handler
	var srv *httptest.Server
	if client != "inproc" {
		srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			entered.Add(1)
			reg.ServeHTTP(rw, req)
		}))
		defer srv.Close()
	}
	base := runtime.NumGoroutine()

	b.ReportAllocs()
	b.ResetTimer()
	var sum waiterFigures
	for i := 0; i < b.N; i++ {
		f := waitersRound(b, reg, srv, &entered, client, w, i, base)
		sum.bytes += f.bytes
		sum.stack += f.stack
		sum.goroutines += f.goroutines
		sum.fanout += f.fanout
		sum.p50 += f.p50
	}
	n := float64(b.N)
	b.ReportMetric(sum.bytes/n, "bytes/waiter")
	b.ReportMetric(sum.stack/n, "stack-B/waiter")
	b.ReportMetric(sum.goroutines/n, "goroutines/waiter")
	b.ReportMetric(float64(sum.fanout.Microseconds())/1000/n, "fanout-ms")
	b.ReportMetric(float64(sum.p50.Microseconds())/1000/n, "fanout-p50-ms")
}

// waitersRound parks w waiters, takes the memory figures, makes the change
// and times the answers. base is the goroutine count with no waiter.
func waitersRound(b *testing.B, reg *registry.Registry, srv *httptest.Server, entered *atomic.Int64, client string, w, round, base int) waiterFigures {
	b.Helper()
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, httptest.NewRequest("GET", "/tools/deploy", nil))
	n, err := strconv.ParseUint(rec.Header().Get("X-Registry-Index"), 10, 64)
	if err != nil {
		b.Fatalf("X-Registry-Index: %v", err)
	}
	target := fmt.Sprintf("/tools/deploy?index=%d&wait=5m", n)

	// Start from a quiet process: the previous round's connections gone.
	waitFor(b, 30*time.Second, "the previous round to end", func() bool { return runtime.NumGoroutine() <= base })
	m0, g0 := memInUse(), runtime.NumGoroutine()

	ends := make([]time.Time, w)
	var bad atomic.Int64
	check := func(code int, h http.Header, body []byte) {
		idx, _ := strconv.ParseUint(h.Get("X-Registry-Index"), 10, 64)
		if code != http.StatusOK || idx <= n || !bytes.Contains(body, []byte(`"deploy"`)) {
			bad.Add(1)
		}
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var tr *http.Transport
	entered.Store(0)
	// stagger keeps the listen queue short: every 500 clients, wait until
	// the server has them.
	stagger := func(i int) {
		if (i+1)%500 == 0 || i == w-1 {
			waitFor(b, 30*time.Second, "requests to reach the server", func() bool { return entered.Load() >= int64(i+1) })
		}
	}
	switch client {
	case "inproc":
		for i := range w {
			req := httptest.NewRequest("GET", target, nil)
			wg.Go(func() {
				rec := httptest.NewRecorder()
				reg.ServeHTTP(rec, req)
				ends[i] = time.Now()
				check(rec.Code, rec.Header(), rec.Body.Bytes())
			})
		}
	case "raw":
		msg := []byte("GET " + target + " HTTP/1.1\r\nHost: registry\r\n\r\n")
		conns = make([]net.Conn, w)
		for i := range w {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				b.Fatalf("dial %d: %v", i, err)
			}
			conns[i] = c
			if _, err := c.Write(msg); err != nil {
				b.Fatal(err)
			}
			stagger(i)
		}
	case "http":
		tr = &http.Transport{MaxIdleConnsPerHost: w, DisableCompression: true}
		hc := &http.Client{Transport: tr}
		for i := range w {
			wg.Go(func() {
				resp, err := hc.Get(srv.URL + target)
				if err != nil {
					bad.Add(1)
					ends[i] = time.Now()
					return
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				ends[i] = time.Now()
				if err != nil {
					bad.Add(1)
				}
				check(resp.StatusCode, resp.Header, body)
			})
			stagger(i)
		}
	}
	waitFor(b, 60*time.Second, "every waiter to park", func() bool { return parkedWaiters() >= w })
	m1, g1 := memInUse(), runtime.NumGoroutine()
	f := waiterFigures{
		bytes:      float64(m1.heap+m1.stack-m0.heap-m0.stack) / float64(w),
		stack:      float64(m1.stack-m0.stack) / float64(w),
		goroutines: float64(g1-g0) / float64(w),
	}

	if client == "raw" { // now read the answers
		var ready sync.WaitGroup
		ready.Add(w)
		for i, c := range conns {
			wg.Go(func() {
				br := bufio.NewReader(c)
				ready.Done()
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					bad.Add(1)
					ends[i] = time.Now()
					return
				}
				body, err := io.ReadAll(resp.Body)
				ends[i] = time.Now()
				if err != nil {
					bad.Add(1)
				}
				check(resp.StatusCode, resp.Header, body)
			})
		}
		ready.Wait()
	}

	tool := json.RawMessage(fmt.Sprintf(`{"name":"deploy","description":"round %d","x-command":"/b"}`, round))
	start := time.Now()
	if err := reg.UpdateTools(context.Background(), "b", []json.RawMessage{tool}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		b.Fatalf("not every waiter answered within 60s")
	}
	if k := bad.Load(); k > 0 {
		b.Fatalf("%d of %d waiters got a wrong answer", k, w)
	}
	slices.SortFunc(ends, func(x, y time.Time) int { return x.Compare(y) })
	f.fanout, f.p50 = ends[w-1].Sub(start), ends[w/2].Sub(start)

	for _, c := range conns {
		c.Close()
	}
	if tr != nil {
		tr.CloseIdleConnections()
	}
	return f
}

type memFigures struct{ heap, stack uint64 }

// memInUse returns the heap and stack in use after a full collection.
func memInUse() memFigures {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memFigures{ms.HeapInuse, ms.StackInuse}
}

// parkedWaiters counts the goroutines inside a blocking query's wait, from
// the goroutine profile (whose records are "count @ pcs" lines followed by
// their frames).
func parkedWaiters() int {
	var buf bytes.Buffer
	if err := pprof.Lookup("goroutine").WriteTo(&buf, 1); err != nil {
		return 0
	}
	n, count := 0, 0
	for _, line := range strings.Split(buf.String(), "\n") {
		if c, _, ok := strings.Cut(line, " @ "); ok {
			count, _ = strconv.Atoi(c)
		} else if strings.Contains(line, "registry.(*Registry).block") {
			n += count
			count = 0
		}
	}
	return n
}

// waitFor polls cond until it holds, failing the benchmark after d.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

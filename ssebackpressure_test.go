// ssebackpressure_test.go checks GET /events under many clients: streams
// that read get every event in order and no reset, and do not slow the
// writes much; streams that never read cost a bounded amount of memory,
// never hold writers back, and are dropped at WriteTimeout, or, given
// time, get a reset when they fall out of the ring.

package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// sseMsg is one Server-Sent Event as a client parses it.
type sseMsg struct {
	event, id, data string
}

// sseReader parses the Server-Sent Events of a stream.
type sseReader struct{ sc *bufio.Scanner }

func newSSEReader(r io.Reader) *sseReader { return &sseReader{bufio.NewScanner(r)} }

// next returns the next event (comments and keep-alives skipped), or the
// error that ended the stream (io.EOF at its end).
func (s *sseReader) next() (sseMsg, error) {
	var m sseMsg
	for s.sc.Scan() {
		line := s.sc.Text()
		switch {
		case line == "":
			if m.event != "" {
				return m, nil
			}
		case strings.HasPrefix(line, "event: "):
			m.event = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			m.id = line[len("id: "):]
		case strings.HasPrefix(line, "data: "):
			m.data = line[len("data: "):]
		}
	}
	if err := s.sc.Err(); err != nil {
		return m, err
	}
	return m, io.EOF
}

// readSSE calls fn with each event of r until fn returns false or r ends.
func readSSE(r io.Reader, fn func(sseMsg) bool) error {
	sr := newSSEReader(r)
	for {
		m, err := sr.next()
		if err != nil {
			return err
		}
		if !fn(m) {
			return nil
		}
	}
}

// registerMany registers n instances (prefix-0 ...) through the library
// on 8 goroutines and returns how long that took.
func registerMany(t *testing.T, reg *registry.Registry, prefix string, n int) time.Duration {
	t.Helper()
	var wg sync.WaitGroup
	var next atomic.Int64
	var failed atomic.Value
	start := time.Now()
	for range 8 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				id := fmt.Sprintf("%s-%d", prefix, i)
				if err := reg.Register(context.Background(), registry.Registration{ID: id, Name: "app", Version: "1", Host: "h-" + id}); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		t.Fatalf("Register: %v", err)
	}
	return time.Since(start)
}

// TestEventStreamsReadersGetEveryEvent: 200 streams that read (50 with
// -short or -race) each get every one of 200 registrations, in order, with
// no reset, and the writes, over HTTP, take at most 3× their time without
// streams (+1 s).
func TestEventStreamsReadersGetEveryEvent(t *testing.T) {
	lb := serveLoopback(t, registry.Options{}, 0)
	streams, writes := 200, 200
	if lighter() {
		streams = 50
	}
	baseline := timeWrites(t, lb.url, "base", writes, 0)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: streams}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	type reader struct {
		ids    []uint64
		kinds  map[string]int
		err    error
		status int
	}
	readers := make([]reader, streams)
	var wg sync.WaitGroup
	for i := range readers {
		rd := &readers[i]
		rd.kinds = map[string]int{}
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", lb.url+"/events", nil)
			resp, err := hc.Do(req)
			if err != nil {
				rd.err = err
				return
			}
			defer resp.Body.Close()
			rd.status = resp.StatusCode
			rd.err = readSSE(resp.Body, func(m sseMsg) bool {
				rd.kinds[m.event]++
				id, _ := strconv.ParseUint(m.id, 10, 64)
				rd.ids = append(rd.ids, id)
				return len(rd.ids) < writes && m.event != registry.EventReset
			})
		})
	}
	pollUntil(t, 10*time.Second, "the streams to open", func() bool {
		return goroutinesIn("registry.(*Registry).handleEvents") == streams
	})
	load := timeWrites(t, lb.url, "load", writes, 0)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Errorf("the streams did not get all %d events within 30 s", writes)
	}
	for i, rd := range readers {
		if rd.status != http.StatusOK || len(rd.ids) != writes || rd.kinds[registry.EventRegistered] != writes {
			t.Errorf("stream %d: status %d, %d events %v (err %v), want %d registered", i, rd.status, len(rd.ids), rd.kinds, rd.err, writes)
			continue
		}
		for j := 1; j < len(rd.ids); j++ {
			if rd.ids[j] <= rd.ids[j-1] {
				t.Errorf("stream %d: id %d after %d", i, rd.ids[j], rd.ids[j-1])
				break
			}
		}
	}
	t.Logf("%d writes: %v alone, %v with %d streams that read", writes, baseline.took, load.took, streams)
	if load.took > 3*baseline.took+time.Second {
		t.Errorf("the writes took %v with %d streams, %v without", load.took, streams, baseline.took)
	}
}

// TestEventStreamsNeverReading: streams that never read while 9,000
// changes are made (more than the ring's 8,192): each holds little memory,
// the writes are not held back, and each stream is dropped WriteTimeout
// after its last write started. With a long WriteTimeout, a stream that
// starts reading after the changes gets what its connection held, then a
// reset naming the current index, then the changes from there.
func TestEventStreamsNeverReading(t *testing.T) {
	const changes = 9000
	streams := 100
	if lighter() {
		streams = 30
	}
	t.Run("dropped at WriteTimeout", func(t *testing.T) {
		const wt = time.Second
		lb := serveLoopback(t, registry.Options{WriteTimeout: wt}, 16*kib)
		registerMany(t, lb.reg, "base", changes)
		// Timed on re-registrations, as the load below: the fleet does not grow.
		baseline := registerMany(t, lb.reg, "base", changes)
		base := liveBytes()
		for range streams {
			dialSilent(t, lb.addr, getRequest("/events"))
		}
		pollUntil(t, 10*time.Second, "the streams to open", func() bool {
			return goroutinesIn("registry.(*Registry).handleEvents") == streams
		})
		finished, closed := int(lb.finished.Load()), lb.closed.Load()
		began := time.Now()
		took := registerMany(t, lb.reg, "base", changes)
		if elapsed := time.Since(began); elapsed < wt*9/10 {
			held := liveBytes()
			if got := int(lb.finished.Load()) - finished; got == 0 {
				per := (held - base) / int64(streams)
				t.Logf("%d streams that never read hold %d KiB each", streams, per/kib)
				if per > perClientBound {
					t.Errorf("a stream that never reads holds %d KiB, want at most %d KiB", per/kib, perClientBound/kib)
				}
			}
		}
		t.Logf("%d changes: %v alone, %v with %d streams that never read", changes, baseline, took, streams)
		if took > 2*baseline+500*time.Millisecond {
			t.Errorf("the changes took %v with %d streams that never read, %v without", took, streams, baseline)
		}
		pollUntil(t, 10*wt+10*time.Second, "the streams to be dropped", func() bool {
			return int(lb.finished.Load()) == finished+streams
		})
		for _, e := range lb.endsSince(finished) {
			if e.gap < wt*9/10 || e.gap > 2*wt {
				t.Errorf("GET %s: ended %v after its last write that went through, want WriteTimeout %v", e.target, e.gap, wt)
			}
		}
		pollUntil(t, 5*time.Second, "the server to close them", func() bool { return lb.closed.Load()-closed >= int64(streams) })
		after := liveBytes()
		t.Logf("%d KiB held after the streams were dropped", (after-base)/kib)
		if after-base > 2*mib {
			t.Errorf("%d KiB still held after the streams were dropped", (after-base)/kib)
		}
	})
	t.Run("reset when reading again", func(t *testing.T) {
		lb := serveLoopback(t, registry.Options{WriteTimeout: time.Minute}, 16*kib)
		conns := make([]*bufio.Reader, streams)
		for i := range conns {
			c := dialSilent(t, lb.addr, getRequest("/events"))
			c.SetReadDeadline(time.Now().Add(time.Minute))
			conns[i] = bufio.NewReader(c)
		}
		pollUntil(t, 10*time.Second, "the streams to open", func() bool {
			return goroutinesIn("registry.(*Registry).handleEvents") == streams
		})
		registerMany(t, lb.reg, "load", changes)
		now := registryIndex(t, lb.reg, "/instances")
		var first *sseReader
		for i, br := range conns {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("stream %d: %v", i, err)
			}
			sr := newSSEReader(resp.Body)
			var before int
			var reset sseMsg
			for {
				m, err := sr.next()
				if err != nil || m.event == registry.EventReset {
					reset = m
					break
				}
				before++
			}
			if reset.event == "" || reset.data != fmt.Sprintf(`{"index":%d}`, now) || before >= changes {
				t.Errorf("stream %d: %d events, then %+v; want some events, then a reset naming index %d", i, before, reset, now)
			}
			if i == 0 {
				first = sr
			}
		}
		// A stream goes on from the reset's index.
		if err := lb.reg.Register(t.Context(), registry.Registration{ID: "after", Name: "app", Version: "1", Host: "h"}); err != nil {
			t.Fatal(err)
		}
		next, err := first.next()
		if next.event != registry.EventRegistered || !strings.Contains(next.data, `"instance_id":"after"`) {
			t.Errorf("after the reset: %+v (%v), want the registration of after", next, err)
		}
	})
}

// longwait_test.go checks that the time limits against hostile clients
// (WriteTimeout, BodyTimeout, ReadHeaderTimeout) do not cut the long
// waits the protocol promises: a 5-minute blocking query and an event
// stream of half an hour, through a real http.Server, on connections made
// with net.Pipe inside a testing/synctest bubble, so that fake time makes
// the minutes instant and the limits exact. In the same bubble, a client
// that never reads is dropped exactly WriteTimeout after the write that
// blocks on it.

package registry_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/runspec/registry"
)

// pipeListener is an in-memory net.Listener whose connections are
// net.Pipe pairs: inside a synctest bubble, their deadlines run on fake
// time.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

// DialContext connects to the listener.
func (l *pipeListener) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.closed:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// pipeServer is a Registry behind an http.Server with the command's time
// limits, on a pipeListener, and a client that dials it. Create it inside
// a bubble; stop closes everything so that the bubble can end.
type pipeServer struct {
	reg    *registry.Registry
	ln     *pipeListener
	srv    *http.Server
	tr     *http.Transport
	hc     *http.Client
	served sync.WaitGroup

	mu   sync.Mutex
	took map[string]time.Duration // of each finished request, by target
}

const (
	pipeWriteTimeout = 10 * time.Second
	pipeBodyTimeout  = 10 * time.Second
)

func newPipeServer(t *testing.T) *pipeServer {
	t.Helper()
	reg, err := registry.New(registry.Options{Now: time.Now, HeartbeatInterval: 24 * time.Hour,
		WriteTimeout: pipeWriteTimeout, BodyTimeout: pipeBodyTimeout})
	if err != nil {
		t.Fatal(err)
	}
	ps := &pipeServer{reg: reg, ln: newPipeListener(), took: map[string]time.Duration{}}
	ps.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			reg.ServeHTTP(w, req)
			ps.mu.Lock()
			ps.took[req.URL.RequestURI()] = time.Since(start)
			ps.mu.Unlock()
		})}
	ps.served.Go(func() { ps.srv.Serve(ps.ln) })
	ps.tr = &http.Transport{DialContext: ps.ln.DialContext}
	ps.hc = &http.Client{Transport: ps.tr}
	return ps
}

func (ps *pipeServer) stop() {
	ps.reg.ReleaseWaiters()
	ps.srv.Close()
	ps.tr.CloseIdleConnections()
	ps.served.Wait()
}

func (ps *pipeServer) tookFor(target string) (time.Duration, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	d, ok := ps.took[target]
	return d, ok
}

// post sends a JSON write and returns its status.
func (ps *pipeServer) post(t *testing.T, target, body string) int {
	t.Helper()
	resp, err := ps.hc.Post("http://registry"+target, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("POST %s: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func (ps *pipeServer) index(t *testing.T, target string) uint64 {
	t.Helper()
	resp, err := ps.hc.Get("http://registry" + target)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	var idx uint64
	fmt.Sscan(resp.Header.Get("X-Registry-Index"), &idx)
	return idx
}

// TestLongBlockingQuerySurvivesTimeouts: with WriteTimeout and BodyTimeout
// of 10 s, a blocking query waits its whole 5 minutes (up to 1/16 of
// jitter) and is answered, after a write on the same connection; one woken
// by a change just before its end is answered at the change.
func TestLongBlockingQuerySurvivesTimeouts(t *testing.T) {
	for _, target := range []string{"/tools/deploy", "/instances", "/instances/a", "/hosts", "/export/mobaxterm"} {
		t.Run(target, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := newPipeServer(t)
				defer ps.stop()
				if st := ps.post(t, "/instances", regJSON("a")); st != http.StatusCreated {
					t.Fatalf("register: %d", st)
				}
				if st := ps.post(t, "/instances/a/tools", `{"tools":[{"name":"deploy"}]}`); st != http.StatusOK {
					t.Fatalf("tools: %d", st)
				}
				n := ps.index(t, target)
				sep := "?"
				if strings.Contains(target, "?") {
					sep = "&"
				}
				start := time.Now()
				resp, err := ps.hc.Get(fmt.Sprintf("http://registry%s%sindex=%d&wait=5m", target, sep, n))
				if err != nil {
					t.Fatalf("blocking query: %v (cut by a time limit?)", err)
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				took := time.Since(start)
				if err != nil || resp.StatusCode != http.StatusOK || len(body) == 0 {
					t.Errorf("blocking query: %s, %d bytes, %v", resp.Status, len(body), err)
				}
				if took < 5*time.Minute || took > 5*time.Minute+5*time.Minute/16 {
					t.Errorf("answered after %v, want 5m (+ jitter up to %v)", took, 5*time.Minute/16)
				}

				// Woken by a change at 4m59s.
				n = ps.index(t, target)
				done := make(chan time.Duration)
				go func() {
					start := time.Now()
					resp, err := ps.hc.Get(fmt.Sprintf("http://registry%s%sindex=%d&wait=5m", target, sep, n))
					if err == nil {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
					}
					done <- time.Since(start)
				}()
				time.Sleep(4*time.Minute + 59*time.Second)
				if st := ps.post(t, "/instances", `{"instance_id":"a","name":"app","version":"2","host":"h-a"}`); st != http.StatusCreated {
					t.Fatalf("register again: %d", st)
				}
				if st := ps.post(t, "/instances/a/tools", `{"tools":[{"name":"deploy","x-run-as":"ops"}]}`); st != http.StatusOK {
					t.Fatalf("tools again: %d", st)
				}
				if took := <-done; took < 4*time.Minute+59*time.Second || took > 5*time.Minute {
					t.Errorf("woken after %v, want at the change (4m59s)", took)
				}
			})
		})
	}
}

// TestLongEventStreamSurvivesTimeouts: an event stream of 30 minutes with
// a change now and then gets a keep-alive every 15 s and every change, and
// is still open at the end, with WriteTimeout and BodyTimeout of 10 s.
func TestLongEventStreamSurvivesTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipeServer(t)
		defer ps.stop()
		ctx, cancel := context.WithCancel(t.Context())
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://registry/events", nil)
		resp, err := ps.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		type line struct {
			at   time.Duration
			text string
		}
		lines := make(chan line, 1024)
		start := time.Now()
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				if sc.Text() != "" {
					lines <- line{time.Since(start), sc.Text()}
				}
			}
		}()
		changes := []time.Duration{10 * time.Minute, 17*time.Minute + 30*time.Second, 29 * time.Minute}
		for i, at := range changes {
			time.Sleep(at - time.Since(start))
			if st := ps.post(t, "/instances", regJSON(fmt.Sprintf("c%d", i))); st != http.StatusCreated {
				t.Fatalf("register at %v: %d", at, st)
			}
		}
		time.Sleep(30*time.Minute - time.Since(start))
		synctest.Wait()
		cancel()
		var keepAlives, events int
		var last time.Duration
		for l := range lines {
			switch {
			case l.text == ": keep-alive":
				keepAlives++
			case strings.HasPrefix(l.text, "event: registered"):
				if events < len(changes) && l.at != changes[events] {
					t.Errorf("event %d at %v, want at once, at %v", events, l.at, changes[events])
				}
				events++
			}
			last = l.at
		}
		resp.Body.Close()
		if want := int(30 * time.Minute / (15 * time.Second)); keepAlives != want {
			t.Errorf("%d keep-alives in 30 minutes, want %d", keepAlives, want)
		}
		if events != len(changes) {
			t.Errorf("%d events, want %d", events, len(changes))
		}
		if last != 30*time.Minute {
			t.Errorf("the last line came at %v, want the keep-alive at 30m", last)
		}
	})
}

// TestNeverReadingDroppedAtWriteTimeout: on a pipe, which buffers nothing,
// the first write to a client that never reads blocks; the handler ends
// exactly WriteTimeout later, not a nanosecond sooner, and the connection
// is closed.
func TestNeverReadingDroppedAtWriteTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ps := newPipeServer(t)
		defer ps.stop()
		for i := range 2100 {
			ps.reg.Register(t.Context(), registry.Registration{ID: fmt.Sprintf("i%d", i), Name: "app", Version: "1", Host: fmt.Sprintf("h%d", i)})
		}
		conn, err := ps.ln.DialContext(t.Context(), "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		// The request is read (the pipe hands it over as it is written);
		// the answer is never read.
		if _, err := io.WriteString(conn, getRequest("/instances")); err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		time.Sleep(pipeWriteTimeout - time.Nanosecond)
		synctest.Wait()
		if d, ok := ps.tookFor("/instances"); ok {
			t.Fatalf("dropped after %v, before WriteTimeout", d)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if d, ok := ps.tookFor("/instances"); !ok || d != pipeWriteTimeout {
			t.Errorf("the handler ended after %v (%v), want exactly WriteTimeout %v", d, ok, pipeWriteTimeout)
		}
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, err := io.Copy(io.Discard, conn); err != nil || n != 0 {
			t.Errorf("after the drop the client reads %d bytes, %v; want EOF at once", n, err)
		}
	})
}

// TestSlowPipeReaderGetsWholeAnswer: a client that reads 16 KiB every 2 s
// (8 KiB/s: it never stays 10 s without reading, but needs far more than
// WriteTimeout for a whole answer) through a pipe, which buffers nothing:
// it gets a replay of 2,000 events in full, each batch of events being its
// own write, and a listing of 300 KB, written a chunk of at most 32 KiB at
// a time (one write of the whole listing would be cut at WriteTimeout).
func TestSlowPipeReaderGetsWholeAnswer(t *testing.T) {
	tests := []struct {
		name   string
		target func(idx uint64) string
		done   func(got string) bool
	}{
		{"event replay", func(idx uint64) string { return fmt.Sprintf("/events?index=%d", idx-2000) },
			func(got string) bool { return strings.Count(got, "event: registered") >= 2000 }},
		{"listing of 300 KB", func(uint64) string { return "/instances" },
			func(got string) bool { return strings.HasSuffix(got, "]\r\n0\r\n\r\n") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ps := newPipeServer(t)
				defer ps.stop()
				for i := range 2100 {
					ps.reg.Register(t.Context(), registry.Registration{ID: fmt.Sprintf("i%d", i), Name: "app", Version: "1", Host: fmt.Sprintf("h%d", i)})
				}
				slow, err := ps.ln.DialContext(t.Context(), "", "")
				if err != nil {
					t.Fatal(err)
				}
				defer slow.Close()
				if _, err := io.WriteString(slow, getRequest(tt.target(ps.index(t, "/instances")))); err != nil {
					t.Fatal(err)
				}
				var got strings.Builder
				buf := make([]byte, 16*kib)
				start := time.Now()
				for !tt.done(got.String()) {
					slow.SetReadDeadline(time.Now().Add(time.Minute))
					n, err := slow.Read(buf)
					got.Write(buf[:n])
					if err != nil {
						t.Fatalf("after %d bytes in %v: %v", got.Len(), time.Since(start), err)
					}
					time.Sleep(2 * time.Second)
				}
				if strings.Contains(got.String(), "event: reset") {
					t.Errorf("the slow reader got a reset")
				}
				t.Logf("%d bytes in %v", got.Len(), time.Since(start))
			})
		})
	}
}

// hostileharness_test.go holds what the hostile-client tests share: a
// registry served on loopback behind a hook that sees each request's
// progress and each connection's end, fleets that make answers large on
// purpose, raw connections that send a request and never read, live-memory
// figures after a GC, and polling with a deadline.

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// loopback is a Registry served by an http.Server on 127.0.0.1, with
// counters of what its handler and connections did.
type loopback struct {
	reg  *registry.Registry
	srv  *httptest.Server
	addr string // host:port
	url  string // http://host:port

	started, finished atomic.Int64 // handler calls
	written           atomic.Int64 // answer bytes that Write accepted
	progress          atomic.Int64 // time of the last accepted write or handler start, UnixNano
	opened, closed    atomic.Int64 // connections (ConnState)

	mu   sync.Mutex
	ends []requestEnd // of the requests that have ended, in order
}

// requestEnd is what the hook saw of one request.
type requestEnd struct {
	target  string
	written int64         // answer bytes the connection accepted
	gap     time.Duration // from the end of the last write or flush that succeeded (or the handler's start) to its return
}

// serveLoopback serves a new Registry with opts on loopback until the test
// ends. A sndBuf above zero sets the send buffer of each accepted
// connection (the kernel's default, which grows to megabytes on loopback,
// hides what the server itself holds for a client that stops reading).
func serveLoopback(t testing.TB, opts registry.Options, sndBuf int) *loopback {
	t.Helper()
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatalf("registry.New: %v", err)
	}
	lb := &loopback{reg: reg}
	lb.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		lb.started.Add(1)
		pw := &progressWriter{ResponseWriter: w, lb: lb}
		pw.touch() // the start counts as progress
		reg.ServeHTTP(pw, req)
		end := requestEnd{target: req.URL.RequestURI(), written: pw.n, gap: time.Since(time.Unix(0, pw.lastOK))}
		lb.mu.Lock()
		lb.ends = append(lb.ends, end)
		lb.mu.Unlock()
		lb.finished.Add(1)
	}))
	lb.srv.Config.ReadHeaderTimeout = 10 * time.Second
	if sndBuf > 0 {
		lb.srv.Listener = sndBufListener{lb.srv.Listener, sndBuf}
	}
	lb.srv.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		switch st {
		case http.StateNew:
			lb.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			lb.closed.Add(1)
		}
	}
	lb.srv.Start()
	lb.addr = lb.srv.Listener.Addr().String()
	lb.url = lb.srv.URL
	t.Cleanup(func() {
		reg.ReleaseWaiters()
		lb.srv.CloseClientConnections()
		lb.srv.Close()
	})
	return lb
}

// sndBufListener sets the send buffer of the connections it accepts.
type sndBufListener struct {
	net.Listener
	size int
}

func (l sndBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// idleFor is how long no answer byte has been accepted.
func (lb *loopback) idleFor() time.Duration {
	return time.Since(time.Unix(0, lb.progress.Load()))
}

// endsSince returns the ends of requests after the first skip.
func (lb *loopback) endsSince(skip int) []requestEnd {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return append([]requestEnd(nil), lb.ends[skip:]...)
}

// progressWriter counts what the connection accepted. Unwrap lets the
// registry's http.ResponseController reach the connection's deadlines.
type progressWriter struct {
	http.ResponseWriter
	lb *loopback
	// Used by the handler's goroutine only.
	n      int64 // bytes accepted
	lastOK int64 // when the last write or flush that succeeded ended, UnixNano
}

func (w *progressWriter) touch() {
	w.lastOK = time.Now().UnixNano()
	w.lb.progress.Store(w.lastOK)
}

func (w *progressWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	if n > 0 {
		w.n += int64(n)
		w.lb.written.Add(int64(n))
		w.lb.progress.Store(time.Now().UnixNano())
	}
	if err == nil {
		w.lastOK = time.Now().UnixNano()
	}
	return n, err
}

// FlushError is what http.ResponseController calls to flush.
func (w *progressWriter) FlushError() error {
	err := http.NewResponseController(w.ResponseWriter).Flush()
	if err == nil {
		w.lastOK = time.Now().UnixNano()
	}
	return err
}

func (w *progressWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bigTools is a tool list of n tools of about 250 bytes each, so that an
// instance's record is about n*250 bytes.
func bigTools(n int) []json.RawMessage {
	tools := make([]json.RawMessage, n)
	for i := range tools {
		tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%03d","description":%q,"inputSchema":{"type":"object"},"x-command":"/usr/local/bin/tool-%03d","x-run-as":"svc"}`,
			i, strings.Repeat("a long description of what the tool does ", 4), i))
	}
	return tools
}

// fillFleet registers n instances (id-000001 ..., each on its own host)
// through the library, each with tools (may be nil), and returns their ids.
func fillFleet(t testing.TB, reg *registry.Registry, n int, tools []json.RawMessage) []string {
	t.Helper()
	ctx := context.Background()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("id-%06d", i)
		if err := reg.Register(ctx, registry.Registration{ID: ids[i], Name: "app", Version: "1", Host: fmt.Sprintf("host-%06d", i)}); err != nil {
			t.Fatalf("Register %s: %v", ids[i], err)
		}
		if tools != nil {
			if err := reg.UpdateTools(ctx, ids[i], tools); err != nil {
				t.Fatalf("UpdateTools %s: %v", ids[i], err)
			}
		}
	}
	return ids
}

// answerSize is the length of the body of GET target, served in-process.
func answerSize(t testing.TB, reg *registry.Registry, target string) int {
	t.Helper()
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("GET %s: status %d: %.200s", target, rec.Code, rec.Body)
	}
	return rec.Body.Len()
}

// serveReq serves one request in-process; a non-empty body is sent as
// JSON. hdr are header name, value pairs.
func serveReq(reg http.Handler, method, target, body string, hdr ...string) *httptest.ResponseRecorder {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, req)
	return rec
}

// detailOf is the detail of an error body: a string, or the JSON of a list.
func detailOf(rec *httptest.ResponseRecorder) string {
	var body struct{ Detail json.RawMessage }
	if json.Unmarshal(rec.Body.Bytes(), &body) != nil {
		return "(not JSON: " + rec.Body.String() + ")"
	}
	var s string
	if json.Unmarshal(body.Detail, &s) == nil {
		return s
	}
	return string(body.Detail)
}

// logLines collects what a registry logs, as text lines.
type logLines struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// logger is a text logger into l.
func (l *logLines) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// silentRcvBuf is the receive buffer of a silent connection: as small as
// the kernel allows, so that the server meets a full window at once.
const silentRcvBuf = 4096

// dialSilent opens a connection to addr with a tiny receive buffer, sends
// raw (a whole HTTP request, or its start) and returns without reading.
func dialSilent(t testing.TB, addr, raw string) net.Conn {
	t.Helper()
	return dialRaw(t, addr, raw, silentRcvBuf)
}

// dialRaw is dialSilent with a receive buffer of rcvBuf bytes.
func dialRaw(t testing.TB, addr, raw string, rcvBuf int) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvBuf)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("write request: %v", err)
	}
	return c
}

// getRequest is a raw HTTP/1.1 GET of target.
func getRequest(target string) string {
	return "GET " + target + " HTTP/1.1\r\nHost: registry\r\nUser-Agent: silent\r\n\r\n"
}

// liveBytes is the memory the process holds after two GCs: heap spans in
// use and goroutine stacks.
func liveBytes() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// pollUntil polls cond until it holds, failing the test after d.
func pollUntil(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const (
	kib = 1 << 10
	mib = 1 << 20
)

// goroutinesIn counts the goroutines whose stack holds frame (a function
// name such as "registry.(*Registry).block").
func goroutinesIn(frame string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, frame) {
			count++
		}
	}
	return count
}

// lighter reports whether the heavy tests should shrink their loads: with
// -short, and with -race, which makes each request ~10× slower.
func lighter() bool { return testing.Short() || raceEnabled }

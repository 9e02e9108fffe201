// helpers_test.go holds the test harness: a registry that can be stopped
// and restarted at one address, reached over a real socket or in process
// (a RoundTripper that calls the handler), a request log, a goroutine leak
// check and polling helpers.

package client_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// modes are the two ways tests reach a registry.
var modes = []string{"socket", "inprocess"}

// A testRegistry serves one registry at a time at a fixed address: stop
// and start again to simulate a restart, stay stopped to simulate an
// outage. In "socket" mode it is an httptest.Server on a real TCP port that
// is reused across restarts; in "inprocess" mode requests go through
// handlerTransport, and a stopped registry refuses connections.
type testRegistry struct {
	t      *testing.T
	socket bool
	url    string
	addr   string
	wrap   func(http.Handler) http.Handler // optional middleware

	mu     sync.Mutex
	reg    *registry.Registry
	gen    int // bumped by stop: requests in flight across it fail
	srv    *httptest.Server
	cancel context.CancelFunc
	done   chan struct{}
}

// newTestRegistry returns a stopped testRegistry; call start.
func newTestRegistry(t *testing.T, mode string) *testRegistry {
	t.Helper()
	tr := &testRegistry{t: t, socket: mode == "socket"}
	if tr.socket {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		tr.addr = ln.Addr().String()
		ln.Close()
		tr.url = "http://" + tr.addr
	} else {
		tr.url = "http://registry.test"
	}
	t.Cleanup(tr.stop)
	return tr
}

// start serves a new registry made with opts.
func (tr *testRegistry) start(opts registry.Options) *registry.Registry {
	tr.t.Helper()
	reg, err := registry.New(opts)
	if err != nil {
		tr.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Run(ctx)
	}()
	var h http.Handler = reg
	if tr.wrap != nil {
		h = tr.wrap(h)
	}
	var srv *httptest.Server
	if tr.socket {
		srv = httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		var ln net.Listener
		deadline := time.Now().Add(5 * time.Second)
		for {
			ln, err = net.Listen("tcp", tr.addr)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err != nil {
			cancel()
			tr.t.Fatalf("listen again on %s: %v", tr.addr, err)
		}
		srv.Listener = ln
		srv.Start()
	}
	tr.mu.Lock()
	tr.reg, tr.srv, tr.cancel, tr.done = reg, srv, cancel, done
	tr.mu.Unlock()
	return reg
}

// stop stops the registry (if running): waiters are released, connections
// closed, Run ended.
func (tr *testRegistry) stop() {
	tr.mu.Lock()
	reg, srv, cancel, done := tr.reg, tr.srv, tr.cancel, tr.done
	tr.reg, tr.srv, tr.cancel = nil, nil, nil
	tr.gen++
	tr.mu.Unlock()
	if reg == nil {
		return
	}
	reg.ReleaseWaiters()
	if srv != nil {
		srv.CloseClientConnections()
		srv.Close()
	}
	cancel()
	<-done
}

// current returns the running registry, or nil.
func (tr *testRegistry) current() *registry.Registry {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.reg
}

// httpClient returns the HTTP client for Options.HTTPClient: nil (the
// default) over a socket.
func (tr *testRegistry) httpClient() *http.Client {
	if tr.socket {
		return nil
	}
	return &http.Client{Transport: handlerTransport{tr}}
}

// client returns a Client with fast back-off for this registry.
func (tr *testRegistry) client(opts client.Options) *client.Client {
	tr.t.Helper()
	if opts.HTTPClient == nil {
		opts.HTTPClient = tr.httpClient()
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 5 * time.Millisecond
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 50 * time.Millisecond
	}
	c, err := client.New(tr.url, opts)
	if err != nil {
		tr.t.Fatal(err)
	}
	tr.t.Cleanup(c.CloseIdleConnections)
	return c
}

// handlerTransport serves requests by calling the current registry's
// handler in the caller's goroutine: no socket. A stopped registry refuses
// connections; a stop during a request resets it.
type handlerTransport struct{ tr *testRegistry }

var (
	errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	errReset   = &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
)

func (h handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		defer req.Body.Close()
	}
	h.tr.mu.Lock()
	reg, gen := h.tr.reg, h.tr.gen
	h.tr.mu.Unlock()
	if reg == nil {
		return nil, errRefused
	}
	var handler http.Handler = reg
	if h.tr.wrap != nil {
		handler = h.tr.wrap(handler)
	}
	sreq := req.Clone(req.Context())
	if sreq.Body == nil {
		sreq.Body = http.NoBody
	}
	sreq.RequestURI = req.URL.RequestURI()
	sreq.RemoteAddr = "192.0.2.1:4321"
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, sreq)
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	h.tr.mu.Lock()
	stopped := h.tr.gen != gen
	h.tr.mu.Unlock()
	if stopped {
		return nil, errReset
	}
	resp := rec.Result()
	resp.Request = req
	return resp, nil
}

// A reqLog records the requests a handler served.
type reqLog struct {
	mu   sync.Mutex
	reqs []loggedReq
}

type loggedReq struct {
	method, path string
	query        url.Values
	ifNoneMatch  string
	status       int
	done         bool
}

func (l *reqLog) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l.mu.Lock()
		i := len(l.reqs)
		l.reqs = append(l.reqs, loggedReq{method: r.Method, path: r.URL.Path, query: r.URL.Query(), ifNoneMatch: r.Header.Get("If-None-Match")})
		l.mu.Unlock()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(sw, r)
		l.mu.Lock()
		l.reqs[i].status, l.reqs[i].done = sw.code, true
		l.mu.Unlock()
	})
}

// matching returns the logged requests for which keep is true.
func (l *reqLog) matching(keep func(loggedReq) bool) []loggedReq {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []loggedReq
	for _, r := range l.reqs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// checkLeaks fails the test if, at its end, more goroutines run than at
// its start, after giving them time to settle. Call it first, so that its
// cleanup runs after every other.
func checkLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutine leak: %d before, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}

// waitFor polls cond until it holds, failing the test after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// update is one yield of a watch.
type update[T any] struct {
	v   T
	err error
}

// startWatch ranges over seq in a goroutine and sends what it yields to the
// returned channel. The goroutine ends when the watch does (cancel its
// context); wait for done.
func startWatch[T any](seq func(func(T, error) bool)) (updates <-chan update[T], done <-chan struct{}) {
	ch := make(chan update[T], 1000)
	d := make(chan struct{})
	go func() {
		defer close(d)
		for v, err := range seq {
			ch <- update[T]{v, err}
		}
	}()
	return ch, d
}

// next returns the next value (not error) a watch yields that satisfies
// keep, skipping others; it fails the test after 10s.
func next[T any](t *testing.T, ch <-chan update[T], what string, keep func(T) bool) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case u := <-ch:
			if u.err == nil && keep(u.v) {
				return u.v
			}
		case <-timeout:
			var zero T
			t.Fatalf("timed out waiting for %s", what)
			return zero
		}
	}
}

// drain returns what a watch has yielded so far without waiting.
func drain[T any](ch <-chan update[T]) []update[T] {
	var out []update[T]
	for {
		select {
		case u := <-ch:
			out = append(out, u)
		default:
			return out
		}
	}
}

// events records an agent's events, for AgentConfig.OnEvent.
type events struct {
	mu  sync.Mutex
	all []client.AgentEvent
}

func (e *events) add(ev client.AgentEvent) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) list() []client.AgentEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]client.AgentEvent(nil), e.all...)
}

// count returns how many events succeeded with op.
func (e *events) count(op string) int {
	n := 0
	for _, ev := range e.list() {
		if ev.Op == op && ev.Err == nil {
			n++
		}
	}
	return n
}

// failures returns the events with an error.
func (e *events) failures() []client.AgentEvent {
	var out []client.AgentEvent
	for _, ev := range e.list() {
		if ev.Err != nil {
			out = append(out, ev)
		}
	}
	return out
}

// runAgent runs a in a goroutine; the returned function stops it and
// returns Run's error.
func runAgent(t *testing.T, a *client.Agent) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- a.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-errc:
			case <-time.After(10 * time.Second):
				err = errors.New("Run did not return within 10s of its context's end")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

// hostsOf returns the host names that offer tool in reg (active only), or
// nil.
func hostsOf(reg *registry.Registry, tool string) []string {
	if reg == nil {
		return nil
	}
	tl, _, err := reg.Tool(context.Background(), tool, registry.Filter{ActiveOnly: true})
	if err != nil {
		return nil
	}
	var out []string
	for _, h := range tl.Hosts {
		out = append(out, h.Host)
	}
	return out
}

func toolJSON(name, command string) []byte {
	return fmt.Appendf(nil, `{"name":%q,"description":"say hello","inputSchema":{"type":"object"},"x-command":%q}`, name, command)
}

func has(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

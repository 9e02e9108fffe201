// slowclients_test.go checks what clients that stop reading cost: at most
// perClientBound of the server's memory each, whatever the answer's size,
// dropped WriteTimeout after the server's last write to them went through, with
// their memory freed; that a client reading slowly but steadily still gets
// its whole answer; that what shared answers hold for blocking queries that
// never read is bounded in all; and that slow request bodies are cut at
// BodyTimeout (408).

package registry_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// perClientBound is the most server memory a connected client that never
// reads may cost.
const perClientBound = 256 * kib

// silentCase is an answer that many clients request and never read.
type silentCase struct {
	name   string
	target string
	sndBuf int // the server's send buffer per connection; 0: the kernel's
}

// silentFleet is a registry on loopback with a fleet loaded.
type silentFleet func(t *testing.T, opts registry.Options, sndBuf int) *loopback

// recordsFleet has wide instance records: GET /instances is ~17 MB (7 MB
// with -short).
func recordsFleet(t *testing.T, opts registry.Options, sndBuf int) *loopback {
	lb := serveLoopback(t, opts, sndBuf)
	n := 1500
	if lighter() {
		n = 600
	}
	fillFleet(t, lb.reg, n, bigTools(40))
	return lb
}

// wideFleet has one tool, deploy, on every host: GET /tools is one item
// of ~2.3 MB (1.1 MB with -short), /hosts ~2.7 MB, the exports 2-8 MB.
func wideFleet(t *testing.T, opts registry.Options, sndBuf int) *loopback {
	lb := serveLoopback(t, opts, sndBuf)
	n := 30000
	if lighter() {
		n = 15000
	}
	fillFleet(t, lb.reg, n, []json.RawMessage{json.RawMessage(`{"name":"deploy","description":"Deploy the app","x-command":"/usr/local/bin/deploy","x-run-as":"svc"}`)})
	return lb
}

// silentClients is how many clients that never read each case opens.
func silentClients() int {
	if lighter() {
		return 8
	}
	return 20
}

// TestNeverReadingListings: clients that request a listing of ~17 MB, or
// a page of up to 100,000 items of it, and never read.
func TestNeverReadingListings(t *testing.T) {
	runSilentCases(t, recordsFleet, silentClients(), []silentCase{
		{name: "instances, kernel buffers", target: "/instances"},
		{name: "page of 100000, kernel buffers", target: "/instances?limit=100000"},
		{name: "instances, 16 KiB send buffer", target: "/instances", sndBuf: 16 * kib},
		{name: "page of 100000, 16 KiB send buffer", target: "/instances?limit=100000", sndBuf: 16 * kib},
	})
}

// TestNeverReadingWideAnswers: the same for answers that are large because
// one tool is on every host: a cached lookup, one too large for the cache,
// one huge listing item, the /hosts listing and the exports. (Half as
// many clients: most of these answers are encoded once per request.)
func TestNeverReadingWideAnswers(t *testing.T) {
	runSilentCases(t, wideFleet, silentClients()/2, []silentCase{
		{name: "cached lookup", target: "/tools/deploy", sndBuf: 16 * kib},
		{name: "lookup too large for the cache", target: "/tools/deploy?detail=true", sndBuf: 16 * kib},
		{name: "hosts", target: "/hosts", sndBuf: 16 * kib},
		{name: "one huge item", target: "/tools?active=false", sndBuf: 16 * kib},
		{name: "superputty", target: "/export/superputty", sndBuf: 16 * kib},
		{name: "superputty, kernel buffers", target: "/export/superputty"},
		{name: "mobaxterm", target: "/export/mobaxterm", sndBuf: 16 * kib},
		{name: "ansible", target: "/export/ansible?user=" + longUser, sndBuf: 16 * kib},
		{name: "rundeck", target: "/export/rundeck?user=" + longUser, sndBuf: 16 * kib},
		{name: "rundeck yaml", target: "/export/rundeck?format=yaml&user=" + longUser, sndBuf: 16 * kib},
		{name: "ssh-config", target: "/export/ssh-config?user=" + longUser, sndBuf: 16 * kib},
	})
}

// longUser is the ?user= of the fleet exports: it makes the ssh_config of
// the wide fleet four times the bound even with -short.
const longUser = "deploy-automation-account"

// namedFleet has a distinct agent name and tool name on every host (and
// deploy on each): the Ansible export has a group per host, written in an
// order no index keeps, ~5 MB (2.5 MB with -short).
func namedFleet(t *testing.T, opts registry.Options, sndBuf int) *loopback {
	lb := serveLoopback(t, opts, sndBuf)
	n := 20000
	if lighter() {
		n = 10000
	}
	ctx := t.Context()
	for i := range n {
		id := fmt.Sprintf("id-%06d", i)
		if err := lb.reg.Register(ctx, registry.Registration{ID: id, Name: fmt.Sprintf("agent-%06d", i*7919%n), Version: "1", Host: fmt.Sprintf("host-%06d", i)}); err != nil {
			t.Fatal(err)
		}
		tools := []json.RawMessage{json.RawMessage(fmt.Sprintf(`{"name":"tool-%06d","x-command":"/bin/t","x-run-as":"svc"}`, i*104729%n)),
			json.RawMessage(`{"name":"deploy","x-command":"/bin/deploy","x-run-as":"svc"}`)}
		if err := lb.reg.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
	return lb
}

// TestNeverReadingNamedExports: clients that request the fleet exports of
// a fleet whose every host has names of its own, and never read: the
// Ansible groups, sorted by name across the fleet, still cost a client no
// more than the bound.
func TestNeverReadingNamedExports(t *testing.T) {
	runSilentCases(t, namedFleet, silentClients()/2, []silentCase{
		{name: "ansible", target: "/export/ansible", sndBuf: 16 * kib},
		{name: "rundeck", target: "/export/rundeck", sndBuf: 16 * kib},
	})
}

// runSilentCases measures each case against a registry (one per send
// buffer size) whose WriteTimeout is long, so that the clients stay
// connected until they close; TestNeverReadingDropped checks the timeout.
func runSilentCases(t *testing.T, fleet silentFleet, clients int, cases []silentCase) {
	servers := map[int]*loopback{}
	for _, c := range cases {
		if servers[c.sndBuf] == nil {
			servers[c.sndBuf] = fleet(t, registry.Options{WriteTimeout: time.Minute}, c.sndBuf)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conns, held := holdSilent(t, servers[c.sndBuf], clients, c)
			t.Run("bound", func(t *testing.T) {
				if held > perClientBound {
					t.Errorf("each client that never reads holds %d KiB of the server's memory, want at most %d KiB", held/kib, perClientBound/kib)
				}
			})
			lb := servers[c.sndBuf]
			finished := lb.finished.Load()
			for _, c := range conns {
				c.Close()
			}
			pollUntil(t, 10*time.Second, "the requests of closed clients to end", func() bool {
				return lb.finished.Load() == finished+int64(len(conns))
			})
		})
	}
}

// holdSilent opens n clients that request c.target and never read, waits
// until the server is stuck writing to all of them, and returns them with
// the server's memory per client. It checks that the answer is much larger
// than the bound and than the sockets' buffers.
func holdSilent(t *testing.T, lb *loopback, n int, c silentCase) ([]net.Conn, int64) {
	t.Helper()
	size := answerSize(t, lb.reg, c.target)
	if size < 4*perClientBound {
		t.Fatalf("GET %s is %d bytes: too small to test the bound", c.target, size)
	}
	base := liveBytes()
	started, finished := lb.started.Load(), lb.finished.Load()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialSilent(t, lb.addr, getRequest(c.target))
	}
	// Stuck: every request is in its handler and no write has gone
	// through for a while.
	pollUntil(t, 30*time.Second, "every silent request to block", func() bool {
		return lb.started.Load() == started+int64(n) && lb.idleFor() > 200*time.Millisecond
	})
	held := liveBytes()
	if got := lb.finished.Load() - finished; got != 0 {
		t.Fatalf("%d of %d requests ended before the measurement: the answer does not block the server", got, n)
	}
	per := (held - base) / int64(n)
	t.Logf("GET %s (%d bytes): %d clients that never read hold %d KiB each", c.target, size, n, per/kib)
	return conns, per
}

// maxSharedHeld is the most that the answers shared among blocking queries
// may hold in all (flights.go, maxFlightBytes), however many clients read
// them.
const maxSharedHeld = 32 * mib

// TestNeverReadingWaiters: blocking queries that never read, woken by one
// change. With the same query they share one encoding: each costs at most
// perClientBound beyond it. With a query each, which defeats the sharing,
// the encodings they keep count against a budget: together at most
// maxSharedHeld beyond perClientBound each, where one kept per client
// would be 20 × 2.7 MB.
func TestNeverReadingWaiters(t *testing.T) {
	lb := wideFleet(t, registry.Options{WriteTimeout: time.Minute}, 16*kib)
	n := silentClients()
	for _, shared := range []bool{true, false} {
		name := "same query"
		if !shared {
			name = "a query each"
		}
		t.Run(name, func(t *testing.T) {
			size := int64(answerSize(t, lb.reg, "/hosts"))
			idx := registryIndex(t, lb.reg, "/hosts")
			base := liveBytes()
			started, finished := lb.started.Load(), lb.finished.Load()
			conns := make([]net.Conn, n)
			for i := range conns {
				target := fmt.Sprintf("/hosts?index=%d&wait=1m", idx)
				if !shared {
					target += fmt.Sprintf("&client=%d", i)
				}
				conns[i] = dialSilent(t, lb.addr, getRequest(target))
			}
			pollUntil(t, 10*time.Second, "the waiters to park", func() bool {
				return lb.started.Load() == started+int64(n) && goroutinesIn("registry.(*Registry).block") == n
			})
			if err := lb.reg.Register(t.Context(), registry.Registration{ID: "wake-" + name, Name: "app", Version: "1", Host: "wake-" + strings.ReplaceAll(name, " ", "-")}); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, 30*time.Second, "every woken waiter to block on its write", func() bool {
				return goroutinesIn("registry.(*Registry).block") == 0 && lb.idleFor() > 200*time.Millisecond
			})
			held := liveBytes() - base
			if got := lb.finished.Load() - finished; got != 0 {
				t.Fatalf("%d of %d requests ended before the measurement: the answer does not block the server", got, n)
			}
			t.Logf("%d blocking queries of GET /hosts (%d bytes), %s, that never read hold %d KiB in all (%d KiB each)",
				n, size, name, held/kib, held/int64(n)/kib)
			limit := int64(n) * perClientBound
			if shared {
				limit += size
			} else {
				limit += maxSharedHeld
			}
			if held > limit {
				t.Errorf("they hold %d KiB, want at most %d KiB", held/kib, limit/kib)
			}
			for _, c := range conns {
				c.Close()
			}
			pollUntil(t, 10*time.Second, "the requests of closed clients to end", func() bool {
				return lb.finished.Load() == finished+int64(n)
			})
		})
	}
}

// TestNeverReadingDropped: a client that stops reading is dropped
// WriteTimeout after the server's last write to it that went through (not
// before: each write moves the deadline), its connection is closed, and its
// memory is freed.
func TestNeverReadingDropped(t *testing.T) {
	const wt = time.Second
	cases := []struct {
		silentCase
		fleet silentFleet
	}{
		{silentCase{name: "listing", target: "/instances", sndBuf: 16 * kib}, recordsFleet},
		{silentCase{name: "listing, kernel buffers", target: "/instances"}, recordsFleet},
		{silentCase{name: "cached lookup", target: "/tools/deploy", sndBuf: 16 * kib}, wideFleet},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lb := c.fleet(t, registry.Options{WriteTimeout: wt}, c.sndBuf)
			size := int64(answerSize(t, lb.reg, c.target)) // and fills the lookup cache before base
			base := liveBytes()
			finished, closed := int(lb.finished.Load()), lb.closed.Load()
			n := silentClients()
			for range n {
				dialSilent(t, lb.addr, getRequest(c.target))
			}
			pollUntil(t, 10*wt+10*time.Second, "the silent requests to end", func() bool {
				return int(lb.finished.Load()) == finished+n
			})
			ends := lb.endsSince(finished)
			lo, hi := ends[0].gap, ends[0].gap
			for _, e := range ends {
				lo, hi = min(lo, e.gap), max(hi, e.gap)
			}
			t.Logf("%d clients of GET %s dropped %v to %v after their last write that went through", n, c.target, lo, hi)
			for _, e := range ends {
				if e.written >= size {
					t.Errorf("GET %s: the connection took all %d bytes: the case does not block", e.target, e.written)
				}
				if e.gap < wt*9/10 || e.gap > 2*wt {
					t.Errorf("GET %s: ended %v after its last write that went through, want WriteTimeout %v (at most %v)", e.target, e.gap, wt, 2*wt)
				}
			}
			pollUntil(t, 5*time.Second, "the server to close the silent connections", func() bool {
				return lb.closed.Load()-closed >= int64(n)
			})
			if after := liveBytes(); after-base > 2*mib {
				t.Errorf("%d KiB still held after the clients were dropped", (after-base)/kib)
			}
		})
	}
}

// TestSlowReaderGetsWholeAnswer: a client that reads steadily, but slower
// than the whole answer can be sent within WriteTimeout, still gets all of
// it, since each write moves the deadline forward (Options.WriteTimeout).
// The reader takes 32 KiB every 50 ms (at most 640 KiB/s), through a 16 KiB
// send buffer; WriteTimeout is 500 ms: one write of more than ~300 KiB
// cannot complete in time, a write of 32 KiB or a batch of 256 events can.
func TestSlowReaderGetsWholeAnswer(t *testing.T) {
	const wt = 500 * time.Millisecond
	lb := serveLoopback(t, registry.Options{WriteTimeout: wt}, 16*kib)
	n := 10000
	if lighter() {
		n = 3000
	}
	fillFleet(t, lb.reg, n, []json.RawMessage{json.RawMessage(`{"name":"deploy","description":"Deploy the app","x-command":"/usr/local/bin/deploy","x-run-as":"svc"}`)})
	// Events to replay: 4,000 from the ring, ~700 KB of stream in
	// batches of at most 256.
	evStart := fmt.Sprintf("/events?index=%d", registryIndex(t, lb.reg, "/instances")-replayEvents)
	tests := []struct {
		name   string
		target string
	}{
		{"event replay", evStart},
		{"instances", "/instances"},
		{"lookup", "/tools/deploy?detail=true"},
		{"superputty", "/export/superputty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want int
			if !strings.HasPrefix(tt.target, "/events") {
				want = answerSize(t, lb.reg, tt.target)
			}
			c := dialRaw(t, lb.addr, getRequest(tt.target), 64*kib)
			start := time.Now()
			got, err := readSlowly(c, 32*kib, 50*time.Millisecond, tt.target)
			t.Logf("GET %s: %d bytes in %v", tt.target, len(got), time.Since(start))
			switch {
			case strings.HasPrefix(tt.target, "/events"):
				if n := strings.Count(got, "event: "); n < replayEvents || strings.Contains(got, "event: reset") {
					t.Errorf("GET %s: %d events (reset: %v) before %v, want the %d replayed, no reset",
						tt.target, n, strings.Contains(got, "event: reset"), err, replayEvents)
				}
			case err != nil || len(got) < want:
				t.Errorf("GET %s: got %d bytes of %d, then %v", tt.target, len(got), want, err)
			}
		})
	}
}

// replayEvents is how many events the slow reader of /events replays.
const replayEvents = 4000

// readSlowly reads an HTTP/1.1 answer from c, chunk bytes every period,
// until the body ends (for an event stream, until replayEvents came), and
// returns the body and the error that ended it (nil: a complete answer).
func readSlowly(c net.Conn, chunk int, period time.Duration, target string) (string, error) {
	br := bufio.NewReaderSize(c, chunk)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil {
		return "", err
	}
	// No resp.Body.Close: it would read the rest of an event stream; the
	// test closes the connection.
	var body strings.Builder
	buf := make([]byte, chunk)
	events := strings.HasPrefix(target, "/events")
	for {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for n := 0; n < chunk; {
			m, err := resp.Body.Read(buf[n:])
			n += m
			body.Write(buf[n-m : n])
			switch {
			case err == io.EOF:
				return body.String(), nil
			case err != nil:
				return body.String(), err
			case events && strings.Count(body.String(), "event: ") >= replayEvents:
				return body.String(), nil
			}
		}
		time.Sleep(period)
	}
}

// registryIndex is the X-Registry-Index of GET target, served in-process.
func registryIndex(t testing.TB, reg *registry.Registry, target string) uint64 {
	t.Helper()
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
	var idx uint64
	if _, err := fmt.Sscan(rec.Header().Get("X-Registry-Index"), &idx); err != nil {
		t.Fatalf("GET %s: X-Registry-Index %q", target, rec.Header().Get("X-Registry-Index"))
	}
	return idx
}

// TestSlowBodies: request bodies that do not arrive within BodyTimeout of
// their headers, whether they stall or trickle, are answered 408 with
// Connection: close and the connection is closed; while they wait, each
// costs about what it sent, not its declared length; afterwards nothing is
// held.
func TestSlowBodies(t *testing.T) {
	const bt = 2 * time.Second
	lb := serveLoopback(t, registry.Options{BodyTimeout: bt, WriteTimeout: 5 * time.Second}, 0)
	n := 100
	if lighter() {
		n = 25
	}
	const sent = 64 * kib
	head := "POST /instances HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\nContent-Length: 1048576\r\n\r\n"
	prefix := `{"instance_id":"slow","name":"app","version":"` + strings.Repeat("x", sent)

	base := liveBytes()
	started := time.Now()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = dialRaw(t, lb.addr, head+prefix[:sent], 64*kib)
	}
	// One more trickles a byte every 100 ms: the limit is on the whole
	// body, not on each read.
	trickle := dialRaw(t, lb.addr, head, 64*kib)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				if _, err := trickle.Write([]byte{prefix[i%len(prefix)]}); err != nil {
					return
				}
			}
		}
	}()
	pollUntil(t, 10*time.Second, "every slow body to be read in part", func() bool {
		return lb.started.Load() == int64(n+1)
	})
	time.Sleep(bt / 10) // let the last body prefixes arrive (no signal for bytes read)
	held := liveBytes()
	if took := time.Since(started); took >= bt {
		t.Fatalf("the slow bodies took %v to start: BodyTimeout %v is too short for this machine", took, bt)
	}
	per := (held - base) / int64(n)
	t.Logf("%d bodies of %d KiB (1 MiB declared) hold %d KiB each", n, sent/kib, per/kib)
	if per > perClientBound {
		t.Errorf("a slow body that sent %d KiB holds %d KiB, want at most %d KiB", sent/kib, per/kib, perClientBound/kib)
	}

	for i, c := range append(conns, trickle) {
		c.SetReadDeadline(time.Now().Add(bt + 5*time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("client %d: no answer: %v", i, err)
		}
		body, _ := io.ReadAll(resp.Body)
		took := time.Since(started)
		// ReadResponse turns Connection: close into resp.Close.
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close ||
			string(body) != `{"detail":"Request body not received within 2s"}` {
			t.Errorf("client %d: %s, Connection: close %v, body %s; want 408, Connection: close, a detail naming the limit",
				i, resp.Status, resp.Close, body)
		}
		if took < bt-bt/50 || took > bt+3*time.Second {
			t.Errorf("client %d: answered %v after its headers, want BodyTimeout %v", i, took, bt)
		}
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Errorf("client %d: the connection stays open after the 408", i)
		}
	}
	pollUntil(t, 5*time.Second, "the slow requests to end", func() bool {
		return lb.finished.Load() == int64(n+1) && lb.closed.Load() == int64(n+1)
	})
	for _, c := range conns {
		c.Close()
	}
	if after := liveBytes(); after-base > 2*mib {
		t.Errorf("%d KiB still held after the slow bodies were answered (%d KiB while they waited)", (after-base)/kib, (held-base)/kib)
	}
}

// TestBodyDeadlineClearedAfterBody: the body's read deadline ends with the
// body: on the same keep-alive connection, a blocking query that waits
// longer than BodyTimeout is answered at its wait, and a later write after
// an idle spell longer than BodyTimeout succeeds.
func TestBodyDeadlineClearedAfterBody(t *testing.T) {
	const bt = 300 * time.Millisecond
	lb := serveLoopback(t, registry.Options{BodyTimeout: bt, WriteTimeout: bt}, 0)
	c := dialRaw(t, lb.addr, "", 64*kib)
	br := bufio.NewReader(c)
	roundTrip := func(raw string) (*http.Response, string) {
		t.Helper()
		if _, err := io.WriteString(c, raw); err != nil {
			t.Fatalf("write: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("read answer: %v", err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatalf("read body: %v", err)
		}
		return resp, string(b)
	}
	post := func(body string) string {
		return fmt.Sprintf("POST /instances HTTP/1.1\r\nHost: registry\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	}
	if resp, body := roundTrip(post(`{"instance_id":"a","name":"app","version":"1","host":"h1"}`)); resp.StatusCode != http.StatusCreated {
		t.Fatalf("register: %s %s", resp.Status, body)
	}
	idx := registryIndex(t, lb.reg, "/instances")
	const wait = 4 * bt
	start := time.Now()
	resp, body := roundTrip(getRequest(fmt.Sprintf("/instances?index=%d&wait=%dms", idx, wait.Milliseconds())))
	took := time.Since(start)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"instance_id":"a"`) {
		t.Errorf("blocking query after a write: %s %s", resp.Status, body)
	}
	if took < wait || took > wait+wait/16+time.Second {
		t.Errorf("blocking query answered after %v, want its wait %v (BodyTimeout %v must not apply)", took, wait, bt)
	}
	time.Sleep(2 * bt) // idle on the connection, longer than BodyTimeout
	if resp, body := roundTrip(post(`{"instance_id":"b","name":"app","version":"1","host":"h2"}`)); resp.StatusCode != http.StatusCreated {
		t.Errorf("second write on the connection: %s %s", resp.Status, body)
	}
}

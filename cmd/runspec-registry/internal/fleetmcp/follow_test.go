// follow_test.go checks that the catalog the server keeps by following
// the change stream is, after any sequence of changes, the catalog a fresh
// listing gives, and that its tools are the registry's own grouped tools:
// random registrations, tool posts, heartbeats, expiries, deregistrations
// and deletions, a change stream that falls a ring behind (a reset), and
// registry restarts on their store.

package fleetmcp_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
)

var followSeed = flag.Uint64("follow.seed", 1, "seed of TestFollowEqualsListing's changes")

// liveRegistry is the registry behind one URL; it restarts on its store.
type liveRegistry struct {
	t     *testing.T
	clock *clock
	store *registry.MemStore
	srv   *httptest.Server

	mu  sync.Mutex
	reg *registry.Registry
}

func newLiveRegistry(t *testing.T) *liveRegistry {
	l := &liveRegistry{t: t, clock: &clock{now: time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)}, store: registry.NewMemStore()}
	l.reg = l.start()
	l.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { l.current().ServeHTTP(w, r) }))
	t.Cleanup(func() { l.current().ReleaseWaiters(); l.srv.Close() })
	return l
}

func (l *liveRegistry) start() *registry.Registry {
	reg, err := registry.New(registry.Options{Store: l.store, Now: l.clock.Now, NotifyInterval: -1, RetainInactive: 10 * time.Minute})
	if err != nil {
		l.t.Fatal(err)
	}
	return reg
}

func (l *liveRegistry) current() *registry.Registry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reg
}

// restart stops the registry and starts another on its store, at the
// same URL, a little later.
func (l *liveRegistry) restart() {
	old := l.current()
	if err := old.Checkpoint(context.Background()); err != nil {
		l.t.Fatal(err)
	}
	l.clock.advance(2 * time.Second)
	reg := l.start()
	l.mu.Lock()
	l.reg = reg
	l.mu.Unlock()
	old.ReleaseWaiters()
	l.srv.CloseClientConnections()
}

// index returns the registry's change index: every change up to it has
// an event.
func (l *liveRegistry) index() uint64 {
	_, meta, err := l.current().Instances(context.Background(), registry.Filter{})
	if err != nil {
		l.t.Fatal(err)
	}
	return meta.Index
}

// pausable is a Source whose change stream can be stopped for a while, so
// that the registry's ring moves on without it.
type pausable struct {
	*client.Client
	mu      sync.Mutex
	paused  bool
	cancel  context.CancelFunc
	resumed chan struct{}
}

func (p *pausable) Events(ctx context.Context, after uint64) iter.Seq2[registry.Event, error] {
	return func(yield func(registry.Event, error) bool) {
		for ctx.Err() == nil {
			inner, cancel := context.WithCancel(ctx)
			p.mu.Lock()
			p.cancel = cancel
			wait := p.resumed
			paused := p.paused
			p.mu.Unlock()
			if paused {
				cancel()
				select {
				case <-wait:
				case <-ctx.Done():
					return
				}
				continue
			}
			for e, err := range p.Client.Events(inner, after) {
				if err == nil {
					after = e.Index
				}
				if !yield(e, err) {
					cancel()
					return
				}
			}
			cancel()
		}
	}
}

// pause stops the stream until resume.
func (p *pausable) pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused, p.resumed = true, make(chan struct{})
	if p.cancel != nil {
		p.cancel()
	}
}

func (p *pausable) resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.paused = false
	close(p.resumed)
}

// follower is a server on the registry and the updates of its listing.
type follower struct {
	t       *testing.T
	srv     *fleetmcp.Server
	mu      sync.Mutex
	cond    *sync.Cond
	last    uint64 // the index of the last update
	session *session
}

func startFollower(t *testing.T, src fleetmcp.Source, view fleetmcp.View) (*follower, func()) {
	t.Helper()
	f := &follower{t: t}
	f.cond = sync.NewCond(&f.mu)
	var err error
	f.srv, err = fleetmcp.New(fleetmcp.Options{Source: src, Runner: &fakeRun{}, View: view, NotifyInterval: time.Millisecond,
		OnUpdate: func(u fleetmcp.Update) {
			f.mu.Lock()
			f.last = u.Index
			f.cond.Broadcast()
			f.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); f.srv.Run(ctx) }()
	stop := func() { cancel(); <-done }
	select {
	case <-f.srv.Ready():
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("no first catalog within 10s")
	}
	return f, stop
}

// wait waits until the listing shows index.
func (f *follower) wait(index uint64) {
	f.t.Helper()
	timer := time.AfterFunc(10*time.Second, func() { f.mu.Lock(); f.cond.Broadcast(); f.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	for f.last < index {
		if time.Now().After(deadline) {
			f.t.Fatalf("the listing is at index %d after 10s, want %d", f.last, index)
		}
		f.cond.Wait()
	}
}

// fleetChanges makes random changes to a fleet of a few instances, hosts,
// agent names, labels and tools, whose names include one MCP cannot take
// (aliased), and the name of that alias.
type fleetChanges struct {
	rng   *rand.Rand
	l     *liveRegistry
	src   *pausable
	names []string
}

func (c *fleetChanges) pick(xs ...string) string { return xs[c.rng.IntN(len(xs))] }

func (c *fleetChanges) id() string { return fmt.Sprintf("i%02d", c.rng.IntN(14)) }

// tool is one tool object, in one of a few versions of each part.
func (c *fleetChanges) tool(name string) json.RawMessage {
	t := map[string]any{"name": name, "x-command": c.pick("/bin/"+name, "/usr/bin/"+name)}
	switch c.rng.IntN(4) {
	case 0:
		t["description"] = "Does " + name
	case 1:
		t["description"] = "Does " + name + ", newer"
	case 2:
		t["description"] = 7 // not a string: no description
	}
	switch c.rng.IntN(8) {
	case 0, 1, 2:
		t["inputSchema"] = map[string]any{"type": "object", "properties": map[string]any{"message": map[string]any{"type": "string"}}}
	case 3, 4:
		t["inputSchema"] = map[string]any{"type": "object", "required": []string{"n"}, "properties": map[string]any{"n": map[string]any{"type": "integer"}}}
	case 5:
		t["inputSchema"] = map[string]any{"type": "string"} // cannot be listed
	}
	if a := c.pick("", "", "", "autonomous", "autonomous", "supervised", "supervised", "confirm", "confirm", "yolo", "", "autonomous", "supervised", "manual"); a != "" {
		t["x-autonomy"] = a
	}
	if c.rng.IntN(4) == 0 {
		t["title"] = "The " + name
	}
	if c.rng.IntN(4) == 0 {
		t["annotations"] = map[string]any{"readOnlyHint": c.rng.IntN(2) == 0}
	}
	b, err := json.Marshal(t)
	if err != nil {
		panic(err)
	}
	return b
}

// step makes one random change and says what it was.
func (c *fleetChanges) step(t *testing.T) string {
	ctx := context.Background()
	reg := c.l.current()
	switch n := c.rng.IntN(100); {
	case n < 12:
		id := c.id()
		var labels map[string]string
		if env := c.pick("", "prod", "prod", "test"); env != "" {
			labels = map[string]string{"env": env}
		}
		r := registry.Registration{ID: id, Name: c.pick("ops", "db"), Version: "1", Host: c.pick("web-1", "web-2", "web-3", "db-1"), Labels: labels}
		if err := reg.Register(ctx, r); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("register %s %s on %s %v", id, r.Name, r.Host, labels)
	case n < 52:
		id := c.id()
		var tools []json.RawMessage
		for _, name := range c.names {
			if c.rng.IntN(3) == 0 {
				tools = append(tools, c.tool(name))
			}
		}
		err := reg.UpdateTools(ctx, id, tools)
		return fmt.Sprintf("post %d tools to %s: %v", len(tools), id, err)
	case n < 72:
		// Most instances heartbeat; one, maybe, does not.
		skip := c.id()
		for i := range 14 {
			if id := fmt.Sprintf("i%02d", i); id != skip {
				reg.Heartbeat(ctx, id, nil)
			}
		}
		return "heartbeats but " + skip
	case n < 77:
		id := c.id()
		return fmt.Sprintf("deregister %s: %v", id, reg.Deregister(ctx, id))
	case n < 90:
		d := time.Duration(c.rng.IntN(50)) * time.Second
		c.l.clock.advance(d)
		return fmt.Sprintf("%v later: %v", d, reg.Purge(ctx))
	case n < 93:
		c.l.clock.advance(15 * time.Minute)
		return fmt.Sprintf("15m later (deletions): %v", reg.Purge(ctx))
	case n < 96:
		// More changes than the registry's ring holds while the stream
		// is away: it comes back to a reset.
		c.src.pause()
		id := c.id()
		for range 8300 {
			reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: "web-9"})
		}
		reg.UpdateTools(ctx, id, []json.RawMessage{c.tool("deploy")})
		c.src.resume()
		return "8,300 registrations of " + id + " while the stream is away"
	default:
		c.l.restart()
		return "restart"
	}
}

func TestFollowEqualsListing(t *testing.T) {
	steps := 100
	views := []struct {
		name string
		view fleetmcp.View
		// oracle: compare each tool with the registry's GET /tools/{name}
		// (the registry filters labels, not agent names).
		oracle bool
	}{
		{"whole fleet", fleetmcp.View{}, true},
		{"labels and globs", fleetmcp.View{Labels: map[string]string{"env": "prod"}, Tools: []string{"de*", "a*", "ns/*"}}, true},
		{"agent", fleetmcp.View{Agent: "db"}, false},
	}
	if testing.Short() {
		steps, views = 40, views[:1]
	}
	ignoreSeen := cmpopts.IgnoreFields(registry.ToolHost{}, "LastSeen")
	for _, vt := range views {
		t.Run(vt.name, func(t *testing.T) {
			l := newLiveRegistry(t)
			cl, err := client.New(l.srv.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(cl.CloseIdleConnections)
			src := &pausable{Client: cl}
			c := &fleetChanges{rng: rand.New(rand.NewPCG(*followSeed, 7)), l: l, src: src,
				names: []string{"deploy", "status", "backup", "a.b", "ns/tool", fleetmcp.Alias("a.b"), "deploy_web"}}
			live, stop := startFollower(t, src, vt.view)
			defer stop()
			s := (&fixture{t: t, srv: live.srv}).connect(clientConfig{})
			var log []string
			nonEmpty, entries := 0, 0
			for i := range steps {
				for range 1 + c.rng.IntN(4) {
					log = append(log, c.step(t))
				}
				live.wait(l.index())
				_, got := live.srv.Catalog()
				if len(got) > 0 {
					nonEmpty++
					entries += len(got)
				}

				fresh, stopFresh := startFollower(t, cl, vt.view)
				_, want := fresh.srv.Catalog()
				stopFresh()
				if diff := cmp.Diff(want, got, ignoreSeen, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("step %d: the catalog followed differs from a fresh listing's (-fresh +followed):\n%s\nchanges:\n%s",
						i, diff, strings.Join(log, "\n"))
				}
				listed, _ := s.list(t)
				var wantNames []string
				for name := range got {
					wantNames = append(wantNames, name)
				}
				slices.Sort(wantNames)
				if diff := cmp.Diff(wantNames, names(listed), cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("step %d: tools/list differs from the catalog (-catalog +listed):\n%s", i, diff)
				}
				if !vt.oracle {
					continue
				}
				for name, e := range got {
					tool, _, err := l.current().Tool(context.Background(), e.Runspec, registry.Filter{ActiveOnly: true, Labels: vt.view.Labels})
					if err != nil {
						t.Fatalf("step %d: %s is listed, but the registry says %v", i, name, err)
					}
					if diff := cmp.Diff(tool, e.Tool, ignoreSeen, cmpopts.EquateEmpty()); diff != "" {
						t.Fatalf("step %d: tool %s differs from the registry's (-registry +catalog):\n%s\nchanges:\n%s", i, name, diff, strings.Join(log, "\n"))
					}
				}
			}
			t.Logf("%d steps, %d changes; %d steps with a tool listed, %.1f tools on average then", steps, len(log), nonEmpty, float64(entries)/float64(max(nonEmpty, 1)))
		})
	}
}

// TestFollowRegistrationOrder: the tool's description and schema are
// those of the instance that registered first, as the registry groups
// them: an id keeps its place when it registers again, and one whose
// record was deleted comes last when it comes back.
func TestFollowRegistrationOrder(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	desc := func() string {
		f.sync()
		_, cat := f.srv.Catalog()
		return cat["deploy"].Tool.Description
	}
	f.agent("a1", "ops", "web-1", nil, echo("deploy").with("description", "first"))
	f.agent("a2", "ops", "web-2", nil, echo("deploy").with("description", "second"))
	steps := []struct {
		name string
		do   func()
		want string
	}{
		{"the first registered", func() {}, "first"},
		{"registered again, it keeps its place", func() {
			f.agent("a1", "ops", "web-1", nil, echo("deploy").with("description", "first, again"))
		}, "first, again"},
		{"gone inactive, the next", func() { f.reg.Deregister(t.Context(), "a1") }, "second"},
		{"deleted and back, it comes last", func() {
			f.clock.advance(72*time.Hour + time.Second) // past a1's retention
			f.reg.Heartbeat(t.Context(), "a2", nil)     // back from its expiry, in its place
			f.reg.Purge(t.Context())
			if _, _, err := f.reg.Instance(t.Context(), "a1"); err == nil {
				t.Fatal("a1 was not deleted")
			}
			f.agent("a1", "ops", "web-1", nil, echo("deploy").with("description", "back"))
		}, "second"},
		{"first again once the other goes", func() { f.reg.Deregister(t.Context(), "a2") }, "back"},
	}
	for _, st := range steps {
		st.do()
		if got := desc(); got != st.want {
			t.Errorf("%s: description %q, want %q", st.name, got, st.want)
		}
		tool, _, err := f.reg.Tool(t.Context(), "deploy", registry.Filter{ActiveOnly: true})
		if err != nil || tool.Description != st.want {
			t.Fatalf("%s: the registry's description %q, %v: the test is wrong", st.name, tool.Description, err)
		}
	}
}

// noEvents is a registry without a change stream, as the v1 reference:
// GET /events is a 404.
type noEvents struct{ *client.Client }

func (noEvents) Events(ctx context.Context, _ uint64) iter.Seq2[registry.Event, error] {
	return func(yield func(registry.Event, error) bool) {
		for ctx.Err() == nil {
			if !yield(registry.Event{}, &client.APIError{Request: "GET /events", StatusCode: http.StatusNotFound, Detail: "Not Found"}) {
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Millisecond): // the client's back-off
			}
		}
	}
}

// TestFollowWithoutEvents: against a registry without a change stream,
// the server lists again at each retry of the stream.
func TestFollowWithoutEvents(t *testing.T) {
	l := newLiveRegistry(t)
	cl, err := client.New(l.srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.CloseIdleConnections)
	f, stop := startFollower(t, noEvents{cl}, fleetmcp.View{})
	defer stop()
	ctx := context.Background()
	l.current().Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	l.current().UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"deploy","x-command":"/bin/deploy"}`)})
	f.wait(l.index())
	if _, cat := f.srv.Catalog(); cat["deploy"].Runspec != "deploy" {
		t.Errorf("catalog %v, want deploy", cat)
	}
}

// helpers_test.go holds the in-process harness: a registry (registry.New
// behind httptest, with a fake clock), the fleet's MCP server on it with a
// runner whose plans are real and whose runs are recorded, and SDK
// clients connected over in-memory transports.

package fleetmcp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
	"github.com/runspec/registry/run"
)

// Protocol versions the tests speak: the newest (elicitation as multi
// round-trip input requests) and the last one of the initialize
// handshake (elicitation/create sent by the server).
const (
	newProtocol    = "2026-07-28"
	legacyProtocol = "2025-11-25"
)

// clock is a settable clock for the registry.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// fakeRun plans with a real run.Runner and records runs instead of
// running ssh; output, if set, writes what the run prints and returns its
// status.
type fakeRun struct {
	r      *run.Runner
	mu     sync.Mutex
	runs   []*run.Plan
	output func(ctx context.Context, p *run.Plan, stdout, stderr io.Writer) (int, error)
}

func (f *fakeRun) Plan(c run.Call) (*run.Plan, error) { return f.r.Plan(c) }

func (f *fakeRun) Run(ctx context.Context, p *run.Plan, stdout, stderr io.Writer) (int, error) {
	f.mu.Lock()
	f.runs = append(f.runs, p)
	out := f.output
	f.mu.Unlock()
	if out == nil {
		fmt.Fprintf(stdout, "ran %s on %s", p.Tool, p.Host)
		return 0, nil
	}
	return out(ctx, p, stdout, stderr)
}

// taken returns the plans run so far and forgets them.
func (f *fakeRun) taken() []*run.Plan {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runs
	f.runs = nil
	return r
}

// fixture is a registry and the fleet's MCP server on it.
type fixture struct {
	t     *testing.T
	clock *clock
	reg   *registry.Registry
	src   *client.Client
	run   *fakeRun
	srv   *fleetmcp.Server

	mu      sync.Mutex
	cond    *sync.Cond
	updates []fleetmcp.Update
}

// newFixture starts a registry and the server with opts (Source and
// Runner are the fixture's: the Go client over HTTP, and fakeRun;
// NotifyInterval defaults to 1ms here).
func newFixture(t *testing.T, opts fleetmcp.Options) *fixture {
	t.Helper()
	f := &fixture{t: t, clock: &clock{now: time.Date(2026, 7, 28, 12, 0, 0, 0, time.UTC)}}
	f.cond = sync.NewCond(&f.mu)
	reg, err := registry.New(registry.Options{Now: f.clock.Now, NotifyInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	f.reg = reg
	hs := httptest.NewServer(reg)
	t.Cleanup(hs.Close)
	if f.src, err = client.New(hs.URL, client.Options{MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	r, err := run.New(run.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f.run = &fakeRun{r: r}
	opts.Source, opts.Runner = f.src, f.run
	if opts.NotifyInterval == 0 {
		opts.NotifyInterval = time.Millisecond
	}
	user := opts.OnUpdate
	opts.OnUpdate = func(u fleetmcp.Update) {
		f.mu.Lock()
		f.updates = append(f.updates, u)
		f.cond.Broadcast()
		f.mu.Unlock()
		if user != nil {
			user(u)
		}
	}
	if f.srv, err = fleetmcp.New(opts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.srv.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-f.srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not list the registry within 10s")
	}
	return f
}

// tool is a tool object as an agent posts it.
type tool map[string]any

// agent registers an instance and posts its tools.
func (f *fixture) agent(id, name, host string, labels map[string]string, tools ...tool) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.reg.Register(ctx, registry.Registration{ID: id, Name: name, Version: "1", Host: host, Labels: labels}); err != nil {
		f.t.Fatal(err)
	}
	f.post(id, tools...)
}

// post replaces the tools of an instance.
func (f *fixture) post(id string, tools ...tool) {
	f.t.Helper()
	raw := make([]json.RawMessage, len(tools))
	for i, t := range tools {
		b, err := json.Marshal(t)
		if err != nil {
			f.t.Fatal(err)
		}
		raw[i] = b
	}
	if err := f.reg.UpdateTools(context.Background(), id, raw); err != nil {
		f.t.Fatal(err)
	}
}

// sync waits until the server has applied the registry's current tools
// and returns the last update.
func (f *fixture) sync() fleetmcp.Update {
	f.t.Helper()
	_, meta, err := f.reg.Tools(context.Background(), registry.Filter{ActiveOnly: true})
	if err != nil {
		f.t.Fatal(err)
	}
	return f.waitIndex(meta.Index)
}

// waitIndex waits for an update built from index or later.
func (f *fixture) waitIndex(index uint64) fleetmcp.Update {
	f.t.Helper()
	timer := time.AfterFunc(10*time.Second, func() {
		f.mu.Lock()
		f.cond.Broadcast()
		f.mu.Unlock()
	})
	defer timer.Stop()
	deadline := time.Now().Add(10 * time.Second)
	f.mu.Lock()
	defer f.mu.Unlock()
	for {
		if n := len(f.updates); n > 0 && f.updates[n-1].Index >= index {
			return f.updates[n-1]
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("no update of the listing at index %d within 10s (updates: %+v)", index, f.updates)
		}
		f.cond.Wait()
	}
}

// expire makes every instance that missed its heartbeats inactive.
func (f *fixture) expire(d time.Duration) {
	f.t.Helper()
	f.clock.advance(d)
	if err := f.reg.Purge(context.Background()); err != nil {
		f.t.Fatal(err)
	}
}

// session is a connected client and what it was told.
type session struct {
	*mcp.ClientSession
	mu       sync.Mutex
	changed  []time.Time // list_changed notifications
	progress []*mcp.ProgressNotificationParams
	elicited []*mcp.ElicitParams
	notify   chan struct{} // a notification came
}

// clientConfig says how a test client behaves.
type clientConfig struct {
	protocol string
	// elicit, if not nil, answers elicitations (the client then has the
	// capability).
	elicit func(*mcp.ElicitParams) *mcp.ElicitResult
}

// connect connects an SDK client to the server.
func (f *fixture) connect(cfg clientConfig) *session {
	f.t.Helper()
	s := &session{notify: make(chan struct{}, 1000)}
	note := func() {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	opts := &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			s.mu.Lock()
			s.changed = append(s.changed, time.Now())
			s.mu.Unlock()
			note()
		},
		ProgressNotificationHandler: func(_ context.Context, r *mcp.ProgressNotificationClientRequest) {
			s.mu.Lock()
			s.progress = append(s.progress, r.Params)
			s.mu.Unlock()
			note()
		},
	}
	if cfg.elicit != nil {
		opts.ElicitationHandler = func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			s.mu.Lock()
			s.elicited = append(s.elicited, r.Params)
			s.mu.Unlock()
			return cfg.elicit(r.Params), nil
		}
	}
	s.ClientSession = f.connectClient(mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, opts), cfg.protocol)
	return s
}

// connectClient connects c to the server over in-memory transports,
// speaking protocol (the SDK's newest if empty).
func (f *fixture) connectClient(c *mcp.Client, protocol string) *mcp.ClientSession {
	f.t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ctx := f.t.Context()
	ss, err := f.srv.MCP().Connect(ctx, st, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { ss.Close() })
	cs, err := c.Connect(ctx, ct, &mcp.ClientSessionOptions{ProtocolVersion: protocol})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { cs.Close() })
	return cs
}

// changes returns the number of list_changed notifications so far.
func (s *session) changes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.changed)
}

// waitChanges waits until n list_changed notifications came.
func (s *session) waitChanges(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for s.changes() < n {
		select {
		case <-s.notify:
		case <-deadline:
			t.Fatalf("%d list_changed notifications within 10s, want %d", s.changes(), n)
		}
	}
}

// list lists every tool, page by page, and returns them and the number
// of pages.
func (s *session) list(t *testing.T) ([]*mcp.Tool, int) {
	t.Helper()
	var all []*mcp.Tool
	cursor, pages := "", 0
	for {
		res, err := s.ListTools(t.Context(), &mcp.ListToolsParams{Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		all = append(all, res.Tools...)
		if res.NextCursor == "" {
			return all, pages
		}
		cursor = res.NextCursor
	}
}

// listed returns the tool named name, or nil.
func (s *session) listed(t *testing.T, name string) *mcp.Tool {
	t.Helper()
	tools, _ := s.list(t)
	for _, tl := range tools {
		if tl.Name == name {
			return tl
		}
	}
	return nil
}

// names returns the names of tools.
func names(tools []*mcp.Tool) []string {
	out := make([]string, len(tools))
	for i, t := range tools {
		out[i] = t.Name
	}
	return out
}

// call calls a tool and returns its result.
func (s *session) call(t *testing.T, name string, args map[string]any) *mcp.CallToolResult {
	t.Helper()
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		t.Fatalf("call %s: %v", name, err)
	}
	return res
}

// text joins the texts of a result.
func text(res *mcp.CallToolResult) string {
	var out []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			out = append(out, tc.Text)
		}
	}
	return fmt.Sprint(out)
}

// hostEnum reads the runspec_host property of a listed tool: its enum,
// its default and whether it is required.
func hostEnum(t *testing.T, tl *mcp.Tool) (enum []string, def string, required bool) {
	t.Helper()
	b, err := json.Marshal(tl.InputSchema)
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Properties map[string]struct {
			Enum    []string `json:"enum"`
			Default string   `json:"default"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	p := s.Properties[fleetmcp.HostArg]
	return p.Enum, p.Default, slices.Contains(s.Required, fleetmcp.HostArg)
}

// echo is a tool with a schema of each kind of argument.
func echo(name string) tool {
	return tool{
		"name": name, "description": "Echo " + name, "x-command": "/usr/bin/echo",
		"inputSchema": map[string]any{"type": "object", "properties": map[string]any{
			"message": map[string]any{"type": "string"},
			"count":   map[string]any{"type": "integer", "minimum": 1},
		}, "required": []string{"message"}},
	}
}

// with returns t with more members.
func (t tool) with(kv ...any) tool {
	out := tool{}
	for k, v := range t {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// fakeSource is a Source that New accepts and nothing calls.
type fakeSource struct{ fleetmcp.Source }

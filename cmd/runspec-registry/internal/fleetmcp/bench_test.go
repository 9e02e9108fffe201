// bench_test.go measures the MCP server at fleet scale: tools/list over
// 20,000 agents x 20 tools (800 tool names, each on 500 hosts), the first
// page and the whole list, with their median; the catalog's build from
// the registry over HTTP; and what a tools/call adds to the run package's
// own time, without ssh (all of the overhead) and over a real sshd.
// BENCHMARKS.md ("MCP") has the figures and how to rerun them.

package fleetmcp_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
	"github.com/runspec/registry/internal/sshtest"
	"github.com/runspec/registry/run"
)

// benchFleet registers agents instances with tools tools each, drawn
// from names tool names, each instance on its own host.
func benchFleet(b *testing.B, reg *registry.Registry, agents, tools, names int) {
	b.Helper()
	ctx := context.Background()
	objs := make([]json.RawMessage, names)
	for i := range names {
		objs[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%03d","description":"Tool %d of the fleet: it does one thing well.",`+
			`"x-command":"/usr/local/bin/tool-%03d","x-autonomy":"autonomous","inputSchema":{"type":"object",`+
			`"properties":{"target":{"type":"string","description":"What to act on"},"dry_run":{"type":"boolean"}},"required":["target"]}}`, i, i, i))
	}
	list := make([]json.RawMessage, tools)
	for a := range agents {
		id := fmt.Sprintf("agent-%05d", a)
		if err := reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: fmt.Sprintf("host-%05d", a)}); err != nil {
			b.Fatal(err)
		}
		for j := range tools {
			list[j] = objs[(a*tools+j)%names]
		}
		if err := reg.UpdateTools(ctx, id, list); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFleetScale is a benchRegistry holding the fleet of the benchmarks
// at scale: 20,000 agents x 20 tools of 800 names (-short: 2,000 agents).
func benchFleetScale(b *testing.B) *registry.Registry {
	b.Helper()
	agents := 20000
	if testing.Short() {
		agents = 2000
	}
	reg := benchRegistry(b)
	start := time.Now()
	benchFleet(b, reg, agents, 20, 800)
	b.Logf("%d agents x 20 tools registered in %v", agents, time.Since(start).Round(time.Millisecond))
	return reg
}

// benchRegistry is a registry whose agents do not expire during a
// benchmark (nothing heartbeats them): a day of heartbeat interval.
func benchRegistry(b *testing.B) *registry.Registry {
	b.Helper()
	reg, err := registry.New(registry.Options{HeartbeatInterval: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return reg
}

// percentile returns the q-quantile of ds (sorted in place).
func percentile(ds []time.Duration, q float64) time.Duration {
	slices.Sort(ds)
	return ds[int(q*float64(len(ds)-1))]
}

// benchServer serves reg through the Go client over HTTP, as the command
// does, and reports how long the first catalog took.
func benchServer(b *testing.B, reg *registry.Registry, exec fleetmcp.Executor) (*fleetmcp.Server, *mcp.ClientSession) {
	b.Helper()
	s, cs, _ := benchServerUpdates(b, reg, exec)
	return s, cs
}

// benchServerUpdates is benchServer that also returns the updates of the
// listing.
func benchServerUpdates(b *testing.B, reg *registry.Registry, exec fleetmcp.Executor) (*fleetmcp.Server, *mcp.ClientSession, chan fleetmcp.Update) {
	b.Helper()
	updates := make(chan fleetmcp.Update, 16)
	hs := httptest.NewServer(reg)
	b.Cleanup(hs.Close)
	c, err := client.New(hs.URL, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := fleetmcp.New(fleetmcp.Options{Source: c, Runner: exec, OnUpdate: func(u fleetmcp.Update) {
		select {
		case updates <- u:
		default:
		}
	}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	start := time.Now()
	go func() { defer close(done); s.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	select {
	case <-s.Ready():
	case <-time.After(5 * time.Minute):
		b.Fatal("no catalog within 5 minutes")
	}
	b.Logf("first catalog built and listed in %v", time.Since(start).Round(time.Millisecond))
	runtime.GC() // the garbage of the start (decoded answers), not the steady state's
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Logf("heap in use (registry and MCP server in one process): %d MiB", ms.HeapInuse>>20)
	ct, st := mcp.NewInMemoryTransports()
	if _, err := s.MCP().Connect(ctx, st, nil); err != nil {
		b.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cs.Close() })
	return s, cs, updates
}

// rawSession is a client that speaks newline-delimited JSON-RPC to the
// server over pipes, as the stdio transport does, and reads each answer
// as bytes, finding only its cursor: it times the server's answer (and
// the pipe), not a client's parsing. (The Go SDK's client also re-reads
// every tool's schema, which costs more than the server's answer; the
// go-client benchmarks include it.)
type rawSession struct {
	w  *os.File
	r  *bufio.Reader
	id int
}

func newRawSession(b *testing.B, s *fleetmcp.Server) *rawSession {
	b.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	ss, err := s.MCP().Connect(context.Background(), &mcp.IOTransport{Reader: inR, Writer: outW, MaxLineLength: -1}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ss.Close(); inW.Close(); outR.Close() })
	r := &rawSession{w: inW, r: bufio.NewReaderSize(outR, 1<<20)}
	r.call(b, "initialize", `{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}`)
	if _, err := io.WriteString(inW, `{"jsonrpc":"2.0","method":"notifications/initialized","params":{}}`+"\n"); err != nil {
		b.Fatal(err)
	}
	return r
}

// call sends a request and returns the line of its answer.
func (r *rawSession) call(b *testing.B, method, params string) []byte {
	r.id++
	id := fmt.Sprintf(`"id":%d`, r.id)
	if _, err := fmt.Fprintf(r.w, `{"jsonrpc":"2.0",%s,"method":%q,"params":%s}`+"\n", id, method, params); err != nil {
		b.Fatal(err)
	}
	for {
		line, err := r.r.ReadBytes('\n')
		if err != nil {
			b.Fatal(err)
		}
		if bytes.Contains(line, []byte(id+",")) || bytes.Contains(line, []byte(id+"}")) {
			if bytes.Contains(line[:min(len(line), 64)], []byte(`"error"`)) {
				b.Fatalf("%s: %s", method, line)
			}
			return line
		}
	}
}

var cursorRE = regexp.MustCompile(`"nextCursor":"([^"]*)"`)

// listPage asks for one page and returns its answer and the next cursor.
func (r *rawSession) listPage(b *testing.B, cursor string) ([]byte, string) {
	params := `{}`
	if cursor != "" {
		params = `{"cursor":` + quote(cursor) + `}`
	}
	line := r.call(b, "tools/list", params)
	if i := bytes.Index(line, []byte(`"nextCursor":"`)); i >= 0 {
		if m := cursorRE.FindSubmatch(line[i:min(len(line), i+1024)]); m != nil {
			return line, string(m[1])
		}
	}
	return line, ""
}

// countTools decodes an answer of tools/list and counts its tools.
func countTools(b *testing.B, line []byte) int {
	var resp struct {
		Result struct {
			Tools []json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		b.Fatal(err)
	}
	return len(resp.Result.Tools)
}

// BenchmarkList: tools/list of 800 tools (20,000 agents x 20 tools), page
// by page of 100, over the SDK's in-memory transport. -short: 2,000
// agents.
func BenchmarkList(b *testing.B) {
	reg := benchFleetScale(b)
	r, _ := run.New(run.Options{})
	srv, cs, updates := benchServerUpdates(b, reg, &fakeRun{r: r})
	raw := newRawSession(b, srv)
	for len(updates) > 0 {
		<-updates
	}
	// What one change costs at this size (BenchmarkFollow measures it
	// on the wire).
	start := time.Now()
	reg.Register(context.Background(), registry.Registration{ID: "late", Name: "ops", Version: "1", Host: "host-late"})
	reg.UpdateTools(context.Background(), "late", []json.RawMessage{json.RawMessage(`{"name":"late-tool","x-command":"/bin/true"}`)})
	for u := range updates {
		if slices.Contains(u.Changed, "late-tool") {
			break
		}
	}
	b.Logf("a registration reached the listing in %v", time.Since(start).Round(time.Millisecond))
	reg.Deregister(context.Background(), "late")
	for u := range updates {
		if slices.Contains(u.Removed, "late-tool") {
			break
		}
	}
	runtime.GC()
	ctx := context.Background()
	p50 := func(b *testing.B, ds []time.Duration) {
		b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
	}

	// The server's answer, as any client gets it.
	b.Run("first-page", func(b *testing.B) {
		b.ReportAllocs()
		var ds []time.Duration
		line, _ := raw.listPage(b, "")
		if n := countTools(b, line); n != fleetmcp.DefaultPageSize {
			b.Fatalf("%d tools on the first page", n)
		}
		for b.Loop() {
			t := time.Now()
			raw.listPage(b, "")
			ds = append(ds, time.Since(t))
		}
		p50(b, ds)
		b.ReportMetric(float64(len(line)), "bytes/page")
	})
	b.Run("all-pages", func(b *testing.B) {
		b.ReportAllocs()
		var ds []time.Duration
		total, size, cursor := 0, 0, ""
		for {
			line, next := raw.listPage(b, cursor)
			total += countTools(b, line)
			size += len(line)
			if cursor = next; cursor == "" {
				break
			}
		}
		if total != 800 {
			b.Fatalf("%d tools over the pages", total)
		}
		for b.Loop() {
			t := time.Now()
			for cursor := ""; ; {
				_, next := raw.listPage(b, cursor)
				if cursor = next; cursor == "" {
					break
				}
			}
			ds = append(ds, time.Since(t))
		}
		p50(b, ds)
		b.ReportMetric(float64(size), "bytes/list")
	})
	// The same through the Go SDK's client, which validates each tool.
	b.Run("go-client-first-page", func(b *testing.B) {
		b.ReportAllocs()
		var ds []time.Duration
		for b.Loop() {
			t := time.Now()
			res, err := cs.ListTools(ctx, nil)
			if err != nil || len(res.Tools) != fleetmcp.DefaultPageSize {
				b.Fatalf("%v, %d tools", err, len(res.Tools))
			}
			ds = append(ds, time.Since(t))
		}
		p50(b, ds)
	})
	b.Run("go-client-all-pages", func(b *testing.B) {
		b.ReportAllocs()
		var ds []time.Duration
		for b.Loop() {
			t := time.Now()
			n, cursor := 0, ""
			for {
				res, err := cs.ListTools(ctx, &mcp.ListToolsParams{Cursor: cursor})
				if err != nil {
					b.Fatal(err)
				}
				n += len(res.Tools)
				if cursor = res.NextCursor; cursor == "" {
					break
				}
			}
			if n != 800 {
				b.Fatalf("%d tools", n)
			}
			ds = append(ds, time.Since(t))
		}
		p50(b, ds)
	})
}

// noRun is an Executor whose runs do nothing: what a call costs besides
// the run itself.
type noRun struct{ r *run.Runner }

func (n noRun) Plan(c run.Call) (*run.Plan, error) { return n.r.Plan(c) }
func (noRun) Run(_ context.Context, _ *run.Plan, stdout, _ io.Writer) (int, error) {
	io.WriteString(stdout, "ok\n")
	return 0, nil
}

// BenchmarkCallOverhead: a tools/call whose run does nothing, in a fleet
// of 2,000 agents: arguments, host choice, plan, the registry read of the
// instance's record, the answer, over the in-memory transport.
func BenchmarkCallOverhead(b *testing.B) {
	reg := benchRegistry(b)
	benchFleet(b, reg, 2000, 20, 800)
	r, _ := run.New(run.Options{})
	_, cs := benchServer(b, reg, noRun{r})
	ctx := context.Background()
	b.ReportAllocs()
	var ds []time.Duration
	for b.Loop() {
		t := time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "tool-000",
			Arguments: map[string]any{"runspec_host": "host-00000", "target": "x", "dry_run": true}})
		if err != nil || res.IsError {
			b.Fatalf("%v %v", err, res)
		}
		ds = append(ds, time.Since(t))
	}
	b.ReportMetric(float64(percentile(ds, 0.5).Microseconds())/1000, "p50-ms")
}

// BenchmarkCallSSH compares a tools/call with the run package running the
// same plan itself, over a real sshd (internal/sshtest), in alternation
// (the machine's load drifts): the medians of each, and the median of
// what each call took more than the run next to it. Skipped without sshd.
func BenchmarkCallSSH(b *testing.B) {
	s := sshtest.Start(b, sshtest.Options{})
	reg := benchRegistry(b)
	ctx := context.Background()
	reg.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1"})
	reg.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(`{"name":"argv","x-command":` + quote(s.Tool) +
		`,"x-autonomy":"autonomous","inputSchema":{"type":"object","properties":{"message":{"type":"string"}}}}`)})
	r, err := run.New(run.Options{ConfigFile: s.Config})
	if err != nil {
		b.Fatal(err)
	}
	_, cs := benchServer(b, reg, r)
	tool, _, err := reg.Tool(ctx, "argv", registry.Filter{ActiveOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var runs, calls, added []time.Duration
	for b.Loop() {
		t := time.Now()
		plan, err := r.Plan(run.Call{Tool: tool, Host: tool.Hosts[0], Args: map[string]any{"message": "hi"}})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Run(ctx, plan, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
		direct := time.Since(t)
		t = time.Now()
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "argv", Arguments: map[string]any{"message": "hi"}})
		if err != nil || res.IsError {
			b.Fatalf("%v %v", err, res)
		}
		call := time.Since(t)
		runs, calls, added = append(runs, direct), append(calls, call), append(added, call-direct)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(percentile(runs, 0.5)), "run-p50-ms")
	b.ReportMetric(ms(percentile(calls, 0.5)), "mcp-p50-ms")
	b.ReportMetric(ms(percentile(added, 0.5)), "added-p50-ms")
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// main.go holds the command line, the order of the scenarios and the report.

// Command registry-load simulates a fleet of runspec agents against a runspec
// registry over HTTP and reports throughput, latency percentiles, errors and,
// given the server's PID, its memory.
//
// The fleet has -agents agents, one per host (host-00001, ...), each offering
// -tools tools; every tool name is offered on -share hosts with the same
// schema and per-host execution fields. The same -seed gives the same fleet,
// instance ids included, so a re-run replaces its previous records.
//
// Scenarios (-scenarios, always run in this order; the fleet is registered
// first, silently when register is not listed):
//
//	register   POST /instances for every agent, then POST /instances/{id}/tools
//	heartbeat  -clients workers sending empty-bodied heartbeats for -duration
//	lookup     -read-clients workers sending GET /tools/{name} for -duration
//	list       one client reading GET /tools for -duration, then GET /instances once
//	mixed      -clients workers, 10% GET /tools/{name} and 90% heartbeats
//	watchers   registration throughput with and without watchers, -rounds
//	           alternating rounds of -duration each: -register-clients writers,
//	           each write a registration and a tool post (an agent's start);
//	           alone, then beside -watch-readers event streams that read and
//	           -watch-queries blocking queries on GET /tools/{name}
//	           (-watch-hot of them on a tool the writes post, the others on the
//	           fleet's tools), then beside -watch-silent event streams that
//	           never read; the ratios to the writes alone, and their medians.
//	           The watchers run in a process of their own (this command
//	           again, with -watchers-process), unless -watch-in-process
//	silent     -silent-conns connections that request -silent-target and never
//	           read, -rounds times: the server's RSS per connection (-pid),
//	           and whether it dropped them within -silent-hold
//
// watchers and silent run only when listed in -scenarios.
//
// Typical use, against a registry compared with the trivial reference server
// (which answers {"status":"ack"} to everything: the ceiling of any HTTP
// server on this machine):
//
//	go run ./cmd/registry-load -trivial 127.0.0.1:9000 &
//	go run ./cmd/registry-load -url http://127.0.0.1:8765 -compare http://127.0.0.1:9000 -pid $(pgrep runspec-registry)
//
// A registry with rate limits answers 429 to a fleet behind one address:
// raise its limits for a load test. Results go to stdout as a table, and
// also as JSON lines at the end with -json.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	case errors.Is(err, errUsage):
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "registry-load:", err)
		os.Exit(1)
	}
}

// errUsage is a command line error, already reported by the flag set.
var errUsage = errors.New("usage error")

// allScenarios are the scenarios in the order they run.
var allScenarios = []string{"register", "heartbeat", "lookup", "list", "mixed", "watchers", "silent", "soak"}

// defaultScenarios run when -scenarios is not given.
var defaultScenarios = allScenarios[:5]

// config is the parsed command line.
type config struct {
	url, key, compare string
	agents, tools     int
	share             int
	duration          time.Duration
	clients           int
	readClients       int
	registerClients   int
	pid               int
	scenarios         []string // in run order
	json              bool
	trivial           string
	seed              uint64

	profiled, dataDir, cpuProfile string // the profiled server (profiled.go)

	// The hostile-client scenarios (hostile.go).
	rounds                                            int
	watchPhases                                       []string
	watchReaders, watchQueries, watchHot, watchSilent int
	watchSettle                                       time.Duration
	watchInProcess, watchersProcess                   bool
	silentConns                                       int
	silentTarget                                      string
	silentHold                                        time.Duration

	soak *soakOptions // soak.go
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("registry-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.url, "url", "http://127.0.0.1:8765", "registry base `URL`")
	fs.StringVar(&c.key, "key", "", "X-API-Key to send (optional)")
	fs.IntVar(&c.agents, "agents", 2000, "number of simulated agents, one per host")
	fs.IntVar(&c.tools, "tools", 20, "tools per agent")
	fs.IntVar(&c.share, "share", 50, "number of hosts each tool name is offered on")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "duration of each timed scenario")
	fs.IntVar(&c.clients, "clients", 64, "concurrent workers for heartbeat and mixed")
	fs.IntVar(&c.readClients, "read-clients", 32, "concurrent workers for lookup")
	fs.IntVar(&c.registerClients, "register-clients", 32, "concurrent workers for register")
	fs.IntVar(&c.pid, "pid", 0, "server `PID` whose VmRSS/VmHWM to report after each scenario (Linux)")
	scen := fs.String("scenarios", strings.Join(defaultScenarios, ","), "comma-separated scenarios to run (also: watchers, silent, soak)")
	fs.BoolVar(&c.json, "json", false, "also print the results as JSON lines")
	fs.StringVar(&c.trivial, "trivial", "", "run the trivial reference server on `ADDR` instead of loading")
	fs.StringVar(&c.profiled, "profiled", "", "run the registry with a CPU profile (profiled.go) on `ADDR` instead of loading")
	fs.StringVar(&c.dataDir, "data-dir", "", "-profiled: the data directory (default: a new temporary one)")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "registry.cpu.pprof", "-profiled: the CPU profile `FILE`")
	fs.StringVar(&c.compare, "compare", "", "also run heartbeat against this `URL` and print the ratio")
	fs.Uint64Var(&c.seed, "seed", 1, "random seed (fleet, instance ids, request sequence)")
	fs.IntVar(&c.rounds, "rounds", 3, "alternating rounds of the watchers and silent scenarios")
	phases := fs.String("watch-phases", "alone,readers,silent", "watchers: the phases of each round (alone is the ratios' base)")
	fs.IntVar(&c.watchReaders, "watch-readers", 2000, "watchers: event streams that read everything")
	fs.IntVar(&c.watchQueries, "watch-queries", 2000, "watchers: blocking queries on GET /tools/{name}")
	fs.IntVar(&c.watchHot, "watch-hot", 200, "watchers: of the blocking queries, those on the tool the writes post")
	fs.IntVar(&c.watchSilent, "watch-silent", 1000, "watchers: event streams that never read")
	fs.DurationVar(&c.watchSettle, "watch-settle", 2*time.Second, "watchers: how long the watchers park before the writes, and the readers drain after")
	fs.BoolVar(&c.watchInProcess, "watch-in-process", false, "watchers: run the watchers in this process, beside the writers, not in a process of their own")
	fs.BoolVar(&c.watchersProcess, "watchers-process", false, "be the watchers process of the watchers scenario (run by it)")
	fs.IntVar(&c.silentConns, "silent-conns", 100, "silent: connections that never read")
	fs.StringVar(&c.silentTarget, "silent-target", "/instances?limit=100000", "silent: the `PATH` they request")
	fs.DurationVar(&c.silentHold, "silent-hold", 15*time.Second, "silent: how long they stay (more than the server's write timeout)")
	c.soak = soakFlags(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if c.trivial != "" || c.profiled != "" {
		return c, nil
	}

	for p := range strings.SplitSeq(*phases, ",") {
		if p = strings.TrimSpace(p); p != "alone" && p != "readers" && p != "silent" {
			return c, fmt.Errorf("unknown -watch-phases phase %q (want some of alone,readers,silent)", p)
		}
		c.watchPhases = append(c.watchPhases, p)
	}
	want := map[string]bool{}
	for s := range strings.SplitSeq(*scen, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if !slices.Contains(allScenarios, s) {
			return c, fmt.Errorf("unknown scenario %q (want some of %s)", s, strings.Join(allScenarios, ","))
		}
		want[s] = true
	}
	for _, s := range allScenarios {
		if want[s] {
			c.scenarios = append(c.scenarios, s)
		}
	}
	switch {
	case len(c.scenarios) == 0:
		return c, errors.New("no scenario to run")
	case c.agents < 1 || c.tools < 1 || c.share < 1:
		return c, errors.New("-agents, -tools and -share must be at least 1")
	case c.clients < 1 || c.readClients < 1 || c.registerClients < 1:
		return c, errors.New("-clients, -read-clients and -register-clients must be at least 1")
	case c.duration <= 0:
		return c, errors.New("-duration must be positive")
	case c.rounds < 1 || c.silentConns < 1:
		return c, errors.New("-rounds and -silent-conns must be at least 1")
	case c.watchHot > c.watchQueries || c.watchReaders < 0 || c.watchSilent < 0:
		return c, errors.New("-watch-hot must be at most -watch-queries, and the watch counts not negative")
	}
	for _, u := range []string{c.url, c.compare} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return c, fmt.Errorf("bad URL %q: want http(s)://host[:port]", u)
		}
	}
	return c, nil
}

// Result is one line of the report.
type Result struct {
	Scenario   string         `json:"scenario"`
	Target     string         `json:"target"`
	Clients    int            `json:"clients"`
	Requests   int            `json:"requests"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds,omitempty"`
	Refresh    int            `json:"refresh,omitempty"`
	ElapsedS   float64        `json:"elapsed_s"`
	ReqPerS    float64        `json:"req_per_s"`
	P50Ms      float64        `json:"p50_ms"`
	P90Ms      float64        `json:"p90_ms"`
	P99Ms      float64        `json:"p99_ms"`
	MaxMs      float64        `json:"max_ms"`
	BodyBytes  int64          `json:"body_bytes,omitempty"` // mean response body size (list)
	RSSKiB     int64          `json:"rss_kib,omitempty"`
	HWMKiB     int64          `json:"hwm_kib,omitempty"`
	Ratio      float64        `json:"ratio,omitempty"`    // req/s divided by that of RatioOf
	RatioOf    string         `json:"ratio_of,omitempty"` // the result the ratio is taken against
	Round      int            `json:"round,omitempty"`    // of the watchers and silent scenarios

	PerConnKiB     float64 `json:"per_conn_kib,omitempty"`     // silent: server RSS per connection held
	ClosedByServer int     `json:"closed_by_server,omitempty"` // silent: connections the server dropped

	stats Stats
}

func newResult(scenario, target string, clients int, s Stats) Result {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	r := Result{
		Scenario: scenario, Target: target, Clients: clients,
		Requests: s.Requests, Errors: s.Errors, ErrorKinds: s.ErrorKinds, Refresh: s.Refresh,
		ElapsedS: s.Elapsed.Seconds(), ReqPerS: s.Throughput(),
		P50Ms: ms(s.P50), P90Ms: ms(s.P90), P99Ms: ms(s.P99), MaxMs: ms(s.Max),
		stats: s,
	}
	return r
}

// line is the table line of r.
func (r Result) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-17s %4d clients %9.0f req/s  p50 %-7s p90 %-7s p99 %-7s max %-7s errors %d",
		r.Scenario, r.Clients, r.ReqPerS, fmtDur(r.stats.P50), fmtDur(r.stats.P90),
		fmtDur(r.stats.P99), fmtDur(r.stats.Max), r.Errors)
	if r.Errors > 0 {
		fmt.Fprintf(&b, " (%s)", fmtKinds(r.ErrorKinds))
	}
	if r.Refresh > 0 {
		fmt.Fprintf(&b, "  refresh %d", r.Refresh)
	}
	if r.BodyBytes > 0 {
		fmt.Fprintf(&b, "  body %d bytes", r.BodyBytes)
	}
	if r.HWMKiB > 0 {
		fmt.Fprintf(&b, "  rss %s peak %s", fmtKiB(r.RSSKiB), fmtKiB(r.HWMKiB))
	}
	if r.RatioOf != "" {
		fmt.Fprintf(&b, "  %.2f× %s", r.Ratio, r.RatioOf)
	}
	return b.String()
}

// reporter prints results as they come and remembers them for -json.
type reporter struct {
	out, log io.Writer
	pid      int
	results  []Result
	// interrupted reports whether the run was interrupted: the figures of a
	// cut-short phase (with its cancelled requests as errors) are not printed.
	interrupted func() bool
}

// add prints r, with the server's memory when withMem and -pid is set.
func (rp *reporter) add(r Result, withMem bool) Result {
	if rp.interrupted() {
		return r
	}
	if withMem && rp.pid > 0 {
		if m, err := readMem(rp.pid); err != nil {
			fmt.Fprintf(rp.log, "registry-load: -pid %d: %v (memory no longer reported)\n", rp.pid, err)
			rp.pid = 0
		} else {
			r.RSSKiB, r.HWMKiB = m.RSS, m.HWM
		}
	}
	if r.Errors > 0 && r.ErrorKinds["429"] > 0 {
		fmt.Fprintf(rp.log, "registry-load: %s: the server rate-limited us (429): raise its limits for a load test\n", r.Scenario)
	}
	fmt.Fprintln(rp.out, r.line())
	rp.results = append(rp.results, r)
	return r
}

func (rp *reporter) find(scenario string) (Result, bool) {
	for _, r := range rp.results {
		if r.Scenario == scenario {
			return r, true
		}
	}
	return Result{}, false
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if c.trivial != "" {
		return runTrivial(ctx, c.trivial, stderr)
	}
	if c.watchersProcess {
		return runWatchersProcess(ctx, c, os.Stdin, stdout)
	}
	if c.profiled != "" {
		dir := c.dataDir
		if dir == "" {
			var err error
			if dir, err = os.MkdirTemp("", "registry-profiled-"); err != nil {
				return err
			}
			defer os.RemoveAll(dir)
		}
		return runProfiled(ctx, c.profiled, dir, c.cpuProfile, stderr)
	}
	fleet, err := NewFleet(c.agents, c.tools, c.share, c.seed)
	if err != nil {
		return err
	}
	want := func(s string) bool { return slices.Contains(c.scenarios, s) }
	if c.compare != "" && !want("heartbeat") {
		fmt.Fprintln(stderr, "registry-load: -compare only applies to the heartbeat scenario, which is not selected")
	}

	hc := newHTTPClient(max(c.clients, c.readClients, c.registerClients) + 4)
	defer hc.CloseIdleConnections()
	tgt := newTarget(c.url, c.key, hc)
	rp := &reporter{out: stdout, log: stderr, pid: c.pid, interrupted: func() bool { return ctx.Err() != nil }}

	fmt.Fprintf(stdout, "# target %s  fleet %d agents × %d tools, %d tool names on up to %d hosts each  duration %s  seed %d\n",
		c.url, len(fleet.Agents), c.tools, len(fleet.ToolNames), c.share, c.duration, c.seed)
	if c.pid > 0 {
		if m, err := readMem(c.pid); err != nil {
			fmt.Fprintf(stderr, "registry-load: -pid %d: %v (memory not reported)\n", c.pid, err)
			rp.pid = 0
		} else {
			fmt.Fprintf(stdout, "# server pid %d before load: rss %s peak %s\n", c.pid, fmtKiB(m.RSS), fmtKiB(m.HWM))
		}
	}

	interrupted := func() error {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		return nil
	}

	// Every scenario needs the fleet in the registry.
	if !want("register") {
		fmt.Fprintf(stderr, "registry-load: registering %d agents first (not reported)\n", len(fleet.Agents))
	}
	reg, tools := registerFleet(ctx, tgt, fleet, c.registerClients)
	if want("register") {
		rp.add(newResult("register", c.url, min(c.registerClients, len(fleet.Agents)), reg), false)
		rp.add(newResult("register-tools", c.url, min(c.registerClients, len(fleet.Agents)), tools), true)
	} else if n := reg.Errors + tools.Errors; n > 0 {
		fmt.Fprintf(stderr, "registry-load: %d errors while registering the fleet (%s; %s)\n",
			n, fmtKinds(reg.ErrorKinds), fmtKinds(tools.ErrorKinds))
	}
	if err := interrupted(); err != nil {
		return err
	}

	for _, s := range c.scenarios {
		seed := c.seed ^ uint64(slices.Index(allScenarios, s))<<32
		switch s {
		case "heartbeat":
			hb := rp.add(newResult("heartbeat", c.url, c.clients, heartbeatLoad(ctx, tgt, fleet, c.clients, c.duration, seed)), true)
			if c.compare != "" && ctx.Err() == nil {
				cmp := newTarget(c.compare, c.key, hc)
				r := newResult("heartbeat@compare", c.compare, c.clients, heartbeatLoad(ctx, cmp, fleet, c.clients, c.duration, seed))
				// The ratio is main/compare, printed on the compare line.
				r.Ratio, r.RatioOf = ratio(hb.ReqPerS, r.ReqPerS), "main/compare"
				rp.add(r, false)
			}
		case "lookup":
			rp.add(newResult("lookup", c.url, c.readClients, lookupLoad(ctx, tgt, fleet, c.readClients, c.duration, seed)), true)
		case "list":
			ts, is := listLoad(ctx, tgt, c.duration)
			r := newResult("list", c.url, 1, ts)
			if ts.Requests > 0 {
				r.BodyBytes = ts.Bytes / int64(ts.Requests)
			}
			rp.add(r, true)
			r = newResult("list-instances", c.url, 1, is)
			r.BodyBytes = is.Bytes
			rp.add(r, true)
		case "mixed":
			hb, lk, all := mixedLoad(ctx, tgt, fleet, c.clients, c.duration, seed)
			rp.add(newResult("mixed", c.url, c.clients, all), true)
			r := newResult("mixed-heartbeat", c.url, c.clients, hb)
			if pure, ok := rp.find("heartbeat"); ok {
				r.Ratio, r.RatioOf = ratio(r.ReqPerS, pure.ReqPerS), "pure heartbeat"
			}
			rp.add(r, false)
			rp.add(newResult("mixed-lookup", c.url, c.clients, lk), false)
		case "watchers":
			watchersScenario(ctx, c, tgt, fleet, rp)
		case "silent":
			silentScenario(ctx, c, tgt, rp)
		case "soak":
			if err := runSoak(ctx, c, fleet, rp); err != nil {
				return err
			}
		}
		if err := interrupted(); err != nil {
			return err
		}
	}

	if c.json {
		enc := json.NewEncoder(stdout)
		for _, r := range rp.results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	}
	return nil
}

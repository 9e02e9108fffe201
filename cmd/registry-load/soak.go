// soak.go runs the soak scenario: a fleet that lives as real agents do for
// -duration (heartbeats with jitter, restarts under new ids, tool list
// changes) with watchers, event streams and listings, while soak_sample.go
// samples the server.

package main

import (
	"bufio"
	"bytes"
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak scenario (-scenarios soak) runs the fleet, registered as for
// every scenario, as real agents for -duration:
//
//   - every agent heartbeats every -soak-heartbeat (which must be the
//     server's --heartbeat-interval: the fleet registers without one),
//     with a uniform jitter of ±-soak-jitter of it, and posts its tools
//     again when answered "refresh";
//   - every agent restarts after an exponential time of mean
//     -soak-lifetime: it deregisters (a fraction -soak-deregister do, as
//     agents do on SIGTERM; the others just stop and expire), registers a
//     new instance id on the same host and posts its tools;
//   - every agent changes its tool list after an exponential time of mean
//     -soak-tool-change (one of four variants: with or without its last
//     tool, run as its user or as root);
//   - -soak-watchers clients hold blocking queries on GET /tools/{name}
//     (each on its own tool, one query after the other),
//     -soak-sse clients follow GET /events (resuming with Last-Event-ID
//     every -soak-sse-reconnect), and one client lists every
//     -soak-list-every (GET /tools, /hosts, /instances?active=true, and a
//     paginated walk of /instances, in turn).
//
// The -clients workers share the agents (agent i belongs to worker i mod
// clients) and have one keep-alive connection each: the server sees
// -clients connections for the fleet, not one per agent. Every -soak-sample the server is sampled
// (soak_sample.go): with -pid, its RSS, threads and open files from /proc;
// with -soak-data-file, the file's size. After -soak-warmup the figures
// are checked against the soak targets. -soak-out PREFIX writes
// PREFIX.csv (the samples) and PREFIX.json (samples, counts, targets).

// soakOptions are the soak scenario's flags.
type soakOptions struct {
	heartbeat    time.Duration
	jitter       float64
	lifetime     time.Duration
	deregister   float64
	toolChange   time.Duration
	watchers     int
	watchWait    time.Duration
	sse          int
	sseReconnect time.Duration
	listEvery    time.Duration
	sample       time.Duration
	warmup       time.Duration
	dataFile     string
	out          string
}

// soakFlags defines the soak flags on fs; the options are filled when fs
// is parsed.
func soakFlags(fs *flag.FlagSet) *soakOptions {
	o := &soakOptions{}
	fs.DurationVar(&o.heartbeat, "soak-heartbeat", 30*time.Second, "soak: heartbeat interval of every agent (the server's --heartbeat-interval)")
	fs.Float64Var(&o.jitter, "soak-jitter", 0.1, "soak: heartbeat jitter, a fraction of the interval either way")
	fs.DurationVar(&o.lifetime, "soak-lifetime", time.Hour, "soak: mean time between two restarts of an agent (0: none)")
	fs.Float64Var(&o.deregister, "soak-deregister", 0.8, "soak: fraction of restarts that deregister the old id first")
	fs.DurationVar(&o.toolChange, "soak-tool-change", 2*time.Hour, "soak: mean time between two tool list changes of an agent (0: none)")
	fs.IntVar(&o.watchers, "soak-watchers", 50, "soak: clients holding blocking queries on GET /tools/{name}")
	fs.DurationVar(&o.watchWait, "soak-watch-wait", 30*time.Second, "soak: wait= of each blocking query")
	fs.IntVar(&o.sse, "soak-sse", 20, "soak: clients following GET /events")
	fs.DurationVar(&o.sseReconnect, "soak-sse-reconnect", 5*time.Minute, "soak: how long an event stream is followed before it resumes on a new connection")
	fs.DurationVar(&o.listEvery, "soak-list-every", 5*time.Second, "soak: period of the listings")
	fs.DurationVar(&o.sample, "soak-sample", 10*time.Second, "soak: sampling period of the server")
	fs.DurationVar(&o.warmup, "soak-warmup", 10*time.Minute, "soak: time before the figures are checked against the targets")
	fs.StringVar(&o.dataFile, "soak-data-file", "", "soak: the server's data `FILE` (DATA-DIR/registry.db), whose size is sampled")
	fs.StringVar(&o.out, "soak-out", "", "soak: write the samples to `PREFIX`.csv and everything to PREFIX.json")
	return o
}

func (o *soakOptions) check() error {
	switch {
	case o.heartbeat <= 0 || o.sample <= 0 || o.listEvery <= 0 || o.watchWait <= 0 || o.sseReconnect <= 0:
		return errors.New("-soak-heartbeat, -soak-sample, -soak-list-every, -soak-watch-wait and -soak-sse-reconnect must be positive")
	case o.jitter < 0 || o.jitter >= 1 || o.deregister < 0 || o.deregister > 1:
		return errors.New("-soak-jitter must be in [0, 1) and -soak-deregister in [0, 1]")
	case o.lifetime < 0 || o.toolChange < 0 || o.warmup < 0 || o.watchers < 0 || o.sse < 0:
		return errors.New("-soak-lifetime, -soak-tool-change, -soak-warmup, -soak-watchers and -soak-sse must not be negative")
	}
	return nil
}

// soakCounts are the soak's counters, shared by its goroutines.
type soakCounts struct {
	Heartbeats, HeartbeatErrors, Refreshes atomic.Int64
	Late, MaxLateNs                        atomic.Int64 // heartbeats sent over a second after they were due; the latest
	Restarts, Deregistrations, Silent      atomic.Int64 // restarts, of which deregistered first, or not
	Registrations, RegisterErrors          atomic.Int64
	ToolPosts, ToolErrors, ToolChanges     atomic.Int64
	DeregisterErrors                       atomic.Int64
	WatchWakes, WatchTimeouts, WatchErrors atomic.Int64
	Events, Resets, Resumes, StreamErrors  atomic.Int64
	EventKinds                             sync.Map // kind -> *atomic.Int64
	Listings, ListErrors, ListBytes        atomic.Int64
	HealthErrors                           atomic.Int64
}

func (c *soakCounts) event(kind string) {
	n, _ := c.EventKinds.LoadOrStore(kind, new(atomic.Int64))
	n.(*atomic.Int64).Add(1)
}

// snapshot is the counters as plain values.
func (c *soakCounts) snapshot() map[string]int64 {
	m := map[string]int64{
		"heartbeats": c.Heartbeats.Load(), "heartbeat_errors": c.HeartbeatErrors.Load(), "refreshes": c.Refreshes.Load(),
		"late_heartbeats": c.Late.Load(), "max_late_ms": c.MaxLateNs.Load() / 1e6,
		"restarts": c.Restarts.Load(), "restarts_deregistered": c.Deregistrations.Load(), "restarts_silent": c.Silent.Load(),
		"registrations": c.Registrations.Load(), "register_errors": c.RegisterErrors.Load(),
		"tool_posts": c.ToolPosts.Load(), "tool_errors": c.ToolErrors.Load(), "tool_changes": c.ToolChanges.Load(),
		"deregister_errors": c.DeregisterErrors.Load(),
		"watch_wakes":       c.WatchWakes.Load(), "watch_timeouts": c.WatchTimeouts.Load(), "watch_errors": c.WatchErrors.Load(),
		"events": c.Events.Load(), "event_resets": c.Resets.Load(), "stream_resumes": c.Resumes.Load(), "stream_errors": c.StreamErrors.Load(),
		"listings": c.Listings.Load(), "list_errors": c.ListErrors.Load(), "list_bytes": c.ListBytes.Load(),
		"health_errors": c.HealthErrors.Load(),
	}
	c.EventKinds.Range(func(k, v any) bool {
		m["events_"+k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return m
}

// errorCount is every failed request of the soak.
func (c *soakCounts) errorCount() int64 {
	return c.HeartbeatErrors.Load() + c.RegisterErrors.Load() + c.ToolErrors.Load() + c.DeregisterErrors.Load() +
		c.WatchErrors.Load() + c.StreamErrors.Load() + c.ListErrors.Load() + c.HealthErrors.Load()
}

// soakEnv is what the soak knows of the server beyond its URL.
type soakEnv struct {
	pid int // 0: not sampled
	// runtime samples the server's Go runtime: in this process (the
	// tests), or from the binary's /metrics (metricsRuntime). A figure it
	// cannot read is -1.
	runtime func() (goroutines, heap int64)
}

// soak is one run of the soak scenario.
type soak struct {
	opts     soakOptions
	duration time.Duration
	fleet    *Fleet
	base     string
	key      string
	workers  int
	seed     uint64
	env      soakEnv
	progress io.Writer // a line a minute

	counts  soakCounts
	samples []soakSample
	stats   soakStats
	final   [][]*soakAgent // each worker's agents as the soak ended
}

// soakStats are the latencies of the soak's requests, by kind.
type soakStats struct {
	Heartbeat, Register, Tools, Deregister, List Stats
}

// run runs the soak until its duration has passed or ctx ends, and
// returns its report.
func (s *soak) run(ctx context.Context) (*soakReport, error) {
	if err := s.opts.check(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.duration)
	defer cancel()
	start := time.Now()

	var wg sync.WaitGroup
	recs := make([]*soakRecorders, s.workers)
	s.final = make([][]*soakAgent, s.workers)
	for w := range s.workers {
		recs[w] = newSoakRecorders(rand.New(rand.NewPCG(s.seed, 0x7ec<<16|uint64(w))))
		hc := pinnedClient(requestTimeout)
		defer hc.CloseIdleConnections()
		wg.Go(func() { s.agents(ctx, newTarget(s.base, s.key, hc), w, start, recs[w]) })
	}
	// Blocking queries and event streams outlive requestTimeout.
	for i := range s.opts.watchers {
		hc := pinnedClient(0)
		defer hc.CloseIdleConnections()
		wg.Go(func() { s.watch(ctx, hc, i) })
	}
	for i := range s.opts.sse {
		hc := pinnedClient(0)
		defer hc.CloseIdleConnections()
		wg.Go(func() { s.follow(ctx, hc, i) })
	}
	listRec := newSoakRecorder(rand.New(rand.NewPCG(s.seed, 0x7ec<<16|0xffff)))
	listClient, healthClient := pinnedClient(requestTimeout), pinnedClient(requestTimeout)
	defer listClient.CloseIdleConnections()
	defer healthClient.CloseIdleConnections()
	wg.Go(func() { s.list(ctx, newTarget(s.base, s.key, listClient), listRec) })
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		s.sampleLoop(ctx, newTarget(s.base, s.key, healthClient), start)
	}()
	wg.Wait()
	<-sampled
	elapsed := time.Since(start)

	var hb, reg, tools, dereg []*soakRecorder
	for _, r := range recs {
		hb, reg, tools, dereg = append(hb, r.heartbeat), append(reg, r.register), append(tools, r.tools), append(dereg, r.deregister)
	}
	s.stats = soakStats{Heartbeat: mergeSoak(elapsed, hb...), Register: mergeSoak(elapsed, reg...), Tools: mergeSoak(elapsed, tools...),
		Deregister: mergeSoak(elapsed, dereg...), List: mergeSoak(elapsed, listRec)}
	return s.report(elapsed), nil
}

// pinnedClient is a client of one connection, kept however long it is
// idle, whose requests time out after timeout (0: never). Each client of
// the soak (a worker, a watcher, an event stream) has its own, so that the
// server sees a constant set of connections: with one pool shared by
// workers that are not all busy at once, the pool reuses its most recent
// connections, closes the ones left idle (IdleConnTimeout) and dials
// again at the next burst, which a soak would count as open files
// coming and going.
func pinnedClient(timeout time.Duration) *http.Client {
	hc := newHTTPClient(1)
	tr := hc.Transport.(*http.Transport)
	tr.MaxConnsPerHost, tr.IdleConnTimeout = 1, 0
	hc.Timeout = timeout
	return hc
}

// soakRecorders are one worker's latencies by request kind.
type soakRecorders struct{ heartbeat, register, tools, deregister *soakRecorder }

func newSoakRecorders(rng *rand.Rand) *soakRecorders {
	return &soakRecorders{newSoakRecorder(rng), newSoakRecorder(rng), newSoakRecorder(rng), newSoakRecorder(rng)}
}

// soakReservoir is how many latencies a soakRecorder keeps: past that, a
// uniform sample of them (Algorithm R), so that the load generator's
// memory stays flat however long the soak (in process, the soak measures
// it with the server's). The counts stay exact.
const soakReservoir = 1024

// soakRecorder is a recorder (stats.go) with a bounded memory of
// latencies. Like it, it belongs to one goroutine.
type soakRecorder struct {
	rec *recorder // its lat holds the sample
	rng *rand.Rand
	n   int // requests recorded
}

func newSoakRecorder(rng *rand.Rand) *soakRecorder {
	return &soakRecorder{rec: &recorder{lat: make([]time.Duration, 0, soakReservoir)}, rng: rng}
}

func (r *soakRecorder) add(lat time.Duration, status int, n int64, err error) {
	r.n++
	r.rec.add(lat, status, n, err)
	if len(r.rec.lat) > soakReservoir {
		last := r.rec.lat[len(r.rec.lat)-1]
		r.rec.lat = r.rec.lat[:soakReservoir]
		if i := r.rng.IntN(r.n); i < soakReservoir {
			r.rec.lat[i] = last
		}
	}
}

// mergeSoak merges the recorders of a phase: exact counts, percentiles of
// the sampled latencies.
func mergeSoak(elapsed time.Duration, rs ...*soakRecorder) Stats {
	recs := make([]*recorder, len(rs))
	n := 0
	for i, r := range rs {
		recs[i], n = r.rec, n+r.n
	}
	st := merge(elapsed, recs...)
	st.Requests = n
	return st
}

// A soakAgent is one agent slot: a host that runs an agent, restarted
// under new ids.
type soakAgent struct {
	Agent        // the current instance (InstanceID changes at each restart)
	variant int  // its tool list: one of soakVariants
	down    bool // restarting: its new id is not registered (yet)
}

// soakVariants is how many tool lists an agent switches between. They
// differ in which tools they hold and in how they run them, not in the
// tools' schemas: the registry holds the same set of distinct tools
// throughout, so that a soak measures leaks, not a growing fleet.
const soakVariants = 4

// toolsBody is the agent's tool list: variants 1 and 3 drop the last
// tool, variants 2 and 3 run every tool as root.
func (a *soakAgent) toolsBody() []byte {
	tools := a.Tools
	if a.variant&1 == 1 && len(tools) > 1 {
		tools = tools[:len(tools)-1]
	}
	if a.variant&2 == 2 {
		tools = append([]Tool(nil), tools...)
		for i := range tools {
			tools[i].RunAs = "root"
		}
	}
	b, err := json.Marshal(struct {
		Tools []Tool `json:"tools"`
	}{tools})
	if err != nil {
		panic(err) // fixed shapes and valid raw JSON: cannot fail
	}
	return b
}

// Event kinds of an agent's schedule.
const (
	evHeartbeat = iota
	evRestart
	evTools
)

type soakEvent struct {
	at    time.Time
	agent int
	kind  int
}

// soakQueue is a worker's schedule, earliest first.
type soakQueue []soakEvent

func (q soakQueue) Len() int           { return len(q) }
func (q soakQueue) Less(i, j int) bool { return q[i].at.Before(q[j].at) }
func (q soakQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *soakQueue) Push(x any)        { *q = append(*q, x.(soakEvent)) }
func (q *soakQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// exp is an exponential time of mean m.
func exp(rng *rand.Rand, m time.Duration) time.Duration {
	return time.Duration(rng.ExpFloat64() * float64(m))
}

// period is a heartbeat interval with jitter.
func (s *soak) period(rng *rand.Rand) time.Duration {
	return time.Duration(float64(s.opts.heartbeat) * (1 + s.opts.jitter*(2*rng.Float64()-1)))
}

// agents runs worker w's agents: those whose index is w modulo workers.
func (s *soak) agents(ctx context.Context, t *target, w int, start time.Time, rec *soakRecorders) {
	rng := rand.New(rand.NewPCG(s.seed, 0x50a4<<16|uint64(w)))
	var mine []*soakAgent
	var q soakQueue
	for i := w; i < len(s.fleet.Agents); i += s.workers {
		a := &soakAgent{Agent: s.fleet.Agents[i]}
		mine = append(mine, a)
		k := len(mine) - 1
		// The fleet registered just now: heartbeats start spread over one interval.
		q = append(q, soakEvent{start.Add(time.Duration(rng.Float64() * float64(s.opts.heartbeat))), k, evHeartbeat})
		if s.opts.lifetime > 0 {
			q = append(q, soakEvent{start.Add(exp(rng, s.opts.lifetime)), k, evRestart})
		}
		if s.opts.toolChange > 0 {
			q = append(q, soakEvent{start.Add(exp(rng, s.opts.toolChange)), k, evTools})
		}
	}
	s.final[w] = mine
	if len(mine) == 0 {
		return
	}
	heap.Init(&q)
	timer := time.NewTimer(time.Until(q[0].at))
	defer timer.Stop()
	var buf bytes.Buffer
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		now := time.Now()
		for q.Len() > 0 && !q[0].at.After(now) && ctx.Err() == nil {
			ev := heap.Pop(&q).(soakEvent)
			a := mine[ev.agent]
			switch ev.kind {
			case evHeartbeat:
				if late := time.Since(ev.at); late > time.Second {
					s.counts.Late.Add(1)
					for old := s.counts.MaxLateNs.Load(); int64(late) > old && !s.counts.MaxLateNs.CompareAndSwap(old, int64(late)); old = s.counts.MaxLateNs.Load() {
					}
				}
				s.heartbeat(ctx, t, a, rec, &buf)
				heap.Push(&q, soakEvent{time.Now().Add(s.period(rng)), ev.agent, evHeartbeat})
			case evRestart:
				s.restart(ctx, t, a, rng, rec)
				heap.Push(&q, soakEvent{time.Now().Add(exp(rng, s.opts.lifetime)), ev.agent, evRestart})
			case evTools:
				a.variant = (a.variant + 1 + rng.IntN(soakVariants-1)) % soakVariants
				s.counts.ToolChanges.Add(1)
				s.postTools(ctx, t, a, rec)
				heap.Push(&q, soakEvent{time.Now().Add(exp(rng, s.opts.toolChange)), ev.agent, evTools})
			}
			now = time.Now()
		}
		timer.Reset(time.Until(q[0].at))
	}
}

// ok reports whether a request succeeded, and counts it in rec unless
// the soak is ending (a request cut by the end is not the server's error).
func ok(ctx context.Context, rec *soakRecorder, lat time.Duration, st int, n int64, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	rec.add(lat, st, n, err)
	return err == nil && st >= 200 && st < 300
}

func (s *soak) heartbeat(ctx context.Context, t *target, a *soakAgent, rec *soakRecorders, buf *bytes.Buffer) {
	lat, st, n, err := t.do(ctx, http.MethodPost, "/instances/"+url.PathEscape(a.InstanceID)+"/heartbeat", nil, buf)
	if !ok(ctx, rec.heartbeat, lat, st, n, err) {
		if ctx.Err() == nil {
			s.counts.HeartbeatErrors.Add(1)
		}
		return
	}
	s.counts.Heartbeats.Add(1)
	if bytes.Contains(buf.Bytes(), refreshAnswer) {
		s.counts.Refreshes.Add(1)
		s.postTools(ctx, t, a, rec) // as an agent does
	}
}

func (s *soak) postTools(ctx context.Context, t *target, a *soakAgent, rec *soakRecorders) {
	lat, st, n, err := t.do(ctx, http.MethodPost, "/instances/"+url.PathEscape(a.InstanceID)+"/tools", a.toolsBody(), nil)
	if ok(ctx, rec.tools, lat, st, n, err) {
		s.counts.ToolPosts.Add(1)
	} else if ctx.Err() == nil {
		s.counts.ToolErrors.Add(1)
	}
}

// restart is an agent restarting: it deregisters (or just stops), and
// the new process registers a new id and posts its tools.
func (s *soak) restart(ctx context.Context, t *target, a *soakAgent, rng *rand.Rand, rec *soakRecorders) {
	s.counts.Restarts.Add(1)
	if rng.Float64() < s.opts.deregister {
		s.counts.Deregistrations.Add(1)
		lat, st, n, err := t.do(ctx, http.MethodDelete, "/instances/"+url.PathEscape(a.InstanceID), nil, nil)
		if !ok(ctx, rec.deregister, lat, st, n, err) && ctx.Err() == nil {
			s.counts.DeregisterErrors.Add(1)
		}
	} else {
		s.counts.Silent.Add(1)
	}
	a.InstanceID, a.down = uuid4(rng), true
	lat, st, n, err := t.do(ctx, http.MethodPost, "/instances", a.registerBody(), nil)
	if !ok(ctx, rec.register, lat, st, n, err) {
		if ctx.Err() == nil {
			s.counts.RegisterErrors.Add(1)
		}
		return
	}
	s.counts.Registrations.Add(1)
	a.down = false
	s.postTools(ctx, t, a, rec)
}

// watch is one watcher, an orchestrator waiting on one tool: blocking
// queries on it, one after the other. Watcher i watches the i-th of
// watchers tool names spread over the fleet's.
func (s *soak) watch(ctx context.Context, hc *http.Client, i int) {
	names := s.fleet.ToolNames
	path := "/tools/" + url.PathEscape(names[i*len(names)/max(s.opts.watchers, 1)%len(names)])
	wait := strconv.FormatFloat(s.opts.watchWait.Seconds(), 'f', -1, 64) + "s"
	var index uint64
	var err error
	for ctx.Err() == nil {
		if index == 0 || err != nil {
			if err != nil && ctx.Err() == nil {
				s.counts.WatchErrors.Add(1)
				sleep(ctx, time.Second) // do not spin against a failing server
			}
			index, err = s.index(ctx, hc, path)
			continue
		}
		var next uint64
		next, err = s.index(ctx, hc, path+"?index="+strconv.FormatUint(index, 10)+"&wait="+wait)
		if err != nil || ctx.Err() != nil {
			continue
		}
		if next > index {
			s.counts.WatchWakes.Add(1)
		} else {
			s.counts.WatchTimeouts.Add(1)
		}
		index = next
	}
}

// index reads path (a tool: 200, or 404 when no host offers it) and
// returns its X-Registry-Index.
func (s *soak) index(ctx context.Context, hc *http.Client, path string) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+path, nil)
	if err != nil {
		return 0, err
	}
	if s.key != "" {
		req.Header.Set("X-API-Key", s.key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return 0, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return strconv.ParseUint(resp.Header.Get("X-Registry-Index"), 10, 64)
}

// follow is one event stream client: it reads GET /events, and every
// sseReconnect resumes on a new connection after the last id it got.
func (s *soak) follow(ctx context.Context, hc *http.Client, i int) {
	last := ""
	// The clients resume at different times: the first stream of client
	// i lasts (i+1)/sse of the period.
	period := s.opts.sseReconnect * time.Duration(i+1) / time.Duration(max(s.opts.sse, 1))
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, period)
		period = s.opts.sseReconnect
		var err error
		last, err = s.stream(cctx, hc, last)
		cancel()
		if err != nil && ctx.Err() == nil && cctx.Err() == nil {
			s.counts.StreamErrors.Add(1)
			sleep(ctx, time.Second)
		}
		if last != "" && ctx.Err() == nil {
			s.counts.Resumes.Add(1)
		}
	}
}

// stream reads one event stream until ctx ends, counting the events,
// and returns the id of the last one.
func (s *soak) stream(ctx context.Context, hc *http.Client, last string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/events", nil)
	if err != nil {
		return last, err
	}
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	if s.key != "" {
		req.Header.Set("X-API-Key", s.key)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return last, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return last, fmt.Errorf("GET /events: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	kind, id := "", ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			kind = line[len("event: "):]
		case strings.HasPrefix(line, "id: "):
			id = line[len("id: "):]
		case line == "" && kind != "":
			s.counts.Events.Add(1)
			s.counts.event(kind)
			if kind == "reset" {
				s.counts.Resets.Add(1)
			}
			last, kind = id, ""
		}
	}
	if ctx.Err() != nil {
		return last, nil // the end of this connection, not an error
	}
	if err := sc.Err(); err != nil {
		return last, err
	}
	return last, errors.New("GET /events: the server ended the stream")
}

// soakListings are the listings the lister reads in turn ("" + walk: the
// paginated walk of /instances).
func soakListings() []string {
	return []string{"/tools", "/hosts", "/instances?active=true", "walk"}
}

// list reads a listing every listEvery, in turn.
func (s *soak) list(ctx context.Context, t *target, rec *soakRecorder) {
	tick := time.NewTicker(s.opts.listEvery)
	defer tick.Stop()
	all := soakListings()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		path := all[i%len(all)]
		var good bool
		var bytes int64
		if path == "walk" {
			good, bytes = s.walk(ctx, t, rec)
		} else {
			lat, st, n, err := t.do(ctx, http.MethodGet, path, nil, nil)
			good, bytes = ok(ctx, rec, lat, st, n, err), n
		}
		if ctx.Err() != nil {
			return
		}
		if good {
			s.counts.Listings.Add(1)
			s.counts.ListBytes.Add(bytes)
		} else {
			s.counts.ListErrors.Add(1)
		}
	}
}

// walk reads /instances a page of 1,000 at a time, following the Link
// headers, and counts it as one listing.
func (s *soak) walk(ctx context.Context, t *target, rec *soakRecorder) (bool, int64) {
	path, total := "/instances?limit=1000", int64(0)
	for pages := 0; path != "" && pages < 10_000; pages++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+path, nil)
		if err != nil {
			return false, total
		}
		if t.key != "" {
			req.Header.Set("X-API-Key", t.key)
		}
		start := time.Now()
		resp, err := t.hc.Do(req)
		if err != nil {
			ok(ctx, rec, time.Since(start), 0, 0, err)
			return false, total
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		total += n
		if !ok(ctx, rec, time.Since(start), resp.StatusCode, n, err) {
			return false, total
		}
		path = nextPage(resp.Header.Get("Link"))
		if path != "" {
			path = "/instances" + path
		}
	}
	return true, total
}

// nextPage is the relative reference of a Link header's rel="next" ("?…").
func nextPage(link string) string {
	for part := range strings.SplitSeq(link, ",") {
		ref, params, found := strings.Cut(part, ";")
		if !found || !strings.Contains(params, `rel="next"`) {
			continue
		}
		ref = strings.TrimSpace(ref)
		if strings.HasPrefix(ref, "<") && strings.HasSuffix(ref, ">") {
			return ref[1 : len(ref)-1]
		}
	}
	return ""
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// runSoak is the soak scenario of the command line: it runs, reports its
// requests as results, prints its samples' verdict and writes -soak-out.
func runSoak(ctx context.Context, c config, fleet *Fleet, rp *reporter) error {
	s := &soak{opts: *c.soak, duration: c.duration, fleet: fleet, base: strings.TrimRight(c.url, "/"), key: c.key,
		workers: min(c.clients, len(fleet.Agents)), seed: c.seed ^ 0x50a4, env: soakEnv{pid: c.pid}, progress: rp.out}
	s.env.runtime = metricsRuntime(ctx, s.base+"/metrics", c.key)
	fmt.Fprintf(rp.out, "# soak %s: %d agents heartbeating every %s ±%.0f%%, restarts every %s (%.0f%% deregister), tool changes every %s, %d watchers, %d event streams, a listing every %s; samples every %s, warm-up %s\n",
		s.duration, len(fleet.Agents), s.opts.heartbeat, 100*s.opts.jitter, s.opts.lifetime, 100*s.opts.deregister, s.opts.toolChange,
		s.opts.watchers, s.opts.sse, s.opts.listEvery, s.opts.sample, s.opts.warmup)
	rep, err := s.run(ctx)
	if err != nil {
		return err
	}
	for _, r := range []struct {
		name string
		st   Stats
	}{{"soak-heartbeat", s.stats.Heartbeat}, {"soak-register", s.stats.Register}, {"soak-tools", s.stats.Tools},
		{"soak-deregister", s.stats.Deregister}, {"soak-list", s.stats.List}} {
		if r.st.Requests > 0 {
			rp.add(newResult(r.name, c.url, s.workers, r.st), false)
		}
	}
	rep.print(rp.out)
	if s.opts.out != "" {
		if err := rep.write(s.opts.out); err != nil {
			return err
		}
		fmt.Fprintf(rp.out, "# soak: samples in %s.csv, everything in %s.json\n", s.opts.out, s.opts.out)
	}
	return nil
}

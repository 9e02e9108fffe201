// hostile.go runs the hostile-client scenarios: registration throughput
// with and without watchers (event streams that read, blocking queries,
// event streams that never read), and connections that request a large
// listing and never read, with the server's memory per connection.

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Names of the tools the watchers scenario's writes post: hotTool is
// watched by the hot blocking queries; the cold ones by nobody.
const (
	hotTool    = "watch-hot"
	writeTools = 20
	writePool  = 2000 // ids the writes cycle through: the hot tool's host list stays this long
)

// memPoll is the period of settledMem (tests shorten it).
var memPoll = time.Second

// watchPlan is what the watchers scenario opens beside the writers.
type watchPlan struct {
	name    string // result name
	readers int    // event streams that read everything
	queries int    // blocking queries on GET /tools/{name}, hot ones included
	hot     int    // of the queries, those on hotTool
	silent  int    // event streams that never read
}

// watchCounts are what the watchers counted during one phase; the
// watchers process reports them as JSON.
type watchCounts struct {
	Events       []int64 `json:"events"` // per reading stream
	Resets       int64   `json:"resets"`
	ReaderErrors int64   `json:"reader_errors"`
	Answers      int64   `json:"answers"` // of the blocking queries
	HotAnswers   int64   `json:"hot_answers"`
	QueryErrors  int64   `json:"query_errors"`
}

// watchFigures are what the watchers saw during one phase.
type watchFigures struct {
	watchCounts
	silentHeld int // server sockets beyond those before the phase, when the writes end (-pid)

	// CPU time used during the writes by the server (-pid), by this
	// process (the writers) and by the watchers process, and the writes'
	// wall time.
	serverCPU, selfCPU, watchersCPU, elapsed time.Duration
	watchersPid                              int // the watchers process, if they ran in one
}

// cpuTime is the user and system CPU time process pid has used (0 if it
// cannot tell).
func cpuTime(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) in parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// writeBodies are the registration and tool bodies of the write pool.
type writeBodies struct {
	ids        []string
	reg, tools [][]byte
}

func newWriteBodies(seed uint64) *writeBodies {
	wb := &writeBodies{}
	tools := make([]map[string]string, writeTools)
	tools[0] = map[string]string{"name": hotTool, "description": "watched by the hot blocking queries", "x-command": "/usr/local/bin/" + hotTool}
	for j := 1; j < writeTools; j++ {
		name := fmt.Sprintf("watch-cold-%02d", j)
		tools[j] = map[string]string{"name": name, "description": "posted by the writes, watched by nobody", "x-command": "/usr/local/bin/" + name}
	}
	for k := range writePool {
		id := fmt.Sprintf("w%d-%05d", seed, k)
		wb.ids = append(wb.ids, id)
		reg, _ := json.Marshal(map[string]string{"instance_id": id, "name": "watch-writer", "version": "1", "host": fmt.Sprintf("wh-%05d", k)})
		for _, tl := range tools {
			tl["x-run-as"] = fmt.Sprintf("svc%d", k%7)
		}
		tb, _ := json.Marshal(map[string]any{"tools": tools})
		wb.reg, wb.tools = append(wb.reg, reg), append(wb.tools, tb)
	}
	return wb
}

// writeLoad is one phase of writes: writers workers, each write a
// registration and a tool post (an agent's start), for d. A write counts
// once both parts are answered; its latency is the pair's.
func writeLoad(ctx context.Context, t *target, wb *writeBodies, writers int, d time.Duration, seed uint64) Stats {
	var next atomic.Int64
	next.Store(int64(seed % writePool))
	return forDuration(ctx, writers, d, seed, 1, func(_ *rand.Rand, recs []*recorder, _ *bytes.Buffer) {
		k := int(next.Add(1)) % writePool
		lat1, st, n, err := t.do(ctx, http.MethodPost, "/instances", wb.reg[k], nil)
		if err != nil || st/100 != 2 {
			recs[0].add(lat1, st, n, err)
			return
		}
		lat2, st, n, err := t.do(ctx, http.MethodPost, "/instances/"+url.PathEscape(wb.ids[k])+"/tools", wb.tools[k], nil)
		recs[0].add(lat1+lat2, st, n, err)
	})[0]
}

// startWatchers runs the watchers of plan against base until ctx ends, and
// returns when they are all in place and parked for settle (or ctx ended);
// figures are final once done is closed.
func startWatchers(ctx context.Context, base string, f *Fleet, plan watchPlan, settle time.Duration) (fig *watchFigures, done <-chan struct{}, err error) {
	fig = &watchFigures{watchCounts: watchCounts{Events: make([]int64, plan.readers)}}
	tr := &http.Transport{MaxIdleConnsPerHost: plan.readers + plan.queries + 8, IdleConnTimeout: time.Minute}
	hc := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	var connected atomic.Int64
	for i := range plan.readers {
		wg.Go(func() {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/events", nil)
			resp, err := hc.Do(req)
			if err != nil {
				if ctx.Err() == nil {
					atomic.AddInt64(&fig.ReaderErrors, 1)
				}
				return
			}
			defer resp.Body.Close()
			connected.Add(1)
			countEvents(resp.Body, &fig.Events[i], &fig.Resets)
		})
	}
	for i := range plan.queries {
		name := hotTool
		if i >= plan.hot {
			name = f.ToolNames[i%len(f.ToolNames)]
		}
		hot := i < plan.hot
		wg.Go(func() {
			index := ""
			first := true
			for ctx.Err() == nil {
				path := base + "/tools/" + url.PathEscape(name)
				if index != "" {
					path += "?index=" + index + "&wait=5m"
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, path, nil)
				resp, err := hc.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						atomic.AddInt64(&fig.QueryErrors, 1)
						time.Sleep(100 * time.Millisecond)
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
					atomic.AddInt64(&fig.QueryErrors, 1)
				}
				index = resp.Header.Get("X-Registry-Index")
				if first {
					first = false
					connected.Add(1)
					continue
				}
				atomic.AddInt64(&fig.Answers, 1)
				if hot {
					atomic.AddInt64(&fig.HotAnswers, 1)
				}
			}
		})
	}
	var silent []net.Conn
	if plan.silent > 0 {
		silent, err = dialSilentMany(ctx, base, "/events", plan.silent)
		if err != nil {
			return nil, nil, err
		}
	}
	// In place: every stream answered and every query had its first
	// answer (the next one parks); then a moment for the last to park.
	for deadline := time.Now().Add(time.Minute); connected.Load() < int64(plan.readers+plan.queries) && ctx.Err() == nil; {
		if time.Now().After(deadline) {
			return nil, nil, fmt.Errorf("%d of %d watchers in place after a minute (%d stream errors, %d query errors)",
				connected.Load(), plan.readers+plan.queries, atomic.LoadInt64(&fig.ReaderErrors), atomic.LoadInt64(&fig.QueryErrors))
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-time.After(settle):
	case <-ctx.Done():
	}
	ch := make(chan struct{})
	go func() {
		<-ctx.Done()
		for _, c := range silent {
			c.Close()
		}
		wg.Wait()
		tr.CloseIdleConnections()
		close(ch)
	}()
	return fig, ch, nil
}

// startWatchersProcess is startWatchers in a process of its own, as the
// scenario asks: this command again, with -watchers-process. The watchers'
// goroutines then do not share a scheduler with the writers', so that the
// figures measure the server, not how a 2,000 goroutines' burst of reading
// delays the writers' answers in the load generator. It also returns the
// process's PID, for its CPU time.
func startWatchersProcess(ctx context.Context, c config, base string, plan watchPlan) (*watchFigures, <-chan struct{}, int, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, 0, fmt.Errorf("the watchers process: %w", err)
	}
	cmd := exec.Command(exe, "-watchers-process", "-url", base,
		"-agents", strconv.Itoa(c.agents), "-tools", strconv.Itoa(c.tools), "-share", strconv.Itoa(c.share),
		"-seed", strconv.FormatUint(c.seed, 10), "-watch-settle", c.watchSettle.String(),
		"-watch-readers", strconv.Itoa(plan.readers), "-watch-queries", strconv.Itoa(plan.queries),
		"-watch-hot", strconv.Itoa(plan.hot), "-watch-silent", strconv.Itoa(plan.silent))
	cmd.Env = append(os.Environ(), watchersProcessEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, 0, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, 0, fmt.Errorf("the watchers process: %w", err)
	}
	br := bufio.NewReader(stdout)
	if line, err := br.ReadString('\n'); line != "ready\n" {
		stdin.Close()
		werr := cmd.Wait()
		return nil, nil, 0, fmt.Errorf("the watchers process did not get ready: %q, %v, %v", line, err, werr)
	}
	// Zero counts, one per stream, unless the process reports its own: a
	// process that died shows as streams that got nothing.
	fig := &watchFigures{watchCounts: watchCounts{Events: make([]int64, plan.readers)}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		stdin.Close() // the watchers stop, and report
		var got watchCounts
		if err := json.NewDecoder(br).Decode(&got); err != nil {
			fmt.Fprintln(os.Stderr, "registry-load: the watchers process's figures:", err)
			fig.ReaderErrors = int64(plan.readers)
		} else if len(got.Events) != plan.readers {
			fmt.Fprintf(os.Stderr, "registry-load: the watchers process reported %d streams of %d\n", len(got.Events), plan.readers)
			fig.ReaderErrors = int64(plan.readers)
		} else {
			fig.watchCounts = got
		}
		if err := cmd.Wait(); err != nil {
			fmt.Fprintln(os.Stderr, "registry-load: the watchers process:", err)
		}
	}()
	return fig, done, cmd.Process.Pid, nil
}

// watchersProcessEnv marks the environment of a watchers process, so that
// a test binary standing in for this command knows to run it (TestMain).
const watchersProcessEnv = "REGISTRY_LOAD_WATCHERS_PROCESS"

// runWatchersProcess is the command with -watchers-process: it opens the
// watchers its flags ask for, prints "ready" once they are in place, keeps
// them until stdin ends, then prints their counts as JSON.
func runWatchersProcess(ctx context.Context, c config, stdin io.Reader, stdout io.Writer) error {
	f, err := NewFleet(c.agents, c.tools, c.share, c.seed)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		io.Copy(io.Discard, stdin)
		cancel()
	}()
	plan := watchPlan{readers: c.watchReaders, queries: c.watchQueries, hot: c.watchHot, silent: c.watchSilent}
	fig, done, err := startWatchers(ctx, strings.TrimRight(c.url, "/"), f, plan, c.watchSettle)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, "ready")
	<-done
	return json.NewEncoder(stdout).Encode(fig.watchCounts)
}

// countEvents counts the "event: " lines of an event stream, and the
// resets among them, until it ends.
func countEvents(r io.Reader, events, resets *int64) {
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("event: ")) {
			atomic.AddInt64(events, 1)
			if bytes.HasPrefix(line, []byte("event: reset")) {
				atomic.AddInt64(resets, 1)
			}
		}
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
	}
}

// silentRcvBuf is the receive buffer of a connection that never reads: as
// small as the kernel allows.
const silentRcvBuf = 4096

// dialSilentMany opens n connections to base's host that each send GET
// target and never read.
func dialSilentMany(ctx context.Context, base, target string, n int) ([]net.Conn, error) {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return nil, fmt.Errorf("silent connections need an http URL, not %q", base)
	}
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, silentRcvBuf)
		}); err != nil {
			return err
		}
		return serr
	}}
	req := "GET " + strings.TrimRight(u.Path, "/") + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: registry-load-silent\r\n\r\n"
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			for _, c := range conns {
				c.Close()
			}
			return nil, err
		}
		if _, err := io.WriteString(c, req); err != nil {
			c.Close()
			continue
		}
		conns = append(conns, c)
	}
	return conns, nil
}

// watchersScenario alternates, for rounds rounds, the writes alone, with
// readers and blocking queries, and with silent event streams, and reports
// each phase, its ratio to the writes alone of its round, and the medians.
func watchersScenario(ctx context.Context, c config, t *target, f *Fleet, rp *reporter) {
	wb := newWriteBodies(c.seed)
	var plans []watchPlan
	for _, p := range []watchPlan{
		{name: "watch-alone"},
		{name: "watch-readers", readers: c.watchReaders, queries: c.watchQueries, hot: c.watchHot},
		{name: "watch-silent", silent: c.watchSilent},
	} {
		if slices.Contains(c.watchPhases, strings.TrimPrefix(p.name, "watch-")) {
			plans = append(plans, p)
		}
	}
	ratios := map[string][]float64{}
	for round := range c.rounds {
		order := slices.Clone(plans)
		if round%2 == 1 { // alternate the order, so that drift does not favour one
			slices.Reverse(order)
		}
		alone := 0.0
		results := map[string]Result{}
		for _, plan := range order {
			if ctx.Err() != nil {
				return
			}
			wctx, stop := context.WithCancel(ctx)
			var fig *watchFigures
			var done <-chan struct{}
			var err error
			watchersPid := 0
			if c.watchInProcess || plan.readers+plan.queries+plan.silent == 0 {
				fig, done, err = startWatchers(wctx, t.base, f, plan, c.watchSettle)
			} else {
				fig, done, watchersPid, err = startWatchersProcess(wctx, c, t.base, plan)
			}
			if err != nil {
				stop()
				fmt.Fprintf(rp.log, "registry-load: %s: %v\n", plan.name, err)
				return
			}
			sockets := serverSockets(rp.pid)
			srvCPU, selfCPU, watchersCPU := cpuTime(rp.pid), cpuTime(os.Getpid()), cpuTime(watchersPid)
			s := writeLoad(ctx, t, wb, c.registerClients, c.duration, c.seed^uint64(round)<<40)
			fig.serverCPU, fig.selfCPU = cpuTime(rp.pid)-srvCPU, cpuTime(os.Getpid())-selfCPU
			fig.watchersCPU, fig.watchersPid = cpuTime(watchersPid)-watchersCPU, watchersPid
			fig.elapsed = s.Elapsed
			if plan.silent > 0 && rp.pid > 0 {
				fig.silentHeld = serverSockets(rp.pid) - sockets + plan.silent
			}
			// Let the readers drain what the last writes made.
			time.Sleep(c.watchSettle / 2)
			stop()
			<-done
			r := newResult(plan.name, t.base, c.registerClients, s)
			results[plan.name] = r
			if plan.name == "watch-alone" {
				alone = r.ReqPerS
			}
			fmt.Fprintf(rp.out, "# round %d %s: %s\n", round+1, plan.name, fig.describe(plan, s.Requests))
		}
		for _, plan := range plans {
			r := results[plan.name]
			r.Round = round + 1
			if plan.name != "watch-alone" {
				r.Ratio, r.RatioOf = ratio(r.ReqPerS, alone), "alone"
				ratios[plan.name] = append(ratios[plan.name], r.Ratio)
			}
			rp.add(r, true)
		}
	}
	for _, name := range []string{"watch-readers", "watch-silent"} {
		if len(ratios[name]) > 0 {
			fmt.Fprintf(rp.out, "# %s / alone: median %.2f over %d rounds %s (target ≥ 0.80)\n",
				name, median(ratios[name]), len(ratios[name]), fmtRatios(ratios[name]))
		}
	}
}

// describe summarizes what the watchers of plan saw while writes writes
// were made.
func (fig *watchFigures) describe(plan watchPlan, writes int) string {
	var b strings.Builder
	if plan.readers > 0 && len(fig.Events) > 0 {
		ev := slices.Clone(fig.Events)
		slices.Sort(ev)
		fmt.Fprintf(&b, "%d reading streams: events per stream min %d median %d (%d changes made), %d resets, %d errors; ",
			plan.readers, ev[0], ev[len(ev)/2], 2*writes, fig.Resets, fig.ReaderErrors)
	}
	if plan.queries > 0 {
		fmt.Fprintf(&b, "%d blocking queries (%d hot): %d answers (%d hot), %d errors; ",
			plan.queries, plan.hot, fig.Answers, fig.HotAnswers, fig.QueryErrors)
	}
	if plan.silent > 0 {
		fmt.Fprintf(&b, "%d silent streams, %d still held by the server when the writes ended; ", plan.silent, fig.silentHeld)
	}
	if b.Len() == 0 {
		b.WriteString("no watchers; ")
	}
	if fig.elapsed > 0 {
		cores := func(d time.Duration) float64 { return d.Seconds() / fig.elapsed.Seconds() }
		fmt.Fprintf(&b, "CPU during the writes: server %.2f cores, load generator %.2f cores", cores(fig.serverCPU), cores(fig.selfCPU))
		if fig.watchersPid > 0 {
			fmt.Fprintf(&b, ", watchers process %.2f cores", cores(fig.watchersCPU))
		}
	}
	return strings.TrimSuffix(b.String(), "; ")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtRatios(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return "(" + strings.Join(parts, ", ") + ")"
}

// silentScenario opens c.silentConns connections that request
// c.silentTarget and never read, for rounds rounds, and reports the
// server's resident memory per connection while they are held (-pid), how
// many of them the server still holds after c.silentHold (its open
// sockets), and its memory once they are gone.
func silentScenario(ctx context.Context, c config, t *target, rp *reporter) {
	if rp.pid == 0 {
		fmt.Fprintln(rp.log, "registry-load: silent: needs -pid to measure the server's memory")
		return
	}
	var per []float64
	for round := range c.rounds {
		before, err := settledMem(ctx, rp.pid, 0)
		if err != nil {
			fmt.Fprintf(rp.log, "registry-load: silent: %v\n", err)
			return
		}
		fds0 := serverSockets(rp.pid)
		start := time.Now()
		conns, err := dialSilentMany(ctx, t.base, c.silentTarget, c.silentConns)
		if err != nil {
			fmt.Fprintf(rp.log, "registry-load: silent: %v\n", err)
			return
		}
		held, _ := settledMem(ctx, rp.pid, 10*time.Second)
		fdsHeld := serverSockets(rp.pid)
		if wait := c.silentHold - time.Since(start); wait > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
			}
		}
		fdsLater := serverSockets(rp.pid)
		for _, cn := range conns {
			cn.Close()
		}
		after, _ := settledMem(ctx, rp.pid, 10*time.Second)
		kib := float64(held.RSS-before.RSS) / float64(len(conns))
		per = append(per, kib)
		fmt.Fprintf(rp.out, "silent            %4d conns on %s: rss %s before, %s held (%+.0f KiB per conn), %s after they closed; "+
			"server sockets %d before, %d held, %d after %v\n",
			len(conns), c.silentTarget, fmtKiB(before.RSS), fmtKiB(held.RSS), kib, fmtKiB(after.RSS),
			fds0, fdsHeld, fdsLater, c.silentHold)
		rp.results = append(rp.results, Result{Scenario: "silent", Target: t.base, Clients: len(conns), Requests: len(conns),
			RSSKiB: held.RSS, HWMKiB: held.HWM, ElapsedS: time.Since(start).Seconds(),
			PerConnKiB: kib, ClosedByServer: max(fdsHeld-fdsLater, 0), Round: round + 1})
	}
	fmt.Fprintf(rp.out, "# silent: median %.0f KiB of server RSS per connection that never reads, over %d rounds %s (target ≤ 256)\n",
		median(per), len(per), fmtRatios(per))
}

// serverSockets counts the sockets process pid has open (-1 if it cannot
// tell): a connection the server dropped is no longer among them, even
// while the kernel still delivers what it had sent.
func serverSockets(pid int) int {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return -1
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink(dir + "/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// settledMem waits until the server's RSS has moved less than 1 MiB over
// memPoll (at most limit, if not zero), and returns it.
func settledMem(ctx context.Context, pid int, limit time.Duration) (Mem, error) {
	start := time.Now()
	last, err := readMem(pid)
	if err != nil {
		return Mem{}, err
	}
	for {
		select {
		case <-time.After(memPoll):
		case <-ctx.Done():
			return last, ctx.Err()
		}
		m, err := readMem(pid)
		if err != nil {
			return last, err
		}
		if d := m.RSS - last.RSS; (d < 1024 && d > -1024) || (limit > 0 && time.Since(start) > limit) {
			return m, nil
		}
		last = m
	}
}

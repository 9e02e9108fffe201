// soak_sample.go samples the server during a soak (RSS, threads and open
// files from /proc, the data file's size, the Go runtime when the server
// runs in this process), checks the samples after the warm-up against the
// soak targets, and writes them as CSV and JSON.

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// soakSample is one sample of the server. A figure that could not be read
// is -1.
type soakSample struct {
	T          float64 `json:"t_s"`     // seconds since the soak started
	RSSKiB     int64   `json:"rss_kib"` // VmRSS
	HWMKiB     int64   `json:"hwm_kib"` // VmHWM
	Threads    int64   `json:"threads"`
	FDs        int64   `json:"open_files"`
	DataBytes  int64   `json:"data_file_bytes"`
	Goroutines int64   `json:"goroutines"`
	HeapLive   int64   `json:"heap_live_bytes"` // in process, the live heap after a GC; from /metrics, go_memstats_heap_alloc_bytes
	Heartbeats int64   `json:"heartbeats"`      // of the soak so far
	Errors     int64   `json:"errors"`
	Events     int64   `json:"events"`
}

// procStatus reads VmRSS, VmHWM (KiB) and Threads from /proc/PID/status.
func procStatus(pid int) (rss, hwm, threads int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1, -1, -1, err
	}
	rss, hwm, threads = -1, -1, -1
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, found := strings.Cut(sc.Text(), ":")
		if !found {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(val), " ")
		n, perr := strconv.ParseInt(num, 10, 64)
		if perr != nil {
			continue
		}
		switch key {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		case "Threads":
			threads = n
		}
	}
	if rss < 0 || threads < 0 {
		return rss, hwm, threads, fmt.Errorf("/proc/%d/status: no VmRSS or Threads", pid)
	}
	return rss, hwm, threads, nil
}

// openFiles counts the entries of /proc/PID/fd.
func openFiles(pid int) (int64, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return -1, err
	}
	return int64(len(ents)), nil
}

// take reads one sample.
func (s *soak) take(start time.Time) soakSample {
	sm := soakSample{T: time.Since(start).Seconds(), RSSKiB: -1, HWMKiB: -1, Threads: -1, FDs: -1, DataBytes: -1,
		Goroutines: -1, HeapLive: -1,
		Heartbeats: s.counts.Heartbeats.Load(), Errors: s.counts.errorCount(), Events: s.counts.Events.Load()}
	if s.env.pid > 0 {
		sm.RSSKiB, sm.HWMKiB, sm.Threads, _ = procStatus(s.env.pid)
		sm.FDs, _ = openFiles(s.env.pid)
	}
	if s.opts.dataFile != "" {
		if fi, err := os.Stat(s.opts.dataFile); err == nil {
			sm.DataBytes = fi.Size()
		}
	}
	if s.env.runtime != nil {
		sm.Goroutines, sm.HeapLive = s.env.runtime()
	}
	return sm
}

// sampleLoop samples every opts.sample from start (the first at start)
// until ctx ends (not after: the clients are leaving then); it also asks
// GET /health.
func (s *soak) sampleLoop(ctx context.Context, t *target, start time.Time) {
	tick := time.NewTicker(s.opts.sample)
	defer tick.Stop()
	lastPrint := time.Time{}
	for ctx.Err() == nil {
		sm := s.take(start)
		s.samples = append(s.samples, sm)
		if s.progress != nil && time.Since(lastPrint) >= time.Minute {
			lastPrint = time.Now()
			fmt.Fprintf(s.progress, "# soak t=%4.0fs rss %s threads %d open files %d data file %d bytes goroutines %d heartbeats %d errors %d events %d\n",
				sm.T, fmtKiB(sm.RSSKiB), sm.Threads, sm.FDs, sm.DataBytes, sm.Goroutines, sm.Heartbeats, sm.Errors, sm.Events)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if _, st, _, err := t.do(ctx, http.MethodGet, "/health", nil, nil); ctx.Err() == nil && (err != nil || st != http.StatusOK) {
			s.counts.HealthErrors.Add(1)
		}
	}
}

// soakTarget is one target of the soak and whether the samples meet it.
type soakTarget struct {
	Name     string `json:"name"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	// Met is "yes", "no", or "n/a" (not measurable: say why in Note).
	Met  string `json:"met"`
	Note string `json:"note,omitempty"`
}

// soakReport is the outcome of a soak.
type soakReport struct {
	ElapsedS float64          `json:"elapsed_s"`
	WarmupS  float64          `json:"warmup_s"`
	Counts   map[string]int64 `json:"counts"`
	Targets  []soakTarget     `json:"targets"`
	Samples  []soakSample     `json:"samples"`
}

func (s *soak) report(elapsed time.Duration) *soakReport {
	return &soakReport{ElapsedS: elapsed.Seconds(), WarmupS: s.opts.warmup.Seconds(), Counts: s.counts.snapshot(),
		Targets: soakTargets(s.samples, s.opts.warmup), Samples: s.samples}
}

// The soak targets, for a window after the warm-up of at least
// minWindowSamples samples: RSS (and, in process, the live heap) grows by
// less than 1 MiB per 10 minutes (the slope of a least-squares line
// through the floors of levelSamples samples, or through every sample
// when there are fewer than three floors); goroutines and open files end
// within 1% of their baseline; the data file does not grow.
const (
	slopeTargetMiB   = 1.0 // per 10 minutes
	levelTargetPct   = 1.0
	minWindowSamples = 6
	// levelSamples is how many samples a level is taken over: the
	// baseline and the end of goroutines and open files are medians of
	// that many (a request in flight adds to a sample, a connection
	// being replaced takes from one), and the memory slopes go through
	// the minima of groups of that many (the floor under the GC's
	// sawtooth and the answers in flight).
	levelSamples = 6
)

// soakTargets checks the samples taken after warmup against the targets.
func soakTargets(samples []soakSample, warmup time.Duration) []soakTarget {
	var win []soakSample
	for _, sm := range samples {
		if sm.T >= warmup.Seconds() {
			win = append(win, sm)
		}
	}
	if len(win) < minWindowSamples {
		na := fmt.Sprintf("%d samples after the %s warm-up; at least %d needed", len(win), warmup, minWindowSamples)
		return []soakTarget{
			{Name: "RSS slope", Target: fmt.Sprintf("< %.0f MiB / 10 min", slopeTargetMiB), Met: "n/a", Note: na},
			{Name: "open files", Target: fmt.Sprintf("within ±%.0f%% of baseline", levelTargetPct), Met: "n/a", Note: na},
			{Name: "data file", Target: "flat", Met: "n/a", Note: na},
		}
	}
	span := fmt.Sprintf("%.0f s to %.0f s", win[0].T, win[len(win)-1].T)
	series := func(f func(soakSample) int64) (ts, vs []float64, ok bool) {
		for _, sm := range win {
			if v := f(sm); v >= 0 {
				ts, vs = append(ts, sm.T), append(vs, float64(v))
			}
		}
		return ts, vs, len(vs) >= minWindowSamples
	}
	slopeTarget := func(name string, f func(soakSample) int64, scale float64, missing string) soakTarget {
		tg := soakTarget{Name: name, Target: fmt.Sprintf("< %.0f MiB / 10 min", slopeTargetMiB)}
		ts, vs, ok := series(f)
		if !ok {
			tg.Met, tg.Note = "n/a", missing
			return tg
		}
		per10 := func(x float64) float64 { return x * scale * 600 / (1 << 20) }
		lo, hi := minMax(vs)
		raw, rawSE := slope(ts, vs)
		fts, fvs := floors(ts, vs, levelSamples)
		if len(fts) < 3 {
			tg.Measured = fmt.Sprintf("%+.2f ± %.2f MiB / 10 min (all samples, ±2 standard errors; %s, %.1f to %.1f MiB)",
				per10(raw), per10(2*rawSE), span, lo*scale/(1<<20), hi*scale/(1<<20))
			tg.Met = yes(per10(raw) < slopeTargetMiB)
			return tg
		}
		b, se := slope(fts, fvs)
		tg.Measured = fmt.Sprintf("%+.2f ± %.2f MiB / 10 min (floors of %d samples, ±2 standard errors; all samples %+.2f ± %.2f; %s, %.1f to %.1f MiB)",
			per10(b), per10(2*se), levelSamples, per10(raw), per10(2*rawSE), span, lo*scale/(1<<20), hi*scale/(1<<20))
		tg.Met = yes(per10(b) < slopeTargetMiB)
		return tg
	}
	levelTarget := func(name string, f func(soakSample) int64, missing string) soakTarget {
		tg := soakTarget{Name: name, Target: fmt.Sprintf("within ±%.0f%% of baseline", levelTargetPct)}
		_, vs, ok := series(f)
		if !ok {
			tg.Met, tg.Note = "n/a", missing
			return tg
		}
		k := min(levelSamples, len(vs)/2)
		base, end := median(vs[:k]), median(vs[len(vs)-k:])
		lo, hi := minMax(vs)
		dev := 100 * (end - base) / base
		tg.Measured = fmt.Sprintf("%+.1f%%: baseline %.0f, end %.0f (medians of the first and last %d samples; %.0f to %.0f over %s)",
			dev, base, end, k, lo, hi, span)
		tg.Met = yes(math.Abs(dev) <= levelTargetPct)
		return tg
	}
	const noPID = "not sampled (no -pid)"
	noRuntime := "not available: the server has no Go runtime endpoint (no /debug/vars, no pprof); threads are sampled instead"
	targets := []soakTarget{
		slopeTarget("RSS slope", func(sm soakSample) int64 { return sm.RSSKiB }, 1024, noPID),
	}
	if _, _, ok := series(func(sm soakSample) int64 { return sm.HeapLive }); ok {
		targets = append(targets, slopeTarget("live heap slope", func(sm soakSample) int64 { return sm.HeapLive }, 1, ""))
		targets = append(targets, levelTarget("goroutines", func(sm soakSample) int64 { return sm.Goroutines }, ""))
	} else {
		targets = append(targets, soakTarget{Name: "goroutines", Target: fmt.Sprintf("within ±%.0f%% of baseline", levelTargetPct), Met: "n/a", Note: noRuntime})
	}
	targets = append(targets,
		levelTarget("open files", func(sm soakSample) int64 { return sm.FDs }, noPID),
		levelTarget("threads", func(sm soakSample) int64 { return sm.Threads }, noPID))
	dataTarget := soakTarget{Name: "data file", Target: "flat: no growth after the warm-up"}
	if ts, vs, ok := series(func(sm soakSample) int64 { return sm.DataBytes }); ok {
		b, _ := slope(ts, vs)
		lo, hi := minMax(vs)
		dataTarget.Measured = fmt.Sprintf("%d to %d bytes (first %d, last %d; slope %+.0f bytes / 10 min)",
			int64(lo), int64(hi), int64(vs[0]), int64(vs[len(vs)-1]), b*600)
		dataTarget.Met = yes(vs[len(vs)-1] <= vs[0] && hi <= vs[0])
	} else {
		dataTarget.Met, dataTarget.Note = "n/a", "not sampled (no -soak-data-file)"
	}
	targets = append(targets, dataTarget)
	// Threads are a weak proxy: the Go runtime keeps the threads it made.
	for i := range targets {
		if targets[i].Name == "threads" && targets[i].Met != "n/a" {
			targets[i].Note = "informative: the Go runtime keeps the threads it starts, so a peak stays"
		}
	}
	return targets
}

func yes(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func minMax(vs []float64) (float64, float64) { return slices.Min(vs), slices.Max(vs) }

// floors are the minima of vs over consecutive groups of k samples (a
// last group of fewer is dropped), at the mean time of each group: the
// level under the GC's sawtooth and the answers in flight, which a leak
// raises.
func floors(ts, vs []float64, k int) (fts, fvs []float64) {
	for i := 0; i+k <= len(vs); i += k {
		var mt float64
		for _, t := range ts[i : i+k] {
			mt += t
		}
		fts, fvs = append(fts, mt/float64(k)), append(fvs, slices.Min(vs[i:i+k]))
	}
	return fts, fvs
}

// slope is the least-squares slope of vs over ts, and its standard error.
func slope(ts, vs []float64) (b, se float64) {
	n := float64(len(ts))
	var mt, mv float64
	for i := range ts {
		mt += ts[i]
		mv += vs[i]
	}
	mt, mv = mt/n, mv/n
	var sxx, sxy float64
	for i := range ts {
		sxx += (ts[i] - mt) * (ts[i] - mt)
		sxy += (ts[i] - mt) * (vs[i] - mv)
	}
	if sxx == 0 {
		return 0, 0
	}
	b = sxy / sxx
	var ssr float64
	for i := range ts {
		r := vs[i] - (mv + b*(ts[i]-mt))
		ssr += r * r
	}
	if len(ts) > 2 {
		se = math.Sqrt(ssr / (n - 2) / sxx)
	}
	return b, se
}

// met reports whether every measured target is met.
func (r *soakReport) met() bool {
	for _, t := range r.Targets {
		if t.Met == "no" {
			return false
		}
	}
	return true
}

func (r *soakReport) print(w io.Writer) {
	fmt.Fprintf(w, "# soak: %.0f s, %d samples, warm-up %.0f s\n", r.ElapsedS, len(r.Samples), r.WarmupS)
	keys := make([]string, 0, len(r.Counts))
	for k := range r.Counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, r.Counts[k]))
	}
	fmt.Fprintf(w, "# soak counts: %s\n", strings.Join(parts, " "))
	for _, t := range r.Targets {
		line := fmt.Sprintf("soak-target %-16s met %-3s target %s", t.Name, t.Met, t.Target)
		if t.Measured != "" {
			line += "; measured " + t.Measured
		}
		if t.Note != "" {
			line += " (" + t.Note + ")"
		}
		fmt.Fprintln(w, line)
	}
}

// write writes prefix.csv (the samples) and prefix.json (the report).
func (r *soakReport) write(prefix string) error {
	var b bytes.Buffer
	cw := csv.NewWriter(&b)
	cw.Write([]string{"t_s", "rss_kib", "hwm_kib", "threads", "open_files", "data_file_bytes", "goroutines", "heap_live_bytes", "heartbeats", "errors", "events"})
	for _, s := range r.Samples {
		row := []string{strconv.FormatFloat(s.T, 'f', 1, 64)}
		for _, v := range []int64{s.RSSKiB, s.HWMKiB, s.Threads, s.FDs, s.DataBytes, s.Goroutines, s.HeapLive, s.Heartbeats, s.Errors, s.Events} {
			row = append(row, strconv.FormatInt(v, 10))
		}
		cw.Write(row)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	if err := os.WriteFile(prefix+".csv", b.Bytes(), 0o644); err != nil {
		return err
	}
	j, err := json.MarshalIndent(r, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(prefix+".json", append(j, '\n'), 0o644)
}

// metricsRuntime samples a binary's goroutines and heap from its Prometheus
// metrics at url (the command serves them at /metrics by default):
// go_goroutines and go_memstats_heap_alloc_bytes, the heap with its
// garbage not yet collected, whose floors (the minima of groups of samples)
// are the live heap's level. A figure it cannot read is -1, so a server
// without metrics is sampled from /proc only.
func metricsRuntime(ctx context.Context, url, key string) func() (goroutines, heap int64) {
	hc := &http.Client{Timeout: 5 * time.Second}
	return func() (int64, int64) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return -1, -1
		}
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return -1, -1
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return -1, -1
		}
		return parseRuntimeMetrics(io.LimitReader(resp.Body, 4<<20))
	}
}

// parseRuntimeMetrics reads go_goroutines and go_memstats_heap_alloc_bytes
// from Prometheus text exposition; a figure absent is -1.
func parseRuntimeMetrics(r io.Reader) (goroutines, heap int64) {
	goroutines, heap = -1, -1
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var dst *int64
		switch name {
		case "go_goroutines":
			dst = &goroutines
		case "go_memstats_heap_alloc_bytes":
			dst = &heap
		default:
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil && f >= 0 {
			*dst = int64(f)
		}
	}
	return goroutines, heap
}

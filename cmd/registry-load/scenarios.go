// scenarios.go runs the load scenarios (register, heartbeat, lookup, list, mixed) and measures them.

package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// forEach runs step(i) for i in [0, n) on workers workers and returns the
// figures. It ends when all items are done or ctx ends.
func forEach(ctx context.Context, workers, n int, step func(i int, rec *recorder)) Stats {
	workers = max(min(workers, n), 1)
	recs := make([]*recorder, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for w := range workers {
		rec := newRecorder()
		recs[w] = rec
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				step(i, rec)
			}
		})
	}
	wg.Wait()
	return merge(time.Since(start), recs...)
}

// forDuration runs workers workers, each calling step in a loop until d has
// passed (or ctx ends), and returns the figures per kind: step records each
// request in recs[k] for its kind k (0 <= k < kinds), and the last element of
// the answer merges all kinds. A request in flight at the deadline is let
// finish (it is bounded by the request timeout), so that the deadline does
// not turn into errors. Each worker has its own random source derived from
// seed, so the sequence of requests is reproducible.
func forDuration(ctx context.Context, workers int, d time.Duration, seed uint64, kinds int,
	step func(rng *rand.Rand, recs []*recorder, buf *bytes.Buffer)) []Stats {
	all := make([][]*recorder, kinds)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range workers {
		recs := make([]*recorder, kinds)
		for k := range recs {
			recs[k] = newRecorder()
			all[k] = append(all[k], recs[k])
		}
		rng := rand.New(rand.NewPCG(seed, uint64(w)))
		wg.Go(func() {
			var buf bytes.Buffer
			for ctx.Err() == nil && time.Now().Before(deadline) {
				step(rng, recs, &buf)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	out := make([]Stats, 0, kinds+1)
	var every []*recorder
	for k := range kinds {
		out = append(out, merge(elapsed, all[k]...))
		every = append(every, all[k]...)
	}
	return append(out, merge(elapsed, every...))
}

// registerFleet registers every agent, then posts every agent's tools, like
// the agents do at start, and returns the figures of both phases.
func registerFleet(ctx context.Context, t *target, f *Fleet, workers int) (reg, tools Stats) {
	// Encode before the clock starts: the load generator's JSON work is not
	// the server's.
	regBodies := make([][]byte, len(f.Agents))
	toolBodies := make([][]byte, len(f.Agents))
	for i := range f.Agents {
		regBodies[i] = f.Agents[i].registerBody()
		toolBodies[i] = f.Agents[i].toolsBody()
	}
	reg = forEach(ctx, workers, len(f.Agents), func(i int, rec *recorder) {
		lat, st, n, err := t.do(ctx, http.MethodPost, "/instances", regBodies[i], nil)
		rec.add(lat, st, n, err)
	})
	tools = forEach(ctx, workers, len(f.Agents), func(i int, rec *recorder) {
		path := "/instances/" + url.PathEscape(f.Agents[i].InstanceID) + "/tools"
		lat, st, n, err := t.do(ctx, http.MethodPost, path, toolBodies[i], nil)
		rec.add(lat, st, n, err)
	})
	return reg, tools
}

// heartbeatPaths are the heartbeat paths of the fleet, built once.
func heartbeatPaths(f *Fleet) []string {
	p := make([]string, len(f.Agents))
	for i, a := range f.Agents {
		p[i] = "/instances/" + url.PathEscape(a.InstanceID) + "/heartbeat"
	}
	return p
}

// lookupPaths are the GET /tools/{name} paths of the fleet, built once.
func lookupPaths(f *Fleet) []string {
	p := make([]string, len(f.ToolNames))
	for i, name := range f.ToolNames {
		p[i] = "/tools/" + url.PathEscape(name)
	}
	return p
}

var refreshAnswer = []byte(`"refresh"`)

// heartbeatOnce sends one empty-bodied heartbeat for a random agent and
// counts a "refresh" answer (the agent would then re-post its tools; we
// only count them, since a healthy run after registration gets none).
func heartbeatOnce(ctx context.Context, t *target, paths []string, rng *rand.Rand, rec *recorder, buf *bytes.Buffer) {
	lat, st, n, err := t.do(ctx, http.MethodPost, paths[rng.IntN(len(paths))], nil, buf)
	rec.add(lat, st, n, err)
	if err == nil && st == http.StatusOK && bytes.Contains(buf.Bytes(), refreshAnswer) {
		rec.refresh++
	}
}

// heartbeatLoad is the heartbeat scenario: clients workers heartbeating
// random agents for d.
func heartbeatLoad(ctx context.Context, t *target, f *Fleet, clients int, d time.Duration, seed uint64) Stats {
	paths := heartbeatPaths(f)
	return forDuration(ctx, clients, d, seed, 1, func(rng *rand.Rand, recs []*recorder, buf *bytes.Buffer) {
		heartbeatOnce(ctx, t, paths, rng, recs[0], buf)
	})[0]
}

// lookupLoad is the lookup scenario: clients workers asking for random tools
// by name for d.
func lookupLoad(ctx context.Context, t *target, f *Fleet, clients int, d time.Duration, seed uint64) Stats {
	paths := lookupPaths(f)
	return forDuration(ctx, clients, d, seed, 1, func(rng *rand.Rand, recs []*recorder, _ *bytes.Buffer) {
		lat, st, n, err := t.do(ctx, http.MethodGet, paths[rng.IntN(len(paths))], nil, nil)
		recs[0].add(lat, st, n, err)
	})[0]
}

// minListRequests is how many GET /tools the list scenario sends at least,
// however long each takes.
const minListRequests = 3

// listLoad is the list scenario: one client reading the whole grouped tool
// listing over and over for d (at least minListRequests times), then the
// whole instance list once.
func listLoad(ctx context.Context, t *target, d time.Duration) (tools, instances Stats) {
	rec := newRecorder()
	start := time.Now()
	deadline := start.Add(d)
	for i := 0; ctx.Err() == nil && (i < minListRequests || time.Now().Before(deadline)); i++ {
		lat, st, n, err := t.do(ctx, http.MethodGet, "/tools", nil, nil)
		rec.add(lat, st, n, err)
	}
	tools = merge(time.Since(start), rec)

	rec = newRecorder()
	lat, st, n, err := t.do(ctx, http.MethodGet, "/instances", nil, nil)
	rec.add(lat, st, n, err)
	return tools, merge(lat, rec)
}

// mixedLoad is the mixed scenario: clients workers of which each request is
// a lookup of a random tool with probability 1/10 and a heartbeat otherwise.
// It returns the heartbeats, the lookups and both together.
func mixedLoad(ctx context.Context, t *target, f *Fleet, clients int, d time.Duration, seed uint64) (hb, lookup, all Stats) {
	hbPaths, lkPaths := heartbeatPaths(f), lookupPaths(f)
	s := forDuration(ctx, clients, d, seed, 2, func(rng *rand.Rand, recs []*recorder, buf *bytes.Buffer) {
		if rng.IntN(10) == 0 {
			lat, st, n, err := t.do(ctx, http.MethodGet, lkPaths[rng.IntN(len(lkPaths))], nil, nil)
			recs[1].add(lat, st, n, err)
			return
		}
		heartbeatOnce(ctx, t, hbPaths, rng, recs[0], buf)
	})
	return s[0], s[1], s[2]
}

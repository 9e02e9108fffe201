// metrics.go keeps the registry's counters for monitoring, with atomics
// only (a heartbeat still allocates nothing), and Metrics, a snapshot of
// them that an exporter reads at each scrape (the metrics package turns it
// into Prometheus metrics; the library itself depends on no metrics
// library): writes by kind, heartbeats and refreshes, expiries and
// deletions, refusals, parked blocking queries and event streams, store
// writes with their latency, and HTTP requests by route and status with a
// duration histogram.

package registry

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/julienschmidt/httprouter"
)

// LatencyBounds are the upper bounds, in seconds, of the buckets of every
// Histogram in Metrics.
var LatencyBounds = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// Histogram is a distribution of durations in the buckets of LatencyBounds.
type Histogram struct {
	// Counts holds, per bound, how many observations were at most it
	// (cumulative, as Prometheus wants), and last the total count.
	Counts []uint64
	Sum    float64 // seconds
}

// Count is the number of observations.
func (h Histogram) Count() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// histogram is a Histogram updated with atomics.
type histogram struct {
	buckets [len14 + 1]atomic.Uint64 // one per bound, then +Inf
	sumNano atomic.Uint64
}

const len14 = 14 // len(LatencyBounds)

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	i, _ := slices.BinarySearch(LatencyBounds, s)
	h.buckets[i].Add(1)
	h.sumNano.Add(uint64(max(d, 0)))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Counts: make([]uint64, len(h.buckets)), Sum: float64(h.sumNano.Load()) / 1e9}
	var cum uint64
	for i := range h.buckets {
		cum += h.buckets[i].Load()
		out.Counts[i] = cum
	}
	return out
}

// RouteMetrics are the requests of one route and method.
type RouteMetrics struct {
	Method string
	Route  string         // the pattern, e.g. /instances/:id/heartbeat; "other" for unknown paths
	Status map[int]uint64 // requests by answer status
	Time   Histogram      // how long they took, blocking queries and streams included
}

// Metrics is a snapshot of the registry's counters. Counters only grow
// while the registry lives.
type Metrics struct {
	Registrations      uint64 // successful POST /instances (Register)
	Heartbeats         uint64 // successful heartbeats
	HeartbeatRefreshes uint64 // of which answered refresh (the others: ack)
	ToolPosts          uint64
	Deregistrations    uint64
	Purges             uint64 // hard deletes (Delete)
	Expiries           uint64 // instances that went inactive at their deadline
	Deletions          uint64 // records deleted: after their retention, to make room, or purged (Purges are a part)
	Refused            uint64 // requests refused for their identity (a wrong or missing key, a role, an owner)
	RateLimited        uint64 // requests answered 429 by the rate limits
	Waiters            int64  // blocking queries parked now
	Streams            int64  // GET /events streams open now
	StoreWrites        uint64 // writes to the Store or Cluster
	StoreErrors        uint64 // of which failed
	StoreTime          Histogram
	Requests           []RouteMetrics
}

// routeStats are the counters of one route and method.
type routeStats struct {
	method, route string
	status        [len(statusSlots) + 1]atomic.Uint64 // the last: any other status
	time          histogram
}

// statusSlots are the statuses counted each on its own.
var statusSlots = [...]int{200, 201, 204, 304, 400, 403, 404, 405, 408, 413, 415, 422, 429, 500, 503, 507}

func statusSlot(code int) int {
	for i, c := range statusSlots {
		if c == code {
			return i
		}
	}
	return len(statusSlots)
}

// counters are the registry's counters.
type counters struct {
	registrations, toolPosts, deregistrations, purges atomic.Uint64
	// Heartbeats answered ack and refresh are counted apart, so that
	// each count only grows in every snapshot (one total and its refresh
	// part, read one after the other, could make acks seem to shrink).
	acks, refreshes                                atomic.Uint64
	refused, rateLimited, storeWrites, storeErrors atomic.Uint64
	waiters, streams                               atomic.Int64
	storeTime                                      histogram
	routes                                         []*routeStats // fixed once the handler is built
	other                                          routeStats    // paths that match no route
}

// Metrics returns a snapshot of the registry's counters.
func (r *Registry) Metrics() Metrics {
	c := &r.counts
	acks, refreshes := c.acks.Load(), c.refreshes.Load()
	m := Metrics{
		Registrations: c.registrations.Load(), Heartbeats: acks + refreshes, HeartbeatRefreshes: refreshes,
		ToolPosts: c.toolPosts.Load(), Deregistrations: c.deregistrations.Load(), Purges: c.purges.Load(),
		Refused: c.refused.Load(), RateLimited: c.rateLimited.Load(),
		Waiters: c.waiters.Load(), Streams: c.streams.Load(),
		StoreWrites: c.storeWrites.Load(), StoreErrors: c.storeErrors.Load(), StoreTime: c.storeTime.snapshot(),
	}
	r.mu.RLock()
	m.Expiries, m.Deletions = r.v.expiries, r.v.deletions
	r.mu.RUnlock()
	for _, rs := range append(slices.Clone(c.routes), &c.other) {
		rm := RouteMetrics{Method: rs.method, Route: rs.route, Status: map[int]uint64{}, Time: rs.time.snapshot()}
		for i := range rs.status {
			if n := rs.status[i].Load(); n > 0 {
				code := 0 // other
				if i < len(statusSlots) {
					code = statusSlots[i]
				}
				rm.Status[code] = n
			}
		}
		m.Requests = append(m.Requests, rm)
	}
	return m
}

// storeWrite records a write to the Store or Cluster that started at start.
func (c *counters) storeWrite(start time.Time, err error) {
	c.storeWrites.Add(1)
	if err != nil {
		c.storeErrors.Add(1)
	}
	c.storeTime.observe(time.Since(start))
}

// router is an httprouter that tags each route's handler with its
// counters, so that the answer writer knows which route it answers.
type router struct {
	*httprouter.Router
	c *counters
}

func (rt router) tag(method, path string, h httprouter.Handle) httprouter.Handle {
	rs := &routeStats{method: method, route: path}
	rt.c.routes = append(rt.c.routes, rs)
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if aw, ok := w.(*answerWriter); ok {
			aw.route = rs
		}
		h(w, req, ps)
	}
}

// GET and the others register a tagged handler.
func (rt router) GET(path string, h httprouter.Handle) { rt.Router.GET(path, rt.tag("GET", path, h)) }

// HEAD registers a tagged handler.
func (rt router) HEAD(path string, h httprouter.Handle) {
	rt.Router.HEAD(path, rt.tag("HEAD", path, h))
}

// POST registers a tagged handler.
func (rt router) POST(path string, h httprouter.Handle) {
	rt.Router.POST(path, rt.tag("POST", path, h))
}

// DELETE registers a tagged handler.
func (rt router) DELETE(path string, h httprouter.Handle) {
	rt.Router.DELETE(path, rt.tag("DELETE", path, h))
}

// answerWriter is the writer of every answer: it moves the write deadline
// forward before each write (Options.WriteTimeout; http.Server's
// WriteTimeout would bound the whole answer, cutting blocking queries,
// event streams and large listings), and records the status and the route
// for the counters and the request log.
type answerWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration // 0: no deadline
	code    int
	wrote   bool
	sent    int64 // bytes of the body written
	woken   bool  // a blocking query woken by a change (see block)
	route   *routeStats
}

func (w *answerWriter) extend() {
	if w.timeout > 0 {
		w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
	}
}

// WriteHeader records the status and passes it on.
func (w *answerWriter) WriteHeader(code int) {
	if !w.wrote {
		w.code, w.wrote = code, true
	}
	w.extend()
	w.ResponseWriter.WriteHeader(code)
}

// Write passes b on under a fresh deadline.
func (w *answerWriter) Write(b []byte) (int, error) {
	w.wrote = true
	w.extend()
	n, err := w.ResponseWriter.Write(b)
	w.sent += int64(n)
	return n, err
}

// Flush passes streaming answers through.
func (w *answerWriter) Flush() { w.FlushError() }

// FlushError is Flush with its error, which http.ResponseController's
// Flush returns: a stream learns at once that its client is gone.
func (w *answerWriter) FlushError() error {
	w.extend()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection.
func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// done counts the answer.
func (c *counters) done(w *answerWriter, start time.Time) {
	rs := w.route
	if rs == nil {
		rs = &c.other
	}
	rs.status[statusSlot(w.code)].Add(1)
	rs.time.observe(time.Since(start))
	if w.code == http.StatusTooManyRequests {
		c.rateLimited.Add(1)
	}
}

// routeOf is the route a request was answered by, for logs.
func (w *answerWriter) routeOf() string {
	if w.route == nil {
		return "other"
	}
	return w.route.route
}

// timedStore counts and times the writes to a Store.
type timedStore struct {
	Store
	c *counters
}

func (s timedStore) Put(ctx context.Context, rec Record) error {
	start := time.Now()
	err := s.Store.Put(ctx, rec)
	s.c.storeWrite(start, err)
	return err
}

func (s timedStore) SetStates(ctx context.Context, states []State) error {
	start := time.Now()
	err := s.Store.SetStates(ctx, states)
	s.c.storeWrite(start, err)
	return err
}

func (s timedStore) Touch(ctx context.Context, seen []Seen) error {
	start := time.Now()
	err := s.Store.Touch(ctx, seen)
	s.c.storeWrite(start, err)
	return err
}

func (s timedStore) Delete(ctx context.Context, ids []string) error {
	start := time.Now()
	err := s.Store.Delete(ctx, ids)
	s.c.storeWrite(start, err)
	return err
}

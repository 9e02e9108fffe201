// Package metrics exports a registry's state and counters to Prometheus:
// Collector reads Registry.Metrics, Stats, Health, PendingWrites,
// ExpiryGuard and ClusterRevision at each scrape and turns them into
// constant metrics (so that nothing is added to the registry's hot paths),
// and Handler serves them at /metrics with the Go and process collectors,
// from a prometheus.Registry of its own (never the global default one).
//
// It is a module of its own, github.com/runspec/registry/metrics, so that a
// program that embeds the registry downloads client_golang only if it
// asks for this package.
//
//	mux.Handle("/metrics", reg.RequireRead(metrics.Handler(reg, metrics.Options{Version: version})))
//
// Every name starts with runspec_registry_; counters end in _total, and
// durations are in seconds. docs/monitoring.md lists them with example
// alerts.
package metrics

import (
	"maps"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/runspec/registry"
)

// Options configures a Collector and Handler.
type Options struct {
	// Version, if not empty, is exported as
	// runspec_registry_build_info{version="…"} 1.
	Version string
}

const ns = "runspec_registry_"

// Collector is a prometheus.Collector of one Registry. It keeps no state:
// each Collect reads the registry afresh.
type Collector struct {
	reg  *registry.Registry
	opts Options
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a Collector of reg, to register on a
// prometheus.Registry of the caller's (Handler makes one of its own).
func NewCollector(reg *registry.Registry, opts Options) *Collector {
	return &Collector{reg: reg, opts: opts}
}

// Handler returns the /metrics handler of reg: its Collector with the Go
// and process collectors, on a prometheus.Registry of its own. It does not
// guard itself: wrap it in reg.RequireRead where reads need an identity.
func Handler(reg *registry.Registry, opts Options) http.Handler {
	preg := prometheus.NewRegistry()
	preg.MustRegister(
		NewCollector(reg, opts),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(preg, promhttp.HandlerOpts{
		// A scrape that fails in part still shows the rest.
		ErrorHandling: promhttp.ContinueOnError,
		// Scrapes are cheap but read every record for the counts:
		// concurrent ones beyond a few queue up as 503s.
		MaxRequestsInFlight: 4,
	})
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(ns+name, help, labels, nil)
}

// The metrics, in the order of docs/monitoring.md.
var (
	buildInfo = desc("build_info", "The version of the program serving the registry, as a label; always 1.", "version")

	instances = desc("instances", "Instances held, by state: active, or inactive (kept until the retention ends).", "state")
	tools     = desc("tools", "Distinct tool names that the instances held offer.")
	hosts     = desc("hosts", "Distinct (host, agent name) pairs of the instances held.")

	registrations   = desc("registrations_total", "Successful registrations (POST /instances).")
	heartbeats      = desc("heartbeats_total", "Successful heartbeats, by answer: ack, or refresh (the agent is asked to post its tools).", "answer")
	toolPosts       = desc("tool_posts_total", "Tool lists posted (POST /instances/{id}/tools).")
	deregistrations = desc("deregistrations_total", "Deregistrations (DELETE /instances/{id}): the record is kept, inactive.")
	purges          = desc("purges_total", "Records purged by an admin (DELETE /instances/{id}?purge=true).")
	expiries        = desc("expiries_total", "Instances that went inactive because their heartbeats stopped (3 missed intervals).")
	deletions       = desc("deletions_total", "Records deleted: after the retention, to make room, or purged.")

	refused     = desc("refused_requests_total", "Requests refused for who sent them: a wrong or missing key, a role, an owner, a cross-origin browser request.")
	rateLimited = desc("rate_limited_requests_total", "Requests answered 429: over a rate limit, or too many wrong keys from one address.")

	waiters = desc("blocking_queries", "Blocking queries (?index=&wait=) parked now, waiting for a change.")
	streams = desc("event_streams", "GET /events streams (Server-Sent Events clients) open now.")

	storeWrites = desc("store_writes_total", "Writes to the store (the data file) or the cluster (etcd).")
	storeErrors = desc("store_write_errors_total", "Writes to the store or the cluster that failed.")
	storeTime   = desc("store_write_duration_seconds", "How long writes to the store or the cluster took.")

	requests    = desc("http_requests_total", "HTTP requests answered, by route (the pattern, or other), method and status.", "route", "method", "status")
	requestTime = desc("http_request_duration_seconds", "How long HTTP requests took to answer, by route and method; blocking queries and event streams included.", "route", "method")

	clusterReachable = desc("cluster_reachable", "1 while this replica reaches its cluster (etcd) and its change stream is current, else 0 (writes answer 503, reads are stale). Replicas only.")
	clusterRevision  = desc("cluster_revision", "The cluster (etcd) revision this replica's view has applied. Replicas only.")
	clusterLag       = desc("cluster_revision_lag", "Revisions this replica's view is behind the newest cluster (etcd) revision it has heard of (its writes', keep-alives' and watch's answers): near 0 while its change stream keeps up. Replicas only.")

	pendingWrites = desc("pending_writes", "Writes the registry made on its own (expiries, deletions, revivals) that its store has not taken yet; retried until stored.")

	guardOn   = desc("expiry_guard_active", "1 while the mass-expiry guard holds expiries (too many instances going silent at once), else 0.")
	guardHeld = desc("expiry_guard_held_instances", "Instances the mass-expiry guard keeps active past their deadline.")
)

// Describe sends the descriptions of every metric the Collector may send.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{buildInfo, instances, tools, hosts,
		registrations, heartbeats, toolPosts, deregistrations, purges, expiries, deletions,
		refused, rateLimited, waiters, streams, storeWrites, storeErrors, storeTime,
		requests, requestTime, clusterReachable, clusterRevision, clusterLag, pendingWrites, guardOn, guardHeld} {
		ch <- d
	}
}

// Collect reads the registry and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	if c.opts.Version != "" {
		gauge(buildInfo, 1, c.opts.Version)
	}

	st := c.reg.Stats()
	gauge(instances, float64(st.Active), "active")
	gauge(instances, float64(st.Instances-st.Active), "inactive")
	gauge(tools, float64(st.Tools))
	gauge(hosts, float64(st.Hosts))

	m := c.reg.Metrics()
	counter(registrations, m.Registrations)
	counter(heartbeats, m.Heartbeats-m.HeartbeatRefreshes, "ack")
	counter(heartbeats, m.HeartbeatRefreshes, "refresh")
	counter(toolPosts, m.ToolPosts)
	counter(deregistrations, m.Deregistrations)
	counter(purges, m.Purges)
	counter(expiries, m.Expiries)
	counter(deletions, m.Deletions)
	counter(refused, m.Refused)
	counter(rateLimited, m.RateLimited)
	gauge(waiters, float64(m.Waiters))
	gauge(streams, float64(m.Streams))
	counter(storeWrites, m.StoreWrites)
	counter(storeErrors, m.StoreErrors)
	ch <- histogram(storeTime, m.StoreTime)
	for _, rm := range m.Requests {
		method := rm.Method
		if method == "" {
			method = "other" // paths that match no route: any method
		}
		for _, code := range slices.Sorted(maps.Keys(rm.Status)) {
			status := "other" // a status the library does not count on its own
			if code != 0 {
				status = strconv.Itoa(code)
			}
			counter(requests, rm.Status[code], rm.Route, method, status)
		}
		ch <- histogram(requestTime, rm.Time, rm.Route, method)
	}

	if rev, ok := c.reg.ClusterRevision(); ok {
		reachable := 1.0
		if c.reg.Health() != nil {
			reachable = 0
		}
		gauge(clusterReachable, reachable)
		gauge(clusterRevision, float64(rev))
	}
	if lag, ok := c.reg.ClusterLag(); ok {
		gauge(clusterLag, float64(lag))
	}
	n, _ := c.reg.PendingWrites()
	gauge(pendingWrites, float64(n))
	g := c.reg.ExpiryGuard()
	on := 0.0
	if g.Guarded {
		on = 1
	}
	gauge(guardOn, on)
	gauge(guardHeld, float64(g.Held))
}

// histogram turns a registry.Histogram, cumulative in the buckets of
// registry.LatencyBounds and then the total count, into a constant one.
func histogram(d *prometheus.Desc, h registry.Histogram, labels ...string) prometheus.Metric {
	buckets := make(map[float64]uint64, len(registry.LatencyBounds))
	for i, le := range registry.LatencyBounds {
		if i < len(h.Counts) {
			buckets[le] = h.Counts[i]
		}
	}
	return prometheus.MustNewConstHistogram(d, h.Count(), h.Sum, buckets, labels...)
}

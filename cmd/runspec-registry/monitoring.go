// monitoring.go holds serve's operator endpoints: Prometheus metrics at
// /metrics (on the main listener, behind the read guard, or on a listener
// of their own with --metrics-addr; off with --metrics=false) and
// net/http/pprof on --debug-addr (off unless given, loopback only unless
// --debug-insecure).

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/metrics"
)

// monitoringFlags are serve's flags for metrics and profiling.
type monitoringFlags struct {
	Metrics       bool   `default:"true" negatable:"" env:"RUNSPEC_REGISTRY_METRICS" help:"Serve Prometheus metrics at /metrics (--metrics=false or --no-metrics: none). With --read-auth, /metrics on the main listener needs a key with the role read, agent or admin."`
	MetricsAddr   string `name:"metrics-addr" env:"RUNSPEC_REGISTRY_METRICS_ADDR" placeholder:"HOST:PORT" help:"Serve /metrics on this address only, over plain HTTP and without a key, instead of on the main listener: keep it on a private network."`
	DebugAddr     string `name:"debug-addr" env:"RUNSPEC_REGISTRY_DEBUG_ADDR" placeholder:"HOST:PORT" help:"Serve net/http/pprof at /debug/pprof/ on this address (off unless given; a loopback address unless --debug-insecure)."`
	DebugInsecure bool   `name:"debug-insecure" env:"RUNSPEC_REGISTRY_DEBUG_INSECURE" help:"Allow a --debug-addr that is not a loopback address: profiles show the process's memory and cost CPU, and need no key."`
}

// check applies the rules on the monitoring flags; set says which flags
// were given.
func (f monitoringFlags) check(set setFlags) error {
	if _, ok := set["metrics-addr"]; ok && !f.Metrics {
		return fmt.Errorf("%s conflicts with %s: metrics are off", set.describe("metrics-addr"), set.describe("metrics"))
	}
	if f.MetricsAddr != "" {
		if _, _, err := net.SplitHostPort(f.MetricsAddr); err != nil {
			return fmt.Errorf("%s %q: want HOST:PORT: %w", set.describe("metrics-addr"), f.MetricsAddr, err)
		}
	}
	if f.DebugAddr == "" {
		if f.DebugInsecure {
			return fmt.Errorf("%s needs --debug-addr", set.describe("debug-insecure"))
		}
		return nil
	}
	host, _, err := net.SplitHostPort(f.DebugAddr)
	if err != nil {
		return fmt.Errorf("%s %q: want HOST:PORT: %w", set.describe("debug-addr"), f.DebugAddr, err)
	}
	if !loopback(host) && !f.DebugInsecure {
		return fmt.Errorf("%s %q is not a loopback address: profiles show the process's memory and need no key; "+
			"listen on 127.0.0.1 or give --debug-insecure", set.describe("debug-addr"), f.DebugAddr)
	}
	return nil
}

// loopback reports whether host names only the loopback interface ("" and
// 0.0.0.0 mean every interface).
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// monitoring is what start set up: the handler of the main listener, and
// the servers of --metrics-addr and --debug-addr.
type monitoring struct {
	servers []*http.Server
	done    chan error // one value per server, when it stops
}

// start listens on --metrics-addr and --debug-addr, if given, and returns
// main wrapped so that it serves /metrics too when metrics are on and have
// no address of their own.
func (f monitoringFlags) start(reg *registry.Registry, main http.Handler, timeouts serverTimeouts, log *slog.Logger) (*monitoring, http.Handler, error) {
	m := &monitoring{done: make(chan error, 2)}
	var mh http.Handler
	if f.Metrics {
		mh = metrics.Handler(reg, metrics.Options{Version: buildVersion()})
	}
	if mh != nil && f.MetricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", mh)
		if err := m.serve(f.MetricsAddr, mux, timeouts, 30*time.Second, "metrics listening", "/metrics", log); err != nil {
			return nil, nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	} else if mh != nil {
		main = withMetrics(main, reg.RequireRead(mh))
	}
	if f.DebugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		// pprof refuses profiles as long as the write timeout: allow 5 minutes.
		if err := m.serve(f.DebugAddr, mux, timeouts, 5*time.Minute+10*time.Second, "debug listening", "/debug/pprof/", log); err != nil {
			m.shutdown(time.Second)
			return nil, nil, fmt.Errorf("--debug-addr: %w", err)
		}
	}
	return m, main, nil
}

// withMetrics serves GET and HEAD /metrics with mh and everything else
// with next. /metrics answers OPTIONS and other methods as the API's
// routes do: its Allow, or 405 with a JSON detail.
func withMetrics(next, mh http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/metrics" {
			next.ServeHTTP(w, req)
			return
		}
		switch req.Method {
		case http.MethodGet, http.MethodHead:
			mh.ServeHTTP(w, req)
		case http.MethodOptions:
			w.Header().Set("Allow", "GET, HEAD, OPTIONS") // 200, as the API's routes answer it
		default:
			w.Header().Set("Allow", "GET, HEAD, OPTIONS")
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusMethodNotAllowed)
			w.Write([]byte(`{"detail":"Method Not Allowed"}`))
		}
	})
}

// serverTimeouts are the main listener's limits, which the operator
// endpoints share.
type serverTimeouts struct {
	header, idle time.Duration
}

// serve listens on addr and serves h there until shutdown, logging msg
// with the URL of path.
func (m *monitoring) serve(addr string, h http.Handler, t serverTimeouts, write time.Duration, msg, path string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.header,
		ReadTimeout:       t.header, // these endpoints take no bodies
		WriteTimeout:      write,
		IdleTimeout:       t.idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          serverErrorLog(log),
	}
	m.servers = append(m.servers, srv)
	go func() { m.done <- srv.Serve(ln) }()
	log.Info(msg, "url", "http://"+ln.Addr().String()+path)
	return nil
}

// shutdown stops the servers, waiting up to timeout for requests in flight.
func (m *monitoring) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	for _, srv := range m.servers {
		errs = append(errs, srv.Shutdown(ctx))
	}
	for range m.servers {
		if err := <-m.done; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	m.servers = nil
	return errors.Join(errs...)
}

// serve.go holds the serve command: its flags, copying them into
// registry.Options, listening, and its life under signals (SIGINT and
// SIGTERM shut down gracefully, SIGHUP reloads and keeps serving).

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/runspec/registry"
)

// serveCmd is the serve command: its flags, and Run.
type serveCmd struct {
	Host               string        `default:"0.0.0.0" env:"RUNSPEC_REGISTRY_HOST" help:"Address to listen on."`
	Port               int           `default:"8765" env:"RUNSPEC_REGISTRY_PORT" help:"Port to listen on (0: any free port, logged at start)."`
	APIKey             *string       `name:"api-key" env:"RUNSPEC_REGISTRY_API_KEY" help:"API key required on write requests (X-API-Key). Prefer the environment or --api-key-file: a flag shows in ps."`
	APIKeyFile         string        `name:"api-key-file" env:"RUNSPEC_REGISTRY_API_KEY_FILE" type:"path" help:"File holding the API key (surrounding white space is ignored)."`
	SSLKeyfile         string        `name:"ssl-keyfile" env:"RUNSPEC_REGISTRY_SSL_KEYFILE" type:"path" help:"TLS private key (PEM); with --ssl-certfile serves HTTPS."`
	SSLCertfile        string        `name:"ssl-certfile" env:"RUNSPEC_REGISTRY_SSL_CERTFILE" type:"path" help:"TLS certificate chain (PEM)."`
	SSLCACerts         string        `name:"ssl-ca-certs" env:"RUNSPEC_REGISTRY_SSL_CA_CERTS" type:"path" help:"CAs (PEM) that sign agents' client certificates; a verified certificate is an identity with the roles agent and read."`
	SSLCertReqs        string        `name:"ssl-cert-reqs" default:"none" env:"RUNSPEC_REGISTRY_SSL_CERT_REQS" help:"Client certificates: none, optional or required (also 0, 1, 2). Keep optional while agents use keys."`
	BindCertToHost     bool          `name:"bind-cert-to-host" env:"RUNSPEC_REGISTRY_BIND_CERT_TO_HOST" help:"A client certificate registers only instances whose host is one of its DNS names (or the first label of one)."`
	KeysFile           string        `name:"keys-file" env:"RUNSPEC_REGISTRY_KEYS_FILE" type:"path" help:"Keys with names and roles, one a line: NAME ROLES SECRET [hosts=PATTERNS] (SECRET or sha256:HEX). Reloaded on SIGHUP."`
	ReadAuth           bool          `name:"read-auth" env:"RUNSPEC_REGISTRY_READ_AUTH" help:"Reads (listings, lookups, exports, events) need a key or certificate with the role read, agent or admin. /health stays open."`
	AuthFailures       int           `name:"auth-failures" default:"30" env:"RUNSPEC_REGISTRY_AUTH_FAILURES" help:"Requests with a wrong or missing key one client address may make per minute before 429 (0: no limit); a good key is never held back."`
	PurgeInterval      time.Duration `default:"60" type:"interval" env:"RUNSPEC_REGISTRY_PURGE_INTERVAL" help:"Interval between backstop sweeps (seconds, or a duration such as 90s); expiry itself happens at each deadline."`
	HeartbeatInterval  time.Duration `default:"30s" type:"interval" env:"RUNSPEC_REGISTRY_HEARTBEAT_INTERVAL" help:"Heartbeat interval assumed for agents that do not send one; inactive after 3 missed."`
	RetainInactive     time.Duration `default:"72h" type:"interval" env:"RUNSPEC_REGISTRY_RETAIN_INACTIVE" help:"How long inactive records are kept (0: forever)."`
	MaxBodyBytes       int64         `default:"1048576" env:"RUNSPEC_REGISTRY_MAX_BODY_BYTES" help:"Largest request body; larger ones get 413."`
	MaxTools           int           `default:"10000" env:"RUNSPEC_REGISTRY_MAX_TOOLS" help:"Most tools one instance may post."`
	MaxInstances       int           `default:"1000000" env:"RUNSPEC_REGISTRY_MAX_INSTANCES" help:"Most records kept; at the limit a new id deletes the oldest inactive record, and when all are active registering a new id answers 507."`
	HeaderTimeout      time.Duration `default:"10s" type:"interval" env:"RUNSPEC_REGISTRY_HEADER_TIMEOUT" help:"How long a client may take to send a request's headers."`
	BodyTimeout        time.Duration `default:"10s" type:"interval" env:"RUNSPEC_REGISTRY_BODY_TIMEOUT" help:"How long a client may take to send a write's body (then 408)."`
	WriteTimeout       time.Duration `default:"10s" type:"interval" env:"RUNSPEC_REGISTRY_WRITE_TIMEOUT" help:"How long each write of an answer may take: a client that stops reading is dropped (the deadline moves with every chunk, so long listings, blocking queries and event streams are not cut)."`
	IdleTimeout        time.Duration `default:"120s" type:"interval" env:"RUNSPEC_REGISTRY_IDLE_TIMEOUT" help:"How long an idle keep-alive connection is kept."`
	ExpiryGuard        float64       `name:"expiry-guard" env:"RUNSPEC_REGISTRY_EXPIRY_GUARD" help:"Percent: when more than this share of the active instances would go inactive within one default TTL, stop expiring until they come back (0: off; not with --store etcd)."`
	ExpiryGuardMax     time.Duration `name:"expiry-guard-max" default:"15m" type:"interval" env:"RUNSPEC_REGISTRY_EXPIRY_GUARD_MAX" help:"The longest the expiry guard holds expiries."`
	NotifyInterval     time.Duration `default:"20ms" type:"interval" env:"RUNSPEC_REGISTRY_NOTIFY_INTERVAL" help:"Shortest time between two wake-ups of watchers (blocking queries, event streams): changes closer together are told together."`
	RateLimitWrite     int           `default:"60" env:"RUNSPEC_REGISTRY_RATE_LIMIT_WRITE" help:"Register, tools and delete requests per minute per client address and route (0: off)."`
	RateLimitHeartbeat int           `default:"120" env:"RUNSPEC_REGISTRY_RATE_LIMIT_HEARTBEAT" help:"Heartbeats per minute per client address (0: off)."`
	RatePrefixFactor   int           `name:"rate-limit-prefix-factor" default:"100" env:"RUNSPEC_REGISTRY_RATE_LIMIT_PREFIX_FACTOR" help:"All addresses of one IPv6 /64 together get this many times the per-address limits (0: no such limit)."`
	TrustedProxies     []string      `env:"RUNSPEC_REGISTRY_TRUSTED_PROXIES" help:"CIDRs (or addresses) of proxies whose X-Forwarded-For names the client."`
	LogFormat          string        `default:"text" enum:"text,json" env:"RUNSPEC_REGISTRY_LOG_FORMAT" help:"Log format: text or json."`
	LogLevel           string        `default:"info" enum:"debug,info,warn,error" env:"RUNSPEC_REGISTRY_LOG_LEVEL" help:"Log level: debug shows every read and heartbeat."`
	CheckpointInterval time.Duration `default:"5s" type:"interval" env:"RUNSPEC_REGISTRY_CHECKPOINT_INTERVAL" help:"How often heartbeat times go to the store: a crash of a file store may lose that much last_seen; with etcd, other replicas show last_seen that much late."`
	ShutdownTimeout    time.Duration `default:"10s" type:"interval" env:"RUNSPEC_REGISTRY_SHUTDOWN_TIMEOUT" help:"How long a graceful shutdown waits for requests in flight."`
	Reload             bool          `hidden:"" help:"Accepted for compatibility with the reference (a development option); ignored."`
	storeFlags         `embed:""`
	monitoringFlags    `embed:""`

	tls *liveTLS           // the TLS configuration, reloaded on SIGHUP
	reg *registry.Registry // the registry served, for reloads
}

// Run serves until ctx ends (SIGINT, SIGTERM), then shuts down gracefully
// and writes the last checkpoint. SIGHUP calls reload and goes on serving.
// Once the logger exists, the error that ends serve is logged too, so that
// a JSON log says why the registry stopped.
func (s *serveCmd) Run(ctx context.Context) error {
	// First, so that a SIGHUP while the store opens does not kill us.
	hangups := make(chan os.Signal, 1)
	signal.Notify(hangups, syscall.SIGHUP)
	defer signal.Stop(hangups)

	log, err := newLogger(os.Stderr, s.LogFormat, s.LogLevel)
	if err != nil {
		return err
	}
	routeLibraryLogs(log)
	if err := s.serve(ctx, log, hangups); err != nil {
		log.Error("exiting", "err", err)
		return loggedError{err}
	}
	return nil
}

// loggedError is an error that serve has logged already: main exits with
// it without printing it again.
type loggedError struct{ err error }

// Error is the error's own text.
func (e loggedError) Error() string { return e.err.Error() }

// Unwrap returns the error that was logged.
func (e loggedError) Unwrap() error { return e.err }

// serve is Run once the logger is set up.
func (s *serveCmd) serve(ctx context.Context, log *slog.Logger, hangups <-chan os.Signal) error {
	if s.Reload {
		log.Warn("--reload is a development option of the reference server; ignored")
	}
	opts, err := s.options(log)
	if err != nil {
		return err
	}
	closeStore, err := s.open(ctx, log, &opts)
	if err != nil {
		return err
	}
	defer closeStore() // after Run's last checkpoint
	began := time.Now()
	reg, err := registry.New(opts)
	if err != nil {
		return err
	}
	s.reg = reg
	st := reg.Stats()
	log.Info("records loaded", "from", s.storeName(), "records", st.Instances, "active", st.Active,
		"seconds", time.Since(began).Seconds())
	warnIfOpen(log, s.Host, opts)
	mon, h, err := s.monitoringFlags.start(reg, withDashboard(reg), serverTimeouts{s.HeaderTimeout, s.IdleTimeout}, log)
	if err != nil {
		return err
	}
	defer mon.shutdown(s.ShutdownTimeout)
	srv, ln, err := s.listen(h, log)
	if err != nil {
		return err
	}
	srv.RegisterOnShutdown(reg.ReleaseWaiters) // blocking queries answer at once
	scheme := "http"
	if srv.TLSConfig != nil {
		scheme = "https"
	}
	log.Info("listening", "url", scheme+"://"+ln.Addr().String(), "version", buildVersion(),
		"api_key", opts.APIKey != "", "keys", len(opts.Keys), "client_certificates", s.SSLCertReqs,
		"read_auth", opts.ReadAuth, "rate_limit_write", opts.RateLimitWrite, "rate_limit_heartbeat", opts.RateLimitHeartbeat)

	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- reg.Run(runCtx) }()
	serveDone := make(chan error, 1)
	go func() {
		if srv.TLSConfig != nil {
			serveDone <- srv.ServeTLS(ln, "", "")
		} else {
			serveDone <- srv.Serve(ln)
		}
	}()

serving:
	for {
		select {
		case err = <-serveDone:
			break serving
		case <-hangups:
			if rerr := s.reload(ctx, log); rerr != nil {
				log.Error("reload failed; serving on with what was loaded before", "err", rerr)
			}
		case <-ctx.Done():
			log.Info("shutting down")
			sctx, cancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
			err = srv.Shutdown(sctx)
			cancel()
			break serving
		}
	}
	stopRun()
	if rerr := <-runDone; rerr != nil {
		log.Error("final checkpoint failed", "err", rerr)
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// reload is the reload hook, called on each SIGHUP while serving: the keys
// file and the TLS certificate, key and CAs are read again and take effect
// for the requests and connections that come next; those in flight finish
// with what they started with. If anything fails to load, what was loaded
// before stays, and the error is logged; serving goes on.
func (s *serveCmd) reload(ctx context.Context, log *slog.Logger) error {
	// Load everything first, then apply: a reload that fails changes
	// nothing. SetKeys is the last check that can refuse (one secret
	// given to two names), so TLS is installed only after it.
	var cfg *tls.Config
	if s.tls != nil {
		var err error
		if cfg, err = s.tls.files.load(); err != nil {
			return err
		}
	}
	var keys []registry.Key
	if s.KeysFile != "" {
		var err error
		if keys, err = loadKeys(s.KeysFile, log); err != nil {
			return err
		}
		if err := s.reg.SetKeys(keys); err != nil {
			return err
		}
	}
	if cfg != nil {
		s.tls.cur.Store(cfg)
	}
	log.Info("reloaded (SIGHUP)", "keys", len(keys), "tls", s.tls != nil)
	return nil
}

// options copies the flags into registry.Options; New validates them.
func (s *serveCmd) options(log *slog.Logger) (registry.Options, error) {
	key, err := s.apiKey()
	if err != nil {
		return registry.Options{}, err
	}
	proxies, err := parsePrefixes(s.TrustedProxies)
	if err != nil {
		return registry.Options{}, err
	}
	if s.PurgeInterval <= 0 {
		return registry.Options{}, fmt.Errorf("--purge-interval must be positive, not %v", s.PurgeInterval)
	}
	retain := s.RetainInactive
	if retain == 0 {
		retain = -1 // the library's "forever"
	} else if retain < 0 {
		return registry.Options{}, errors.New("--retain-inactive must not be negative")
	}
	if s.CheckpointInterval <= 0 {
		return registry.Options{}, errors.New("--checkpoint-interval must be positive")
	}
	if s.MaxBodyBytes <= 0 || s.MaxTools <= 0 || s.MaxInstances <= 0 {
		return registry.Options{}, errors.New("--max-body-bytes, --max-tools and --max-instances must be positive")
	}
	if s.HeaderTimeout <= 0 || s.BodyTimeout <= 0 || s.WriteTimeout <= 0 || s.IdleTimeout <= 0 || s.NotifyInterval <= 0 {
		return registry.Options{}, errors.New("--header-timeout, --body-timeout, --write-timeout, --idle-timeout and --notify-interval must be positive")
	}
	if s.AuthFailures < 0 || s.RatePrefixFactor < 0 {
		return registry.Options{}, errors.New("--auth-failures and --rate-limit-prefix-factor must not be negative")
	}
	auth, err := certReqs(s.SSLCertReqs)
	if err != nil {
		return registry.Options{}, err
	}
	keys, err := loadKeys(s.KeysFile, log)
	if err != nil {
		return registry.Options{}, err
	}
	return registry.Options{
		Keys:                  keys,
		ClientCertificates:    auth != tls.NoClientCert,
		BindCertToHost:        s.BindCertToHost,
		ReadAuth:              s.ReadAuth,
		AuthFailures:          orNone(s.AuthFailures),
		MaxInstances:          s.MaxInstances,
		ExpiryGuard:           s.ExpiryGuard,
		ExpiryGuardMax:        s.ExpiryGuardMax,
		BodyTimeout:           s.BodyTimeout,
		WriteTimeout:          s.WriteTimeout,
		NotifyInterval:        s.NotifyInterval,
		RateLimitPrefixFactor: orNone(s.RatePrefixFactor),
		HeartbeatInterval:     s.HeartbeatInterval,
		CheckpointInterval:    s.CheckpointInterval,
		RetainInactive:        retain,
		PurgeInterval:         s.PurgeInterval,
		MaxTools:              s.MaxTools,
		MaxBodyBytes:          s.MaxBodyBytes,
		APIKey:                key,
		RateLimitWrite:        s.RateLimitWrite,
		RateLimitHeartbeat:    s.RateLimitHeartbeat,
		TrustedProxies:        proxies,
		Logger:                log,
		Version:               buildVersion(),
	}, nil
}

// orNone turns a flag's 0 (off) into the library's negative (none).
func orNone(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// apiKey returns the key from --api-key (or its environment variable) or
// --api-key-file. A key that is given but empty is an error: it would either
// open or lock the registry, and neither is what the operator meant.
func (s *serveCmd) apiKey() (string, error) {
	if s.APIKey != nil && s.APIKeyFile != "" {
		return "", errors.New("give the API key once: --api-key (or RUNSPEC_REGISTRY_API_KEY) or --api-key-file")
	}
	if s.APIKey != nil {
		if *s.APIKey == "" {
			return "", errors.New("the API key is empty: give a non-empty --api-key (or RUNSPEC_REGISTRY_API_KEY), or none to leave writes open")
		}
		return *s.APIKey, nil
	}
	if s.APIKeyFile != "" {
		b, err := os.ReadFile(s.APIKeyFile)
		if err != nil {
			return "", fmt.Errorf("reading --api-key-file: %w", err)
		}
		key := strings.TrimSpace(string(b))
		if key == "" {
			return "", fmt.Errorf("--api-key-file %s is empty", s.APIKeyFile)
		}
		return key, nil
	}
	return "", nil
}

func parsePrefixes(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither a CIDR nor an address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// listen opens the listening socket and prepares the server, with timeouts
// that stop slow clients from holding connections without cutting long
// answers (no write timeout: listings stream and later requests may wait).
// The server's own complaints (TLS handshakes, …) go to log.
func (s *serveCmd) listen(h http.Handler, log *slog.Logger) (*http.Server, net.Listener, error) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.HeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          serverErrorLog(log),
	}
	if s.SSLCertfile != "" { // checkFlags made sure the key goes with it
		auth, err := certReqs(s.SSLCertReqs)
		if err != nil {
			return nil, nil, err
		}
		s.tls, err = newLiveTLS(tlsFiles{cert: s.SSLCertfile, key: s.SSLKeyfile, cas: s.SSLCACerts, auth: auth})
		if err != nil {
			return nil, nil, err
		}
		srv.TLSConfig = s.tls.config()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))
	if err != nil {
		return nil, nil, err
	}
	return srv, ln, nil
}

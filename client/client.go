// client.go defines the Client, its Options and the one place where
// requests are made: URLs, the API key, timeouts, blocking-query parameters
// and the reading of answers.

package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/runspec/registry"
)

// Defaults used by New for zero Options fields.
const (
	DefaultRequestTimeout = 10 * time.Second // as the runspec agent
	DefaultWait           = 60 * time.Second
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultUserAgent      = "runspec-registry-client/1"
)

// Options configures a Client. The zero value talks to the registry over
// plain HTTP or HTTPS with the system's certificate authorities, without an
// API key.
type Options struct {
	// APIKey, if not empty, is sent as X-API-Key on every request. The
	// registry needs it on writes when it has a key; reads are open unless
	// a proxy in front of the registry says otherwise.
	APIKey string

	// HTTPClient makes the requests. If nil, defaults to a client with its
	// own transport (a clone of http.DefaultTransport) that trusts RootCAs or
	// CAFile. Its Timeout should be zero: each request gets a deadline from
	// RequestTimeout (plus Wait for blocking queries). It cannot be combined
	// with RootCAs or CAFile: configure TLS on its transport instead.
	HTTPClient *http.Client

	// RootCAs are the certificate authorities trusted for an https URL.
	// If nil, defaults to those of CAFile, or else the system's.
	RootCAs *x509.CertPool

	// CAFile is a PEM file of the certificate authorities to trust for an
	// https URL, instead of the system's (the runspec agent's
	// --registry-cert). If empty, RootCAs or the system's are used. It cannot
	// be combined with RootCAs.
	CAFile string

	// RequestTimeout bounds each request; a blocking query gets its Wait on
	// top. If zero, defaults to 10s.
	RequestTimeout time.Duration

	// Wait is how long a watch's blocking query waits for a change before
	// the registry answers anyway. If zero, defaults to 60s; it is at most
	// registry.MaxWait (5m).
	Wait time.Duration

	// MinBackoff and MaxBackoff bound the wait between retries, which grows
	// exponentially from MinBackoff up to MaxBackoff with random jitter, so
	// that a fleet does not retry in step when the registry comes back.
	// If zero, they default to 500ms and 30s.
	MinBackoff, MaxBackoff time.Duration

	// Rand returns a random number in [0, 1) for jitter. It must be safe for
	// concurrent use. If nil, defaults to math/rand/v2.Float64.
	Rand func() float64

	// Logger receives retries and state changes of watches and agents (at
	// warn, info and debug level). If nil, nothing is logged.
	Logger *slog.Logger

	// UserAgent is sent as User-Agent. If empty, defaults to
	// "runspec-registry-client/1".
	UserAgent string
}

// A Client talks to one registry over HTTP. Create one with New; its
// methods are safe for concurrent use. It starts no goroutine.
type Client struct {
	base      string // scheme://host[:port][/prefix], no trailing slash
	opts      Options
	hc        *http.Client
	log       *slog.Logger
	userAgent string
}

// New returns a Client for the registry at baseURL (http or https; a path
// is a prefix under which the registry is mounted).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("client: base URL %q: scheme must be http or https", baseURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("client: base URL %q: no host", baseURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("client: base URL %q: must have no query or fragment", baseURL)
	}
	if opts.HTTPClient != nil && (opts.RootCAs != nil || opts.CAFile != "") {
		return nil, errors.New("client: RootCAs and CAFile cannot be combined with HTTPClient: configure its transport")
	}
	if opts.RootCAs != nil && opts.CAFile != "" {
		return nil, errors.New("client: RootCAs and CAFile cannot be combined")
	}
	if opts.RequestTimeout < 0 || opts.Wait < 0 || opts.MinBackoff < 0 || opts.MaxBackoff < 0 {
		return nil, errors.New("client: timeouts and back-off bounds must not be negative")
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.Wait == 0 {
		opts.Wait = DefaultWait
	}
	opts.Wait = min(opts.Wait, registry.MaxWait)
	if opts.MinBackoff == 0 {
		opts.MinBackoff = DefaultMinBackoff
		if opts.MaxBackoff != 0 {
			opts.MinBackoff = min(opts.MinBackoff, opts.MaxBackoff)
		}
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	if opts.MaxBackoff < opts.MinBackoff {
		return nil, fmt.Errorf("client: MaxBackoff %v is below MinBackoff %v", opts.MaxBackoff, opts.MinBackoff)
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	c := &Client{
		base:      strings.TrimRight(u.String(), "/"),
		opts:      opts,
		hc:        opts.HTTPClient,
		log:       opts.Logger,
		userAgent: opts.UserAgent,
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	if c.hc == nil {
		roots := opts.RootCAs
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("client: CA file: %w", err)
			}
			roots = x509.NewCertPool()
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("client: CA file %s: no PEM certificate found", opts.CAFile)
			}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// CloseIdleConnections closes the idle keep-alive connections of the
// client's transport (with Options.HTTPClient, of that client).
func (c *Client) CloseIdleConnections() { c.hc.CloseIdleConnections() }

// A response is an answer read whole.
type response struct {
	status int
	index  uint64 // X-Registry-Index, 0 if absent
	etag   string
	header http.Header
	body   []byte
}

// A call is one request.
type call struct {
	method string
	path   string // escaped, relative to the base URL, starting with "/"
	query  url.Values
	body   []byte // nil: no body

	// Blocking query: index and wait are sent when blocking.
	blocking bool
	index    uint64
	etag     string // sent as If-None-Match
}

func (k *call) String() string { return k.method + " " + k.path }

// do makes a call and reads its answer, whatever its status. Only a failure
// to get an answer is an error.
func (c *Client) do(ctx context.Context, k *call) (*response, error) {
	q := k.query
	timeout := c.opts.RequestTimeout
	if k.blocking {
		q = url.Values{}
		for key, v := range k.query {
			q[key] = v
		}
		q.Set("index", strconv.FormatUint(k.index, 10))
		q.Set("wait", c.opts.Wait.String())
		timeout += c.opts.Wait + c.opts.Wait/16 // the registry's jitter
	}
	target := c.base + k.path
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if k.body != nil {
		body = bytes.NewReader(k.body)
	}
	req, err := http.NewRequestWithContext(ctx, k.method, target, body)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", k, err)
	}
	if k.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.userAgent)
	if c.opts.APIKey != "" {
		req.Header.Set("X-API-Key", c.opts.APIKey)
	}
	if k.etag != "" {
		req.Header.Set("If-None-Match", k.etag)
	}
	// Every request of the protocol is idempotent (writes replace or mark),
	// so the transport may replay one that failed on a keep-alive
	// connection the registry had closed (it restarted). The empty header
	// is not sent.
	req.Header["Idempotency-Key"] = nil
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: %w", k, unwrapURLError(err))
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("registry: %s: reading the answer: %w", k, err)
	}
	r := &response{status: resp.StatusCode, etag: resp.Header.Get("ETag"), header: resp.Header, body: b}
	if s := resp.Header.Get("X-Registry-Index"); s != "" {
		r.index, _ = strconv.ParseUint(s, 10, 64)
	}
	return r, nil
}

// unwrapURLError drops the *url.Error layer, whose text repeats the whole
// URL: the caller's error names the request already.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// call makes a call that must succeed with a 2xx status.
func (c *Client) call(ctx context.Context, k *call) (*response, error) {
	r, err := c.do(ctx, k)
	if err != nil {
		return nil, err
	}
	if r.status < 200 || r.status > 299 {
		return nil, newAPIError(k.String(), r)
	}
	return r, nil
}

// backoff returns the wait before retry n (from 0): a random duration in
// [MinBackoff, ceiling), where the ceiling doubles with each retry from
// 2×MinBackoff up to MaxBackoff. Even the first retry is jittered, so that
// agents that lost the registry together do not come back together.
func (c *Client) backoff(n int) time.Duration {
	return jitteredBackoff(n, c.opts.MinBackoff, c.opts.MaxBackoff, c.opts.Rand())
}

func jitteredBackoff(n int, lo, hi time.Duration, r float64) time.Duration {
	ceil := lo
	for i := 0; i <= n && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	return lo + time.Duration(r*float64(ceil-lo))
}

// sleep waits for d or until ctx ends, and reports whether ctx is still
// live.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

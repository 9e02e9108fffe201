// client.go is the HTTP side: the shared keep-alive client and one timed request against a target registry.

package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// requestTimeout bounds every request, so that every scenario ends.
const requestTimeout = 30 * time.Second

// newHTTPClient returns a client whose single transport keeps up to conns idle
// connections per host, so that every worker keeps its connection alive.
func newHTTPClient(conns int) *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2 * conns, // main and compare targets
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// No ForceAttemptHTTP2: with a custom dialer that keeps HTTPS on
		// HTTP/1.1, one connection per worker, like a fleet of agents.
	}
	return &http.Client{Transport: tr, Timeout: requestTimeout}
}

// target is one registry (or trivial server) under load.
type target struct {
	base string // scheme://host[:port][/prefix], no trailing slash
	key  string // X-API-Key, sent on every request when set
	hc   *http.Client
}

func newTarget(base, key string, hc *http.Client) *target {
	return &target{base: strings.TrimRight(base, "/"), key: key, hc: hc}
}

// do sends one request and reads the whole answer. A nil body sends no body
// at all (Content-Length 0), as the real agent's heartbeat does. The answer is
// read into keep when it is not nil, else discarded. The latency runs from
// sending until the body is fully read and closed.
func (t *target) do(ctx context.Context, method, path string, body []byte, keep *bytes.Buffer) (lat time.Duration, status int, n int64, err error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return 0, 0, 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t.key != "" {
		req.Header.Set("X-API-Key", t.key)
	}
	start := time.Now()
	resp, err := t.hc.Do(req)
	if err != nil {
		return time.Since(start), 0, 0, err
	}
	if keep != nil {
		keep.Reset()
		n, err = keep.ReadFrom(resp.Body)
	} else {
		n, err = io.Copy(io.Discard, resp.Body)
	}
	if cerr := resp.Body.Close(); err == nil {
		err = cerr
	}
	return time.Since(start), resp.StatusCode, n, err
}

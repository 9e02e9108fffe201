// trivial.go holds the trivial reference server: the fastest answer an HTTP registry could give, to compare a real one with.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// trivialHandler answers {"status":"ack"} to every request, after reading and
// discarding the request body as any real handler must.
func trivialHandler() http.Handler {
	ack := []byte(`{"status":"ack"}`)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(ack)
	})
}

// runTrivial serves the trivial handler on addr until ctx ends.
func runTrivial(ctx context.Context, addr string, log io.Writer) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(log, "trivial server listening on http://%s (interrupt to stop)\n", ln.Addr())
	return serveTrivial(ctx, ln)
}

// serveTrivial serves the trivial handler on ln until ctx ends, then shuts
// down gracefully. It closes ln.
func serveTrivial(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           trivialHandler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// profiled.go is the profiled server: the registry library served as the
// runspec-registry command serves it by default (a durable bolt store, the
// library's time limits, GOGC=50, the command's http.Server timeouts,
// rate limits off), with a CPU profile of the whole run, since the command
// serves no pprof. Profile a scenario with a load generator in another
// process, then read the profile with go tool pprof.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

// runProfiled serves the registry on addr, with its records in dataDir,
// until ctx ends, writing a CPU profile of the whole run to profile.
func runProfiled(ctx context.Context, addr, dataDir, profile string, log io.Writer) (err error) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50) // as the command
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	st, err := bolt.Open(filepath.Join(dataDir, "registry.db"), bolt.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	reg, err := registry.New(registry.Options{Store: st})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	f, err := os.Create(profile)
	if err != nil {
		ln.Close()
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	if err := pprof.StartCPUProfile(f); err != nil {
		ln.Close()
		return err
	}
	defer pprof.StopCPUProfile()

	srv := &http.Server{Handler: reg, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	srv.RegisterOnShutdown(reg.ReleaseWaiters)
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- reg.Run(runCtx) }()
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	fmt.Fprintf(log, "profiled registry on http://%s (pid %d), data in %s, CPU profile to %s (interrupt to stop)\n",
		ln.Addr(), os.Getpid(), dataDir, profile)
	select {
	case err = <-serveDone:
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(sctx)
		cancel()
	}
	stopRun()
	<-runDone
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

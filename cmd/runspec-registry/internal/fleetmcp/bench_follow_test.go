// bench_follow_test.go measures how the MCP server follows the registry
// at fleet scale (20,000 agents x 20 tools, 800 tool names, as
// bench_test.go builds it): the time to the first catalog, the time from
// a registration and from an expiry to notifications/tools/list_changed
// on a stdio client's wire, and the heap the server holds. It uses only
// what every version of the package has, so that it measures the code
// before a change as well (BENCHMARKS.md, "MCP").

package fleetmcp_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"runtime"
	"testing"
	"time"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
	"github.com/runspec/registry/run"
)

// heapInUse returns the heap in use after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// startFollowBench starts a server on the registry at url, through the
// Go client, as the command does.
func startFollowBench(b *testing.B, url string) (*fleetmcp.Server, func()) {
	b.Helper()
	c, err := client.New(url, client.Options{})
	if err != nil {
		b.Fatal(err)
	}
	r, _ := run.New(run.Options{})
	s, err := fleetmcp.New(fleetmcp.Options{Source: c, Runner: &fakeRun{r: r}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	return s, func() { cancel(); <-done; c.CloseIdleConnections() }
}

// wireWatch is a stdio client (newline-delimited JSON-RPC over pipes) that
// tells when notifications/tools/list_changed comes on its wire.
type wireWatch struct {
	changed chan time.Time
}

func newWireWatch(b *testing.B, s *fleetmcp.Server) *wireWatch {
	raw := newRawSession(b, s)
	w := &wireWatch{changed: make(chan time.Time, 64)}
	go func() {
		for {
			line, err := raw.r.ReadBytes('\n')
			if err != nil {
				return
			}
			if bytes.Contains(line, []byte(`"notifications/tools/list_changed"`)) {
				w.changed <- time.Now()
			}
		}
	}()
	return w
}

// next returns when the next list_changed came, at most 10 minutes on.
func (w *wireWatch) next(b *testing.B) time.Time {
	select {
	case t := <-w.changed:
		return t
	case <-time.After(10 * time.Minute):
		b.Fatal("no notifications/tools/list_changed within 10 minutes")
		return time.Time{}
	}
}

// quiet drains the notifications so far and waits until the last change
// is more than the notify interval old, so that the next one is not held
// back by it.
func (w *wireWatch) quiet(last time.Time) {
	time.Sleep(time.Until(last.Add(fleetmcp.DefaultNotifyInterval + 100*time.Millisecond)))
	for len(w.changed) > 0 {
		<-w.changed
	}
}

// BenchmarkFollow: at 20,000 agents x 20 tools (-short: 2,000), the first
// catalog (a server started on the fleet, until its listing is ready:
// p50-s), and the time from a registration (an agent with 20 of the
// fleet's tools, each then on one more host) and from that agent's expiry
// to list_changed on a stdio client's wire (reg-p50-ms, expiry-p50-ms),
// with the heap the server adds to the registry's (mcp-heap-MiB).
func BenchmarkFollow(b *testing.B) {
	reg := benchFleetScale(b)
	hs := httptest.NewServer(reg)
	b.Cleanup(func() { reg.ReleaseWaiters(); hs.Close() })
	base := heapInUse()
	b.Logf("heap in use by the registry: %d MiB", base>>20)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

	b.Run("first-catalog", func(b *testing.B) {
		b.ReportAllocs()
		var ds []time.Duration
		for b.Loop() {
			t := time.Now()
			s, stop := startFollowBench(b, hs.URL)
			<-s.Ready()
			ds = append(ds, time.Since(t))
			stop()
		}
		b.ReportMetric(ms(percentile(ds, 0.5))/1000, "p50-s")
	})

	b.Run("change-to-list_changed", func(b *testing.B) {
		s, stop := startFollowBench(b, hs.URL)
		defer stop()
		<-s.Ready()
		heap := float64(int64(heapInUse())-int64(base)) / (1 << 20)
		w := newWireWatch(b, s)
		ctx := context.Background()
		tools := make([]json.RawMessage, 20)
		var regs, exps []time.Duration
		last := time.Now()
		for i := 0; b.Loop(); i++ {
			w.quiet(last)
			id := fmt.Sprintf("late-%03d", i)
			for j := range tools {
				tools[j] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%03d","description":"Tool %d of the fleet: it does one thing well.",`+
					`"x-command":"/usr/local/bin/tool-%03d","x-autonomy":"autonomous","inputSchema":{"type":"object",`+
					`"properties":{"target":{"type":"string","description":"What to act on"},"dry_run":{"type":"boolean"}},"required":["target"]}}`,
					(i*20+j)%800, (i*20+j)%800, (i*20+j)%800))
			}
			t := time.Now()
			if err := reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: "host-" + id, HeartbeatInterval: time.Second}); err != nil {
				b.Fatal(err)
			}
			if err := reg.UpdateTools(ctx, id, tools); err != nil {
				b.Fatal(err)
			}
			last = w.next(b)
			regs = append(regs, last.Sub(t))
			// 3 s without a heartbeat: the agent is past its deadline.
			time.Sleep(time.Until(t.Add(3*time.Second + 100*time.Millisecond)))
			w.quiet(last)
			t = time.Now()
			if err := reg.Purge(ctx); err != nil {
				b.Fatal(err)
			}
			last = w.next(b)
			exps = append(exps, last.Sub(t))
		}
		b.ReportMetric(heap, "mcp-heap-MiB") // (reported after the loop, which resets the metrics)
		b.ReportMetric(ms(percentile(regs, 0.5)), "reg-p50-ms")
		b.ReportMetric(ms(percentile(exps, 0.5)), "expiry-p50-ms")
		b.Logf("registration to list_changed: %v; expiry to list_changed: %v", regs, exps)
	})
}

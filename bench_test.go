// bench_test.go measures the library at fleet scale: heartbeats, registration,
// tool lookups and full listings at 1k, 20k and 100k agents.

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/runspec/registry"
)

var benchSizes = []int{1000, 20000, 100000}

func BenchmarkHeartbeat(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			f := benchFleet{n, 20, 50}
			r := f.load(b)
			ids := f.ids()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if st, err := r.Heartbeat(ctx, ids[i%n], nil); err != nil || st != registry.Ack {
					b.Fatal(st, err)
				}
			}
		})
	}
}

func BenchmarkHeartbeatParallel(b *testing.B) {
	f := benchFleet{20000, 20, 50}
	r := f.load(b)
	ids := f.ids()
	var next atomic.Int64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := int(next.Add(7919))
		for pb.Next() {
			i++
			if _, err := r.Heartbeat(ctx, ids[i%len(ids)], nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRegister measures a registration with its 20-tool list.
func BenchmarkRegister(b *testing.B) {
	for _, n := range benchSizes[:2] {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			f := benchFleet{n, 20, 50}
			r := f.load(b)
			tools := make([][]json.RawMessage, n)
			for i := range tools {
				tools[i] = f.toolList(i)
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := i % n
				r.Register(ctx, registry.Registration{ID: f.id(k), Name: "agent-pkg", Version: "1", Host: f.host(k)})
				if err := r.UpdateTools(ctx, f.id(k), tools[k]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// discardWriter is a ResponseWriter that counts and drops the body.
type discardWriter struct {
	h    http.Header
	code int
	n    int64
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(c int)   { w.code = c }
func (w *discardWriter) Write(b []byte) (int, error) {
	w.n += int64(len(b))
	return len(b), nil
}

func serveBench(b *testing.B, h http.Handler, path string) {
	req := httptest.NewRequest("GET", path, nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		w.code, w.n = 200, 0
		clear(w.h)
		h.ServeHTTP(w, req)
		if w.code != 200 {
			b.Fatalf("GET %s: %d", path, w.code)
		}
	}
	b.ReportMetric(float64(w.n), "bytes/answer")
}

// BenchmarkToolLookup looks up tools in turn (not one hot tool): the cost
// of a lookup must not grow with the fleet.
func BenchmarkToolLookup(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			f := benchFleet{n, 20, 50}
			r := f.load(b)
			names := n * f.tools / f.share
			reqs := make([]*http.Request, min(names, 4096))
			for i := range reqs {
				reqs[i] = httptest.NewRequest("GET", fmt.Sprintf("/tools/tool-%04d", i*names/len(reqs)), nil)
			}
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w.code, w.n = 200, 0
				clear(w.h)
				r.ServeHTTP(w, reqs[i%len(reqs)])
				if w.code != 200 {
					b.Fatalf("GET %s: %d", reqs[i%len(reqs)].URL, w.code)
				}
			}
		})
	}
}

func BenchmarkListTools(b *testing.B) {
	for _, n := range benchSizes[:2] {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			r := benchFleet{n, 20, 50}.load(b)
			serveBench(b, r, "/tools")
		})
	}
}

func BenchmarkListInstances(b *testing.B) {
	for _, n := range benchSizes[:2] {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			r := benchFleet{n, 20, 50}.load(b)
			serveBench(b, r, "/instances")
		})
	}
}

// BenchmarkMemory reports the live heap of a loaded fleet (not a speed).
func BenchmarkMemory(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			var r *registry.Registry
			for i := 0; i < b.N; i++ {
				r = nil
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				r = benchFleet{n, 20, 50}.load(b)
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/(1<<20), "heapMB")
			}
			runtime.KeepAlive(r)
		})
	}
}

var _ io.Writer = (*discardWriter)(nil)

// BenchmarkExport writes the SuperPuTTY file of the fleet, streamed a chunk
// at a time as listings are.
func BenchmarkExport(b *testing.B) {
	for _, n := range benchSizes[:2] {
		b.Run(fmt.Sprintf("agents=%d", n), func(b *testing.B) {
			r := benchFleet{n, 20, 50}.load(b)
			serveBench(b, r, "/export/superputty?user=ops")
		})
	}
}

// BenchmarkExportFleet writes the fleet exports (Ansible, Rundeck JSON and
// YAML, ssh_config) of the fleet: 10 agent names, 20 tools per agent, each
// tool name on 50 hosts; with ?active=false, so that the answer does not
// shrink as the benchmark outlives the fleet's heartbeats.
func BenchmarkExportFleet(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		r := benchFleet{n, 20, 50}.load(b)
		for _, target := range []string{"/export/ansible?active=false&user=ops", "/export/rundeck?active=false&user=ops",
			"/export/rundeck?active=false&format=yaml&user=ops", "/export/ssh-config?active=false&user=ops"} {
			b.Run(fmt.Sprintf("agents=%d/%s", n, target), func(b *testing.B) { serveBench(b, r, target) })
		}
	}
}

// BenchmarkToolLookupWide looks up a tool that every agent offers: at
// 20,000 agents the answer is 1.6 MB, from the cache, and 6 MB with
// ?detail=true, larger than a cache entry: it streams.
func BenchmarkToolLookupWide(b *testing.B) {
	for _, n := range benchSizes[:2] {
		r := benchFleet{n, 20, n}.load(b)
		for _, target := range []string{"/tools/tool-0000", "/tools/tool-0000?detail=true"} {
			b.Run(fmt.Sprintf("agents=%d/%s", n, target), func(b *testing.B) { serveBench(b, r, target) })
		}
	}
}

// bench_test.go measures replicas on etcd: how soon a write through one is
// visible through another, and heartbeats (one keep-alive each, or batched
// per lease) beside the in-memory registry.

package etcd_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// BenchmarkReplicationDelay measures how long after a registration through
// replica A returns it is visible through replica B (metric "delay-p50-µs"
// and "delay-max-µs"), on etcd 3.7 in process. ns/op is the time of a
// registration through A (acknowledged when etcd has it and A shows it).
func BenchmarkReplicationDelay(b *testing.B) {
	c := etcdtest.Start(b, 1)
	a, bb := benchReplica(b, c.Endpoints()), benchReplica(b, c.Endpoints())
	ctx := context.Background()
	delays := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("bench-%d", i)
		if err := a.Register(ctx, registry.Registration{ID: id, Name: "n", Version: "1", Host: "h"}); err != nil {
			b.Fatal(err)
		}
		acked := time.Now()
		for {
			if _, _, err := bb.Instance(ctx, id); err == nil {
				break
			}
			runtime.Gosched()
		}
		delays = append(delays, time.Since(acked))
	}
	b.StopTimer()
	slices.Sort(delays)
	b.ReportMetric(float64(delays[len(delays)/2].Microseconds()), "delay-p50-µs")
	b.ReportMetric(float64(delays[len(delays)-1].Microseconds()), "delay-max-µs")
}

func benchReplica(b *testing.B, endpoints []string) *registry.Registry {
	b.Helper()
	return benchReplicaWith(b, etcd.Config{Endpoints: endpoints, Prefix: "/bench/"})
}

func benchReplicaWith(b *testing.B, cfg etcd.Config) *registry.Registry {
	b.Helper()
	st, err := etcd.Open(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Cluster: st})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Run(ctx)
	}()
	b.Cleanup(func() {
		cancel()
		<-done
		st.Close()
	})
	return reg
}

// BenchmarkHeartbeat measures Registry.Heartbeat through a replica on etcd
// 3.7 in process, 64 goroutines over 2,000 instances, with one keep-alive
// per heartbeat ("each") and batched per lease ("batched"), beside the
// in-memory registry ("memory").
func BenchmarkHeartbeat(b *testing.B) {
	c := etcdtest.Start(b, 1)
	const agents = 2000
	for _, bc := range []struct {
		name   string
		window time.Duration
		memory bool
	}{{"memory", 0, true}, {"batched", 0, false}, {"each", -1, false}} {
		b.Run(bc.name, func(b *testing.B) {
			var reg *registry.Registry
			if bc.memory {
				var err error
				if reg, err = registry.New(registry.Options{}); err != nil {
					b.Fatal(err)
				}
			} else {
				reg = benchReplicaWith(b, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/hb-" + bc.name + "/", KeepAliveWindow: bc.window})
			}
			ctx := context.Background()
			for i := range agents {
				if err := reg.Register(ctx, registry.Registration{ID: fmt.Sprint(i), Name: "n", Version: "1", Host: "h"}); err != nil {
					b.Fatal(err)
				}
			}
			var next atomic.Int64
			b.SetParallelism(32) // 64 goroutines on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := strconv.FormatInt(next.Add(1)%agents, 10)
					if _, err := reg.Heartbeat(ctx, id, nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

package etcd_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/runspec/registry"
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
			if _, err := bb.Instance(ctx, id); err == nil {
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
	st, err := etcdOpen(endpoints, "/bench/")
	if err != nil {
		b.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Store: st})
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

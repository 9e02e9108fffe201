// bench_test.go measures Put, alone and from many goroutines, where group
// commit makes writes share transactions and fsyncs.

package bolt_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

// BenchmarkPut puts records of ten tools (about 2KB) over 10,000 ids, with
// fsync. commits/op below 1 is the share of a transaction each Put paid.
func BenchmarkPut(b *testing.B) {
	recs := make([]registry.Record, 10000)
	for i := range recs {
		recs[i] = testRecord(i)
	}
	bench := func(b *testing.B, parallelism int) {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "registry.db"), bolt.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		ctx := context.Background()
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		if parallelism == 0 {
			for i := 0; b.Loop(); i++ {
				if err := st.Put(ctx, recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
			}
		} else {
			b.SetParallelism(parallelism)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if err := st.Put(ctx, recs[int(i)%len(recs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		b.StopTimer()
		b.ReportMetric(float64(bolt.Commits(st))/float64(b.N), "commits/op")
	}
	b.Run("serial", func(b *testing.B) { bench(b, 0) })
	// SetParallelism(p) runs p x GOMAXPROCS goroutines.
	b.Run("parallel-4", func(b *testing.B) { bench(b, 4) })
	b.Run("parallel-32", func(b *testing.B) { bench(b, 32) })
}

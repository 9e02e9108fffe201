// bench_test.go measures a scrape: the Collector on registries of 2,000
// and 100,000 instances, and the whole Handler (with the Go and process
// collectors and the text encoding).

package metrics_test

import (
	"fmt"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/runspec/registry"
	"github.com/runspec/registry/metrics"
)

func fleet(b *testing.B, n int) *registry.Registry {
	b.Helper()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprint("i", i)
		if err := reg.Register(b.Context(), registry.Registration{ID: id, Name: "ops", Version: "1", Host: fmt.Sprint("h", i)}); err != nil {
			b.Fatal(err)
		}
	}
	return reg
}

func BenchmarkCollect(b *testing.B) {
	for _, n := range []int{2_000, 100_000} {
		b.Run(fmt.Sprint(n, "instances"), func(b *testing.B) {
			preg := prometheus.NewRegistry()
			preg.MustRegister(metrics.NewCollector(fleet(b, n), metrics.Options{}))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := preg.Gather(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkHandler(b *testing.B) {
	h := metrics.Handler(fleet(b, 2_000), metrics.Options{Version: "v0.2.0"})
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		io.Copy(io.Discard, rec.Body)
	}
}

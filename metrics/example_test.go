// example_test.go shows /metrics next to an embedded registry, guarded as
// its reads are.

package metrics_test

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/runspec/registry"
	"github.com/runspec/registry/metrics"
)

func ExampleHandler() {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.RequireRead(metrics.Handler(reg, metrics.Options{Version: "v1.0.0"})))
	mux.Handle("/", reg)

	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("POST", "/instances", strings.NewReader(`{"instance_id":"a1","name":"ops","version":"1","host":"web-1"}`)))
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "runspec_registry_registrations_total") ||
			strings.HasPrefix(line, "runspec_registry_instances") || strings.HasPrefix(line, "runspec_registry_build_info") {
			fmt.Println(line)
		}
	}
	// Output:
	// runspec_registry_build_info{version="v1.0.0"} 1
	// runspec_registry_instances{state="active"} 1
	// runspec_registry_instances{state="inactive"} 0
	// runspec_registry_registrations_total 1
}

// instance_read_test.go pins a read of one record against writes of it:
// Registry.Instance and GET /instances/{id} concurrent with re-registrations
// never show the record as it never was (inactive, though nobody
// deregistered it).

package registry_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/runspec/registry"
)

// Instance (and GET /instances/{id}) looked the record up before taking the
// registry's lock: when a re-registration replaced it meanwhile, they
// answered the replaced record, which the replacement marks inactive. Found by store/etcd's checked
// history under faults (TestHistoryUnderFaults), on replicas; the in-memory
// registry had it too.
func TestInstanceDuringReregistration(t *testing.T) {
	r, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	register := func(v int) error {
		return r.Register(ctx, registry.Registration{ID: "x", Name: "n", Version: fmt.Sprint(v), Host: "h"})
	}
	if err := register(0); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, inactive int
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			in, _, err := r.Instance(ctx, "x")
			reads++
			if err != nil || !in.Active {
				inactive++
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/instances/x", nil))
			reads++
			if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"active":true`) {
				inactive++
			}
		}
	}()
	for v := 1; v <= 5000; v++ {
		if err := register(v); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if reads == 0 || inactive > 0 {
		t.Errorf("%d of %d reads during re-registrations found the record missing or inactive; want every one active", inactive, reads)
	}
}

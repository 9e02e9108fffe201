// storetest_test.go runs the suite against registry.MemStore.

package storetest_test

import (
	"sync"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/storetest"
)

func TestMemStore(t *testing.T) {
	// A MemStore keeps no files: "reopening" a directory returns the store
	// first opened for it.
	var mu sync.Mutex
	stores := make(map[string]*registry.MemStore)
	storetest.Run(t, func(t *testing.T, dir string) registry.Store {
		mu.Lock()
		defer mu.Unlock()
		st, ok := stores[dir]
		if !ok {
			st = registry.NewMemStore()
			stores[dir] = st
		}
		return st
	})
}

// memcluster_test.go runs the shared Cluster conformance suite against the
// in-memory Cluster, which must behave as the etcd one does.

package memcluster_test

import (
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
	"github.com/runspec/registry/store/storetest"
)

func TestCluster(t *testing.T) {
	storetest.RunCluster(t, func(t *testing.T) storetest.ClusterHarness {
		c := memcluster.New(memcluster.Options{})
		return storetest.ClusterHarness{
			Open:    func(*testing.T) registry.Cluster { return c },
			Compact: func(*testing.T) { c.Compact() },
		}
	})
}

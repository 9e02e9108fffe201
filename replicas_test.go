// replicas_test.go runs the replica suite (store/storetest) on the
// in-memory Cluster: two or three Registries sharing one fleet, in
// milliseconds, without etcd. store/etcd runs the same suite on etcd.

package registry_test

import (
	"errors"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
	"github.com/runspec/registry/store/storetest"
)

func TestReplicas(t *testing.T) {
	storetest.RunReplicas(t, func(t *testing.T) storetest.ReplicaHarness {
		c := memcluster.New(memcluster.Options{})
		return storetest.ReplicaHarness{
			ClusterHarness: storetest.ClusterHarness{
				Open:    func(*testing.T) registry.Cluster { return c },
				Compact: func(*testing.T) { c.Compact() },
			},
			Interval: 100 * time.Millisecond,
			Slack:    100 * time.Millisecond,
			Outage: func(*testing.T) func() {
				c.SetErr(errors.New("connection refused"))
				return func() { c.SetErr(nil) }
			},
		}
	})
}

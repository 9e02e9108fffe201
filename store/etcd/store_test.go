// store_test.go runs the shared Cluster conformance suite against etcd 3.7
// in process and Debian's etcd 3.4, and checks Open's errors.

package etcd_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
	"github.com/runspec/registry/store/storetest"
)

// TestCluster runs the shared Cluster suite against etcd 3.7, in process.
// Each subtest gets its own key prefix.
func TestCluster(t *testing.T) {
	c := etcdtest.Start(t, 1)
	storetest.RunCluster(t, harness(c.Endpoints()))
}

// TestClusterEtcd34 runs the same suite against Debian's etcd-server 3.4,
// the oldest server the backend supports. It skips if no etcd is installed.
func TestClusterEtcd34(t *testing.T) {
	p := etcdtest.StartBinary(t)
	storetest.RunCluster(t, harness([]string{p.Endpoint}))
}

func harness(endpoints []string) storetest.ClusterOpener {
	var n atomic.Int64
	return func(t *testing.T) storetest.ClusterHarness {
		prefix := fmt.Sprintf("/suite-%d/", n.Add(1))
		return storetest.ClusterHarness{
			Open: func(t *testing.T) registry.Cluster {
				st, err := etcd.Open(context.Background(), etcd.Config{Endpoints: endpoints, Prefix: prefix})
				if err != nil {
					t.Fatal(err)
				}
				return st
			},
			Compact: func(t *testing.T) {
				cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints})
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				resp, err := cli.Get(t.Context(), prefix, clientv3.WithCountOnly())
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cli.Compact(t.Context(), resp.Header.Revision); err != nil {
					t.Fatal(err)
				}
			},
		}
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := etcd.Open(context.Background(), etcd.Config{}); err == nil {
		t.Error("Open without endpoints succeeded")
	}
	// Nothing listens on port 1 of loopback: Open gives up after its timeout.
	_, err := etcd.Open(context.Background(), etcd.Config{Endpoints: []string{"http://127.0.0.1:1"}, DialTimeout: 300e6, RequestTimeout: 300e6})
	if err == nil {
		t.Error("Open of a closed port succeeded")
	}
}

// TestReplicas runs the replica suite (the one the root module runs on the
// in-memory Cluster) on etcd 3.7: leases are whole seconds, so the
// liveness test takes a few seconds.
func TestReplicas(t *testing.T) {
	c := etcdtest.Start(t, 1)
	clusters := harness(c.Endpoints())
	storetest.RunReplicas(t, func(t *testing.T) storetest.ReplicaHarness {
		return storetest.ReplicaHarness{
			ClusterHarness: clusters(t),
			Interval:       time.Second, // a lease of 3 s
			Slack:          time.Second, // etcd checks leases every 500 ms
			Outage: func(*testing.T) func() {
				c.Stop(0)
				return func() { c.Restart(0) }
			},
		}
	})
}

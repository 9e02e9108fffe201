// keepalive_test.go checks the shared keep-alive streams of heartbeats: a
// heartbeat whose caller gave up fails no other heartbeat on its stream.

package etcd_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// A heartbeat whose caller gave up (cancelled, or its own short deadline)
// dropped the shared keep-alive stream, as if it were stuck, failing every
// other heartbeat waiting on it.
func TestAbandonedHeartbeatLeavesOthers(t *testing.T) {
	for name, abandon := range map[string]func() (context.Context, context.CancelFunc){
		"cancelled": func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		},
		"own deadline": func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Microsecond)
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := etcdtest.Start(t, 1)
			a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/ka/", KeepAliveWindow: -1}, registry.Options{})
			const n = 50
			for i := range n {
				a.register(fmt.Sprintf("i%d", i), "h", 30)
			}
			var failed atomic.Int64
			var firstErr atomic.Value
			for range 20 {
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if i%10 == 0 { // an agent that gave up
							ctx, cancel := abandon()
							defer cancel()
							a.st.KeepAlive(ctx, fmt.Sprintf("i%d", i))
							return
						}
						if ok, err := a.st.KeepAlive(context.Background(), fmt.Sprintf("i%d", i)); err != nil || !ok {
							failed.Add(1)
							firstErr.CompareAndSwap(nil, fmt.Sprint(ok, err))
						}
					}()
				}
				wg.Wait()
			}
			if failed.Load() > 0 {
				t.Errorf("%d keep-alives of callers still waiting failed, e.g. %v", failed.Load(), firstErr.Load())
			}
		})
	}
}

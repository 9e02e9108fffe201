// paused_test.go pins what a hung etcd member (SIGSTOP: its connections
// stay open, it answers nothing) does to writes: they stop for about one
// gRPC ping interval, not for as long as it hangs.

package etcd_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// Without keep-alive pings, the client kept sending requests to a paused
// member, and every write through the replica failed (503) for as long as
// the member stayed paused (20 s measured). Found by the checked history
// under faults (faults_internal_test.go).
func TestMemberPausedEtcd34(t *testing.T) {
	ps := etcdtest.StartBinaryCluster(t, 3)
	var eps []string
	for _, p := range ps {
		eps = append(eps, p.Endpoint)
	}
	a := startReplicaWith(t, etcd.Config{Endpoints: eps, Prefix: "/paused/"}, registry.Options{})
	ctx := context.Background()
	register := func(v int) error {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return a.reg.Register(wctx, registry.Registration{ID: "i", Name: "n", Version: fmt.Sprint(v), Host: "h", HeartbeatInterval: time.Hour})
	}
	if err := register(0); err != nil {
		t.Fatal(err)
	}
	if err := ps[0].Pause(); err != nil {
		t.Fatal(err)
	}
	defer ps[0].Resume()
	paused := time.Now()
	const limit = 16 * time.Second // a 10 s ping interval, its 2 s timeout, a request timeout, with room
	failed := 0
	for v := 1; ; v++ {
		if err := register(v); err == nil {
			t.Logf("member m0 paused: writes acknowledged again after %v (%d failed before)", time.Since(paused).Round(time.Millisecond), failed)
			return
		}
		failed++
		if time.Since(paused) > limit {
			t.Fatalf("member m0 paused: no write acknowledged in %v (%d failed)", limit, failed)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

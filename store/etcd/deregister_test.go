// deregister_test.go checks deregistration on etcd: a system sent just
// before a DELETE or with the heartbeat that revives is kept, and a DELETE
// through a replica that has not yet seen the registration still applies.

package etcd_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// A heartbeat's system sent just before a DELETE, or with the heartbeat
// that revives, was replaced by the older one stored in etcd.
func TestSystemSurvivesDeregisterAndRevival(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/sys/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/sys/", registry.Options{})
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":1}}`, http.StatusOK)
	// B learns a system only from etcd: once it shows pid 1, A's checkpoint
	// has written it.
	eventually(t, 2*time.Second, "pid 1 in etcd", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":1`) })

	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":2}}`, http.StatusOK)
	a.must("DELETE", "/instances/i1", "", http.StatusOK) // A's view has the deregistration when this returns
	if got := a.do("GET", "/instances/i1", "").body; !strings.Contains(got, `"pid":2`) {
		t.Errorf("after heartbeat {pid:2} and DELETE: %s, want pid 2 as in memory", got)
	}
	eventually(t, 2*time.Second, "B shows pid 2", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":2`) })

	a.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":3}}`, http.StatusOK) // revives
	if got := a.do("GET", "/instances/i1", "").body; !strings.Contains(got, `"pid":3`) || !strings.Contains(got, `"active":true`) {
		t.Errorf("after DELETE and heartbeat {pid:3}: %s, want active with pid 3 as in memory", got)
	}
	eventually(t, 2*time.Second, "B shows pid 3", func() bool { return strings.Contains(b.do("GET", "/instances/i1", "").body, `"pid":3`) })
}

// A DELETE through a replica that had not yet seen the registration was
// answered 200 and changed nothing.
func TestDeregisterOnLaggingReplica(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/lag/", registry.Options{})
	st, err := etcd.Open(context.Background(), etcd.Config{Endpoints: c.Endpoints(), Prefix: "/lag/"})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	b, err := registry.New(registry.Options{Cluster: st}) // its view: before the registration
	if err != nil {
		t.Fatal(err)
	}
	a.register("i1", "h1", 30)
	done := make(chan error, 1)
	go func() { done <- b.Deregister(context.Background(), "i1") }()
	// B's view is fed only once its Run starts: start it once the
	// deregistration is in etcd, so that B took it while lagging.
	eventually(t, 5*time.Second, "the deregistration in etcd", func() bool { return a.instance("i1")["active"] == false })
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		b.Run(ctx)
	}()
	defer func() { cancel(); <-ran }()
	if err := <-done; err != nil {
		t.Fatalf("Deregister on the lagging replica: %v", err)
	}
}

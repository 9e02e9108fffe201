// ops_test.go checks what ops.go gives the programs that serve a registry:
// RequireRead guards a handler as the reads are guarded, and
// ClusterRevision follows the revisions a replica applies.

package registry_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
)

func TestRequireRead(t *testing.T) {
	reader, err := registry.ParseRoles("read")
	if err != nil {
		t.Fatal(err)
	}
	keys := []registry.Key{
		registry.NewKey(registry.Identity{Name: "prometheus", Roles: reader}, "reader-key-0123456789"),
		registry.NewKey(registry.Identity{Name: "agent", Roles: registry.RoleAgent}, "agent-key-0123456789"),
	}
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics") })
	tests := []struct {
		name     string
		opts     registry.Options
		key      string
		code     int
		refusals uint64
	}{
		{"read auth off: open", registry.Options{Keys: keys}, "", http.StatusOK, 0},
		{"no key", registry.Options{Keys: keys, ReadAuth: true}, "", http.StatusForbidden, 1},
		{"wrong key", registry.Options{Keys: keys, ReadAuth: true}, "wrong-key-0123456789", http.StatusForbidden, 1},
		{"read key", registry.Options{Keys: keys, ReadAuth: true}, "reader-key-0123456789", http.StatusOK, 0},
		{"agent key", registry.Options{Keys: keys, ReadAuth: true}, "agent-key-0123456789", http.StatusOK, 0},
		{"read auth without identities: open, as reads are", registry.Options{ReadAuth: true}, "", http.StatusOK, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, err := registry.New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			newReq := func(target string) *http.Request {
				req := httptest.NewRequest("GET", target, nil)
				if tt.key != "" {
					req.Header.Set("Authorization", "Bearer "+tt.key)
				}
				return req
			}
			rec := httptest.NewRecorder()
			reg.RequireRead(ok).ServeHTTP(rec, newReq("/metrics"))
			if rec.Code != tt.code {
				t.Errorf("status %d (%s), want %d", rec.Code, rec.Body, tt.code)
			}
			if tt.code == http.StatusForbidden && rec.Body.String() != `{"detail":"Invalid or missing API key"}` {
				t.Errorf("body %s, want the reads' 403 detail", rec.Body)
			}
			// The same request to a read of the registry gets the same answer.
			rec2 := httptest.NewRecorder()
			reg.ServeHTTP(rec2, newReq("/instances"))
			if rec2.Code != tt.code {
				t.Errorf("GET /instances answered %d, /metrics %d: the guards differ", rec2.Code, tt.code)
			}
			if got := reg.Metrics().Refused; got != 2*tt.refusals {
				t.Errorf("refusals counted: %d, want %d", got, 2*tt.refusals)
			}
		})
	}
}

func TestClusterRevision(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rev, ok := reg.ClusterRevision(); ok || rev != 0 {
		t.Errorf("without a Cluster: ClusterRevision() = %d, %v; want 0, false", rev, ok)
	}

	c := memcluster.New(memcluster.Options{})
	replica, err := registry.New(registry.Options{Cluster: c, HeartbeatInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- replica.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for _, id := range []string{"a", "b", "c"} {
		if err := replica.Register(t.Context(), registry.Registration{ID: id, Name: "ops", Version: "1", Host: "web-" + id}); err != nil {
			t.Fatal(err)
		}
		// A write is answered once the replica's view has applied it.
		if rev, ok := replica.ClusterRevision(); !ok || rev != c.Rev() {
			t.Errorf("after registering %s: ClusterRevision() = %d, %v; want %d, true", id, rev, ok, c.Rev())
		}
	}
}

// aheadCluster is a Cluster whose backend has answered with revisions its
// change stream has not delivered yet.
type aheadCluster struct {
	*memcluster.Cluster
	ahead uint64
}

func (c aheadCluster) HeadRevision() uint64 { return c.Rev() + c.ahead }

// plainCluster hides memcluster's HeadRevision: a Cluster that cannot say.
type plainCluster struct{ registry.Cluster }

func TestClusterLag(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lag, ok := reg.ClusterLag(); ok || lag != 0 {
		t.Errorf("without a Cluster: ClusterLag() = %d, %v; want 0, false", lag, ok)
	}
	for _, tt := range []struct {
		name    string
		cluster func(*memcluster.Cluster) registry.Cluster
		lag     uint64
		ok      bool
	}{
		{"caught up", func(c *memcluster.Cluster) registry.Cluster { return c }, 0, true},
		{"7 revisions behind", func(c *memcluster.Cluster) registry.Cluster { return aheadCluster{c, 7} }, 7, true},
		{"a Cluster without a head", func(c *memcluster.Cluster) registry.Cluster { return plainCluster{c} }, 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			replica, err := registry.New(registry.Options{Cluster: tt.cluster(memcluster.New(memcluster.Options{})), HeartbeatInterval: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- replica.Run(ctx) }()
			defer func() { cancel(); <-done }()
			if err := replica.Register(t.Context(), registry.Registration{ID: "a", Name: "ops", Version: "1", Host: "web-1"}); err != nil {
				t.Fatal(err)
			}
			if lag, ok := replica.ClusterLag(); lag != tt.lag || ok != tt.ok {
				t.Errorf("ClusterLag() = %d, %v; want %d, %v", lag, ok, tt.lag, tt.ok)
			}
		})
	}
}

package etcd_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
	"github.com/runspec/registry/store/storetest"
)

// TestStore runs the shared store suite against etcd 3.7, in process. Each
// subtest's directory names its own key prefix, so that a reopened store
// finds its records.
func TestStore(t *testing.T) {
	c := etcdtest.Start(t, 1)
	storetest.Run(t, opener(c.Endpoints()))
}

func etcdOpen(endpoints []string, prefix string) (*etcd.Store, error) {
	return etcd.Open(context.Background(), etcd.Config{Endpoints: endpoints, Prefix: prefix})
}

func opener(endpoints []string) storetest.Opener {
	return func(t *testing.T, dir string) registry.Store {
		st, err := etcdOpen(endpoints, "/test"+filepath.ToSlash(dir)+"/")
		if err != nil {
			t.Fatal(err)
		}
		return st
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

// TestStoreEtcd34 runs the same suite against Debian's etcd-server 3.4, the
// oldest server the backend supports. It skips if no etcd is installed.
func TestStoreEtcd34(t *testing.T) {
	p := etcdtest.StartBinary(t)
	storetest.Run(t, opener([]string{p.Endpoint}))
}

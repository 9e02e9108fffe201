// Package etcdtest runs real etcd members in the test process, on loopback
// ports, with go.etcd.io/etcd/server/v3/embed: tests of the etcd backend and
// of replicas need no installed etcd.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
)

// A Cluster is a set of etcd members started by Start.
type Cluster struct {
	t       testing.TB
	mu      sync.Mutex
	members []*member
	initial string
	tls     *transport.TLSInfo
}

// Options configures StartWith.
type Options struct {
	// TLS, if not nil, makes the members serve clients over TLS with these
	// files (set ClientCertAuth to require client certificates).
	TLS *transport.TLSInfo
}

type member struct {
	name, dir          string
	clientURL, peerURL url.URL
	e                  *embed.Etcd // nil while stopped
}

// Start starts an etcd cluster of n members and waits until it has a
// leader. The members stop when the test ends.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	return StartWith(t, n, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t, tls: opts.TLS}
	var initial []string
	for i := range n {
		m := &member{name: fmt.Sprintf("m%d", i), dir: t.TempDir(),
			clientURL: freeURL(t), peerURL: freeURL(t)}
		if opts.TLS != nil {
			m.clientURL.Scheme = "https"
		}
		c.members = append(c.members, m)
		initial = append(initial, m.name+"="+m.peerURL.String())
	}
	c.initial = strings.Join(initial, ",")
	errs := make(chan error, n)
	for i := range c.members {
		go func() { errs <- c.start(i, "new") }()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.Close)
	return c
}

func freeURL(t testing.TB) url.URL {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return url.URL{Scheme: "http", Host: l.Addr().String()}
}

func (c *Cluster) start(i int, state string) error {
	c.mu.Lock()
	m := c.members[i]
	c.mu.Unlock()
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = m.name, m.dir
	cfg.ListenClientUrls = []url.URL{m.clientURL}
	cfg.AdvertiseClientUrls = []url.URL{m.clientURL}
	cfg.ListenPeerUrls = []url.URL{m.peerURL}
	cfg.AdvertisePeerUrls = []url.URL{m.peerURL}
	cfg.InitialCluster = c.initial
	cfg.ClusterState = state
	cfg.InitialClusterToken = "etcdtest"
	cfg.LogLevel = "fatal" // Close logs its closed listeners as errors
	cfg.LogOutputs = []string{"stderr"}
	cfg.UnsafeNoFsync = true // test data: speed over durability
	if c.tls != nil {
		cfg.ClientTLSInfo = *c.tls
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("etcdtest: start %s: %w", m.name, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return fmt.Errorf("etcdtest: %s: %w", m.name, err)
	case <-time.After(60 * time.Second):
		e.Close()
		return fmt.Errorf("etcdtest: %s not ready after 60s", m.name)
	}
	c.mu.Lock()
	m.e = e
	c.mu.Unlock()
	return nil
}

// Endpoints returns the client URLs of every member, running or not.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.members {
		eps = append(eps, m.clientURL.String())
	}
	return eps
}

// Leader returns the index of the member that leads, or -1 if none of the
// running members knows a leader.
func (c *Cluster) Leader() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, m := range c.members {
		if m.e != nil && m.e.Server.Leader() == m.e.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops member i, keeping its data. A leader hands its leadership
// over first.
func (c *Cluster) Stop(i int) { c.halt(i, false) }

// Kill stops member i as a crash would: without handing its leadership
// over first, as Stop does.
func (c *Cluster) Kill(i int) { c.halt(i, true) }

func (c *Cluster) halt(i int, hard bool) {
	c.mu.Lock()
	e := c.members[i].e
	c.members[i].e = nil
	c.mu.Unlock()
	if e == nil {
		return
	}
	if hard {
		e.Server.HardStop()
	}
	e.Close()
}

// Restart starts member i again after Stop, with its data.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	if err := c.start(i, "existing"); err != nil {
		c.t.Fatal(err)
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.members {
		c.Stop(i)
	}
}

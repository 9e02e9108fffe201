// secure_test.go checks replicas on a secured etcd: TLS with a client
// certificate, and etcd's authentication with a user and password.

package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// certs writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, signed by the CA, as PEM files in dir.
func certs(t *testing.T, dir string) (ca, serverCert, serverKey, clientCert, clientKey string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	leaf := func(serial int64, cn string) (string, string) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return write(cn+".pem", "CERTIFICATE", der), write(cn+"-key.pem", "EC PRIVATE KEY", kder)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	serverCert, serverKey = leaf(2, "server")
	clientCert, clientKey = leaf(3, "client")
	return
}

// TestTLS: a replica reaches etcd over TLS with a client certificate, and
// Open fails clearly without one.
func TestTLS(t *testing.T) {
	ca, sc, sk, cc, ck := certs(t, t.TempDir())
	c := etcdtest.StartWith(t, 1, etcdtest.Options{TLS: &transport.TLSInfo{
		CertFile: sc, KeyFile: sk, TrustedCAFile: ca, ClientCertAuth: true}})
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(ca)
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	good := &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/tls/", TLS: good}, registry.Options{})
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/tools", `{"tools":[]}`, http.StatusOK)
	if rep := a.must("POST", "/instances/i1/heartbeat", "", http.StatusOK); rep.body != `{"status":"ack"}` {
		t.Errorf("heartbeat over TLS: %s", rep.body)
	}
	short := etcd.Config{Endpoints: c.Endpoints(), Prefix: "/tls/", DialTimeout: time.Second, RequestTimeout: time.Second}
	for name, tc := range map[string]*tls.Config{
		"no client certificate": {RootCAs: pool, MinVersion: tls.VersionTLS12},
		"unknown CA":            {Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
	} {
		cfg := short
		cfg.TLS = tc
		if st, err := etcd.Open(context.Background(), cfg); err == nil {
			st.Close()
			t.Errorf("%s: Open succeeded", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

// TestAuth: with etcd's authentication on, a replica with the right user
// and password works (keep-alive streams included); a wrong password fails
// at Open.
func TestAuth(t *testing.T) {
	c := etcdtest.Start(t, 1)
	ctx := context.Background()
	root, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	for _, step := range []func() error{
		func() error { _, err := root.UserAdd(ctx, "root", "secret"); return err },
		func() error { _, err := root.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := root.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	// With authentication each dial also authenticates (a bcrypt check on
	// the server): under -race on a loaded machine 2 s was too short.
	a := startReplicaWith(t, etcd.Config{Endpoints: c.Endpoints(), Prefix: "/auth/", Username: "root", Password: "secret", KeepAliveWindow: -1,
		DialTimeout: 10 * time.Second, RequestTimeout: 10 * time.Second}, registry.Options{})
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/tools", `{"tools":[]}`, http.StatusOK)
	for range 3 {
		if rep := a.must("POST", "/instances/i1/heartbeat", "", http.StatusOK); rep.body != `{"status":"ack"}` {
			t.Errorf("heartbeat with authentication: %s", rep.body)
		}
	}
	st, err := etcd.Open(ctx, etcd.Config{Endpoints: c.Endpoints(), Username: "root", Password: "wrong", DialTimeout: time.Second, RequestTimeout: time.Second})
	if err == nil {
		st.Close()
		t.Fatal("Open with a wrong password succeeded")
	}
	t.Logf("wrong password: %v", err)
}

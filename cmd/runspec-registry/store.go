// store.go chooses where the command keeps its records (a bbolt file in the
// user's state directory by default, memory, or etcd), and serves backups of
// the file through a unix socket in the data directory while it runs.

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
	"github.com/runspec/registry/store/etcd"
)

const (
	dataFile   = "registry.db"
	backupSock = "backup.sock"
)

// storeFlags are the flags that choose the store.
type storeFlags struct {
	Store    string `default:"file" enum:"file,memory,etcd" env:"RUNSPEC_REGISTRY_STORE" help:"Where records live: file (durable, the default), memory, or etcd (replicas sharing one fleet)."`
	InMemory bool   `name:"in-memory" env:"RUNSPEC_REGISTRY_IN_MEMORY" help:"Shorthand for --store memory."`
	DataDir  string `name:"data-dir" env:"RUNSPEC_REGISTRY_DATA_DIR" type:"path" help:"Directory of the data file (default: $XDG_STATE_HOME/runspec-registry or ~/.local/state/runspec-registry)."`

	EtcdEndpoints []string `name:"etcd-endpoints" default:"http://127.0.0.1:2379" env:"RUNSPEC_REGISTRY_ETCD_ENDPOINTS" help:"etcd client URLs, comma-separated (--store etcd). User and password come from RUNSPEC_REGISTRY_ETCD_USERNAME and RUNSPEC_REGISTRY_ETCD_PASSWORD."`
	EtcdPrefix    string   `name:"etcd-prefix" default:"/runspec-registry/" env:"RUNSPEC_REGISTRY_ETCD_PREFIX" help:"Key prefix in etcd; replicas of one registry share it."`
	EtcdCACert    string   `name:"etcd-cacert" env:"RUNSPEC_REGISTRY_ETCD_CACERT" type:"path" help:"CA certificate (PEM) that signed etcd's certificate; turns on TLS to etcd."`
	EtcdCert      string   `name:"etcd-cert" env:"RUNSPEC_REGISTRY_ETCD_CERT" type:"path" help:"Client certificate (PEM) for etcd; turns on TLS to etcd."`
	EtcdKey       string   `name:"etcd-key" env:"RUNSPEC_REGISTRY_ETCD_KEY" type:"path" help:"Client key (PEM) of --etcd-cert."`
	// For benchmarks: -1ns makes every heartbeat its own lease keep-alive.
	EtcdKeepAliveWindow time.Duration `name:"etcd-keepalive-window" hidden:"" env:"RUNSPEC_REGISTRY_ETCD_KEEPALIVE_WINDOW" help:"Heartbeats of one instance closer than this share a lease keep-alive (0: a tenth of its TTL, at most 1s; negative: none do)."`
}

// defaultDataDir is the user's state directory for the registry.
func defaultDataDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "runspec-registry"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data-dir given and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "runspec-registry"), nil
}

func (f storeFlags) dataDir() (string, error) {
	if f.DataDir != "" {
		return f.DataDir, nil
	}
	return defaultDataDir()
}

// durableStore is an open file store and the socket that serves backups.
type durableStore struct {
	*bolt.Store
	dir    string
	socket *http.Server
}

// open opens where the flags say records live (opts.Store, opts.Cluster,
// or neither for memory) and returns how to close it.
func (f storeFlags) open(ctx context.Context, log *slog.Logger, opts *registry.Options) (func() error, error) {
	if f.InMemory {
		f.Store = "memory"
	}
	switch f.Store {
	case "memory":
		log.Info("records are kept in memory only")
		return func() error { return nil }, nil
	case "etcd":
		st, err := f.openEtcd(ctx, log)
		if err != nil {
			return nil, err
		}
		log.Info("records are kept in etcd", "endpoints", strings.Join(f.EtcdEndpoints, ","), "prefix", f.EtcdPrefix)
		opts.Cluster = st
		return st.Close, nil
	}
	ds, err := f.openFile(log)
	if err != nil {
		return nil, err
	}
	log.Info("data file", "path", filepath.Join(ds.dir, dataFile))
	opts.Store = ds.Store
	return ds.Close, nil
}

func (f storeFlags) openEtcd(ctx context.Context, log *slog.Logger) (*etcd.Store, error) {
	cfg := etcd.Config{
		Endpoints: f.EtcdEndpoints,
		Prefix:    f.EtcdPrefix,
		Username:  os.Getenv("RUNSPEC_REGISTRY_ETCD_USERNAME"),
		Password:  os.Getenv("RUNSPEC_REGISTRY_ETCD_PASSWORD"),
		Logger:    log,

		KeepAliveWindow: f.EtcdKeepAliveWindow,
	}
	if f.EtcdCACert != "" || f.EtcdCert != "" || f.EtcdKey != "" {
		tc, err := etcdTLS(f.EtcdCACert, f.EtcdCert, f.EtcdKey)
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	}
	return etcd.Open(ctx, cfg)
}

// etcdTLS builds the TLS configuration for etcd from PEM files.
func etcdTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-cacert: no PEM certificate in %s", caFile)
		}
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("--etcd-cert and --etcd-key go together")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// openFile opens the data file and its backup socket.
func (f storeFlags) openFile(log *slog.Logger) (*durableStore, error) {
	dir, err := f.dataDir()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the data directory: %w", err)
	}
	st, err := bolt.Open(filepath.Join(dir, dataFile), bolt.Options{})
	if err != nil {
		return nil, err
	}
	ds := &durableStore{Store: st, dir: dir}
	if err := ds.serveBackups(log); err != nil {
		st.Close()
		return nil, err
	}
	return ds, nil
}

// serveBackups listens on a unix socket in the data directory, so that
// "runspec-registry backup" can copy the file while this process holds it.
// We hold the file's lock, so a socket left there is stale.
func (ds *durableStore) serveBackups(log *slog.Logger) error {
	path := filepath.Join(ds.dir, backupSock)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("backup socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /backup", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		if n, err := ds.Backup(w); err != nil {
			log.Error("backup failed", "bytes", n, "err", err)
		} else {
			log.Info("backup written", "bytes", n)
		}
	})
	ds.socket = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: serverErrorLog(log)}
	go ds.socket.Serve(ln)
	return nil
}

func (ds *durableStore) Close() error {
	ds.socket.Close()
	os.Remove(filepath.Join(ds.dir, backupSock))
	return ds.Store.Close()
}

// storeName says where records are kept, for the start-up log.
func (f storeFlags) storeName() string {
	switch {
	case f.InMemory || f.Store == "memory":
		return "memory (nothing loaded)"
	case f.Store == "etcd":
		return "etcd " + strings.Join(f.EtcdEndpoints, ",") + " prefix " + f.EtcdPrefix
	}
	dir, err := f.dataDir()
	if err != nil {
		return "the data file"
	}
	return filepath.Join(dir, dataFile)
}

// security.go holds what serve needs to know who calls it: the keys file,
// the TLS configuration with client certificates (their CAs and whether
// they are required), both reloaded on SIGHUP without dropping a request,
// and the start-up warning of a registry that anyone may write to.

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"

	"github.com/runspec/registry"
)

// certReqs reads --ssl-cert-reqs: none, optional or required, or the
// reference's 0, 1, 2 (uvicorn's ssl.CERT_* values).
func certReqs(s string) (tls.ClientAuthType, error) {
	switch strings.ToLower(s) {
	case "", "none", "0":
		return tls.NoClientCert, nil
	case "optional", "1":
		return tls.VerifyClientCertIfGiven, nil
	case "required", "2":
		return tls.RequireAndVerifyClientCert, nil
	}
	return 0, fmt.Errorf("--ssl-cert-reqs: %q is not none, optional, required (or 0, 1, 2)", s)
}

// loadKeys reads the keys file and logs a warning for each short key.
func loadKeys(path string, log *slog.Logger) ([]registry.Key, error) {
	if path == "" {
		return nil, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--keys-file: %w", err)
	}
	defer f.Close()
	keys, err := registry.ParseKeys(f)
	if err != nil {
		return nil, fmt.Errorf("--keys-file %s: %w", path, err)
	}
	for _, k := range keys {
		if k.Short {
			log.Warn("a key is shorter than 16 bytes: easy to guess", "identity", k.Name, "keys_file", path, "line", k.Line)
		}
	}
	return keys, nil
}

// tlsFiles are the files of the server's TLS configuration.
type tlsFiles struct {
	cert, key, cas string
	auth           tls.ClientAuthType
}

// load reads the files into a configuration.
func (f tlsFiles) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.cert, f.key)
	if err != nil {
		return nil, fmt.Errorf("loading the TLS certificate: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, ClientAuth: f.auth}
	if f.cas != "" {
		pem, err := os.ReadFile(f.cas)
		if err != nil {
			return nil, fmt.Errorf("--ssl-ca-certs: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ssl-ca-certs: no PEM certificate in %s", f.cas)
		}
	}
	return cfg, nil
}

// liveTLS is the server's TLS configuration, which a reload swaps for new
// connections while the ones open go on with theirs.
type liveTLS struct {
	files tlsFiles
	cur   atomic.Pointer[tls.Config]
}

func newLiveTLS(files tlsFiles) (*liveTLS, error) {
	cfg, err := files.load()
	if err != nil {
		return nil, err
	}
	l := &liveTLS{files: files}
	l.cur.Store(cfg)
	return l, nil
}

// config is the server's tls.Config: each handshake takes the current one.
func (l *liveTLS) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return l.cur.Load(), nil
		},
	}
}

// warnIfOpen logs a warning when the registry listens beyond loopback and
// anyone who reaches it may write (no key, no client certificate).
func warnIfOpen(log *slog.Logger, host string, opts registry.Options) {
	if opts.APIKey != "" || len(opts.Keys) > 0 || opts.ClientCertificates {
		return
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() || host == "localhost" {
		return
	}
	log.Warn("anyone who can reach this address may register agents and change the commands clients run on them: "+
		"set --api-key (or --api-key-file), --keys-file, or client certificates (--ssl-ca-certs with --ssl-cert-reqs), "+
		"or listen on loopback only (--host 127.0.0.1)", "host", host)
}

// errNoCAs is the error of client certificates without CAs to check them.
var errNoCAs = errors.New("--ssl-cert-reqs optional or required needs --ssl-ca-certs, the CAs that sign agents' certificates")

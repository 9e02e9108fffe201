// client_test.go tests the Client's configuration (URLs, TLS, API key),
// its errors, and the one-shot reads and writes against a registry.

package client_test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

func TestNewValidates(t *testing.T) {
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, []byte("not a certificate"), 0o600)
	for _, tc := range []struct {
		name string
		url  string
		opts client.Options
		ok   bool
	}{
		{"http", "http://127.0.0.1:8765", client.Options{}, true},
		{"https with prefix", "https://registry.example/registry/", client.Options{}, true},
		{"no scheme", "127.0.0.1:8765", client.Options{}, false},
		{"ftp", "ftp://registry.example", client.Options{}, false},
		{"no host", "http://", client.Options{}, false},
		{"query", "http://registry.example/?a=b", client.Options{}, false},
		{"CAFile and HTTPClient", "https://r.example", client.Options{CAFile: caFile, HTTPClient: http.DefaultClient}, false},
		{"missing CAFile", "https://r.example", client.Options{CAFile: filepath.Join(t.TempDir(), "none.pem")}, false},
		{"CAFile without PEM", "https://r.example", client.Options{CAFile: caFile}, false},
		{"negative wait", "http://r.example", client.Options{Wait: -time.Second}, false},
		{"max below min backoff", "http://r.example", client.Options{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, false},
		{"only max backoff", "http://r.example", client.Options{MaxBackoff: time.Millisecond}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := client.New(tc.url, tc.opts)
			if (err == nil) != tc.ok {
				t.Errorf("New(%q) error = %v, want ok %v", tc.url, err, tc.ok)
			}
		})
	}
}

// newRegistryServer serves a new registry over httptest.
func newRegistryServer(t *testing.T, opts registry.Options) (*registry.Registry, *httptest.Server) {
	t.Helper()
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(func() {
		reg.ReleaseWaiters()
		srv.Close()
	})
	return reg, srv
}

func TestErrors(t *testing.T) {
	checkLeaks(t)
	_, srv := newRegistryServer(t, registry.Options{RateLimitWrite: 1})
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	ctx := t.Context()

	_, err = c.Tool(ctx, "nope", client.Filter{})
	var ae *client.APIError
	if !errors.Is(err, client.ErrNotFound) || !errors.Is(err, registry.ErrNotFound) || !errors.As(err, &ae) {
		t.Fatalf("Tool(nope) = %v, want an *APIError matching ErrNotFound", err)
	}
	if diff := cmp.Diff(&client.APIError{Request: "GET /tools/nope", StatusCode: 404, Detail: "Tool not found"}, ae); diff != "" {
		t.Errorf("APIError mismatch (-want +got):\n%s", diff)
	}

	err = c.Register(ctx, registry.Registration{ID: "a", Name: "ops", Version: "1", Host: "bad\nhost"})
	if !errors.Is(err, client.ErrInvalid) || !errors.As(err, &ae) || len(ae.Fields) != 1 || !cmp.Equal(ae.Fields[0].Loc, []string{"body", "host"}) {
		t.Fatalf("Register(bad host) = %v (%+v), want ErrInvalid naming body.host", err, ae)
	}

	// The 422 used the one write allowed per minute.
	err = c.Register(ctx, registry.Registration{ID: "a", Name: "ops", Version: "1", Host: "h"})
	if !errors.Is(err, client.ErrRateLimited) || !errors.As(err, &ae) || ae.RetryAfter <= 0 {
		t.Fatalf("Register over the limit = %v, want ErrRateLimited with RetryAfter", err)
	}

	// No answer: not an APIError.
	down, err := client.New("http://127.0.0.1:1", client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := down.Health(ctx); err == nil || errors.As(err, &ae) {
		t.Errorf("Health of a closed port = %v, want a transport error", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.Health(cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Health with a canceled context = %v, want context.Canceled", err)
	}
}

func TestAPIKey(t *testing.T) {
	checkLeaks(t)
	reg, srv := newRegistryServer(t, registry.Options{APIKey: "s3cret"})
	ctx := t.Context()
	for _, tc := range []struct {
		key  string
		want error
	}{{"", client.ErrForbidden}, {"wrong", client.ErrForbidden}, {"s3cret", nil}} {
		c, err := client.New(srv.URL, client.Options{APIKey: tc.key})
		if err != nil {
			t.Fatal(err)
		}
		err = c.Register(ctx, registry.Registration{ID: "a", Name: "ops", Version: "1", Host: "h"})
		if diff := cmp.Diff(tc.want, err, cmpopts.EquateErrors()); diff != "" {
			t.Errorf("key %q: Register error mismatch (-want +got):\n%s", tc.key, diff)
		}
		c.CloseIdleConnections()
	}
	if _, _, err := reg.Instance(ctx, "a"); err != nil {
		t.Errorf("instance not registered with the right key: %v", err)
	}
}

func TestTLS(t *testing.T) {
	checkLeaks(t)
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(reg)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the failing handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	for _, tc := range []struct {
		name string
		opts client.Options
		ok   bool
	}{
		{"system roots", client.Options{}, false},
		{"RootCAs", client.Options{RootCAs: pool}, true},
		{"CAFile", client.Options{CAFile: caFile}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := client.New(srv.URL, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseIdleConnections()
			err = c.Health(t.Context())
			if (err == nil) != tc.ok {
				t.Errorf("Health = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestReads compares the client's reads with the registry's own methods,
// which decode the same answers.
func TestReads(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			reg := tr.start(registry.Options{})
			ctx := t.Context()
			for _, in := range []struct{ id, host, tool string }{{"a1", "web-1", "deploy"}, {"a2", "web-2", "deploy"}, {"a3", "db-1", "backup"}} {
				reg.Register(ctx, registry.Registration{ID: in.id, Name: "ops", Version: "1", Host: in.host})
				reg.UpdateTools(ctx, in.id, []json.RawMessage{toolJSON(in.tool, "/bin/"+in.tool)})
			}
			reg.Deregister(ctx, "a2")
			c := tr.client(client.Options{})

			check := func(what string, want, got any, err error) {
				t.Helper()
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("%s mismatch (-want +got):\n%s", what, diff)
				}
			}
			active, all := registry.Filter{ActiveOnly: true}, registry.Filter{}

			want, _, _ := reg.Tools(ctx, active)
			got, err := c.Tools(ctx, client.Filter{})
			check("Tools", want, got, err)
			want, _, _ = reg.Tools(ctx, all)
			got, err = c.Tools(ctx, client.Filter{IncludeInactive: true})
			check("Tools(all)", want, got, err)
			want, _, _ = reg.Tools(ctx, registry.Filter{ActiveOnly: true, Host: "db-1"})
			got, err = c.Tools(ctx, client.Filter{Host: "db-1"})
			check("Tools(host)", want, got, err)

			wantTool, _, _ := reg.Tool(ctx, "deploy", active)
			gotTool, err := c.Tool(ctx, "deploy", client.Filter{})
			check("Tool", wantTool, gotTool, err)
			wantTool, _, _ = reg.Tool(ctx, "deploy", all)
			gotTool, err = c.Tool(ctx, "deploy", client.Filter{IncludeInactive: true})
			check("Tool(all)", wantTool, gotTool, err)

			wantInsts, _, _ := reg.Instances(ctx, active)
			gotInsts, err := c.Instances(ctx, client.Filter{})
			check("Instances", wantInsts, gotInsts, err)
			wantInsts, _, _ = reg.Instances(ctx, registry.Filter{Host: "web-2"})
			gotInsts, err = c.Instances(ctx, client.Filter{IncludeInactive: true, Host: "web-2"})
			check("Instances(host, all)", wantInsts, gotInsts, err)

			wantInst, _, _ := reg.Instance(ctx, "a2")
			gotInst, err := c.Instance(ctx, "a2")
			check("Instance", wantInst, gotInst, err)
			if _, err := c.Instance(ctx, "nope"); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("Instance(nope) = %v, want ErrNotFound", err)
			}

			wantHosts, _, _ := reg.Hosts(ctx, active)
			gotHosts, err := c.Hosts(ctx, client.Filter{})
			check("Hosts", wantHosts, gotHosts, err)
			wantHosts, _, _ = reg.Hosts(ctx, registry.Filter{Name: "ops"})
			gotHosts, err = c.Hosts(ctx, client.Filter{IncludeInactive: true, Name: "ops"})
			check("Hosts(all)", wantHosts, gotHosts, err)
		})
	}
}

func TestWrites(t *testing.T) {
	checkLeaks(t)
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			tr := newTestRegistry(t, mode)
			reg := tr.start(registry.Options{})
			c := tr.client(client.Options{})
			ctx := t.Context()

			if st, err := c.Heartbeat(ctx, "a1", nil); err != nil || st != registry.Refresh {
				t.Errorf("Heartbeat(unknown) = %q, %v; want refresh", st, err)
			}
			if err := c.UpdateTools(ctx, "a1", nil); !errors.Is(err, client.ErrNotFound) {
				t.Errorf("UpdateTools(unknown) = %v, want ErrNotFound", err)
			}
			if err := c.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "2", Host: "h", HeartbeatInterval: 90 * time.Second}); err != nil {
				t.Fatal(err)
			}
			if st, err := c.Heartbeat(ctx, "a1", nil); err != nil || st != registry.Refresh {
				t.Errorf("Heartbeat before tools = %q, %v; want refresh", st, err)
			}
			if err := c.UpdateTools(ctx, "a1", []json.RawMessage{toolJSON("hello", "echo hello")}); err != nil {
				t.Fatal(err)
			}
			if st, err := c.Heartbeat(ctx, "a1", json.RawMessage(`{"pid":7}`)); err != nil || st != registry.Ack {
				t.Errorf("Heartbeat = %q, %v; want ack", st, err)
			}
			in, _, err := reg.Instance(ctx, "a1")
			if err != nil {
				t.Fatal(err)
			}
			if in.HeartbeatInterval != 90*time.Second || string(in.System) != `{"pid":7}` || len(in.Tools) != 1 || !in.Active {
				t.Errorf("instance after writes = %+v", in)
			}
			if err := c.Deregister(ctx, "a1"); err != nil {
				t.Fatal(err)
			}
			if err := c.Deregister(ctx, "never-seen"); err != nil {
				t.Errorf("Deregister(unknown) = %v, want nil", err)
			}
			if in, _, _ := reg.Instance(ctx, "a1"); in.Active {
				t.Error("instance still active after Deregister")
			}
		})
	}
}

func TestPathEscaping(t *testing.T) {
	checkLeaks(t)
	reg, srv := newRegistryServer(t, registry.Options{})
	ctx := t.Context()
	c, _ := client.New(srv.URL, client.Options{})
	t.Cleanup(c.CloseIdleConnections)
	name := "say hello?ü#"
	if err := c.Register(ctx, registry.Registration{ID: "id with space?", Name: "ops", Version: "1", Host: "h"}); err != nil {
		t.Fatal(err)
	}
	if err := c.UpdateTools(ctx, "id with space?", []json.RawMessage{toolJSON(name, "x")}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Instance(ctx, "id with space?"); err != nil {
		t.Fatal(err)
	}
	tl, err := c.Tool(ctx, name, client.Filter{})
	if err != nil || tl.Name != name {
		t.Errorf("Tool(%q) = %+v, %v", name, tl, err)
	}
	if !strings.HasPrefix(srv.URL, "http://") {
		t.Fatal(srv.URL)
	}
}

// A registry mounted under a prefix is reached through a base URL with that
// path.
func TestPrefix(t *testing.T) {
	checkLeaks(t)
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	for _, base := range []string{srv.URL + "/registry", srv.URL + "/registry/"} {
		c, err := client.New(base, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Health(t.Context()); err != nil {
			t.Errorf("Health via %s: %v", base, err)
		}
		c.CloseIdleConnections()
	}
}

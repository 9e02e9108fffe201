// methods_test.go checks the methods beyond GET and POST: HEAD answers
// wherever GET does, with GET's status and headers and no body (it was a
// 405 on /health and /tools, which load balancers' health checks use);
// OPTIONS answers the Allow header of the path; other methods are a JSON
// 405 with Allow.

package registry_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

func methodsRegistry(t *testing.T) *registry.Registry {
	t.Helper()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	fillMethods(t, reg)
	return reg
}

// fillMethods registers two instances offering deploy.
func fillMethods(t *testing.T, reg *registry.Registry) {
	t.Helper()
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		if err := reg.Register(ctx, registry.Registration{ID: id, Name: "app", Version: "1", Host: "h-" + id}); err != nil {
			t.Fatal(err)
		}
		if err := reg.UpdateTools(ctx, id, []json.RawMessage{json.RawMessage(`{"name":"deploy"}`)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHeadAnswersAsGet(t *testing.T) {
	lb := serveLoopback(t, registry.Options{}, 0)
	fillMethods(t, lb.reg)
	hc := &http.Client{Timeout: 5 * time.Second}
	do := func(method, target string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, lb.url+target, nil)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	targets := []string{"/health", "/instances", "/instances?limit=1", "/instances/a", "/instances/nope",
		"/tools", "/tools?active=false", "/tools/deploy", "/tools/nope", "/hosts", "/hosts?limit=1",
		"/export/superputty", "/export/mobaxterm", "/instances?active=maybe"}
	headers := []string{"Content-Type", "ETag", "X-Registry-Index", "Link", "Content-Disposition"}
	for _, target := range targets {
		t.Run(target, func(t *testing.T) {
			get, _ := do("GET", target)
			head, body := do("HEAD", target)
			if head.StatusCode != get.StatusCode {
				t.Errorf("HEAD %s: status %d, GET %d", target, head.StatusCode, get.StatusCode)
			}
			for _, h := range headers {
				if head.Header.Get(h) != get.Header.Get(h) {
					t.Errorf("HEAD %s: %s %q, GET %q", target, h, head.Header.Get(h), get.Header.Get(h))
				}
			}
			if len(body) != 0 {
				t.Errorf("HEAD %s: a body of %d bytes", target, len(body))
			}
		})
	}
	t.Run("/events", func(t *testing.T) {
		resp, err := hc.Head(lb.url + "/events")
		if err != nil {
			t.Fatalf("HEAD /events: %v (a stream that never ends?)", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Errorf("HEAD /events: %s, Content-Type %q; want 200 text/event-stream", resp.Status, resp.Header.Get("Content-Type"))
		}
	})
}

func TestOptionsAndMethodNotAllowed(t *testing.T) {
	reg := methodsRegistry(t)
	tests := []struct {
		target string
		allow  []string
	}{
		{"/health", []string{"GET", "HEAD", "OPTIONS"}},
		{"/instances", []string{"GET", "HEAD", "OPTIONS", "POST"}},
		{"/instances/a", []string{"DELETE", "GET", "HEAD", "OPTIONS"}},
		{"/instances/a/heartbeat", []string{"OPTIONS", "POST"}},
		{"/instances/a/tools", []string{"OPTIONS", "POST"}},
		{"/tools", []string{"GET", "HEAD", "OPTIONS"}},
		{"/tools/deploy", []string{"GET", "HEAD", "OPTIONS"}},
		{"/hosts", []string{"GET", "HEAD", "OPTIONS"}},
		{"/events", []string{"GET", "HEAD", "OPTIONS"}},
		{"/export/mobaxterm", []string{"GET", "HEAD", "OPTIONS"}},
	}
	allowOf := func(h http.Header) []string {
		var out []string
		for m := range strings.SplitSeq(h.Get("Allow"), ",") {
			out = append(out, strings.TrimSpace(m))
		}
		slices.Sort(out)
		return out
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			rec := serveReq(reg, "OPTIONS", tt.target, "")
			if rec.Code != http.StatusOK {
				t.Errorf("OPTIONS: status %d, want 200", rec.Code)
			}
			if diff := cmp.Diff(tt.allow, allowOf(rec.Header())); diff != "" {
				t.Errorf("OPTIONS: Allow mismatch (-want +got):\n%s", diff)
			}
			for _, m := range []string{"PUT", "PATCH", "DELETE", "POST", "GET"} {
				if slices.Contains(tt.allow, m) {
					continue
				}
				rec := serveReq(reg, m, tt.target, "")
				if rec.Code != http.StatusMethodNotAllowed || detailOf(rec) != "Method Not Allowed" {
					t.Errorf("%s: %d %s, want 405 Method Not Allowed", m, rec.Code, rec.Body)
				}
				if diff := cmp.Diff(tt.allow, allowOf(rec.Header())); diff != "" {
					t.Errorf("%s: 405's Allow mismatch (-want +got):\n%s", m, diff)
				}
			}
		})
	}
}

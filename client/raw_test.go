// raw_test.go checks Client.Get: the body exactly as the registry sent
// it, the query of Filter.Values, and errors as the other reads give them.

package client_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

func TestGet(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := c.Register(ctx, registry.Registration{ID: "a1", Name: "ops", Version: "1", Host: "web-1", Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	// A description that is not a string: the decoded registry.Tool drops
	// it, the answer's bytes keep it.
	tool := `{"name":"deploy","description":{"text":"x"},"x-command":"/bin/deploy"}`
	if err := c.UpdateTools(ctx, "a1", []json.RawMessage{json.RawMessage(tool)}); err != nil {
		t.Fatal(err)
	}
	q := client.Filter{Labels: map[string]string{"env": "prod"}}.Values()
	if diff := cmp.Diff(url.Values{"active": {"true"}, "detail": {"true"}, "label": {"env=prod"}}, q); diff != "" {
		t.Errorf("Values mismatch (-want +got):\n%s", diff)
	}
	for _, path := range []string{"/tools/deploy", "/instances", "/hosts", "/export/mobaxterm"} {
		got, err := c.Get(ctx, path, q)
		if err != nil {
			t.Fatalf("Get %s: %v", path, err)
		}
		resp, err := http.Get(srv.URL + path + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		want, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != string(want) {
			t.Errorf("Get %s = %s, want the answer's bytes %s", path, got, want)
		}
	}
	if _, err := c.Get(ctx, "/tools/nothing", nil); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Get of an unknown tool: %v, want ErrNotFound", err)
	}
	var ae *client.APIError
	if _, err := c.Get(ctx, "/tools", url.Values{"active": {"maybe"}}); !errors.Is(err, client.ErrInvalid) || !errors.As(err, &ae) {
		t.Errorf("Get with a bad query: %v, want an *APIError matching ErrInvalid", err)
	}
}

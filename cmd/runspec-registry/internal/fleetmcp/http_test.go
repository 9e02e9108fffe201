// http_test.go checks Handler over a real socket (httptest): the bearer
// token (missing, wrong, right), the Origin rule (another site refused,
// the server's own and loopback origins allowed), and a whole session of
// the SDK's streamable HTTP client.

package fleetmcp_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
)

// initialize is a JSON-RPC initialize request of the 2025-11-25 protocol.
const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`

func TestHandlerChecks(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	if _, err := f.srv.Handler(fleetmcp.HTTPOptions{}); err == nil {
		t.Error("a handler without a token was made")
	}
	h, err := f.srv.Handler(fleetmcp.HTTPOptions{Token: "s3cret-token"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	self := hs.URL // http://127.0.0.1:PORT
	tests := []struct {
		name, auth, origin, path string
		want                     int
	}{
		{"no token", "", "", fleetmcp.Path, http.StatusUnauthorized},
		{"wrong token", "Bearer s3cret-tokeN", "", fleetmcp.Path, http.StatusUnauthorized},
		{"prefix of the token", "Bearer s3cret", "", fleetmcp.Path, http.StatusUnauthorized},
		{"not bearer", "Basic czNjcmV0LXRva2Vu", "", fleetmcp.Path, http.StatusUnauthorized},
		{"token", "Bearer s3cret-token", "", fleetmcp.Path, http.StatusOK},
		{"lower-case scheme", "bearer s3cret-token", "", fleetmcp.Path, http.StatusOK},
		{"another site", "Bearer s3cret-token", "https://evil.example", fleetmcp.Path, http.StatusForbidden},
		{"another site without token", "", "https://evil.example", fleetmcp.Path, http.StatusForbidden},
		{"null origin", "Bearer s3cret-token", "null", fleetmcp.Path, http.StatusForbidden},
		{"own origin", "Bearer s3cret-token", self, fleetmcp.Path, http.StatusOK},
		{"loopback origin", "Bearer s3cret-token", "http://localhost:3000", fleetmcp.Path, http.StatusOK},
		{"other path", "Bearer s3cret-token", "", "/", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, hs.URL+tt.path, strings.NewReader(initialize))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
		})
	}
}

// bearerTransport adds a bearer token to each request.
type bearerTransport struct{ token string }

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

func TestHandlerSession(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, autonomous(echo("deploy")))
	f.sync()
	h, err := f.srv.Handler(fleetmcp.HTTPOptions{Token: "tok"})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	for _, tt := range []struct {
		name, token string
		ok          bool
	}{{"right token", "tok", true}, {"wrong token", "tik", false}} {
		t.Run(tt.name, func(t *testing.T) {
			c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
			cs, err := c.Connect(t.Context(), &mcp.StreamableClientTransport{
				Endpoint: hs.URL + fleetmcp.Path, HTTPClient: &http.Client{Transport: bearerTransport{tt.token}},
			}, nil)
			if !tt.ok {
				if err == nil {
					cs.Close()
					t.Fatal("connected with a wrong token")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": "m"}})
			if err != nil || res.IsError {
				t.Fatalf("call over HTTP: %v %s", err, text(res))
			}
			if got := text(res); got != "[ran deploy on web-1]" {
				t.Errorf("answer %s", got)
			}
		})
	}
}

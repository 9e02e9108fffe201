// crossorigin_test.go checks the writes a web page could make a browser
// send: a cross-site request (Sec-Fetch-Site, or an Origin that is not the
// registry's) is a 403 whatever it carries, and a body that is not JSON
// (the text/plain of a "simple" form post) is a 415; agents, curl and
// same-origin pages are unaffected, and so are bodiless heartbeats and
// DELETE from non-browsers.

package registry_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/runspec/registry"
)

// writeReq is one write with the headers a client would send.
type writeReq struct {
	method, target, body string
	hdr                  map[string]string
}

func (w writeReq) serve(reg http.Handler) *httptest.ResponseRecorder {
	var req *http.Request
	if w.body == "" {
		req = httptest.NewRequest(w.method, w.target, nil)
	} else {
		req = httptest.NewRequest(w.method, w.target, strings.NewReader(w.body))
	}
	req.Host = "registry.example:8765"
	for k, v := range w.hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	reg.ServeHTTP(rec, req)
	return rec
}

func TestCrossOriginWrites(t *testing.T) {
	const refused = "Cross-origin request refused"
	jsonCT := map[string]string{"Content-Type": "application/json"}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	writes := []struct {
		name string
		req  writeReq
		ok   int
	}{
		{"register", writeReq{"POST", "/instances", regJSON("b"), jsonCT}, http.StatusCreated},
		{"tools", writeReq{"POST", "/instances/a/tools", `{"tools":[{"name":"evil"}]}`, jsonCT}, http.StatusOK},
		{"heartbeat without a body", writeReq{"POST", "/instances/a/heartbeat", "", nil}, http.StatusOK},
		{"deregister", writeReq{"DELETE", "/instances/a", "", nil}, http.StatusOK},
	}
	clients := []struct {
		name string
		hdr  []string
		pass bool
	}{
		{"an agent (no browser headers)", nil, true},
		{"a same-origin page", []string{"Sec-Fetch-Site", "same-origin", "Origin", "http://registry.example:8765"}, true},
		{"typed by the user", []string{"Sec-Fetch-Site", "none"}, true},
		{"an old browser, same origin", []string{"Origin", "http://registry.example:8765"}, true},
		{"a cross-site page", []string{"Sec-Fetch-Site", "cross-site", "Origin", "https://evil.example"}, false},
		{"a same-site page", []string{"Sec-Fetch-Site", "same-site", "Origin", "http://other.registry.example"}, false},
		{"an old browser, other origin", []string{"Origin", "https://evil.example"}, false},
		{"an old browser, other port", []string{"Origin", "http://registry.example:9999"}, false},
		{"a sandboxed page", []string{"Origin", "null"}, false},
		{"a cross-site page with the API key", []string{"Sec-Fetch-Site", "cross-site", "X-API-Key", "k"}, false},
	}
	for _, w := range writes {
		for _, c := range clients {
			t.Run(w.name+"/"+c.name, func(t *testing.T) {
				reg, err := registry.New(registry.Options{APIKey: "k"})
				if err != nil {
					t.Fatal(err)
				}
				setup := writeReq{"POST", "/instances", regJSON("a"), with(jsonCT, "X-API-Key", "k")}
				if rec := setup.serve(reg); rec.Code != http.StatusCreated {
					t.Fatalf("setup: %d %s", rec.Code, rec.Body)
				}
				before := serveReq(reg, "GET", "/instances", "").Body.String()
				req := w.req
				req.hdr = with(req.hdr, append([]string{"X-API-Key", "k"}, c.hdr...)...)
				rec := req.serve(reg)
				switch {
				case c.pass && rec.Code != w.ok:
					t.Errorf("status %d %s, want %d", rec.Code, rec.Body, w.ok)
				case !c.pass && (rec.Code != http.StatusForbidden || detailOf(rec) != refused):
					t.Errorf("status %d %s, want 403 %q", rec.Code, rec.Body, refused)
				case !c.pass && serveReq(reg, "GET", "/instances", "").Body.String() != before:
					t.Errorf("a refused write changed the registry")
				}
			})
		}
	}
	t.Run("reads stay open to pages", func(t *testing.T) {
		reg, _ := registry.New(registry.Options{})
		rec := writeReq{"GET", "/instances", "", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://dashboard.example"}}.serve(reg)
		if rec.Code != http.StatusOK {
			t.Errorf("cross-site GET: %d %s", rec.Code, rec.Body)
		}
	})
}

func TestWriteContentType(t *testing.T) {
	tests := []struct {
		contentType string
		code        int
	}{
		{"application/json", http.StatusCreated},
		{"application/json; charset=utf-8", http.StatusCreated},
		{"Application/JSON", http.StatusCreated},
		{"application/merge-patch+json", http.StatusCreated},
		{"application/vnd.runspec+json", http.StatusCreated},
		{"", http.StatusCreated}, // none: as the reference takes it
		{"text/plain", http.StatusUnsupportedMediaType},
		{"text/plain; charset=utf-8", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/json-seq", http.StatusUnsupportedMediaType},
		{"text/json", http.StatusUnsupportedMediaType},
		{"application/", http.StatusUnsupportedMediaType},
	}
	for _, tt := range tests {
		for _, target := range []string{"/instances", "/instances/a/tools", "/instances/a/heartbeat"} {
			t.Run(target+"/"+tt.contentType, func(t *testing.T) {
				reg, err := registry.New(registry.Options{})
				if err != nil {
					t.Fatal(err)
				}
				if rec := serveReq(reg, "POST", "/instances", regJSON("a")); rec.Code != http.StatusCreated {
					t.Fatal(rec.Body)
				}
				body, ok := map[string]string{
					"/instances":             regJSON("b"),
					"/instances/a/tools":     `{"tools":[{"name":"deploy"}]}`,
					"/instances/a/heartbeat": `{"system":{"pid":1}}`,
				}[target], tt.code
				if target != "/instances" && ok == http.StatusCreated {
					ok = http.StatusOK
				}
				before := serveReq(reg, "GET", "/instances?detail=true", "").Body.String()
				hdr := map[string]string{}
				if tt.contentType != "" {
					hdr["Content-Type"] = tt.contentType
				}
				rec := writeReq{"POST", target, body, hdr}.serve(reg)
				if rec.Code != ok {
					t.Errorf("status %d %s, want %d", rec.Code, rec.Body, ok)
				}
				if ok == http.StatusUnsupportedMediaType {
					want := `Unsupported Content-Type "` + tt.contentType + `": send application/json`
					if detailOf(rec) != want {
						t.Errorf("detail %q, want %q", detailOf(rec), want)
					}
					if serveReq(reg, "GET", "/instances?detail=true", "").Body.String() != before {
						t.Errorf("a refused write changed the registry")
					}
				}
			})
		}
	}
	t.Run("bodiless writes need no Content-Type", func(t *testing.T) {
		reg, _ := registry.New(registry.Options{})
		serveReq(reg, "POST", "/instances", regJSON("a"))
		for _, w := range []writeReq{
			{"POST", "/instances/a/heartbeat", "", map[string]string{"Content-Type": "text/plain"}},
			{"DELETE", "/instances/a", "", map[string]string{"Content-Type": "text/plain"}},
		} {
			if rec := w.serve(reg); rec.Code != http.StatusOK {
				t.Errorf("%s %s: %d %s, want 200", w.method, w.target, rec.Code, rec.Body)
			}
		}
	})
}

// apidoc_test.go checks GET /openapi.json, /docs, /docs/{file} and
// /version: what they answer, that they stay open under the read guard,
// that /docs runs under its Content-Security-Policy with no inline script
// or style and no other origin, and that /version says Options.Version.

package registry_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func TestDocsEndpoints(t *testing.T) {
	reader, err := registry.ParseRoles("read")
	if err != nil {
		t.Fatal(err)
	}
	keys := []registry.Key{registry.NewKey(registry.Identity{Name: "reader", Roles: reader}, "reader-key-0123456789")}
	tests := []struct {
		target, ctype string
		csp           bool
	}{
		{"/openapi.json", "application/json", false},
		{"/docs", "text/html; charset=utf-8", true},
		{"/docs/docs.js", "text/javascript; charset=utf-8", true},
		{"/docs/docs.css", "text/css; charset=utf-8", true},
		{"/version", "application/json", false},
	}
	for _, opts := range []registry.Options{{}, {ReadAuth: true, Keys: keys, Version: "v9.8.7"}} {
		h := newHarness(t, opts)
		if opts.ReadAuth { // the read guard applies to the registry's reads, not to these
			h.must(http.StatusForbidden, "GET", "/instances", "")
		}
		for _, tt := range tests {
			for _, method := range []string{"GET", "HEAD"} {
				rec := h.must(http.StatusOK, method, tt.target, "")
				if got := rec.Header().Get("Content-Type"); got != tt.ctype {
					t.Errorf("%s %s: Content-Type %q, want %q", method, tt.target, got, tt.ctype)
				}
				if got := rec.Header().Get("Content-Security-Policy"); tt.csp && got != docsCSP {
					t.Errorf("%s %s: Content-Security-Policy %q, want %q", method, tt.target, got, docsCSP)
				}
				if rec.Body.Len() == 0 {
					t.Errorf("%s %s: empty body", method, tt.target)
				}
			}
		}
		for _, target := range []string{"/docs/index.html", "/docs/openapi.json", "/docs/../go.mod", "/docs/"} {
			checkJSON(t, h.do("GET", target, ""), http.StatusNotFound, `{"detail":"Not Found"}`)
		}
		want := opts.Version
		if want == "" {
			want = "unknown"
		}
		checkJSON(t, h.do("GET", "/version", ""), http.StatusOK, `{"version":"`+want+`"}`)
	}
}

func TestOpenAPIDocument(t *testing.T) {
	h := newHarness(t, registry.Options{})
	var doc struct {
		OpenAPI string `json:"openapi"`
		Info    struct {
			Title, Version string
		}
		Servers []struct{ URL string }
	}
	if err := json.Unmarshal(h.must(http.StatusOK, "GET", "/openapi.json", "").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	got := []string{doc.OpenAPI, doc.Info.Title, doc.Servers[0].URL}
	if diff := cmp.Diff([]string{"3.1.0", "runspec-registry", "."}, got); diff != "" {
		t.Errorf("document head mismatch (-want +got):\n%s", diff)
	}
}

// TestDocsPageIsSelfContained reads the page as a browser under its CSP
// would: scripts and styles only from files (no inline code, no event
// handler attributes, no style attributes), all of them relative URLs (the
// page's own origin, under any mount prefix), and a script that fetches
// openapi.json relative to the page and never writes HTML.
func TestDocsPageIsSelfContained(t *testing.T) {
	h := newHarness(t, registry.Options{})
	page := h.must(http.StatusOK, "GET", "/docs", "").Body.String()
	scripts := regexp.MustCompile(`(?is)<script\b([^>]*)>(.*?)</script>`).FindAllStringSubmatch(page, -1)
	if len(scripts) != 1 {
		t.Fatalf("the page has %d scripts, want 1", len(scripts))
	}
	if strings.TrimSpace(scripts[0][2]) != "" || !strings.Contains(scripts[0][1], `src="docs/docs.js"`) {
		t.Errorf("the script is not only docs/docs.js: %q", scripts[0][0])
	}
	if m := regexp.MustCompile(`(?i)\s(on[a-z]+|style)\s*=`).FindString(page); m != "" {
		t.Errorf("the page has an inline handler or style attribute: %q", m)
	}
	if strings.Contains(strings.ToLower(page), "<style") {
		t.Error("the page has an inline style element")
	}
	for _, m := range regexp.MustCompile(`(?i)\s(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1) {
		if strings.Contains(m[1], "//") || strings.HasPrefix(m[1], "/") {
			t.Errorf("the page refers to %q: only relative URLs work under a mount prefix and the CSP", m[1])
		}
		if !strings.HasPrefix(m[1], "#") {
			h.must(http.StatusOK, "GET", "/"+m[1], "") // every file it refers to is served
		}
	}
	js := h.must(http.StatusOK, "GET", "/docs/docs.js", "").Body.String()
	if !strings.Contains(js, `fetch("openapi.json"`) {
		t.Error("docs.js does not fetch openapi.json relative to the page")
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(js, sink) {
			t.Errorf("docs.js uses %s: text must go in as text", sink)
		}
	}
}

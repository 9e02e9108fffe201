// ui_test.go checks the dashboard's handler: every file with its type,
// validators and security headers, the page's template, methods and
// unknown paths, and that the files load nothing from other sites and set
// no HTML from data.

package ui_test

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/runspec/registry/ui"
)

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func checkSecurity(t *testing.T, path string, h http.Header) {
	t.Helper()
	csp := h.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "object-src 'none'", "require-trusted-types-for 'script'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", path, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy allows unsafe code: %q", path, csp)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %s = %q, want %q", path, k, got, want)
		}
	}
}

func TestFiles(t *testing.T) {
	h := ui.New(ui.Options{})
	for _, tt := range []struct{ path, ctype string }{
		{"/", "text/html; charset=utf-8"},
		{"/index.html", "text/html; charset=utf-8"},
		{"/app.css", "text/css; charset=utf-8"},
		{"/icon.svg", "image/svg+xml"},
		{"/js/main.js", "text/javascript; charset=utf-8"},
		{"/js/fleet.js", "text/javascript; charset=utf-8"},
	} {
		rec := get(t, h, "GET", tt.path, nil)
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", tt.path, rec.Code)
		}
		if got := rec.Header().Get("Content-Type"); got != tt.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tt.path, got, tt.ctype)
		}
		checkSecurity(t, tt.path, rec.Header())
		etag := rec.Header().Get("ETag")
		if etag == "" || rec.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("GET %s: ETag %q, Cache-Control %q: want a validator and no-cache", tt.path, etag, rec.Header().Get("Cache-Control"))
		}
		if again := get(t, h, "GET", tt.path, map[string]string{"If-None-Match": etag}); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match = %d, want 304", tt.path, again.Code)
		}
		if head := get(t, h, "HEAD", tt.path, nil); head.Code != http.StatusOK || head.Body.Len() != 0 {
			t.Errorf("HEAD %s = %d with %d bytes", tt.path, head.Code, head.Body.Len())
		}
	}
	for _, path := range []string{"/nope", "/js/", "/../ui.go", "/static/index.html"} {
		rec := get(t, h, "GET", path, nil)
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, rec.Code)
		}
		checkSecurity(t, path, rec.Header())
	}
	rec := get(t, h, "POST", "/", nil)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST / = %d, Allow %q", rec.Code, rec.Header().Get("Allow"))
	}
}

// The page names the API's URL and the title, escaped as attribute and
// text.
func TestPageOptions(t *testing.T) {
	body := get(t, ui.New(ui.Options{API: `/api/"><script>`, Title: "<b>fleet</b>"}), "GET", "/", nil).Body.String()
	if !strings.Contains(body, `<meta name="runspec-api" content="/api/&#34;&gt;&lt;script&gt;">`) {
		t.Errorf("the API's URL is not in the page, escaped:\n%s", body)
	}
	if !strings.Contains(body, "<title>&lt;b&gt;fleet&lt;/b&gt;</title>") {
		t.Errorf("the title is not in the page, escaped:\n%s", body)
	}
	def := get(t, ui.New(ui.Options{}), "GET", "/", nil).Body.String()
	if !strings.Contains(def, `<meta name="runspec-api" content="../">`) {
		t.Errorf("the default API URL is not ../:\n%s", def)
	}
}

// The files are offline (nothing from another site), have no inline
// script or style, and the scripts never hand data to an HTML sink.
func TestFilesOffline(t *testing.T) {
	external := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	sinks := regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.style\s*=|setAttribute\(\s*['"](style|on)`)
	err := filepath.WalkDir("static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := string(b)
		if m := external.FindString(s); m != "" {
			t.Errorf("%s loads from another site: %q", p, m)
		}
		switch filepath.Ext(p) {
		case ".html":
			if regexp.MustCompile(`<script(?:\s[^>]*)?>[^<]`).MatchString(s) || strings.Contains(s, "<style") ||
				regexp.MustCompile(`\s(style|on[a-z]+)=`).MatchString(s) {
				t.Errorf("%s has inline script or style", p)
			}
		case ".js":
			if m := sinks.FindString(s); m != "" {
				t.Errorf("%s uses an HTML sink or inline code: %q", p, m)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

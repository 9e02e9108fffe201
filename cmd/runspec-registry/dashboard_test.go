// dashboard_test.go checks how serve mounts the dashboard: /ui/ serves it
// with its security headers, / redirects browsers there with a relative
// Location, and API clients get the API's answers unchanged.

package main

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/runspec/registry"
)

func TestDashboardMount(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := withDashboard(reg)
	for _, tt := range []struct {
		name, method, path, accept string
		code                       int
		location, ctype            string
	}{
		{"browser at /", "GET", "/", "text/html,application/xhtml+xml,*/*;q=0.8", http.StatusFound, "ui/", ""},
		{"browser at / keeps the query", "GET", "/?x=1", "text/html", http.StatusFound, "ui/?x=1", ""},
		{"curl at /", "GET", "/", "*/*", http.StatusNotFound, "", "application/json"},
		{"no Accept at /", "GET", "/", "", http.StatusNotFound, "", "application/json"},
		{"text/html refused", "GET", "/", "text/html;q=0, application/json", http.StatusNotFound, "", "application/json"},
		{"text/html at q=0.5", "GET", "/", "application/json, text/html;q=0.5", http.StatusFound, "ui/", ""},
		{"POST / goes to the API", "POST", "/", "text/html", http.StatusNotFound, "", "application/json"},
		{"/ui", "GET", "/ui", "", http.StatusFound, "ui/", ""},
		{"the page", "GET", "/ui/", "", http.StatusOK, "", "text/html; charset=utf-8"},
		{"a script", "GET", "/ui/js/main.js", "", http.StatusOK, "", "text/javascript; charset=utf-8"},
		{"the API", "GET", "/hosts", "text/html", http.StatusOK, "", "application/json"},
		{"health", "GET", "/health", "", http.StatusOK, "", "application/json"},
		{"unknown API path", "GET", "/uix", "", http.StatusNotFound, "", "application/json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, nil)
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code {
				t.Fatalf("%s %s = %d, want %d: %s", tt.method, tt.path, rec.Code, tt.code, rec.Body)
			}
			if got := rec.Header().Get("Location"); got != tt.location {
				t.Errorf("Location = %q, want %q", got, tt.location)
			}
			if tt.ctype != "" && rec.Header().Get("Content-Type") != tt.ctype {
				t.Errorf("Content-Type = %q, want %q", rec.Header().Get("Content-Type"), tt.ctype)
			}
			// Every answer of the dashboard (the page, its files, the
			// redirects to it) carries the security headers; the API's
			// answers are left as they were.
			dash := tt.location != "" || (tt.code == http.StatusOK && len(tt.path) > 3 && tt.path[:4] == "/ui/")
			if got := rec.Header().Get("X-Frame-Options"); dash != (got == "DENY") {
				t.Errorf("X-Frame-Options = %q on %s", got, tt.path)
			}
			if dash && (rec.Header().Get("Content-Security-Policy") == "" || rec.Header().Get("Referrer-Policy") != "no-referrer" ||
				rec.Header().Get("X-Content-Type-Options") != "nosniff") {
				t.Errorf("security headers missing on %s: %v", tt.path, rec.Header())
			}
		})
	}
}

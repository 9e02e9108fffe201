// dashboard.go mounts the web dashboard (package ui) beside the API: /ui/
// serves it, and / sends browsers there; every other path, and / for API
// clients, goes to the API unchanged.

package main

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/runspec/registry/ui"
)

// withDashboard serves the dashboard at /ui/ in front of api. A GET of /
// that accepts text/html (a browser's) is redirected to ui/ with a
// relative Location, so that it works behind a proxy's prefix too; API
// clients (curl sends */*) see the API's answer as before. No ServeMux:
// it would clean and redirect paths that the API answers itself.
func withDashboard(api http.Handler) http.Handler {
	dash := http.StripPrefix("/ui", ui.New(ui.Options{}))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := req.URL.Path
		switch {
		case strings.HasPrefix(p, "/ui/"):
			dash.ServeHTTP(w, req)
		case p == "/ui" || (p == "/" && wantsHTML(req)):
			if req.Method != http.MethodGet && req.Method != http.MethodHead {
				api.ServeHTTP(w, req)
				return
			}
			ui.SetSecurityHeaders(w.Header())
			target := "ui/"
			if req.URL.RawQuery != "" {
				target += "?" + req.URL.RawQuery
			}
			w.Header().Set("Location", target)
			w.WriteHeader(http.StatusFound)
		default:
			api.ServeHTTP(w, req)
		}
	})
}

// wantsHTML reports whether a request names text/html in its Accept
// header, as browsers do for a page; */* alone is not enough.
func wantsHTML(req *http.Request) bool {
	for _, v := range req.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			if strings.EqualFold(strings.TrimSpace(mt), "text/html") && !refused(params) {
				return true
			}
		}
	}
	return false
}

// refused reports whether the parameters of an Accept entry give it q=0.
func refused(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q == 0
		}
	}
	return false
}

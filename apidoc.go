// apidoc.go serves what describes the registry: GET /openapi.json (the
// OpenAPI 3.1 document, openapi.json, written by hand and kept true by the
// tests), GET /docs (a page that renders it, apidocs/, under a strict
// Content-Security-Policy: its own script and style only, no CDN) and GET
// /version (Options.Version). These are open whatever the read guard.

package registry

import (
	"embed"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// openapiDoc is the OpenAPI 3.1 document of the HTTP API.
//
//go:embed openapi.json
var openapiDoc []byte

//go:embed apidocs/index.html apidocs/docs.js apidocs/docs.css
var apidocs embed.FS

// docsCSP is the Content-Security-Policy of /docs: the page may run its
// own script and style, fetch from its own origin, and nothing else.
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docFiles are the files of /docs and /docs/{file}, and their types.
var docFiles = map[string]string{
	"":         "text/html; charset=utf-8",
	"docs.js":  "text/javascript; charset=utf-8",
	"docs.css": "text/css; charset=utf-8",
}

func (r *Registry) handleOpenAPI(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	w.Header().Set("Cache-Control", "no-cache")
	writeJSON(w, http.StatusOK, openapiDoc)
}

// handleDocs answers GET /docs (the page) and /docs/{file} (its script
// and style). The page's links are relative, so that it works under any
// mount prefix: /docs loads docs/docs.js, which fetches openapi.json.
func (r *Registry) handleDocs(w http.ResponseWriter, _ *http.Request, ps httprouter.Params) {
	name := ps.ByName("file")
	ctype, ok := docFiles[name]
	if !ok {
		writeDetail(w, http.StatusNotFound, "Not Found")
		return
	}
	if name == "" {
		name = "index.html"
	}
	b, err := apidocs.ReadFile("apidocs/" + name)
	if err != nil { // the files are embedded: only a mistake in docFiles gets here
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", docsCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Type", ctype)
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}

func (r *Registry) handleVersion(w http.ResponseWriter, _ *http.Request, _ httprouter.Params) {
	v := r.opts.Version
	if v == "" {
		v = "unknown"
	}
	writeJSON(w, http.StatusOK, append(appendString([]byte(`{"version":`), v), '}'))
}

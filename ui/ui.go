// ui.go serves the dashboard: the embedded files of static/ with their
// types, validators and security headers, and the dashboard's HTML page
// naming where the registry's API is.

// Package ui is the registry's web dashboard: a live view of the fleet
// (hosts, tools, instances, recent changes) in plain HTML, CSS and
// JavaScript modules, embedded in the binary. It needs no build step and
// loads nothing from other sites.
//
// The dashboard is a client of the registry's public HTTP API like any
// other: it reads /hosts, /tools, /instances and /events, and deregisters
// through DELETE /instances/{id}, with the key the user types in (kept in
// the tab's memory only). New returns an http.Handler with routes relative
// to "/"; mount it under a prefix with http.StripPrefix:
//
//	reg, _ := registry.New(registry.Options{})
//	mux := http.NewServeMux()
//	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
//	mux.Handle("/registry/ui/", http.StripPrefix("/registry/ui", ui.New(ui.Options{})))
//
// Every answer carries a strict Content-Security-Policy (scripts and styles
// from the dashboard's own origin only, no inline code, no framing, Trusted
// Types required for HTML sinks), X-Frame-Options DENY, nosniff and
// Referrer-Policy no-referrer.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// Options configure the dashboard.
type Options struct {
	// API is the URL of the registry's HTTP API (the URL under which
	// /hosts, /tools, /events … are), resolved by the browser against the
	// dashboard's own URL. If zero, defaults to "../": the dashboard
	// mounted at /ui/ beside an API mounted at /, or at /registry/ui/
	// beside /registry/. An API on another origin is refused by the
	// Content-Security-Policy: serve both from one origin.
	API string
	// Title is the page title. If zero, defaults to "runspec registry".
	Title string
}

// ContentSecurityPolicy is the policy every answer of the dashboard
// carries. Scripts and styles come from the dashboard's origin only, with
// no inline code (the page sets text, never HTML, and Trusted Types make
// any HTML sink throw).
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'none'; object-src 'none'; base-uri 'none'; form-action 'none'; " +
	"frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

// SetSecurityHeaders sets the headers of every answer of the dashboard:
// the Content-Security-Policy, X-Frame-Options DENY, nosniff and
// Referrer-Policy no-referrer. A server that answers for the dashboard
// (such as a redirect to it) sets them too.
func SetSecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

// file is one embedded file, ready to serve.
type file struct {
	body  []byte
	ctype string
	etag  string
}

type handler struct {
	files map[string]file // by path relative to static/, "" for the page
	mod   time.Time
}

var _ http.Handler = (*handler)(nil)

// New returns the dashboard's handler, with routes relative to "/": "/" is
// the page, the rest its scripts, styles and icon.
func New(opts Options) http.Handler {
	if opts.API == "" {
		opts.API = "../"
	}
	if opts.Title == "" {
		opts.Title = "runspec registry"
	}
	h := &handler{files: make(map[string]file)}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		name := strings.TrimPrefix(p, "static/")
		if name == "index.html" {
			// The only template: the API's URL and the title, escaped
			// by html/template as attribute and text.
			t, err := template.New(name).Parse(string(b))
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := t.Execute(&buf, opts); err != nil {
				return err
			}
			b, name = buf.Bytes(), ""
		}
		h.files[name] = newFile(p, b)
		return nil
	})
	if err != nil {
		// The files are compiled in and tested: this cannot happen in a
		// built binary.
		panic("ui: embedded files: " + err.Error())
	}
	return h
}

func newFile(name string, b []byte) file {
	sum := sha256.Sum256(b)
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) { // do not depend on the system's MIME tables
	case ".html":
		ctype = "text/html; charset=utf-8"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	case ".css":
		ctype = "text/css; charset=utf-8"
	case ".svg":
		ctype = "image/svg+xml"
	}
	return file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
}

// ServeHTTP serves the page at "/" (and "/index.html") and the files by
// name; anything else is 404, any method but GET and HEAD 405.
func (h *handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	hd := w.Header()
	SetSecurityHeaders(hd)
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(req.URL.Path, "/")
	if name == "index.html" {
		name = ""
	}
	f, ok := h.files[name]
	if !ok || strings.Contains(name, "..") {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("ETag", f.etag)
	// Revalidate every time (a 304 while unchanged), so that an upgraded
	// registry serves its own scripts at once.
	hd.Set("Cache-Control", "no-cache")
	http.ServeContent(w, req, "", h.mod, bytes.NewReader(f.body))
}

// browser_test.go renders /docs in a real browser (Debian's chromium,
// headless; skipped without it), with the registry mounted under a
// prefix: the page must load its script and style and the document from
// relative URLs under its Content-Security-Policy, and show every
// operation of the document.

package openapitest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

func TestDocsPageRenders(t *testing.T) {
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no chromium (Debian package chromium)")
	}
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	resp, err := http.Get(srv.URL + "/registry/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	ops := 0
	for _, item := range doc.Paths {
		for _, m := range []string{"get", "head", "post", "delete"} {
			if item[m] != nil {
				ops++
			}
		}
	}

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	args := []string{"--headless", "--disable-gpu", "--no-first-run", "--user-data-dir=" + t.TempDir(),
		"--virtual-time-budget=10000", "--dump-dom", srv.URL + "/registry/docs"}
	if os.Geteuid() == 0 {
		args = append([]string{"--no-sandbox"}, args...) // chromium refuses root otherwise
	}
	out, err := exec.CommandContext(ctx, browser, args...).Output()
	if err != nil {
		t.Fatalf("%s: %v", browser, err)
	}
	dom := string(out)
	if !strings.Contains(dom, `data-rendered="true"`) {
		t.Fatalf("the page did not render the document (its script did not run, or failed):\n%.2000s", dom)
	}
	if got := strings.Count(dom, `class="op `); got != ops {
		t.Errorf("the page shows %d operations, the document has %d", got, ops)
	}
	for _, want := range []string{"/instances/{id}/heartbeat", "X-Registry-Index", "ValidationError", "Retry-After"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if strings.Contains(dom, ">null<") || strings.Contains(dom, "undefined") {
		t.Error("the rendered page shows null or undefined")
	}
}

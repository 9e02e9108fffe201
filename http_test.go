// http_test.go checks the HTTP layer itself: /health, the JSON 404 and 405
// of unknown routes and methods, percent-encoded path segments, and serving
// under a mount prefix with http.StripPrefix.

package registry_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/runspec/registry"
)

func TestHealth(t *testing.T) {
	for _, opts := range []registry.Options{{}, {APIKey: "secret"}} {
		h := newHarness(t, opts)
		checkJSON(t, h.do("GET", "/health", ""), http.StatusOK, `{"status":"ok"}`)
		checkJSON(t, h.do("GET", "/health", "", withKey("wrong")), http.StatusOK, `{"status":"ok"}`)
	}
}

func TestNotFoundAndMethodNotAllowed(t *testing.T) {
	tests := []struct {
		method, target string
		code           int
	}{
		{"GET", "/", 404},
		{"GET", "/nope", 404},
		{"POST", "/nope", 404},
		{"GET", "/instances/a/nope", 404},
		{"POST", "/instances/a/heartbeat/x", 404},
		{"GET", "/tools/a/b", 404},
		{"GET", "/export", 404},
		{"GET", "/export/putty", 404},
		{"GET", "/instances/", 404},
		{"GET", "/health/", 404},
		{"GET", "/INSTANCES", 404},
		{"PUT", "/instances", 405},
		{"DELETE", "/instances", 405},
		{"PATCH", "/instances/a", 405},
		{"POST", "/instances/a", 405},
		{"GET", "/instances/a/heartbeat", 405},
		{"GET", "/instances/a/tools", 405},
		{"PUT", "/instances/a/tools", 405},
		{"POST", "/tools", 405},
		{"DELETE", "/tools/x", 405},
		{"POST", "/hosts", 405},
		{"POST", "/health", 405},
		{"POST", "/export/mobaxterm", 405},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			h.register("a", "app", "h1")
			want := `{"detail":"Not Found"}`
			if tt.code == 405 {
				want = `{"detail":"Method Not Allowed"}`
			}
			checkJSON(t, h.do(tt.method, tt.target, ""), tt.code, want)
		})
	}
}

func TestMountedUnderPrefix(t *testing.T) {
	h := newHarness(t, registry.Options{})
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", h.reg))
	h.h = mux
	checkJSON(t, h.do("POST", "/registry/instances", regBody("a", "app", "h1")), http.StatusCreated, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances", regBody("b", "app", "h2")), http.StatusCreated, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances/a/tools", toolsBody(`{"name":"t"}`)), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/registry/instances/a/heartbeat", ""), http.StatusOK, `{"status":"ack"}`)
	checkJSON(t, h.do("GET", "/registry/tools/t", ""), http.StatusOK, `{"name":"t","hosts":[{"host":"h1"}]}`)
	checkJSON(t, h.do("GET", "/registry/health", ""), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("GET", "/registry/instances/zzz", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	checkJSON(t, h.do("GET", "/registry/nope", ""), http.StatusNotFound, `{"detail":"Not Found"}`)
	checkJSON(t, h.do("PUT", "/registry/instances", ""), http.StatusMethodNotAllowed, `{"detail":"Method Not Allowed"}`)
	checkJSON(t, h.do("DELETE", "/registry/instances/a", ""), http.StatusOK, `{"status":"ok"}`)
	// The registry's answers do not depend on the prefix.
	if got := h.get("/registry/instances/a").(map[string]any)["active"]; got != false {
		t.Errorf("active = %v after DELETE, want false", got)
	}
	// Without the prefix, nothing is served (404 from the mux).
	if rec := h.do("GET", "/instances", ""); rec.Code != http.StatusNotFound {
		t.Errorf("GET /instances outside the prefix: status %d, want 404", rec.Code)
	}
	// Pages link within the prefix.
	pages := h.walkPages("/registry/instances?limit=1")
	if len(pages) != 2 {
		t.Errorf("walked %d pages of one instance each, want 2: %v", len(pages), pages)
	}
}

// Ids and tool names travel percent-encoded in paths.
func TestEscapedPathSegments(t *testing.T) {
	h := newHarness(t, registry.Options{})
	const id = "日本 id+1?"
	esc := "%E6%97%A5%E6%9C%AC%20id+1%3F"
	h.must(http.StatusCreated, "POST", "/instances", regBody(id, "app", "h1"))
	checkJSON(t, h.do("POST", "/instances/"+esc+"/tools", toolsBody(`{"name":"my tool?"}`)), http.StatusOK, `{"status":"ok"}`)
	checkJSON(t, h.do("POST", "/instances/"+esc+"/heartbeat", ""), http.StatusOK, `{"status":"ack"}`)
	if got := h.get("/instances/" + esc).(map[string]any)["instance_id"]; got != id {
		t.Errorf("instance_id = %v, want %q", got, id)
	}
	checkJSON(t, h.do("GET", "/tools/my%20tool%3F", ""), http.StatusOK, `{"name":"my tool?","hosts":[{"host":"h1"}]}`)
	checkJSON(t, h.do("DELETE", "/instances/"+esc, ""), http.StatusOK, `{"status":"ok"}`)
	if got := h.get("/instances/" + esc).(map[string]any)["active"]; got != false {
		t.Errorf("active after DELETE = %v, want false", got)
	}
}

// A query value that is not what its parameter takes is a 422 naming it,
// never a silent default: a misspelt purge must not deregister instead.
func TestBadQueryValuesRefused(t *testing.T) {
	const notBool = `{"detail":[{"loc":["query",%q],"msg":"Input should be a valid boolean, unable to interpret input","type":"bool_parsing"}]}`
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	checkJSON(t, h.do("DELETE", "/instances/a?purge=yes-please", ""), http.StatusUnprocessableEntity, fmt.Sprintf(notBool, "purge"))
	if got := h.get("/instances/a").(map[string]any)["active"]; got != true {
		t.Errorf("active = %v after a refused purge, want true", got)
	}
	checkJSON(t, h.do("GET", "/health?detail=maybe", ""), http.StatusUnprocessableEntity, fmt.Sprintf(notBool, "detail"))
	checkJSON(t, h.do("GET", "/events?index=soon", ""), http.StatusUnprocessableEntity,
		`{"detail":[{"loc":["query","index"],"msg":"Input should be a valid unsigned integer","type":"int_parsing"}]}`)
	checkJSON(t, h.do("GET", "/events", "", func(r *http.Request) { r.Header.Set("Last-Event-ID", "soon") }), http.StatusUnprocessableEntity,
		`{"detail":[{"loc":["header","Last-Event-ID"],"msg":"Input should be a valid unsigned integer","type":"int_parsing"}]}`)
	checkJSON(t, h.do("DELETE", "/instances/a?purge=false", ""), http.StatusOK, `{"status":"ok"}`)
}

// apidoc_internal_test.go keeps openapi.json true to the router: every
// (method, pattern) the handler registers is an operation of the document
// and every operation of the document is registered, except the paths the
// document marks x-runspec-pending (routes another branch adds), which
// fail once they are served, so that the mark is dropped then. It also
// checks that every $ref of the document resolves.

package registry

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// routes returns the (method, OpenAPI path) pairs the handler registers:
// every route is tagged with its counters (metrics.go's router), so
// counts.routes lists them all.
func (r *Registry) routes() []string {
	param := regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)
	var out []string
	for _, rs := range r.counts.routes {
		out = append(out, rs.method+" "+param.ReplaceAllString(rs.route, "{$1}"))
	}
	slices.Sort(out)
	return out
}

type openapiPaths map[string]map[string]json.RawMessage

// documented returns the (method, path) pairs of the document's
// operations, and apart those of the paths marked x-runspec-pending.
func documented(t *testing.T) (ops, pending []string, doc map[string]any) {
	t.Helper()
	var d struct {
		OpenAPI string       `json:"openapi"`
		Paths   openapiPaths `json:"paths"`
	}
	if err := json.Unmarshal(openapiDoc, &d); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if d.OpenAPI != "3.1.0" {
		t.Errorf("openapi.json is OpenAPI %q, want 3.1.0", d.OpenAPI)
	}
	methods := []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}
	for path, item := range d.Paths {
		_, isPending := item["x-runspec-pending"]
		for key := range item {
			if !slices.Contains(methods, key) {
				continue
			}
			op := strings.ToUpper(key) + " " + path
			if isPending {
				pending = append(pending, op)
			} else {
				ops = append(ops, op)
			}
		}
	}
	slices.Sort(ops)
	slices.Sort(pending)
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	return ops, pending, doc
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	r, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	served := r.routes()
	ops, pending, _ := documented(t)
	if len(served) < 20 {
		t.Fatalf("only %d routes found: the walk is broken", len(served))
	}
	var notServed []string
	for _, op := range ops {
		if !slices.Contains(served, op) {
			notServed = append(notServed, op)
		}
	}
	var undocumented, landed []string
	for _, op := range served {
		switch {
		case slices.Contains(pending, op):
			landed = append(landed, op)
		case !slices.Contains(ops, op):
			undocumented = append(undocumented, op)
		}
	}
	if diff := cmp.Diff([]string(nil), undocumented); diff != "" {
		t.Errorf("routes served that openapi.json lacks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string(nil), notServed); diff != "" {
		t.Errorf("operations of openapi.json that are not served (-want +got):\n%s", diff)
	}
	if landed != nil {
		t.Errorf("openapi.json marks these x-runspec-pending but they are served now: check their description "+
			"against their answers (the openapitest module validates them once unmarked), then drop the mark:\n%s",
			strings.Join(landed, "\n"))
	}
}

func TestOpenAPIRefsResolve(t *testing.T) {
	_, _, doc := documented(t)
	var walk func(at string, v any)
	n := 0
	walk = func(at string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				var cur any = doc
				for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
					m, _ := cur.(map[string]any)
					cur = m[part]
				}
				if cur == nil || !strings.HasPrefix(ref, "#/") {
					t.Errorf("%s: $ref %s does not resolve", at, ref)
				}
			}
			for k, x := range v {
				walk(at+"/"+k, x)
			}
		case []any:
			for _, x := range v {
				walk(at+"/[]", x)
			}
		}
	}
	walk("#", doc)
	if n == 0 {
		t.Fatal("no $ref found: the walk is broken")
	}
}

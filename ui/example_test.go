// example_test.go holds the runnable example of the package: the dashboard
// mounted beside an embedded registry.

package ui_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/runspec/registry"
	"github.com/runspec/registry/ui"
)

// The dashboard mounted at /registry/ui/ beside the registry's API at
// /registry/: the page finds the API at "../", relative to itself.
func Example() {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		panic(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
	mux.Handle("/registry/ui/", http.StripPrefix("/registry/ui", ui.New(ui.Options{})))

	for _, path := range []string{"/registry/ui/", "/registry/ui/js/main.js", "/registry/hosts"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		fmt.Println(path, rec.Code, rec.Header().Get("Content-Type"))
	}
	// Output:
	// /registry/ui/ 200 text/html; charset=utf-8
	// /registry/ui/js/main.js 200 text/javascript; charset=utf-8
	// /registry/hosts 200 application/json
}

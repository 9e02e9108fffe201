// example_test.go holds the runnable example of the package documentation.

package etcd_test

import (
	"context"
	"log"
	"net/http"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
)

// A replica of a registry on etcd, served on :8765. Start as many as needed,
// on the same endpoints and prefix, behind a load balancer.
func Example() {
	ctx := context.Background()
	st, err := etcd.Open(ctx, etcd.Config{Endpoints: []string{"http://127.0.0.1:2379"}})
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close() // after Run returns
	reg, err := registry.New(registry.Options{Cluster: st})
	if err != nil {
		log.Fatal(err)
	}
	go reg.Run(ctx) // feeds the view from etcd: writes wait for it
	log.Fatal(http.ListenAndServe(":8765", reg))
}

// Command embed shows an orchestrator that serves the registry under
// /registry/ in its own http.ServeMux, next to routes of its own.
//
//	go run ./examples/embed -addr 127.0.0.1:8080
//	curl -X POST localhost:8080/registry/instances -H 'Content-Type: application/json' -d '{"instance_id":"a1","name":"ops","version":"1","host":"web-1"}'
//	curl -X POST localhost:8080/registry/instances/a1/tools -H 'Content-Type: application/json' -d '{"tools":[{"name":"deploy","x-command":"/bin/deploy"}]}'
//	curl localhost:8080/registry/hosts
//	curl 'localhost:8080/where?tool=deploy'
//
// The other examples talk to it with -url:
//
//	go run ./examples/agent -url http://127.0.0.1:8080/registry
//	curl 'localhost:8080/where?tool=hello'
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/runspec/registry"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	reg, err := registry.New(registry.Options{})
	if err != nil {
		log.Fatal(err)
	}
	go reg.Run(ctx) // expiry at each deadline

	mux := http.NewServeMux()
	mux.Handle("/registry/", http.StripPrefix("/registry", reg))
	// A route of the orchestrator's own, using the registry as a library.
	mux.HandleFunc("GET /where", func(w http.ResponseWriter, r *http.Request) {
		tool, _, err := reg.Tool(r.Context(), r.URL.Query().Get("tool"), registry.Filter{ActiveOnly: true})
		if errors.Is(err, registry.ErrNotFound) {
			http.Error(w, "no host offers that tool", http.StatusNotFound)
			return
		}
		for _, h := range tool.Hosts {
			fmt.Fprintf(w, "%s: %s\n", h.Host, h.Command)
		}
	})

	srv := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	log.Printf("serving the registry at http://%s/registry/", *addr)
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("%v (another address: -addr 127.0.0.1:PORT)", err)
	}
}

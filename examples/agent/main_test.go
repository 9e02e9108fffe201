// main_test.go checks the example agent against a registry in the test:
// it registers with its tool, and deregisters when its context ends.

package main

import (
	"context"
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
)

func TestAgentRegistersAndDeregisters(t *testing.T) {
	reg, err := registry.New(registry.Options{APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		errc <- run(ctx, []string{"-url", srv.URL, "-key", "k", "-host", "test-host", "-tool", "greet"}, io.Discard)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		tool, _, err := reg.Tool(t.Context(), "greet", registry.Filter{ActiveOnly: true})
		if err == nil && len(tool.Hosts) == 1 && tool.Hosts[0].Host == "test-host" && tool.Description == "Say hello" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tool greet not registered on test-host: %+v, %v", tool, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run = %v", err)
	}
	if _, _, err := reg.Tool(t.Context(), "greet", registry.Filter{ActiveOnly: true}); err == nil {
		t.Error("tool still offered after the agent stopped")
	}
}

// Without a registry the agent retries for ever; it says once what it
// waits for.
func TestAgentWithoutRegistry(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-url", url}, &out) }()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(out.String(), "no registry answers") {
		if time.Now().After(deadline) {
			t.Fatalf("no hint within 5s in:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	// The registry is still absent when it stops: the last word is that.
	if err := <-errc; err == nil || !strings.Contains(err.Error(), "deregistering") {
		t.Fatalf("run = %v, want the failed deregistration", err)
	}
}

// syncBuffer is a strings.Builder safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

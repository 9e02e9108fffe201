// main_test.go checks the example orchestrator against a registry in the
// test: it prints which hosts offer the tool as agents come and go, and
// refuses bad flags.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

func waitOutput(t *testing.T, out *syncBuffer, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v in output:\n%s", want, within, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// The acceptance test: a host appears within a second of its agent
// starting, and disappears when the agent stops.
func TestOrchestratorFollowsAgents(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg)
	defer srv.Close()
	defer reg.ReleaseWaiters()

	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-url", srv.URL}, &out, &out) }()
	waitOutput(t, &out, "no host can run hello", 5*time.Second)

	c, err := client.New(srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	agent, err := client.NewAgent(c, client.AgentConfig{Name: "example", Host: "web-1",
		Tools: []json.RawMessage{json.RawMessage(`{"name":"hello","x-command":"echo hello"}`)}})
	if err != nil {
		t.Fatal(err)
	}
	actx, stopAgent := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- agent.Run(actx) }()
	waitOutput(t, &out, "hello can run on 1 host(s): web-1", time.Second)

	stopAgent()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Second)
	for strings.Count(out.String(), "no host can run hello") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the host did not disappear within 1s:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Errorf("run = %v", err)
	}
}

func TestOrchestratorFlags(t *testing.T) {
	var out syncBuffer
	if err := run(t.Context(), []string{"-url", "ftp://x"}, &out, &out); err == nil {
		t.Error("run accepted an ftp URL")
	}
	if err := run(t.Context(), []string{"-nope"}, &out, &out); err == nil {
		t.Error("run accepted an unknown flag")
	}
}

// Without a registry the watch retries for ever; the orchestrator says once
// what it waits for.
func TestOrchestratorWithoutRegistry(t *testing.T) {
	srv := httptest.NewServer(nil)
	url := srv.URL
	srv.Close() // nothing listens there now
	ctx, cancel := context.WithCancel(t.Context())
	var out syncBuffer
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, []string{"-url", url}, &out, &out) }()
	waitOutput(t, &out, "no registry answers at "+url, 5*time.Second)
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("run = %v", err)
	}
}

// serve_test.go tests serve's life under signals, with the built binary:
// SIGHUP never stops it, and SIGTERM after it still ends with the final
// checkpoint.

package main

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const reloadLine = "reloaded (SIGHUP)"

// hangup sends SIGHUP and waits until the server logs the reload.
func (s *server) hangup(t *testing.T) {
	t.Helper()
	before := strings.Count(s.logs.String(), reloadLine)
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(10 * time.Second)
	for strings.Count(s.logs.String(), reloadLine) == before {
		select {
		case err := <-s.done:
			t.Fatalf("the server exited on SIGHUP: %v\n%s", err, s.logs.String())
		case <-deadline:
			t.Fatalf("no reload logged within 10s of SIGHUP:\n%s", s.logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func TestHangupKeepsServing(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	s := start(t, bin, nil, "--data-dir", dir, "--rate-limit-write", "0")
	a := agent{t: t, client: http.DefaultClient, base: s.url}
	a.expect("POST", "/instances", `{"instance_id":"h1","name":"ops","version":"1","host":"web-1"}`, 201, "")
	a.expect("POST", "/instances/h1/tools", `{"tools":[{"name":"deploy"}]}`, 200, "")

	for range 3 {
		s.hangup(t)
		a.expect("GET", "/health", "", 200, `{"status":"ok"}`)
		a.expect("POST", "/instances/h1/heartbeat", "", 200, `{"status":"ack"}`)
	}
	a.expect("POST", "/instances", `{"instance_id":"h2","name":"ops","version":"1","host":"web-2"}`, 201, "")
	before := getBody(t, s.url+"/instances")
	s.stop(t) // SIGTERM: a clean exit, with the last checkpoint

	s = start(t, bin, nil, "--data-dir", dir)
	if diff := cmp.Diff(before, getBody(t, s.url+"/instances")); diff != "" {
		t.Errorf("records changed across SIGHUP and a clean restart (-before +after):\n%s", diff)
	}
	s.stop(t)
}

// protocol_test.go checks that a replica on etcd answers the protocol as
// the in-memory registry does, and that a second replica answers the same.

package etcd_test

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// TestProtocolSameAsMemory replays one sequence of protocol requests (every
// endpoint, good and bad input) against an in-memory registry and against a
// replica on etcd, and wants the same status and body from both, but for
// last_seen times. Each read is also repeated on a second replica, which
// must answer the same within a second.
func TestProtocolSameAsMemory(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/protocol/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/protocol/", registry.Options{})
	mem, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	memSrv := httptest.NewServer(mem)
	defer memSrv.Close()
	m := &replica{t: t, srv: memSrv}

	tools := `{"tools":[{"name":"deploy","description":"Deploy","inputSchema":{"type":"object","properties":{"env":{"type":"string"}}},"x-command":"/bin/deploy","x-run-as":"ops","x-become-method":"sudo","x-become-flags":"-H","x-autonomy":"ask"},{"name":"status","description":"S","inputSchema":{"type":"object"}}]}`
	steps := []struct{ method, path, body string }{
		{"GET", "/health", ""},
		{"GET", "/instances", ""},
		{"GET", "/tools", ""},
		{"POST", "/instances", `{"instance_id":"i1","name":"ops","version":"1","host":"web-1"}`},
		{"POST", "/instances", `{"instance_id":"i2","name":"ops","version":"1","host":"web-2","heartbeat_interval":60}`},
		{"POST", "/instances", `{"instance_id":"i3","name":"db","version":"2","host":"db-1","extra":true}`},
		{"POST", "/instances", `{"instance_id":"","name":"x","version":"1","host":"h"}`},
		{"POST", "/instances", `{"instance_id":"bad","name":"x","version":"1"}`},
		{"POST", "/instances", `{"instance_id":"bad","name":"x","version":"1","host":"h","heartbeat_interval":0}`},
		{"POST", "/instances", `not json`},
		{"POST", "/instances/i1/heartbeat", ``},
		{"POST", "/instances/nope/heartbeat", `{}`},
		{"POST", "/instances/i1/heartbeat", `{"system":"no"}`},
		{"POST", "/instances/i1/tools", tools},
		{"POST", "/instances/i2/tools", tools},
		{"POST", "/instances/i3/tools", `{"tools":[{"name":"backup","x-command":"/bin/backup"}]}`},
		{"POST", "/instances/nope/tools", `{"tools":[]}`},
		{"POST", "/instances/i1/tools", `{"tools":[{"name":"a"},{"name":"a"}]}`},
		{"POST", "/instances/i1/tools", `{"tools":[{"description":"no name"}]}`},
		{"POST", "/instances/i1/tools", `{"tools":{}}`},
		{"POST", "/instances/i1/heartbeat", `{"system":{"pid":42,"uptime":1.5}}`},
		{"GET", "/instances", ""},
		{"GET", "/instances?active=true", ""},
		{"GET", "/instances/i1", ""},
		{"GET", "/instances/nope", ""},
		{"GET", "/tools", ""},
		{"GET", "/tools?active=false", ""},
		{"GET", "/tools/deploy", ""},
		{"GET", "/tools/nope", ""},
		{"GET", "/tools?host=web-2", ""},
		{"GET", "/hosts", ""},
		{"GET", "/export/superputty?user=admin", ""},
		{"GET", "/export/mobaxterm", ""},
		{"GET", "/instances?limit=2", ""},
		{"GET", "/tools?active=maybe", ""},
		{"DELETE", "/instances/i2", ""},
		{"DELETE", "/instances/nope", ""},
		{"GET", "/tools/deploy", ""},
		{"GET", "/tools/deploy?active=false", ""},
		{"GET", "/hosts?active=false", ""},
		{"POST", "/instances/i2/tools", `{"tools":[{"name":"only"}]}`}, // stored, still inactive
		{"GET", "/instances/i2", ""},
		{"POST", "/instances/i2/heartbeat", ``}, // active again
		{"GET", "/instances/i2", ""},
		{"POST", "/instances", `{"instance_id":"i1","name":"ops","version":"3","host":"web-1"}`}, // replaces: no tools
		{"POST", "/instances/i1/heartbeat", ``},
		{"GET", "/instances", ""},
		{"GET", "/tools", ""},
		{"GET", "/hosts", ""},
	}
	seen := regexp.MustCompile(`"last_seen":[0-9.e+]+`)
	norm := func(s string) string { return seen.ReplaceAllString(s, `"last_seen":0`) }
	for i, st := range steps {
		want := m.do(st.method, st.path, st.body)
		got := a.do(st.method, st.path, st.body)
		if got.code != want.code || norm(got.body) != norm(want.body) {
			t.Errorf("step %d %s %s:\n in memory %d %s\n on etcd   %d %s\n%s", i, st.method, st.path,
				want.code, want.body, got.code, got.body, cmp.Diff(norm(want.body), norm(got.body)))
			continue
		}
		if ct := got.header.Get("Content-Type"); ct != want.header.Get("Content-Type") {
			t.Errorf("step %d: Content-Type %q, in memory %q", i, ct, want.header.Get("Content-Type"))
		}
		if st.method != "GET" || strings.Contains(st.path, "limit=") {
			continue
		}
		var other reply
		deadline := time.Now().Add(time.Second)
		for {
			other = b.do(st.method, st.path, st.body)
			if other.code == got.code && norm(other.body) == norm(got.body) || time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		if other.code != got.code || norm(other.body) != norm(got.body) {
			t.Errorf("step %d GET %s: replica B answers %d %s, A %d %s", i, st.path, other.code, other.body, got.code, got.body)
		}
	}
	_ = http.StatusOK
}

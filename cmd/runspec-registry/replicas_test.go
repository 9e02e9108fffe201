// replicas_test.go runs two registry processes with --store etcd on one
// etcd: Debian's etcd-server 3.4 when it is installed, and the in-process
// etcd 3.7 of etcdtest.

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/runspec/registry/store/etcd/etcdtest"
)

func TestReplicasEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	t.Run("etcd3.7-embedded", func(t *testing.T) {
		testReplicas(t, bin, etcdtest.Start(t, 1).Endpoints()[0])
	})
	t.Run("etcd3.4-debian", func(t *testing.T) {
		testReplicas(t, bin, etcdtest.StartBinary(t).Endpoint)
	})
}

// until polls cond every 10 ms for at most limit, and returns how long it
// took.
func until(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func testReplicas(t *testing.T, bin, endpoint string) {
	args := []string{"--store", "etcd", "--etcd-endpoints", endpoint, "--etcd-prefix", "/e2e/",
		"--checkpoint-interval", "1s", "--rate-limit-write", "0", "--rate-limit-heartbeat", "0"}
	sa, sb := start(t, bin, nil, args...), start(t, bin, nil, args...)
	client := &http.Client{Timeout: 10 * time.Second}
	a, b := agent{t: t, client: client, base: sa.url}, agent{t: t, client: client, base: sb.url}

	// The real agent's life, through A; B follows within a second.
	a.life()
	took := until(t, time.Second, "B shows the agent's deregistration", func() bool {
		var in struct{ Active bool }
		code, body := b.do("GET", "/instances/e2e-1", "")
		return code == 200 && json.Unmarshal([]byte(body), &in) == nil && !in.Active
	})
	t.Logf("B showed A's last write after %v", took)
	b.expect("GET", "/health", "", 200, `{"status":"ok"}`)

	// An agent heartbeating every second through A (no body, as the real
	// client) stays active on B; when it stops, both report it inactive
	// within TTL + 1 s.
	a.expect("POST", "/instances", `{"instance_id":"hb","name":"ops","version":"1","host":"web-2","heartbeat_interval":1}`, 201, "")
	a.expect("POST", "/instances/hb/tools", `{"tools":[{"name":"status","x-command":"/bin/status"}]}`, 200, "")
	active := func(ag agent) bool {
		var in struct{ Active bool }
		code, body := ag.do("GET", "/instances/hb", "")
		return code == 200 && json.Unmarshal([]byte(body), &in) == nil && in.Active
	}
	var last time.Time
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		a.expect("POST", "/instances/hb/heartbeat", "", 200, `{"status":"ack"}`)
		last = time.Now()
		if !active(b) {
			t.Fatal("B: inactive while the agent heartbeats through A")
		}
	}
	for name, ag := range map[string]agent{"A": a, "B": b} {
		until(t, 4*time.Second-time.Since(last), name+" reports the stopped agent inactive", func() bool { return !active(ag) })
		t.Logf("%s: inactive %v after the last heartbeat (TTL 3s)", name, time.Since(last).Round(time.Millisecond))
	}

	// kill -9 of A in the middle of registrations: B has every write A
	// acknowledged.
	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("k%d-%d", w, i)
				code, err := post(client, sa.url+"/instances", fmt.Sprintf(`{"instance_id":%q,"name":"n","version":"1","host":"h"}`, id))
				if err != nil || code != 201 {
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	sa.cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	t.Logf("A killed after acknowledging %d registrations", len(acked))
	if len(acked) == 0 {
		t.Fatal("A acknowledged nothing before it was killed")
	}
	until(t, 2*time.Second, "B has every write A acknowledged", func() bool {
		for _, id := range acked {
			if code, _ := b.do("GET", "/instances/"+id, ""); code != 200 {
				return false
			}
		}
		return true
	})
	sb.stop(t)
}

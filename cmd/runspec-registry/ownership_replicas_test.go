// ownership_replicas_test.go checks ownership across two registry
// processes on one etcd (the in-process etcd of etcdtest): an instance
// registered through A with one key cannot be taken through B with
// another, not even right after A acknowledged it, before B's view has
// it; when two identities register one new id at once through the two
// replicas, exactly one owns it and the other is refused; a restarted
// replica still refuses.

package main

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry/store/etcd/etcdtest"
)

func TestOwnershipAcrossReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("starts etcd and two registries")
	}
	bin := sharedBinary(t)
	endpoint := etcdtest.Start(t, 1).Endpoints()[0]
	p := newPKI(t)
	k := newFleetKeys(t)
	roots := p.roots()
	args := append(p.tlsArgs(""), "--store", "etcd", "--etcd-endpoints", endpoint, "--etcd-prefix", "/own/",
		"--keys-file", k.writeKeysFile(t, ""), "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")
	sa, sb := startSecure(t, bin, args...), startSecure(t, bin, args...)
	x := &httpClient{c: caller{key: k.agentA}}
	y := &httpClient{c: caller{key: k.agentB}}
	x.cl, y.cl = x.c.client(roots), y.c.client(roots)

	// Registered through A with X; the hijack through B with Y.
	x.expect(t, 201, `{"status":"ok"}`, "POST", sa.url+"/instances", regBody("e1", "web-1"))
	x.expect(t, 200, `{"status":"ok"}`, "POST", sa.url+"/instances/e1/tools", goodTools)
	until(t, 5*time.Second, "B shows e1's tools", func() bool {
		return x.do("GET", sb.url+"/tools/restart", "").code == 200
	})
	hijack := func(base string) {
		t.Helper()
		for _, a := range []struct{ method, path, body string }{
			{"POST", "/instances/e1/tools", evilTools},
			{"POST", "/instances", regBody("e1", "web-9")},
			{"DELETE", "/instances/e1", ""},
			{"POST", "/instances/e1/heartbeat", ""},
		} {
			if r := y.do(a.method, base+a.path, a.body); r.code != 403 || r.body != notOwner {
				t.Errorf("through B: %s %s by agent-b: %d %s %v, want 403 %s", a.method, a.path, r.code, r.body, r.err, notOwner)
			}
		}
		x.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/e1/heartbeat", "")
		if got, want := x.must(t, 200, "GET", base+"/tools/restart", ""), fmt.Sprintf(goodTool, "web-1"); got != want {
			t.Errorf("through B after the hijack: %s, want %s", got, want)
		}
	}
	hijack(sb.url)

	// Right after A's acknowledgement, B may not have the record in its
	// view yet: etcd's guard refuses all the same (never 200, never 404).
	const rounds = 20
	for i := range rounds {
		id := fmt.Sprintf("lag-%d", i)
		x.must(t, 201, "POST", sa.url+"/instances", regBody(id, "web-1"))
		for _, a := range []struct{ method, path, body string }{
			{"POST", "/instances/" + id + "/tools", evilTools},
			{"DELETE", "/instances/" + id, ""},
		} {
			if r := y.do(a.method, sb.url+a.path, a.body); r.code != 403 || r.body != notOwner {
				t.Errorf("through B right after A's 201: %s %s: %d %s %v, want 403 %s", a.method, a.path, r.code, r.body, r.err, notOwner)
			}
		}
	}

	// One new id, two identities, two replicas, at once.
	wins := map[string]int{}
	for i := range rounds {
		id := fmt.Sprintf("race-%d", i)
		var wg sync.WaitGroup
		ready := make(chan struct{})
		got := make([]reply, 2)
		for j, try := range []struct {
			c    *httpClient
			base string
		}{{x, sa.url}, {y, sb.url}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-ready
				got[j] = try.c.do("POST", try.base+"/instances", regBody(id, "web-1"))
			}()
		}
		close(ready)
		wg.Wait()
		var winner string
		switch {
		case got[0].code == 201 && got[1].code == 403 && got[1].body == notOwner:
			winner = "agent-a"
		case got[1].code == 201 && got[0].code == 403 && got[0].body == notOwner:
			winner = "agent-b"
		default:
			t.Fatalf("%s registered at once by agent-a through A and agent-b through B: %d %s %v / %d %s %v; want one 201 and one 403",
				id, got[0].code, got[0].body, got[0].err, got[1].code, got[1].body, got[1].err)
		}
		wins[winner]++
		for _, base := range []string{sa.url, sb.url} {
			until(t, 5*time.Second, id+" owned by "+winner+" on both replicas", func() bool {
				r := x.do("GET", base+"/instances/"+id+"?detail=true", "")
				return r.code == 200 && ownerIn(r.body) == winner
			})
		}
	}
	t.Logf("concurrent registrations of %d new ids: won by %v", rounds, wins)

	// A restarted replica still refuses, and still lets the owner write.
	sb.stop(t)
	sb = startSecure(t, bin, args...)
	x.cl.CloseIdleConnections()
	y.cl.CloseIdleConnections()
	hijack(sb.url)
	x.expect(t, 200, `{"status":"ok"}`, "POST", sb.url+"/instances/e1/tools", goodTools)
	sa.stop(t)
	sb.stop(t)
}

// ownerIn is the owner in a detailed record, or "".
func ownerIn(body string) string {
	var rec struct {
		Owner string `json:"owner"`
	}
	if err := json.Unmarshal([]byte(body), &rec); err != nil {
		return ""
	}
	return rec.Owner
}

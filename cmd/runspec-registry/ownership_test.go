// ownership_test.go checks that ownership is stored, against the built
// binary on the file store: after kill -9 and after SIGTERM, a restarted
// registry on the same --data-dir still refuses another identity and still
// lets the owner write; and records stored before there were identities
// belong to the identity api-key (--api-key), which is how a fleet moves
// from an open registry or a shared key to per-agent keys.

package main

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"
)

func TestOwnershipSurvivesRestarts(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	dir := t.TempDir()
	args := append(p.tlsArgs("optional"), "--keys-file", k.writeKeysFile(t, ""), "--data-dir", dir,
		"--rate-limit-write", "0", "--rate-limit-heartbeat", "0")
	roots := p.roots()
	client := func(c caller) *httpClient { return &httpClient{c: c, cl: c.client(roots)} }
	agentA, agentB := client(caller{key: k.agentA}), client(caller{key: k.agentB})
	certDB1, certWeb1 := client(caller{cert: p.db1}), client(caller{cert: p.web1})

	s := startSecure(t, bin, args...)
	agentA.must(t, 201, "POST", s.url+"/instances", regBody("k1", "web-1"))
	agentA.must(t, 200, "POST", s.url+"/instances/k1/tools", goodTools)
	certDB1.must(t, 201, "POST", s.url+"/instances", regBody("c1", "db-1"))
	certDB1.must(t, 200, "POST", s.url+"/instances/c1/tools", goodTools)

	for _, stop := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9", syscall.SIGKILL}, {"SIGTERM", syscall.SIGTERM}} {
		s.cmd.Process.Signal(stop.sig)
		select {
		case <-s.done:
		case <-time.After(20 * time.Second):
			t.Fatalf("no exit within 20s of %s", stop.name)
		}
		s = startSecure(t, bin, args...)
		base := s.url
		// Connections to the old process are gone: new ones.
		for _, c := range []*httpClient{agentA, agentB, certDB1, certWeb1} {
			c.cl.CloseIdleConnections()
		}
		for _, try := range []struct {
			who          *httpClient
			method, path string
			body         string
		}{
			{agentB, "POST", "/instances/k1/tools", evilTools},
			{agentB, "POST", "/instances", regBody("k1", "web-9")},
			{agentB, "DELETE", "/instances/k1", ""},
			{certWeb1, "POST", "/instances/k1/tools", evilTools},
			{certWeb1, "POST", "/instances/c1/tools", evilTools},
			{certWeb1, "DELETE", "/instances/c1", ""},
			{agentA, "POST", "/instances/c1/tools", evilTools},
		} {
			if r := try.who.do(try.method, base+try.path, try.body); r.code != 403 || r.body != notOwner {
				t.Errorf("after %s and a restart: %s %s by another identity: %d %s %v, want 403 %s",
					stop.name, try.method, try.path, r.code, r.body, r.err, notOwner)
			}
		}
		for _, own := range []struct {
			who *httpClient
			id  string
		}{{agentA, "k1"}, {certDB1, "c1"}} {
			own.who.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/"+own.id+"/heartbeat", "")
			own.who.expect(t, 200, `{"status":"ok"}`, "POST", base+"/instances/"+own.id+"/tools", goodTools)
		}
		for id, want := range map[string]string{"k1": "agent-a", "c1": "db-1"} {
			if got := ownerOf(t, agentA, base, id); got != want {
				t.Errorf("after %s: owner of %s is %q, want %q", stop.name, id, got, want)
			}
		}
	}
	s.stop(t)
}

// ownerOf is the owner that GET /instances/{id}?detail=true shows.
func ownerOf(t *testing.T, c *httpClient, base, id string) string {
	t.Helper()
	var rec struct {
		Owner *string `json:"owner"`
	}
	if err := json.Unmarshal([]byte(c.must(t, 200, "GET", base+"/instances/"+id+"?detail=true", "")), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Owner == nil {
		return "(none)"
	}
	return *rec.Owner
}

// TestRecordsFromBeforeOwnership: what an open registry stored belongs,
// once identities exist, to api-key: the agents that keep the shared key
// keep their instances; per-agent keys cannot take them; an admin can.
func TestRecordsFromBeforeOwnership(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	dir := t.TempDir()
	roots := p.roots()
	common := append(p.tlsArgs(""), "--data-dir", dir, "--rate-limit-write", "0")
	anyone := &httpClient{cl: caller{}.client(roots)}

	s := startSecure(t, bin, common...) // open: no key, no identities
	anyone.must(t, 201, "POST", s.url+"/instances", regBody("old", "web-1"))
	anyone.must(t, 200, "POST", s.url+"/instances/old/tools", goodTools)
	s.stop(t)

	// Then a shared key and per-agent keys.
	s = startSecure(t, bin, append(common, "--api-key", k.shared, "--keys-file", k.writeKeysFile(t, ""))...)
	shared, agentA, admin := &httpClient{c: caller{key: k.shared}}, &httpClient{c: caller{key: k.agentA}}, &httpClient{c: caller{key: k.admin}}
	for _, c := range []*httpClient{shared, agentA, admin} {
		c.cl = c.c.client(roots)
	}
	if got := ownerOf(t, shared, s.url, "old"); got != "(none)" {
		t.Errorf("a record from before ownership shows owner %q; the security model says it shows none", got)
	}
	agentA.expect(t, 403, notOwner, "POST", s.url+"/instances/old/tools", evilTools)
	agentA.expect(t, 403, notOwner, "POST", s.url+"/instances/old/heartbeat", "")
	anyone.expect(t, 403, `{"detail":"Invalid or missing API key"}`, "POST", s.url+"/instances/old/tools", evilTools)
	shared.expect(t, 200, `{"status":"ack"}`, "POST", s.url+"/instances/old/heartbeat", "")
	shared.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/old/tools", goodTools)
	s.stop(t)

	// Keys file only: no identity is api-key any more; only an admin may
	// still change the old record.
	s = startSecure(t, bin, append(common, "--keys-file", k.writeKeysFile(t, ""))...)
	for _, c := range []*httpClient{shared, agentA, admin} {
		c.cl.CloseIdleConnections()
	}
	shared.expect(t, 403, `{"detail":"Invalid or missing API key"}`, "POST", s.url+"/instances/old/heartbeat", "")
	agentA.expect(t, 403, notOwner, "POST", s.url+"/instances/old/heartbeat", "")
	admin.expect(t, 200, `{"status":"ack"}`, "POST", s.url+"/instances/old/heartbeat", "")
	admin.expect(t, 200, `{"status":"ok"}`, "DELETE", s.url+"/instances/old", "")
	s.stop(t)
}

// hijack_test.go tries to take over another agent's instance from
// outside, against the built binary: with per-agent keys and with client
// certificates, an attacker that may write is refused on the victim's id
// (its commands, its host, its deregistration), the victim's commands stay
// and its heartbeats keep their ack; a new id on the victim's host is
// refused under hosts= and --bind-cert-to-host (and accepted without them,
// which is what they are for).

package main

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// hijackCase is one attack: a request and the answer it must get.
type hijackCase struct {
	what, method, path, body string
	want                     string // the exact 403 body
}

// tryHijack runs the attacks of attacker on the instance id that victim
// registered on host, checking after each that the victim's heartbeat
// still gets ack, and at the end that its record and commands are as the
// victim posted them.
func tryHijack(t *testing.T, base string, victim, attacker *httpClient, id, host, owner string, attacks []hijackCase) {
	t.Helper()
	victim.expect(t, 201, `{"status":"ok"}`, "POST", base+"/instances", regBody(id, host))
	victim.expect(t, 200, `{"status":"ok"}`, "POST", base+"/instances/"+id+"/tools", goodTools)
	victim.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/"+id+"/heartbeat", "")
	for _, a := range attacks {
		r := attacker.do(a.method, base+a.path, a.body)
		if r.err != nil || r.code != 403 || r.body != a.want {
			t.Errorf("%s: %d %s %v; want 403 %s", a.what, r.code, r.body, r.err, a.want)
		}
		victim.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/"+id+"/heartbeat", "")
	}
	if got, want := victim.must(t, 200, "GET", base+"/tools/restart", ""), fmt.Sprintf(goodTool, host); got != want {
		t.Errorf("/tools/restart after the attacks:\n%s\nwant the victim's command:\n%s", got, want)
	}
	var rec struct {
		Host   string `json:"host"`
		Active bool   `json:"active"`
		Owner  string `json:"owner"`
		Tools  []struct {
			Command string `json:"x-command"`
			RunAs   string `json:"x-run-as"`
		} `json:"tools"`
	}
	if err := json.Unmarshal([]byte(victim.must(t, 200, "GET", base+"/instances/"+id+"?detail=true", "")), &rec); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%s true %s [{/sbin/restart app ops}]", host, owner)
	if got := fmt.Sprintf("%s %v %s %v", rec.Host, rec.Active, rec.Owner, rec.Tools); got != want {
		t.Errorf("the victim's record after the attacks: %s, want %s", got, want)
	}
}

// detail is the JSON error body with detail d.
func detail(d string) string {
	b, _ := json.Marshal(map[string]string{"detail": d})
	return string(b)
}

// attacksOn are the attacks on id, for an attacker named name that may
// not register host.
func attacksOn(id, host, ownHost, name, roles string) []hijackCase {
	hostRefused := detail(fmt.Sprintf("Identity %q may not register instances on host %q", name, host))
	return []hijackCase{
		{"its commands replaced", "POST", "/instances/" + id + "/tools", evilTools, notOwner},
		{"its id moved to the attacker's host", "POST", "/instances", regBody(id, ownHost), notOwner},
		{"its id re-registered on its host", "POST", "/instances", regBody(id, host), hostRefused},
		{"deregistered", "DELETE", "/instances/" + id, "", notOwner},
		{"purged", "DELETE", "/instances/" + id + "?purge=true", "",
			detail(fmt.Sprintf("Identity %q (roles: %s) may not do this", name, roles))},
		{"heartbeats in its name", "POST", "/instances/" + id + "/heartbeat", "", notOwner},
		{"a new id on its host", "POST", "/instances", regBody("sneaky", host), hostRefused},
	}
}

func TestHijackFromOutside(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	roots := p.roots()
	fast := []string{"--rate-limit-write", "0", "--rate-limit-heartbeat", "0", "--in-memory"}

	t.Run("keys", func(t *testing.T) {
		t.Parallel()
		k := newFleetKeys(t)
		s := startSecure(t, bin, append(append(p.tlsArgs(""), fast...), "--keys-file", k.writeKeysFile(t, "web-*"))...)
		victim := &httpClient{c: caller{key: k.agentA}}
		attacker := &httpClient{c: caller{key: k.agentB, bearer: true}}
		victim.cl, attacker.cl = victim.c.client(roots), attacker.c.client(roots)
		tryHijack(t, s.url, victim, attacker, "victim", "db-1", "agent-a", attacksOn("victim", "db-1", "web-9", "agent-b", "agent"))
		// The attacker's key works where it may: the refusals are about
		// the victim, not a broken key.
		attacker.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("own", "web-3"))
		// An admin may act on any instance; re-registering it leaves its
		// owner as it was.
		admin := &httpClient{c: caller{key: k.admin}}
		admin.cl = admin.c.client(roots)
		admin.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("victim", "db-2"))
		if got := ownerOf(t, admin, s.url, "victim"); got != "agent-a" {
			t.Errorf("after an admin re-registered the victim's id: owner %s, want agent-a", got)
		}
		victim.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/victim/tools", goodTools)
	})

	t.Run("certificates bound to hosts", func(t *testing.T) {
		t.Parallel()
		s := startSecure(t, bin, append(append(p.tlsArgs("required"), fast...), "--bind-cert-to-host")...)
		victim, attacker := &httpClient{c: caller{cert: p.db1}}, &httpClient{c: caller{cert: p.web1}}
		victim.cl, attacker.cl = victim.c.client(roots), attacker.c.client(roots)
		tryHijack(t, s.url, victim, attacker, "vc", "db-1", "db-1", attacksOn("vc", "db-1", "web-1", "web-1.example", "agent,read"))
		// Its own host, by its DNS name or the name's first label.
		attacker.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("own-1", "web-1"))
		attacker.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("own-2", "WEB-1.example"))
	})

	t.Run("certificates not bound", func(t *testing.T) {
		t.Parallel()
		s := startSecure(t, bin, append(p.tlsArgs("optional"), fast...)...)
		victim, attacker := &httpClient{c: caller{cert: p.db1}}, &httpClient{c: caller{cert: p.web1}}
		victim.cl, attacker.cl = victim.c.client(roots), attacker.c.client(roots)
		attacks := attacksOn("vc", "db-1", "web-1", "web-1.example", "agent,read")
		var owned []hijackCase // without binding, no host is refused: only ownership
		for _, a := range attacks {
			switch a.what {
			case "a new id on its host":
				continue
			case "its id re-registered on its host":
				a.want = notOwner
			}
			owned = append(owned, a)
		}
		tryHijack(t, s.url, victim, attacker, "vc", "db-1", "db-1", owned)
		// What --bind-cert-to-host is for: without it, any certificate
		// registers a new id on any host, the victim's included.
		attacker.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("sneaky", "db-1"))
	})
}

// TestCertificateNamesAreIdentities pins what the security model says of
// certificate names: a certificate is the identity its first DNS name
// names, the same namespace as the keys' names, so a certificate issued
// for a key's name acts on that key's instances; and binding to hosts
// applies to registration only.
func TestCertificateNamesAreIdentities(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs("optional"), "--keys-file", k.writeKeysFile(t, ""), "--bind-cert-to-host",
		"--in-memory", "--rate-limit-write", "0")...)
	roots := p.roots()
	keyed := &httpClient{c: caller{key: k.agentA}}
	named := &httpClient{c: caller{cert: p.ca.issue(t, leafSpec{dns: []string{"agent-a"}})}}
	keyed.cl, named.cl = keyed.c.client(roots), named.c.client(roots)
	keyed.must(t, 201, "POST", s.url+"/instances", regBody("k1", "db-1"))
	named.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/k1/tools", goodTools)
	named.expect(t, 403, `{"detail":"Identity \"agent-a\" may not register instances on host \"db-1\""}`,
		"POST", s.url+"/instances", regBody("k1", "db-1"))
}

// TestWildcardCertificateBoundToHosts: with --bind-cert-to-host, a
// certificate for *.web.example may register hosts under web.example, not
// hosts of another domain.
func TestWildcardCertificateBoundToHosts(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	s := startSecure(t, bin, append(p.tlsArgs("required"), "--bind-cert-to-host", "--in-memory", "--rate-limit-write", "0")...)
	wild := &httpClient{c: caller{cert: p.ca.issue(t, leafSpec{dns: []string{"*.web.example"}})}}
	wild.cl = wild.c.client(p.roots())
	got := map[string]int{}
	for _, host := range []string{"db-1.db.example", "web-1.web.example"} {
		got[host] = wild.do("POST", s.url+"/instances", regBody("w-"+host, host)).code
	}
	if diff := cmp.Diff(map[string]int{"db-1.db.example": 403, "web-1.web.example": 201}, got); diff != "" {
		t.Errorf("a certificate for *.web.example bound to its hosts (-want +got):\n%s", diff)
	}
}

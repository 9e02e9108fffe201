// agentlife_test.go drives what the real agent (runspec serve --registry
// URL --registry-key KEY --registry-cert CA) does, over HTTPS against the
// built binary, under the identities it can have: the shared --api-key, its
// own key from a keys file, and its key where client certificates are
// optional. And it checks that a registry with only --api-key answers as
// v1 did: no owner in the answers, the same 403.

package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
)

// realAgent does what the real client does: register, post its tools,
// heartbeat with no body (re-posting its tools on refresh), and on
// SIGTERM deregister. It never re-registers.
type realAgent struct {
	t        *testing.T
	c        *httpClient
	base     *string // the registry's URL, which a restart changes
	id, host string
}

func (a *realAgent) url(path string) string { return *a.base + path }

// start registers; postTools false is an agent whose tool post failed.
func (a *realAgent) start(postTools bool) {
	a.t.Helper()
	a.c.expect(a.t, 201, `{"status":"ok"}`, "POST", a.url("/instances"), regBody(a.id, a.host))
	if postTools {
		a.c.expect(a.t, 200, `{"status":"ok"}`, "POST", a.url("/instances/"+a.id+"/tools"), goodTools)
	}
}

// beat heartbeats and answers refresh as the agent does; it returns what
// the heartbeat got.
func (a *realAgent) beat() string {
	a.t.Helper()
	var st struct{ Status string }
	if err := json.Unmarshal([]byte(a.c.must(a.t, 200, "POST", a.url("/instances/"+a.id+"/heartbeat"), "")), &st); err != nil {
		a.t.Fatal(err)
	}
	if st.Status == "refresh" {
		a.c.expect(a.t, 200, `{"status":"ok"}`, "POST", a.url("/instances/"+a.id+"/tools"), goodTools)
	}
	return st.Status
}

func (a *realAgent) stop() {
	a.t.Helper()
	a.c.expect(a.t, 200, `{"status":"ok"}`, "DELETE", a.url("/instances/"+a.id), "")
}

func TestRealAgentLife(t *testing.T) {
	bin := sharedBinary(t)
	p := newPKI(t)
	k := newFleetKeys(t)
	keys := k.writeKeysFile(t, "")
	for _, cfg := range []struct {
		name   string
		args   []string
		x, y   caller // two agents
		owners [2]string
	}{
		{"--api-key", []string{"--api-key", k.shared}, caller{key: k.shared}, caller{key: k.shared}, [2]string{"api-key", "api-key"}},
		{"keys file", []string{"--keys-file", keys}, caller{key: k.agentA}, caller{key: k.agentB}, [2]string{"agent-a", "agent-b"}},
		{"mTLS optional and keys", []string{"--ssl-ca-certs", p.caFile, "--ssl-cert-reqs", "optional", "--keys-file", keys}, caller{key: k.agentA}, caller{key: k.agentB},
			[2]string{"agent-a", "agent-b"}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			args := append(append(p.tlsArgs(""), cfg.args...), "--data-dir", t.TempDir(), "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")
			s := startSecure(t, bin, args...)
			base := s.url
			roots := p.roots() // what --registry-cert gives the agent
			x := &realAgent{t: t, c: &httpClient{c: cfg.x, cl: cfg.x.client(roots)}, base: &base, id: "3f0c-x", host: "web-1"}
			y := &realAgent{t: t, c: &httpClient{c: cfg.y, cl: cfg.y.client(roots)}, base: &base, id: "3f0c-y", host: "db-1"}
			x.start(true)
			y.start(false) // its tool post failed: the first heartbeat says refresh
			if got := y.beat(); got != "refresh" {
				t.Errorf("first heartbeat of an agent without tools: %s, want refresh", got)
			}
			for range 3 {
				for _, a := range []*realAgent{x, y} {
					if got := a.beat(); got != "ack" {
						t.Errorf("heartbeat of %s: %s, want ack", a.id, got)
					}
				}
			}
			for i, a := range []*realAgent{x, y} {
				if got := ownerOf(t, x.c, base, a.id); got != cfg.owners[i] {
					t.Errorf("owner of %s: %s, want %s", a.id, got, cfg.owners[i])
				}
			}
			want := `{"name":"restart","description":"Restart the app","inputSchema":{"type":"object"},"hosts":[` +
				`{"host":"web-1","x-command":"/sbin/restart app","x-run-as":"ops"},{"host":"db-1","x-command":"/sbin/restart app","x-run-as":"ops"}]}`
			if got := x.c.must(t, 200, "GET", base+"/tools/restart", ""); got != want {
				t.Errorf("/tools/restart:\n%s\nwant\n%s", got, want)
			}

			// The registry restarts: the agents do not notice.
			s.stop(t)
			s = startSecure(t, bin, args...)
			base = s.url
			for _, a := range []*realAgent{x, y} {
				if got := a.beat(); got != "ack" {
					t.Errorf("heartbeat of %s after the registry restarted: %s, want ack", a.id, got)
				}
			}
			// SIGTERM of each agent: its deregistration.
			x.stop()
			if got, want := x.c.must(t, 200, "GET", base+"/tools/restart", ""), fmt.Sprintf(goodTool, "db-1"); got != want {
				t.Errorf("/tools/restart after x stopped: %s, want %s", got, want)
			}
			y.stop()
			x.c.expect(t, 200, `[]`, "GET", base+"/tools", "")
			s.stop(t)
		})
	}
}

// TestOnlyAPIKeyIsV1: with --api-key alone, answers are v1's: no owner
// outside ?detail=true, the same 403 wording, the key checked before the
// body, reads open.
func TestOnlyAPIKeyIsV1(t *testing.T) {
	bin := sharedBinary(t)
	key := secret(t, "v1-key")
	s := startSecure(t, bin, "--api-key", key, "--in-memory", "--rate-limit-write", "0")
	plain := func(c caller) *httpClient { return &httpClient{c: c, cl: c.client(nil)} }
	anon, wrong, agent := plain(caller{}), plain(caller{key: "not-" + key}), plain(caller{key: key})
	const refused = `{"detail":"Invalid or missing API key"}`
	for _, c := range []*httpClient{anon, wrong} {
		c.expect(t, 403, refused, "POST", s.url+"/instances", regBody("v1", "web-1"))
		c.expect(t, 403, refused, "POST", s.url+"/instances", `{"instance_id":`) // before the body
		c.expect(t, 403, refused, "POST", s.url+"/instances/v1/heartbeat", "")
		c.expect(t, 403, refused, "DELETE", s.url+"/instances/v1", "")
	}
	agent.expect(t, 201, `{"status":"ok"}`, "POST", s.url+"/instances", regBody("v1", "web-1"))
	agent.expect(t, 200, `{"status":"ok"}`, "POST", s.url+"/instances/v1/tools", goodTools)
	agent.expect(t, 200, `{"status":"ack"}`, "POST", s.url+"/instances/v1/heartbeat", "")

	fields := func(body string) []string {
		var m map[string]any
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%v: %s", err, body)
		}
		return slices.Sorted(maps.Keys(m))
	}
	record := []string{"active", "heartbeat_interval", "host", "instance_id", "last_seen", "name", "tools", "version"}
	if got := fields(anon.must(t, 200, "GET", s.url+"/instances/v1", "")); !slices.Equal(got, record) {
		t.Errorf("GET /instances/v1 fields %v, want %v", got, record)
	}
	var list []json.RawMessage
	json.Unmarshal([]byte(anon.must(t, 200, "GET", s.url+"/instances", "")), &list)
	if len(list) != 1 || !slices.Equal(fields(string(list[0])), record) {
		t.Errorf("GET /instances: %d records, fields %v; want one with %v", len(list), fields(string(list[0])), record)
	}
	json.Unmarshal([]byte(anon.must(t, 200, "GET", s.url+"/hosts", "")), &list)
	if want := []string{"host", "instance_id", "name", "tool_count", "version"}; len(list) != 1 || !slices.Equal(fields(string(list[0])), want) {
		t.Errorf("GET /hosts fields %v, want %v", fields(string(list[0])), want)
	}
	anon.expect(t, 200, fmt.Sprintf(goodTool, "web-1"), "GET", s.url+"/tools/restart", "")
	if got := ownerOf(t, anon, s.url, "v1"); got != "api-key" {
		t.Errorf("?detail=true owner %q, want api-key", got)
	}
	agent.expect(t, 200, `{"status":"ok"}`, "DELETE", s.url+"/instances/v1", "")
}

// fleet_test.go holds the package's one fleet fixture: a fleet is a list
// of agents (an instance, its tool list and what becomes of it), loaded in
// order through a harness's HTTP API or through the Go API. The fleets the
// tests share are values of it; benchFleet generates the benchmarks' large
// ones agent by agent.

package registry_test

import (
	stdcmp "cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// An agent is one instance of a fleet and what becomes of it as the fleet
// loads: it registers, posts its tools, is deregistered, and the clock
// moves on, in that order.
type agent struct {
	ID, Name, Host string
	Version        string        // "1" if empty
	Interval       int           // heartbeat_interval sent at registration, in seconds; 0: none
	Tools          []string      // the tool objects it posts; nil: it posts no list
	Gone           bool          // deregistered once its tools are posted
	Then           time.Duration // the harness's clock moves on by this afterwards (HTTP only)
}

// A fleet is a list of agents, loaded in order.
type fleet []agent

// load registers the fleet through h's HTTP API.
func (f fleet) load(h *harness) {
	h.tb.Helper()
	for _, a := range f {
		a.load(h)
	}
}

// add registers the fleet through r's Go API: no HTTP and no clock, for
// fleets that would take long through the handler.
func (f fleet) add(tb testing.TB, r *registry.Registry) {
	tb.Helper()
	for _, a := range f {
		a.add(tb, r)
	}
}

func (a agent) load(h *harness) {
	h.tb.Helper()
	h.must(http.StatusCreated, "POST", "/instances", a.regBody())
	if a.Tools != nil {
		h.postTools(a.ID, a.Tools...)
	}
	if a.Gone {
		h.deregister(a.ID)
	}
	if a.Then != 0 {
		h.clock.Advance(a.Then)
	}
}

// regBody is the agent's POST /instances body.
func (a agent) regBody() string {
	body := fmt.Sprintf(`{"instance_id":%q,"name":%q,"version":%q,"host":%q`, a.ID, a.Name, stdcmp.Or(a.Version, "1"), a.Host)
	if a.Interval != 0 {
		body += fmt.Sprintf(`,"heartbeat_interval":%d`, a.Interval)
	}
	return body + "}"
}

func (a agent) add(tb testing.TB, r *registry.Registry) {
	tb.Helper()
	ctx := tb.Context()
	reg := registry.Registration{ID: a.ID, Name: a.Name, Version: stdcmp.Or(a.Version, "1"), Host: a.Host,
		HeartbeatInterval: time.Duration(a.Interval) * time.Second}
	if err := r.Register(ctx, reg); err != nil {
		tb.Fatal(err)
	}
	if a.Tools != nil {
		tools := make([]json.RawMessage, len(a.Tools))
		for i, t := range a.Tools {
			tools[i] = json.RawMessage(t)
		}
		if err := r.UpdateTools(ctx, a.ID, tools); err != nil {
			tb.Fatal(err)
		}
	}
	if a.Gone {
		if err := r.Deregister(ctx, a.ID); err != nil {
			tb.Fatal(err)
		}
	}
}

// readFleet is an active and an inactive instance with a shared tool.
var readFleet = fleet{
	{ID: "live", Name: "app", Host: "hlive", Tools: []string{`{"name":"shared","x-command":"/live"}`, `{"name":"t-live"}`}},
	{ID: "dead", Name: "app", Host: "hdead", Tools: []string{`{"name":"shared","x-command":"/dead"}`, `{"name":"t-dead"}`}, Gone: true},
}

// exportFleet is the hosts the export tests expect.
var exportFleet = fleet{
	{ID: "a", Name: "app", Host: "web<&>01"},
	{ID: "b", Name: "ora", Host: "db01"},
	{ID: "c", Name: "gone", Host: "old01", Gone: true},
}

// watchFleet is a (app on h1, deploy and build, heartbeat_interval 1s: it
// expires 3s after its last heartbeat), b (app on h2, build) and c (other
// on h3, no tools posted).
var watchFleet = fleet{
	{ID: "a", Name: "app", Host: "h1", Interval: 1, Tools: []string{`{"name":"deploy","x-command":"/deploy"}`, `{"name":"build"}`}},
	{ID: "b", Name: "app", Host: "h2", Tools: []string{`{"name":"build","x-run-as":"ci"}`}},
	{ID: "c", Name: "other", Host: "h3"},
}

// pagingFleet registers 9 instances on 3 hosts under 2 names, with tools,
// some inactive.
func pagingFleet(h *harness) {
	h.tb.Helper()
	hosts := []string{"hb", "ha", "hc"}
	names := []string{"app", "db"}
	var f fleet
	for i := range 9 {
		id := fmt.Sprintf("id-%d", 8-i) // ids not in registration order
		host, name := hosts[i%3], names[i%2]
		tools := []string{} // posted, also when empty
		for j := range i % 4 {
			tools = append(tools, fmt.Sprintf(`{"name":"tool-%d","x-command":"%s-%d"}`, (i+j)%5, id, j))
		}
		f = append(f, agent{ID: id, Name: name, Host: host, Tools: tools, Then: time.Second})
	}
	f.load(h)
	h.deregister("id-7")
	h.deregister("id-2")
}

// bigFleet registers instances big-0… whose records together pass 1 MiB,
// so that GET /instances streams (and /tools too if distinct is set: each
// instance then offers a tool of its own).
func bigFleet(h *harness, distinct int) {
	h.tb.Helper()
	desc := strings.Repeat("x", 8<<10)
	var f fleet
	for i := range 160 {
		id := fmt.Sprintf("big-%03d", i)
		name := "big"
		if distinct > 0 {
			name = fmt.Sprintf("big-%03d", i%distinct)
		}
		f = append(f, agent{ID: id, Name: "bulk", Host: id, Tools: []string{`{"name":"` + name + `","description":"` + desc + `"}`}})
	}
	f.add(h.tb, h.reg)
	if n := h.must(http.StatusOK, "GET", "/instances", "").Body.Len(); n <= 1<<20 {
		h.tb.Fatalf("GET /instances is %d bytes, want more than 1 MiB", n)
	}
}

// benchFleet describes a fleet like the reference measurements: agents with
// tools tools each, each tool name offered on share hosts, identical schemas
// across hosts and per-host execution fields.
type benchFleet struct {
	agents, tools, share int
}

func (f benchFleet) id(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
func (f benchFleet) ids() []string {
	ids := make([]string, f.agents)
	for i := range ids {
		ids[i] = f.id(i)
	}
	return ids
}

func (f benchFleet) host(i int) string { return fmt.Sprintf("host-%05d", i) }
func (f benchFleet) toolName(i, j int) string {
	names := f.agents * f.tools / f.share // distinct tool names
	if names == 0 {
		names = 1
	}
	return fmt.Sprintf("tool-%04d", (i/f.share*f.tools+j)%names)
}

// tool is the j-th tool object of agent i.
func (f benchFleet) tool(i, j int) string {
	name := f.toolName(i, j)
	return fmt.Sprintf(`{"name":%q,"description":"Run %s against a target host and report what changed, with retries.",`+
		`"inputSchema":{"type":"object","properties":{"target":{"type":"string","description":"where"},"count":{"type":"integer"}},"required":["target"]},`+
		`"x-command":"/usr/local/bin/%s","x-run-as":"svc%d","x-become-method":"sudo"}`, name, name, name, i%7)
}

func (f benchFleet) toolList(i int) []json.RawMessage {
	out := make([]json.RawMessage, f.tools)
	for j := range out {
		out[j] = json.RawMessage(f.tool(i, j))
	}
	return out
}

// agent is the i-th agent of the fleet.
func (f benchFleet) agent(i int) agent {
	tools := make([]string, f.tools)
	for j := range tools {
		tools[j] = f.tool(i, j)
	}
	return agent{ID: f.id(i), Name: fmt.Sprintf("agent-pkg-%d", i%10), Host: f.host(i), Tools: tools}
}

// load registers the fleet into a new registry, one agent at a time
// through the Go API.
func (f benchFleet) load(tb testing.TB) *registry.Registry {
	tb.Helper()
	r, err := registry.New(registry.Options{})
	if err != nil {
		tb.Fatal(err)
	}
	for i := 0; i < f.agents; i++ {
		f.agent(i).add(tb, r)
	}
	return r
}

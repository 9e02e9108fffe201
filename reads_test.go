// reads_test.go checks the read endpoints against PROTOCOL.md: GET
// /instances, /tools, /tools/{name} (grouping by name) and /hosts, the
// active= query, the host and name filters, large listings and last_seen.

package registry_test

import (
	stdcmp "cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

func TestListInstances(t *testing.T) {
	h := newHarness(t, registry.Options{})
	readFleet.load(h)
	live := instRecord{ID: "live", Name: "app", Host: "hlive", Active: true, LastSeen: t0,
		Tools: `[{"name":"shared","x-command":"/live"},{"name":"t-live"}]`}.value(t)
	dead := instRecord{ID: "dead", Name: "app", Host: "hdead", Active: false, LastSeen: t0,
		Tools: `[{"name":"shared","x-command":"/dead"},{"name":"t-dead"}]`}.value(t)
	tests := []struct {
		target string
		want   []any
	}{
		{"/instances", []any{dead, live}},
		{"/instances?active=false", []any{dead, live}},
		{"/instances?active=true", []any{live}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "instance_id")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("one", func(t *testing.T) {
		if diff := cmp.Diff(dead, h.get("/instances/dead")); diff != "" {
			t.Errorf("mismatch (-want +got):\n%s", diff)
		}
		checkJSON(t, h.do("GET", "/instances/nope", ""), http.StatusNotFound, `{"detail":"Instance not found"}`)
	})
	t.Run("empty registry", func(t *testing.T) {
		h := newHarness(t, registry.Options{})
		for _, target := range []string{"/instances", "/tools", "/hosts", "/tools?active=false", "/hosts?active=false"} {
			checkJSON(t, h.do("GET", target, ""), http.StatusOK, `[]`)
		}
	})
}

func TestListTools(t *testing.T) {
	h := newHarness(t, registry.Options{})
	readFleet.load(h)
	tests := []struct {
		target string
		want   string
	}{
		{"/tools", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
		{"/tools?active=true", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
		{"/tools?active=false", `[{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"},{"host":"hdead","x-command":"/dead"}]},` +
			`{"name":"t-dead","hosts":[{"host":"hdead"}]},{"name":"t-live","hosts":[{"host":"hlive"}]}]`},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "name")
			if diff := cmp.Diff(js(t, tt.want), any(got), sortHosts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("one", func(t *testing.T) {
		for _, target := range []string{"/tools/t-dead", "/tools/t-dead?active=true", "/tools/nope", "/tools/nope?active=false"} {
			checkJSON(t, h.do("GET", target, ""), http.StatusNotFound, `{"detail":"Tool not found"}`)
		}
		checkJSON(t, h.do("GET", "/tools/t-dead?active=false", ""), http.StatusOK, `{"name":"t-dead","hosts":[{"host":"hdead"}]}`)
		checkJSON(t, h.do("GET", "/tools/shared", ""), http.StatusOK, `{"name":"shared","hosts":[{"host":"hlive","x-command":"/live"}]}`)
	})
}

func TestToolGrouping(t *testing.T) {
	// Each instance offers "deploy"; "a" registers first, then "b", then "c".
	const (
		toolA = `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"x-command":"/a","x-run-as":"oracle","x-autonomy":"low","z":1}`
		toolB = `{"name":"deploy","description":"Deploy B","x-become-method":"sudo","x-become-flags":"-H"}`
		toolC = `{"name":"deploy","inputSchema":{"type":"object","properties":{"v":{"type":"string"}}}}`
	)
	hostA := `{"host":"h1","x-command":"/a","x-run-as":"oracle"}`
	hostB := `{"host":"h2","x-become-method":"sudo","x-become-flags":"-H"}`
	hostC := `{"host":"h1"}`
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{
			name:   "all active: schema of the earliest registered",
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "earliest inactive: next earliest among the answer, absent keys stay absent",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy B","hosts":[` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "earliest inactive, active=false: earliest again",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools/deploy?active=false",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC + `]}`,
		},
		{
			name:   "only the last one active: its keys only",
			setup:  func(h *harness) { h.deregister("a"); h.deregister("b") },
			target: "/tools/deploy",
			want:   `{"name":"deploy","inputSchema":{"type":"object","properties":{"v":{"type":"string"}}},"hosts":[` + hostC + `]}`,
		},
		{
			name: "registration order, not posting order",
			setup: func(h *harness) {
				// a posts its list again, last; it is still the earliest registered.
				h.postTools("a", `{"name":"deploy","description":"Deploy A2"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A2","hosts":[{"host":"h1"},` + hostB + `,` + hostC + `]}`,
		},
		{
			name: "re-registration keeps the first registration's rank",
			setup: func(h *harness) {
				h.register("a", "app", "h3")
				h.postTools("a", `{"name":"deploy","description":"Deploy A3"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A3","hosts":[{"host":"h3"},` + hostB + `,` + hostC + `]}`,
		},
		{
			name: "two instances on one host give two entries",
			setup: func(h *harness) {
				h.register("d", "other", "h2")
				h.postTools("d", `{"name":"deploy","x-command":"/d"}`)
			},
			target: "/tools/deploy",
			want: `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostB + `,` + hostC +
				`,{"host":"h2","x-command":"/d"}]}`,
		},
		{
			name:   "listing shows the same grouped tool",
			setup:  func(h *harness) { h.deregister("a") },
			target: "/tools",
			want:   `[{"name":"deploy","description":"Deploy B","hosts":[` + hostB + `,` + hostC + `]}]`,
		},
		{
			name: "tool dropped from a new list",
			setup: func(h *harness) {
				h.postTools("b", `{"name":"other"}`)
			},
			target: "/tools/deploy",
			want:   `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA + `,` + hostC + `]}`,
		},
		{
			name: "non-string execution fields are kept as posted",
			setup: func(h *harness) {
				h.postTools("b", `{"name":"deploy","x-become-flags":["-H","-E"],"x-run-as":null}`)
			},
			target: "/tools/deploy",
			want: `{"name":"deploy","description":"Deploy A","inputSchema":{"type":"object"},"hosts":[` + hostA +
				`,{"host":"h2","x-become-flags":["-H","-E"],"x-run-as":null},` + hostC + `]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			// c registers last but posts first; b posts last.
			h.register("a", "app", "h1")
			h.clock.Advance(time.Second)
			h.register("b", "app", "h2")
			h.clock.Advance(time.Second)
			h.register("c", "other", "h1")
			h.postTools("c", toolC)
			h.postTools("a", toolA)
			h.postTools("b", toolB)
			if tt.setup != nil {
				tt.setup(h)
			}
			if diff := cmp.Diff(js(t, tt.want), h.get(tt.target), sortHosts); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHosts(t *testing.T) {
	entry := func(host, name, id, version string, tools int) string {
		return fmt.Sprintf(`{"host":%q,"name":%q,"instance_id":%q,"version":%q,"tool_count":%d}`, host, name, id, version, tools)
	}
	reg := func(h *harness, id, version string) {
		h.must(http.StatusCreated, "POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"app","version":%q,"host":"h1"}`, id, version))
		h.clock.Advance(time.Second)
	}
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{
			name: "one entry per (host, name)",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"x"}`, `{"name":"y"}`)
				h.register("b", "db", "h1")
				h.register("c", "app", "h2")
				h.postTools("c", `{"name":"x"}`)
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "a", "1", 2) + `,` + entry("h1", "db", "b", "1", 0) + `,` + entry("h2", "app", "c", "1", 1) + `]`,
		},
		{
			name: "old dead, new active: the new one",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("old")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "both active: the most recently registered",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "active preferred over more recent",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
			},
			target: "/hosts?active=false",
			want:   `[` + entry("h1", "app", "old", "1", 0) + `]`,
		},
		{
			name: "both inactive, default: none",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
				h.deregister("old")
			},
			target: "/hosts",
			want:   `[]`,
		},
		{
			name: "both inactive, active=false: the most recently registered",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				h.deregister("new")
				h.deregister("old")
			},
			target: "/hosts?active=false",
			want:   `[` + entry("h1", "app", "new", "2", 0) + `]`,
		},
		{
			name: "re-registration makes an id the most recent",
			setup: func(h *harness) {
				reg(h, "old", "1")
				reg(h, "new", "2")
				reg(h, "old", "3")
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "old", "3", 0) + `]`,
		},
		{
			name: "an expired instance is not preferred",
			setup: func(h *harness) {
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"old","name":"app","version":"1","host":"h1","heartbeat_interval":1000}`)
				h.clock.Advance(time.Second)
				h.must(http.StatusCreated, "POST", "/instances", `{"instance_id":"new","name":"app","version":"2","host":"h1","heartbeat_interval":1}`)
				h.clock.Advance(time.Minute) // new expires, not purged
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "old", "1", 0) + `]`,
		},
		{
			name: "tool_count follows the latest list",
			setup: func(h *harness) {
				h.register("a", "app", "h1")
				h.postTools("a", `{"name":"x"}`, `{"name":"y"}`, `{"name":"z"}`)
				h.postTools("a", `{"name":"x"}`)
			},
			target: "/hosts",
			want:   `[` + entry("h1", "app", "a", "1", 1) + `]`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			got := h.get(tt.target)
			list, ok := got.([]any)
			if !ok {
				t.Fatalf("not an array: %v", got)
			}
			slices.SortFunc(list, func(a, b any) int {
				x, y := a.(map[string]any), b.(map[string]any)
				return stdcmp.Or(strings.Compare(x["host"].(string), y["host"].(string)), strings.Compare(x["name"].(string), y["name"].(string)))
			})
			if diff := cmp.Diff(js(t, tt.want), any(list)); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBooleanQuery(t *testing.T) {
	h := newHarness(t, registry.Options{})
	readFleet.load(h)
	endpoints := []string{"/instances", "/tools", "/tools/shared", "/hosts", "/export/superputty", "/export/mobaxterm"}
	truthy := []string{"true", "TRUE", "True", "1", "yes", "YES", "Yes", "on", "ON", "oN"}
	falsy := []string{"false", "FALSE", "False", "0", "no", "NO", "No", "off", "OFF", "oFf"}
	bad := []string{"", "2", "-1", "t", "f", "y", "n", "tru", "truee", "%20true", "true%20", "null", "none", "maybe"}
	for _, ep := range endpoints {
		for _, v := range truthy {
			t.Run(ep+"/"+v, func(t *testing.T) {
				rec := h.must(http.StatusOK, "GET", ep+"?active="+v, "")
				if !strings.Contains(rec.Body.String(), "hlive") || strings.Contains(rec.Body.String(), "hdead") {
					t.Errorf("active=%s: want only the active instance, got %s", v, rec.Body)
				}
			})
		}
		for _, v := range falsy {
			t.Run(ep+"/"+v, func(t *testing.T) {
				rec := h.must(http.StatusOK, "GET", ep+"?active="+v, "")
				if !strings.Contains(rec.Body.String(), "hlive") || !strings.Contains(rec.Body.String(), "hdead") {
					t.Errorf("active=%s: want both instances, got %s", v, rec.Body)
				}
			})
		}
		for _, v := range bad {
			t.Run(ep+"/bad-"+v, func(t *testing.T) {
				rec := h.do("GET", ep+"?active="+v, "")
				if diff := cmp.Diff([][]string{{"query", "active"}}, detailLocs(t, rec)); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
	}
}

func TestFilters(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "app", "h1")
	h.postTools("a", `{"name":"deploy","description":"A","x-command":"/a"}`, `{"name":"only-h1"}`)
	h.register("b", "app", "h2")
	h.postTools("b", `{"name":"deploy","description":"B","x-command":"/b"}`, `{"name":"only-h2"}`)
	h.register("c", "db", "h1")
	h.postTools("c", `{"name":"deploy","description":"C","x-run-as":"c"}`)
	h.register("d", "app", "h1")
	h.postTools("d", `{"name":"deploy","description":"D"}`)
	h.deregister("a")

	ids := func(v any) []string {
		var out []string
		for _, e := range v.([]any) {
			out = append(out, e.(map[string]any)["instance_id"].(string))
		}
		slices.Sort(out)
		return out
	}
	instTests := []struct {
		target string
		want   []string
	}{
		{"/instances?host=h1", []string{"a", "c", "d"}},
		{"/instances?host=h1&active=true", []string{"c", "d"}},
		{"/instances?name=app", []string{"a", "b", "d"}},
		{"/instances?host=h1&name=app", []string{"a", "d"}},
		{"/instances?host=h2&name=db", nil},
		{"/instances?host=nope", nil},
		{"/hosts?name=app", []string{"b", "d"}},
		{"/hosts?name=app&active=false", []string{"b", "d"}},
		{"/hosts?host=h1", []string{"c", "d"}},
		{"/hosts?host=h1&name=db", []string{"c"}},
		{"/hosts?name=nope", nil},
	}
	for _, tt := range instTests {
		t.Run(tt.target, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, ids(h.get(tt.target))); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
	toolTests := []struct {
		target string
		want   string
	}{
		{"/tools?host=h1", `[{"name":"deploy","description":"C","hosts":[{"host":"h1","x-run-as":"c"},{"host":"h1"}]}]`},
		{"/tools?host=h1&active=false", `[{"name":"deploy","description":"A","hosts":[{"host":"h1","x-command":"/a"},{"host":"h1","x-run-as":"c"},{"host":"h1"}]},` +
			`{"name":"only-h1","hosts":[{"host":"h1"}]}]`},
		{"/tools?host=h2", `[{"name":"deploy","description":"B","hosts":[{"host":"h2","x-command":"/b"}]},{"name":"only-h2","hosts":[{"host":"h2"}]}]`},
		{"/tools?host=nope", `[]`},
	}
	for _, tt := range toolTests {
		t.Run(tt.target, func(t *testing.T) {
			got := sortByKey(t, h.get(tt.target), "name")
			if diff := cmp.Diff(js(t, tt.want), any(got), sortHosts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLargeListing checks listings far larger than any internal buffer.
func TestLargeListing(t *testing.T) {
	h := newHarness(t, registry.Options{})
	desc := strings.Repeat("d", 1000)
	const n = 300
	for i := range n {
		id := fmt.Sprintf("id-%03d", i)
		h.register(id, "app", fmt.Sprintf("h%03d", i))
		h.postTools(id, fmt.Sprintf(`{"name":"t%03d","description":%q}`, i, desc), `{"name":"shared","description":"s"}`)
	}
	for _, target := range []string{"/instances", "/tools", "/hosts"} {
		all := h.get(target).([]any)
		want := n
		if target == "/tools" {
			want = n + 1
		}
		if len(all) != want {
			t.Errorf("%s: %d items, want %d", target, len(all), want)
		}
		var got []any
		for _, p := range h.walkPages(target + "?limit=77") {
			got = append(got, p...)
		}
		if diff := cmp.Diff(all, got); diff != "" {
			t.Errorf("%s: pages differ from the unpaged answer (-want +got):\n%s", target, diff)
		}
	}
	shared := h.get("/tools/shared").(map[string]any)["hosts"].([]any)
	if len(shared) != n {
		t.Errorf("/tools/shared has %d hosts, want %d", len(shared), n)
	}
}

// last_seen is Unix seconds with the fraction, as Python's time.time().
func TestLastSeenFraction(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.clock.Advance(1234567 * time.Microsecond)
	h.register("a", "app", "h1")
	if got := h.get("/instances/a").(map[string]any)["last_seen"]; got != 1_700_000_001.234567 {
		t.Errorf("last_seen after register = %v, want 1700000001.234567", got)
	}
	h.clock.Advance(500 * time.Millisecond)
	h.heartbeat("a")
	if got := h.get("/instances/a").(map[string]any)["last_seen"]; got != 1_700_000_001.734567 {
		t.Errorf("last_seen after heartbeat = %v, want 1700000001.734567", got)
	}
}

// labels_test.go checks labels: registered with an instance (their rules),
// shown in its record and in detailed host entries, kept across a restart,
// and ?label=k=v (repeatable, all must match, two values of one key
// matching nothing) narrowing every listing.

package registry_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runspec/registry"
)

func labeled(id, host, labels string) string {
	return `{"instance_id":"` + id + `","name":"ops","version":"1","host":"` + host + `","labels":` + labels + `}`
}

func TestLabels(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.must(201, "POST", "/instances", labeled("a1", "web-1", `{"env":"prod","zone":"a"}`))
	h.must(201, "POST", "/instances", labeled("a2", "web-2", `{"env":"prod","zone":"b"}`))
	h.must(201, "POST", "/instances", labeled("a3", "db-1", `{"env":"test"}`))
	h.register("a4", "ops", "db-2") // no labels: as a v1 agent
	for _, id := range []string{"a1", "a2", "a3", "a4"} {
		h.postTools(id, `{"name":"deploy","x-command":"/bin/deploy"}`)
	}
	rec := h.must(200, "GET", "/instances/a1", "")
	if !strings.Contains(rec.Body.String(), `"labels":{"env":"prod","zone":"a"}`) {
		t.Errorf("the record does not show its labels: %s", rec.Body)
	}
	if rec := h.must(200, "GET", "/instances/a4", ""); strings.Contains(rec.Body.String(), "labels") {
		t.Errorf("a record without labels shows labels: %s", rec.Body)
	}
	hostsOf := func(target string) string {
		t.Helper()
		var hosts []string
		switch v := h.get(target).(type) {
		case []any:
			for _, e := range v {
				m := e.(map[string]any)
				if hs, ok := m["hosts"]; ok {
					for _, he := range hs.([]any) {
						hosts = append(hosts, he.(map[string]any)["host"].(string))
					}
				} else {
					hosts = append(hosts, m["host"].(string))
				}
			}
		case map[string]any:
			for _, he := range v["hosts"].([]any) {
				hosts = append(hosts, he.(map[string]any)["host"].(string))
			}
		}
		return strings.Join(hosts, ",")
	}
	for _, tt := range []struct{ target, want string }{
		{"/instances?label=env=prod", "web-1,web-2"},
		{"/instances?label=env=prod&label=zone=b", "web-2"},
		{"/hosts?label=env=test", "db-1"},
		{"/tools?label=env=prod", "web-1,web-2"},
		{"/tools/deploy?label=zone=a", "web-1"},
		{"/tools/deploy", "web-1,web-2,db-1,db-2"},
	} {
		if got := hostsOf(tt.target); got != tt.want {
			t.Errorf("GET %s: hosts %s, want %s", tt.target, got, tt.want)
		}
	}
	checkJSON(t, h.do("GET", "/tools/deploy?label=env=none", ""), 404, `{"detail":"Tool not found"}`)
	if locs := detailLocs(t, h.do("GET", "/instances?label=novalue", "")); len(locs) != 1 || locs[0][1] != "label" {
		t.Errorf("?label without = : locs %v", locs)
	}
	// Detailed host entries carry the labels.
	rec = h.must(200, "GET", "/tools/deploy?detail=true&label=zone=b", "")
	if !strings.Contains(rec.Body.String(), `"labels":{"env":"prod","zone":"b"}`) {
		t.Errorf("detailed entry without labels: %s", rec.Body)
	}
}

func TestLabelRules(t *testing.T) {
	h := newHarness(t, registry.Options{})
	many := "{"
	for i := range registry.MaxLabels + 1 {
		if i > 0 {
			many += ","
		}
		many += `"k` + strings.Repeat("x", i) + `":"v"`
	}
	many += "}"
	for _, tt := range []struct{ labels, loc string }{
		{`["env"]`, "labels"},
		{`{"env":1}`, "labels.env"},
		{`{"env":"a\nb"}`, "labels.env"},
		{`{"":"x"}`, "labels."},
		{`{"env":"\u202eevil"}`, "labels.env"},
		{many, "labels"},
	} {
		locs := detailLocs(t, h.do("POST", "/instances", labeled("x", "h", tt.labels)))
		if len(locs) != 1 || strings.Join(locs[0][1:], ".") != tt.loc {
			t.Errorf("labels %.40s: locs %v, want %s", tt.labels, locs, tt.loc)
		}
	}
}

// Labels survive a restart on a Store.
func TestLabelsStored(t *testing.T) {
	ctx := t.Context()
	st := registry.NewMemStore()
	reg, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	if err := reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h", Labels: map[string]string{"env": "prod"}}); err != nil {
		t.Fatal(err)
	}
	again, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	in, _, err := again.Instance(ctx, "a")
	if err != nil || in.Labels["env"] != "prod" {
		t.Errorf("after a restart: %+v, %v", in, err)
	}
	ins, _, _ := again.Instances(ctx, registry.Filter{Labels: map[string]string{"env": "prod"}})
	if len(ins) != 1 {
		t.Errorf("Filter.Labels: %d instances", len(ins))
	}
}

// Repeated ?label= filters are ANDed on one key too: two values of a key
// select nothing (no instance carries both), whichever comes first, and
// answer as a label that no instance carries does; the same pair twice is
// that pair.
func TestLabelsSameKeyAND(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.must(201, "POST", "/instances", labeled("a1", "web-1", `{"env":"prod","zone":"a"}`))
	h.must(201, "POST", "/instances", labeled("a2", "web-2", `{"env":"staging","zone":"a"}`))
	for _, id := range []string{"a1", "a2"} {
		h.postTools(id, `{"name":"deploy","x-command":"/bin/deploy"}`)
	}
	const (
		both    = "label=env=staging&label=env=prod"
		reverse = "label=env=prod&label=env=staging"
		none    = "label=env=none" // a label no instance carries
	)
	for _, tt := range []struct {
		path, query string
		want        int    // status
		hosts       string // the hosts answered, for a 200 listing
	}{
		{"/tools", both, 200, ""},
		{"/tools", reverse, 200, ""},
		{"/tools", "label=env=prod&label=env=prod", 200, "web-1"},
		{"/tools", "label=env=staging&label=zone=a", 200, "web-2"},
		{"/tools", "label=zone=a&label=env=staging&label=env=prod", 200, ""},
		{"/tools/deploy", both, 404, ""},
		{"/tools/deploy", reverse, 404, ""},
		{"/tools/deploy", "label=env=prod&label=env=prod", 200, "web-1"},
		{"/tools/deploy", both + "&detail=true", 404, ""},
		{"/instances", both, 200, ""},
		{"/instances", reverse + "&active=false", 200, ""},
		{"/instances", "label=env=staging&label=env=staging", 200, "web-2"},
		{"/hosts", both, 200, ""},
		{"/hosts", reverse + "&detail=true", 200, ""},
		{"/hosts", "label=env=prod&label=env=prod", 200, "web-1"},
		{"/export/ssh-config", both, 200, ""},
		{"/export/ansible", reverse, 200, ""},
	} {
		t.Run(tt.path+"?"+tt.query, func(t *testing.T) {
			// Each value alone is answered first: a cached answer for
			// one of them is not the answer for both.
			h.must(200, "GET", tt.path+"?label=env=prod", "")
			h.must(200, "GET", tt.path+"?label=env=staging", "")
			rec := h.do("GET", tt.path+"?"+tt.query, "")
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if rec.Code != 200 {
				return
			}
			if tt.hosts == "" {
				// As a label that no instance carries: the same bytes.
				q := strings.NewReplacer(both, none, reverse, none).Replace(tt.query)
				if diff := cmp.Diff(h.must(200, "GET", tt.path+"?"+q, "").Body.String(), rec.Body.String()); diff != "" {
					t.Errorf("not the answer of ?%s: mismatch (-want +got):\n%s", q, diff)
				}
			}
			if strings.HasPrefix(tt.path, "/export/") {
				return
			}
			var got []string
			for _, e := range anyList(decodeJSON(t, rec.Body.Bytes())) {
				m := e.(map[string]any)
				if hs, ok := m["hosts"]; ok {
					for _, he := range hs.([]any) {
						got = append(got, he.(map[string]any)["host"].(string))
					}
				} else {
					got = append(got, m["host"].(string))
				}
			}
			if diff := cmp.Diff(tt.hosts, strings.Join(got, ",")); diff != "" {
				t.Errorf("hosts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// anyList is v as a list: a listing, or the one tool of /tools/{name}.
func anyList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}

// A blocking query whose labels select nothing still waits for a change
// and answers it, empty, with the new index.
func TestLabelsSameKeyBlocking(t *testing.T) {
	h := newHarness(t, registry.Options{})
	t.Cleanup(h.reg.ReleaseWaiters)
	h.must(201, "POST", "/instances", labeled("a1", "web-1", `{"env":"prod"}`))
	h.postTools("a1", `{"name":"deploy","x-command":"/bin/deploy"}`)
	const target = "/tools?label=env=staging&label=env=prod"
	rec := h.must(200, "GET", target, "")
	n := regIndex(t, rec.Header())
	ch := getAsync(h.h, withParams(target, fmt.Sprintf("index=%d&wait=30s", n)))
	h.must(201, "POST", "/instances", labeled("a2", "web-2", `{"env":"staging"}`))
	h.postTools("a2", `{"name":"deploy","x-command":"/bin/deploy"}`)
	a := await(t, ch, 10*time.Second, "after the change")
	if got := regIndex(t, a.rec.Header()); got <= n {
		t.Errorf("index %d after the change, want more than %d", got, n)
	}
	checkJSON(t, a.rec, 200, `[]`)
}

// registry_test.go pins what the indexes must keep: for random fleets, every
// listing (/tools, /tools/{name}, /hosts, filters, page walks) equals a naive
// recomputation from the instance records, also while writers and readers
// run concurrently.

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/runspec/registry"
)

// randomWrites drives random writes into a registry and remembers when each
// id last registered (the /hosts tie-break).
type randomWrites struct {
	rng   *rand.Rand
	clock *fakeClock
	reg   *registry.Registry
	mu    sync.Mutex
	regAt map[string]time.Time
}

func newRandomWrites(t testing.TB, seed uint64) *randomWrites {
	clock := &fakeClock{now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)}
	reg, err := registry.New(registry.Options{Now: clock.Now, HeartbeatInterval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &randomWrites{rng: rand.New(rand.NewPCG(seed, seed)), clock: clock, reg: reg, regAt: map[string]time.Time{}}
}

func (f *randomWrites) tool(name string, variant, host int) json.RawMessage {
	t := map[string]any{"name": name, "inputSchema": map[string]any{"type": "object", "v": variant}}
	if variant%2 == 0 {
		t["description"] = "does " + name
	}
	if host%3 != 0 {
		t["x-command"] = "/bin/" + name
		t["x-run-as"] = fmt.Sprintf("u%d", host)
	}
	if variant == 3 {
		t["x-autonomy"] = "full"
	}
	b, _ := json.Marshal(t)
	return b
}

// step makes one random write (or moves the clock).
func (f *randomWrites) step(ctx context.Context, rng *rand.Rand) {
	id := fmt.Sprintf("id-%02d", rng.IntN(40))
	host := rng.IntN(6)
	switch op := rng.IntN(10); {
	case op < 2:
		reg := registry.Registration{ID: id, Name: fmt.Sprintf("pkg-%d", rng.IntN(3)), Version: "1", Host: fmt.Sprintf("h<%d>", host)}
		if rng.IntN(3) == 0 {
			reg.HeartbeatInterval = time.Duration(1+rng.IntN(20)) * time.Second
		}
		f.mu.Lock()
		if err := f.reg.Register(ctx, reg); err == nil {
			f.regAt[id] = f.clock.Now()
		}
		f.mu.Unlock()
	case op < 5:
		var tools []json.RawMessage
		for _, k := range rng.Perm(8)[:rng.IntN(5)] {
			tools = append(tools, f.tool(fmt.Sprintf("tool-%d", k), rng.IntN(4), host))
		}
		f.reg.UpdateTools(ctx, id, tools)
	case op < 8:
		f.reg.Heartbeat(ctx, id, nil)
	case op < 9:
		f.reg.Deregister(ctx, id)
	default:
		f.clock.Advance(time.Duration(rng.IntN(8)) * time.Second)
		if rng.IntN(2) == 0 {
			f.reg.Purge(ctx)
		}
	}
}

func getJSON(t testing.TB, h http.Handler, target string, v any) http.Header {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
		t.Fatalf("GET %s: %v in %s", target, err, w.Body)
	}
	return w.Header()
}

type rawInstance struct {
	Raw    map[string]any   `json:"-"` // the whole record
	ID     string           `json:"instance_id"`
	Name   string           `json:"name"`
	Host   string           `json:"host"`
	Active bool             `json:"active"`
	Tools  []map[string]any `json:"tools"`
}

var execFields = []string{"x-command", "x-run-as", "x-become-method", "x-become-flags"}

// naiveTools groups the tools of insts (in registration order) by name.
func naiveTools(insts []rawInstance, onlyHost string) []map[string]any {
	byName := map[string]map[string]any{}
	var names []string
	for _, in := range insts {
		if onlyHost != "" && in.Host != onlyHost {
			continue
		}
		for _, t := range in.Tools {
			name := t["name"].(string)
			g := byName[name]
			if g == nil {
				g = map[string]any{"hosts": []any{}}
				for _, k := range []string{"name", "description", "inputSchema"} {
					if v, ok := t[k]; ok {
						g[k] = v
					}
				}
				byName[name] = g
				names = append(names, name)
			}
			h := map[string]any{"host": in.Host}
			for _, k := range execFields {
				if v, ok := t[k]; ok {
					h[k] = v
				}
			}
			g["hosts"] = append(g["hosts"].([]any), h)
		}
	}
	slices.Sort(names)
	out := []map[string]any{}
	for _, n := range names {
		out = append(out, byName[n])
	}
	return out
}

func records(insts []rawInstance) []map[string]any {
	out := []map[string]any{}
	for _, in := range insts {
		out = append(out, in.Raw)
	}
	return out
}

func filterActive(insts []rawInstance, activeOnly bool) []rawInstance {
	var out []rawInstance
	for _, in := range insts {
		if in.Active || !activeOnly {
			out = append(out, in)
		}
	}
	return out
}

// naiveHosts makes /hosts: per (host, name), an active instance if any, the
// most recently registered among the candidates.
func naiveHosts(insts []rawInstance, regAt map[string]time.Time, activeOnly bool, name string) []map[string]any {
	type key struct{ host, name string }
	best := map[key]rawInstance{}
	for _, in := range insts {
		if (activeOnly && !in.Active) || (name != "" && in.Name != name) {
			continue
		}
		k := key{in.Host, in.Name}
		b, ok := best[k]
		if !ok || (in.Active && !b.Active) || (in.Active == b.Active && !regAt[in.ID].Before(regAt[b.ID])) {
			best[k] = in
		}
	}
	keys := make([]key, 0, len(best))
	for k := range best {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return strings.Compare(a.host+"\x00"+a.name, b.host+"\x00"+b.name)
	})
	out := []map[string]any{}
	for _, k := range keys {
		in := best[k]
		out = append(out, map[string]any{"host": in.Host, "name": in.Name, "instance_id": in.ID, "version": "1", "tool_count": float64(len(in.Tools))})
	}
	return out
}

// walk follows Link headers from target and concatenates the pages.
func walk(t testing.TB, h http.Handler, target string) []any {
	t.Helper()
	var all []any
	for pages := 0; target != ""; pages++ {
		if pages > 1000 {
			t.Fatalf("page walk of %s does not end", target)
		}
		var page []any
		hdr := getJSON(t, h, target, &page)
		all = append(all, page...)
		link := hdr.Get("Link")
		if link == "" {
			break
		}
		rel := strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		base, _ := url.Parse(target)
		next, err := base.Parse(rel)
		if err != nil || !strings.HasPrefix(rel, "?") {
			t.Fatalf("bad Link %q", link)
		}
		target = next.String()
	}
	return all
}

func asAny(t testing.TB, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	json.Unmarshal(b, &out)
	return out
}

// checkListings compares every listing with its naive recomputation. The
// registry must not change meanwhile.
func (f *randomWrites) checkListings(t testing.TB) {
	t.Helper()
	var all []rawInstance
	var raw []map[string]any
	getJSON(t, f.reg, "/instances", &all)
	getJSON(t, f.reg, "/instances", &raw)
	for i := range all {
		all[i].Raw = raw[i]
	}
	var hosts, names []string
	for _, in := range all {
		hosts = append(hosts, in.Host)
		for _, tl := range in.Tools {
			names = append(names, tl["name"].(string))
		}
	}
	f.mu.Lock()
	regAt := maps(f.regAt)
	f.mu.Unlock()
	check := func(target string, want any) {
		t.Helper()
		var got any
		getJSON(t, f.reg, target, &got)
		if diff := cmp.Diff(asAny(t, want), got); diff != "" {
			t.Fatalf("GET %s mismatch (-naive +got):\n%s", target, diff)
		}
		if wantItems, ok := asAny(t, want).([]any); ok {
			sep := "?"
			if strings.Contains(target, "?") {
				sep = "&"
			}
			for _, limit := range []int{1, 3} {
				paged := walk(t, f.reg, fmt.Sprintf("%s%slimit=%d", target, sep, limit))
				if diff := cmp.Diff(wantItems, paged, cmp.Comparer(func(a, b []any) bool { return len(a) == 0 && len(b) == 0 || cmp.Equal(a, b) })); diff != "" {
					t.Fatalf("page walk of %s (limit %d) mismatch (-naive +got):\n%s", target, limit, diff)
				}
			}
		}
	}
	check("/instances", records(all))
	check("/instances?active=true", records(filterActive(all, true)))
	check("/tools", naiveTools(filterActive(all, true), ""))
	check("/tools?active=false", naiveTools(all, ""))
	check("/hosts", naiveHosts(all, regAt, true, ""))
	check("/hosts?active=0", naiveHosts(all, regAt, false, ""))
	for _, h := range uniq(hosts) {
		q := url.QueryEscape(h)
		check("/tools?active=false&host="+q, naiveTools(all, h))
		var onHost []rawInstance
		for _, in := range all {
			if in.Host == h && in.Name == "pkg-1" {
				onHost = append(onHost, in)
			}
		}
		check("/instances?host="+q+"&name=pkg-1", records(onHost))
	}
	check("/hosts?name=pkg-2&active=false", naiveHosts(all, regAt, false, "pkg-2"))
	for _, n := range uniq(names) {
		for _, g := range naiveTools(all, "") {
			if g["name"] == n {
				check("/tools/"+n+"?active=false", g)
			}
		}
	}
}

func maps(m map[string]time.Time) map[string]time.Time {
	out := make(map[string]time.Time, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func uniq(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}

func TestListingsMatchNaiveRecomputation(t *testing.T) {
	for seed := uint64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			f := newRandomWrites(t, seed)
			ctx := context.Background()
			for i := 0; i < 400; i++ {
				f.step(ctx, f.rng)
				if i%100 == 99 {
					f.checkListings(t)
				}
			}
		})
	}
}

// TestConcurrentWritersAndReaders runs writers and readers together (for
// the race detector), then checks the listings once the writers stop.
func TestConcurrentWritersAndReaders(t *testing.T) {
	f := newRandomWrites(t, 99)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for i := 0; i < 1500; i++ {
				f.step(ctx, rng)
			}
		}(w)
	}
	stop := make(chan struct{})
	var readers sync.WaitGroup
	for _, target := range []string{"/instances", "/tools?active=false", "/hosts", "/tools/tool-1", "/tools?host=h<1>", "/instances?limit=2"} {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w := httptest.NewRecorder()
				f.reg.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
				if (w.Code != 200 && w.Code != 404) || !json.Valid(w.Body.Bytes()) {
					t.Errorf("GET %s: %d %s", target, w.Code, w.Body)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	f.checkListings(t)
}

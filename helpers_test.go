// helpers_test.go holds what the black-box tests share: a fake clock, a
// harness that drives a Registry through its http.Handler with
// httptest.NewRecorder, helpers that decode and compare JSON answers, and
// helpers that read an answer's X-Registry-Index.

package registry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/runspec/registry"
)

// t0 is where every fake clock starts: a whole second, so that last_seen
// values are exact in JSON.
var t0 = time.Unix(1_700_000_000, 0)

// secs is t as the protocol's last_seen: Unix seconds as a JSON number.
func secs(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

// fakeClock is an injectable clock for Options.Now.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick time.Duration // added after each Now, like a real clock; 0: stopped
}

func newFakeClock() *fakeClock { return &fakeClock{now: t0} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now
	c.now = c.now.Add(c.tick)
	return now
}

// SetTick makes every Now move the clock on by d (0 stops it again).
func (c *fakeClock) SetTick(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tick = d
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// harness sends requests to a Registry through its http.Handler.
type harness struct {
	tb    testing.TB
	clock *fakeClock
	reg   *registry.Registry
	h     http.Handler   // reg, or a handler that mounts it
	store registry.Store // Options.Store of reg
}

// newHarness returns a harness on a new Registry; opts.Now defaults to the
// harness's fake clock.
func newHarness(tb testing.TB, opts registry.Options) *harness {
	tb.Helper()
	c := newFakeClock()
	if opts.Now == nil {
		opts.Now = c.Now
	}
	reg, err := registry.New(opts)
	if err != nil {
		tb.Fatalf("registry.New: %v", err)
	}
	return &harness{tb: tb, clock: c, reg: reg, h: reg, store: opts.Store}
}

// A reqOpt changes a request before it is served.
type reqOpt func(*http.Request)

func withKey(key string) reqOpt { return func(r *http.Request) { r.Header.Set("X-API-Key", key) } }

func withRemote(addr string) reqOpt { return func(r *http.Request) { r.RemoteAddr = addr } }

func withXFF(v string) reqOpt { return func(r *http.Request) { r.Header.Set("X-Forwarded-For", v) } }

// chunked hides the length of the body, as a chunked request does.
func chunked(r *http.Request) { r.ContentLength = -1 }

// do serves one request; an empty body sends no body at all.
func (h *harness) do(method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	h.tb.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, o := range opts {
		o(req)
	}
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	return rec
}

// must serves a request and fails the test at once if the status is not code.
func (h *harness) must(code int, method, target, body string, opts ...reqOpt) *httptest.ResponseRecorder {
	h.tb.Helper()
	rec := h.do(method, target, body, opts...)
	if rec.Code != code {
		h.tb.Fatalf("%s %s: status %d, want %d; body %s", method, target, rec.Code, code, rec.Body)
	}
	return rec
}

// register registers id with version "1" and the default interval.
func (h *harness) register(id, name, host string, opts ...reqOpt) {
	h.tb.Helper()
	h.must(http.StatusCreated, "POST", "/instances", regBody(id, name, host), opts...)
}

// postTools posts tools (JSON objects) as id's tool list.
func (h *harness) postTools(id string, tools ...string) {
	h.tb.Helper()
	h.must(http.StatusOK, "POST", "/instances/"+id+"/tools", toolsBody(tools...))
}

// heartbeat sends a heartbeat with no body and returns its status.
func (h *harness) heartbeat(id string) string {
	h.tb.Helper()
	rec := h.must(http.StatusOK, "POST", "/instances/"+id+"/heartbeat", "")
	var got struct{ Status string }
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		h.tb.Fatalf("heartbeat %s: %v", id, err)
	}
	return got.Status
}

func (h *harness) deregister(id string) {
	h.tb.Helper()
	h.must(http.StatusOK, "DELETE", "/instances/"+id, "")
}

// get fetches target, which must answer 200, and decodes its JSON.
func (h *harness) get(target string) any {
	h.tb.Helper()
	return decodeJSON(h.tb, h.must(http.StatusOK, "GET", target, "").Body.Bytes())
}

// instances returns GET /instances (every instance), sorted by id.
func (h *harness) instances() []any {
	h.tb.Helper()
	return sortByKey(h.tb, h.get("/instances?active=false"), "instance_id")
}

func regBody(id, name, host string) string {
	return fmt.Sprintf(`{"instance_id":%q,"name":%q,"version":"1","host":%q}`, id, name, host)
}

func toolsBody(tools ...string) string {
	return `{"tools":[` + strings.Join(tools, ",") + `]}`
}

// decodeJSON decodes b, failing the test if it is not one JSON value.
// Numbers stay json.Number so that no literal is lost.
func decodeJSON(tb testing.TB, b []byte) any {
	tb.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		tb.Fatalf("invalid JSON %q: %v", b, err)
	}
	if dec.More() {
		tb.Fatalf("trailing data after JSON value in %q", b)
	}
	return normNumbers(v)
}

// normNumbers turns json.Number into float64 where that is exact enough
// for comparisons with literals written in tests.
func normNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := v.Float64()
		if err != nil {
			return v
		}
		return f
	case []any:
		for i := range v {
			v[i] = normNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = normNumbers(v[k])
		}
	}
	return v
}

// js decodes a JSON literal written in a test.
func js(tb testing.TB, s string) any {
	tb.Helper()
	return decodeJSON(tb, []byte(s))
}

// sortByKey sorts a decoded JSON array of objects by the string at key.
func sortByKey(tb testing.TB, v any, key string) []any {
	tb.Helper()
	list, ok := v.([]any)
	if !ok {
		tb.Fatalf("not a JSON array: %v", v)
	}
	list = slices.Clone(list)
	slices.SortStableFunc(list, func(a, b any) int {
		return strings.Compare(fmt.Sprint(a.(map[string]any)[key]), fmt.Sprint(b.(map[string]any)[key]))
	})
	return list
}

// checkJSON checks a response's status and that its body is the JSON want.
func checkJSON(tb testing.TB, rec *httptest.ResponseRecorder, code int, want string) {
	tb.Helper()
	if rec.Code != code {
		tb.Errorf("status = %d, want %d (body %s)", rec.Code, code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type = %q, want application/json", ct)
	}
	if diff := cmp.Diff(js(tb, want), decodeJSON(tb, rec.Body.Bytes())); diff != "" {
		tb.Errorf("body mismatch (-want +got):\n%s", diff)
	}
}

// detailLocs checks that a 422 body is {"detail":[{"loc","msg","type"}...]}
// and returns the loc of each entry.
func detailLocs(tb testing.TB, rec *httptest.ResponseRecorder) [][]string {
	tb.Helper()
	if rec.Code != http.StatusUnprocessableEntity {
		tb.Errorf("status = %d, want 422 (body %s)", rec.Code, rec.Body)
		return nil
	}
	locs, err := parseDetailList(rec.Body.Bytes())
	if err != nil {
		tb.Errorf("422 body %s: %v", rec.Body, err)
	}
	return locs
}

// parseDetailList checks the shape of a 422 body and returns its locs.
func parseDetailList(b []byte) ([][]string, error) {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(b, &body); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if len(body) != 1 || body["detail"] == nil {
		return nil, fmt.Errorf("want exactly the key detail")
	}
	var list []map[string]json.RawMessage
	if err := json.Unmarshal(body["detail"], &list); err != nil || len(list) == 0 {
		return nil, fmt.Errorf("detail is not a non-empty list of objects")
	}
	var locs [][]string
	for i, e := range list {
		var loc []string
		var msg, typ string
		if len(e) != 3 || json.Unmarshal(e["loc"], &loc) != nil || json.Unmarshal(e["msg"], &msg) != nil ||
			json.Unmarshal(e["type"], &typ) != nil || len(loc) == 0 || msg == "" || typ == "" {
			return nil, fmt.Errorf("detail[%d] is not {loc: [string...], msg: string, type: string}", i)
		}
		locs = append(locs, loc)
	}
	return locs, nil
}

// checkDetailString checks an error body {"detail": "<non-empty string>"}
// and returns the string.
func checkDetailString(tb testing.TB, rec *httptest.ResponseRecorder, code int) string {
	tb.Helper()
	if rec.Code != code {
		tb.Errorf("status = %d, want %d (body %s)", rec.Code, code, rec.Body)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		tb.Errorf("body %q is not a JSON object: %v", rec.Body, err)
		return ""
	}
	s, ok := body["detail"].(string)
	if len(body) != 1 || !ok || s == "" {
		tb.Errorf("body = %s, want {\"detail\": non-empty string}", rec.Body)
	}
	return s
}

var linkRE = regexp.MustCompile(`^<([^>]*)>; rel="next"$`)

// walkPages follows the Link headers from target and returns every page.
func (h *harness) walkPages(target string) [][]any {
	h.tb.Helper()
	var pages [][]any
	for range 10000 {
		rec := h.must(http.StatusOK, "GET", target, "")
		page, ok := decodeJSON(h.tb, rec.Body.Bytes()).([]any)
		if !ok {
			h.tb.Fatalf("GET %s: page is not a JSON array: %s", target, rec.Body)
		}
		pages = append(pages, page)
		link := rec.Header().Get("Link")
		if link == "" {
			return pages
		}
		m := linkRE.FindStringSubmatch(link)
		if m == nil {
			h.tb.Fatalf("GET %s: Link %q is not <...>; rel=\"next\"", target, link)
		}
		ref, err := url.Parse(m[1])
		if err != nil || ref.Scheme != "" || ref.Host != "" || ref.Path != "" || !strings.HasPrefix(m[1], "?") {
			h.tb.Fatalf("GET %s: Link target %q is not a relative query reference", target, m[1])
		}
		base, _ := url.Parse(target)
		target = base.ResolveReference(ref).String()
	}
	h.tb.Fatalf("more than 10000 pages from %s", target)
	return nil
}

// instRecord builds the expected JSON record of an instance.
type instRecord struct {
	ID, Name, Host string
	Version        string // "1" if empty
	Active         bool
	LastSeen       time.Time
	Tools          string  // JSON array; "[]" if empty
	Interval       float64 // 30 if zero
	System         string  // JSON; the key is absent if empty
}

func (r instRecord) value(tb testing.TB) any {
	tb.Helper()
	if r.Version == "" {
		r.Version = "1"
	}
	if r.Tools == "" {
		r.Tools = "[]"
	}
	if r.Interval == 0 {
		r.Interval = 30
	}
	m := map[string]any{
		"instance_id":        r.ID,
		"name":               r.Name,
		"version":            r.Version,
		"host":               r.Host,
		"active":             r.Active,
		"last_seen":          secs(r.LastSeen),
		"tools":              js(tb, r.Tools),
		"heartbeat_interval": r.Interval,
	}
	if r.System != "" {
		m["system"] = js(tb, r.System)
	}
	return m
}

// sortHosts makes the order of a grouped tool's hosts entries irrelevant:
// the protocol does not fix it.
var sortHosts = cmp.FilterPath(func(p cmp.Path) bool {
	for i := len(p) - 1; i >= 0 && i >= len(p)-2; i-- {
		if mi, ok := p[i].(cmp.MapIndex); ok {
			return mi.Key().String() == "hosts"
		}
	}
	return false
}, cmpopts.SortSlices(func(a, b any) bool { return fmt.Sprint(a) < fmt.Sprint(b) }))

// regIndex returns the X-Registry-Index of an answer, failing the test if
// it is missing or not an unsigned integer.
func regIndex(tb testing.TB, h http.Header) uint64 {
	tb.Helper()
	s := h.Get("X-Registry-Index")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		tb.Fatalf("X-Registry-Index = %q, want an unsigned integer", s)
	}
	return n
}

// indexAt GETs target (whatever its status) and returns its index.
func indexAt(h *harness, target string) uint64 {
	h.tb.Helper()
	return regIndex(h.tb, h.do("GET", target, "").Header())
}

// globalIndex is the index of GET /instances, which every change moves.
func globalIndex(h *harness) uint64 {
	h.tb.Helper()
	return indexAt(h, "/instances")
}

// tick moves the clock half a second on and heartbeats ids: last_seen moves,
// nothing else does.
func tick(h *harness, ids ...string) {
	h.tb.Helper()
	h.clock.Advance(500 * time.Millisecond)
	for _, id := range ids {
		h.heartbeat(id)
	}
}

func storedActive(t *testing.T, st registry.Store, id string) bool {
	t.Helper()
	active := false
	st.Load(context.Background(), func(rec registry.Record) error {
		if rec.ID == id {
			active = rec.Active
		}
		return nil
	})
	return active
}

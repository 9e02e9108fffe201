// fuzz_test.go feeds arbitrary bodies and ids to the write endpoints and
// checks that every answer is one the protocol allows, as valid JSON, and
// that whatever was accepted reads back as valid JSON and as posted.

package registry_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/runspec/registry"
)

// fuzzMaxBody is small so that the fuzzer reaches the 413 path.
const fuzzMaxBody = 2048

func FuzzWrite(f *testing.F) {
	seeds := []struct {
		id   string
		body string
	}{
		{"a", `{"instance_id":"a","name":"app","version":"1","host":"h"}`},
		{"a", `{"instance_id":"a","name":"app","version":"1","host":"h","heartbeat_interval":45}`},
		{"a", `{"instance_id":"a","name":"app","version":"1","host":"h","heartbeat_interval":1e-10}`},
		{"a", `{"instance_id":"a\u0085","name":"app","version":"1","host":"h"}`},
		{"a", `{"instance_id":"\ud800","name":"app","version":"1","host":"h"}`},
		{"x", `{"instance_id":"x","name":"<&>","version":"","host":"web<&>01","extra":[1,2]}`},
		{"known", `{"tools":[{"name":"deploy","description":"d","inputSchema":{"type":"object"},"x-command":"/bin/x","x-run-as":"root","x-become-method":"sudo","x-become-flags":"-H","x-autonomy":1}]}`},
		{"known", `{"tools":[{"name":"a"},{"name":"a"}]}`},
		{"known", `{"tools":[{"name":"a","name":"b"}]}`},
		{"known", `{"tools":[{"name":"a","x-command":1,"x-command":2}]}`},
		{"known", `{"tools":[{"n\u0061me":"a","\u0000":"\ud83d\ude00"}]}`},
		{"known", `{"tools":[{"name":"a","big":1e400}]}`},
		{"known", `{"tools":[1,"x",null,[],{}]}`},
		{"known", `{"tools":null}`},
		{"known", `{"system":{"pid":1,"uptime":2.5}}`},
		{"known", `{"system":{"pid":1},"system":{"pid":2}}`},
		{"known", `{"system":5}`},
		{"known", `{"system":null}`},
		{"known", ``},
		{"known", ` `},
		{"known", `{`},
		{"known", `[]`},
		{"known", `null`},
		{"known", "\xff\xfe"},
		{"known", `{"tools":[{"name":"` + strings.Repeat("x", fuzzMaxBody) + `"}]}`},
		{"", `{}`},
		{"a/b", `{}`},
		{"a%2Fb", `{}`},
		{"..", `{}`},
		{"\x00", `{}`},
		{"\xff", `{"tools":[]}`},
		{"id with space", `{"tools":[{"name":"t"}]}`},
	}
	for _, s := range seeds {
		f.Add(s.id, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, id string, body []byte) {
		h := newHarness(t, registry.Options{MaxTools: 8, MaxBodyBytes: fuzzMaxBody})
		h.register("known", "app", "h0")

		// Registration: the fuzzed body, then the fuzzed id in a good body.
		fuzzPost(t, h, "/instances", body, http.StatusCreated, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity)
		idBody, err := json.Marshal(map[string]string{"instance_id": id, "name": "n", "version": "1", "host": "h"})
		if err != nil {
			t.Fatal(err)
		}
		if code := fuzzPost(t, h, "/instances", idBody, http.StatusCreated, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity); code == http.StatusCreated {
			// A registered id reads back unchanged (as JSON carries it:
			// json.Marshal made invalid UTF-8 into U+FFFD).
			var sent struct {
				ID string `json:"instance_id"`
			}
			if err := json.Unmarshal(idBody, &sent); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, e := range h.get("/instances").([]any) {
				found = found || e.(map[string]any)["instance_id"] == sent.ID
			}
			if !found {
				t.Errorf("registered id %q is not in GET /instances", sent.ID)
			}
		}

		// Heartbeat and tools, on a known instance and on the fuzzed id.
		// A fuzzed id may not route (a "/" in it): 404 Not Found, 405.
		for _, target := range []string{"known", id} {
			ok := []int{http.StatusOK, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity}
			if target == id {
				ok = append(ok, http.StatusNotFound, http.StatusMethodNotAllowed)
			}
			path := "/instances/" + target
			if code := fuzzPost(t, h, path+"/heartbeat", body, ok...); code == http.StatusOK && target == "known" {
				checkSystem(t, h, body)
			}
			ok = append(ok, http.StatusNotFound)
			if code := fuzzPost(t, h, path+"/tools", body, ok...); code == http.StatusOK && target == "known" {
				checkTools(t, h, body)
			}
		}

		// Whatever was accepted reads back as valid JSON and XML.
		for _, target := range []string{"/instances", "/tools?active=false", "/hosts?active=false", "/tools", "/instances/known"} {
			h.get(target)
		}
		var doc superPuTTY
		if err := xml.Unmarshal(h.must(http.StatusOK, "GET", "/export/superputty?active=false", "").Body.Bytes(), &doc); err != nil {
			t.Errorf("superputty export is not XML: %v", err)
		}
		// One session per /hosts entry, but for those the export leaves
		// out: a host with a space or a "/" (SuperPuTTY's folder
		// separator), a name with a "/", text XML cannot hold.
		entries := h.get("/hosts?active=false").([]any)
		fits := 0
		for _, e := range entries {
			host, name := e.(map[string]any)["host"].(string), e.(map[string]any)["name"].(string)
			if !strings.ContainsAny(host, " /") && !strings.ContainsAny(host+name, "/\uFFFE\uFFFF\uFFFD") {
				fits++
			}
		}
		if len(doc.Sessions) != fits {
			t.Errorf("superputty export has %d sessions, /hosts %d entries of which %d it can hold", len(doc.Sessions), len(entries), fits)
		}
		for _, e := range h.get("/tools?active=false").([]any) {
			name := e.(map[string]any)["name"].(string)
			if strings.ContainsAny(name, "/?#%") || name == "." || name == ".." {
				continue // not addressable as a path segment
			}
			h.must(http.StatusOK, "GET", "/tools/"+url.PathEscape(name)+"?active=false", "")
		}
	})
}

// fuzzPost posts body to path (set on the URL as is, without parsing) and
// checks that the status is one of ok and that the answer is well formed.
func fuzzPost(t *testing.T, h *harness, path string, body []byte, ok ...int) int {
	t.Helper()
	req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
	req.URL = &url.URL{Path: path}
	req.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	h.h.ServeHTTP(rec, req)
	code := rec.Code
	allowed := false
	for _, c := range ok {
		allowed = allowed || c == code
	}
	if !allowed {
		t.Fatalf("POST %q: status %d, want one of %v; body %s", path, code, ok, rec.Body)
	}
	b := rec.Body.Bytes()
	if !json.Valid(b) {
		t.Fatalf("POST %q: %d answer is not JSON: %q", path, code, b)
	}
	switch code {
	case http.StatusOK:
		if s := string(b); s != `{"status":"ok"}` && s != `{"status":"ack"}` && s != `{"status":"refresh"}` {
			t.Errorf("POST %q: 200 body %s", path, b)
		}
	case http.StatusCreated:
		if string(b) != `{"status":"ok"}` {
			t.Errorf("POST %q: 201 body %s", path, b)
		}
	case http.StatusUnprocessableEntity:
		if _, err := parseDetailList(b); err != nil {
			t.Errorf("POST %q: 422 body %s: %v", path, b, err)
		}
	default:
		var e struct{ Detail string }
		if err := json.Unmarshal(b, &e); err != nil || e.Detail == "" {
			t.Errorf("POST %q: %d body %s is not {\"detail\": string}", path, code, b)
		}
	}
	return code
}

// decodeLoose decodes b as the registry reads a request body (an empty body
// is {}), keeping number literals; ok is false if b is not a JSON object.
func decodeLoose(b []byte) (map[string]any, bool) {
	if len(bytes.TrimSpace(b)) == 0 {
		return map[string]any{}, true
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, false
	}
	return m, true
}

// checkSystem checks that an accepted heartbeat's system object is shown.
func checkSystem(t *testing.T, h *harness, body []byte) {
	t.Helper()
	m, ok := decodeLoose(body)
	if !ok {
		t.Fatalf("heartbeat accepted a body that is not a JSON object: %q", body)
	}
	sys, ok := m["system"].(map[string]any)
	if !ok {
		return
	}
	got, _ := decodeLoose(instanceJSON(t, h, "known")["system"])
	if !reflect.DeepEqual(sys, got) {
		t.Errorf("system shown %v, posted %v", got, sys)
	}
}

// checkTools checks that an accepted tool list is shown as posted.
func checkTools(t *testing.T, h *harness, body []byte) {
	t.Helper()
	m, ok := decodeLoose(body)
	if !ok {
		t.Fatalf("tools accepted a body that is not a JSON object: %q", body)
	}
	posted, ok := m["tools"].([]any)
	if !ok {
		t.Fatalf("tools accepted a body without a tool list: %q", body)
	}
	var shown []any
	dec := json.NewDecoder(bytes.NewReader(instanceJSON(t, h, "known")["tools"]))
	dec.UseNumber()
	if err := dec.Decode(&shown); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(posted, shown) && !(len(posted) == 0 && len(shown) == 0) {
		t.Errorf("tools shown\n%v\nposted\n%v", shown, posted)
	}
}

func instanceJSON(t *testing.T, h *harness, id string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(h.must(http.StatusOK, "GET", "/instances/"+id, "").Body.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

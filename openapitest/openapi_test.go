// openapi_test.go validates the registry's answers against its own
// OpenAPI document: it loads /openapi.json from a real registry, checks it
// as an OpenAPI 3.1 document, and sends a representative set of requests
// (every operation, successes and errors: 304, 403, 404, 415, 413, 422,
// 429, 503, 507) over HTTP, each request checked against the document
// where it should pass (and shown to break it where it should not), each
// answer's status, headers and body checked against it with
// openapi3filter, undocumented statuses included. At the end every
// operation of the document must have been exercised.

package openapitest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/memcluster"
)

const (
	adminKey  = "admin-key-0123456789"
	agentKey  = "agent-key-0123456789"
	readerKey = "reader-key-0123456789"
)

// textDecoder reads a body as a string, for the text types the document
// uses that openapi3filter has no decoder for.
func textDecoder(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
	b, err := io.ReadAll(body)
	return string(b), err
}

var registerDecoders sync.Once

// coverage records which statuses each operation answered, over all the
// registries of a test.
type coverage struct {
	mu   sync.Mutex
	seen map[string]map[int]bool // operationId → statuses
}

func (c *coverage) add(op string, status int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen[op] == nil {
		c.seen[op] = make(map[int]bool)
	}
	c.seen[op][status] = true
}

// server is a registry served over HTTP, with its document and a router
// over it.
type server struct {
	t      *testing.T
	url    string
	reg    *registry.Registry
	router routers.Router
	doc    *openapi3.T
	cov    *coverage
}

// serve starts reg over HTTP and loads the document it serves.
func serve(t *testing.T, reg *registry.Registry, cov *coverage) *server {
	t.Helper()
	registerDecoders.Do(func() {
		for _, ct := range []string{"application/xml", "text/html", "text/javascript", "text/css", "text/event-stream"} {
			openapi3filter.RegisterBodyDecoder(ct, textDecoder)
		}
	})
	srv := httptest.NewServer(reg)
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		t.Fatalf("loading /openapi.json: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("/openapi.json is not a valid OpenAPI document: %v", err)
	}
	// The document leaves its answers open to members added later; here
	// they are closed, so that a member the registry sends and the
	// document lacks fails. (Tool objects, system and labels stay open:
	// they hold what agents posted.)
	closed := false
	for _, name := range []string{"Detail", "ValidationError", "FieldError", "StatusOK", "HeartbeatAnswer", "Instance",
		"GroupedTool", "ToolHostEntry", "HostEntry", "Event", "HealthDetail", "Released", "Version"} {
		ref := doc.Components.Schemas[name]
		if ref == nil || ref.Value == nil {
			t.Fatalf("the document has no schema %s", name)
		}
		ref.Value.AdditionalProperties = openapi3.AdditionalProperties{Has: &closed}
	}
	// The document's server is "." (wherever it is served): route on this one.
	doc.Servers = openapi3.Servers{{URL: srv.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &server{t: t, url: srv.URL, reg: reg, router: router, doc: doc, cov: cov}
}

// A call is one request and the status it must get.
type call struct {
	method, target, body string
	ctype                string            // Content-Type; application/json when there is a body
	key                  string            // sent as X-API-Key
	bearer               string            // sent as Authorization: Bearer
	header               map[string]string // more request headers
	want                 int
	// breaks: the request itself breaks the document (the answer must
	// still be one the document describes).
	breaks bool
	// stream: the answer does not end (GET /events): read its first event
	// and validate the status and headers only.
	stream bool
}

// answer is what a call got.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (s *server) newRequest(ctx context.Context, c call) *http.Request {
	s.t.Helper()
	var rd io.Reader
	if c.body != "" {
		rd = strings.NewReader(c.body)
	}
	req, err := http.NewRequestWithContext(ctx, c.method, s.url+c.target, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	switch {
	case c.ctype != "":
		req.Header.Set("Content-Type", c.ctype)
	case c.body != "":
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return req
}

// do sends c, checks the request and the answer against the document, and
// returns the answer.
func (s *server) do(c call) answer {
	s.t.Helper()
	name := c.method + " " + c.target
	ctx, cancel := context.WithTimeout(s.t.Context(), 10*time.Second)
	defer cancel()
	opts := &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true,
		MultiError: true, ExcludeResponseBody: c.stream}
	opts.WithCustomSchemaErrorFunc(func(err *openapi3.SchemaError) string { return err.Reason }) // without the schema's text

	req := s.newRequest(ctx, c)
	route, params, err := s.router.FindRoute(req)
	if err != nil {
		s.t.Fatalf("%s: the document has no operation for it: %v", name, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	verr := openapi3filter.ValidateRequest(ctx, in)
	switch {
	case !c.breaks && verr != nil:
		s.t.Errorf("%s: the request breaks the document: %v", name, verr)
	case c.breaks && verr == nil:
		s.t.Errorf("%s: the document accepts this request, which the registry refuses", name)
	}

	resp, err := http.DefaultClient.Do(s.newRequest(ctx, c))
	if err != nil {
		s.t.Fatalf("%s: %v", name, err)
	}
	defer resp.Body.Close()
	var body []byte
	if c.stream {
		// The stream's first bytes: its comment line.
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, ":") {
			s.t.Errorf("%s: the stream starts with %q, %v", name, line, err)
		}
	} else if body, err = io.ReadAll(resp.Body); err != nil {
		s.t.Fatalf("%s: reading the answer: %v", name, err)
	}
	if resp.StatusCode != c.want {
		s.t.Errorf("%s: status %d (%s), want %d", name, resp.StatusCode, body, c.want)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		s.t.Errorf("%s: the answer %d %s breaks the document: %v", name, resp.StatusCode, body, err)
	}
	if c.method == http.MethodHead || resp.StatusCode == http.StatusNotModified {
		// ValidateResponse passes these without a look: check their
		// status and headers here.
		if err := checkHeaders(route.Operation, resp.StatusCode, resp.Header); err != nil {
			s.t.Errorf("%s: the answer %d breaks the document: %v", name, resp.StatusCode, err)
		}
	}
	s.cov.add(route.Operation.OperationID, resp.StatusCode)
	return answer{resp.StatusCode, resp.Header, body}
}

// checkHeaders checks that op documents status, and that the answer has
// each header the document requires and each header it has matches its
// schema.
func checkHeaders(op *openapi3.Operation, status int, h http.Header) error {
	ref := op.Responses.Status(status)
	if ref == nil || ref.Value == nil {
		return fmt.Errorf("status %d is not documented", status)
	}
	var errs []error
	for name, href := range ref.Value.Headers {
		v := h.Values(name)
		if len(v) == 0 {
			if href.Value.Required {
				errs = append(errs, fmt.Errorf("no %s header", name))
			}
			continue
		}
		schema := href.Value.Schema.Value
		var value any = v[0]
		if schema.Type.Is("integer") {
			n, err := strconv.ParseInt(v[0], 10, 64)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %q is not an integer", name, v[0]))
				continue
			}
			value = n
		}
		if err := schema.VisitJSON(value, openapi3.EnableJSONSchema2020()); err != nil {
			errs = append(errs, fmt.Errorf("%s: %q: %v", name, v[0], err))
		}
	}
	return errors.Join(errs...)
}

func register(id, host string) string {
	return fmt.Sprintf(`{"instance_id":%q,"name":"ops","version":"1","host":%q,"heartbeat_interval":10,"labels":{"env":"prod"},"extra":1}`, id, host)
}

const tools = `{"tools":[{"name":"deploy","description":"Deploy","inputSchema":{"type":"object","properties":{"env":{"type":"string"}}},` +
	`"x-command":"/usr/local/bin/deploy","x-run-as":"oracle","x-become-method":"sudo","x-autonomy":"ask"},{"name":"restart"}]}`

func newRegistry(t *testing.T, opts registry.Options) *registry.Registry {
	t.Helper()
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return reg
}

// reads are the read operations that answer HEAD as well as GET.
var reads = []string{"/instances", "/instances/a1", "/tools", "/tools/deploy", "/hosts", "/export/superputty",
	"/export/mobaxterm", "/export/ansible", "/export/rundeck", "/export/ssh-config", "/health", "/openapi.json", "/docs", "/docs/docs.js", "/version"}

func TestAnswersMatchTheDocument(t *testing.T) {
	cov := &coverage{seen: make(map[string]map[int]bool)}
	agent, err := registry.ParseRoles("agent")
	if err != nil {
		t.Fatal(err)
	}
	reader, err := registry.ParseRoles("read")
	if err != nil {
		t.Fatal(err)
	}
	keys := []registry.Key{
		registry.NewKey(registry.Identity{Name: "fleet", Roles: agent}, agentKey),
		registry.NewKey(registry.Identity{Name: "prometheus", Roles: reader}, readerKey),
	}

	t.Run("agents and readers", func(t *testing.T) {
		s := serve(t, newRegistry(t, registry.Options{APIKey: adminKey, Keys: keys, MaxBodyBytes: 4096, Version: "v0.2.0-test"}), cov)
		for _, c := range []call{
			{method: "POST", target: "/instances", body: register("a1", "web-1"), want: 403},
			{method: "POST", target: "/instances", body: register("a1", "web-1"), key: agentKey, want: 201},
			{method: "POST", target: "/instances", body: register("a2", "web-2"), bearer: adminKey, want: 201},
			{method: "POST", target: "/instances", body: `{"instance_id":"a3","name":"ops","version":"1"}`, key: agentKey, want: 422, breaks: true},
			{method: "POST", target: "/instances", body: `{"instance_id":"a3","name":"ops","version":"1","host":"h","heartbeat_interval":0}`, key: agentKey, want: 422, breaks: true},
			{method: "POST", target: "/instances", body: `{"instance_id":`, key: agentKey, want: 422, breaks: true},
			{method: "POST", target: "/instances", body: "instance_id=a3", ctype: "text/plain", key: agentKey, want: 415, breaks: true},
			{method: "POST", target: "/instances", body: `{"instance_id":"a3","name":"ops","version":"1","host":"h","pad":"` + strings.Repeat("x", 5000) + `"}`, key: agentKey, want: 413},
			{method: "POST", target: "/instances/a1/heartbeat", key: agentKey, want: 200},          // refresh
			{method: "POST", target: "/instances/a1/tools", body: tools, key: agentKey, want: 200}, //
			{method: "POST", target: "/instances/a2/tools", body: `{"tools":[{"name":"deploy"}]}`, key: adminKey, want: 200},
			{method: "POST", target: "/instances/a1/heartbeat", body: `{"system":{"pid":42,"uptime":3.5}}`, key: agentKey, want: 200}, // ack
			{method: "POST", target: "/instances/a1/heartbeat", body: `{}`, key: agentKey, want: 200},
			{method: "POST", target: "/instances/a1/heartbeat", body: `{"system":1}`, key: agentKey, want: 422, breaks: true},
			{method: "POST", target: "/instances/a2/heartbeat", key: agentKey, want: 403}, // another identity's instance
			{method: "POST", target: "/instances/nobody/heartbeat", key: agentKey, want: 200},
			{method: "POST", target: "/instances/nobody/tools", body: tools, key: agentKey, want: 404},
			{method: "POST", target: "/instances/a1/tools", body: `{"tools":[{"description":"no name"}]}`, key: agentKey, want: 422, breaks: true},
			{method: "POST", target: "/instances/a1/tools", body: `{"tools":[{"name":"x"},{"name":"x"}]}`, key: agentKey, want: 422},

			{method: "GET", target: "/instances", want: 200},
			{method: "GET", target: "/instances?active=true&host=web-1&name=ops&label=env=prod&detail=true", want: 200},
			{method: "GET", target: "/instances?active=maybe", want: 422, breaks: true},
			{method: "GET", target: "/instances?limit=0", want: 422, breaks: true},
			{method: "GET", target: "/instances?cursor=%21", want: 422, breaks: true},
			{method: "GET", target: "/instances?label=env", want: 422, breaks: true},
			{method: "GET", target: "/instances?label=env=prod&label=env=staging", want: 200},
			{method: "GET", target: "/instances?index=x", want: 422, breaks: true},
			{method: "GET", target: "/instances?wait=forever", want: 422},
			{method: "GET", target: "/instances/a1", want: 200},
			{method: "GET", target: "/instances/a1?detail=1", want: 200},
			{method: "GET", target: "/instances/nobody", want: 404},
			{method: "GET", target: "/tools", want: 200},
			{method: "GET", target: "/tools?host=web-1&detail=true&active=false", want: 200},
			{method: "GET", target: "/tools/deploy", want: 200},
			{method: "GET", target: "/tools/deploy?detail=true&label=env=prod", want: 200},
			{method: "GET", target: "/tools/deploy?label=env=prod&label=env=staging", want: 404},
			{method: "GET", target: "/tools/nothing", want: 404},
			{method: "GET", target: "/hosts", want: 200},
			{method: "GET", target: "/hosts?name=ops&host=web-2&detail=yes", want: 200},
			{method: "GET", target: "/export/superputty?user=admin", want: 200},
			{method: "GET", target: "/export/superputty?user=a%20b", want: 422},
			{method: "GET", target: "/export/mobaxterm?user=admin&active=off", want: 200},
			{method: "GET", target: "/export/ansible", want: 200},
			{method: "GET", target: "/export/ansible?user=admin&label=env=prod", want: 200},
			{method: "GET", target: "/export/ansible?user=a%20b", want: 422},
			{method: "GET", target: "/export/rundeck", want: 200},
			{method: "GET", target: "/export/rundeck?format=yaml&user=admin", want: 200},
			{method: "GET", target: "/export/rundeck", header: map[string]string{"Accept": "application/yaml"}, want: 200},
			{method: "GET", target: "/export/ssh-config?user=admin", want: 200},
			{method: "GET", target: "/export/ssh-config?user=a%20b", want: 422},
			{method: "GET", target: "/health", want: 200},
			{method: "GET", target: "/health?detail=true", want: 200},
			{method: "GET", target: "/events", want: 200, stream: true},
			{method: "GET", target: "/events", header: map[string]string{"Last-Event-ID": "1"}, want: 200, stream: true},
			{method: "GET", target: "/events?index=nope", want: 422, breaks: true},
			{method: "HEAD", target: "/events", want: 200},
			{method: "GET", target: "/openapi.json", want: 200},
			{method: "GET", target: "/docs", want: 200},
			{method: "GET", target: "/docs/docs.js", want: 200},
			{method: "GET", target: "/docs/docs.css", want: 200},
			{method: "GET", target: "/docs/nothing.js", want: 404, breaks: true},
			{method: "GET", target: "/version", want: 200},
		} {
			s.do(c)
		}
		for _, target := range reads {
			s.do(call{method: "HEAD", target: target, want: 200})
		}
		s.do(call{method: "HEAD", target: "/instances/nobody", want: 404})
		s.do(call{method: "HEAD", target: "/tools/nothing", want: 404})
		s.do(call{method: "HEAD", target: "/hosts?limit=x", want: 422, breaks: true})

		// ETags: 304 for every read that has one.
		for _, target := range []string{"/instances", "/instances/a1", "/tools", "/tools/deploy", "/hosts", "/export/superputty", "/export/mobaxterm",
			"/export/ansible", "/export/rundeck", "/export/ssh-config"} {
			a := s.do(call{method: "GET", target: target, want: 200})
			etag := a.header.Get("ETag")
			s.do(call{method: "GET", target: target, header: map[string]string{"If-None-Match": etag}, want: 304})
			s.do(call{method: "HEAD", target: target, header: map[string]string{"If-None-Match": etag}, want: 304})
		}

		// Pages: follow the Link header to the end.
		for _, list := range []string{"/instances", "/tools", "/hosts"} {
			target, pages := list+"?limit=1&active=false", 0
			for target != "" && pages < 5 {
				a := s.do(call{method: "GET", target: target, want: 200})
				pages++
				target = ""
				if m := regexp.MustCompile(`^<\?([^>]*)>; rel="next"$`).FindStringSubmatch(a.header.Get("Link")); m != nil {
					target = list + "?" + m[1]
				}
			}
			if pages != 2 {
				t.Errorf("%s?limit=1: %d pages, want 2", list, pages)
			}
		}

		// A blocking query that times out answers as a read.
		a := s.do(call{method: "GET", target: "/tools/deploy", want: 200})
		s.do(call{method: "GET", target: "/tools/deploy?wait=20ms&index=" + a.header.Get("X-Registry-Index"), want: 200})

		for _, c := range []call{
			{method: "DELETE", target: "/expiry-guard", key: agentKey, want: 403}, // not an admin
			{method: "DELETE", target: "/expiry-guard", key: adminKey, want: 200},
			{method: "DELETE", target: "/instances/a1?purge=true", key: agentKey, want: 403},
			{method: "DELETE", target: "/instances/a1?purge=maybe", key: agentKey, want: 422, breaks: true}, // not a silent deregistration
			{method: "DELETE", target: "/instances/nobody", key: agentKey, want: 200},
			{method: "DELETE", target: "/instances/a2?purge=true", key: adminKey, want: 200},
			{method: "DELETE", target: "/instances/a1", want: 403},
		} {
			s.do(c)
		}
	})

	t.Run("read auth and rate limits", func(t *testing.T) {
		s := serve(t, newRegistry(t, registry.Options{Keys: keys, ReadAuth: true, RateLimitHeartbeat: 1, AuthFailures: 2}), cov)
		s.do(call{method: "POST", target: "/instances", body: register("b1", "web-1"), key: agentKey, want: 201})
		s.do(call{method: "GET", target: "/tools", key: readerKey, want: 200})
		s.do(call{method: "GET", target: "/instances", bearer: agentKey, want: 200})
		s.do(call{method: "GET", target: "/instances", want: 403})
		s.do(call{method: "GET", target: "/instances/b1", key: "wrong-key-0123456789", want: 403})
		s.do(call{method: "GET", target: "/hosts", key: "wrong-key-0123456789", want: 429}) // the third wrong key
		s.do(call{method: "GET", target: "/events", key: "wrong-key-0123456789", want: 429})
		s.do(call{method: "POST", target: "/instances", body: register("b2", "web-2"), key: readerKey, want: 403}) // a reader may not write
		s.do(call{method: "GET", target: "/health", want: 200})                                                    // always open
		s.do(call{method: "GET", target: "/openapi.json", want: 200})
		s.do(call{method: "POST", target: "/instances/b1/heartbeat", key: agentKey, want: 200})
		a := s.do(call{method: "POST", target: "/instances/b1/heartbeat", key: agentKey, want: 429})
		if a.header.Get("Retry-After") == "" {
			t.Error("429 without Retry-After")
		}
	})

	t.Run("replica without its cluster", func(t *testing.T) {
		c := memcluster.New(memcluster.Options{})
		s := serve(t, newRegistry(t, registry.Options{Cluster: c}), cov)
		s.do(call{method: "POST", target: "/instances", body: register("c1", "web-1"), want: 201})
		c.SetErr(errors.New("connection refused"))
		s.do(call{method: "POST", target: "/instances", body: register("c2", "web-2"), want: 503})
		s.do(call{method: "POST", target: "/instances/c1/heartbeat", want: 503})
		s.do(call{method: "POST", target: "/instances/c1/tools", body: tools, want: 503})
		s.do(call{method: "DELETE", target: "/instances/c1", want: 503})
		a := s.do(call{method: "GET", target: "/instances", want: 200})
		if a.header.Get("X-Registry-Stale") != "true" {
			t.Error("a stale read without X-Registry-Stale: true")
		}
		s.do(call{method: "GET", target: "/health", want: 503})
		s.do(call{method: "GET", target: "/health?detail=true", want: 503})
		s.do(call{method: "HEAD", target: "/health", want: 503})
	})

	t.Run("expiry guard and a full registry", func(t *testing.T) {
		var mu sync.Mutex
		now := time.Unix(1_700_000_000, 0)
		clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		reg := newRegistry(t, registry.Options{Now: clock, ExpiryGuard: 50, MaxInstances: 4})
		s := serve(t, reg, cov)
		for i := range 4 {
			s.do(call{method: "POST", target: "/instances", body: register(fmt.Sprint("d", i), fmt.Sprint("web-", i)), want: 201})
		}
		s.do(call{method: "POST", target: "/instances", body: register("d9", "web-9"), want: 507})
		mu.Lock()
		now = now.Add(31 * time.Second) // every one silent past its TTL
		mu.Unlock()
		if err := reg.Purge(t.Context()); err != nil {
			t.Fatal(err)
		}
		a := s.do(call{method: "GET", target: "/instances/d0", want: 200})
		if !bytes.Contains(a.body, []byte(`"expiry_guarded":true`)) {
			t.Errorf("a guarded instance: %s", a.body)
		}
		a = s.do(call{method: "GET", target: "/health?detail=true", want: 200})
		var h struct{ Status string }
		json.Unmarshal(a.body, &h)
		if h.Status != "guarded" {
			t.Errorf("health detail while guarded: %s", a.body)
		}
		s.do(call{method: "DELETE", target: "/expiry-guard", want: 200})
	})

	// Every operation of the document (but those another branch adds) was
	// exercised.
	doc := serve(t, newRegistry(t, registry.Options{}), cov).doc
	var missing, report []string
	for path, item := range doc.Paths.Map() {
		if _, pending := item.Extensions["x-runspec-pending"]; pending {
			continue
		}
		for method, op := range item.Operations() {
			statuses := cov.seen[op.OperationID]
			if len(statuses) == 0 {
				missing = append(missing, method+" "+path)
				continue
			}
			codes := slices.Sorted(func(yield func(int) bool) {
				for c := range statuses {
					if !yield(c) {
						return
					}
				}
			})
			report = append(report, fmt.Sprintf("%s %s: %v", method, path, codes))
		}
	}
	sort.Strings(report)
	t.Logf("statuses validated per operation:\n%s", strings.Join(report, "\n"))
	if missing != nil {
		sort.Strings(missing)
		t.Errorf("operations of the document never exercised:\n%s", strings.Join(missing, "\n"))
	}
}

// http.go serves the protocol over HTTP: routes, the order of checks on
// writes (rate limit, key, size, body), request decoding with the protocol's
// 422 details, JSON error bodies, pagination and request logging.

package registry

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

var _ http.Handler = (*Registry)(nil)

// ServeHTTP serves the registry's HTTP API, with routes relative to "/".
// Mount it under a prefix with http.StripPrefix.
func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.RawPath != "" {
		// The path escapes a character such as "/" (%2F) in an id or a tool
		// name: route on the escaped path so that it stays in its segment,
		// and unescape the parameters (param).
		u := *req.URL
		u.Path, u.RawPath = req.URL.RawPath, ""
		req = req.WithContext(context.WithValue(req.Context(), rawPathKey{}, true))
		req.URL = &u
	}
	if (req.Method == http.MethodGet || req.Method == http.MethodHead) && r.Health() != nil {
		// Reads go on from the last view the Cluster gave.
		w.Header().Set("X-Registry-Stale", "true")
	}
	aw := &answerWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: max(r.opts.WriteTimeout, 0), code: http.StatusOK}
	aw.extend() // a deadline an earlier request left on the connection must not apply
	start := time.Now()
	if req.Method == http.MethodGet && req.URL.RawQuery != "" {
		// Perhaps a blocking query: block notes in aw whether a change woke
		// it, so that its answer counts in what wake-ups cost.
		req = req.WithContext(context.WithValue(req.Context(), wokenKey{}, &aw.woken))
	}
	r.handler.ServeHTTP(aw, req)
	if aw.woken {
		r.v.w.answered(aw.sent)
	}
	r.counts.done(aw, start)
	r.logRequest(req, aw, start)
}

// logRequest logs a line per request at debug level, and the answers that
// are the registry's fault (5xx) at error level. Writes are in the audit
// trail (audit.go), which also aggregates refusals, so that a flood of
// refused requests cannot flood the log. It never logs a key.
func (r *Registry) logRequest(req *http.Request, w *answerWriter, start time.Time) {
	level := slog.LevelDebug
	if w.code >= 500 {
		level = slog.LevelError
	}
	if !r.log.Enabled(req.Context(), level) {
		return
	}
	r.log.LogAttrs(req.Context(), level, "request",
		slog.String("method", req.Method),
		slog.String("path", req.URL.Path),
		slog.String("route", w.routeOf()),
		slog.Int("status", w.code),
		slog.Duration("duration", time.Since(start)),
		slog.String("client", req.RemoteAddr))
}

type rawPathKey struct{}

// param returns a path parameter, unescaped.
func param(req *http.Request, ps httprouter.Params, name string) string {
	v := ps.ByName(name)
	if req.Context().Value(rawPathKey{}) != nil {
		if u, err := url.PathUnescape(v); err == nil {
			return u
		}
	}
	return v
}

func (r *Registry) newHandler() http.Handler {
	rt := router{httprouter.New(), &r.counts}
	// Redirects would drop the prefix of a mounted registry: answer 404.
	rt.RedirectTrailingSlash = false
	rt.RedirectFixedPath = false
	// OPTIONS answers with the Allow header of the path; 405 sets it too.
	rt.HandleOPTIONS = true
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeDetail(w, http.StatusNotFound, "Not Found")
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeDetail(w, http.StatusMethodNotAllowed, "Method Not Allowed")
	})
	rt.PanicHandler = func(w http.ResponseWriter, req *http.Request, v any) {
		r.log.Error("handler panic", "method", req.Method, "path", req.URL.Path, "panic", v)
		writeDetail(w, http.StatusInternalServerError, "Internal Server Error")
	}

	rt.POST("/instances", r.write(routeRegister, r.handleRegister))
	rt.POST("/instances/:id/heartbeat", r.write(routeHeartbeat, r.handleHeartbeat))
	rt.POST("/instances/:id/tools", r.write(routeTools, r.handleSetTools))
	rt.DELETE("/instances/:id", r.write(routeDelete, r.handleDeregister))
	// Every read also answers HEAD, with the same headers and no body.
	open := func(path string, h httprouter.Handle) {
		rt.GET(path, h)
		rt.HEAD(path, h)
	}
	read := func(path string, h httprouter.Handle) { open(path, r.read(h)) }
	read("/instances", r.handleInstances)
	read("/instances/:id", r.handleInstance)
	read("/tools", r.handleListTools)
	read("/tools/:name", r.handleTool)
	read("/hosts", r.handleHosts)
	read("/export/superputty", r.handleSuperPuTTY)
	read("/export/mobaxterm", r.handleMobaXterm)
	read("/export/ansible", r.handleAnsible)
	read("/export/rundeck", r.handleRundeck)
	read("/export/ssh-config", r.handleSSHConfig)
	read("/events", func(w http.ResponseWriter, req *http.Request, _ httprouter.Params) { r.handleEvents(w, req) })
	open("/health", r.handleHealth)
	open("/openapi.json", r.handleOpenAPI) // apidoc.go: always open, like /health
	open("/docs", r.handleDocs)
	open("/docs/:file", r.handleDocs)
	open("/version", r.handleVersion)
	rt.DELETE("/expiry-guard", r.write(routeDelete, func(w http.ResponseWriter, req *http.Request, _ httprouter.Params, _ []byte) {
		if id := identityOf(req.Context()); id != nil && !id.Roles.Has(RoleAdmin) {
			r.refused(req, "release expiry guard", "", id, http.StatusForbidden, "role")
			writeDetail(w, http.StatusForbidden, fmt.Sprintf("Identity %q is not an admin: only an admin may release the expiry guard", id.Name))
			return
		}
		r.auditWrite(req, "release expiry guard", "", nil, http.StatusOK, "released")
		b, _ := marshal(struct {
			Released bool `json:"released"`
		}{r.ReleaseExpiryGuard()})
		writeJSON(w, http.StatusOK, b)
	}))
	return rt.Router
}

type writeHandler func(w http.ResponseWriter, req *http.Request, ps httprouter.Params, body []byte)

// write guards a write endpoint: rate limit (429), then who asks (a
// browser's cross-origin request, a missing or wrong key, a role that may
// not write: 403, the rate limit's token given back), then the body's type (415) and size (413), in that
// order, before the handler decodes the body (422). The handler's context
// carries the identity (WithIdentity), so that ownership applies.
func (r *Registry) write(rt route, h writeHandler) httprouter.Handle {
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		tokens, wait, ok := r.limiter.take(r.clientAddr(req), rt)
		if !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			detail := fmt.Sprintf("Rate limit exceeded: %d per 1 minute", tokens.limit)
			if tokens.prefix {
				detail += " for the addresses of this IPv6 /64 together (--rate-limit-prefix-factor)"
			}
			writeDetail(w, http.StatusTooManyRequests, detail)
			return
		}
		name, instance := routeNames[rt], param(req, ps, "id")
		need := RoleAgent | RoleAdmin
		if rt == routeDelete && purgeAsked(req) {
			name, need = "purge", RoleAdmin
		}
		if err := r.crossOrigin.Check(req); err != nil {
			// A browser's request from another site: a page must not
			// change what the fleet runs.
			r.refused(req, name, instance, nil, http.StatusForbidden, "cross-origin")
			writeDetail(w, http.StatusForbidden, "Cross-origin request refused")
			tokens.giveBack()
			return
		}
		id, ok := r.guard(w, req, need, name, instance)
		if !ok {
			// Refused requests do not use up the bucket of the agents
			// on the same address (a NAT): wrong keys have their own
			// (Options.AuthFailures).
			tokens.giveBack()
			return
		}
		if id != nil {
			req = req.WithContext(WithIdentity(req.Context(), *id))
		}
		var body []byte
		if rt != routeDelete {
			if req.ContentLength != 0 && !jsonBody(req.Header.Get("Content-Type")) {
				writeDetail(w, http.StatusUnsupportedMediaType,
					fmt.Sprintf("Unsupported Content-Type %q: send application/json", req.Header.Get("Content-Type")))
				return
			}
			var err error
			if body, err = r.readBody(w, req); err != nil {
				var tooLarge *http.MaxBytesError
				switch {
				case errors.As(err, &tooLarge):
					writeDetail(w, http.StatusRequestEntityTooLarge,
						fmt.Sprintf("Request body too large: more than %d bytes (--max-body-bytes)", r.opts.MaxBodyBytes))
				case errors.Is(err, errBodyTimeout):
					w.Header().Set("Connection", "close")
					writeDetail(w, http.StatusRequestTimeout,
						fmt.Sprintf("Request body not received within %v", r.opts.BodyTimeout))
				default:
					writeDetail(w, http.StatusBadRequest, "Could not read the request body")
				}
				return
			}
		}
		h(w, req, ps, body)
	}
}

// routeNames name the routes in the audit trail.
var routeNames = [numRoutes]string{routeRegister: "register", routeTools: "tools", routeDelete: "deregister",
	routeHeartbeat: "heartbeat", routeAuth: "auth"}

// purgeAsked reports DELETE /instances/{id}?purge=true.
func purgeAsked(req *http.Request) bool {
	b, ok := parseBool(req.URL.Query().Get("purge"))
	return ok && b
}

// read guards a read endpoint: with Options.ReadAuth it needs an identity
// with the role read, agent or admin.
func (r *Registry) read(h httprouter.Handle) httprouter.Handle {
	if !r.opts.ReadAuth {
		return h
	}
	return func(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
		if _, ok := r.guard(w, req, RoleRead|RoleAgent|RoleAdmin, "read "+req.URL.Path, ""); ok {
			h(w, req, ps)
		}
	}
}

// errBodyTimeout reports a body that did not arrive within BodyTimeout.
var errBodyTimeout = errors.New("request body timeout")

// readBody reads a write's body, at most MaxBodyBytes, within BodyTimeout:
// a read deadline set for the body only (http.Server.ReadTimeout would stay
// on the connection while the handler runs and cut blocking queries).
func (r *Registry) readBody(w http.ResponseWriter, req *http.Request) ([]byte, error) {
	max := r.opts.MaxBodyBytes
	if req.ContentLength > max {
		return nil, &http.MaxBytesError{Limit: max}
	}
	if req.ContentLength == 0 {
		return nil, nil
	}
	if r.opts.BodyTimeout > 0 {
		rc := http.NewResponseController(w)
		if rc.SetReadDeadline(time.Now().Add(r.opts.BodyTimeout)) == nil {
			defer rc.SetReadDeadline(time.Time{})
		}
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, req.Body, max))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, errBodyTimeout
	}
	return b, err
}

// jsonBody reports whether a body with this Content-Type may be a write's:
// JSON (application/json or a +json type), or none at all, as the
// reference takes it. Anything else, such as the text/plain of a "simple"
// cross-site form post, is refused.
func jsonBody(contentType string) bool {
	if contentType == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(contentType)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// decodeObject unmarshals a request body that must be a JSON object.
func decodeObject(body []byte) (map[string]json.RawMessage, *FieldError) {
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		fe := errBodyMissing()
		return nil, &fe
	}
	if !json.Valid(body) || !utf8.Valid(body) { // the reference cannot decode invalid UTF-8 either
		fe := errBodyJSON()
		return nil, &fe
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		fe := errBodyNotObject()
		return nil, &fe
	}
	return m, nil
}

// decodeCompactObject is decodeObject for the bodies of registrations and
// tool lists, whose values are read, never kept as they were sent: it
// compacts the body once (which checks it as json.Valid does) and splits
// the object's members and, with splitArray, arrays from those bytes,
// where encoding/json would check the whole body again at each level it
// decodes. The values are compact slices of one buffer.
func decodeCompactObject(body []byte) (map[string]json.RawMessage, *FieldError) {
	if len(bytes.Trim(body, " \t\r\n")) == 0 {
		fe := errBodyMissing()
		return nil, &fe
	}
	var c bytes.Buffer
	c.Grow(len(body))
	if !utf8.Valid(body) || json.Compact(&c, body) != nil {
		fe := errBodyJSON()
		return nil, &fe
	}
	b := c.Bytes() // valid compact JSON: the scans cannot run off its end
	if b[0] != '{' {
		fe := errBodyNotObject()
		return nil, &fe
	}
	m := make(map[string]json.RawMessage)
	for i := 1; b[i] != '}'; {
		kend := scanString(b, i)
		vend := scanValue(b, kend+1)
		m[decodeKey(b[i:kend])] = b[kend+1 : vend] // the last of a repeated key, as json.Unmarshal
		if i = vend; b[i] == ',' {
			i++
		}
	}
	return m, nil
}

// splitArray returns the elements of v, a compact JSON array.
func splitArray(v []byte) []json.RawMessage {
	elems := []json.RawMessage{}
	for i := 1; v[i] != ']'; {
		end := scanValue(v, i)
		elems = append(elems, v[i:end])
		if i = end; v[i] == ',' {
			i++
		}
	}
	return elems
}

// decodeString decodes v, valid JSON, into dst if it is a string; without
// an escape it is a copy of its bytes, with no decoder.
func decodeString(v []byte, dst *string) bool {
	if len(v) < 2 || v[0] != '"' {
		return false
	}
	if bytes.IndexByte(v, '\\') < 0 {
		*dst = string(v[1 : len(v)-1])
		return true
	}
	return json.Unmarshal(v, dst) == nil
}

// lossy reports whether the JSON string literal lit holds an unpaired
// surrogate escape, which decoding turns into U+FFFD. (Invalid UTF-8 bytes
// were refused with the whole body.)
func lossy(lit []byte) bool {
	for i := 0; i < len(lit); i++ {
		if lit[i] != '\\' {
			continue
		}
		i++
		if i >= len(lit) || lit[i] != 'u' || i+4 >= len(lit) {
			continue
		}
		r, err := strconv.ParseUint(string(lit[i+1:i+5]), 16, 32)
		i += 4
		if err != nil {
			continue
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF: // a low surrogate on its own
			return true
		case r >= 0xD800 && r <= 0xDBFF: // a high one must be followed by a low one
			if i+6 >= len(lit) || lit[i+1] != '\\' || lit[i+2] != 'u' {
				return true
			}
			lo, err := strconv.ParseUint(string(lit[i+3:i+7]), 16, 32)
			if err != nil || lo < 0xDC00 || lo > 0xDFFF {
				return true
			}
			i += 6
		}
	}
	return false
}

func isNull(v json.RawMessage) bool { return v == nil || string(v) == "null" }

func (r *Registry) handleRegister(w http.ResponseWriter, req *http.Request, _ httprouter.Params, body []byte) {
	m, fe := decodeCompactObject(body)
	if fe != nil {
		writeInvalid(w, *fe)
		return
	}
	// Decode the types here; the rules are Register's (Registration.Validate).
	var reg Registration
	var errs []FieldError
	reported := make(map[string]bool) // fields with a type error
	var lossless []string             // fields whose escapes decoded to U+FFFD
	for _, f := range []struct {
		name string
		dst  *string
	}{{"instance_id", &reg.ID}, {"name", &reg.Name}, {"version", &reg.Version}, {"host", &reg.Host}} {
		v, ok := m[f.name]
		switch {
		case !ok:
			errs = append(errs, errMissing("body", f.name))
		case !decodeString(v, f.dst):
			errs = append(errs, errKind(kindString, "body", f.name))
		default:
			if lossy(v) {
				lossless = append(lossless, f.name)
			}
			continue
		}
		reported[f.name] = true
	}
	if v := m["heartbeat_interval"]; !isNull(v) {
		var secs float64
		if len(v) == 0 || !(v[0] == '-' || (v[0] >= '0' && v[0] <= '9')) || json.Unmarshal(v, &secs) != nil {
			errs = append(errs, errKind(kindNumber, "body", "heartbeat_interval"))
			reported["heartbeat_interval"] = true
		} else if d, fe := intervalOf(secs); fe != nil {
			errs = append(errs, *fe)
			reported["heartbeat_interval"] = true
		} else {
			reg.HeartbeatInterval = d
		}
	}
	if v := m["labels"]; !isNull(v) {
		if fe := decodeLabels(v, &reg.Labels); fe != nil {
			errs = append(errs, *fe)
			reported["labels"] = true
		}
	}
	if errs != nil || lossless != nil {
		// One detail list: the rules' verdict on the fields that decoded,
		// and, for a field the rules accept, what its decoding lost.
		rules := reg.fieldErrors(reported)
		for _, name := range lossless {
			if !slices.ContainsFunc(rules, func(fe FieldError) bool { return fe.Loc[1] == name }) {
				rules = append(rules, errText("body", name))
			}
		}
		errs = append(errs, rules...)
		sortFields(errs, registrationFields[:])
		writeInvalid(w, errs...)
		return
	}
	err := r.Register(req.Context(), reg)
	r.auditWrite(req, "register", reg.ID, err, http.StatusCreated, "registered on "+reg.Host)
	if err != nil {
		r.writeError(w, err, "")
		return
	}
	writeJSON(w, http.StatusCreated, statusOK)
}

// handleHealth answers GET /health: v1's {"status":"ok"}, or 503 degraded
// while a replica's Cluster is unreachable. With ?detail=true it also says
// whether the expiry guard holds expiries (status "guarded", still 200: a
// load balancer must not drop every replica during the partition the guard
// exists for), how many of the registry's own writes are pending, and the
// counts.
func (r *Registry) handleHealth(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	herr := r.Health()
	detail, ok := parseBool(req.URL.Query().Get("detail"))
	if v := req.URL.Query().Get("detail"); v != "" && !ok {
		writeInvalid(w, errKind(kindBool, "query", "detail"))
		return
	}
	if !detail {
		if herr != nil {
			b := append([]byte(`{"status":"degraded","detail":`), appendString(nil, herr.Error())...)
			w.Header().Set("Retry-After", retryAfter)
			writeJSON(w, http.StatusServiceUnavailable, append(b, '}'))
			return
		}
		writeJSON(w, http.StatusOK, statusOK)
		return
	}
	type guard struct {
		Since  float64 `json:"since"`
		Reason string  `json:"reason"`
		Held   int     `json:"held"`
	}
	h := struct {
		Status        string `json:"status"`
		Detail        string `json:"detail,omitempty"`
		Guard         *guard `json:"expiry_guard,omitempty"`
		PendingWrites int    `json:"pending_writes"`
		PendingError  string `json:"pending_error,omitempty"`
		Stats
	}{Status: "ok", Stats: r.Stats()}
	var perr error
	h.PendingWrites, perr = r.PendingWrites()
	if perr != nil {
		h.PendingError = perr.Error()
	}
	code := http.StatusOK
	if g := r.ExpiryGuard(); g.Guarded {
		h.Status, h.Detail = "guarded", g.Reason
		h.Guard = &guard{Since: float64(g.Since.UnixMicro()) / 1e6, Reason: g.Reason, Held: g.Held}
	}
	if herr != nil {
		h.Status, h.Detail, code = "degraded", herr.Error(), http.StatusServiceUnavailable
		w.Header().Set("Retry-After", retryAfter)
	}
	b, _ := marshal(h)
	writeJSON(w, code, b)
}

// decodeLabels decodes the labels of a registration: an object of strings.
func decodeLabels(v json.RawMessage, dst *map[string]string) *FieldError {
	var raw map[string]json.RawMessage
	if v[0] != '{' || json.Unmarshal(v, &raw) != nil {
		fe := errKind(kindObject, "body", "labels")
		return &fe
	}
	labels := make(map[string]string, len(raw))
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		var s string
		if lv := raw[k]; len(lv) == 0 || lv[0] != '"' || json.Unmarshal(lv, &s) != nil || lossy(lv) {
			fe := errKind(kindString, "body", "labels", k)
			return &fe
		}
		labels[k] = s
	}
	*dst = labels
	return nil
}

func (r *Registry) handleHeartbeat(w http.ResponseWriter, req *http.Request, ps httprouter.Params, body []byte) {
	var system json.RawMessage
	if len(bytes.Trim(body, " \t\r\n")) > 0 { // the real agent sends no body at all
		m, fe := decodeObject(body)
		if fe != nil {
			writeInvalid(w, *fe)
			return
		}
		if v := m["system"]; !isNull(v) {
			if v[0] != '{' {
				writeInvalid(w, errKind(kindObject, "body", "system"))
				return
			}
			system = v
		}
	}
	id := param(req, ps, "id")
	st, changed, err := r.heartbeat(req.Context(), id, system)
	if err != nil || changed {
		// Routine heartbeats are not logged: only revivals and refusals.
		r.auditWrite(req, "heartbeat", id, err, http.StatusOK, "revived")
	}
	if err != nil {
		r.writeError(w, err, "Instance not found")
		return
	}
	if st == Ack {
		writeJSON(w, http.StatusOK, statusAck)
	} else {
		writeJSON(w, http.StatusOK, statusRefresh)
	}
}

func (r *Registry) handleSetTools(w http.ResponseWriter, req *http.Request, ps httprouter.Params, body []byte) {
	m, fe := decodeCompactObject(body)
	if fe != nil {
		writeInvalid(w, *fe)
		return
	}
	v, ok := m["tools"]
	switch {
	case !ok:
		writeInvalid(w, errMissing("body", "tools"))
		return
	case v[0] != '[':
		writeInvalid(w, errKind(kindArray, "body", "tools"))
		return
	}
	tools := splitArray(v)
	id := param(req, ps, "id")
	err := r.UpdateTools(req.Context(), id, tools)
	r.auditWrite(req, "tools", id, err, http.StatusOK, fmt.Sprintf("%d tools posted", len(tools)))
	if err != nil {
		r.writeError(w, err, "Instance not found")
		return
	}
	writeJSON(w, http.StatusOK, statusOK)
}

func (r *Registry) handleDeregister(w http.ResponseWriter, req *http.Request, ps httprouter.Params, _ []byte) {
	if v := req.URL.Query().Get("purge"); v != "" {
		if _, ok := parseBool(v); !ok {
			// Not a silent deregistration for a purge misspelt.
			writeInvalid(w, errKind(kindBool, "query", "purge"))
			return
		}
	}
	do, route, outcome := r.Deregister, "deregister", "deregistered"
	if purgeAsked(req) {
		do, route, outcome = r.Delete, "purge", "purged"
	}
	id := param(req, ps, "id")
	err := do(req.Context(), id)
	r.auditWrite(req, route, id, err, http.StatusOK, outcome)
	if err != nil {
		r.writeError(w, err, "Instance not found")
		return
	}
	writeJSON(w, http.StatusOK, statusOK)
}

// query holds the parsed query parameters of a read.
type query struct {
	f      Filter
	limit  int
	cursor string
	user   string
	w      waitFor // ?index=&wait=
	detail bool    // ?detail=true: host entries name their instance and liveness
}

// parseQuery reads the query of a read; activeDefault is the endpoint's v1
// default for the active filter.
func parseQuery(req *http.Request, activeDefault bool) (query, []FieldError) {
	vals := req.URL.Query()
	q := query{f: Filter{ActiveOnly: activeDefault, Host: vals.Get("host"), Name: vals.Get("name")}, user: vals.Get("user")}
	var errs []FieldError
	if s, ok := vals["active"]; ok {
		b, ok := parseBool(s[0])
		if !ok {
			errs = append(errs, errKind(kindBool, "query", "active"))
		}
		q.f.ActiveOnly = b
	}
	if s, ok := vals["detail"]; ok {
		b, ok := parseBool(s[0])
		if !ok {
			errs = append(errs, errKind(kindBool, "query", "detail"))
		}
		q.detail = b
	}
	for _, kv := range vals["label"] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			errs = append(errs, errValue([]string{"query", "label"}, "want key=value, not %q", kv))
			continue
		}
		if old, dup := q.f.Labels[k]; dup && old != v {
			// Filters are ANDed: no instance carries both values.
			q.f.none = true
			continue
		}
		if q.f.Labels == nil {
			q.f.Labels = make(map[string]string)
		}
		q.f.Labels[k] = v
	}
	if s := vals.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			errs = append(errs, errLimit())
		}
		q.limit = n
	}
	if s := vals.Get("cursor"); s != "" {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil || len(b) == 0 {
			errs = append(errs, errCursor())
		}
		q.cursor = string(b)
	}
	errs = append(errs, parseWait(vals, &q)...)
	return q, errs
}

func parseBool(s string) (value, ok bool) {
	switch strings.ToLower(s) {
	case "true", "1", "yes", "on":
		return true, true
	case "false", "0", "no", "off":
		return false, true
	}
	return false, false
}

func (r *Registry) handleInstances(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	q, errs := parseQuery(req, false)
	if errs == nil && !cursorOK(q.cursor, true) {
		errs = append(errs, errCursor())
	}
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	// Heartbeats change last_seen without a change of index: the weak ETag
	// of a streamed listing counts them too.
	r.serveList(w, req, q, topic{kind: topicAll}, func() uint64 { return r.v.index }, r.beats.Load(),
		func() cursorIndex { return r.instances(q.f, q.detail) })
}

// beatsIf is the heartbeat count when an answer shows last_seen (detail):
// heartbeats move it without a change of index, and a weak ETag must change
// whenever the bytes do.
func (r *Registry) beatsIf(detail bool) uint64 {
	if detail {
		return r.beats.Load()
	}
	return 0
}

func (r *Registry) handleInstance(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	q, errs := parseQuery(req, false)
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	id := param(req, ps, "id")
	r.serveOne(w, req, q, topic{topicInstance, id}, func() uint64 { return r.v.instanceIndex(r.shard(id), id) }, r.beats.Load(),
		func(s *chunker) (bool, bool) {
			in := r.lookup(id)
			if in == nil {
				return false, true
			}
			return true, r.writeInstance(s, in, q.detail)
		}, "Instance not found")
}

func (r *Registry) handleListTools(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	q, errs := parseQuery(req, true)
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	r.serveList(w, req, q, topic{kind: topicTools}, func() uint64 { return r.v.toolsIndex }, r.beatsIf(q.detail),
		func() cursorIndex { return r.tools(q.f, q.detail) })
}

func (r *Registry) handleTool(w http.ResponseWriter, req *http.Request, ps httprouter.Params) {
	q, errs := parseQuery(req, true)
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	name := param(req, ps, "name")
	idx := r.block(req.Context(), topic{topicTool, name}, q.w, func() uint64 { return r.v.toolIndex(name) })
	a := r.newAnswer(w, req, idx, "application/json", r.beatsIf(q.detail))
	if a.unchanged() {
		return
	}
	r.serveTool(a, name, q.f, q.detail)
}

func (r *Registry) handleHosts(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	q, errs := parseQuery(req, true)
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	r.serveList(w, req, q, topic{kind: topicAll}, func() uint64 { return r.v.index }, r.beatsIf(q.detail),
		func() cursorIndex { return r.hosts(q.f, q.detail) })
}

// parseWait reads the blocking-query parameters into q.
func parseWait(vals map[string][]string, q *query) []FieldError {
	var errs []FieldError
	if s := first(vals, "index"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			errs = append(errs, errKind(kindUint, "query", "index"))
		}
		q.w.after, q.w.on = n, true
	}
	q.w.d = DefaultWait
	if s := first(vals, "wait"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil { // a bare number is seconds
			var secs float64
			secs, err = strconv.ParseFloat(s, 64)
			d = time.Duration(min(secs, MaxWait.Seconds()) * float64(time.Second)) // no overflow
		}
		if err != nil || d < 0 {
			errs = append(errs, errWait())
		}
		q.w.d = min(d, MaxWait)
		if q.w.d == 0 {
			q.w.on = false // a zero wait answers at once
		}
	}
	return errs
}

func first(vals map[string][]string, k string) string {
	if v := vals[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// watch.go serves the read side of watching: X-Registry-Index and ETag
// headers on every read, If-None-Match (304), blocking queries
// (?index=N&wait=D) and the GET /events stream of changes.

package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Blocking query limits.
const (
	DefaultWait = 30 * time.Second
	MaxWait     = 5 * time.Minute
	// keepAlive is the period of comment lines on idle event streams, so
	// that proxies do not cut them.
	keepAlive = 15 * time.Second
	// bufferLimit is the largest answer hashed for a strong ETag; longer
	// ones stream with a weak ETag made of the index.
	bufferLimit = 1 << 20
)

// waitFor is what a read waits for: while on, until its index passes after,
// for at most d (0: until its context ends).
type waitFor struct {
	on    bool
	after uint64
	d     time.Duration
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

// block waits, as w says, until indexOf (called with the read lock held)
// passes w.after, the wait (plus up to 1/16 of jitter) passes, ctx ends or
// ReleaseWaiters is called. It returns the index to report.
func (r *Registry) block(ctx context.Context, t topic, w waitFor, indexOf func() uint64) uint64 {
	var timer <-chan time.Time
	for {
		r.settleDue(ctx)
		r.mu.RLock()
		idx := indexOf()
		var ch <-chan struct{}
		if w.on && idx <= w.after {
			ch = r.v.w.chanFor(t)
		}
		r.mu.RUnlock()
		if ch == nil {
			return idx
		}
		if timer == nil && w.d > 0 {
			t := time.NewTimer(w.d + rand.N(w.d/16+1))
			defer t.Stop()
			timer = t.C
		}
		select {
		case <-ch:
			continue
		case <-timer:
		case <-ctx.Done():
		case <-r.v.w.closed:
		}
		w.on = false
		r.v.w.leave(t, ch)
	}
}

// settleDue applies the expiries that are due before a read, so that its
// index and ETag account for them (Run does it at each deadline; this covers
// the moments between a deadline and Run's timer, and registries without Run).
func (r *Registry) settleDue(ctx context.Context) {
	r.mu.RLock()
	next, pending := r.v.due.next()
	r.mu.RUnlock()
	if pending && r.clock() > next {
		r.purge(ctx)
	}
}

// An answer writes a read's body with its index and ETag. Bodies up to
// bufferLimit are buffered and get a strong ETag (a hash of the body);
// longer ones stream with a weak one.
type answer struct {
	r           *Registry
	w           http.ResponseWriter
	req         *http.Request
	index       uint64
	weak        string // the ETag if the body streams
	contentType string
	noStream    bool // a page: its Link header comes after the body is known
	buf         []byte
	etag        string // of buf, if known
	streaming   bool
	done        bool // 304 sent
}

var errNotModified = errors.New("not modified")

func (r *Registry) newAnswer(w http.ResponseWriter, req *http.Request, index uint64, contentType string, extra uint64) *answer {
	return &answer{r: r, w: w, req: req, index: index, contentType: contentType,
		weak: `W/"` + r.epoch + "-" + strconv.FormatUint(index, 36) + "-" + strconv.FormatUint(extra, 36) + `"`}
}

func (a *answer) header(etag string) {
	h := a.w.Header()
	h.Set("X-Registry-Index", strconv.FormatUint(a.index, 10))
	h.Set("ETag", etag)
}

// notModified answers 304 if the request's If-None-Match names etag.
func (a *answer) notModified(etag string) bool {
	if !etagMatch(a.req.Header.Get("If-None-Match"), etag) {
		return false
	}
	a.header(etag)
	a.w.WriteHeader(http.StatusNotModified)
	a.done = true
	return true
}

func (a *answer) emit(b []byte) error {
	if a.done {
		return errNotModified
	}
	if a.streaming {
		_, err := a.w.Write(b)
		return err
	}
	a.buf = append(a.buf, b...)
	if len(a.buf) <= bufferLimit || a.noStream {
		return nil
	}
	if a.notModified(a.weak) {
		return errNotModified
	}
	a.streaming = true
	a.header(a.weak)
	a.w.Header().Set("Content-Type", a.contentType)
	_, err := a.w.Write(a.buf)
	a.buf = nil
	return err
}

// finish writes a buffered answer with code.
func (a *answer) finish(code int) {
	if a.streaming || a.done {
		return
	}
	etag := a.etag
	if etag == "" {
		etag = a.r.strongETag(a.buf)
	}
	if code == http.StatusOK && a.notModified(etag) {
		return
	}
	a.header(etag)
	a.w.Header().Set("Content-Type", a.contentType)
	a.w.WriteHeader(code)
	a.w.Write(a.buf)
}

// etagMatch is If-None-Match's weak comparison.
func etagMatch(header, etag string) bool {
	if header == "" {
		return false
	}
	etag = strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

// serveList answers a listing: index, blocking, ETag, pagination.
func (r *Registry) serveList(w http.ResponseWriter, req *http.Request, q query, t topic, indexOf func() uint64, extra uint64, mk func() cursorIndex) {
	idx := r.block(req.Context(), t, q.w, indexOf)
	a := r.newAnswer(w, req, idx, "application/json", extra)
	a.noStream = q.limit > 0
	next, err := r.list(mk, q.cursor, q.limit, a.emit)
	if err != nil {
		return
	}
	if next != "" {
		vals := req.URL.Query()
		vals.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(next)))
		vals.Set("limit", strconv.Itoa(q.limit))
		vals.Del("index")
		vals.Del("wait")
		w.Header().Set("Link", "<?"+vals.Encode()+`>; rel="next"`)
	}
	a.finish(http.StatusOK)
}

// serveOne answers a single resource, or a JSON 404 that still carries the
// index (a blocking query on it waits for the resource to appear).
func (r *Registry) serveOne(w http.ResponseWriter, req *http.Request, q query, t topic, indexOf func() uint64, body func([]byte) ([]byte, error), notFound string) {
	idx := r.block(req.Context(), t, q.w, indexOf)
	a := r.newAnswer(w, req, idx, "application/json", 0)
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := body((*bp)[:0])
	*bp = b[:0]
	switch {
	case errors.Is(err, ErrNotFound):
		a.buf = append(appendString([]byte(`{"detail":`), notFound), '}')
		a.finish(http.StatusNotFound)
	case err != nil:
		r.writeError(w, err, notFound)
	default:
		a.buf = b
		a.finish(http.StatusOK)
	}
}

// handleEvents streams changes as Server-Sent Events. Last-Event-ID (or
// ?index=) resumes after that index; when those events are gone, a reset
// event tells the client to re-list.
func (r *Registry) handleEvents(w http.ResponseWriter, req *http.Request) {
	after := uint64(0)
	resume := req.Header.Get("Last-Event-ID")
	if resume == "" {
		resume = req.URL.Query().Get("index")
	}
	r.mu.RLock()
	after = r.v.index
	r.mu.RUnlock()
	if resume != "" {
		n, err := strconv.ParseUint(resume, 10, 64)
		if err != nil {
			writeInvalid(w, errKind(kindUint, "header", "Last-Event-ID"))
			return
		}
		after = n
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(": runspec-registry events\n\n"))
	rc.Flush()

	ticker := time.NewTicker(keepAlive)
	defer ticker.Stop()
	var buf []byte
	for {
		r.mu.RLock()
		evs, ok := r.v.eventsAfter(after)
		cur := r.v.index
		var ch <-chan struct{}
		if ok && len(evs) == 0 {
			ch = r.v.w.chanFor(topic{kind: topicAll})
		}
		r.mu.RUnlock()
		buf = buf[:0]
		if !ok {
			buf = appendEvent(buf, "reset", cur, struct {
				Index uint64 `json:"index"`
			}{cur})
			after = cur
		}
		for i, e := range evs {
			id := e.Index
			if i+1 < len(evs) && evs[i+1].Index == e.Index {
				// In cluster mode one revision may make several events:
				// a client that resumes from this one must get the
				// others again (at least once), not skip them.
				id--
			}
			buf = appendEvent(buf, e.Kind, id, e)
			after = e.Index
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				return
			}
			rc.Flush()
			continue
		}
		select {
		case <-ch:
		case <-ticker.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil {
				return
			}
			rc.Flush()
		case <-req.Context().Done():
			return
		case <-r.v.w.closed:
			return
		}
	}
}

func appendEvent(buf []byte, kind string, index uint64, data any) []byte {
	b, _ := json.Marshal(data)
	buf = append(buf, "event: "...)
	buf = append(buf, kind...)
	buf = append(buf, "\nid: "...)
	buf = strconv.AppendUint(buf, index, 10)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, b...)
	return append(buf, "\n\n"...)
}

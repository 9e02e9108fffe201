// respond.go writes the HTTP answers: JSON bodies and the protocol's error
// shapes, the mapping of library errors to statuses, and the answer of a
// read with its X-Registry-Index and ETag (304 for If-None-Match), buffered
// with a strong ETag when small, streamed in chunks with a weak one when not.

package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"io/fs"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
)

// retryAfter is the Retry-After of a 503: seconds until a replica that lost
// its store is likely to have it back, or a load balancer to have moved on.
const retryAfter = "2"

var (
	statusOK      = []byte(`{"status":"ok"}`)
	statusAck     = []byte(`{"status":"ack"}`)
	statusRefresh = []byte(`{"status":"refresh"}`)
)

func writeJSON(w http.ResponseWriter, code int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(body)
}

// writeDetail writes the protocol's error body {"detail": msg}.
func writeDetail(w http.ResponseWriter, code int, msg string) {
	b := append([]byte(`{"detail":`), appendString(nil, msg)...)
	writeJSON(w, code, append(b, '}'))
}

// writeInvalid writes a 422 with the detail list of err's fields.
func writeInvalid(w http.ResponseWriter, fields ...FieldError) {
	b, _ := json.Marshal(struct {
		Detail []FieldError `json:"detail"`
	}{fields})
	writeJSON(w, http.StatusUnprocessableEntity, b)
}

// writeError maps a Registry error to its status.
func (r *Registry) writeError(w http.ResponseWriter, err error, notFound string) {
	status, detail := errorStatus(err)
	var ve *ValidationError
	switch {
	case errors.As(err, &ve):
		writeInvalid(w, ve.Fields...)
		return
	case status == http.StatusNotFound:
		detail = notFound
	case status == http.StatusInsufficientStorage:
		detail = fmt.Sprintf("The registry is full: it holds %d records, all active (--max-instances); none can be deleted to make room", r.opts.MaxInstances)
	case errors.Is(err, ErrUnavailable):
		r.log.Warn("store unavailable", "err", err)
		w.Header().Set("Retry-After", retryAfter)
	case status == http.StatusInternalServerError:
		r.log.Error("request failed", "err", err)
	}
	writeDetail(w, status, detail)
}

// errorStatus maps an error of the library to its HTTP status and detail:
// the one place where errors become statuses.
func errorStatus(err error) (int, string) {
	var ve *ValidationError
	var fe *ForbiddenError
	switch {
	case errors.As(err, &ve):
		return http.StatusUnprocessableEntity, err.Error()
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, "Not Found"
	case errors.As(err, &fe):
		return http.StatusForbidden, fe.Detail
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden, errNotOwner.Detail // a Cluster's refusal
	case errors.Is(err, ErrFull):
		return http.StatusInsufficientStorage, "The registry is full"
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, unavailableDetail(err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "Request canceled"
	}
	return http.StatusInternalServerError, "Internal Server Error"
}

// bufferLimit is the largest answer hashed for a strong ETag; longer ones
// stream with a weak ETag made of the index.
const bufferLimit = 1 << 20

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
	onStream    func() // called when the answer turns out too large to buffer
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
	if len(a.buf) <= bufferLimit {
		return nil
	}
	if a.onStream != nil {
		a.onStream()
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

// serveList answers a listing: index, blocking, ETag, pagination. Pages
// stream as whole listings do; readers of the same answer at the same index
// (waiters woken by one change) share one encoding when it is small.
func (r *Registry) serveList(w http.ResponseWriter, req *http.Request, q query, t topic, indexOf func() uint64, extra uint64, mk func() cursorIndex) {
	idx := r.block(req.Context(), t, q.w, indexOf)
	var until string
	if q.limit > 0 {
		if until = r.pageEnd(mk, q.cursor, q.limit); until != "" {
			vals := req.URL.Query()
			vals.Set("cursor", base64.RawURLEncoding.EncodeToString([]byte(until)))
			vals.Set("limit", strconv.Itoa(q.limit))
			vals.Del("index")
			vals.Del("wait")
			w.Header().Set("Link", "<?"+vals.Encode()+`>; rel="next"`)
		}
	}
	a := r.newAnswer(w, req, idx, "application/json", extra)
	f, leader := r.flights.join(sharedKey(req), idx, extra)
	if !leader {
		select {
		case <-f.done:
			if f.body != nil {
				a.buf, a.etag = f.body, f.etag
				a.finish(http.StatusOK)
				return
			}
		case <-req.Context().Done():
			return
		}
	}
	if leader {
		a.onStream = f.tooLarge
		defer f.tooLarge() // if the leader ends without a body to share
	}
	err := r.list(mk, q.cursor, until, a.emit)
	if leader && !a.streaming {
		f.share(a.buf, r.strongETag(a.buf))
		a.etag = f.etag
	}
	if err != nil {
		return
	}
	a.finish(http.StatusOK)
}

// sharedKey names an answer for sharing: its path and query, without the
// blocking-query parameters.
func sharedKey(req *http.Request) string {
	q := req.URL.Query()
	q.Del("index")
	q.Del("wait")
	return req.Method + " " + req.URL.Path + "?" + q.Encode()
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

// strongETag hashes a body with the registry's seed: ETags of one process
// never match those of another.
func (r *Registry) strongETag(body []byte) string {
	return `"` + strconv.FormatUint(maphash.Bytes(r.seed, body), 36) + `"`
}

// unavailableDetail is the detail of a 503: what the store said, without
// the wrapping, and with a file's name but not its directory, which is
// the server's business (e.g. "Store unavailable, retry later: write
// registry.db: no space left on device"). The log has the whole error.
func unavailableDetail(err error) string {
	msg := strings.TrimPrefix(err.Error(), ErrUnavailable.Error()+": ")
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != "" {
		msg = strings.ReplaceAll(msg, pe.Path, filepath.Base(pe.Path))
	}
	return "Store unavailable, retry later: " + msg
}

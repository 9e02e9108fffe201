// respond.go writes the HTTP answers: JSON bodies and the protocol's error
// shapes, the mapping of library errors to statuses, and the answer of a
// read with its X-Registry-Index and ETag (304 for If-None-Match), written a
// bounded chunk at a time: whole with a strong ETag when it fits in one
// chunk or is shared, streamed with a weak one made from the indexes when
// not.

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

// writeChunk is the most that one Write passes on. Each write moves the
// write deadline (answerWriter), so a client that reads slowly but steadily
// gets an answer of any size, and one that stops reading is dropped within
// WriteTimeout of its last progress.
const writeChunk = 32 << 10

// An answer writes a read's body with its index and ETag. An answer that
// fits in one chunk of its encoding (list.go), or one shared whole (a
// flight's, a cached lookup), gets a strong ETag: a hash of its bytes. One
// that streams gets a weak ETag made from the indexes (weak), so that no
// answer is buffered to be hashed. Bodies go out in writes of at most
// writeChunk.
type answer struct {
	r           *Registry
	w           http.ResponseWriter
	req         *http.Request
	index       uint64
	extra       uint64 // the heartbeat count, for answers that show last_seen
	contentType string
	head        bool // HEAD: the headers only
	started     bool // the headers are written
	n           int  // body bytes encoded
}

// Errors that end an answer's encoding early: its headers say all.
var (
	errNotModified = errors.New("not modified")
	errHeadOnly    = errors.New("HEAD: no body")
)

func (r *Registry) newAnswer(w http.ResponseWriter, req *http.Request, index uint64, contentType string, extra uint64) *answer {
	return &answer{r: r, w: w, req: req, index: index, extra: extra, contentType: contentType, head: req.Method == http.MethodHead}
}

// weak is the ETag of an answer that streams, made without its bytes: the
// registry's start (epoch), the answer's change index, the heartbeat count
// where the answer shows last_seen (extra), and the request's path and
// query. Whatever changes the bytes moves one of them: a change moves the
// index, a deadline is applied (and moves it) before each read, and a
// heartbeat that only moves last_seen moves the count.
func (a *answer) weak() string {
	q := maphash.String(a.r.seed, answerKey(a.req))
	return `W/"` + a.r.epoch + "-" + strconv.FormatUint(a.index, 36) + "-" + strconv.FormatUint(a.extra, 36) +
		"-" + strconv.FormatUint(q, 36) + `"`
}

// answerKey names an answer: its path and query, without the
// blocking-query parameters (and without the method: HEAD is GET's answer).
func answerKey(req *http.Request) string {
	if req.URL.RawQuery == "" {
		return req.URL.Path
	}
	q := req.URL.Query()
	q.Del("index")
	q.Del("wait")
	return req.URL.Path + "?" + q.Encode()
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
	return true
}

// unchanged answers 304 before anything is encoded if If-None-Match names
// the answer's weak ETag: the client holds this answer's bytes. ("*"
// waits for the answer's own ETag, which the 304 carries.)
func (a *answer) unchanged() bool {
	inm := a.req.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	if weak := a.weak(); etagListed(inm, weak) {
		return a.notModified(weak)
	}
	return false
}

// start writes the headers of a body under etag. It returns errNotModified
// after a 304, errHeadOnly after the headers of a HEAD.
func (a *answer) start(code int, etag string) error {
	if code == http.StatusOK && a.notModified(etag) {
		return errNotModified
	}
	a.header(etag)
	a.w.Header().Set("Content-Type", a.contentType)
	a.w.WriteHeader(code)
	a.started = true
	if a.head {
		return errHeadOnly
	}
	return nil
}

// write passes b on in writes of at most writeChunk.
func (a *answer) write(b []byte) error {
	for len(b) > 0 {
		n := min(len(b), writeChunk)
		if _, err := a.w.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// emit is the emit of an answer's stream: a body that ends within its
// first chunk is written whole with a strong ETag; a longer one streams
// under the weak ETag.
func (a *answer) emit(chunk []byte, last bool) error {
	a.n += len(chunk)
	if !a.started {
		if last {
			return a.whole(http.StatusOK, chunk)
		}
		if err := a.start(http.StatusOK, a.weak()); err != nil {
			return err
		}
	}
	return a.write(chunk)
}

// whole writes a body of at most a chunk or so, all of it known, with the
// strong ETag of its bytes.
func (a *answer) whole(code int, b []byte) error {
	return a.known(code, a.r.strongETag(b), [][]byte{b}, len(b))
}

// shared writes a shared body.
func (a *answer) shared(b *body) error { return a.known(http.StatusOK, b.etag, b.blocks, b.size) }

// known writes a body whose bytes are all known. A HEAD of a small one
// still passes it on (net/http discards it), so that HEAD's headers
// (Content-Length) stay GET's.
func (a *answer) known(code int, etag string, chunks [][]byte, size int) error {
	err := a.start(code, etag)
	if err == errHeadOnly && size <= writeChunk {
		err = nil
	}
	for _, c := range chunks {
		if err != nil {
			return err
		}
		err = a.write(c)
	}
	return err
}

// etagMatch is If-None-Match's weak comparison.
func etagMatch(header, etag string) bool {
	return header != "" && (etagListed(header, "*") || etagListed(header, etag))
}

// etagListed reports whether the If-None-Match header names etag (weak
// comparison), not counting "*".
func etagListed(header, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, t := range strings.Split(header, ",") {
		if strings.TrimPrefix(strings.TrimSpace(t), "W/") == etag {
			return true
		}
	}
	return false
}

// serveList answers a listing: index, blocking, ETag, pagination. Pages
// stream as whole listings do.
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
	r.serveShared(r.newAnswer(w, req, idx, "application/json", extra), q.w.on, func(s *chunker) bool {
		return r.list(s, mk, q.cursor, until, jsonArray)
	})
}

// serveShared answers a read that its readers at one index may share
// (listings, exports). Blocking queries (lead) share one encoding
// (flights.go): the waiters that one change wakes take the first one's
// bytes when the answer is at most maxSharedBytes and the budget has room;
// otherwise each streams its own. Other reads, and HEAD, take a body kept
// at the same index if there is one, and stream otherwise: a client that
// does not wait never makes the registry hold an answer whole (a HEAD
// encodes no more than it must to learn its ETag: one chunk).
func (r *Registry) serveShared(a *answer, lead bool, encode func(s *chunker) bool) {
	if a.unchanged() {
		return
	}
	key := answerKey(a.req)
	if !lead || a.head {
		if b := r.flights.lookup(key, a.index, a.extra); b != nil {
			a.shared(b)
			b.release()
			return
		}
		r.encode(a.emit, encode)
		return
	}
	f, leader := r.flights.join(key, a.index, a.extra)
	if !leader {
		select {
		case <-f.done:
		case <-a.req.Context().Done():
			f.leave()
			return
		}
		if b := f.take(); b != nil {
			a.shared(b)
			b.release()
			return
		}
		r.encode(a.emit, encode)
		return
	}
	defer f.streams(0) // if the leader ends without saying
	if f.large {
		f.streams(maxSharedBytes + 1)
	} else {
		k := r.flights.keeper(r.seed)
		if err := r.encode(k.emit, encode); err == nil {
			b := k.body()
			f.share(b)
			a.shared(b)
			b.release()
			return
		}
		f.streams(k.tried)
		k.drop()
	}
	if r.encode(a.emit, encode) == nil {
		f.measured(a.n)
	}
}

// serveOne answers a single resource, or a JSON 404 that still carries the
// index (a blocking query on it waits for the resource to appear). write
// reports found false, having written nothing, if there is none.
func (r *Registry) serveOne(w http.ResponseWriter, req *http.Request, q query, t topic, indexOf func() uint64, extra uint64,
	write func(s *chunker) (found, ok bool), notFound string) {
	idx := r.block(req.Context(), t, q.w, indexOf)
	a := r.newAnswer(w, req, idx, "application/json", extra)
	if a.unchanged() {
		return
	}
	missing := false
	r.encode(a.emit, func(s *chunker) bool {
		// The index again, under the lock the record is read under: a
		// write between the wait and this read is both shown and counted.
		a.index = indexOf()
		found, ok := write(s)
		missing = !found
		return found && ok
	})
	if missing {
		a.whole(http.StatusNotFound, append(appendString([]byte(`{"detail":`), notFound), '}'))
	}
}

// strongETag hashes a body with the registry's seed: ETags of one process
// never match those of another.
func (r *Registry) strongETag(body []byte) string { return hashETag(maphash.Bytes(r.seed, body)) }

func hashETag(sum uint64) string { return `"` + strconv.FormatUint(sum, 36) + `"` }

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

// events.go follows the registry's change stream (GET /events, Server-Sent
// Events) with resume and reset, and lists the records in pages with the
// change index a stream starts from: together, a listing kept up to date
// by reading again only what each change names.

package client

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/runspec/registry"
)

// ErrStreamEnded matches the error Events yields when an event stream
// that was open ends: the registry closed it (it is shutting down), the
// connection broke, nothing came for too long, or the stream could not be
// read. Events opens it again by itself.
var ErrStreamEnded = errors.New("registry: the event stream ended")

// eventIdle is how long a stream may stay silent before it is taken as
// broken (a connection that died without a reset) and opened again: the
// registry writes a comment every 15 s on an idle stream.
var eventIdle = 45 * time.Second

// maxEventLine bounds the memory of one line of a stream: an event is a
// few hundred bytes (its ids and names are at most 256 bytes each).
const maxEventLine = 64 << 10

// Events follows the registry's changes after the change index after, in
// order: pass the Index of the first page of a listing (InstancePages) to
// learn of every change since that listing, or 0 for the changes from now
// on. Each change is a registry.Event whose Kind is one of the registry's
// event kinds (registry.EventRegistered, …), naming the instance it is
// about. The iterator runs in the caller's goroutine (it starts none) and
// yields:
//
//   - each change, once, in the order of the registry's index;
//   - an event of kind registry.EventReset when the registry no longer
//     holds the changes asked for (it keeps the last 8,192; it restarted;
//     it is another registry): read again (list), and go on with the
//     stream, which continues after the reset's Index. A stream that
//     started from now (after 0) and broke before its first event yields a
//     reset with Index 0 once it is open again, since changes may have
//     been missed meanwhile;
//   - a non-nil error for each failed attempt to open the stream (an
//     *APIError for an error status: ErrNotFound when the registry has no
//     change stream, as the v1 reference) and each time an open stream
//     ends (ErrStreamEnded), after which it opens the stream again after
//     a jittered exponential back-off, resuming after the last change it
//     yielded (Last-Event-ID): nothing is lost, nothing repeated.
//
// A stream on which nothing arrives for 45 s is taken as broken and opened
// again. It ends when ctx ends or the loop breaks; it never ends on its
// own.
func (c *Client) Events(ctx context.Context, after uint64) iter.Seq2[registry.Event, error] {
	return func(yield func(registry.Event, error) bool) {
		s := &eventStream{c: c, resume: after, fromNow: after == 0}
		fails := 0
		for ctx.Err() == nil {
			healthy, err := s.follow(ctx, yield)
			if s.stopped || ctx.Err() != nil {
				return
			}
			if healthy {
				fails = 0
			}
			d := c.backoff(fails)
			fails++
			c.log.Warn("registry event stream failed", "err", err, "retry", d)
			if !yield(registry.Event{}, err) || !sleep(ctx, d) {
				return
			}
		}
	}
}

// eventStream is where Events stands between connections.
type eventStream struct {
	c       *Client
	resume  uint64 // the id of the last event yielded: Last-Event-ID
	fromNow bool   // started from now, and no event came yet
	broken  bool   // a stream from now broke before its first event
	stopped bool   // the consumer stopped
}

// follow opens the stream once and yields its events until it ends. It
// returns whether the stream delivered anything (an event or a
// keep-alive), and why it ended.
func (s *eventStream) follow(ctx context.Context, yield func(registry.Event, error) bool) (healthy bool, err error) {
	c := s.c
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/events", nil)
	if err != nil {
		return false, fmt.Errorf("registry: GET /events: %w", err)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	req.Header.Set("User-Agent", c.userAgent)
	if c.opts.APIKey != "" {
		req.Header.Set("X-API-Key", c.opts.APIKey)
	}
	if !s.fromNow {
		req.Header.Set("Last-Event-ID", strconv.FormatUint(s.resume, 10))
	}
	// The answer's headers come at once: the registry writes them before
	// it waits for a change.
	idle := time.AfterFunc(c.opts.RequestTimeout, cancel)
	defer idle.Stop()
	resp, err := c.hc.Do(req)
	if err != nil {
		return false, fmt.Errorf("registry: GET /events: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxEventLine))
		return false, newAPIError("GET /events", &response{status: resp.StatusCode, header: resp.Header, body: b})
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return false, fmt.Errorf("registry: GET /events: %w: the answer is %q, not an event stream", ErrStreamEnded, mt)
	}
	idle.Reset(eventIdle)
	if s.broken {
		// Open again from now: what happened in between is unknown.
		s.broken = false
		if !yield(registry.Event{Kind: registry.EventReset}, nil) {
			s.stopped = true
			return true, nil
		}
	}
	br := bufio.NewReaderSize(resp.Body, 4096)
	var ev sseEvent
	for {
		line, err := readLine(br)
		if err != nil {
			if s.fromNow {
				s.broken = true
			}
			if ctx.Err() != nil && !idle.Stop() {
				err = fmt.Errorf("nothing for %v", eventIdle)
			}
			return healthy, fmt.Errorf("registry: GET /events: %w: %w", ErrStreamEnded, err)
		}
		idle.Reset(eventIdle)
		if len(line) > 0 {
			if line[0] == ':' && ev.seenComment {
				healthy = true // a keep-alive: the stream lives
			}
			ev.field(line)
			continue
		}
		if !ev.hasData {
			ev = sseEvent{seenComment: ev.seenComment}
			continue
		}
		e, id, err := ev.event()
		ev = sseEvent{seenComment: true}
		if err != nil {
			return healthy, fmt.Errorf("registry: GET /events: %w: %w", ErrStreamEnded, err)
		}
		healthy = true
		s.resume, s.fromNow = id, false
		if !yield(e, nil) {
			s.stopped = true
			return true, nil
		}
	}
}

// readLine reads one line without its end (\n, \r\n), refusing lines
// longer than maxEventLine.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(frag) > maxEventLine {
				return nil, fmt.Errorf("a line longer than %d bytes", maxEventLine)
			}
			long = append(long, frag...)
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if long != nil {
			frag = append(long, frag...)
		}
		frag = bytes.TrimSuffix(frag[:len(frag)-1], []byte{'\r'})
		return frag, nil
	}
}

// sseEvent gathers the fields of one event (the EventSource rules: a
// blank line ends an event, a line starting with ':' is a comment, data
// lines join with '\n').
type sseEvent struct {
	kind, id    string
	hasID       bool
	data        []byte
	hasData     bool
	seenComment bool // the stream's opening comment came
}

func (e *sseEvent) field(line []byte) {
	if line[0] == ':' {
		e.seenComment = true
		return
	}
	name, value, _ := bytes.Cut(line, []byte{':'})
	value = bytes.TrimPrefix(value, []byte{' '})
	switch string(name) {
	case "event":
		e.kind = string(value)
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			e.id, e.hasID = string(value), true
		}
	case "data":
		if e.hasData {
			e.data = append(e.data, '\n')
		}
		e.data = append(e.data, value...)
		e.hasData = true
	}
}

// event decodes the gathered event and the id to resume from after it.
func (e *sseEvent) event() (registry.Event, uint64, error) {
	var ev registry.Event
	if err := json.Unmarshal(e.data, &ev); err != nil {
		return ev, 0, fmt.Errorf("event %q: %w", e.kind, err)
	}
	ev.Kind = e.kind
	if ev.Kind == "" {
		return ev, 0, errors.New("an event without a kind")
	}
	if !e.hasID {
		return ev, 0, fmt.Errorf("event %q without an id", e.kind)
	}
	id, err := strconv.ParseUint(e.id, 10, 64)
	if err != nil {
		return ev, 0, fmt.Errorf("event %q: id %q: %w", e.kind, e.id, err)
	}
	return ev, id, nil
}

// DefaultPageSize is the number of records per page of InstancePages when
// it is given 0.
const DefaultPageSize = 1000

// InstancePage is one page of InstancePages.
type InstancePage struct {
	// Instances are the page's records, in registration order.
	Instances []registry.Instance
	// Index is the registry's change index of the page's answer: the page
	// shows every change up to it.
	Index uint64
}

// InstancePages yields the records that f selects, in registration order
// (the order in which their ids first registered), limit per page (0:
// DefaultPageSize), following the registry's next-page links (GET
// /instances?limit=N). Only one page is held at a time. It runs in the
// caller's goroutine and stops at the first error, which it yields: a
// listing is read again from its start, not resumed.
//
// Pages are read one after the other, so a listing as a whole shows every
// change up to the Index of its first page (and maybe later ones): follow
// Events from that index to learn of the rest. A walk never skips nor
// repeats a record that did not change meanwhile.
func (c *Client) InstancePages(ctx context.Context, f Filter, limit int) iter.Seq2[InstancePage, error] {
	return func(yield func(InstancePage, error) bool) {
		if limit <= 0 {
			limit = DefaultPageSize
		}
		q := f.values()
		q.Set("limit", strconv.Itoa(limit))
		for {
			k := &call{method: http.MethodGet, path: "/instances", query: q}
			r, err := c.call(ctx, k)
			if err != nil {
				yield(InstancePage{}, err)
				return
			}
			p := InstancePage{Index: r.index}
			if err := json.Unmarshal(r.body, &p.Instances); err != nil {
				yield(InstancePage{}, fmt.Errorf("registry: %s: decoding the answer: %w", k, err))
				return
			}
			next, more, err := nextPage(r.header)
			if err != nil {
				err = fmt.Errorf("registry: %s: %w", k, err)
			}
			r = nil // decoded: its bytes may go while the consumer works
			if !yield(p, nil) || !more && err == nil {
				return
			}
			if err != nil {
				yield(InstancePage{}, err)
				return
			}
			q = next
		}
	}
}

// nextPage reads the query of the next page from an answer's Link header
// (<?cursor=…&limit=N>; rel="next", relative to the page's own URL), and
// reports whether there is one.
func nextPage(h http.Header) (url.Values, bool, error) {
	for _, v := range h.Values("Link") {
		for _, link := range strings.Split(v, ",") {
			ref, params, ok := strings.Cut(strings.TrimSpace(link), ";")
			if !ok || !strings.HasPrefix(ref, "<") || !strings.HasSuffix(ref, ">") {
				continue
			}
			next := false
			for _, p := range strings.Split(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "rel") && slices.Contains(strings.Fields(strings.Trim(v, `"`)), "next") {
					next = true
				}
			}
			if !next {
				continue
			}
			u, err := url.Parse(ref[1 : len(ref)-1])
			if err != nil || u.Scheme != "" || u.Host != "" || u.Path != "" {
				return nil, false, fmt.Errorf("a next-page link %s that is not a query of the same path", ref)
			}
			return u.Query(), true, nil
		}
	}
	return nil, false, nil
}

// watch.go follows reads as they change, with blocking queries: each read
// carries the index of the last answer and the registry holds it until
// something that affects it changes. Watches survive registry restarts,
// indexes that go backwards and transport errors.

package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/runspec/registry"
)

// ToolUpdate is an answer of WatchTool.
type ToolUpdate struct {
	// Tool is the tool as the active instances offer it, with one Hosts
	// entry per instance; the zero Tool when Found is false.
	Tool registry.Tool
	// Found is false when no active instance offers the tool (the registry
	// answered 404).
	Found bool
	// Index is the registry's change index of the answer.
	Index uint64
}

// HostNames returns the distinct host names that offer the tool, sorted.
func (u ToolUpdate) HostNames() []string {
	names := make([]string, 0, len(u.Tool.Hosts))
	for _, h := range u.Tool.Hosts {
		names = append(names, h.Host)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// ToolsUpdate is an answer of WatchTools.
type ToolsUpdate struct {
	// Tools are the tools the active instances offer, grouped by name, in
	// name order.
	Tools []registry.Tool
	// Index is the registry's change index of the answer.
	Index uint64
}

// WatchTool follows the tool name as the active instances offer it. The
// iterator runs in the caller's goroutine (it starts none) and yields:
//
//   - the current state at once, then each change of it: a host that
//     starts or stops offering the tool, a changed schema or execution
//     field, the tool disappearing (Found false) or appearing;
//   - a non-nil error for each failed request (the registry is down, or
//     answers an error other than 404), after which it retries with
//     jittered exponential back-off. The next answer after an error is
//     yielded even if nothing changed, so that a consumer knows the
//     registry is back.
//
// It ends when ctx ends or the loop breaks; it never ends on its own.
// Answers are not queued: a slow consumer gets the latest state at its next
// iteration, not every intermediate one.
//
// Only answers whose body changed are yielded, so wait for a state through
// a watch, never for an Index: an answer of GET /tools can show a write
// made after the index it reports (a listing is read in chunks after its
// index is taken), and the answer that then carries the write's index
// shows the same body and is not yielded. Events yields every change with
// its index.
//
// A registry restart is survived: after a failed request the next read does
// not block, and a change index lower than the last one (a restarted
// registry counts from a new start) is taken as the new index.
func (c *Client) WatchTool(ctx context.Context, name string) iter.Seq2[ToolUpdate, error] {
	return func(yield func(ToolUpdate, error) bool) {
		c.watch(ctx, toolPath(name), Filter{}.values(), toolAbsent, func(r *response, err error) bool {
			if err != nil {
				return yield(ToolUpdate{}, err)
			}
			u := ToolUpdate{Index: r.index}
			if r.status == http.StatusOK {
				if err := json.Unmarshal(r.body, &u.Tool); err != nil {
					return yield(ToolUpdate{}, fmt.Errorf("registry: GET %s: decoding the answer: %w", toolPath(name), err))
				}
				u.Found = true
			}
			return yield(u, nil)
		})
	}
}

// WatchTools follows the list of tools the active instances offer. It
// yields the current list at once, then the list after each change, and
// handles errors and restarts as WatchTool does.
func (c *Client) WatchTools(ctx context.Context) iter.Seq2[ToolsUpdate, error] {
	return func(yield func(ToolsUpdate, error) bool) {
		c.watch(ctx, "/tools", Filter{}.values(), nil, func(r *response, err error) bool {
			if err != nil {
				return yield(ToolsUpdate{}, err)
			}
			u := ToolsUpdate{Index: r.index}
			if err := json.Unmarshal(r.body, &u.Tools); err != nil {
				return yield(ToolsUpdate{}, fmt.Errorf("registry: GET /tools: decoding the answer: %w", err))
			}
			return yield(u, nil)
		})
	}
}

// toolAbsent tells the protocol's 404 of GET /tools/{name}, {"detail":"Tool
// not found"}, from other 404s (a wrong base URL, a proxy), which are
// errors: a watch of a wrong URL must not report "no host" forever.
func toolAbsent(r *response) bool {
	return newAPIError("", r).Detail == "Tool not found"
}

// watch runs the blocking-query loop of path until ctx ends or yield
// returns false. It yields answers with status 200 (or a 404 for which
// absent, if not nil, is true) when they differ from the last one yielded,
// and errors.
func (c *Client) watch(ctx context.Context, path string, q url.Values, absent func(*response) bool, yield func(*response, error) bool) {
	k := &call{method: http.MethodGet, path: path, query: q}
	var (
		last  *response // the last answer yielded
		fresh = true    // yield the next answer even if unchanged
		fails int       // consecutive failures or early answers, for back-off
	)
	for ctx.Err() == nil {
		start := time.Now()
		r, err := c.do(ctx, k)
		if err == nil {
			switch {
			case r.status == http.StatusOK:
			case r.status == http.StatusNotModified && k.etag != "" && last != nil:
				r.status, r.body = last.status, last.body
			case r.status == http.StatusNotFound && absent != nil && absent(r):
			default:
				err = newAPIError(k.String(), r)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			// The registry may have restarted with a lower index: the next
			// read must not block on the old one.
			k.blocking, fresh = false, true
			d := c.backoff(fails)
			fails++
			c.log.Warn("registry watch failed", "request", k.String(), "err", err, "retry", d)
			if !yield(nil, err) || !sleep(ctx, d) {
				return
			}
			continue
		}
		if k.blocking && r.index < k.index {
			c.log.Info("registry index went backwards (a restart?): following the new one",
				"request", k.String(), "from", k.index, "to", r.index)
		}
		// An answer to a blocking query that comes back early without a
		// new index (a registry shutting down, or one without blocking
		// queries) must not turn the loop into a busy one.
		early := k.blocking && r.index <= k.index && time.Since(start) < c.opts.Wait/2
		k.blocking, k.index = true, r.index
		k.etag = ""
		if r.status == http.StatusOK {
			k.etag = r.etag
		}
		if fresh || last == nil || r.status != last.status || !bytes.Equal(r.body, last.body) {
			last, fresh = r, false
			if !yield(r, nil) {
				return
			}
		}
		if !early {
			fails = 0
			continue
		}
		d := c.backoff(fails)
		fails++
		c.log.Debug("registry answered a blocking query early", "request", k.String(), "retry", d)
		if !sleep(ctx, d) {
			return
		}
	}
}

// export_fleet.go holds what the fleet exports (Ansible, Rundeck,
// ssh_config) share: their query (?user=, ?active=, ?label=), the walk of
// the hosts, each read with its agents and tools under the read lock and
// written into the answer's chunks (list.go), the rule that a host that is
// not a plain host name is left out, and the log line that counts what was
// left out. No export copies the fleet or holds its answer whole: what one
// holds beyond its chunk is one host's working set (fleetHost) and, for
// Ansible, its batches (batch.go).

package registry

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"github.com/runspec/registry/internal/rules"
)

// A fleetHost is one host of a fleet export: the agents on it and the
// tools they offer there, read under the lock at one time. Its slices are
// reused from host to host.
type fleetHost struct {
	host    string
	agents  []string    // the agent names on the host, sorted, each once
	tools   []string    // the names of the tools offered there, sorted, each once
	entries []fleetTool // every tool entry on the host
}

// A fleetTool is one instance's entry of a tool on a host.
type fleetTool struct {
	name string
	x    *execFields // nil: no execution fields
}

// exec returns the execution field i (execKeys' order) of the entry.
func (t fleetTool) exec(i int) ExecField {
	if t.x == nil {
		return ExecField{}
	}
	return t.x.f[i]
}

// omissions counts what an export left out, for its log line.
type omissions struct {
	hosts  int      // hosts that are not plain host names
	names  int      // agent or tool names that the format cannot carry
	values int      // other values (become fields) left out
	groups []string // names that collide once reduced to the format's characters
}

// A fleetQuery is the query of a fleet export.
type fleetQuery struct {
	f    Filter
	user string  // empty, or a plain user name
	w    waitFor // ?index=&wait=
}

// A fleetWriter writes a fleet export into s, counting in om what it left
// out; it returns the hosts it wrote, and false if the answer ended early.
type fleetWriter func(s *chunker, q fleetQuery, om *omissions) (written int, ok bool)

// serveFleet answers a fleet export: it checks the query (a 422), waits as
// a blocking query asks, and streams what write writes as listings stream
// (serveShared), filename, if not empty, making it an attachment. The log
// line is written once the answer was written to its end: only then are
// its counts whole.
func (r *Registry) serveFleet(w http.ResponseWriter, req *http.Request, format, contentType, filename string, write fleetWriter) {
	pq, errs := parseQuery(req, true)
	if pq.user != "" && !rules.UserName(pq.user) {
		errs = append(errs, errValue([]string{"query", "user"},
			"must be a plain user name (letters, digits, '_', '.', '@' and '-', not starting with '-' or '.')"))
	}
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	q := fleetQuery{f: pq.f, user: pq.user, w: pq.w}
	q.f.Host, q.f.Name = "", ""
	idx := r.block(req.Context(), topic{kind: topicAll}, q.w, func() uint64 { return r.v.index })
	if filename != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	}
	var om omissions
	written, complete := 0, false
	r.serveShared(r.newAnswer(w, req, idx, contentType, 0), q.w.on, func(s *chunker) bool {
		om, complete = omissions{}, false // an encoding may run again
		var ok bool
		written, ok = write(s, q, &om)
		complete = ok
		return ok
	})
	if complete {
		r.logOmissions(format, om, written)
	}
}

// logOmissions writes the export's log line when it left something out.
func (r *Registry) logOmissions(format string, om omissions, written int) {
	if om.hosts == 0 && om.names == 0 && om.values == 0 && len(om.groups) == 0 {
		return
	}
	r.log.Warn("export: entries left out, they cannot be written in this format without changing another field",
		"format", format, "hosts_left_out", om.hosts, "names_left_out", om.names, "values_left_out", om.values,
		"colliding_groups", strings.Join(om.groups, ","), "hosts_written", written)
}

// eachHost calls fn, in host order, for each plain host on which f selects
// an instance, with the host read under the lock at s.now; bad, if not nil,
// is called for each host that is not a plain host name. fn may flush: the
// walk goes on after the host it wrote, looked up again. It reports false
// if the answer ended.
func (r *Registry) eachHost(s *chunker, f Filter, fn func(h *fleetHost) bool, bad func()) bool {
	var h fleetHost
	after, started := "", false
	for {
		groups, i := r.v.hosts, 0
		if started {
			i, _ = slices.BinarySearchFunc(groups, after, hostAfter)
		}
		again := false
		for visited := 0; i < len(groups) && !again; {
			j := i + 1
			for j < len(groups) && groups[j].host == groups[i].host {
				j++
			}
			host := groups[i].host
			switch {
			case rules.Host(host) != nil:
				if bad != nil && selectsAny(groups[i:j], f, s.now) {
					bad()
				}
			case h.read(groups[i:j], f, s.now):
				gen := s.gen
				if !fn(&h) {
					return false
				}
				again = s.gen != gen // flushed: groups is stale
			}
			after, started = host, true
			visited += j - i
			i = j
			switch {
			case again:
			case s.full():
				if !s.flush() {
					return false
				}
				again = true
			case visited >= maxVisit:
				s.yield()
				again = true
			}
		}
		if !again {
			return true
		}
	}
}

// hostAfter orders the (host, name) groups around the end of a host's, so
// that a binary search finds the first group of the next host.
func hostAfter(g *hostGroup, host string) int {
	if c := cmp.Compare(g.host, host); c != 0 {
		return c
	}
	return -1
}

// selectsAny reports whether f selects an instance of the groups.
func selectsAny(groups []*hostGroup, f Filter, now int64) bool {
	for _, g := range groups {
		if g.pick(f, now) != nil {
			return true
		}
	}
	return false
}

// read sets h to the host of groups (one host's, by name) as f selects it
// at now, and reports whether f selects any instance there.
func (h *fleetHost) read(groups []*hostGroup, f Filter, now int64) bool {
	h.host = groups[0].host
	h.agents, h.tools, h.entries = h.agents[:0], h.tools[:0], h.entries[:0]
	for _, g := range groups {
		picked := false
		for _, in := range g.members {
			if !f.selects(in, now) {
				continue
			}
			picked = true
			if ts := in.tools.Load(); ts != nil {
				for i := range ts.list {
					t := &ts.list[i]
					h.entries = append(h.entries, fleetTool{name: t.s.name, x: t.x})
					h.tools = append(h.tools, t.s.name)
				}
			}
		}
		if picked {
			h.agents = append(h.agents, g.name)
		}
	}
	slices.Sort(h.tools)
	h.tools = slices.Compact(h.tools)
	return len(h.agents) > 0
}

// appendJSON appends s as a JSON string exactly as the encoding/json of
// marshal writes it (no HTML escapes; \b, \f, \u2028 and \u2029 escaped,
// unlike appendString), so that the fleet exports keep the bytes they had
// when they were marshaled whole.
func appendJSON(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = appendJSONBody(buf, s)
	return append(buf, '"')
}

// appendJSONBody is appendJSON without the quotes.
func appendJSONBody(buf []byte, s string) []byte { return appendEscaped(buf, s, true) }

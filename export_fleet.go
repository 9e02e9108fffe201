// export_fleet.go holds what the fleet exports (Ansible, Rundeck,
// ssh_config) share: their query (?user=, ?active=, ?label=), reading each
// host with its agents and tools, the rule that a host that is not a plain
// host name is left out, and the log line that counts what was left out.

package registry

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/runspec/registry/internal/rules"
)

// A fleetHost is one host of a fleet export: the agents on it and the
// tools they offer there.
type fleetHost struct {
	host    string
	agents  []string    // the agent names on the host, sorted, each once
	tools   []string    // the names of the tools offered there, sorted, each once
	entries []fleetTool // every tool entry on the host
}

// A fleetTool is one instance's entry of a tool on a host.
type fleetTool struct {
	name string
	ToolHost
}

// omissions counts what an export left out, for its log line.
type omissions struct {
	hosts  int      // hosts that are not plain host names
	names  int      // agent or tool names that the format cannot carry
	values int      // other values (become fields) left out
	groups []string // names that collide once reduced to the format's characters
}

// readFleet answers the common part of a fleet export: it checks the
// query (a 422 answered here returns ok false), waits as a blocking query
// asks, and returns the hosts that the filter selects, by host name, with
// those that are not plain host names already left out and counted. The
// user is the ?user= value: empty, or a plain user name.
func (r *Registry) readFleet(w http.ResponseWriter, req *http.Request) (hosts []fleetHost, user string, idx uint64, om omissions, ok bool) {
	q, errs := parseQuery(req, true)
	if q.user != "" && !rules.UserName(q.user) {
		errs = append(errs, errValue([]string{"query", "user"},
			"must be a plain user name (letters, digits, '_', '.', '@' and '-', not starting with '-' or '.')"))
	}
	if errs != nil {
		writeInvalid(w, errs...)
		return nil, "", 0, om, false
	}
	q.f.Host, q.f.Name = "", ""
	ctx := req.Context()
	idx = r.block(ctx, topic{kind: topicAll}, q.w, func() uint64 { return r.v.index })
	list, _, err := r.Hosts(ctx, q.f)
	if err != nil {
		r.writeError(w, err, "")
		return nil, "", 0, om, false
	}
	tools, _, err := r.Tools(ctx, q.f)
	if err != nil {
		r.writeError(w, err, "")
		return nil, "", 0, om, false
	}
	byHost := map[string]*fleetHost{}
	bad := map[string]bool{}
	get := func(host string) *fleetHost {
		if rules.Host(host) != nil {
			bad[host] = true
			return nil
		}
		h := byHost[host]
		if h == nil {
			h = &fleetHost{host: host}
			byHost[host] = h
		}
		return h
	}
	for _, e := range list {
		if h := get(e.Host); h != nil {
			h.agents = append(h.agents, e.Name)
		}
	}
	for _, t := range tools {
		for _, e := range t.Hosts {
			if h := get(e.Host); h != nil {
				h.tools = append(h.tools, t.Name)
				h.entries = append(h.entries, fleetTool{name: t.Name, ToolHost: e})
			}
		}
	}
	om.hosts = len(bad)
	for _, name := range slices.Sorted(maps.Keys(byHost)) {
		h := byHost[name]
		slices.Sort(h.agents)
		h.agents = slices.Compact(h.agents)
		slices.Sort(h.tools)
		h.tools = slices.Compact(h.tools)
		hosts = append(hosts, *h)
	}
	return hosts, q.user, idx, om, true
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

// writeExport answers an export's body, with the index, ETag and HEAD
// handling of every read; filename, if not empty, makes it an attachment.
func (r *Registry) writeExport(w http.ResponseWriter, req *http.Request, idx uint64, contentType, filename string, buf *bytes.Buffer) {
	if filename != "" {
		w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	}
	a := r.newAnswer(w, req, idx, contentType, 0)
	a.whole(http.StatusOK, buf.Bytes())
}

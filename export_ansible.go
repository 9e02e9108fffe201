// export_ansible.go writes the fleet as an Ansible dynamic inventory (GET
// /export/ansible), the JSON that an inventory script prints for --list: a
// group per agent name and per tool, all and ungrouped, and every host's
// variables under _meta.hostvars, so that Ansible never calls --host.

package registry

import (
	"cmp"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"

	"github.com/runspec/registry/internal/rules"
)

// Group name prefixes: an agent and a tool often share a name (agent
// deploy offering tool deploy), and a group name must not start with a
// digit.
const (
	ansibleAgentPrefix = "agent_"
	ansibleToolPrefix  = "tool_"
)

// handleAnsible answers GET /export/ansible. Groups are agent_NAME and
// tool_NAME with every character outside [A-Za-z0-9_] written '_'; two
// names that reduce to the same group are both left out (a play aimed at
// one must not run on the other's hosts) and logged. Ansible templates
// inventory variables, so a name or value containing "{{", "{%" or "{#"
// is left out. Hosts that are not plain host names are left out.
//
// Each host's variables are runspec_agents and runspec_tools (the names),
// ansible_user from ?user=, and ansible_become_user,
// ansible_become_method and ansible_become_flags where all of the host's
// tool entries agree on x-run-as, x-become-method and x-become-flags
// (the last two only with the first), and none of them if one fails the
// checks that run applies (a plain user name, a known method, flags on its
// allow-list).
//
// The inventory is a JSON object whose members encoding/json would sort:
// _meta (the hostvars, by host), the agent_ groups, all, the tool_ groups,
// ungrouped. The hostvars and ungrouped are walks of the hosts; the groups
// come in the order of their reduced names, which no index keeps: they are
// written a batch (batch.go) at a time, each batch the next smallest keys
// met on a walk of the (host, name) groups or of the tool index, so that
// what an answer holds beyond its chunk is a batch, not a sorted copy of
// the fleet. A first pass, in batches too, finds the reduced names that
// collide; those (which the log line names anyway) are all it keeps.
func (r *Registry) handleAnsible(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveFleet(w, req, "ansible", "application/json", "", r.writeAnsible)
}

// Batch sizes: a walk of the index per batch, each batch at most 32 KiB
// of keys while it fills (a key is a pointer or a string header). An
// answer holds one batch at a time, two while it writes the tool groups
// (names, and the hosts of one).
const (
	groupBatch = 2048 // *hostGroup keys
	nameBatch  = 1024 // string keys
)

// ansibleWalk is the state of one Ansible answer.
type ansibleWalk struct {
	r          *Registry
	s          *chunker
	f          Filter
	om         *omissions
	agentsColl []string // reduced agent names that collide, sorted
	toolsColl  []string // reduced tool names that collide, sorted
}

// writeAnsible writes the --list document.
func (r *Registry) writeAnsible(s *chunker, q fleetQuery, om *omissions) (int, bool) {
	a := &ansibleWalk{r: r, s: s, f: q.f, om: om}
	a.collisions()
	written := 0
	s.buf = append(s.buf, `{"_meta":{"hostvars":{`...)
	ok := r.eachHost(s, q.f, func(h *fleetHost) bool {
		if written > 0 {
			s.buf = append(s.buf, ',')
		}
		written++
		s.buf = a.appendHostVars(s.buf, h, q.user)
		return true
	}, func() { om.hosts++ })
	if !ok {
		return written, false
	}
	s.buf = append(s.buf, "}}"...)
	if !a.agentGroups() {
		return written, false
	}
	s.buf = append(s.buf, `,"all":{"children":["ungrouped"`...)
	if !a.children() {
		return written, false
	}
	s.buf = append(s.buf, "]}"...)
	if !a.toolGroups() {
		return written, false
	}
	s.buf = append(s.buf, `,"ungrouped":{"hosts":[`...)
	n := 0
	ok = r.eachHost(s, q.f, func(h *fleetHost) bool {
		if !a.grouped(h) {
			if n > 0 {
				s.buf = append(s.buf, ',')
			}
			n++
			s.buf = appendJSON(s.buf, h.host)
		}
		return true
	}, nil)
	if !ok {
		return written, false
	}
	s.buf = append(s.buf, "]}}\n"...)
	return written, true
}

// byGroupName orders names by the group they reduce to, then by name.
func byGroupName(a, b string) int {
	if c := cmpGroupName(a, b); c != 0 {
		return c
	}
	return strings.Compare(a, b)
}

// byAgentGroup orders (host, name) groups by the agent group they belong
// to, then by host: the order in which the agent groups list them.
func byAgentGroup(a, b *hostGroup) int {
	if c := cmpGroupName(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.host, b.host); c != 0 {
		return c
	}
	return strings.Compare(a.name, b.name)
}

// walkGroups calls visit for each (host, name) group on a plain host with
// an instance that f selects, if want accepts it first, releasing the
// lock every maxVisit groups.
func (a *ansibleWalk) walkGroups(want func(g *hostGroup) bool, visit func(g *hostGroup)) {
	s, after, started := a.s, hostKey{}, false
	for {
		groups, i := a.r.v.hosts, 0
		if started {
			var found bool
			if i, found = slices.BinarySearchFunc(groups, after, groupOrder); found {
				i++
			}
		}
		host, plain := "", false
		for visited := 0; i < len(groups); i, visited = i+1, visited+1 {
			if visited == maxVisit {
				after, started = hostKey{groups[i-1].host, groups[i-1].name}, true
				break
			}
			g := groups[i]
			if g.host != host || visited == 0 {
				host, plain = g.host, rules.Host(g.host) == nil
			}
			if plain && want(g) && g.pick(a.f, s.now) != nil {
				visit(g)
			}
		}
		if i >= len(groups) {
			return
		}
		s.yield()
	}
}

// walkTools calls visit for each tool name that an instance f selects on a
// plain host offers, if want accepts it first, releasing the lock every
// maxVisit names.
func (a *ansibleWalk) walkTools(want func(name string) bool, visit func(name string)) {
	s, after, started := a.s, "", false
	for {
		names, i := a.r.v.names, 0
		if started {
			var found bool
			if i, found = slices.BinarySearch(names, after); found {
				i++
			}
		}
		for visited := 0; i < len(names); i, visited = i+1, visited+1 {
			if visited == maxVisit {
				after, started = names[i-1], true
				break
			}
			if name := names[i]; want(name) && a.offered(name) {
				visit(name)
			}
		}
		if i >= len(names) {
			return
		}
		s.yield()
	}
}

// offered reports whether an instance that f selects on a plain host
// offers the tool name.
func (a *ansibleWalk) offered(name string) bool {
	ms := a.r.v.members(name)
	for i := range ms {
		if m := &ms[i]; a.f.offers(m, a.s.now) && rules.Host(m.in.host) == nil {
			return true
		}
	}
	return false
}

// collisions finds the reduced names that two names of the inventory
// share (those groups are left out) and counts, in om, the names left out:
// those that Ansible would template, and those of colliding groups. It
// walks the names in the order of their groups, a batch at a time: two
// names collide when they are next to each other with the same group.
func (a *ansibleWalk) collisions() {
	b := newBatch(nameBatch, byGroupName)
	for _, kind := range []struct {
		c    collider
		walk func()
	}{
		{collider{om: a.om, prefix: ansibleAgentPrefix, coll: &a.agentsColl}, a.groupNames(b)},
		{collider{om: a.om, prefix: ansibleToolPrefix, coll: &a.toolsColl}, func() { a.walkTools(b.want, b.add) }},
	} {
		b.all(kind.walk, func(name string) bool { kind.c.add(name); return true })
		kind.c.end()
	}
}

// groupNames is the walk that offers b the agent names of the (host,
// name) groups.
func (a *ansibleWalk) groupNames(b *batch[string]) func() {
	return func() {
		a.walkGroups(func(g *hostGroup) bool { return b.want(g.name) }, func(g *hostGroup) { b.add(g.name) })
	}
}

// A collider follows the names of one kind (agents or tools) in the order
// of their groups and notes the groups that more than one name reduces to.
type collider struct {
	om     *omissions
	prefix string
	coll   *[]string
	first  string // the first name of the current group
	n      int    // the names of the current group so far
}

func (c *collider) add(name string) {
	if templates(name) { // never in a group
		c.om.names++
		return
	}
	if c.n > 0 && cmpGroupName(c.first, name) == 0 {
		c.n++
		return
	}
	c.end()
	c.first, c.n = name, 1
}

// end ends the current group.
func (c *collider) end() {
	if c.n > 1 {
		g := groupName(c.first)
		*c.coll = append(*c.coll, g)
		c.om.groups = append(c.om.groups, c.prefix+g)
		c.om.names += c.n
	}
	c.n = 0
}

// inGroup reports whether name is in a group of its kind: Ansible would
// not template it, and no other name reduces to its group (coll).
func inGroup(coll []string, name string) bool {
	if templates(name) {
		return false
	}
	_, found := slices.BinarySearchFunc(coll, name, cmpGroupName)
	return !found
}

// grouped reports whether h is in a group.
func (a *ansibleWalk) grouped(h *fleetHost) bool {
	for _, n := range h.agents {
		if inGroup(a.agentsColl, n) {
			return true
		}
	}
	for _, n := range h.tools {
		if inGroup(a.toolsColl, n) {
			return true
		}
	}
	return false
}

// appendHostVars appends the member of h in _meta.hostvars, its
// variables in the order encoding/json sorts them.
func (a *ansibleWalk) appendHostVars(b []byte, h *fleetHost, user string) []byte {
	b = appendJSON(b, h.host)
	b = append(b, ':', '{')
	if bv, ok := becomeVars(h.entries, a.om); ok {
		if bv.flags != "" {
			b = append(b, `"ansible_become_flags":`...)
			b = append(appendJSON(b, bv.flags), ',')
		}
		if bv.method != "" {
			b = append(b, `"ansible_become_method":`...)
			b = append(appendJSON(b, bv.method), ',')
		}
		b = append(b, `"ansible_become_user":`...)
		b = append(appendJSON(b, bv.user), ',')
	}
	if user != "" {
		b = append(b, `"ansible_user":`...)
		b = append(appendJSON(b, user), ',')
	}
	list := func(b []byte, names []string) []byte {
		b = append(b, '[')
		n := 0
		for _, name := range names {
			if templates(name) {
				continue
			}
			if n > 0 {
				b = append(b, ',')
			}
			n++
			b = appendJSON(b, name)
		}
		return append(b, ']')
	}
	b = append(b, `"runspec_agents":`...)
	b = list(b, h.agents)
	b = append(b, `,"runspec_tools":`...)
	b = list(b, h.tools)
	return append(b, '}')
}

// A groupWriter writes the groups of one kind: "PREFIXNAME":{"hosts":[…]},
// each member opened at its first host.
type groupWriter struct {
	s      *chunker
	prefix string
	open   bool
	name   string // the current group's name (not reduced)
	host   string // the last host written
}

// add writes host into the group of name.
func (w *groupWriter) add(name, host string) bool {
	s := w.s
	switch {
	case !w.open || name != w.name:
		w.end()
		s.buf = append(s.buf, `,"`...)
		s.buf = append(s.buf, w.prefix...)
		s.buf = appendGroupName(s.buf, name)
		s.buf = append(s.buf, `":{"hosts":[`...)
		w.open, w.name = true, name
	case host == w.host:
		return true
	default:
		s.buf = append(s.buf, ',')
	}
	w.host = host
	s.buf = appendJSON(s.buf, host)
	return s.next()
}

// end closes the group being written.
func (w *groupWriter) end() {
	if w.open {
		w.s.buf = append(w.s.buf, "]}"...)
		w.open = false
	}
}

// agentGroups writes the agent_ groups: the (host, name) groups by agent
// group, then host, a batch at a time.
func (a *ansibleWalk) agentGroups() bool {
	w := groupWriter{s: a.s, prefix: ansibleAgentPrefix}
	b := newBatch(groupBatch, byAgentGroup)
	walk := func() {
		a.walkGroups(func(g *hostGroup) bool { return b.want(g) && inGroup(a.agentsColl, g.name) }, b.add)
	}
	if !b.all(walk, func(g *hostGroup) bool { return w.add(g.name, g.host) }) {
		return false
	}
	w.end()
	return true
}

// children writes the names of the groups, after all's "ungrouped": the
// agent groups, then the tool groups, each in order.
func (a *ansibleWalk) children() bool {
	b := newBatch(nameBatch, byGroupName)
	for _, kind := range []struct {
		prefix string
		coll   []string
		walk   func()
	}{
		{ansibleAgentPrefix, a.agentsColl, a.groupNames(b)},
		{ansibleToolPrefix, a.toolsColl, func() { a.walkTools(b.want, b.add) }},
	} {
		ok := b.all(kind.walk, func(name string) bool {
			if !inGroup(kind.coll, name) {
				return true
			}
			a.s.buf = append(a.s.buf, `,"`...)
			a.s.buf = append(a.s.buf, kind.prefix...)
			a.s.buf = appendGroupName(a.s.buf, name)
			a.s.buf = append(a.s.buf, '"')
			return a.s.next()
		})
		if !ok {
			return false
		}
	}
	return true
}

// toolGroups writes the tool_ groups: the tool names by group, a batch at
// a time, and the hosts of each, a batch at a time from its members.
func (a *ansibleWalk) toolGroups() bool {
	w := groupWriter{s: a.s, prefix: ansibleToolPrefix}
	b, hosts := newBatch(nameBatch, byGroupName), newBatch(nameBatch, strings.Compare)
	walk := func() {
		a.walkTools(func(name string) bool { return b.want(name) && inGroup(a.toolsColl, name) }, b.add)
	}
	if !b.all(walk, func(name string) bool { return a.toolHosts(&w, hosts, name) }) {
		return false
	}
	w.end()
	return true
}

// toolHosts writes the hosts of the tool name, in order: the plain hosts of
// its members that f selects, a batch at a time, each batch a walk of the
// members (looked up again after the lock was released).
func (a *ansibleWalk) toolHosts(w *groupWriter, b *batch[string], name string) bool {
	s := a.s
	walk := func() {
		var after uint64 // the seq of the last member walked
		for started := false; ; {
			ms, i := a.r.v.members(name), 0
			if started {
				var found bool
				if i, found = slices.BinarySearchFunc(ms, after, memberBySeq); found {
					i++
				}
			}
			for visited := 0; i < len(ms) && visited < maxVisit; i, visited = i+1, visited+1 {
				m := &ms[i]
				if a.f.offers(m, s.now) && b.want(m.in.host) && rules.Host(m.in.host) == nil {
					b.add(m.in.host)
				}
			}
			if i >= len(ms) {
				break
			}
			after, started = ms[i-1].in.seq, true
			s.yield()
		}
	}
	return b.all(walk, func(host string) bool { return w.add(name, host) })
}

// A become is the become variables of a host.
type become struct{ user, method, flags string }

// becomeVars returns the become variables on which all of a host's tool
// entries agree; none of them (false) when one has a value that run would
// refuse (counted in om).
func becomeVars(entries []fleetTool, om *omissions) (become, bool) {
	agreed := func(field int) (string, bool) {
		value := ""
		for i, e := range entries {
			f := e.exec(field)
			if i > 0 && f.Value != value {
				return "", false
			}
			value = f.Value
		}
		return value, len(entries) > 0 && value != ""
	}
	for _, e := range entries {
		for field := 1; field <= 3; field++ {
			if f := e.exec(field); f.Set && !f.IsString() {
				om.values++ // run refuses the record
				return become{}, false
			}
		}
	}
	user, ok := agreed(1)
	if !ok {
		return become{}, false
	}
	// All of them or none: run refuses the whole record when one is bad.
	bv := become{user: user}
	valid := rules.UserName(user)
	method := "sudo"
	if m, ok := agreed(2); ok {
		valid = valid && rules.BecomeMethod(m)
		method = m
		bv.method = m
	}
	if f, ok := agreed(3); ok {
		words := strings.Fields(f)
		valid = valid && rules.Text(f) && len(words) > 0
		for _, w := range words {
			valid = valid && rules.BecomeFlag(method, w)
		}
		bv.flags = strings.Join(words, " ")
	}
	if !valid {
		om.values++
		return become{}, false
	}
	return bv, true
}

// groupChar is the character of a group name that the rune at the start
// of s becomes, and the rune's length: [A-Za-z0-9_] stay, all else is '_'
// (each byte of invalid UTF-8 too, as ranging over a string reads it).
func groupChar(s string) (byte, int) {
	if c := s[0]; c < utf8.RuneSelf {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' {
			return c, 1
		}
		return '_', 1
	}
	_, n := utf8.DecodeRuneInString(s)
	return '_', n
}

// cmpGroupName compares the group names that a and b reduce to, without
// making them.
func cmpGroupName(a, b string) int {
	for a != "" && b != "" {
		ca, na := groupChar(a)
		cb, nb := groupChar(b)
		if ca != cb {
			return cmp.Compare(ca, cb)
		}
		a, b = a[na:], b[nb:]
	}
	return cmp.Compare(len(a), len(b)) // only which one ended matters
}

// appendGroupName appends the group name that name reduces to.
func appendGroupName(buf []byte, name string) []byte {
	for name != "" {
		c, n := groupChar(name)
		buf = append(buf, c)
		name = name[n:]
	}
	return buf
}

// groupName reduces a name to the characters of an Ansible group name,
// [A-Za-z0-9_], writing '_' for each other character (each rune).
func groupName(name string) string { return string(appendGroupName(nil, name)) }

// templates reports whether Ansible's templating would read s: it has the
// start of an expression, a statement or a comment.
func templates(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

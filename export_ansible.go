// export_ansible.go writes the fleet as an Ansible dynamic inventory (GET
// /export/ansible), the JSON that an inventory script prints for --list: a
// group per agent name and per tool, all and ungrouped, and every host's
// variables under _meta.hostvars, so that Ansible never calls --host.

package registry

import (
	"bytes"
	"maps"
	"net/http"
	"slices"
	"strings"

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
func (r *Registry) handleAnsible(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	hosts, user, idx, om, ok := r.readFleet(w, req)
	if !ok {
		return
	}
	b, err := marshal(ansibleInventory(hosts, user, &om))
	if err != nil {
		r.writeError(w, err, "")
		return
	}
	r.logOmissions("ansible", om, len(hosts))
	buf := bytes.NewBuffer(append(b, '\n'))
	r.writeExport(w, req, idx, "application/json", "", buf)
}

// ansibleGroup is one group of the inventory.
type ansibleGroup struct {
	Hosts    []string `json:"hosts,omitempty"`
	Children []string `json:"children,omitempty"`
}

// ansibleInventory builds the --list document of hosts.
func ansibleInventory(hosts []fleetHost, user string, om *omissions) map[string]any {
	type group struct {
		names map[string]bool // the names that reduce to this group
		hosts []string
	}
	groups := map[string]*group{}
	templated := map[string]bool{} // names left out: Ansible would template them
	add := func(prefix, name, host string) {
		if templates(name) {
			templated[prefix+name] = true
			return
		}
		g := groups[prefix+groupName(name)]
		if g == nil {
			g = &group{names: map[string]bool{}}
			groups[prefix+groupName(name)] = g
		}
		g.names[name] = true
		if !slices.Contains(g.hosts, host) {
			g.hosts = append(g.hosts, host)
		}
	}
	hostvars := map[string]any{}
	for _, h := range hosts {
		vars := map[string]any{}
		agents, tools := []string{}, []string{}
		for _, a := range h.agents {
			add(ansibleAgentPrefix, a, h.host)
			if !templates(a) {
				agents = append(agents, a)
			}
		}
		for _, t := range h.tools {
			add(ansibleToolPrefix, t, h.host)
			if !templates(t) {
				tools = append(tools, t)
			}
		}
		vars["runspec_agents"], vars["runspec_tools"] = agents, tools
		if user != "" {
			vars["ansible_user"] = user
		}
		becomeVars(h.entries, vars, om)
		hostvars[h.host] = vars
	}
	om.names += len(templated)

	inv := map[string]any{}
	grouped := map[string]bool{}
	children := []string{"ungrouped"}
	for _, name := range slices.Sorted(maps.Keys(groups)) {
		g := groups[name]
		if len(g.names) > 1 {
			om.groups = append(om.groups, name)
			om.names += len(g.names)
			continue
		}
		slices.Sort(g.hosts)
		inv[name] = ansibleGroup{Hosts: g.hosts}
		children = append(children, name)
		for _, h := range g.hosts {
			grouped[h] = true
		}
	}
	ungrouped := []string{}
	for _, h := range hosts {
		if !grouped[h.host] {
			ungrouped = append(ungrouped, h.host)
		}
	}
	inv["all"] = ansibleGroup{Children: children}
	inv["ungrouped"] = map[string]any{"hosts": ungrouped}
	inv["_meta"] = map[string]any{"hostvars": hostvars}
	return inv
}

// becomeVars sets the become variables on which all of a host's tool
// entries agree; none of them when one has a value that run would refuse
// (counted in om).
func becomeVars(entries []fleetTool, vars map[string]any, om *omissions) {
	agreed := func(field func(ToolHost) ExecField) (string, bool) {
		value := ""
		for i, e := range entries {
			f := field(e.ToolHost)
			if i > 0 && f.Value != value {
				return "", false
			}
			value = f.Value
		}
		return value, len(entries) > 0 && value != ""
	}
	for _, e := range entries {
		for _, f := range []ExecField{e.RunAs, e.BecomeMethod, e.BecomeFlags} {
			if f.Set && !f.IsString() {
				om.values++ // run refuses the record
				return
			}
		}
	}
	user, ok := agreed(func(h ToolHost) ExecField { return h.RunAs })
	if !ok {
		return
	}
	// All of them or none: run refuses the whole record when one is bad.
	become := map[string]any{"ansible_become_user": user}
	valid := rules.UserName(user)
	method := "sudo"
	if m, ok := agreed(func(h ToolHost) ExecField { return h.BecomeMethod }); ok {
		valid = valid && rules.BecomeMethod(m)
		method = m
		become["ansible_become_method"] = m
	}
	if f, ok := agreed(func(h ToolHost) ExecField { return h.BecomeFlags }); ok {
		words := strings.Fields(f)
		valid = valid && rules.Text(f) && len(words) > 0
		for _, w := range words {
			valid = valid && rules.BecomeFlag(method, w)
		}
		become["ansible_become_flags"] = strings.Join(words, " ")
	}
	if !valid {
		om.values++
		return
	}
	maps.Copy(vars, become)
}

// groupName reduces a name to the characters of an Ansible group name,
// [A-Za-z0-9_], writing '_' for each other character (each rune).
func groupName(name string) string {
	var b strings.Builder
	for _, c := range name {
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// templates reports whether Ansible's templating would read s: it has the
// start of an expression, a statement or a comment.
func templates(s string) bool {
	return strings.Contains(s, "{{") || strings.Contains(s, "{%") || strings.Contains(s, "{#")
}

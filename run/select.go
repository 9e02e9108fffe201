// select.go chooses which of a tool's entries runs: the one entry on a
// host (refusing when the entries there disagree on what they would run),
// all active hosts, or one at random.

package run

import (
	"math/rand/v2"
	"slices"

	registry "github.com/runspec/registry"
)

// Select returns the entry of tool to run on host. Only active entries
// count. A grouped tool may have several entries on one host (two
// instances of agents there): when they agree on what they would run (the
// execution fields and the owner) the most recently seen one is
// returned, so that the tool runs once; when they differ, Select refuses
// with a *HostError matching ErrAmbiguous that lists their instance ids.
// A non-empty instanceID picks that entry (ErrUnknownInstance when it is
// not an active entry on the host). A host without an active entry is a
// *HostError matching ErrUnknownHost that lists the hosts that offer the
// tool.
func Select(tool registry.Tool, host, instanceID string) (registry.ToolHost, error) {
	var on []registry.ToolHost
	for _, h := range tool.Hosts {
		if h.Active && h.Host == host {
			on = append(on, h)
		}
	}
	if len(on) == 0 {
		return registry.ToolHost{}, &HostError{Tool: tool.Name, Host: host, Hosts: ActiveHosts(tool), Err: ErrUnknownHost}
	}
	ids := make([]string, len(on))
	for i, h := range on {
		ids[i] = h.InstanceID
	}
	slices.Sort(ids)
	if instanceID != "" {
		for _, h := range on {
			if h.InstanceID == instanceID {
				return h, nil
			}
		}
		return registry.ToolHost{}, &HostError{Tool: tool.Name, Host: host, InstanceID: instanceID, InstanceIDs: ids, Err: ErrUnknownInstance}
	}
	best := on[0]
	for _, h := range on[1:] {
		if !sameExec(best, h) {
			return registry.ToolHost{}, &HostError{Tool: tool.Name, Host: host, InstanceIDs: ids, Err: ErrAmbiguous}
		}
		if h.LastSeen.After(best.LastSeen) {
			best = h
		}
	}
	return best, nil
}

// ActiveHosts returns the hosts that have an active entry of tool, each
// once, sorted.
func ActiveHosts(tool registry.Tool) []string {
	var hosts []string
	for _, h := range tool.Hosts {
		if h.Active {
			hosts = append(hosts, h.Host)
		}
	}
	slices.Sort(hosts)
	return slices.Compact(hosts)
}

// RandomHost returns one of ActiveHosts(tool), chosen uniformly with r
// (math/rand/v2's top-level generator if r is nil), or ErrNoHosts. Each
// host counts once, however many entries it has.
func RandomHost(tool registry.Tool, r *rand.Rand) (string, error) {
	hosts := ActiveHosts(tool)
	if len(hosts) == 0 {
		return "", &HostError{Tool: tool.Name, Err: ErrNoHosts}
	}
	if r == nil {
		return hosts[rand.IntN(len(hosts))], nil
	}
	return hosts[r.IntN(len(hosts))], nil
}

// stats.go gives the registry's counts (Stats): what a start-up log line,
// a health detail or a metrics scrape reads, computed from the indexes
// under the read lock, without encoding anything.

package registry

// Stats are counts of what the registry holds.
type Stats struct {
	Instances int `json:"instances"` // records, active or not
	Active    int `json:"active"`    // active instances
	Tools     int `json:"tools"`     // distinct tool names
	Hosts     int `json:"hosts"`     // distinct (host, agent name) pairs
}

// Stats returns the registry's counts. Its cost is one step per record.
func (r *Registry) Stats() Stats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	now := r.clock()
	st := Stats{Instances: len(r.v.insts), Tools: len(r.v.tools), Hosts: len(r.v.hosts)}
	for _, in := range r.v.insts {
		if in.activeAt(now) {
			st.Active++
		}
	}
	return st
}

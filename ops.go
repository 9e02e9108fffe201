// ops.go gives the programs that serve a registry what their operators'
// endpoints need of it beyond the HTTP API: RequireRead, the read guard as
// middleware (for /metrics next to the registry), and ClusterRevision, the
// revision a replica's view has applied.

package registry

import "net/http"

// RequireRead returns h guarded as the registry's reads are: with
// Options.ReadAuth, a request needs an identity with the role read, agent
// or admin, and is answered 403 (or 429 after too many wrong keys) as a
// read would be, and counted among the refusals. Without ReadAuth it
// returns h itself.
func (r *Registry) RequireRead(h http.Handler) http.Handler {
	if !r.opts.ReadAuth {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if _, ok := r.guard(w, req, RoleRead|RoleAgent|RoleAdmin, "read "+req.URL.Path, ""); ok {
			h.ServeHTTP(w, req)
		}
	})
}

// ClusterRevision returns the Cluster revision that a replica's view has
// applied (its reads answer as of that revision), and false for a registry
// without a Cluster.
func (r *Registry) ClusterRevision() (uint64, bool) { return r.w.revision() }

// ClusterLag returns how many revisions a replica's view is behind the
// newest revision its Cluster has heard of from the backend, if the
// Cluster can say (ClusterHead; store/etcd's can), and false otherwise.
// It stays near 0 while the change stream keeps up; a stalled stream shows
// as a lag that grows with the writes of other replicas that this one
// hears of (its own writes and keep-alives carry the revision).
func (r *Registry) ClusterLag() (uint64, bool) { return r.w.lag() }

// export_sshconfig.go writes the fleet as an ssh_config file (GET
// /export/ssh-config): one Host block per host, for ssh -F FILE or an
// Include in ~/.ssh/config.

package registry

import (
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// handleSSHConfig answers GET /export/ssh-config: per host, "Host NAME",
// "HostName NAME" and, with ?user=, "User USER". ssh_config splits on
// white space, reads '#' as a comment, quotes with '"', and '*', '?', '!'
// and ',' are patterns in a Host line: only plain host names (letters,
// digits, '.', '_', '-', or an IP address) are written, the others are left
// out and counted in the log, and the user must be a plain user name.
func (r *Registry) handleSSHConfig(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveFleet(w, req, "ssh-config", "text/plain; charset=utf-8", "runspec_ssh_config", r.writeSSHConfig)
}

const sshConfigHead = "# The hosts of a runspec registry (GET /export/ssh-config): use it with\n" +
	"# ssh -F FILE HOST, or Include it from ~/.ssh/config.\n"

// writeSSHConfig writes the file, a host block at a time.
func (r *Registry) writeSSHConfig(s *chunker, q fleetQuery, om *omissions) (int, bool) {
	written := 0
	s.buf = append(s.buf, sshConfigHead...)
	ok := r.eachHost(s, q.f, func(h *fleetHost) bool {
		written++
		s.buf = append(s.buf, "\nHost "...)
		s.buf = append(s.buf, h.host...)
		s.buf = append(s.buf, "\n\tHostName "...)
		s.buf = append(s.buf, h.host...)
		s.buf = append(s.buf, '\n')
		if q.user != "" {
			s.buf = append(s.buf, "\tUser "...)
			s.buf = append(s.buf, q.user...)
			s.buf = append(s.buf, '\n')
		}
		return true
	}, func() { om.hosts++ })
	return written, ok
}

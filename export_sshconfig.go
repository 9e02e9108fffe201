// export_sshconfig.go writes the fleet as an ssh_config file (GET
// /export/ssh-config): one Host block per host, for ssh -F FILE or an
// Include in ~/.ssh/config.

package registry

import (
	"bytes"
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
	hosts, user, idx, om, ok := r.readFleet(w, req)
	if !ok {
		return
	}
	r.logOmissions("ssh-config", om, len(hosts))
	var buf bytes.Buffer
	buf.WriteString("# The hosts of a runspec registry (GET /export/ssh-config): use it with\n" +
		"# ssh -F FILE HOST, or Include it from ~/.ssh/config.\n")
	for _, h := range hosts {
		buf.WriteString("\nHost " + h.host + "\n\tHostName " + h.host + "\n")
		if user != "" {
			buf.WriteString("\tUser " + user + "\n")
		}
	}
	r.writeExport(w, req, idx, "text/plain; charset=utf-8", "runspec_ssh_config", &buf)
}

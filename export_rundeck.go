// export_rundeck.go writes the fleet as a Rundeck resource model (GET
// /export/rundeck): a map keyed by node name, as JSON (resourcejson) or
// YAML (resourceyaml, with ?format=yaml or Accept: application/yaml). The
// YAML is written here, every scalar double-quoted and escaped, rather
// than with a YAML library: the root module stays light, and a resource
// model needs nothing more.

package registry

import (
	"bytes"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

// rundeckNode is one node of the resource model.
type rundeckNode struct {
	Nodename string `json:"nodename"`
	Hostname string `json:"hostname"`
	Username string `json:"username,omitempty"`
	Tags     string `json:"tags"`
}

// handleRundeck answers GET /export/rundeck. A node per host, named for
// it; username is ?user= (left out without it); tags are the host's agent
// names and tool names, comma-separated, each once. A name that a tag
// cannot carry (a comma, which separates tags, surrounding white space,
// which Rundeck trims, "${", which Rundeck reads as a property
// reference, or a character that YAML cannot hold) is left out of the
// tags, and hosts that are not plain host names are left out; both are
// counted in the log.
func (r *Registry) handleRundeck(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	yaml, err := rundeckYAML(req)
	if err != nil {
		writeInvalid(w, errValue([]string{"query", "format"}, "%v", err))
		return
	}
	hosts, user, idx, om, ok := r.readFleet(w, req)
	if !ok {
		return
	}
	nodes := make([]rundeckNode, 0, len(hosts))
	for _, h := range hosts {
		var tags []string
		seen := map[string]bool{}
		for _, names := range [][]string{h.agents, h.tools} {
			for _, n := range names {
				if seen[n] {
					continue
				}
				seen[n] = true
				if !tagFits(n) {
					om.names++
					continue
				}
				tags = append(tags, n)
			}
		}
		nodes = append(nodes, rundeckNode{Nodename: h.host, Hostname: h.host, Username: user, Tags: strings.Join(tags, ",")})
	}
	r.logOmissions("rundeck", om, len(hosts))
	var buf bytes.Buffer
	if yaml {
		writeRundeckYAML(&buf, nodes)
		r.writeExport(w, req, idx, "application/yaml", "", &buf)
		return
	}
	byName := make(map[string]rundeckNode, len(nodes))
	for _, n := range nodes {
		byName[n.Nodename] = n
	}
	b, err := marshal(byName)
	if err != nil {
		r.writeError(w, err, "")
		return
	}
	buf.Write(b)
	buf.WriteByte('\n')
	r.writeExport(w, req, idx, "application/json", "", &buf)
}

// errFormat is the message of a ?format= that is neither json nor yaml.
type errFormat string

func (e errFormat) Error() string { return string(e) }

// rundeckYAML reports whether the request asks for YAML: ?format=yaml, or
// without ?format an Accept header that prefers a YAML type to JSON.
func rundeckYAML(req *http.Request) (bool, error) {
	switch f := req.URL.Query().Get("format"); f {
	case "yaml":
		return true, nil
	case "json":
		return false, nil
	case "":
	default:
		return false, errFormat("must be json or yaml, not " + strconv.Quote(f))
	}
	yamlQ, jsonQ := -1.0, -1.0
	for _, part := range strings.Split(req.Header.Get("Accept"), ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if s, ok := params["q"]; ok {
			if v, err := strconv.ParseFloat(s, 64); err == nil {
				q = v
			}
		}
		switch mt {
		case "application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml":
			yamlQ = max(yamlQ, q)
		case "application/json":
			jsonQ = max(jsonQ, q)
		}
	}
	return yamlQ > 0 && yamlQ > jsonQ, nil
}

// tagFits reports whether a name can be one Rundeck tag.
func tagFits(s string) bool {
	if s == "" || strings.TrimSpace(s) != s || strings.ContainsRune(s, ',') || strings.Contains(s, "${") {
		return false
	}
	for _, c := range s {
		if !yamlPrintable(c) {
			return false
		}
	}
	return true
}

// writeRundeckYAML writes the nodes as a YAML mapping keyed by node name.
func writeRundeckYAML(buf *bytes.Buffer, nodes []rundeckNode) {
	if len(nodes) == 0 {
		buf.WriteString("{}\n")
		return
	}
	for _, n := range nodes {
		buf.WriteString(yamlQuote(n.Nodename) + ":\n")
		buf.WriteString("  nodename: " + yamlQuote(n.Nodename) + "\n")
		buf.WriteString("  hostname: " + yamlQuote(n.Hostname) + "\n")
		if n.Username != "" {
			buf.WriteString("  username: " + yamlQuote(n.Username) + "\n")
		}
		buf.WriteString("  tags: " + yamlQuote(n.Tags) + "\n")
	}
}

// yamlQuote writes s as a YAML double-quoted scalar, which YAML 1.1 and
// 1.2 read the same: '"' and '\' escaped, and every character that YAML
// does not print as itself (controls, line and paragraph separators, NEL,
// the byte order mark, non-characters) as \uXXXX or \UXXXXXXXX. Invalid
// UTF-8 becomes U+FFFD.
func yamlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c == utf8.RuneError:
			b.WriteString(`\uFFFD`)
		case c == 0x85 || c == 0x2028 || c == 0x2029 || c == 0xFEFF || !yamlPrintable(c):
			if c > 0xFFFF {
				b.WriteString(`\U` + hex8(uint32(c)))
			} else {
				b.WriteString(`\u` + hex8(uint32(c))[4:])
			}
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// yamlPrintable reports whether YAML 1.1's printable set holds c, without
// its tab and line breaks (which a tag never holds).
func yamlPrintable(c rune) bool {
	return 0x20 <= c && c <= 0x7E || 0xA0 <= c && c <= 0xD7FF || 0xE000 <= c && c <= 0xFFFD || 0x10000 <= c && c <= 0x10FFFF
}

// hex8 writes v as eight hexadecimal digits.
func hex8(v uint32) string {
	const digits = "0123456789ABCDEF"
	var b [8]byte
	for i := 7; i >= 0; i-- {
		b[i] = digits[v&0xF]
		v >>= 4
	}
	return string(b[:])
}

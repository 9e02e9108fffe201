// export_rundeck.go writes the fleet as a Rundeck resource model (GET
// /export/rundeck): a map keyed by node name, as JSON (resourcejson) or
// YAML (resourceyaml, with ?format=yaml or Accept: application/yaml). The
// YAML is written here, every scalar double-quoted and escaped, rather
// than with a YAML library: the root module stays light, and a resource
// model needs nothing more.

package registry

import (
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

// handleRundeck answers GET /export/rundeck. A node per host, named for
// it; username is ?user= (left out without it); tags are the host's agent
// names and tool names, comma-separated, each once. A name that a tag
// cannot carry (a comma, which separates tags, surrounding white space,
// which Rundeck trims, "${", which Rundeck reads as a property
// reference, or a character that YAML cannot hold) is left out of the
// tags, and hosts that are not plain host names are left out; both are
// counted in the log. Nodes are written in host order, a map keyed by
// node name as encoding/json sorts one.
func (r *Registry) handleRundeck(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	yaml, err := rundeckYAML(req)
	if err != nil {
		writeInvalid(w, errValue([]string{"query", "format"}, "%v", err))
		return
	}
	if yaml {
		r.serveFleet(w, req, "rundeck", "application/yaml", "", r.writeRundeckYAML)
		return
	}
	r.serveFleet(w, req, "rundeck", "application/json", "", r.writeRundeckJSON)
}

// rundeckTags calls tag for each name of h that a tag can carry, agents
// then tools, each once, counting the others in om.
func rundeckTags(h *fleetHost, om *omissions, tag func(i int, name string)) {
	n := 0
	each := func(name string) {
		if !tagFits(name) {
			om.names++
			return
		}
		tag(n, name)
		n++
	}
	for _, a := range h.agents {
		each(a)
	}
	for _, t := range h.tools {
		if _, agent := slices.BinarySearch(h.agents, t); !agent {
			each(t)
		}
	}
}

// writeRundeckJSON writes the resource model as JSON (resourcejson).
func (r *Registry) writeRundeckJSON(s *chunker, q fleetQuery, om *omissions) (int, bool) {
	written := 0
	s.buf = append(s.buf, '{')
	ok := r.eachHost(s, q.f, func(h *fleetHost) bool {
		if written > 0 {
			s.buf = append(s.buf, ',')
		}
		written++
		b := appendJSON(s.buf, h.host)
		b = append(b, `:{"nodename":`...)
		b = appendJSON(b, h.host)
		b = append(b, `,"hostname":`...)
		b = appendJSON(b, h.host)
		if q.user != "" {
			b = append(b, `,"username":`...)
			b = appendJSON(b, q.user)
		}
		b = append(b, `,"tags":"`...)
		rundeckTags(h, om, func(i int, name string) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONBody(b, name) // ',' needs no escape: the escaped tags joined are the joined tags escaped
		})
		s.buf = append(b, `"}`...)
		return true
	}, func() { om.hosts++ })
	if !ok {
		return written, false
	}
	s.buf = append(s.buf, "}\n"...)
	return written, true
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

// writeRundeckYAML writes the resource model as YAML (resourceyaml), a
// mapping keyed by node name; "{}" when it has no node.
func (r *Registry) writeRundeckYAML(s *chunker, q fleetQuery, om *omissions) (int, bool) {
	written := 0
	ok := r.eachHost(s, q.f, func(h *fleetHost) bool {
		written++
		b := appendYAMLQuote(s.buf, h.host)
		b = append(b, ":\n  nodename: "...)
		b = appendYAMLQuote(b, h.host)
		b = append(b, "\n  hostname: "...)
		b = appendYAMLQuote(b, h.host)
		if q.user != "" {
			b = append(b, "\n  username: "...)
			b = appendYAMLQuote(b, q.user)
		}
		b = append(b, "\n  tags: \""...)
		rundeckTags(h, om, func(i int, name string) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendYAMLBody(b, name) // as in JSON: ',' is printed as itself
		})
		s.buf = append(b, "\"\n"...)
		return true
	}, func() { om.hosts++ })
	if ok && written == 0 {
		s.buf = append(s.buf, "{}\n"...)
	}
	return written, ok
}

// yamlQuote writes s as a YAML double-quoted scalar, which YAML 1.1 and
// 1.2 read the same: '"' and '\' escaped, and every character that YAML
// does not print as itself (controls, line and paragraph separators, NEL,
// the byte order mark, non-characters) as \uXXXX or \UXXXXXXXX. Invalid
// UTF-8 becomes U+FFFD.
func yamlQuote(s string) string { return string(appendYAMLQuote(nil, s)) }

// appendYAMLQuote appends s as yamlQuote writes it.
func appendYAMLQuote(buf []byte, s string) []byte {
	buf = append(buf, '"')
	buf = appendYAMLBody(buf, s)
	return append(buf, '"')
}

// appendYAMLBody is appendYAMLQuote without the quotes.
func appendYAMLBody(buf []byte, s string) []byte {
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			buf = append(buf, '\\', byte(c))
		case c == utf8.RuneError:
			buf = append(buf, `\uFFFD`...)
		case c == 0x85 || c == 0x2028 || c == 0x2029 || c == 0xFEFF || !yamlPrintable(c):
			if c > 0xFFFF {
				buf = append(buf, `\U`...)
				buf = appendHex(buf, uint32(c), 8)
			} else {
				buf = append(buf, `\u`...)
				buf = appendHex(buf, uint32(c), 4)
			}
		default:
			buf = utf8.AppendRune(buf, c)
		}
	}
	return buf
}

// yamlPrintable reports whether YAML 1.1's printable set holds c, without
// its tab and line breaks (which a tag never holds).
func yamlPrintable(c rune) bool {
	return 0x20 <= c && c <= 0x7E || 0xA0 <= c && c <= 0xD7FF || 0xE000 <= c && c <= 0xFFFD || 0x10000 <= c && c <= 0x10FFFF
}

// appendHex appends the n last hexadecimal digits of v, in capitals.
func appendHex(buf []byte, v uint32, n int) []byte {
	const digits = "0123456789ABCDEF"
	for i := n - 1; i >= 0; i-- {
		buf = append(buf, digits[v>>(4*i)&0xF])
	}
	return buf
}

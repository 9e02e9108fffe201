// export.go writes the /hosts entries as session files for SSH clients:
// SuperPuTTY's XML and MobaXterm's .mxtsessions, streamed a chunk at a time
// as listings are.

package registry

import (
	"encoding/xml"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/julienschmidt/httprouter"
)

// serveExport answers an export of the /hosts entries. An entry that the
// format cannot represent (a separator of the format in its host, name or
// user) is left out, never written in a way that changes another field,
// and the omissions are counted in a log line.
func (r *Registry) serveExport(w http.ResponseWriter, req *http.Request, contentType, filename string, f exportFormat) {
	q, errs := parseQuery(req, true)
	if q.user != "" {
		if fe := checkText(q.user, "query", "user"); fe != nil {
			errs = append(errs, *fe)
		} else if !f.fits(q.user) || strings.ContainsAny(q.user, " /") {
			fe := errValue([]string{"query", "user"}, "must be a plain user name (no space, '/', '#', '=')")
			errs = append(errs, fe)
		}
	}
	if errs != nil {
		writeInvalid(w, errs...)
		return
	}
	q.f.Host, q.f.Name = "", ""
	idx := r.block(req.Context(), topic{kind: topicAll}, q.w, func() uint64 { return r.v.index })
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	var n exportCounts
	r.serveShared(r.newAnswer(w, req, idx, contentType, 0), q.w.on, func(s *chunker) bool {
		n = exportCounts{}
		return r.list(s, func() cursorIndex { return exportIndex{r.hosts(q.f, false).(groupIndex), f, q.user, &n} }, "", "", f.frame)
	})
	if n.left > 0 {
		r.log.Warn("export: entries left out, their host or name cannot be written in this format",
			"format", f.name, "left_out", n.left, "written", n.written)
	}
}

// An exportFormat is a session file format: what its fields may hold, and
// how it is written.
type exportFormat struct {
	name  string
	fits  func(field string) bool // the field can be written without changing another
	frame frame                   // what comes before, between and after the entries
	entry func(buf []byte, host, name, user string) []byte
}

var (
	superPuTTY = exportFormat{"superputty", xmlFits, frame{superPuTTYHead, "", "</ArrayOfSessionData>\n"}, appendSuperPuTTY}
	mobaXterm  = exportFormat{"mobaxterm", mobaFits, frame{"[Bookmarks]\nSubRep=runspec\nImgNum=42\n\n", "", ""}, appendMobaXterm}
)

// exportCounts are the entries an export wrote and left out.
type exportCounts struct{ written, left int }

// exportIndex is the /hosts entries as an export writes them, each as an
// entry of its format, or left out (and counted) if the format cannot hold
// its host or name.
type exportIndex struct {
	groupIndex
	format exportFormat
	user   string
	n      *exportCounts
}

func (x exportIndex) write(s *chunker, i int) bool {
	in := x.groups[i].pick(x.f, s.now)
	if !x.format.fits(in.host) || !x.format.fits(in.name) || strings.ContainsAny(in.host, " /") {
		x.n.left++
		return true
	}
	x.n.written++
	s.buf = x.format.entry(s.buf, in.host, in.name, x.user)
	return true
}

// xmlFits reports whether s is text that XML 1.0 can hold (control
// characters are refused by the protocol's rules already) and holds no "/",
// which SuperPuTTY's SessionId uses as its folder separator.
func xmlFits(s string) bool {
	for _, c := range s {
		if c == '/' || c == 0xFFFE || c == 0xFFFF || c == utf8.RuneError {
			return false
		}
	}
	return true
}

// mobaFits reports whether s can be a field of a MobaXterm bookmark line:
// no "#" (the field separator), no "=" (the end of the session name), no
// "[" or ";" that would start a section or a comment, no line break.
func mobaFits(s string) bool {
	return !strings.ContainsAny(s, "#=[];%\r\n") && strings.TrimSpace(s) == s
}

const superPuTTYHead = `<?xml version="1.0" encoding="utf-8"?>` + "\n" +
	`<ArrayOfSessionData xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SuperPuTTY">` + "\n"

// appendSuperPuTTY appends the SessionData of an entry.
func appendSuperPuTTY(buf []byte, host, name, user string) []byte {
	elem := func(buf []byte, tag, text string) []byte {
		buf = append(buf, "    <"...)
		buf = append(buf, tag...)
		buf = append(buf, '>')
		buf = appendXMLText(buf, text)
		buf = append(buf, "</"...)
		buf = append(buf, tag...)
		return append(buf, ">\n"...)
	}
	buf = append(buf, "  <SessionData>\n"...)
	buf = elem(buf, "Host", host)
	buf = append(buf, "    <Port>22</Port>\n    <Proto>SSH</Proto>\n    <PuttySession>Default Settings</PuttySession>\n"...)
	buf = elem(buf, "SessionId", "runspec/"+name+"/"+host)
	buf = elem(buf, "SessionName", name+" ("+host+")")
	buf = elem(buf, "Username", user)
	return append(buf, "  </SessionData>\n"...)
}

// appendXMLText appends s escaped as xml.EscapeText escapes it.
func appendXMLText(buf []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '&' || c == '\'' || c == '<' || c == '>' {
			w := appender{buf}
			xml.EscapeText(&w, []byte(s))
			return w.b
		}
	}
	return append(buf, s...)
}

// appender is an io.Writer that appends to b.
type appender struct{ b []byte }

func (a *appender) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}

// appendMobaXterm appends the bookmark line of an entry.
func appendMobaXterm(buf []byte, host, name, user string) []byte {
	buf = append(buf, name...)
	buf = append(buf, " ("...)
	buf = append(buf, host...)
	buf = append(buf, ") =#109#0#"...)
	buf = append(buf, host...)
	buf = append(buf, "#22#"...)
	buf = append(buf, user...)
	return append(buf, "##-1#0#0#0#1080##0#0#0#-1#0#0#0#0\n"...)
}

func (r *Registry) handleSuperPuTTY(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveExport(w, req, "application/xml", "runspec-sessions.xml", superPuTTY)
}

func (r *Registry) handleMobaXterm(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveExport(w, req, "text/plain; charset=utf-8", "runspec.mxtsessions", mobaXterm)
}

// export.go writes the /hosts entries as session files for SSH clients:
// SuperPuTTY's XML and MobaXterm's .mxtsessions.

package registry

import (
	"bytes"
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
	hosts, _, err := r.Hosts(req.Context(), q.f)
	if err != nil {
		r.writeError(w, err, "")
		return
	}
	kept := hosts[:0]
	for _, h := range hosts {
		if f.fits(h.Host) && f.fits(h.Name) && !strings.ContainsAny(h.Host, " /") {
			kept = append(kept, h)
		}
	}
	if left := len(hosts) - len(kept); left > 0 {
		r.log.Warn("export: entries left out, their host or name cannot be written in this format",
			"format", f.name, "left_out", left, "written", len(kept))
	}
	var buf bytes.Buffer
	f.write(&buf, kept, q.user)
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	a := r.newAnswer(w, req, idx, contentType, 0)
	a.buf = buf.Bytes()
	a.finish(http.StatusOK)
}

// An exportFormat is a session file format: what its fields may hold, and
// how it is written.
type exportFormat struct {
	name  string
	fits  func(field string) bool // the field can be written without changing another
	write func(buf *bytes.Buffer, hosts []Host, user string)
}

var (
	superPuTTY = exportFormat{"superputty", xmlFits, writeSuperPuTTY}
	mobaXterm  = exportFormat{"mobaxterm", mobaFits, writeMobaXterm}
)

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

// writeSuperPuTTY writes hosts as a SuperPuTTY sessions document.
func writeSuperPuTTY(buf *bytes.Buffer, hosts []Host, user string) {
	buf.WriteString(`<?xml version="1.0" encoding="utf-8"?>` + "\n")
	buf.WriteString(`<ArrayOfSessionData xmlns:i="http://www.w3.org/2001/XMLSchema-instance" xmlns="http://schemas.datacontract.org/2004/07/SuperPuTTY">` + "\n")
	elem := func(name, text string) {
		buf.WriteString("    <" + name + ">")
		xml.EscapeText(buf, []byte(text))
		buf.WriteString("</" + name + ">\n")
	}
	for _, h := range hosts {
		buf.WriteString("  <SessionData>\n")
		elem("Host", h.Host)
		elem("Port", "22")
		elem("Proto", "SSH")
		elem("PuttySession", "Default Settings")
		elem("SessionId", "runspec/"+h.Name+"/"+h.Host)
		elem("SessionName", h.Name+" ("+h.Host+")")
		elem("Username", user)
		buf.WriteString("  </SessionData>\n")
	}
	buf.WriteString("</ArrayOfSessionData>\n")
}

// writeMobaXterm writes hosts as a MobaXterm .mxtsessions file.
func writeMobaXterm(buf *bytes.Buffer, hosts []Host, user string) {
	buf.WriteString("[Bookmarks]\nSubRep=runspec\nImgNum=42\n\n")
	for _, h := range hosts {
		buf.WriteString(h.Name + " (" + h.Host + ") =#109#0#" + h.Host + "#22#" + user + "##-1#0#0#0#1080##0#0#0#-1#0#0#0#0\n")
	}
}

func (r *Registry) handleSuperPuTTY(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveExport(w, req, "application/xml", "runspec-sessions.xml", superPuTTY)
}

func (r *Registry) handleMobaXterm(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveExport(w, req, "text/plain; charset=utf-8", "runspec.mxtsessions", mobaXterm)
}

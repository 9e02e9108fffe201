// export.go writes the /hosts entries as session files for SSH clients:
// SuperPuTTY's XML and MobaXterm's .mxtsessions.

package registry

import (
	"bytes"
	"encoding/xml"
	"net/http"

	"github.com/julienschmidt/httprouter"
)

// serveExport answers an export of the /hosts entries.
func (r *Registry) serveExport(w http.ResponseWriter, req *http.Request, contentType, filename string,
	write func(buf *bytes.Buffer, hosts []Host, user string)) {
	q, errs := parseQuery(req, true)
	if q.user != "" {
		if fe := checkText(q.user, "query", "user"); fe != nil {
			errs = append(errs, *fe)
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
	var buf bytes.Buffer
	write(&buf, hosts, q.user)
	w.Header().Set("Content-Disposition", `attachment; filename="`+filename+`"`)
	a := r.newAnswer(w, req, idx, contentType, 0)
	a.buf = buf.Bytes()
	a.finish(http.StatusOK)
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
	r.serveExport(w, req, "application/xml", "runspec-sessions.xml", writeSuperPuTTY)
}

func (r *Registry) handleMobaXterm(w http.ResponseWriter, req *http.Request, _ httprouter.Params) {
	r.serveExport(w, req, "text/plain; charset=utf-8", "runspec.mxtsessions", writeMobaXterm)
}

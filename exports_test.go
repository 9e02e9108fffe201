// exports_test.go checks the session exports: GET /export/superputty
// (XML) and GET /export/mobaxterm (.mxtsessions), their filters and the
// validation of ?user=.

package registry_test

import (
	"encoding/xml"
	"mime"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// superPuTTY is the SuperPuTTY sessions document, with its namespace.
type superPuTTY struct {
	XMLName  xml.Name       `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY ArrayOfSessionData"`
	Attrs    []xml.Attr     `xml:",any,attr"`
	Sessions []sessionEntry `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionData"`
}

type sessionEntry struct {
	Host         string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Host"`
	Port         string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Port"`
	Proto        string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Proto"`
	PuttySession string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY PuttySession"`
	SessionID    string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionId"`
	SessionName  string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY SessionName"`
	Username     string `xml:"http://schemas.datacontract.org/2004/07/SuperPuTTY Username"`
}

func TestExportSuperPuTTY(t *testing.T) {
	session := func(name, host, user string) sessionEntry {
		return sessionEntry{Host: host, Port: "22", Proto: "SSH", PuttySession: "Default Settings",
			SessionID: "runspec/" + name + "/" + host, SessionName: name + " (" + host + ")", Username: user}
	}
	tests := []struct {
		target string
		want   []sessionEntry
	}{
		{"/export/superputty", []sessionEntry{session("ora", "db01", ""), session("app", "web<&>01", "")}},
		{"/export/superputty?user=oracle", []sessionEntry{session("ora", "db01", "oracle"), session("app", "web<&>01", "oracle")}},
		{"/export/superputty?user=" + "%3Cme%26you%3E", []sessionEntry{session("ora", "db01", "<me&you>"), session("app", "web<&>01", "<me&you>")}},
		{"/export/superputty?active=false", []sessionEntry{session("ora", "db01", ""), session("gone", "old01", ""), session("app", "web<&>01", "")}},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			exportFleet.load(h)
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "application/xml" {
				t.Errorf("Content-Type = %q, want application/xml", rec.Header().Get("Content-Type"))
			}
			if _, params, err := mime.ParseMediaType(rec.Header().Get("Content-Disposition")); err != nil || params["filename"] != "runspec-sessions.xml" ||
				!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
				t.Errorf("Content-Disposition = %q, want an attachment runspec-sessions.xml", rec.Header().Get("Content-Disposition"))
			}
			body := rec.Body.String()
			if !strings.HasPrefix(body, `<?xml version="1.0" encoding="utf-8"?>`) {
				t.Errorf("body does not start with the XML declaration: %q", body)
			}
			if strings.Contains(body, "web<&>01") {
				t.Errorf("host name not escaped: %s", body)
			}
			var doc superPuTTY
			if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("xml: %v\n%s", err, body)
			}
			if !slices.ContainsFunc(doc.Attrs, func(a xml.Attr) bool {
				return a.Name == xml.Name{Space: "xmlns", Local: "i"} && a.Value == "http://www.w3.org/2001/XMLSchema-instance"
			}) {
				t.Errorf("root lacks xmlns:i: %v", doc.Attrs)
			}
			slices.SortFunc(doc.Sessions, func(a, b sessionEntry) int { return strings.Compare(a.SessionID, b.SessionID) })
			slices.SortFunc(tt.want, func(a, b sessionEntry) int { return strings.Compare(a.SessionID, b.SessionID) })
			if diff := cmp.Diff(tt.want, doc.Sessions); diff != "" {
				t.Errorf("sessions mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportMobaXterm(t *testing.T) {
	line := func(name, host, user string) string {
		return name + " (" + host + ") =#109#0#" + host + "#22#" + user + "##-1#0#0#0#1080##0#0#0#-1#0#0#0#0"
	}
	const head = "[Bookmarks]\nSubRep=runspec\nImgNum=42\n\n"
	tests := []struct {
		name   string
		setup  func(h *harness)
		target string
		want   string
	}{
		{"empty", func(*harness) {}, "/export/mobaxterm", head},
		{
			"one host", func(h *harness) { h.register("b", "ora", "db01") },
			"/export/mobaxterm?user=oracle", head + line("ora", "db01", "oracle") + "\n",
		},
		{
			"no user", func(h *harness) { h.register("b", "ora", "db01") },
			"/export/mobaxterm", head + line("ora", "db01", "") + "\n",
		},
		{
			"inactive hosts left out by default", exportFleet.load,
			"/export/mobaxterm", head + line("ora", "db01", "") + "\n" + line("app", "web<&>01", "") + "\n",
		},
		{
			"active=false", exportFleet.load,
			"/export/mobaxterm?active=false&user=u",
			head + line("ora", "db01", "u") + "\n" + line("gone", "old01", "u") + "\n" + line("app", "web<&>01", "u") + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, registry.Options{})
			tt.setup(h)
			rec := h.must(http.StatusOK, "GET", tt.target, "")
			if mt, _, err := mime.ParseMediaType(rec.Header().Get("Content-Type")); err != nil || mt != "text/plain" {
				t.Errorf("Content-Type = %q, want text/plain", rec.Header().Get("Content-Type"))
			}
			if _, params, err := mime.ParseMediaType(rec.Header().Get("Content-Disposition")); err != nil || params["filename"] != "runspec.mxtsessions" ||
				!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
				t.Errorf("Content-Disposition = %q, want an attachment runspec.mxtsessions", rec.Header().Get("Content-Disposition"))
			}
			// Entry order is not part of the protocol: compare the header
			// exactly and the entries as a set.
			got := rec.Body.String()
			if !strings.HasSuffix(got, "\n") || !strings.HasPrefix(got, head) {
				t.Fatalf("body %q does not start with %q and end with a newline", got, head)
			}
			sortEntries := func(s string) []string {
				lines := strings.Split(strings.TrimPrefix(s, head), "\n")
				slices.Sort(lines)
				return lines
			}
			if diff := cmp.Diff(sortEntries(tt.want), sortEntries(got)); diff != "" {
				t.Errorf("entries mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExportUserValidation(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("b", "ora", "db01")
	bad := []string{"a%0Ab", "a%0Db", "a%00b", "a%09b", "a%7Fb", "%C2%85", "%FF", strings.Repeat("u", 257)}
	for _, ep := range []string{"/export/superputty", "/export/mobaxterm"} {
		for _, u := range bad {
			t.Run(ep+"/"+u[:min(len(u), 10)], func(t *testing.T) {
				if diff := cmp.Diff([][]string{{"query", "user"}}, detailLocs(t, h.do("GET", ep+"?user="+u, ""))); diff != "" {
					t.Errorf("locs mismatch (-want +got):\n%s", diff)
				}
			})
		}
		t.Run(ep+"/256 bytes", func(t *testing.T) {
			h.must(http.StatusOK, "GET", ep+"?user="+strings.Repeat("u", 256), "")
		})
	}
}

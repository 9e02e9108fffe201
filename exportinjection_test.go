// exportinjection_test.go feeds the session exports hosts, names and users
// that hold a format's separators, parses the files back as the SSH
// clients would (MobaXterm lines split on '#', SuperPuTTY XML decoded),
// and checks that every written entry shows exactly its registered fields,
// that hostile entries are absent rather than rewritten, that their number
// is logged, and that a hostile user is a 422.

package registry_test

import (
	"context"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// exportEntry is a (name, host) the fleet registers, and whether each
// format can write it.
type exportEntry struct {
	name, host     string
	moba, superpty bool
}

var exportEntries = []exportEntry{
	{"app", "web-1.example.com", true, true},
	{"db tools", "db-1", true, true},
	{`ops & <xml> "q"`, "x-1", true, true},
	// MobaXterm's separators: '#' between fields, " =" ends the session
	// name, '[' starts a section, ';' a comment, '%' a variable.
	{"app", "evil.example#2222#root##-1#0#", false, true},
	{"x =#109#0#evil#22#root", "h-2", false, true},
	{"app", "a[b]", false, true},
	{"sec;tion", "h-3", false, true},
	{"pct%n", "h-4", false, true},
	{" padded", "h-5", false, true},
	// SuperPuTTY's SessionId uses '/' as its folder separator; a host with
	// '/' or a space is no host for either.
	{"team/ops", "h-6", true, false},
	{"app", "evil/../x", false, false},
	{"app", "lead space", false, false},
}

// exportRegistry registers exportEntries and returns the registry and its log.
func exportRegistry(t *testing.T) (*registry.Registry, *logLines) {
	t.Helper()
	var log logLines
	reg, err := registry.New(registry.Options{Logger: log.logger()})
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range exportEntries {
		if err := reg.Register(context.Background(), registry.Registration{ID: fmt.Sprintf("e%d", i), Name: e.name, Version: "1", Host: e.host}); err != nil {
			t.Fatalf("Register %q on %q: %v", e.name, e.host, err)
		}
	}
	return reg, &log
}

// mobaFields are the '#' fields after "=" of a line for host and user.
func mobaFields(host, user string) []string {
	return []string{"", "109", "0", host, "22", user, "", "-1", "0", "0", "0", "1080", "", "0", "0", "0", "-1", "0", "0", "0", "0"}
}

func TestExportMobaXtermInjection(t *testing.T) {
	reg, log := exportRegistry(t)
	for _, user := range []string{"", "admin", "o'neil"} {
		t.Run("user="+user, func(t *testing.T) {
			rec := serveReq(reg, "GET", "/export/mobaxterm?user="+url.QueryEscape(user), "")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			text := rec.Body.String()
			if !strings.HasSuffix(text, "\n") {
				t.Errorf("no final newline")
			}
			lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
			if diff := cmp.Diff([]string{"[Bookmarks]", "SubRep=runspec", "ImgNum=42", ""}, lines[:min(4, len(lines))]); diff != "" {
				t.Fatalf("header mismatch (-want +got):\n%s", diff)
			}
			type line struct {
				Session string
				Fields  []string
			}
			var got, want []line
			for _, l := range lines[4:] {
				session, fields, ok := strings.Cut(l, "=")
				if !ok || strings.ContainsAny(fields, "=[;\r") || strings.HasPrefix(l, "[") {
					t.Errorf("line %q: not one session line", l)
				}
				got = append(got, line{session, strings.Split(fields, "#")})
			}
			for _, e := range exportEntries {
				if e.moba {
					want = append(want, line{e.name + " (" + e.host + ") ", mobaFields(e.host, user)})
				}
			}
			sortLines := func(ls []line) {
				slices.SortFunc(ls, func(a, b line) int { return strings.Compare(a.Session, b.Session) })
			}
			sortLines(got)
			sortLines(want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sessions mismatch (-want +got):\n%s", diff)
			}
		})
	}
	left := 0
	for _, e := range exportEntries {
		if !e.moba {
			left++
		}
	}
	if want := fmt.Sprintf("format=mobaxterm left_out=%d written=%d", left, len(exportEntries)-left); !strings.Contains(log.String(), want) {
		t.Errorf("log does not count the entries left out (%s):\n%s", want, log.String())
	}
}

// superPuTTYDoc is a SuperPuTTY sessions file as encoding/xml reads it.
type superPuTTYDoc struct {
	XMLName  xml.Name
	Sessions []superPuTTYSession `xml:"SessionData"`
}

type superPuTTYSession struct {
	Host, Port, Proto, PuttySession, SessionId, SessionName, Username string
}

func TestExportSuperPuTTYInjection(t *testing.T) {
	reg, log := exportRegistry(t)
	for _, user := range []string{"", "admin", "a&b<c>"} {
		t.Run("user="+user, func(t *testing.T) {
			rec := serveReq(reg, "GET", "/export/superputty?user="+url.QueryEscape(user), "")
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var doc superPuTTYDoc
			dec := xml.NewDecoder(strings.NewReader(rec.Body.String()))
			dec.Strict = true
			if err := dec.Decode(&doc); err != nil {
				t.Fatalf("not XML: %v\n%s", err, rec.Body)
			}
			if doc.XMLName != (xml.Name{Space: "http://schemas.datacontract.org/2004/07/SuperPuTTY", Local: "ArrayOfSessionData"}) {
				t.Errorf("root %v", doc.XMLName)
			}
			var want []superPuTTYSession
			for _, e := range exportEntries {
				if e.superpty {
					want = append(want, superPuTTYSession{Host: e.host, Port: "22", Proto: "SSH", PuttySession: "Default Settings",
						SessionId: "runspec/" + e.name + "/" + e.host, SessionName: e.name + " (" + e.host + ")", Username: user})
				}
			}
			byID := func(a, b superPuTTYSession) int { return strings.Compare(a.SessionId, b.SessionId) }
			slices.SortFunc(want, byID)
			slices.SortFunc(doc.Sessions, byID)
			if diff := cmp.Diff(want, doc.Sessions); diff != "" {
				t.Errorf("sessions mismatch (-want +got):\n%s", diff)
			}
			for _, s := range doc.Sessions {
				if strings.Count(s.SessionId, "/") != 2 {
					t.Errorf("SessionId %q: not runspec/{name}/{host}", s.SessionId)
				}
			}
		})
	}
	if !strings.Contains(log.String(), "format=superputty left_out=3") {
		t.Errorf("log does not count the 3 entries left out:\n%s", log.String())
	}
}

func TestExportHostileUser(t *testing.T) {
	reg, _ := exportRegistry(t)
	tests := []struct {
		format, user string
	}{
		{"mobaxterm", "root#2"},
		{"mobaxterm", "a=b"},
		{"mobaxterm", "x;y"},
		{"mobaxterm", "[s]"},
		{"mobaxterm", "a b"},
		{"mobaxterm", "a/b"},
		{"mobaxterm", "a\nb"},
		{"superputty", "a/b"},
		{"superputty", "a b"},
		{"superputty", "a\u202eb"},
		{"superputty", strings.Repeat("u", 257)},
	}
	for _, tt := range tests {
		t.Run(tt.format+"/"+tt.user, func(t *testing.T) {
			rec := serveReq(reg, "GET", "/export/"+tt.format+"?user="+url.QueryEscape(tt.user), "")
			if rec.Code != http.StatusUnprocessableEntity || !strings.Contains(rec.Body.String(), `"loc":["query","user"]`) {
				t.Errorf("status %d %s, want 422 naming query.user", rec.Code, rec.Body)
			}
		})
	}
}

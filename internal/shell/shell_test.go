// shell_test.go checks Quote and Join by their forms and by what a real
// shell makes of them.

package shell_test

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/internal/shell"
)

// hostile are values that try to escape their quotes.
var hostile = []string{
	"",
	"plain",
	"/usr/local/bin/deploy",
	"two words",
	"it's",
	"'",
	"''",
	`"`,
	`\`,
	`\'`,
	`'\''`,
	"$(id)",
	"${HOME}",
	"$HOME",
	"`id`",
	"; id",
	"a && id",
	"a || id",
	"a | id",
	"a\nid",
	"\n",
	"a\rb\tc",
	"*",
	"?",
	"[a]",
	"~",
	"~root",
	"#comment",
	"-rf",
	"--force",
	"-",
	"A=b",
	"!",
	"!!",
	"{a,b}",
	"a > /tmp/x",
	"< /etc/passwd",
	"&",
	"(id)",
	"héllo wörld",
	"日本語",
	"emoji 🙂",
	"\x01\x7f",
	"' ; touch /tmp/pwned ; '",
	`"'"'"'`,
}

func TestQuote(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "''"},
		{"plain", "plain"},
		{"/usr/local/bin/deploy", "/usr/local/bin/deploy"},
		{"a-b_c.d,e:f@g%h+i", "a-b_c.d,e:f@g%h+i"},
		{"-rf", "-rf"},
		{"two words", "'two words'"},
		{"it's", `'it'"'"'s'`},
		{"'", `''"'"''`},
		{"$(id)", "'$(id)'"},
		{"A=b", "'A=b'"},
		{"~", "'~'"},
		{"#x", "'#x'"},
		{"a\nb", "'a\nb'"},
		{"日本", "'日本'"},
	}
	for _, tt := range tests {
		if got := shell.Quote(tt.in); got != tt.want {
			t.Errorf("Quote(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestJoin(t *testing.T) {
	got := shell.Join([]string{"sudo", "-u", "oracle", "/opt/x y", "", "it's"})
	want := `sudo -u oracle '/opt/x y' '' 'it'"'"'s'`
	if got != want {
		t.Errorf("Join = %q, want %q", got, want)
	}
	if got := shell.Join(nil); got != "" {
		t.Errorf("Join(nil) = %q, want empty", got)
	}
	for _, w := range hostile {
		if got, want := shell.Join([]string{w}), shell.Quote(w); got != want {
			t.Errorf("Join([%q]) = %q, Quote = %q", w, got, want)
		}
	}
}

// shells are the POSIX shells found on this machine: the quoted words
// must mean the same to each.
func shells(t *testing.T) []string {
	t.Helper()
	var found []string
	for _, sh := range []string{"/bin/sh", "dash", "bash", "zsh", "ksh", "mksh", "busybox"} {
		if p, err := exec.LookPath(sh); err == nil {
			found = append(found, p)
		}
	}
	if len(found) == 0 {
		t.Skip("no POSIX shell found")
	}
	return found
}

// run has sh run line with printf '%s\0' in front, and returns the words
// printf received.
func run(t *testing.T, sh, line string) []string {
	t.Helper()
	args := []string{"-c", "printf '%s\\0' " + line}
	switch {
	case strings.HasSuffix(sh, "busybox"):
		args = append([]string{"sh"}, args...)
	case strings.HasSuffix(sh, "zsh"):
		args = append([]string{"--emulate", "sh"}, args...)
	}
	cmd := exec.CommandContext(t.Context(), sh, args...)
	cmd.Dir = t.TempDir() // a glob that escaped its quotes would match nothing here, or something visible
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", sh, line, err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("%s -c %q wrote to stderr: %s", sh, line, stderr.String())
	}
	if len(out) == 0 || out[len(out)-1] != 0 {
		t.Fatalf("%s -c %q: output %q does not end with NUL", sh, line, out)
	}
	return strings.Split(string(out[:len(out)-1]), "\x00")
}

// TestQuoteThroughShell feeds each quoted value to real shells and checks
// the bytes that arrive.
func TestQuoteThroughShell(t *testing.T) {
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			for _, v := range hostile {
				if got := run(t, sh, shell.Quote(v)); !cmp.Equal([]string{v}, got) {
					t.Errorf("Quote(%q) arrived as %q", v, got)
				}
			}
		})
	}
}

// TestJoinThroughShell checks that all the values in one command line
// arrive as separate words, byte for byte, and every byte value but NUL.
func TestJoinThroughShell(t *testing.T) {
	var all strings.Builder
	for c := 1; c < 256; c++ {
		all.WriteByte(byte(c))
	}
	words := append(append([]string(nil), hostile...), all.String())
	for _, sh := range shells(t) {
		t.Run(filepath.Base(sh), func(t *testing.T) {
			got := run(t, sh, shell.Join(words))
			if diff := cmp.Diff(words, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestQuoteTwice checks a command line quoted as one word of another, as
// su -c and sh -c need: the inner words arrive intact.
func TestQuoteTwice(t *testing.T) {
	inner := shell.Join([]string{"printf", `%s\0`, "it's", "$(id)", "a\nb", "`id`", ""})
	outer := shell.Join([]string{"sh", "-c", inner})
	for _, sh := range shells(t) {
		if strings.HasSuffix(sh, "busybox") {
			continue
		}
		out, err := exec.CommandContext(t.Context(), sh, "-c", outer).Output()
		if err != nil {
			t.Fatalf("%s -c %q: %v", sh, outer, err)
		}
		if want := "it's\x00$(id)\x00a\nb\x00`id`\x00\x00"; string(out) != want {
			t.Errorf("%s: inner words arrived as %q, want %q", sh, out, want)
		}
	}
}

func BenchmarkJoin(b *testing.B) {
	b.ReportAllocs()
	words := []string{"sudo", "-H", "-u", "oracle", "/usr/local/bin/deploy", "--environment", "staging", "--message", "it's done"}
	for b.Loop() {
		shell.Join(words)
	}
}

// FuzzJoin joins two words, each as the fuzzer makes it (NUL cut out: no
// argument can hold one), twice: the command line of sh -c, and that line
// quoted again as one word of another sh -c, as su -c needs. /bin/sh must
// hand printf exactly those words, with nothing run in between.
func FuzzJoin(f *testing.F) {
	for i, v := range hostile {
		f.Add(v, hostile[(i+1)%len(hostile)])
	}
	sh, err := exec.LookPath("/bin/sh")
	if err != nil {
		f.Skip("no /bin/sh")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		words := []string{strings.ReplaceAll(a, "\x00", ""), strings.ReplaceAll(b, "\x00", "")}
		if got := run(t, sh, shell.Join(words)); !cmp.Equal(words, got) {
			t.Fatalf("Join(%q) arrived as %q", words, got)
		}
		inner := shell.Join(append([]string{"printf", `%s\0`}, words...))
		out, err := exec.CommandContext(t.Context(), sh, "-c", shell.Join([]string{sh, "-c", inner})).Output()
		if err != nil {
			t.Fatalf("sh -c (sh -c %q): %v", inner, err)
		}
		if want := words[0] + "\x00" + words[1] + "\x00"; string(out) != want {
			t.Fatalf("quoted twice, %q arrived as %q", words, out)
		}
	})
}

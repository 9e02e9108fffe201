// escape_test.go checks printable, the one escaping helper of the command
// tree, with terminal escape sequences, C1 controls, bidi controls and
// invalid UTF-8, and that the commands print registry data through it: a
// record whose fields carry ESC sequences reaches the output escaped.

package main

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain text, é 日本 🙂 \\ / $(x)", "plain text, é 日本 🙂 \\ / $(x)"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"\x1b]0;owned title\x07", `\x1b]0;owned title\x07`},
		{"\x1b[2J\x1b[H", `\x1b[2J\x1b[H`},
		{"line\nnext\r\tcol", `line\nnext\r\tcol`},
		{"nul\x00 del\x7f", `nul\x00 del\x7f`},
		{"csi\u009b31m nel\u0085", `csi\u009b31m nel\u0085`},
		{"bidi\u202egnp.exe zero\u200bwidth\ufeff", `bidi\u202egnp.exe zero\u200bwidth\ufeff`},
		{"sep\u2028para\u2029", `sep\u2028para\u2029`},
		{"bad\xffutf8\xc3", `bad\xffutf8\xc3`},
		{"", ""},
	}
	for _, tt := range tests {
		got := printable(tt.in)
		if got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !terminalSafe(got) {
			t.Errorf("printable(%q) = %q still has a control character", tt.in, got)
		}
	}
}

// terminalSafe reports whether s is valid UTF-8 without control or
// invisible format characters, newlines and tabs aside.
func terminalSafe(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == '\n' || r == '\t' {
			continue
		}
		if r < 0x20 || r == 0x7f || escapedRune(r) {
			return false
		}
	}
	return true
}

func TestSafeError(t *testing.T) {
	base := errors.New("tool \x1b[2Jx not found")
	err := safeError(base)
	if err.Error() != `tool \x1b[2Jx not found` || !errors.Is(err, base) {
		t.Errorf("safeError: %q (is base: %v)", err, errors.Is(err, base))
	}
	if safeError(err) != err || safeError(nil) != nil {
		t.Error("safeError wraps twice, or wraps nil")
	}
	if st := exitStatus(3); !errors.As(safeError(st), new(exitStatus)) {
		t.Error("safeError hides an exitStatus")
	}
}

// TestCommandsEscapeRecords registers a tool whose description, command
// and other fields carry ESC sequences and prints it with each command
// that shows people registry data.
func TestCommandsEscapeRecords(t *testing.T) {
	r := newTestRegistry(t)
	const esc = "\x1b]0;pwned\x07\x1b[2J"
	r.add(testAgent{id: "a1", name: "ops", host: "web-1", tools: []string{
		`{"name":"deploy","description":"Deploy` + jsonEsc(esc) + `\nsecond line","x-command":"/bin/deploy` + jsonEsc(esc) + `","x-run-as":"ora` + jsonEsc(esc) + `"}`,
	}})
	ctx := t.Context()
	for _, args := range [][]string{
		{"tools"}, {"tools", "deploy"}, {"instances", "a1"}, {"which", "deploy"},
		{"run", "--host", "web-1", "deploy"},
		{"tools", "no" + esc + "such"},
		{"instances"}, {"hosts"}, // they show none of those fields
	} {
		shows := args[0] != "instances" || len(args) > 1
		shows = shows && args[0] != "hosts"
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			res := runCLI(ctx, t, append([]string{args[0], "--registry", r.url}, args[1:]...)...)
			for name, out := range map[string]string{"stdout": res.stdout, "stderr": res.stderr} {
				if !terminalSafe(out) {
					t.Errorf("%s has a control character: %q", name, out)
				}
			}
			// run's refusal quotes the field itself (Go's %q: \a for BEL).
			if shows && !strings.Contains(res.stdout+res.stderr, `\x1b]0;pwned\x07\x1b[2J`) && !strings.Contains(res.stderr, `\x1b]0;pwned\a\x1b[2J`) {
				t.Errorf("the escaped sequence is not shown:\nstdout %q\nstderr %q", res.stdout, res.stderr)
			}
		})
	}
}

// jsonEsc writes s for the inside of a JSON string.
func jsonEsc(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if c < 0x20 {
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[c>>4])
			b.WriteByte("0123456789abcdef"[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

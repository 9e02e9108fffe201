// escape.go holds the one helper that every command uses before it prints
// registry data (tool names, descriptions, commands, host names, labels,
// error messages that quote them) for people: control characters are
// escaped, so that a record cannot drive the terminal (move the cursor,
// rewrite the title, hide a line) or break a table's columns.

package main

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// printable returns s with every character that a terminal would act on
// written as an escape: \t, \n and \r, other C0 controls, DEL and C1
// controls as \xNN or \u00NN, invalid UTF-8 bytes as \xNN, and the
// invisible format characters that reorder or hide text (bidi controls,
// zero-width characters, U+2028 and U+2029) as \uNNNN. Everything else,
// backslashes included, stays as it is.
func printable(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case escapedRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether printable would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				return true
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 || escapedRune(r) {
			return true
		}
		i += size
	}
	return false
}

// escapedRune reports whether a rune above ASCII is escaped: a C1
// control, or a format or separator character that is invisible.
func escapedRune(r rune) bool {
	return 0x80 <= r && r <= 0x9f || unicode.Is(unicode.Cf, r) || r == 0x2028 || r == 0x2029
}

// printableError is an error whose message is printable: the commands
// return it so that kong's "error:" line cannot carry a control character
// from the registry. It unwraps to the original error.
type printableError struct{ err error }

func (e printableError) Error() string { return printable(e.err.Error()) }
func (e printableError) Unwrap() error { return e.err }

// safeError wraps err, if not nil and not already wrapped, in a
// printableError.
func safeError(err error) error {
	if err == nil || errors.As(err, new(printableError)) {
		return err
	}
	return printableError{err}
}

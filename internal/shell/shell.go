// Package shell quotes words for a POSIX shell: the one quoting helper of
// the repository. Every value that goes into a command line that a shell
// will read (a remote command run over ssh, a printed dry run) is quoted by
// Quote or Join, never by hand.
//
// The quoting is POSIX single quotes: inside them every byte stands for
// itself, so a quoted word reaches the program as exactly the bytes of the
// string, whatever it contains ($(…), backticks, ;, newlines, *). A single
// quote itself is written as '"'"' (close, a double-quoted quote, reopen).
// Words made only of characters that no POSIX shell treats specially are
// left bare, for readability.
//
// A NUL byte cannot be part of a program argument (argv is C strings):
// Quote keeps it, but the program would see the word cut there. Callers
// that build commands refuse NUL before quoting.
package shell

import "strings"

// Quote returns s as one word of a POSIX shell command line: a shell that
// reads the result passes exactly s to the program. The empty string
// becomes a pair of single quotes.
func Quote(s string) string {
	if s == "" {
		return "''"
	}
	if isBare(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	appendQuoted(&b, s)
	return b.String()
}

// Join quotes each word and joins them with single spaces: a shell that
// reads the result runs a command whose argv is exactly words.
func Join(words []string) string {
	var b strings.Builder
	n := len(words)
	for _, w := range words {
		n += len(w) + 2
	}
	b.Grow(n)
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		switch {
		case w == "":
			b.WriteString("''")
		case isBare(w):
			b.WriteString(w)
		default:
			appendQuoted(&b, w)
		}
	}
	return b.String()
}

// appendQuoted writes s in single quotes.
func appendQuoted(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for {
		i := strings.IndexByte(s, '\'')
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(`'"'"'`)
		s = s[i+1:]
	}
	b.WriteString(s)
	b.WriteByte('\'')
}

// isBare reports whether s can stand unquoted: it is made only of ASCII
// letters, digits and _ @ % + : , . / -, none of which a POSIX shell treats
// specially anywhere in a word. '=' is not among them (an unquoted A=b is an
// assignment when it comes first), nor '~' (expanded at the start of a
// word) nor '#' (a comment at the start of a word).
func isBare(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_', c == '@', c == '%', c == '+', c == ':', c == ',', c == '.', c == '/', c == '-':
		default:
			return false
		}
	}
	return true
}

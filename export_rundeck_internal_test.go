// export_rundeck_internal_test.go checks yamlQuote, the quoting of every
// YAML scalar of the Rundeck export, on characters that the export's own
// checks keep out of it today: quoting must hold whatever it is given.

package registry

import "testing"

func TestYAMLQuote(t *testing.T) {
	tests := map[string]string{
		"":             `""`,
		"web-1":        `"web-1"`,
		`say "hi" \ x`: `"say \"hi\" \\ x"`,
		"a\nb\tc\x1b":  `"a\u000Ab\u0009c\u001B"`,
		"\u0085\u2028": `"\u0085\u2028"`,
		"\u2029\ufeff": `"\u2029\uFEFF"`,
		"\u009b\u007f": `"\u009B\u007F"`,
		"\ufffe":       `"\uFFFE"`,
		"bad\xff":      `"bad\uFFFD"`,
		"é 日本 🙂":       `"é 日本 🙂"`,
		"{{ x }}: #":   `"{{ x }}: #"`,
	}
	for in, want := range tests {
		if got := yamlQuote(in); got != want {
			t.Errorf("yamlQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

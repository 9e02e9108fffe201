// record.go checks a tool's entry on a host before anything is built from
// it: the execution fields must be strings, the command one program path,
// the run-as user and the host plain names, the become method known and
// its flags on the method's allow-list. Quoting makes values inert; these
// checks refuse what quoting cannot make safe (a flag that changes who
// runs what, a host that ssh would read as an option).

package run

import (
	"net/netip"
	"strings"
	"unicode/utf8"

	registry "github.com/runspec/registry"
)

// maxName is the longest user or host name accepted, the protocol's limit
// for host names.
const maxName = 256

// execFields are an entry's execution fields, checked.
type execFields struct {
	command string
	runAs   string   // "" when the command runs as the SSH user
	method  string   // sudo, su, pbrun or dzdo; "" when runAs is ""
	flags   []string // the become flags, split into words
}

// checkEntry checks an entry and returns its execution fields. Every field
// present is checked, also those that would not be used (a become method
// without a run-as user): a record that does not make sense is refused.
func checkEntry(h registry.ToolHost) (execFields, error) {
	refuse := func(field string, f registry.ExecField, err error, reason string) error {
		return &FieldError{InstanceID: h.InstanceID, Field: field, Value: f.String(), Reason: reason, Err: err}
	}
	for _, f := range []struct {
		name string
		f    registry.ExecField
	}{
		{"x-command", h.Command}, {"x-run-as", h.RunAs},
		{"x-become-method", h.BecomeMethod}, {"x-become-flags", h.BecomeFlags},
	} {
		if f.f.Set && !f.f.IsString() {
			return execFields{}, refuse(f.name, f.f, ErrNotString, "the field is not a JSON string")
		}
	}
	if err := checkHost(h.Host); err != nil {
		return execFields{}, &FieldError{InstanceID: h.InstanceID, Field: "host", Value: h.Host, Reason: err.Error(), Err: ErrHost}
	}

	var e execFields
	e.command = h.Command.Value
	switch {
	case e.command == "":
		return execFields{}, refuse("x-command", h.Command, ErrCommand, "the tool has no x-command")
	case !plainText(e.command):
		return execFields{}, refuse("x-command", h.Command, ErrCommand, "it contains a control character or is not UTF-8")
	case e.command[0] == '-':
		return execFields{}, refuse("x-command", h.Command, ErrCommand, "it starts with '-' (sudo, su and env would read it as an option)")
	case strings.ContainsRune(e.command, '='):
		return execFields{}, refuse("x-command", h.Command, ErrCommand, "it contains '=' (sudo and env would read it as an environment assignment)")
	}

	e.runAs = h.RunAs.Value
	if e.runAs != "" && !plainName(e.runAs, true) {
		return execFields{}, refuse("x-run-as", h.RunAs, ErrRunAs,
			"a user name is letters, digits, '_', '.', '@' and '-', not starting with '-' or '.'")
	}

	method := h.BecomeMethod.Value
	switch method {
	case "", "sudo", "su", "pbrun", "dzdo":
	default:
		return execFields{}, refuse("x-become-method", h.BecomeMethod, ErrBecomeMethod, "the become method must be sudo, su, pbrun or dzdo")
	}
	if method == "" {
		method = "sudo" // a run-as user without a method means sudo
	}

	flags := h.BecomeFlags.Value
	if !plainText(flags) {
		return execFields{}, refuse("x-become-flags", h.BecomeFlags, ErrBecomeFlag, "it contains a control character or is not UTF-8")
	}
	words := strings.Fields(flags) // only spaces remain: control characters are refused above
	for _, w := range words {
		if !allowedFlag(method, w) {
			return execFields{}, refuse("x-become-flags", h.BecomeFlags, ErrBecomeFlag,
				"flag "+quoteWord(w)+" is not allowed for "+method+" (allowed: "+strings.Join(allowedFlags(method), " ")+")")
		}
	}
	if e.runAs != "" {
		e.method = method
		e.flags = words
	}
	return e, nil
}

// sameExec reports whether two entries would run the same thing: the
// execution fields are equal. When ToolHost gains an owner, it joins here.
func sameExec(a, b registry.ToolHost) bool {
	eq := func(x, y registry.ExecField) bool {
		return x.Set == y.Set && x.Value == y.Value && string(x.Raw) == string(y.Raw)
	}
	// Entries of two owners differ even with the same fields: one of them
	// may be an impostor on that host.
	return a.Owner == b.Owner && eq(a.Command, b.Command) && eq(a.RunAs, b.RunAs) &&
		eq(a.BecomeMethod, b.BecomeMethod) && eq(a.BecomeFlags, b.BecomeFlags)
}

// The become flags allowed, per method: flags that change neither the
// user nor the command, take no value, and do not detach the command
// from the session (which would defeat cancellation). Everything else is
// refused, also flags that would be harmless: the lists are meant to stay
// short.
//
//	sudo   -H --set-home  -n --non-interactive  -S --stdin
//	       -k --reset-timestamp  -P --preserve-groups
//	       (short ones may be combined: -Hn)
//	su     -l --login
//	pbrun  -n --null_input  -p --pipe_mode
//	dzdo   -H  -n
//
// Refused, for instance: sudo -u -g -s -i -E -C -D -R -b -A -T -p --
// (another user or group, a shell, the caller's environment, other file
// descriptors or directories, the background, a program to ask for the
// password, values); su -c -s -m -p -g -G -P - (another command or shell,
// the caller's environment, groups, a terminal; write -l for -); pbrun -u
// -h -b -l -d (another user or host, the background, local mode, debug
// values).
func allowedFlags(method string) []string {
	switch method {
	case "sudo":
		return []string{"-H", "--set-home", "-n", "--non-interactive", "-S", "--stdin",
			"-k", "--reset-timestamp", "-P", "--preserve-groups"}
	case "su":
		return []string{"-l", "--login"}
	case "pbrun":
		return []string{"-n", "--null_input", "-p", "--pipe_mode"}
	case "dzdo":
		return []string{"-H", "-n"}
	}
	return nil
}

// allowedFlag reports whether word is an allowed become flag of method.
func allowedFlag(method, word string) bool {
	for _, f := range allowedFlags(method) {
		if word == f {
			return true
		}
	}
	if method == "sudo" && len(word) > 2 && word[0] == '-' && word[1] != '-' {
		// Combined short flags, as sudo's getopt reads them.
		for _, c := range word[1:] {
			if !strings.ContainsRune("HnSkP", c) {
				return false
			}
		}
		return true
	}
	return false
}

// checkHost checks that h is a host name or IP address that ssh reads as
// its destination and nothing else: not an option (-oProxyCommand=…),
// without a user (@), a port or a URI (ssh://), and without the % of
// ssh's tokens.
func checkHost(h string) error {
	switch {
	case h == "":
		return errorString("the host is empty")
	case len(h) > maxName:
		return errorString("the host is longer than 256 bytes")
	case h[0] == '-':
		return errorString("it starts with '-' (ssh would read it as an option)")
	}
	if strings.ContainsRune(h, ':') {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() && a.Zone() == "" {
			return nil
		}
		return errorString("a host name is letters, digits, '.', '_' and '-', or an IP address")
	}
	if !plainName(h, false) {
		return errorString("a host name is letters, digits, '.', '_' and '-', or an IP address")
	}
	return nil
}

// plainName reports whether s is made of ASCII letters, digits, '_', '.'
// and '-' (and '@' if at is true, for user@domain accounts), does not
// start with '-' or '.', and is at most maxName bytes.
func plainName(s string, at bool) bool {
	if s == "" || len(s) > maxName || s[0] == '-' || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		case c == '@' && at:
		default:
			return false
		}
	}
	return true
}

// plainText reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1).
func plainText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || (0x7f <= r && r <= 0x9f) {
			return false
		}
	}
	return true
}

// quoteWord shows a word in a message.
func quoteWord(w string) string { return "'" + w + "'" }

// errorString is a constant error text.
type errorString string

func (e errorString) Error() string { return string(e) }

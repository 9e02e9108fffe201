// Package rules holds the checks that say whether a value from a registry
// record can go into a command line or a client's configuration as
// itself and nothing more: a plain host name, a plain user name, text
// without control characters, the become methods and each method's
// allow-list of flags.
//
// The run package refuses a record that fails them; the exports of the
// root package (Ansible, Rundeck, ssh_config) leave such an entry out.
// One definition, so that an export never hands another tool a host,
// user or flag that run itself would refuse.
package rules

import (
	"net/netip"
	"strings"
	"unicode/utf8"
)

// MaxName is the longest user or host name accepted, the protocol's limit
// for host names.
const MaxName = 256

// HostError says why a host is not a plain host name.
type HostError string

// Error says what is wrong with the host.
func (e HostError) Error() string { return string(e) }

// Host checks that h is a host name or IP address that ssh reads as its
// destination and nothing else: not an option (-oProxyCommand=…), without
// a user (@), a port or a URI (ssh://), without the % of ssh's tokens, and
// without the characters that ssh_config patterns (* ? ! ,), shells or
// inventory formats read specially: letters, digits, '.', '_' and '-', not
// starting with '-', or an IPv6 address without a zone. It returns nil or
// a HostError saying what is wrong.
func Host(h string) error {
	switch {
	case h == "":
		return HostError("the host is empty")
	case len(h) > MaxName:
		return HostError("the host is longer than 256 bytes")
	case h[0] == '-':
		return HostError("it starts with '-' (ssh would read it as an option)")
	}
	if strings.ContainsRune(h, ':') {
		if a, err := netip.ParseAddr(h); err == nil && a.Is6() && a.Zone() == "" {
			return nil
		}
		return HostError("a host name is letters, digits, '.', '_' and '-', or an IP address")
	}
	if !plainName(h, false) {
		return HostError("a host name is letters, digits, '.', '_' and '-', or an IP address")
	}
	return nil
}

// UserName reports whether s is a plain user name: ASCII letters, digits,
// '_', '.', '-' and '@' (for user@domain accounts), not starting with '-'
// or '.', at most MaxName bytes.
func UserName(s string) bool { return plainName(s, true) }

// plainName reports whether s is made of ASCII letters, digits, '_', '.'
// and '-' (and '@' if at is true), does not start with '-' or '.', and is
// at most MaxName bytes.
func plainName(s string, at bool) bool {
	if s == "" || len(s) > MaxName || s[0] == '-' || s[0] == '.' {
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

// Text reports whether s is valid UTF-8 without control characters (C0,
// DEL, C1).
func Text(s string) bool {
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

// BecomeMethod reports whether m is a become method that a record may
// name: sudo, su, pbrun or dzdo.
func BecomeMethod(m string) bool {
	switch m {
	case "sudo", "su", "pbrun", "dzdo":
		return true
	}
	return false
}

// BecomeFlags returns the become flags allowed for method: flags that
// change neither the user nor the command, take no value, and do not
// detach the command from the session (which would defeat cancellation).
// Everything else is refused, also flags that would be harmless: the lists
// are meant to stay short.
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
func BecomeFlags(method string) []string {
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

// BecomeFlag reports whether word is an allowed become flag of method.
func BecomeFlag(method, word string) bool {
	for _, f := range BecomeFlags(method) {
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

// record.go checks a tool's entry on a host before anything is built from
// it: the execution fields must be strings, the command one program path,
// the run-as user and the host plain names, the become method known and
// its flags on the method's allow-list. Quoting makes values inert; these
// checks refuse what quoting cannot make safe (a flag that changes who
// runs what, a host that ssh would read as an option).

package run

import (
	"strings"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/internal/rules"
)

// maxName is the longest user or host name accepted, the protocol's limit
// for host names.
const maxName = rules.MaxName

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
	if e.runAs != "" && !rules.UserName(e.runAs) {
		return execFields{}, refuse("x-run-as", h.RunAs, ErrRunAs,
			"a user name is letters, digits, '_', '.', '@' and '-', not starting with '-' or '.'")
	}

	method := h.BecomeMethod.Value
	if method != "" && !rules.BecomeMethod(method) {
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

// allowedFlags and allowedFlag are the become flags' allow-lists
// (internal/rules, which the exports share).
func allowedFlags(method string) []string { return rules.BecomeFlags(method) }

func allowedFlag(method, word string) bool { return rules.BecomeFlag(method, word) }

// checkHost checks that h is a plain host name or IP address (rules.Host):
// not an ssh option (-oProxyCommand=…), without a user, a port, a URI or
// ssh's % tokens.
func checkHost(h string) error { return rules.Host(h) }

// plainText reports whether s is valid UTF-8 without control characters
// (C0, DEL, C1).
func plainText(s string) bool { return rules.Text(s) }

// quoteWord shows a word in a message.
func quoteWord(w string) string { return "'" + w + "'" }

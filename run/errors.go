// errors.go defines the package's errors: the sentinels that callers test
// with errors.Is, and the typed errors that carry what a caller shows (the
// field of a refused record, each argument that failed, the instance ids
// that disagree, the hosts that offer a tool, the exit status).

package run

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRefused matches every refusal to build a plan from a record that
// cannot be run safely: the errors below that name a record's field
// (ErrCommand, ErrRunAs, ErrBecomeMethod, ErrBecomeFlag, ErrHost,
// ErrNotString) all match it too.
var ErrRefused = errors.New("run: refused")

// Refusals of a record, each a *FieldError that also matches ErrRefused.
var (
	// ErrCommand: x-command is absent, empty, or not one program path
	// (it starts with '-', contains '=' or a control character).
	ErrCommand = errors.New("x-command is not a program path")
	// ErrRunAs: x-run-as is not a plain user name.
	ErrRunAs = errors.New("x-run-as is not a plain user name")
	// ErrBecomeMethod: x-become-method is not sudo, su, pbrun or dzdo.
	ErrBecomeMethod = errors.New("x-become-method is not sudo, su, pbrun or dzdo")
	// ErrBecomeFlag: a word of x-become-flags is not on the method's
	// allow-list (see the package documentation).
	ErrBecomeFlag = errors.New("x-become-flags has a flag that is not allowed")
	// ErrHost: the host is not a plain host name or IP address.
	ErrHost = errors.New("host is not a plain host name")
	// ErrNotString: an execution field is present but not a JSON string.
	ErrNotString = errors.New("execution field is not a string")
)

// Errors of the caller's input.
var (
	// ErrInvalidArgs: the arguments do not fit the tool's inputSchema, name
	// arguments it does not declare, or have values that cannot be
	// passed. The error is an *ArgsError listing each.
	ErrInvalidArgs = errors.New("invalid arguments")
	// ErrEnv: an environment entry is not KEY=value with KEY matching
	// [A-Za-z_][A-Za-z0-9_]*, has a NUL byte, or repeats a key.
	ErrEnv = errors.New("invalid environment entry")
	// ErrSchema: the tool's inputSchema is not a JSON Schema that can be
	// compiled (or it refers to another document: nothing is loaded).
	ErrSchema = errors.New("the tool's inputSchema cannot be used")
	// ErrOptions: the Runner's Options are invalid.
	ErrOptions = errors.New("run: invalid options")
)

// Errors of choosing an entry (Select, RandomHost), each a *HostError.
var (
	// ErrUnknownHost: no active entry of the tool is on the host. The
	// error is a *HostError listing the hosts that offer the tool.
	ErrUnknownHost = errors.New("the tool is not offered on that host")
	// ErrUnknownInstance: the instance id is not one of the tool's active
	// entries on the host.
	ErrUnknownInstance = errors.New("no such instance of the tool on that host")
	// ErrAmbiguous: the tool's entries on the host differ in what they
	// would run; pick one by instance id. The error is a *HostError
	// listing the instance ids.
	ErrAmbiguous = errors.New("the tool's entries on that host differ: pick an instance id")
	// ErrNoHosts: the tool has no active entry at all.
	ErrNoHosts = errors.New("the tool is not offered on any active host")
)

// Errors of running (Runner.Run).
var (
	// ErrExitStatus: the remote command exited with a status other than 0.
	// The error is an *ExitError.
	ErrExitStatus = errors.New("the remote command failed")
	// ErrSSH: ssh exited with status 255, which is how it reports its own
	// failures (connection, host key, authentication). A remote command
	// that itself exits with 255 looks the same. The error is an
	// *ExitError and matches ErrExitStatus too.
	ErrSSH = errors.New("ssh failed")
)

// FieldError is a refusal of one field of a tool's entry. It matches its
// Err (one of ErrCommand, ErrRunAs, ErrBecomeMethod, ErrBecomeFlag,
// ErrHost, ErrNotString) and ErrRefused.
type FieldError struct {
	InstanceID string // the entry's instance
	Field      string // "x-command", "x-run-as", "x-become-method", "x-become-flags" or "host"
	Value      string // the field's value (its JSON text when not a string)
	Reason     string // what is wrong, for people
	Err        error  // the sentinel
}

// Error says which field of which instance is refused, and why.
func (e *FieldError) Error() string {
	s := fmt.Sprintf("run: refused: %s %q", e.Field, e.Value)
	if e.InstanceID != "" {
		s += " of instance " + e.InstanceID
	}
	return s + ": " + e.Reason
}

// Unwrap returns the sentinel and ErrRefused.
func (e *FieldError) Unwrap() []error { return []error{e.Err, ErrRefused} }

// Problem is one thing wrong with the caller's arguments.
type Problem struct {
	// Field is the argument: the name the caller gave or the property it
	// resolved to, followed by /index for an item of an array; "" for the
	// arguments as a whole.
	Field string
	// Message says what is wrong.
	Message string
}

// ArgsError lists every problem of a call's arguments. It matches
// ErrInvalidArgs.
type ArgsError struct {
	Tool     string
	Problems []Problem // by field (from ParseFlags: in the order of the words)
}

// Error lists every problem, field by field.
func (e *ArgsError) Error() string {
	var b strings.Builder
	b.WriteString("run: invalid arguments")
	if e.Tool != "" {
		b.WriteString(" for " + e.Tool)
	}
	for i, p := range e.Problems {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		if p.Field != "" {
			b.WriteString(p.Field + ": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Is reports whether target is ErrInvalidArgs.
func (e *ArgsError) Is(target error) bool { return target == ErrInvalidArgs }

// HostError is a failure to choose the entry to run on a host. It matches
// its Err (ErrUnknownHost, ErrUnknownInstance or ErrAmbiguous).
type HostError struct {
	Tool, Host string
	// Hosts are the hosts that offer the tool (active entries), for
	// ErrUnknownHost.
	Hosts []string
	// InstanceIDs are the tool's active entries on the host, for
	// ErrAmbiguous and ErrUnknownInstance.
	InstanceIDs []string
	// InstanceID is the id asked for, for ErrUnknownInstance.
	InstanceID string
	Err        error
}

// Error names the tool and host, and the hosts or instance ids to choose from.
func (e *HostError) Error() string {
	switch e.Err {
	case ErrNoHosts:
		return fmt.Sprintf("run: tool %s is not offered on any active host", e.Tool)
	case ErrUnknownHost:
		if len(e.Hosts) == 0 {
			return fmt.Sprintf("run: tool %s is not offered on host %s, nor on any active host", e.Tool, e.Host)
		}
		return fmt.Sprintf("run: tool %s is not offered on host %s; hosts that offer it: %s",
			e.Tool, e.Host, strings.Join(e.Hosts, ", "))
	case ErrUnknownInstance:
		return fmt.Sprintf("run: tool %s has no active instance %s on host %s; its instances there: %s",
			e.Tool, e.InstanceID, e.Host, strings.Join(e.InstanceIDs, ", "))
	default:
		return fmt.Sprintf("run: tool %s on host %s: %v; instance ids: %s",
			e.Tool, e.Host, e.Err, strings.Join(e.InstanceIDs, ", "))
	}
}

// Unwrap returns the sentinel.
func (e *HostError) Unwrap() error { return e.Err }

// ExitError reports a remote command that exited with a status other
// than 0, or ssh's own failure (status 255). It matches ErrExitStatus, and
// ErrSSH when the status is 255.
type ExitError struct {
	Host   string
	Status int
	// Stderr is the end of what ssh and the command wrote to stderr (at
	// most 1 KiB), which says why ssh failed.
	Stderr string
}

// Error gives the status; for 255, that ssh failed and why.
func (e *ExitError) Error() string {
	if e.Status == 255 {
		s := fmt.Sprintf("run: ssh to %s failed (exit status 255: ssh could not connect, verify the host key or log in; or the command exited with 255)", e.Host)
		if msg := strings.TrimSpace(e.Stderr); msg != "" {
			s += ": " + msg
		}
		return s
	}
	return fmt.Sprintf("run: the command on %s exited with status %d", e.Host, e.Status)
}

// Is reports whether target is ErrExitStatus, or ErrSSH for status 255.
func (e *ExitError) Is(target error) bool {
	return target == ErrExitStatus || (target == ErrSSH && e.Status == 255)
}

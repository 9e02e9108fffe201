// errors.go defines the errors of the library: the sentinels that callers
// test with errors.Is, and ValidationError, which lists the bad fields of a
// request in the shape of the protocol's 422 detail. (Its wording is in
// validate.go; the HTTP statuses they map to are in respond.go.)

package registry

import (
	"errors"
	"fmt"
	"strings"
)

// Errors returned by Registry methods. Test for them with errors.Is.
var (
	// ErrNotFound reports an unknown instance or tool.
	ErrNotFound = errors.New("registry: not found")

	// ErrInvalid reports input that breaks the protocol's rules. Errors that
	// match it are *ValidationError values naming each bad field.
	ErrInvalid = errors.New("registry: invalid input")

	// ErrForbidden reports a write that the identity making it may not
	// make: another identity owns the instance, the host is not one it may
	// register, or its roles do not allow it (403). Errors that match it
	// are *ForbiddenError values that say which.
	ErrForbidden = errors.New("registry: forbidden")

	// ErrFull reports that the registry holds Options.MaxInstances records,
	// all active, and cannot take a new id (507).
	ErrFull = errors.New("registry: full")

	// ErrUnavailable reports that the registry cannot reach where it keeps
	// its records (a replica's Cluster): the write was not made (or not
	// confirmed), and the caller may retry. The handler answers it with 503
	// and a Retry-After header.
	ErrUnavailable = errors.New("registry: store unavailable")
)

// FieldError describes one bad field of a request, in the shape of the
// protocol's 422 detail list.
type FieldError struct {
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
	Type string   `json:"type"`
}

// ValidationError lists the bad fields of a request. It matches ErrInvalid.
type ValidationError struct {
	Fields []FieldError
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("registry: invalid input:")
	for i, f := range e.Fields {
		if i > 0 {
			b.WriteByte(';')
		}
		fmt.Fprintf(&b, " %s: %s", strings.Join(f.Loc, "."), f.Msg)
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

func invalid(fields ...FieldError) error { return &ValidationError{Fields: fields} }

// ForbiddenError says why a write was refused. It matches ErrForbidden.
type ForbiddenError struct {
	// Detail is the answer's detail, e.g. "Instance is owned by another identity".
	Detail string
}

func (e *ForbiddenError) Error() string { return "registry: forbidden: " + e.Detail }

// Is makes errors.Is(err, ErrForbidden) true.
func (e *ForbiddenError) Is(target error) bool { return target == ErrForbidden }

// errNotOwner is the refusal of a write to another identity's instance.
var errNotOwner = &ForbiddenError{Detail: "Instance is owned by another identity"}

// validate.go holds the protocol's rules, once: what an instance_id, name,
// host, version, heartbeat interval and tool list must be, and the wording of
// every 422 detail. The HTTP layer decodes JSON types and hands Go values
// over; the library's methods validate them; the Go client checks with the
// same exported functions (Registration.Validate, ValidateTools).

package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/runspec/registry/internal/rules"
)

// Protocol limits that are not configurable.
const (
	// MaxFieldBytes is the longest instance_id, name, host or user accepted.
	MaxFieldBytes = 256
	// MaxHeartbeatInterval is the longest heartbeat interval an agent may ask for.
	MaxHeartbeatInterval = 24 * time.Hour
)

// The 422 details. Each wording is written here only; loc is the path of
// the field ("body", "host"), as the protocol's detail list names it.

func errMissing(loc ...string) FieldError {
	return FieldError{Loc: loc, Msg: "Field required", Type: "missing"}
}

// A jsonKind is a JSON type a field must have.
type jsonKind int

const (
	kindString jsonKind = iota
	kindNumber
	kindObject
	kindArray
	kindBool
	kindUint
)

var kinds = [...]struct{ msg, typ string }{
	kindString: {"Input should be a valid string", "string_type"},
	kindNumber: {"Input should be a valid number", "float_type"},
	kindObject: {"Input should be a valid dictionary", "dict_type"},
	kindArray:  {"Input should be a valid list", "list_type"},
	kindBool:   {"Input should be a valid boolean, unable to interpret input", "bool_parsing"},
	kindUint:   {"Input should be a valid unsigned integer", "int_parsing"},
}

// errKind says that the field at loc is not of kind k.
func errKind(k jsonKind, loc ...string) FieldError {
	return FieldError{Loc: loc, Msg: kinds[k].msg, Type: kinds[k].typ}
}

// errValue says that the field at loc has the right type but a bad value.
func errValue(loc []string, format string, args ...any) FieldError {
	return FieldError{Loc: loc, Msg: "Value error, " + fmt.Sprintf(format, args...), Type: "value_error"}
}

func errBodyMissing() FieldError { return errMissing("body") }

func errBodyJSON() FieldError {
	return FieldError{Loc: []string{"body"}, Msg: "JSON decode error", Type: "json_invalid"}
}

func errBodyNotObject() FieldError {
	return FieldError{Loc: []string{"body"}, Msg: "Input should be a valid dictionary or object to extract fields from", Type: "model_attributes_type"}
}

func errCursor() FieldError {
	return FieldError{Loc: []string{"query", "cursor"}, Msg: "Invalid cursor", Type: "value_error"}
}

func errLimit() FieldError {
	return FieldError{Loc: []string{"query", "limit"}, Msg: fmt.Sprintf("Input should be a whole number from 1 to %d", maxLimit), Type: "int_parsing"}
}

func errWait() FieldError {
	return FieldError{Loc: []string{"query", "wait"}, Msg: "Input should be a duration such as 30s, or seconds", Type: "value_error"}
}

func errInterval() FieldError {
	return errValue([]string{"body", "heartbeat_interval"}, "heartbeat_interval must be > 0 and <= %d seconds", int(MaxHeartbeatInterval.Seconds()))
}

// errText is the detail of a text field that is not valid UTF-8 or holds a
// control character: the rule of checkText, and of a JSON string whose
// escapes decode to U+FFFD (an unpaired surrogate).
func errText(loc ...string) FieldError {
	return errValue(loc, "must be valid UTF-8 without control characters")
}

// checkText applies the rules of instance_id, name, host, tool names,
// labels and the exports' user to s, the field at loc: not empty, at most
// MaxFieldBytes, valid UTF-8 without control or format characters.
func checkText(s string, loc ...string) *FieldError {
	if s == "" {
		fe := errValue(loc, "must not be empty")
		return &fe
	}
	return checkVersion(s, loc...)
}

// checkVersion applies the rules of version, which v1 only asks to be a
// string: those of checkText, but empty is allowed.
func checkVersion(s string, loc ...string) *FieldError {
	var fe FieldError
	switch {
	case len(s) > MaxFieldBytes:
		fe = errValue(loc, "must be at most %d bytes", MaxFieldBytes)
	case !rules.Text(s):
		fe = errText(loc...)
	case hasFormat(s):
		fe = errValue(loc, "must not contain invisible format characters (bidi controls, zero-width characters, U+2028, U+2029)")
	default:
		return nil
	}
	return &fe
}

// hasFormat reports whether s holds a Unicode format character (category
// Cf: bidi overrides, zero-width spaces and joiners, the BOM) or a line or
// paragraph separator: characters that make a name display as another.
func hasFormat(s string) bool {
	for _, c := range s {
		if c >= 0x80 && (unicode.Is(unicode.Cf, c) || c == '\u2028' || c == '\u2029') {
			return true
		}
	}
	return false
}

// registrationFields are the fields of a registration, in the order of the
// protocol's detail list.
var registrationFields = [...]string{"instance_id", "name", "version", "host", "heartbeat_interval", "labels"}

// MaxLabels is the most labels an instance may carry.
const MaxLabels = 64

// Validate checks a registration as POST /instances does: instance_id, name
// and host non-empty, at most MaxFieldBytes, valid UTF-8 without control
// characters or Unicode format characters (bidi overrides, zero-width
// characters, U+2028, U+2029); version the same but may be empty; a
// HeartbeatInterval of zero (the registry's default) or in
// (0, MaxHeartbeatInterval]; at most MaxLabels labels, keys and values
// under the rules of host. The error matches ErrInvalid and lists each bad
// field.
func (reg Registration) Validate() error {
	if errs := reg.fieldErrors(nil); errs != nil {
		return invalid(errs...)
	}
	return nil
}

// fieldErrors checks the fields of reg that are not in skip (fields whose
// JSON type was already wrong), in the protocol's order.
func (reg Registration) fieldErrors(skip map[string]bool) []FieldError {
	var errs []FieldError
	for _, name := range registrationFields {
		if skip[name] {
			continue
		}
		loc := []string{"body", name}
		var fe *FieldError
		switch name {
		case "instance_id":
			fe = checkText(reg.ID, loc...)
		case "name":
			fe = checkText(reg.Name, loc...)
		case "version":
			fe = checkVersion(reg.Version, loc...)
		case "host":
			fe = checkText(reg.Host, loc...)
		case "heartbeat_interval":
			if reg.HeartbeatInterval < 0 || reg.HeartbeatInterval > MaxHeartbeatInterval {
				e := errInterval()
				fe = &e
			}
		case "labels":
			errs = append(errs, checkLabels(reg.Labels)...)
		}
		if fe != nil {
			errs = append(errs, *fe)
		}
	}
	return errs
}

// checkLabels applies the rules of labels: at most MaxLabels, each key and
// value under the rules of a host name.
func checkLabels(labels map[string]string) []FieldError {
	if len(labels) > MaxLabels {
		return []FieldError{errValue([]string{"body", "labels"}, "at most %d labels, not %d", MaxLabels, len(labels))}
	}
	var errs []FieldError
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if fe := checkText(k, "body", "labels", k); fe != nil {
			fe.Msg = "key: " + fe.Msg
			errs = append(errs, *fe)
		} else if fe := checkText(labels[k], "body", "labels", k); fe != nil {
			errs = append(errs, *fe)
		}
	}
	return errs
}

// intervalOf turns a heartbeat_interval in seconds, as posted, into a
// duration, or says why it cannot be one.
func intervalOf(secs float64) (time.Duration, *FieldError) {
	d := time.Duration(secs * float64(time.Second))
	if !(secs > 0 && secs <= MaxHeartbeatInterval.Seconds()) || d <= 0 {
		fe := errInterval()
		return 0, &fe
	}
	return d, nil
}

// sortFields orders a detail list by the protocol's order of fields, so
// that type errors found while decoding and value errors found by the
// rules read as one list.
func sortFields(errs []FieldError, order []string) {
	pos := func(fe FieldError) int {
		if len(fe.Loc) > 1 {
			for i, name := range order {
				if fe.Loc[1] == name {
					return i
				}
			}
		}
		return len(order)
	}
	for i := 1; i < len(errs); i++ { // a stable insertion sort: lists are short
		for j := i; j > 0 && pos(errs[j]) < pos(errs[j-1]); j-- {
			errs[j], errs[j-1] = errs[j-1], errs[j]
		}
	}
}

// checkSystem applies the rule of a heartbeat's system: nil (none sent) or
// a JSON object.
func checkSystem(system json.RawMessage) error {
	if system != nil && !isJSONObject(system) {
		return invalid(errKind(kindObject, "body", "system"))
	}
	return nil
}

// ValidateTools checks a tool list as POST /instances/{id}/tools does: each
// tool a JSON object with a "name" that follows the rules of a host name
// (see Registration.Validate), names unique, at most
// maxTools tools (if zero, DefaultMaxTools; if negative, any number). The
// error matches ErrInvalid and lists each bad tool (at most 20).
func ValidateTools(tools []json.RawMessage, maxTools int) error {
	switch {
	case maxTools == 0:
		maxTools = DefaultMaxTools
	case maxTools < 0:
		maxTools = len(tools)
	}
	_, err := parseToolList(tools, maxTools)
	return err
}

func errTooManyTools(max, n int) FieldError {
	return FieldError{Loc: []string{"body", "tools"},
		Msg: fmt.Sprintf("List should have at most %d items after validation, not %d", max, n), Type: "too_long"}
}

func errDuplicateTool(loc []string, name string, other int) FieldError {
	return errValue(loc, "duplicate tool name %q (also tool %d)", name, other)
}

// The details of one tool, with a loc relative to the tool.

func errToolUTF8() FieldError {
	return FieldError{Msg: "Input should be valid UTF-8", Type: "string_unicode"}
}

func errToolName() FieldError {
	return FieldError{Loc: []string{"name"}, Msg: "Field required: a non-empty string", Type: "missing"}
}

// isJSONObject reports whether b is one valid JSON object.
func isJSONObject(b []byte) bool {
	t := bytes.TrimLeft(b, " \t\r\n")
	return len(t) > 0 && t[0] == '{' && json.Valid(b) && utf8.Valid(b)
}

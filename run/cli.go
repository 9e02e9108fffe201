// cli.go parses runspec's command-line form of a tool's arguments
// (--environment staging --dry-run --tag a --tag b) into the JSON values
// that a call takes, guided by the tool's schema: which arguments exist,
// which are booleans, numbers or arrays.

package run

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ParseFlags reads a tool's arguments written as flags, the inverse of the
// words a plan passes to the tool, and returns them as the JSON values
// that encoding/json would decode from the same arguments written as JSON
// (strings, float64, bool, []any), for Call.Args:
//
//	--name value, --name=value   a string or number argument
//	--name                       a boolean argument: true (--name=false: false)
//	--name a --name b            an array argument, item by item
//
// A name may be written with '_' for '-' (--dry_run for dry-run). A value
// that starts with "--" must be written --name=value. Objects (and arrays
// of them) cannot be written as flags: pass the arguments as JSON. Unknown
// names, values of the wrong form, repeated flags that are not arrays and
// words that are not flags are errors: an *ArgsError that lists them all.
// The values are not validated against the schema here; Runner.Plan does
// that.
func (s *Schema) ParseFlags(words []string) (map[string]any, error) {
	args := map[string]any{}
	var problems []Problem
	bad := func(field, format string, a ...any) {
		problems = append(problems, Problem{Field: field, Message: fmt.Sprintf(format, a...)})
	}
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "--") || w == "--" {
			bad("", "unexpected %q: arguments are written --name value", w)
			continue
		}
		given, value, inline := strings.Cut(w[2:], "=")
		name, ok := s.resolve(given)
		if !ok {
			bad(given, "%s", s.unknown())
			if !inline && i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
				i++ // skip its value, so that it is not reported as well
			}
			continue
		}
		k := s.kinds[name]
		if k.typ == objectValue {
			bad(name, "an object argument cannot be written as a flag: give the arguments as JSON")
			if !inline && i+1 < len(words) && !strings.HasPrefix(words[i+1], "--") {
				i++
			}
			continue
		}
		if k.typ == boolValue && !k.array {
			if !inline {
				value = "true"
			}
		} else if !inline {
			if i+1 >= len(words) {
				bad(name, "--%s needs a value", given)
				continue
			}
			if strings.HasPrefix(words[i+1], "--") {
				bad(name, "--%s needs a value; %q looks like a flag: write --%s=%s if it is the value",
					given, words[i+1], given, words[i+1])
				continue
			}
			i++
			value = words[i]
		}
		v, err := parseValue(k.typ, value)
		if err != "" {
			bad(name, "%s", err)
			continue
		}
		if k.array {
			items, _ := args[name].([]any)
			args[name] = append(items, v)
			continue
		}
		if _, dup := args[name]; dup {
			bad(name, "given more than once")
			continue
		}
		args[name] = v
	}
	if len(problems) > 0 {
		return nil, &ArgsError{Problems: problems}
	}
	return args, nil
}

// parseValue reads one word as a value of type t; it returns a message
// when the word does not fit.
func parseValue(t valueType, w string) (any, string) {
	switch t {
	case boolValue:
		switch w {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, fmt.Sprintf("%q is not true or false", w)
	case numberValue, integerValue:
		if !isJSONNumber(w) {
			return nil, fmt.Sprintf("%q is not a number", w)
		}
		f, err := strconv.ParseFloat(w, 64)
		if err != nil {
			return nil, fmt.Sprintf("%q is not a number: %v", w, err)
		}
		if t == integerValue && f != math.Trunc(f) {
			return nil, fmt.Sprintf("%q is not an integer", w)
		}
		return f, ""
	}
	return w, ""
}

// ParseJSON decodes arguments written as one JSON object (runspec's
// --args-json), as Call.Args takes them. It is json.Unmarshal into a
// map, with an error that matches ErrInvalidArgs.
func ParseJSON(data []byte) (map[string]any, error) {
	var args map[string]any
	if err := json.Unmarshal(data, &args); err != nil {
		return nil, &ArgsError{Problems: []Problem{{Message: "the arguments are not a JSON object: " + err.Error()}}}
	}
	if args == nil {
		args = map[string]any{}
	}
	return args, nil
}

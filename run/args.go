// args.go turns a call's arguments (JSON values by name) into the words of
// runspec's tool-call convention: --name value for each argument given, a
// bare --name for true, nothing for false or null, --name item for each
// item of an array. Names resolve to the schema's properties (the caller
// may write '_' for '-'), values are normalised to JSON types, and what
// cannot be passed as words is refused, with every problem listed.

package run

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// prepare checks a call's arguments: it resolves their names, normalises
// their values and validates them against the schema. It returns the
// arguments by property name and their words.
func (s *Schema) prepare(tool string, args map[string]any) (map[string]any, []string, error) {
	var problems []Problem
	valid := make(map[string]any, len(args))
	from := make(map[string]string, len(args)) // property -> the name the caller gave
	for _, given := range sortedKeys(args) {
		name, ok := s.resolve(given)
		if !ok {
			problems = append(problems, Problem{Field: given, Message: s.unknown()})
			continue
		}
		if other, dup := from[name]; dup {
			problems = append(problems, Problem{Field: given, Message: fmt.Sprintf("given twice (also as %s)", other)})
			continue
		}
		from[name] = given
		if !flagName(name) {
			problems = append(problems, Problem{Field: name,
				Message: "the schema's name cannot be a flag (a flag name is letters, digits, '_', '.' and '-', not starting with '-')"})
			continue
		}
		v, msg, field := normalize(args[given], name)
		if msg != "" {
			problems = append(problems, Problem{Field: field, Message: msg})
			continue
		}
		valid[name] = v
	}
	problems = s.validate(valid, problems)
	if len(problems) > 0 {
		slices.SortStableFunc(problems, func(a, b Problem) int { return strings.Compare(a.Field, b.Field) })
		return nil, nil, &ArgsError{Tool: tool, Problems: problems}
	}
	var words []string
	for _, name := range s.names {
		v, ok := valid[name]
		if !ok {
			continue
		}
		words = appendWords(words, name, v)
	}
	return valid, words, nil
}

// resolve returns the property that a name given by the caller means: the
// property of that name, else the one with '-' where the caller wrote '_'.
func (s *Schema) resolve(given string) (string, bool) {
	if _, ok := s.kinds[given]; ok {
		return given, true
	}
	if strings.Contains(given, "_") {
		alt := strings.ReplaceAll(given, "_", "-")
		if _, ok := s.kinds[alt]; ok {
			return alt, true
		}
	}
	return "", false
}

// unknown is the message for a name the tool does not declare.
func (s *Schema) unknown() string {
	if len(s.names) == 0 {
		return "not an argument of the tool: it takes no arguments"
	}
	return "not an argument of the tool (its arguments: " + strings.Join(s.names, ", ") + ")"
}

// flagName reports whether a property name can be written as --name: a
// name with '=' or a space would smuggle in another flag or value.
func flagName(n string) bool {
	if n == "" || n[0] == '-' || len(n) > maxName {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '.', c == '-':
		default:
			return false
		}
	}
	return true
}

// normalize returns v as a JSON value of the types the words can carry:
// string, bool, nil, json.Number, or a []any of those but nil. It returns
// a message and the field it concerns instead when v cannot be passed.
// Numbers become json.Number in their canonical text (see numberText).
func normalize(v any, name string) (any, string, string) {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			if item == nil {
				return nil, "an item of an array cannot be null", formatIndex(name, i)
			}
			n, msg, _ := normalizeScalar(item)
			if msg != "" {
				return nil, msg, formatIndex(name, i)
			}
			out[i] = n
		}
		return out, "", ""
	case []string:
		out := make([]any, len(x))
		for i, item := range x {
			n, msg, _ := normalizeScalar(item)
			if msg != "" {
				return nil, msg, formatIndex(name, i)
			}
			out[i] = n
		}
		return out, "", ""
	}
	n, msg, _ := normalizeScalar(v)
	return n, msg, name
}

// normalizeScalar normalises a value that is not an array.
func normalizeScalar(v any) (any, string, string) {
	switch x := v.(type) {
	case nil, bool:
		return x, "", ""
	case string:
		if strings.IndexByte(x, 0) >= 0 {
			return nil, "a NUL byte cannot be passed in a command's arguments", ""
		}
		return x, "", ""
	case json.Number:
		t, ok := numberText(string(x))
		if !ok {
			return nil, fmt.Sprintf("%q is not a JSON number", string(x)), ""
		}
		return json.Number(t), "", ""
	case float64:
		return floatNumber(x)
	case float32:
		return floatNumber(float64(x))
	case int:
		return json.Number(strconv.FormatInt(int64(x), 10)), "", ""
	case int8:
		return json.Number(strconv.FormatInt(int64(x), 10)), "", ""
	case int16:
		return json.Number(strconv.FormatInt(int64(x), 10)), "", ""
	case int32:
		return json.Number(strconv.FormatInt(int64(x), 10)), "", ""
	case int64:
		return json.Number(strconv.FormatInt(x, 10)), "", ""
	case uint:
		return json.Number(strconv.FormatUint(uint64(x), 10)), "", ""
	case uint8:
		return json.Number(strconv.FormatUint(uint64(x), 10)), "", ""
	case uint16:
		return json.Number(strconv.FormatUint(uint64(x), 10)), "", ""
	case uint32:
		return json.Number(strconv.FormatUint(uint64(x), 10)), "", ""
	case uint64:
		return json.Number(strconv.FormatUint(x, 10)), "", ""
	case map[string]any:
		return nil, "an object cannot be passed as a flag's value", ""
	case []any, []string:
		return nil, "an array inside an array cannot be passed as flags", ""
	}
	return nil, fmt.Sprintf("a %T is not a JSON value", v), ""
}

func floatNumber(f float64) (any, string, string) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, "not a finite number", ""
	}
	return json.Number(formatFloat(f)), "", ""
}

// formatFloat writes a number as JavaScript and encoding/json do: an
// integer without a fraction or exponent below 1e21 (3, not 3e+00 or
// 3.0), otherwise the shortest form that reads back the same.
func formatFloat(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// numberText returns the canonical text of a JSON number: an integer
// literal as written (any size), another number as formatFloat writes its
// float64 value (1.50 is 1.5, 2.0 is 2, 1E3 is 1000).
func numberText(s string) (string, bool) {
	if !isJSONNumber(s) {
		return "", false
	}
	if !strings.ContainsAny(s, ".eE") {
		return s, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(f, 0) {
		return "", false
	}
	return formatFloat(f), true
}

// isJSONNumber reports whether s is a number in JSON's grammar.
func isJSONNumber(s string) bool {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(s) && '0' <= s[i] && s[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// appendWords appends the words of one argument.
func appendWords(words []string, name string, v any) []string {
	flag := "--" + name
	switch x := v.(type) {
	case nil:
		return words
	case bool:
		if x {
			words = append(words, flag)
		}
		return words
	case []any:
		for _, item := range x {
			words = append(words, flag, valueText(item))
		}
		return words
	}
	return append(words, flag, valueText(v))
}

// valueText is the word of a normalised scalar value.
func valueText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return string(x)
	case bool:
		return strconv.FormatBool(x)
	}
	return fmt.Sprint(v) // not reached: values are normalised
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// schema.go compiles a tool's inputSchema with
// github.com/santhosh-tekuri/jsonschema/v6 and validates a call's
// arguments against it, reporting every violation by field. It also
// records what the command-line parser needs: the declared arguments, in
// the schema's order, and the kind of each (string, number, boolean,
// array).

package run

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Schema is a tool's compiled inputSchema. It is immutable and safe for
// concurrent use: compile it once (CompileSchema) and pass it in
// Call.Schema to build many plans without compiling it each time.
//
// The arguments a tool takes are the properties declared at the top level
// of its inputSchema (in "properties", also through a top-level "$ref" or
// "allOf"); a call may give only those, whatever "additionalProperties"
// says, because each becomes a --name flag of the command. A tool without
// an inputSchema, or whose schema declares no properties, takes no
// arguments.
type Schema struct {
	compiled *jsonschema.Schema // nil: no inputSchema
	names    []string           // the declared arguments, in the schema's order
	kinds    map[string]argKind
}

// argKind is how the command-line form reads an argument.
type argKind struct {
	typ   valueType // of the argument, or of its items for an array
	array bool
}

type valueType int

const (
	stringValue valueType = iota
	numberValue
	integerValue
	boolValue
	objectValue // not accepted on the command line: give it as JSON
)

// schemaURL is the name the inputSchema is compiled under (in the .invalid
// domain, which never resolves). Nothing is ever loaded from it: the
// document is added before compiling, and relative references resolve
// against it to URLs that noLoader refuses.
const schemaURL = "https://runspec.invalid/inputSchema.json"

// CompileSchema compiles a tool's inputSchema (Tool.InputSchema). A nil or
// empty inputSchema gives a Schema that takes no arguments. A schema that
// refers to another document ("$ref" to a file or URL, a "$schema" that
// is not a known draft) is refused: nothing is loaded. A schema without
// "$schema" is read as draft 2020-12, as MCP says.
func CompileSchema(inputSchema json.RawMessage) (*Schema, error) {
	s := &Schema{kinds: map[string]argKind{}}
	raw := bytes.TrimSpace(inputSchema)
	if len(raw) == 0 || string(raw) == "null" {
		return s, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{}) // the default loader reads files: an agent's schema must not
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	if s.compiled, err = c.Compile(schemaURL); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSchema, err)
	}
	props := map[string]*jsonschema.Schema{}
	collectProperties(s.compiled, props, 0)
	s.names = propertyOrder(raw, props)
	for _, n := range s.names {
		s.kinds[n] = kindOf(props[n])
	}
	return s, nil
}

// Arguments returns the names of the arguments the tool declares, in the
// schema's order.
func (s *Schema) Arguments() []string { return slices.Clone(s.names) }

// noLoader refuses to load any document.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("refusing to load %s: a tool's inputSchema must be self-contained", url)
}

// collectProperties gathers the properties declared at the top of sch,
// following a top-level $ref and allOf.
func collectProperties(sch *jsonschema.Schema, into map[string]*jsonschema.Schema, depth int) {
	if sch == nil || depth > 8 {
		return
	}
	for n, p := range sch.Properties {
		if _, ok := into[n]; !ok {
			into[n] = p
		}
	}
	collectProperties(sch.Ref, into, depth+1)
	for _, a := range sch.AllOf {
		collectProperties(a, into, depth+1)
	}
}

// propertyOrder returns the names of props: those of the top-level
// "properties" of raw in their order there, then any others (from a $ref
// or allOf) sorted.
func propertyOrder(raw []byte, props map[string]*jsonschema.Schema) []string {
	var names []string
	seen := map[string]bool{}
	var top struct {
		Properties json.RawMessage `json:"properties"`
	}
	if json.Unmarshal(raw, &top) == nil && len(top.Properties) > 0 {
		d := json.NewDecoder(bytes.NewReader(top.Properties))
		if t, err := d.Token(); err == nil && t == json.Delim('{') {
			for d.More() {
				t, err := d.Token()
				if err != nil {
					break
				}
				n, _ := t.(string)
				if _, ok := props[n]; ok && !seen[n] {
					names = append(names, n)
					seen[n] = true
				}
				var skip json.RawMessage
				if d.Decode(&skip) != nil {
					break
				}
			}
		}
	}
	var rest []string
	for n := range props {
		if !seen[n] {
			rest = append(rest, n)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// kindOf reads how an argument is given on the command line from its
// schema: its "type" (or the types of its "enum" or "const"), and for an
// array the same of its "items".
func kindOf(p *jsonschema.Schema) argKind {
	t := typesOf(p)
	if t.has("array") && !t.has("string") {
		var items *jsonschema.Schema
		switch it := resolve(p).Items.(type) {
		case *jsonschema.Schema:
			items = it
		}
		if r := resolve(p); r.Items2020 != nil {
			items = r.Items2020
		}
		return argKind{typ: scalarType(typesOf(items)), array: true}
	}
	return argKind{typ: scalarType(t)}
}

// scalarType picks how a value of types t is read from a word: a string
// unless the types say otherwise and do not include string.
func scalarType(t typeSet) valueType {
	switch {
	case t.has("string") || len(t) == 0:
		return stringValue
	case t.has("boolean") && len(t) == 1:
		return boolValue
	case t.has("boolean") && t.has("null") && len(t) == 2:
		return boolValue
	case t.has("integer") && !t.has("number"):
		return integerValue
	case t.has("number") || t.has("integer"):
		return numberValue
	case t.has("object"):
		return objectValue
	}
	return stringValue
}

type typeSet []string

func (t typeSet) has(s string) bool { return slices.Contains(t, s) }

// typesOf returns the JSON types a schema allows, from "type", else from
// the values of "enum" or "const"; nil when it does not say.
func typesOf(p *jsonschema.Schema) typeSet {
	p = resolve(p)
	if p == nil {
		return nil
	}
	if p.Types != nil && !p.Types.IsEmpty() {
		return p.Types.ToStrings()
	}
	var values []any
	if p.Enum != nil {
		values = p.Enum.Values
	}
	if p.Const != nil {
		values = append(values, *p.Const)
	}
	var t typeSet
	for _, v := range values {
		n := jsonTypeName(v)
		if !t.has(n) {
			t = append(t, n)
		}
	}
	return t
}

// resolve follows a schema's $ref when it has nothing else.
func resolve(p *jsonschema.Schema) *jsonschema.Schema {
	for i := 0; p != nil && p.Ref != nil && p.Types == nil && i < 8; i++ {
		p = p.Ref
	}
	return p
}

func jsonTypeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return "number"
}

// validate checks a call's arguments (after normalize) against the
// schema, appending a problem per violation.
func (s *Schema) validate(args map[string]any, problems []Problem) []Problem {
	if s.compiled == nil {
		return problems
	}
	err := s.compiled.Validate(args)
	if err == nil {
		return problems
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return append(problems, Problem{Message: err.Error()})
	}
	p := message.NewPrinter(language.English)
	seen := map[Problem]bool{}
	var walk func(*jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		var found []Problem
		field := strings.Join(e.InstanceLocation, "/")
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				found = append(found, Problem{Field: joinField(field, m), Message: "required, but not given"})
			}
		case *kind.AdditionalProperties:
			for _, m := range k.Properties {
				found = append(found, Problem{Field: joinField(field, m), Message: "not allowed by the schema"})
			}
		default:
			found = append(found, Problem{Field: field, Message: e.ErrorKind.LocalizedString(p)})
		}
		for _, f := range found {
			if !seen[f] {
				seen[f] = true
				problems = append(problems, f)
			}
		}
	}
	walk(ve)
	return problems
}

func joinField(parent, name string) string {
	if parent == "" {
		return name
	}
	return parent + "/" + name
}

// formatIndex names an item of an array argument.
func formatIndex(name string, i int) string { return name + "/" + strconv.Itoa(i) }

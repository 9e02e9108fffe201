// cli_test.go checks ParseFlags, the command-line form of a tool's
// arguments, against the JSON form of the same arguments.

package run_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry/run"
)

func compile(t testing.TB, schema string) *run.Schema {
	t.Helper()
	s, err := run.CompileSchema(json.RawMessage(schema))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseFlags(t *testing.T) {
	s := compile(t, deploySchema)
	tests := []struct {
		name  string
		words []string
		json  string // the same arguments as JSON
	}{
		{"nothing", nil, `{}`},
		{"strings, booleans, arrays", []string{"--environment", "staging", "--dry-run", "--tag", "a", "--tag", "b"},
			`{"environment":"staging","dry-run":true,"tag":["a","b"]}`},
		{"_ for -", []string{"--dry_run", "--environment=production"}, `{"dry-run":true,"environment":"production"}`},
		{"--name=false", []string{"--dry-run=false"}, `{"dry-run":false}`},
		{"numbers", []string{"--replicas", "3", "--ratio=-2.5e3"}, `{"replicas":3,"ratio":-2500}`},
		{"values that look odd", []string{"--message", "-x", "--tag=--y", "--tag", "", "--note", "$(id); it's"},
			`{"message":"-x","tag":["--y",""],"note":"$(id); it's"}`},
		{"a value with =", []string{"--message=a=b"}, `{"message":"a=b"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.ParseFlags(tt.words)
			if err != nil {
				t.Fatal(err)
			}
			want, err := run.ParseJSON([]byte(tt.json))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseFlagsErrors(t *testing.T) {
	s := compile(t, deploySchema)
	tests := []struct {
		name     string
		words    []string
		problems []run.Problem
	}{
		{"a positional word", []string{"staging"},
			[]run.Problem{{Message: `unexpected "staging": arguments are written --name value`}}},
		{"a single dash", []string{"-e", "staging"}, []run.Problem{
			{Message: `unexpected "-e": arguments are written --name value`},
			{Message: `unexpected "staging": arguments are written --name value`},
		}},
		{"an unknown flag and its value", []string{"--colour", "red", "--environment", "staging"},
			[]run.Problem{{Field: "colour", Message: "not an argument of the tool (its arguments: environment, dry-run, tag, replicas, ratio, message, config, note)"}}},
		{"a missing value", []string{"--environment"}, []run.Problem{{Field: "environment", Message: "--environment needs a value"}}},
		{"a flag as a value", []string{"--message", "--dry-run"}, []run.Problem{{Field: "message",
			Message: `--message needs a value; "--dry-run" looks like a flag: write --message=--dry-run if it is the value`}}},
		{"not a number", []string{"--replicas", "three", "--ratio", "0x10"}, []run.Problem{
			{Field: "replicas", Message: `"three" is not a number`},
			{Field: "ratio", Message: `"0x10" is not a number`},
		}},
		{"not an integer", []string{"--replicas", "1.5"}, []run.Problem{{Field: "replicas", Message: `"1.5" is not an integer`}}},
		{"not a boolean", []string{"--dry-run=yes"}, []run.Problem{{Field: "dry-run", Message: `"yes" is not true or false`}}},
		{"twice", []string{"--environment", "a", "--environment", "b"}, []run.Problem{{Field: "environment", Message: "given more than once"}}},
		{"an object", []string{"--config", "{}"}, []run.Problem{{Field: "config",
			Message: "an object argument cannot be written as a flag: give the arguments as JSON"}}},
		{"a lone --", []string{"--"}, []run.Problem{{Message: `unexpected "--": arguments are written --name value`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.ParseFlags(tt.words)
			var ae *run.ArgsError
			if !errors.As(err, &ae) || !errors.Is(err, run.ErrInvalidArgs) {
				t.Fatalf("err = %v, want an *ArgsError", err)
			}
			if diff := cmp.Diff(tt.problems, ae.Problems); diff != "" {
				t.Errorf("problems mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseFlagsRoundTrip checks that the words of a plan parse back into
// the arguments that made them.
func TestParseFlagsRoundTrip(t *testing.T) {
	s := compile(t, deploySchema)
	r := newRunner(t, run.Options{})
	h := entry("/bin/deploy", "", "", "")
	args, err := run.ParseJSON([]byte(`{"environment":"staging","dry-run":true,"tag":["a b","--c",""],"replicas":2,"ratio":0.25,"message":"it's \"quoted\"\n$(id)"}`))
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Plan(run.Call{Tool: deployTool(h), Host: h, Args: args, Schema: s})
	if err != nil {
		t.Fatal(err)
	}
	// --tag --c would read as a flag: the plan writes it as two words, the
	// parser wants --tag=--c. Rewrite that one, as a user would.
	words := p.Argv[1:]
	for i := 0; i+1 < len(words); i++ {
		if words[i] == "--tag" && words[i+1] == "--c" {
			words = append(append(append([]string(nil), words[:i]...), "--tag=--c"), words[i+2:]...)
		}
	}
	got, err := s.ParseFlags(words)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(args, got); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestParseJSON(t *testing.T) {
	for _, bad := range []string{``, `[]`, `"x"`, `{`, `{"a":1}x`} {
		if _, err := run.ParseJSON([]byte(bad)); !errors.Is(err, run.ErrInvalidArgs) {
			t.Errorf("ParseJSON(%q) = %v, want ErrInvalidArgs", bad, err)
		}
	}
	got, err := run.ParseJSON([]byte(`null`))
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("ParseJSON(null) = %v, %v; want an empty map", got, err)
	}
}

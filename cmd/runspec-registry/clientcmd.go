// clientcmd.go holds what the client commands share beyond their flags
// (client.go): connecting to the registry, the --label and --output
// flags, aligned tables whose cells are escaped, "last seen 12s ago", and
// the exit status a command chooses (run exits with the tool's).

package main

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/runspec/registry/client"
)

// connect returns a client for the registry the flags name.
func (f *clientFlags) connect() (*client.Client, error) {
	return client.New(f.Registry, client.Options{APIKey: f.RegistryKey, CAFile: f.RegistryCert})
}

// labelFlags is the --label flag of the commands that filter on labels.
type labelFlags struct {
	Label []string `name:"label" sep:"none" placeholder:"K=V" help:"Only instances that carry this label (repeatable: all of them)."`
}

// errLabel reports a --label that is not K=V.
var errLabel = errors.New("--label takes KEY=VALUE")

// labels returns the --label flags, checked, in the order given; nil when
// there are none.
func (f *labelFlags) labels() (labelQuery, error) {
	for _, kv := range f.Label {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return nil, fmt.Errorf("%w, not %q", errLabel, kv)
		}
	}
	return labelQuery(f.Label), nil
}

// labelQuery is the --label flags as the registry reads them: each one a
// label=K=V parameter. They are sent as given, not through a map (as
// client.Filter.Labels is), so that the registry ANDs them all: two values
// of one key match nothing, where a map would keep one of them.
type labelQuery []string

// addTo adds the labels to q and returns it.
func (l labelQuery) addTo(q url.Values) url.Values {
	for _, kv := range l {
		q.Add("label", kv)
	}
	return q
}

// String is the labels as K=V,K=V, for messages.
func (l labelQuery) String() string { return strings.Join(l, ",") }

// outputFlags is the --output flag of the query commands.
type outputFlags struct {
	Output string `name:"output" short:"o" default:"table" enum:"table,json" help:"table (for people) or json (the registry's answer as it sent it, for scripts)."`
}

func (f *outputFlags) json() bool { return f.Output == "json" }

// clock is the time the query commands measure "last seen" from; nil is
// time.Now (tests set a fixed one).
type clock func() time.Time

func (c clock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// exitStatus ends a command with that status and no further message: the
// command has said what there was to say (run exits with the tool's
// status, as ssh does). main exits with it.
type exitStatus int

func (e exitStatus) Error() string { return "exit status " + strconv.Itoa(int(e)) }

// table writes aligned columns; every cell is escaped (printable), so a
// value cannot break the alignment or reach the terminal as a control.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if i > 0 {
			t.tw.Write([]byte{'\t'})
		}
		t.tw.Write([]byte(printable(c)))
	}
	t.tw.Write([]byte{'\n'})
}

func (t *table) flush() error { return t.tw.Flush() }

// ago says how long before now t was, for people: "12s ago", "4m5s ago",
// "3h12m ago", "2d3h ago"; "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t).Round(time.Second)
	switch {
	case d < 0:
		return "in " + (-d).String() // a clock ahead of ours
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds ago", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%dm ago", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh ago", int(d.Hours())/24, int(d.Hours())%24)
}

// liveness is "active" or "inactive".
func liveness(active bool) string {
	if active {
		return "active"
	}
	return "inactive"
}

// labelText writes labels as k=v,k=v in key order.
func labelText(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// firstLine is the first line of s, cut to max runes with an ellipsis:
// a description in a table.
func firstLine(s string, max int) string {
	s, _, cut := strings.Cut(s, "\n")
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	} else if cut {
		return s + " …"
	}
	return s
}

// writeJSON writes an answer's bytes with a final newline.
func writeJSON(w io.Writer, b []byte) error {
	if len(b) == 0 || b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}

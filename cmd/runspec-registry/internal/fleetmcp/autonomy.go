// autonomy.go defines the autonomy levels of runspec's x-autonomy (manual,
// confirm, supervised, autonomous), how they are read from a tool object
// and which of two is the stricter.

package fleetmcp

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Autonomy is a tool's x-autonomy: what may run without a person. The
// levels are ordered from the strictest (Manual) to the most permissive
// (Autonomous). The zero value is no level: in Options.MaxAutonomy it
// caps nothing.
type Autonomy int

// The levels of x-autonomy.
const (
	// Manual: only a person runs it; the tool is not offered over MCP.
	Manual Autonomy = iota + 1
	// Confirm: a person approves each call before it runs. runspec's
	// default when a tool does not say.
	Confirm
	// Supervised: it runs, and a person should review the result.
	Supervised
	// Autonomous: it runs.
	Autonomous
)

// Stricter returns the stricter of a and b; the zero Autonomy is the
// least strict of all.
func Stricter(a, b Autonomy) Autonomy {
	switch {
	case a == 0:
		return b
	case b == 0:
		return a
	}
	return min(a, b)
}

// String returns the level's x-autonomy value.
func (a Autonomy) String() string {
	switch a {
	case Manual:
		return "manual"
	case Confirm:
		return "confirm"
	case Supervised:
		return "supervised"
	case Autonomous:
		return "autonomous"
	}
	return fmt.Sprintf("Autonomy(%d)", int(a))
}

// ParseAutonomy reads a level by its x-autonomy name (case-insensitive).
// An unknown name is an error matching ErrAutonomy.
func ParseAutonomy(s string) (Autonomy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "manual":
		return Manual, nil
	case "confirm":
		return Confirm, nil
	case "supervised":
		return Supervised, nil
	case "autonomous":
		return Autonomous, nil
	}
	return Confirm, fmt.Errorf("%w: %q is not manual, confirm, supervised or autonomous", ErrAutonomy, s)
}

// autonomyOf reads x-autonomy from its JSON value in a tool object: absent
// or null is Confirm (runspec's default), and so is a value that is not
// one of the four names (a person approves what nobody classified), which
// is reported as false.
func autonomyOf(raw json.RawMessage) (Autonomy, bool) {
	if len(raw) == 0 || string(raw) == "null" {
		return Confirm, true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return Confirm, false
	}
	a, err := ParseAutonomy(s)
	return a, err == nil
}

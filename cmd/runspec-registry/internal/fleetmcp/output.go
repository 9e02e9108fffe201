// output.go captures a command's output for the answer: the first bytes
// of a stream up to a limit, and a count of what was cut.

package fleetmcp

import (
	"fmt"
	"strings"
	"sync/atomic"
)

// DefaultMaxOutput is the most bytes of each stream that an answer
// carries.
const DefaultMaxOutput = 1 << 20

// capped keeps the first max bytes written to it and counts all. One
// goroutine writes (os/exec's copier); total may be read at any time.
type capped struct {
	max   int
	b     []byte
	total atomic.Int64
}

// Write keeps what fits and never fails: the command must not see a
// broken pipe because its answer is full.
func (c *capped) Write(p []byte) (int, error) {
	c.total.Add(int64(len(p)))
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

// text returns what was kept as valid UTF-8 (a cut may split a
// character; the command may write any bytes).
func (c *capped) text() string { return strings.ToValidUTF8(string(c.b), "\uFFFD") }

// cut says how much was left out, or "" when nothing was.
func (c *capped) cut(stream string) string {
	if n := c.total.Load() - int64(len(c.b)); n > 0 {
		return fmt.Sprintf("[%s cut: the first %d bytes of %d are shown]", stream, len(c.b), c.total.Load())
	}
	return ""
}

// export_test.go lets the tests of package client_test shorten what would
// make them slow.

package client

import "time"

// SetEventIdle makes a silent event stream count as broken after d, until
// the returned function restores the default.
func SetEventIdle(d time.Duration) (restore func()) {
	old := eventIdle
	eventIdle = d
	return func() { eventIdle = old }
}

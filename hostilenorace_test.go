//go:build !race

// hostilenorace_test.go: the race detector is off (see hostilerace_test.go).

package registry_test

const raceEnabled = false

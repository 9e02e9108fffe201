//go:build !race

// limitertable_norace_internal_test.go: the race detector is off.

package registry

const raceOn = false

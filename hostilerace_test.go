//go:build race

// hostilerace_test.go tells the hostile-client tests that the race
// detector is on: their loads shrink, since it makes every request ~10×
// slower while the pace of their writes is fixed.

package registry_test

const raceEnabled = true

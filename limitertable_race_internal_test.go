//go:build race

// limitertable_race_internal_test.go tells TestLimiterTableBounded that
// the race detector is on, which makes its million requests slow.

package registry

const raceOn = true

// Package startgc turns the garbage collector off while the command
// starts: imported by main, it is initialised before the libraries whose
// initialisation allocates (the JSON Schema library compiles the
// meta-schemas of five drafts, gRPC and protobuf register their types),
// because Go initialises the ready package with the smallest import path
// first, and this one needs only runtime/debug. Those allocations are
// kept for the life of the process anyway, so collecting during them is
// work for nothing: about 3 ms of each client command's start on a
// 2-core machine (BENCHMARKS.md, Running tools).
//
// main calls Restore once the command line is parsed.
package startgc

import (
	"os"
	"runtime/debug"
)

// off is whether init turned the collector off (not if GOGC is set: the
// environment wins).
var off bool

func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(-1)
		off = true
	}
}

// Restore sets the collector's target percentage to percent (100 is Go's
// default), unless GOGC in the environment said otherwise.
func Restore(percent int) {
	if off {
		debug.SetGCPercent(percent)
	}
}

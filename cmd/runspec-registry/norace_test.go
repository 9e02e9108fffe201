//go:build !race

package main

// raceBuild reports tests run with -race: the binary they start is built
// with it too.
const raceBuild = false

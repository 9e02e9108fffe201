package startgc

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestOffUntilRestored(t *testing.T) {
	if os.Getenv("GOGC") != "" {
		t.Skip("GOGC is set: the environment wins, and init leaves the collector alone")
	}
	// SetGCPercent returns the setting it replaces: init's, then Restore's.
	if got := debug.SetGCPercent(-1); got != -1 {
		t.Fatalf("after init the collector's percentage is %d; want -1 (off)", got)
	}
	Restore(70)
	if got := debug.SetGCPercent(100); got != 70 {
		t.Errorf("after Restore(70) the percentage is %d; want 70", got)
	}
}

// waiters_internal_test.go checks the wake-up channels of blocking queries
// from inside the package: waiters that give up leave no channel behind.

package registry

import (
	"fmt"
	"net/http/httptest"
	"testing"
)

// Waiters that give up leave no channel behind.
func TestWaitersThatGiveUpLeaveNoChannel(t *testing.T) {
	r, _ := New(Options{})
	for i := 0; i < 50; i++ {
		for _, path := range []string{"/tools/nope-%d", "/instances/nope-%d"} {
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest("GET", fmt.Sprintf(path, i)+"?index=99999999999999999&wait=1ms", nil))
			if w.Code != 404 {
				t.Fatalf("GET %s: %d", path, w.Code)
			}
		}
	}
	r.v.w.mu.Lock()
	n := len(r.v.w.byName)
	r.v.w.mu.Unlock()
	if n != 0 {
		t.Errorf("%d wait channels left after every waiter timed out", n)
	}
}

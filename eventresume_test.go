// eventresume_test.go checks where GET /events resumes: after a
// Last-Event-ID (or ?index=) in the ring it replays what follows; one that
// fell out of the ring, or lies beyond the current index (another
// registry's, or made up), gets a reset naming the current index at once,
// not a stream that silently never sends anything.

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

func TestEventResume(t *testing.T) {
	lb := serveLoopback(t, registry.Options{}, 0)
	registerMany(t, lb.reg, "r", 9000)                          // more than the ring's 8,192
	oldest := registryIndex(t, lb.reg, "/instances") - 9000 + 1 // the first registration's index
	// Each case's Last-Event-ID (or query) and expected events, from the
	// index when it runs (the cases before it made changes).
	tests := []struct {
		name   string
		header func(now uint64) string // Last-Event-ID
		query  func(now uint64) string
		want   func(now uint64) []string // "kind index" of the first events, before any new change
		live   bool                      // then a new registration arrives
	}{
		{name: "beyond the current index", header: func(now uint64) string { return fmt.Sprint(now + 1000) }, want: resetAt, live: true},
		{name: "just beyond", header: func(now uint64) string { return fmt.Sprint(now + 1) }, want: resetAt, live: true},
		{name: "beyond, as ?index=", query: func(now uint64) string { return fmt.Sprintf("?index=%d", now+1) }, want: resetAt, live: true},
		{name: "another registry's index", header: func(uint64) string { return "18446744073709551615" }, want: resetAt},
		{name: "out of the ring", header: func(uint64) string { return fmt.Sprint(oldest) }, want: resetAt, live: true},
		{name: "zero", header: func(uint64) string { return "0" }, want: resetAt},
		{name: "in the ring", header: func(now uint64) string { return fmt.Sprint(now - 3) }, want: func(now uint64) []string {
			return []string{fmt.Sprintf("registered %d", now-2), fmt.Sprintf("registered %d", now-1), fmt.Sprintf("registered %d", now)}
		}, live: true},
		{name: "the current index", header: func(now uint64) string { return fmt.Sprint(now) }, want: func(uint64) []string { return nil }, live: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := registryIndex(t, lb.reg, "/instances")
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			target := lb.url + "/events"
			if tt.query != nil {
				target += tt.query(now)
			}
			req, _ := http.NewRequestWithContext(ctx, "GET", target, nil)
			if tt.header != nil {
				req.Header.Set("Last-Event-ID", tt.header(now))
			}
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			sr := newSSEReader(resp.Body)
			want := tt.want(now)
			var got []string
			for range want {
				m, err := sr.next()
				if err != nil {
					t.Fatalf("after %v: %v", got, err)
				}
				got = append(got, m.event+" "+eventIndex(t, m))
			}
			if took := time.Since(start); took > time.Second {
				t.Errorf("the first events came after %v, want at once", took)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if !tt.live {
				return
			}
			id := "live-" + strings.ReplaceAll(tt.name, " ", "-")
			if err := lb.reg.Register(ctx, registry.Registration{ID: id, Name: "app", Version: "1", Host: "h"}); err != nil {
				t.Fatal(err)
			}
			m, err := sr.next()
			if err != nil || m.event != registry.EventRegistered || !strings.Contains(m.data, `"instance_id":"`+id+`"`) {
				t.Errorf("then %+v (%v), want the registration of %s", m, err, id)
			}
		})
	}
	t.Run("not a number", func(t *testing.T) {
		req, _ := http.NewRequest("GET", lb.url+"/events", nil)
		req.Header.Set("Last-Event-ID", "abc")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(string(body), `"loc":["header","Last-Event-ID"]`) {
			t.Errorf("%s %s, want 422 naming Last-Event-ID", resp.Status, body)
		}
	})
}

// resetAt is a reset naming now, alone.
func resetAt(now uint64) []string { return []string{fmt.Sprintf("reset %d", now)} }

// eventIndex is the index in an event's data.
func eventIndex(t *testing.T, m sseMsg) string {
	t.Helper()
	var d struct{ Index uint64 }
	if err := json.Unmarshal([]byte(m.data), &d); err != nil {
		t.Fatalf("event %+v: data: %v", m, err)
	}
	return fmt.Sprint(d.Index)
}

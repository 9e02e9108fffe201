// gate_internal_test.go checks the two small machines of the package on
// their own: the notification gate (one notification per interval per
// session, the last one held rather than lost) and approval states
// (signed, bound to one plan, good once, expiring).

package fleetmcp

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/run"
)

// fakeRequest is a notification request of one session.
type fakeRequest struct {
	mcp.Request
	session mcp.Session
}

func (r fakeRequest) GetSession() mcp.Session { return r.session }

func TestNotifyGate(t *testing.T) {
	const interval = 50 * time.Millisecond
	g := &notifyGate{interval: interval, sessions: map[mcp.Session]*gateState{}}
	var mu sync.Mutex
	sent := map[mcp.Session][]time.Time{}
	done := make(chan struct{}, 10)
	h := g.middleware(func(_ context.Context, method string, req mcp.Request) (mcp.Result, error) {
		mu.Lock()
		sent[req.GetSession()] = append(sent[req.GetSession()], time.Now())
		mu.Unlock()
		done <- struct{}{}
		return nil, nil
	})
	a, b := &mcp.ServerSession{}, &mcp.ServerSession{}
	notify := func(s mcp.Session) {
		h(t.Context(), "notifications/tools/list_changed", fakeRequest{session: s})
	}
	// a: three at once: one now, one at the end of the interval, the third
	// folded into it. b: one, on its own clock.
	notify(a)
	notify(a)
	notify(a)
	notify(b)
	for range 3 {
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("a held notification was not sent")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(sent[a]) != 2 || len(sent[b]) != 1 {
		t.Fatalf("sent %d to a and %d to b, want 2 and 1", len(sent[a]), len(sent[b]))
	}
	if gap := sent[a][1].Sub(sent[a][0]); gap < interval {
		t.Errorf("two notifications %v apart, want at least %v", gap, interval)
	}
	// Other messages pass untouched.
	calls := 0
	g.middleware(func(context.Context, string, mcp.Request) (mcp.Result, error) { calls++; return nil, nil })(
		t.Context(), "notifications/progress", fakeRequest{session: a})
	if calls != 1 {
		t.Errorf("a progress notification was held")
	}
}

func TestApprovals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a := newApprovals(func() time.Time { return now })
	p := &run.Plan{InstanceID: "a1", SSH: []string{"ssh", "--", "web-1", "echo hi"}}
	other := &run.Plan{InstanceID: "a1", SSH: []string{"ssh", "--", "web-1", "echo bye"}}
	s1, s2, s3 := a.issue("deploy", p), a.issue("deploy", p), a.issue("deploy", p)
	tests := []struct {
		name  string
		state string
		tool  string
		plan  *run.Plan
		later time.Duration
		want  error
	}{
		{"good", s1, "deploy", p, 0, nil},
		{"twice", s1, "deploy", p, 0, errStateUsed},
		{"other command", s2, "deploy", other, 0, errStateOther},
		{"other tool", s2, "status", p, 0, errStateOther},
		{"tampered", s2[:len(s2)-2] + "xx", "deploy", p, 0, errStateForged},
		{"another server's", newApprovals(time.Now).issue("deploy", p), "deploy", p, 0, errStateForged},
		{"garbage", "nonsense", "deploy", p, 0, errStateForged},
		{"expired", s3, "deploy", p, approvalTTL + time.Second, errStateExpired},
		{"good after the others", s2, "deploy", p, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			saved := now
			now = now.Add(tt.later)
			defer func() { now = saved }()
			if err := a.redeem(tt.state, tt.tool, tt.plan); !errors.Is(err, tt.want) {
				t.Errorf("redeem: %v, want %v", err, tt.want)
			}
		})
	}
}

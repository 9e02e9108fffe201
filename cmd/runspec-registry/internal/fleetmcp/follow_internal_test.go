// follow_internal_test.go checks the gathering of events between batches:
// a reset replaces what came before it and what comes until the listing
// starts, and too many events are a listing too.

package fleetmcp

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	registry "github.com/runspec/registry"
)

func TestPending(t *testing.T) {
	ev := func(kind string, index uint64) registry.Event {
		return registry.Event{Kind: kind, Index: index, InstanceID: "a"}
	}
	tests := []struct {
		name      string
		add       []registry.Event
		many      int // then this many tools events
		want      []registry.Event
		wantLast  uint64
		wantReset bool
	}{
		{"events in order", []registry.Event{ev("registered", 5), ev("tools", 6)}, 0,
			[]registry.Event{ev("registered", 5), ev("tools", 6)}, 6, false},
		{"a reset replaces what came before", []registry.Event{ev("tools", 5), ev("reset", 9)}, 0, nil, 9, true},
		{"and what comes until the listing", []registry.Event{ev("reset", 9), ev("tools", 10)}, 0, nil, 10, true},
		{"a reset may go back: another registry", []registry.Event{ev("tools", 50), ev("reset", 9)}, 0, nil, 9, true},
		{"too many events are a listing", nil, maxPending + 1, nil, maxPending + 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := pending{kick: make(chan struct{}, 1)}
			for _, e := range tt.add {
				p.add(e)
			}
			for i := range tt.many {
				p.add(ev("tools", uint64(i+1)))
			}
			events, last, reset := p.take()
			if diff := cmp.Diff(tt.want, events, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("events mismatch (-want +got):\n%s", diff)
			}
			if last != tt.wantLast || reset != tt.wantReset {
				t.Errorf("last %d, reset %v; want %d, %v", last, reset, tt.wantLast, tt.wantReset)
			}
			if len(p.kick) != 1 {
				t.Error("adding did not kick the follower")
			}
			if events, _, reset := p.take(); len(events) > 0 || reset {
				t.Errorf("a second take: %v, %v; want nothing", events, reset)
			}
		})
	}
}

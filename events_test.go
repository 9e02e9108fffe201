// events_test.go checks Registry.Events, the change stream of the library:
// it yields what GET /events streams, resets when asked to resume beyond
// the registry's index or past the ring, and ends with the context.

package registry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

func TestEventsResets(t *testing.T) {
	ctx := t.Context()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
	_, meta, _ := reg.Instances(ctx, registry.Filter{})
	for name, after := range map[string]uint64{"beyond the index": meta.Index + 1000, "before the ring": 1} {
		t.Run(name, func(t *testing.T) {
			for e, err := range reg.Events(ctx, after) {
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(registry.Event{Kind: registry.EventReset, Index: meta.Index}, e); diff != "" {
					t.Errorf("first event (-want +got):\n%s", diff)
				}
				break
			}
		})
	}
}

func TestEventsEndWithContext(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	var got []error
	for e, err := range reg.Events(ctx, 0) {
		if err == nil {
			t.Errorf("an event with nothing changing: %+v", e)
		}
		got = append(got, err)
	}
	if len(got) != 1 || !errors.Is(got[0], context.DeadlineExceeded) {
		t.Errorf("Events ended with %v, want one context.DeadlineExceeded", got)
	}
	// ReleaseWaiters ends a stream without an error.
	go reg.ReleaseWaiters()
	for e, err := range reg.Events(t.Context(), 0) {
		t.Errorf("after ReleaseWaiters: %+v, %v", e, err)
	}
}

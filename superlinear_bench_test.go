// superlinear_bench_test.go bounds the write-path steps whose cost could
// grow faster than their input: a tool list of many new tool names, a mass
// deletion of a large fleet past its retention, and a tool offered by many
// hosts re-posted by one of them. Run at several sizes, each should grow
// about linearly (see BENCHMARKS.md).

package registry_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// BenchmarkManyNewToolNames posts one list of n tools whose names no other
// instance offers, into a registry that already knows n other names.
func BenchmarkManyNewToolNames(b *testing.B) {
	for _, n := range []int{1000, 4000, 10000} {
		b.Run(fmt.Sprint("tools=", n), func(b *testing.B) {
			ctx := b.Context()
			reg, err := registry.New(registry.Options{})
			if err != nil {
				b.Fatal(err)
			}
			list := func(prefix string) []json.RawMessage {
				ts := make([]json.RawMessage, n)
				for i := range ts {
					ts[i] = json.RawMessage(fmt.Sprintf(`{"name":"%s-%06d"}`, prefix, i))
				}
				return ts
			}
			reg.Register(ctx, registry.Registration{ID: "base", Name: "n", Version: "1", Host: "h"})
			if err := reg.UpdateTools(ctx, "base", list("base")); err != nil {
				b.Fatal(err)
			}
			lists := [2][]json.RawMessage{list("x"), list("y")}
			reg.Register(ctx, registry.Registration{ID: "a", Name: "n", Version: "1", Host: "h"})
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := reg.UpdateTools(ctx, "a", lists[i%2]); err != nil { // every name new each time
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkMassDeletion deletes a whole fleet of n instances that offer
// the same 20 tools, all past their retention at once.
func BenchmarkMassDeletion(b *testing.B) {
	for _, n := range []int{2000, 8000, 20000} {
		b.Run(fmt.Sprint("agents=", n), func(b *testing.B) {
			ctx := b.Context()
			tools := make([]json.RawMessage, 20)
			for i := range tools {
				tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","x-command":"/bin/t%d"}`, i, i))
			}
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				clock := newFakeClock()
				reg, err := registry.New(registry.Options{Now: clock.Now, RetainInactive: time.Minute})
				if err != nil {
					b.Fatal(err)
				}
				for i := range n {
					id := fmt.Sprint("a", i)
					reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: fmt.Sprint("h", i)})
					reg.UpdateTools(ctx, id, tools)
				}
				clock.Advance(91 * time.Second) // expired
				reg.Purge(ctx)
				clock.Advance(time.Minute) // past the retention
				b.StartTimer()
				if err := reg.Purge(ctx); err != nil { // the deletions
					b.Fatal(err)
				}
				b.StopTimer()
				if st := reg.Stats(); st.Instances != 0 {
					b.Fatalf("%d instances left", st.Instances)
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRepostOnLargeTool re-posts the tool list of one of n instances
// that all offer the same tools (an agent restart), with a changed command
// so that its entries move.
func BenchmarkRepostOnLargeTool(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprint("agents=", n), func(b *testing.B) {
			base := sharedTools("/bin/t")
			reg := sharedFleet(b, n, base)
			alt := [2][]json.RawMessage{sharedTools("/bin/u"), base}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := reg.UpdateTools(b.Context(), "a0", alt[i%2]); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}

// BenchmarkRestartOnLargeTool re-registers one of n instances that all
// offer the same 20 tools, in the middle of the registration order, and
// posts its list again (an agent's restart): the registration takes it out
// of each tool's host list and the post puts it back in its place. Its slot
// is left vacant in between, so neither moves the entries after it, and
// the cost must not grow with n (it did, linearly, before: 0.67 ms at
// 20,000). A rolling restart of the fleet costs n times this.
func BenchmarkRestartOnLargeTool(b *testing.B) {
	for _, n := range []int{2000, 20000} {
		b.Run(fmt.Sprint("agents=", n), func(b *testing.B) {
			tools := sharedTools("/bin/t")
			reg := sharedFleet(b, n, tools)
			mid := registry.Registration{ID: fmt.Sprint("a", n/2), Name: "ops", Version: "1", Host: fmt.Sprint("h", n/2)}
			b.ReportAllocs()
			for b.Loop() {
				if err := reg.Register(b.Context(), mid); err != nil {
					b.Fatal(err)
				}
				if err := reg.UpdateTools(b.Context(), mid.ID, tools); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// sharedTools is a list of 20 tools, tool-0 to tool-19, that run cmd.
func sharedTools(cmd string) []json.RawMessage {
	ts := make([]json.RawMessage, 20)
	for i := range ts {
		ts[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","x-command":%q}`, i, cmd))
	}
	return ts
}

// sharedFleet is an in-memory registry of n instances, a0… on hosts h0…,
// that all offer tools.
func sharedFleet(b *testing.B, n int, tools []json.RawMessage) *registry.Registry {
	b.Helper()
	reg, err := registry.New(registry.Options{})
	if err != nil {
		b.Fatal(err)
	}
	for i := range n {
		id := fmt.Sprint("a", i)
		if err := reg.Register(b.Context(), registry.Registration{ID: id, Name: "ops", Version: "1", Host: fmt.Sprint("h", i)}); err != nil {
			b.Fatal(err)
		}
		if err := reg.UpdateTools(b.Context(), id, tools); err != nil {
			b.Fatal(err)
		}
	}
	return reg
}

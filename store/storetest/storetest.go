// Package storetest is the conformance suite that every registry.Store
// implementation runs: call Run from a test of the implementation's package
// with a function that opens a store.
//
// The suite checks what the Registry relies on: every Record field survives
// a round trip (the owner and labels included) (times compared with Equal, nil and empty tool lists told
// apart, a nil System kept nil), Put replaces, SetStates changes only the
// liveness fields, Touch keeps the later LastSeen and a stored System when
// given none, SetStates, Touch and Delete skip ids that are not stored, Load
// returns its callback's error, large records and many records work,
// concurrent writes from many goroutines end in the state a sequential model
// predicts, and a store opened again on the same directory sees the same
// records.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// An Opener opens the store whose data lives in dir, creating it if dir
// holds none. The suite calls it again with the same dir, after closing the
// first store, to check that the data survives; a store that keeps no files
// must then return one with the same records.
//
// The suite closes every store it opens that implements io.Closer.
type Opener func(t *testing.T, dir string) registry.Store

// Run runs the conformance suite against the stores that open returns. Each
// subtest opens its own store in a new directory.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"RoundTrip", testRoundTrip},
		{"PutReplaces", testPutReplaces},
		{"SetStates", testSetStates},
		{"Touch", testTouch},
		{"Delete", testDelete},
		{"Empty", testEmpty},
		{"ManyTools", testManyTools},
		{"ManyRecords", testManyRecords},
		{"Concurrent", testConcurrent},
		{"LoadError", testLoadError},
		{"Reopen", testReopen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

// A handle is an open store that the test closes at its end, or earlier to
// reopen it.
type handle struct {
	registry.Store
	close func()
}

func start(t *testing.T, open Opener, dir string) handle {
	t.Helper()
	st := open(t, dir)
	if st == nil {
		t.Fatalf("open(%q) returned nil", dir)
	}
	var once sync.Once
	h := handle{Store: st, close: func() {
		once.Do(func() {
			if c, ok := st.(io.Closer); ok {
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}}
	t.Cleanup(h.close)
	return h
}

// base is a time with nanoseconds and a location, as stores must keep them.
var base = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.FixedZone("X", 5*3600+1800))

func at(d time.Duration) time.Time { return base.Add(d) }

// tool returns the i-th tool object of a list, padded to about size bytes.
func tool(i, size int) json.RawMessage {
	pad := ""
	if size > 60 {
		pad = strings.Repeat("x", size-60)
	}
	return json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","description":%q,"x-command":"run %d"}`, i, pad, i))
}

func tools(n, size int) []json.RawMessage {
	ts := make([]json.RawMessage, n)
	for i := range ts {
		ts[i] = tool(i, size)
	}
	return ts
}

func system(s string) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"os":"linux","note":%q}`, s))
}

// record returns a full active record for id.
func record(id string, seq uint64) registry.Record {
	return registry.Record{
		ID: id, Name: "agent-" + id, Version: "1.2.3", Host: "host-" + id,
		Owner:             "owner-" + id,
		Labels:            map[string]string{"env": "prod", "zone": "b-" + id},
		Seq:               seq,
		Registered:        at(time.Duration(seq) * time.Second),
		LastSeen:          at(time.Duration(seq)*time.Second + 1500*time.Millisecond),
		HeartbeatInterval: 30 * time.Second,
		Active:            true,
		Tools:             tools(3, 100),
		System:            system(id),
	}
}

func put(t *testing.T, st registry.Store, recs ...registry.Record) {
	t.Helper()
	for _, rec := range recs {
		if err := st.Put(context.Background(), rec); err != nil {
			t.Fatalf("Put(%q): %v", rec.ID, err)
		}
	}
}

// load returns the stored records by id.
func load(t *testing.T, st registry.Store) map[string]registry.Record {
	t.Helper()
	got := make(map[string]registry.Record)
	err := st.Load(context.Background(), func(rec registry.Record) error {
		if _, dup := got[rec.ID]; dup {
			return fmt.Errorf("record %q loaded twice", rec.ID)
		}
		got[rec.ID] = rec
		return nil
	})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return got
}

// check loads st and compares its records with want.
func check(t *testing.T, st registry.Store, want map[string]registry.Record) {
	t.Helper()
	if d := diffRecords(want, load(t, st)); d != "" {
		t.Errorf("stored records differ from the model (-want +got):\n%s", d)
	}
}

func byID(recs ...registry.Record) map[string]registry.Record {
	m := make(map[string]registry.Record, len(recs))
	for _, rec := range recs {
		m[rec.ID] = rec
	}
	return m
}

// A model applies writes as the Store contract says, for comparison.
type model map[string]registry.Record

func (m model) put(rec registry.Record) { m[rec.ID] = rec }

func (m model) update(states []registry.State) {
	for _, st := range states {
		if rec, ok := m[st.ID]; ok {
			rec.Active, rec.InactiveSince = st.Active, st.InactiveSince
			if st.LastSeen.After(rec.LastSeen) {
				rec.LastSeen = st.LastSeen
			}
			m[st.ID] = rec
		}
	}
}

func (m model) touch(seen []registry.Seen) {
	for _, s := range seen {
		if rec, ok := m[s.ID]; ok {
			if s.LastSeen.After(rec.LastSeen) {
				rec.LastSeen = s.LastSeen
			}
			if s.System != nil {
				rec.System = s.System
			}
			m[s.ID] = rec
		}
	}
}

func (m model) delete(ids []string) {
	for _, id := range ids {
		delete(m, id)
	}
}

func testRoundTrip(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	full := record("full", 1)
	inactive := record("inactive", 2)
	inactive.Active = false
	inactive.InactiveSince = at(time.Hour + 7*time.Nanosecond)
	noTools := record("no-tools", 3)
	noTools.Tools = nil
	emptyTools := record("empty-tools", 4)
	emptyTools.Tools = []json.RawMessage{}
	noSystem := record("no-system", 5)
	noSystem.System = nil
	odd := record("odd", 1<<63+5)
	odd.Name, odd.Version, odd.Host = "名前 \"quoted\"", "", "ホスト.example"
	odd.HeartbeatInterval = registry.MaxHeartbeatInterval
	odd.Registered = time.Date(1969, 7, 20, 20, 17, 40, 1, time.UTC)
	odd.LastSeen = time.Date(2300, 1, 1, 0, 0, 0, 999999999, time.Local)
	odd.System = json.RawMessage(`{"nested":{"a":[1,2,{"b":null}]},"big":"` + strings.Repeat("s", 10000) + `"}`)
	long := record(strings.Repeat("i", registry.MaxFieldBytes), 7)
	long.Name, long.Host = strings.Repeat("n", registry.MaxFieldBytes), strings.Repeat("h", registry.MaxFieldBytes)
	long.HeartbeatInterval = 1500 * time.Millisecond
	recs := []registry.Record{full, inactive, noTools, emptyTools, noSystem, odd, long}
	put(t, st, recs...)
	check(t, st, byID(recs...))
}

func testPutReplaces(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	first := record("a", 1)
	put(t, st, first, record("b", 2))

	second := registry.Record{ID: "a", Name: "renamed", Version: "2", Host: "elsewhere", Seq: 1,
		Registered: at(time.Hour), LastSeen: at(time.Hour), HeartbeatInterval: time.Minute, Active: true}
	put(t, st, second)
	check(t, st, byID(second, record("b", 2)))

	third := second
	third.Tools = tools(5, 200)
	third.System = system("third")
	put(t, st, third)
	check(t, st, byID(third, record("b", 2)))
}

func testSetStates(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	m := model{}
	for i, id := range []string{"a", "b", "c"} {
		rec := record(id, uint64(i+1))
		put(t, st, rec)
		m.put(rec)
	}
	ctx := context.Background()
	steps := [][]registry.State{
		{
			{ID: "a", Active: false, LastSeen: at(time.Minute), InactiveSince: at(2 * time.Minute)},
			{ID: "unknown", Active: false, LastSeen: at(time.Minute), InactiveSince: at(time.Minute)},
			{ID: "c", Active: true, LastSeen: at(-time.Hour)}, // an older LastSeen is ignored
		},
		{{ID: "a", Active: true, LastSeen: at(3 * time.Minute)}}, // revived: InactiveSince zero
		{},
	}
	for i, states := range steps {
		if err := st.SetStates(ctx, states); err != nil {
			t.Fatalf("step %d: SetStates: %v", i, err)
		}
		m.update(states)
		check(t, st, m)
	}
}

func testTouch(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	m := model{}
	a, b, c := record("a", 1), record("b", 2), record("c", 3)
	b.System = nil
	c.Active, c.InactiveSince = false, at(time.Hour)
	for _, rec := range []registry.Record{a, b, c} {
		put(t, st, rec)
		m.put(rec)
	}
	ctx := context.Background()
	steps := [][]registry.Seen{
		{
			{ID: "a", LastSeen: a.LastSeen.Add(time.Minute)},                        // later, System kept
			{ID: "b", LastSeen: b.LastSeen.Add(-time.Minute), System: system("b1")}, // earlier: only System
			{ID: "c", LastSeen: c.LastSeen.Add(time.Minute)},                        // liveness state kept
			{ID: "unknown", LastSeen: at(time.Hour), System: system("u")},
		},
		{
			{ID: "a", LastSeen: a.LastSeen.Add(time.Minute), System: system("a1")}, // equal time
			{ID: "b", LastSeen: b.LastSeen.Add(time.Hour)},
		},
		{},
	}
	for i, seen := range steps {
		if err := st.Touch(ctx, seen); err != nil {
			t.Fatalf("step %d: Touch: %v", i, err)
		}
		m.touch(seen)
		check(t, st, m)
	}
}

func testDelete(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	m := model{}
	for i, id := range []string{"a", "b", "c"} {
		rec := record(id, uint64(i+1))
		put(t, st, rec)
		m.put(rec)
	}
	ctx := context.Background()
	for i, ids := range [][]string{{"a", "unknown", "a"}, {}, {"a"}, {"b", "c"}} {
		if err := st.Delete(ctx, ids); err != nil {
			t.Fatalf("step %d: Delete(%q): %v", i, ids, err)
		}
		m.delete(ids)
		check(t, st, m)
	}
	again := record("a", 9)
	again.Tools = nil
	put(t, st, again)
	m.put(again)
	check(t, st, m)
}

func testEmpty(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	ctx := context.Background()
	check(t, st, model{})
	if err := st.SetStates(ctx, []registry.State{{ID: "x", Active: true, LastSeen: base}}); err != nil {
		t.Fatalf("SetStates: %v", err)
	}
	if err := st.Touch(ctx, []registry.Seen{{ID: "x", LastSeen: base, System: system("x")}}); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if err := st.Delete(ctx, []string{"x"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	check(t, st, model{})
}

func testManyTools(t *testing.T, open Opener) {
	dir := t.TempDir()
	st := start(t, open, dir)
	m := model{}
	rec := record("big", 1)
	rec.Tools = tools(registry.DefaultMaxTools, 300)
	put(t, st, rec, record("small", 2))
	m.put(rec)
	m.put(record("small", 2))
	check(t, st, m)

	// Liveness writes keep the tool list.
	ctx := context.Background()
	states := []registry.State{{ID: "big", Active: false, LastSeen: at(time.Hour), InactiveSince: at(time.Hour)}}
	seen := []registry.Seen{{ID: "big", LastSeen: at(2 * time.Hour), System: system("new")}}
	if err := st.SetStates(ctx, states); err != nil {
		t.Fatalf("SetStates: %v", err)
	}
	if err := st.Touch(ctx, seen); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	m.update(states)
	m.touch(seen)
	check(t, st, m)

	st.close()
	check(t, start(t, open, dir), m)
}

// parallel runs fn(i) for i in [0, n) on workers goroutines, and fails t with
// the first error.
func parallel(t *testing.T, n, workers int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	func() {
		defer close(next)
		for i := range n {
			select {
			case next <- i:
			case err := <-errs:
				errs <- err
				return
			}
		}
	}()
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func testManyRecords(t *testing.T, open Opener) {
	const n = 5000
	dir := t.TempDir()
	st := start(t, open, dir)
	m := model{}
	recs := make([]registry.Record, n)
	for i := range recs {
		recs[i] = record(fmt.Sprintf("inst-%05d", i), uint64(i+1))
		switch i % 3 {
		case 1:
			recs[i].Tools = nil
		case 2:
			recs[i].Tools = tools(i%50, 200)
		}
		m.put(recs[i])
	}
	ctx := context.Background()
	parallel(t, n, 16, func(i int) error { return st.Put(ctx, recs[i]) })
	check(t, st, m)

	var ids []string
	for i := 0; i < n; i += 2 {
		ids = append(ids, recs[i].ID)
	}
	if err := st.Delete(ctx, ids); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	m.delete(ids)
	check(t, st, m)
	st.close()
	check(t, start(t, open, dir), m)
}

// testConcurrent runs random writes from many goroutines, each on ids of its
// own (the Registry serializes the writes for one id), while others Load, and
// compares the result with a model.
func testConcurrent(t *testing.T, open Opener) {
	const (
		workers = 16
		ops     = 150
		ids     = 8
	)
	dir := t.TempDir()
	st := start(t, open, dir)
	ctx := context.Background()
	models := make([]model, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers+2)
	stop := make(chan struct{})
	// Readers load a few times while the writers run (a store loads once,
	// at start-up, but must not break under concurrent writes).
	for r := range 2 {
		wg.Go(func() {
			for range 10 {
				select {
				case <-stop:
					return
				default:
				}
				err := st.Load(ctx, func(rec registry.Record) error {
					if !strings.HasPrefix(rec.ID, "w") {
						return fmt.Errorf("unexpected id %q", rec.ID)
					}
					return nil
				})
				if err != nil {
					errs <- fmt.Errorf("reader %d: Load: %w", r, err)
					return
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range workers {
		m := model{}
		models[w] = m
		writers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			id := func() string { return fmt.Sprintf("w%02d-%d", w, rng.IntN(ids)) }
			someIDs := func() []string {
				out := make([]string, 1+rng.IntN(3))
				for i := range out {
					out[i] = id()
				}
				return out
			}
			for op := range ops {
				now := at(time.Duration(op) * time.Second)
				var err error
				switch k := rng.IntN(10); {
				case k < 4:
					rec := record(id(), uint64(w*ops+op+1))
					rec.LastSeen = now
					switch rng.IntN(3) {
					case 0:
						rec.Tools = nil
					case 1:
						rec.Tools = tools(rng.IntN(20), 150)
					}
					if rng.IntN(2) == 0 {
						rec.System = nil
					}
					err = st.Put(ctx, rec)
					m.put(rec)
				case k < 6:
					var states []registry.State
					for _, id := range someIDs() {
						s := registry.State{ID: id, Active: rng.IntN(2) == 0, LastSeen: now}
						if !s.Active {
							s.InactiveSince = now.Add(time.Millisecond)
						}
						states = append(states, s)
					}
					err = st.SetStates(ctx, states)
					m.update(states)
				case k < 8:
					var seen []registry.Seen
					for _, id := range someIDs() {
						s := registry.Seen{ID: id, LastSeen: now.Add(time.Duration(rng.IntN(3)-1) * time.Minute)}
						if rng.IntN(2) == 0 {
							s.System = system(fmt.Sprint(op))
						}
						seen = append(seen, s)
					}
					err = st.Touch(ctx, seen)
					m.touch(seen)
				default:
					del := someIDs()
					err = st.Delete(ctx, del)
					m.delete(del)
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d op %d: %w", w, op, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	all := model{}
	for _, m := range models {
		maps.Copy(all, m)
	}
	check(t, st, all)
	st.close()
	check(t, start(t, open, dir), all)
}

func testLoadError(t *testing.T, open Opener) {
	st := start(t, open, t.TempDir())
	put(t, st, record("a", 1), record("b", 2), record("c", 3))

	errStop := errors.New("stop")
	calls := 0
	err := st.Load(context.Background(), func(registry.Record) error {
		calls++
		return fmt.Errorf("wrapped: %w", errStop)
	})
	if !errors.Is(err, errStop) {
		t.Errorf("Load returned %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("Load called fn %d times after its error, want 1", calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = st.Load(ctx, func(registry.Record) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Load with a canceled context returned %v, want context.Canceled", err)
	}
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	ctx := context.Background()
	st := start(t, open, dir)
	m := model{}
	for i := range 20 {
		rec := record(fmt.Sprintf("r%02d", i), uint64(i+1))
		put(t, st, rec)
		m.put(rec)
	}
	states := []registry.State{{ID: "r01", Active: false, LastSeen: at(time.Hour), InactiveSince: at(time.Hour)}}
	seen := []registry.Seen{{ID: "r02", LastSeen: at(time.Hour), System: system("r02")}, {ID: "r03", LastSeen: at(time.Hour)}}
	if err := st.SetStates(ctx, states); err != nil {
		t.Fatalf("SetStates: %v", err)
	}
	if err := st.Touch(ctx, seen); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	if err := st.Delete(ctx, []string{"r04", "r05"}); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	m.update(states)
	m.touch(seen)
	m.delete([]string{"r04", "r05"})
	st.close()

	st = start(t, open, dir)
	check(t, st, m)
	rec := record("new", 100)
	put(t, st, rec)
	m.put(rec)
	st.close()
	check(t, start(t, open, dir), m)
}

// diffRecords describes how got differs from want, or returns "".
func diffRecords(want, got map[string]registry.Record) string {
	var b strings.Builder
	ids := slices.Sorted(maps.Keys(want))
	for _, id := range ids {
		g, ok := got[id]
		if !ok {
			fmt.Fprintf(&b, "-%q: missing\n", id)
			continue
		}
		for _, d := range diffRecord(want[id], g) {
			fmt.Fprintf(&b, " %q: %s\n", id, d)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[id]; !ok {
			fmt.Fprintf(&b, "+%q: not expected\n", id)
		}
	}
	const limit = 4000
	if b.Len() > limit {
		return b.String()[:limit] + "…\n"
	}
	return b.String()
}

// diffRecord compares two records field by field: times with Equal, JSON by
// value, and nil apart from empty for Tools and System.
func diffRecord(want, got registry.Record) []string {
	var d []string
	field := func(name string, w, g any) {
		d = append(d, fmt.Sprintf("%s: -%v +%v", name, w, g))
	}
	if want.ID != got.ID {
		field("ID", want.ID, got.ID)
	}
	if want.Name != got.Name {
		field("Name", want.Name, got.Name)
	}
	if want.Version != got.Version {
		field("Version", want.Version, got.Version)
	}
	if want.Host != got.Host {
		field("Host", want.Host, got.Host)
	}
	if want.Seq != got.Seq {
		field("Seq", want.Seq, got.Seq)
	}
	if want.Owner != got.Owner {
		field("Owner", want.Owner, got.Owner)
	}
	if !maps.Equal(want.Labels, got.Labels) || (want.Labels == nil) != (got.Labels == nil) {
		field("Labels", want.Labels, got.Labels)
	}
	for _, tt := range []struct {
		name string
		w, g time.Time
	}{
		{"Registered", want.Registered, got.Registered},
		{"LastSeen", want.LastSeen, got.LastSeen},
		{"InactiveSince", want.InactiveSince, got.InactiveSince},
	} {
		if !tt.w.Equal(tt.g) || tt.w.IsZero() != tt.g.IsZero() {
			field(tt.name, tt.w, tt.g)
		}
	}
	if want.HeartbeatInterval != got.HeartbeatInterval {
		field("HeartbeatInterval", want.HeartbeatInterval, got.HeartbeatInterval)
	}
	if want.Active != got.Active {
		field("Active", want.Active, got.Active)
	}
	switch {
	case (want.Tools == nil) != (got.Tools == nil):
		field("Tools nil", want.Tools == nil, got.Tools == nil)
	case len(want.Tools) != len(got.Tools):
		field("len(Tools)", len(want.Tools), len(got.Tools))
	default:
		for i := range want.Tools {
			if !jsonEqual(want.Tools[i], got.Tools[i]) {
				field(fmt.Sprintf("Tools[%d]", i), string(want.Tools[i]), string(got.Tools[i]))
				break
			}
		}
	}
	switch {
	case (want.System == nil) != (got.System == nil):
		field("System nil", want.System == nil, got.System == nil)
	case !jsonEqual(want.System, got.System):
		field("System", string(want.System), string(got.System))
	}
	return d
}

// jsonEqual reports whether a and b hold the same JSON value: a store may
// keep JSON in another form than the bytes it was given.
func jsonEqual(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}

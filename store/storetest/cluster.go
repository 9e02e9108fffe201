// cluster.go is the conformance suite of registry.Cluster implementations
// (store/etcd, store/memcluster): call RunCluster from a test of the
// implementation's package.

package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/runspec/registry"
)

// A ClusterHarness gives the Cluster suite handles on one shared cluster.
type ClusterHarness struct {
	// Open returns a new handle on the cluster's shared state (for etcd,
	// a new client on the same prefix), as a second replica would have.
	// The suite closes every handle that implements io.Closer.
	Open func(t *testing.T) registry.Cluster
	// Compact discards the cluster's history up to its current revision,
	// so that a Watch from an older revision must re-list (Reset).
	Compact func(t *testing.T)
	// PageSize is the most records one page of the Cluster's snapshots
	// holds. The suite checks it, and writes fleets of more than two pages
	// to check that snapshots and re-lists are paged. If zero, 100.
	PageSize int
}

// pageSize is h.PageSize or its default.
func (h ClusterHarness) pageSize() int {
	if h.PageSize > 0 {
		return h.PageSize
	}
	return 100
}

// A ClusterOpener returns a harness on a new, empty cluster (for etcd, a new
// prefix).
type ClusterOpener func(t *testing.T) ClusterHarness

// RunCluster runs the Cluster conformance suite. Each subtest opens its own
// cluster. It checks what a replica relies on: every Record field survives
// Register and Snapshot, the Cluster orders ids (Seq) and keeps a stored
// id's place, each write returns the revision that Watch then delivers as
// one Change, in order, writes that change nothing return 0, SetTools keeps
// liveness and delivers a list (a registration none, even at the same
// instant as the one before), Deactivate and Activate change only liveness
// (a Deactivate of an inactive record keeps when it went inactive),
// KeepAlive extends a lease and a lease that ends makes its instance
// inactive, Touch keeps the later last_seen and system, DeleteInactive
// spares active records, a second handle sees the first's writes, a
// compacted history makes Watch deliver a Reset, snapshots and the re-lists
// after a compaction come in pages (Reset on each, More on all but the last,
// in registration order, at most PageSize records each), and concurrent
// writers end in the state a sequential model predicts.
func RunCluster(t *testing.T, open ClusterOpener) {
	tests := []struct {
		name string
		fn   func(*testing.T, ClusterHarness)
	}{
		{"RegisterSnapshot", testClusterRegister},
		{"Revisions", testClusterRevisions},
		{"SetTools", testClusterSetTools},
		{"SameInstantRegistration", testClusterSameInstantRegistration},
		{"Liveness", testClusterLiveness},
		{"LeaseEnds", testClusterLeaseEnds},
		{"Touch", testClusterTouch},
		{"DeleteInactive", testClusterDeleteInactive},
		{"SecondHandle", testClusterSecondHandle},
		{"Ownership", testClusterOwnership},
		{"Compaction", testClusterCompaction},
		{"SnapshotPages", testClusterSnapshotPages},
		{"CompactionPaged", testClusterCompactionPaged},
		{"Concurrent", testClusterConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open(t)) })
	}
}

// clusterHandle opens a handle and closes it at the end of the test.
func clusterHandle(t *testing.T, h ClusterHarness) registry.Cluster {
	t.Helper()
	c := h.Open(t)
	if cl, ok := c.(interface{ Close() error }); ok {
		t.Cleanup(func() {
			if err := cl.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
	}
	return c
}

// clusterRecord is an active record for id, with Seq left to the Cluster.
func clusterRecord(id string) registry.Record {
	now := time.Now().Round(0)
	return registry.Record{ID: id, Name: "ops-" + id, Version: "1", Host: "host-" + id, Owner: "owner-" + id,
		Labels:     map[string]string{"env": "test"},
		Registered: now, LastSeen: now, HeartbeatInterval: time.Minute, Active: true}
}

func snapshot(t *testing.T, c registry.Cluster) (uint64, map[string]registry.Record) {
	t.Helper()
	rev, pages := snapshotPages(t, c)
	recs := make(map[string]registry.Record)
	for _, rc := range records(pages) {
		recs[rc.ID] = rc.Record
	}
	return rev, recs
}

// snapshotPages takes a snapshot and checks that its pages are one: Reset
// on each, More on all but the last, the Rev Snapshot returned on all.
func snapshotPages(t *testing.T, c registry.Cluster) (uint64, []registry.Change) {
	t.Helper()
	var pages []registry.Change
	rev, err := c.Snapshot(t.Context(), func(ch registry.Change) { pages = append(pages, ch) })
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := checkPages(pages); err != nil {
		t.Errorf("Snapshot: %v", err)
	}
	if len(pages) > 0 && pages[0].Rev != rev {
		t.Errorf("Snapshot returned revision %d, its pages are at %d", rev, pages[0].Rev)
	}
	return rev, pages
}

// checkPages checks that pages are the pages of one snapshot: at least one,
// each Reset at the first one's Rev, More on all but the last, no deleted
// record, and the records in Seq order across the pages, each id once.
func checkPages(pages []registry.Change) error {
	if len(pages) == 0 {
		return errors.New("no page delivered")
	}
	seen := make(map[string]bool)
	var last uint64
	for i, p := range pages {
		switch {
		case !p.Reset:
			return fmt.Errorf("page %d of %d: Reset is false", i+1, len(pages))
		case p.Rev != pages[0].Rev:
			return fmt.Errorf("page %d of %d at revision %d, the first at %d", i+1, len(pages), p.Rev, pages[0].Rev)
		case p.More != (i < len(pages)-1):
			return fmt.Errorf("page %d of %d: More is %v", i+1, len(pages), p.More)
		}
		for _, rc := range p.Records {
			switch {
			case rc.Deleted:
				return fmt.Errorf("page %d holds a deleted record %q", i+1, rc.ID)
			case seen[rc.ID]:
				return fmt.Errorf("page %d holds %q again", i+1, rc.ID)
			case rc.Seq <= last:
				return fmt.Errorf("page %d: %q (seq %d) after seq %d: not in Seq order", i+1, rc.ID, rc.Seq, last)
			}
			seen[rc.ID], last = true, rc.Seq
		}
	}
	return nil
}

// records are the records of pages, in order.
func records(pages []registry.Change) []registry.RecordChange {
	var out []registry.RecordChange
	for _, p := range pages {
		out = append(out, p.Records...)
	}
	return out
}

// wrote checks the answer of a write that changes a record: no error, and
// the revision it committed.
func wrote(t *testing.T, what string) func(uint64, error) uint64 {
	return func(rev uint64, err error) uint64 {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if rev == 0 {
			t.Fatalf("%s changed a record but returned revision 0", what)
		}
		return rev
	}
}

func testClusterRegister(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	a := clusterRecord("a")
	a.Tools = []json.RawMessage{tool(1, 100), tool(2, 3000)}
	b := clusterRecord("b")
	b.Active, b.InactiveSince = false, a.LastSeen.Add(-time.Second)
	empty := clusterRecord("c")
	empty.Tools = []json.RawMessage{}
	for _, rec := range []registry.Record{a, b, empty} {
		wrote(t, "Register "+rec.ID)(c.Register(ctx, rec, ""))
	}
	_, got := snapshot(t, c)
	if len(got) != 3 {
		t.Fatalf("Snapshot has %d records, want 3", len(got))
	}
	// The Cluster orders ids: each new id after the ones before.
	if !(got["a"].Seq > 0 && got["a"].Seq < got["b"].Seq && got["b"].Seq < got["c"].Seq) {
		t.Errorf("Seq not in registration order: a %d, b %d, c %d", got["a"].Seq, got["b"].Seq, got["c"].Seq)
	}
	for _, want := range []registry.Record{a, b, empty} {
		want.Seq = got[want.ID].Seq
		if d := diffRecord(want, got[want.ID]); d != nil {
			t.Errorf("record %s: %v", want.ID, d)
		}
	}
	// A stored id registered again keeps its place.
	a2 := clusterRecord("a")
	a2.Name = "renamed"
	wrote(t, "Register a again")(c.Register(ctx, a2, ""))
	_, got2 := snapshot(t, c)
	if got2["a"].Seq != got["a"].Seq || got2["a"].Name != "renamed" || got2["a"].Tools != nil {
		t.Errorf("re-registered a: seq %d (was %d), name %q, tools %v; want its place, the new name, no tools",
			got2["a"].Seq, got["a"].Seq, got2["a"].Name, got2["a"].Tools)
	}
}

// watcher follows a Cluster's changes in the background.
type watcher struct {
	mu      sync.Mutex
	changes []registry.Change
	cond    chan struct{}
}

func watch(t *testing.T, c registry.Cluster, from uint64) *watcher {
	t.Helper()
	w := &watcher{cond: make(chan struct{}, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Watch(ctx, from, func(ch registry.Change) {
			w.mu.Lock()
			w.changes = append(w.changes, ch)
			w.mu.Unlock()
			select {
			case w.cond <- struct{}{}:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// until waits up to 10 s for the changes seen to satisfy ok.
func (w *watcher) until(t *testing.T, what string, ok func([]registry.Change) bool) []registry.Change {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		w.mu.Lock()
		chs := slices.Clone(w.changes)
		w.mu.Unlock()
		if ok(chs) {
			return chs
		}
		select {
		case <-w.cond:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waiting for %s: %d changes seen: %+v", what, len(chs), summary(chs))
		}
	}
}

// upTo is a condition: a change with revision rev (or later) was seen.
func upTo(rev uint64) func([]registry.Change) bool {
	return func(chs []registry.Change) bool { return len(chs) > 0 && chs[len(chs)-1].Rev >= rev }
}

func summary(chs []registry.Change) []string {
	var out []string
	for _, ch := range chs {
		s := fmt.Sprintf("rev %d", ch.Rev)
		if ch.Reset {
			s += " reset"
		}
		if ch.More {
			s += " more"
		}
		for _, rc := range ch.Records {
			s += fmt.Sprintf(" %s(active %v deleted %v fields %v)", rc.ID, rc.Active, rc.Deleted, rc.Fields)
		}
		out = append(out, s)
	}
	return out
}

// The revision a write returns is the one Watch delivers it with, one
// Change per revision, in order; a write that changes nothing returns 0.
func testClusterRevisions(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	w := watch(t, c, start)
	var revs []uint64
	rec := clusterRecord("r")
	revs = append(revs, wrote(t, "Register")(c.Register(ctx, rec, "")))
	revs = append(revs, wrote(t, "SetTools")(c.SetTools(ctx, "r", "", []json.RawMessage{tool(1, 50)})))
	revs = append(revs, wrote(t, "Deactivate")(c.Deactivate(ctx, "r", "", rec.LastSeen, rec.LastSeen.Add(time.Second))))
	revs = append(revs, wrote(t, "Activate")(c.Activate(ctx, "r", "", rec.LastSeen.Add(2*time.Second))))
	revs = append(revs, wrote(t, "Deactivate")(c.Deactivate(ctx, "r", "", time.Time{}, rec.LastSeen.Add(3*time.Second))))
	revs = append(revs, wrote(t, "DeleteInactive")(c.DeleteInactive(ctx, []string{"r"})))
	if !slices.IsSorted(revs) || len(slices.Compact(slices.Clone(revs))) != len(revs) {
		t.Errorf("revisions of successive writes are not increasing: %v", revs)
	}
	for _, nothing := range []struct {
		what string
		do   func() (uint64, error)
	}{
		{"Deactivate of an unknown id", func() (uint64, error) { return c.Deactivate(ctx, "nobody", "", time.Time{}, time.Now()) }},
		{"Activate of an unknown id", func() (uint64, error) { return c.Activate(ctx, "nobody", "", time.Now()) }},
		{"DeleteInactive of an unknown id", func() (uint64, error) { return c.DeleteInactive(ctx, []string{"nobody"}) }},
	} {
		if rev, err := nothing.do(); err != nil || rev != 0 {
			t.Errorf("%s = %d, %v; want 0, nil", nothing.what, rev, err)
		}
	}
	if _, err := c.SetTools(ctx, "nobody", "", []json.RawMessage{}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("SetTools of an unknown id = %v, want ErrNotFound", err)
	}
	chs := w.until(t, "every write", upTo(revs[len(revs)-1]))
	var got []uint64
	for _, ch := range chs {
		if len(ch.Records) > 0 {
			got = append(got, ch.Rev)
		}
	}
	if !slices.Equal(got, revs) {
		t.Errorf("Watch delivered revisions %v, the writes returned %v", got, revs)
	}
	kinds := func(ch registry.Change) string {
		rc := ch.Records[0]
		switch {
		case rc.Deleted:
			return "deleted"
		case rc.Fields:
			return fmt.Sprintf("fields(active %v, %d tools)", rc.Active, len(rc.Tools))
		}
		return fmt.Sprintf("liveness(active %v)", rc.Active)
	}
	var gotKinds []string
	for _, ch := range chs {
		if len(ch.Records) > 0 {
			gotKinds = append(gotKinds, kinds(ch))
		}
	}
	want := []string{"fields(active true, 0 tools)", "fields(active true, 1 tools)", "liveness(active false)",
		"liveness(active true)", "liveness(active false)", "deleted"}
	if !slices.Equal(gotKinds, want) {
		t.Errorf("changes delivered:\n got %v\nwant %v", gotKinds, want)
	}
}

func testClusterSetTools(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	rec := clusterRecord("s")
	wrote(t, "Register")(c.Register(ctx, rec, ""))
	wrote(t, "Deactivate")(c.Deactivate(ctx, "s", "", rec.LastSeen, rec.LastSeen.Add(time.Second)))
	tools := []json.RawMessage{tool(1, 80), tool(2, 80), tool(3, 5000)}
	wrote(t, "SetTools")(c.SetTools(ctx, "s", "", tools))
	_, got := snapshot(t, c)
	s := got["s"]
	if s.Active || len(s.Tools) != 3 || !jsonEqual(s.Tools[2], tools[2]) {
		t.Errorf("after SetTools on an inactive record: active %v, %d tools; want inactive with the 3 tools", s.Active, len(s.Tools))
	}
	wrote(t, "SetTools []")(c.SetTools(ctx, "s", "", []json.RawMessage{}))
	if _, got := snapshot(t, c); got["s"].Tools == nil || len(got["s"].Tools) != 0 {
		t.Errorf("after posting an empty list: %v, want an empty, non-nil list", got["s"].Tools)
	}
}

// A registration that replaces a record at the same instant (Registered)
// as the one before it is told from a tool post by its list: a replica
// takes a watched change with Fields and no list for a registration, so a
// tool post, of an empty list too, must deliver one.
func testClusterSameInstantRegistration(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	w := watch(t, c, start)
	rec := clusterRecord("same")
	wrote(t, "Register")(c.Register(ctx, rec, ""))
	posts := make(map[uint64]bool)
	posts[wrote(t, "SetTools")(c.SetTools(ctx, "same", "", []json.RawMessage{tool(1, 50)}))] = true
	posts[wrote(t, "SetTools []")(c.SetTools(ctx, "same", "", []json.RawMessage{}))] = true
	again := rec // the same Registered
	again.Name = "renamed"
	last := wrote(t, "Register again")(c.Register(ctx, again, ""))
	for _, ch := range w.until(t, "every write", upTo(last)) {
		for _, rc := range ch.Records {
			switch {
			case posts[ch.Rev] && (!rc.Fields || rc.Tools == nil):
				t.Errorf("the tool post at revision %d delivered Fields %v, list %v; want Fields and a list", ch.Rev, rc.Fields, rc.Tools)
			case ch.Rev == last && (!rc.Fields || rc.Tools != nil || rc.Name != "renamed" || !rc.Registered.Equal(rec.Registered)):
				t.Errorf("the registration at the same instant delivered Fields %v, list %v, name %q, registered %v; want Fields, no list, %q, %v",
					rc.Fields, rc.Tools, rc.Name, rc.Registered, again.Name, rec.Registered)
			}
		}
	}
}

// KeepAlive answers from what the handle's own change stream delivered (the
// etcd one keeps leases there): a replica keeps alive only what its view
// shows active. So the handle watches, and each write is awaited.
func testClusterLiveness(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	w := watch(t, c, start)
	rec := clusterRecord("l")
	w.until(t, "the registration", upTo(wrote(t, "Register")(c.Register(ctx, rec, ""))))
	if ok, err := c.KeepAlive(ctx, "l"); err != nil || !ok {
		t.Fatalf("KeepAlive of an active record = %v, %v", ok, err)
	}
	at := rec.LastSeen.Add(5 * time.Second)
	w.until(t, "the deactivation", upTo(wrote(t, "Deactivate")(c.Deactivate(ctx, "l", "", rec.LastSeen.Add(4*time.Second), at))))
	_, got := snapshot(t, c)
	if l := got["l"]; l.Active || !l.InactiveSince.Equal(at) || !l.LastSeen.Equal(rec.LastSeen.Add(4*time.Second)) || l.Name != rec.Name {
		t.Errorf("after Deactivate: %+v; want inactive since %v, last seen 4s later, fields kept", l, at)
	}
	if ok, err := c.KeepAlive(ctx, "l"); err != nil || ok {
		t.Errorf("KeepAlive of an inactive record = %v, %v; want false", ok, err)
	}
	// Deregistered again, it keeps when it went inactive.
	w.until(t, "the second deactivation", upTo(wrote(t, "Deactivate again")(c.Deactivate(ctx, "l", "", rec.LastSeen, at.Add(time.Minute)))))
	if _, got := snapshot(t, c); !got["l"].InactiveSince.Equal(at) {
		t.Errorf("after a second Deactivate: inactive since %v; want %v kept", got["l"].InactiveSince, at)
	}
	// An older last_seen does not move it back.
	w.until(t, "the activation", upTo(wrote(t, "Activate")(c.Activate(ctx, "l", "", rec.LastSeen))))
	_, got = snapshot(t, c)
	if l := got["l"]; !l.Active || !l.InactiveSince.IsZero() || !l.LastSeen.Equal(rec.LastSeen.Add(4*time.Second)) {
		t.Errorf("after Activate: %+v; want active, no inactive_since, last_seen kept", l)
	}
	if ok, err := c.KeepAlive(ctx, "l"); err != nil || !ok {
		t.Errorf("KeepAlive after Activate = %v, %v; want true", ok, err)
	}
	if ok, err := c.KeepAlive(ctx, "nobody"); err != nil || ok {
		t.Errorf("KeepAlive of an unknown id = %v, %v; want false", ok, err)
	}
}

// A lease that is not kept alive ends: its instance becomes inactive with
// no InactiveSince (the registry takes 3 intervals after last_seen). One
// that is kept alive stays.
func testClusterLeaseEnds(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	w := watch(t, c, start)
	short := clusterRecord("short")
	short.HeartbeatInterval = 300 * time.Millisecond // etcd rounds its lease up to 2 s
	kept := clusterRecord("kept")
	kept.HeartbeatInterval = 300 * time.Millisecond
	wrote(t, "Register short")(c.Register(ctx, short, ""))
	w.until(t, "the registrations", upTo(wrote(t, "Register kept")(c.Register(ctx, kept, ""))))
	stop := make(chan struct{})
	alive := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				alive <- nil
				return
			case <-tick.C:
				if ok, err := c.KeepAlive(ctx, "kept"); err != nil || !ok {
					alive <- fmt.Errorf("KeepAlive = %v, %v", ok, err)
					return
				}
			}
		}
	}()
	began := time.Now()
	w.until(t, "the lease of short to end", func(chs []registry.Change) bool {
		for _, ch := range chs {
			for _, rc := range ch.Records {
				if rc.ID == "short" && !rc.Active && !rc.Deleted {
					if !rc.InactiveSince.IsZero() {
						t.Errorf("a lease that ended set InactiveSince %v; want zero", rc.InactiveSince)
					}
					return true
				}
			}
		}
		return false
	})
	if d := time.Since(began); d < 800*time.Millisecond {
		t.Errorf("the lease of 3 x 300ms ended after %v", d)
	}
	close(stop)
	if err := <-alive; err != nil {
		t.Errorf("the kept instance: %v", err)
	}
	if _, got := snapshot(t, c); !got["kept"].Active || got["short"].Active {
		t.Errorf("after the lease ended: kept active %v, short active %v; want true, false", got["kept"].Active, got["short"].Active)
	}
	// Deregistered now, it keeps when it went inactive: no InactiveSince,
	// the end of its lease.
	wrote(t, "Deactivate short")(c.Deactivate(ctx, "short", "", short.LastSeen, time.Now()))
	if _, got := snapshot(t, c); got["short"].Active || !got["short"].InactiveSince.IsZero() {
		t.Errorf("after Deactivate of a record whose lease ended: active %v, inactive since %v; want inactive, none", got["short"].Active, got["short"].InactiveSince)
	}
}

func testClusterTouch(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	rec := clusterRecord("t")
	wrote(t, "Register")(c.Register(ctx, rec, ""))
	t1, t2 := rec.LastSeen.Add(time.Second), rec.LastSeen.Add(2*time.Second)
	steps := []struct {
		seen       registry.Seen
		lastSeen   time.Time
		wantSystem string
	}{
		{registry.Seen{ID: "t", LastSeen: t2, System: system("b"), SystemAt: t2}, t2, `b`},
		{registry.Seen{ID: "t", LastSeen: t1, System: system("a"), SystemAt: t1}, t2, `b`}, // older: ignored
		{registry.Seen{ID: "t", LastSeen: t1}, t2, `b`},                                    // no system: kept
		{registry.Seen{ID: "nobody", LastSeen: t2}, t2, `b`},                               // skipped
	}
	for i, st := range steps {
		if err := c.Touch(ctx, []registry.Seen{st.seen}); err != nil {
			t.Fatalf("step %d: Touch: %v", i, err)
		}
		_, got := snapshot(t, c)
		if g := got["t"]; !g.LastSeen.Equal(st.lastSeen) || !jsonEqual(g.System, system(st.wantSystem)) {
			t.Errorf("step %d: last_seen %v system %s; want %v and system %q", i, g.LastSeen, g.System, st.lastSeen, st.wantSystem)
		}
	}
}

func testClusterDeleteInactive(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	for _, id := range []string{"on", "off"} {
		wrote(t, "Register "+id)(c.Register(ctx, clusterRecord(id), ""))
	}
	wrote(t, "Deactivate off")(c.Deactivate(ctx, "off", "", time.Time{}, time.Now()))
	wrote(t, "DeleteInactive")(c.DeleteInactive(ctx, []string{"on", "off", "nobody"}))
	if _, got := snapshot(t, c); len(got) != 1 || !got["on"].Active {
		t.Errorf("after DeleteInactive: %v; want only the active record", keys(got))
	}
	// A deleted id registered again is new: it goes after the others.
	wrote(t, "Register off again")(c.Register(ctx, clusterRecord("off"), ""))
	if _, got := snapshot(t, c); got["off"].Seq <= got["on"].Seq {
		t.Errorf("re-registered after deletion: seq %d, not after %d", got["off"].Seq, got["on"].Seq)
	}
}

func keys(m map[string]registry.Record) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// A second handle (another replica's) watches the writes of the first.
func testClusterSecondHandle(t *testing.T, h ClusterHarness) {
	a, b := clusterHandle(t, h), clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, b)
	w := watch(t, b, start)
	rev := wrote(t, "Register")(a.Register(ctx, clusterRecord("x"), ""))
	rev = max(rev, wrote(t, "SetTools")(a.SetTools(ctx, "x", "", []json.RawMessage{tool(7, 60)})))
	w.until(t, "the writes of the other handle", upTo(rev))
	if ok, err := b.KeepAlive(ctx, "x"); err != nil || !ok {
		t.Errorf("KeepAlive through the other handle = %v, %v", ok, err)
	}
	if _, got := snapshot(t, b); len(got["x"].Tools) != 1 {
		t.Errorf("the other handle's snapshot: %+v", got["x"])
	}
}

// A Watch from a revision that was compacted away delivers a snapshot
// (Reset) and goes on from there.
func testClusterCompaction(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	wrote(t, "Register a")(c.Register(ctx, clusterRecord("a"), ""))
	wrote(t, "Register b")(c.Register(ctx, clusterRecord("b"), ""))
	wrote(t, "Deactivate a")(c.Deactivate(ctx, "a", "", time.Time{}, time.Now()))
	wrote(t, "DeleteInactive a")(c.DeleteInactive(ctx, []string{"a"}))
	h.Compact(t)
	w := watch(t, c, start)
	chs := w.until(t, "a reset", func(chs []registry.Change) bool { return len(chs) > 0 })
	if !chs[0].Reset || chs[0].More {
		t.Fatalf("the first change after a compaction is not a Reset of one page: %v", summary(chs[:1]))
	}
	ids := []string{}
	for _, rc := range chs[0].Records {
		ids = append(ids, rc.ID)
	}
	if !slices.Equal(ids, []string{"b"}) {
		t.Errorf("the Reset holds %v, want [b]", ids)
	}
	rev := wrote(t, "Register c")(c.Register(ctx, clusterRecord("c"), ""))
	w.until(t, "the write after the reset", upTo(rev))
}

// Writers on several handles, each on its own ids, end in the state that
// applying their writes in order predicts.
func testClusterConcurrent(t *testing.T, h ClusterHarness) {
	const writers, ids, steps = 4, 5, 12
	ctx := t.Context()
	var wg sync.WaitGroup
	models := make([]map[string]registry.Record, writers)
	errs := make(chan error, writers)
	for w := range writers {
		c := clusterHandle(t, h)
		models[w] = make(map[string]registry.Record)
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := models[w]
			for s := range steps {
				id := fmt.Sprintf("w%d-%d", w, (s*7)%ids)
				var err error
				switch s % 4 {
				case 0, 3:
					rec := clusterRecord(id)
					rec.Version = fmt.Sprint(s)
					_, err = c.Register(ctx, rec, "")
					m[id] = rec
				case 1:
					tl := []json.RawMessage{tool(s, 40)}
					_, err = c.SetTools(ctx, id, "", tl)
					if rec, ok := m[id]; ok {
						rec.Tools = tl
						m[id] = rec
					} else if errors.Is(err, registry.ErrNotFound) {
						err = nil
					}
				case 2:
					at := time.Now().Round(0)
					_, err = c.Deactivate(ctx, id, "", time.Time{}, at)
					if rec, ok := m[id]; ok {
						rec.Active, rec.InactiveSince = false, at
						m[id] = rec
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d step %d: %w", w, s, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	_, got := snapshot(t, clusterHandle(t, h))
	for _, m := range models {
		for id, want := range m {
			g, ok := got[id]
			if !ok {
				t.Errorf("%s: missing", id)
				continue
			}
			want.Seq = g.Seq
			if d := diffRecord(want, g); d != nil {
				t.Errorf("%s: %v", id, d)
			}
		}
	}
}

// A stored record keeps its owner, and a write with a guard other than its
// owner fails with ErrForbidden and changes nothing; an empty stored owner
// is APIKeyIdentity's.
func testClusterOwnership(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	rec := clusterRecord("o") // owner-o
	wrote(t, "Register")(c.Register(ctx, rec, "owner-o"))
	again := clusterRecord("o")
	again.Owner, again.Host = "thief", "evil"
	for _, w := range []struct {
		what string
		do   func() (uint64, error)
	}{
		{"Register", func() (uint64, error) { return c.Register(ctx, again, "thief") }},
		{"SetTools", func() (uint64, error) { return c.SetTools(ctx, "o", "thief", []json.RawMessage{tool(1, 50)}) }},
		{"Deactivate", func() (uint64, error) { return c.Deactivate(ctx, "o", "thief", time.Time{}, time.Now()) }},
		{"Activate", func() (uint64, error) { return c.Activate(ctx, "o", "thief", time.Now()) }},
	} {
		if rev, err := w.do(); !errors.Is(err, registry.ErrForbidden) || rev != 0 {
			t.Errorf("%s with another owner's guard = %d, %v; want ErrForbidden", w.what, rev, err)
		}
	}
	_, got := snapshot(t, c)
	if o := got["o"]; o.Owner != "owner-o" || o.Host != rec.Host || !o.Active || o.Tools != nil {
		t.Errorf("after refused writes: %+v; want it unchanged", o)
	}
	// The owner, and an unguarded write (an admin's), may.
	again.Owner = "someone-else"
	wrote(t, "Register by the owner")(c.Register(ctx, again, "owner-o"))
	wrote(t, "SetTools unguarded")(c.SetTools(ctx, "o", "", []json.RawMessage{tool(2, 50)}))
	if _, got := snapshot(t, c); got["o"].Owner != "owner-o" || got["o"].Host != "evil" {
		t.Errorf("a re-registration by the owner: owner %q host %q; want the owner kept and the new host", got["o"].Owner, got["o"].Host)
	}
	// A record without an owner belongs to api-key.
	legacy := clusterRecord("legacy")
	legacy.Owner = ""
	wrote(t, "Register legacy")(c.Register(ctx, legacy, ""))
	if _, err := c.SetTools(ctx, "legacy", "someone", []json.RawMessage{}); !errors.Is(err, registry.ErrForbidden) {
		t.Errorf("SetTools on an ownerless record by another identity = %v, want ErrForbidden", err)
	}
	wrote(t, "SetTools by api-key")(c.SetTools(ctx, "legacy", registry.APIKeyIdentity, []json.RawMessage{}))
}

// fleet registers n records r-0000 ... in order, with two tools each on
// every third one and every fifth one deactivated, and returns them as
// written (Seq left to the Cluster).
func fleet(t *testing.T, c registry.Cluster, n int) []registry.Record {
	t.Helper()
	ctx := t.Context()
	recs := make([]registry.Record, n)
	for i := range recs {
		rec := clusterRecord(fmt.Sprintf("r-%04d", i))
		if i%3 == 0 {
			rec.Tools = []json.RawMessage{tool(i, 80), tool(i+1, 200)}
		}
		wrote(t, "Register "+rec.ID)(c.Register(ctx, rec, ""))
		if i%5 == 0 {
			rec.Active, rec.InactiveSince = false, rec.LastSeen.Add(time.Second)
			wrote(t, "Deactivate "+rec.ID)(c.Deactivate(ctx, rec.ID, "", time.Time{}, rec.InactiveSince))
		}
		recs[i] = rec
	}
	return recs
}

// A fleet of more than two pages comes in pages of at most PageSize, in
// registration order, every record whole; an empty one in one empty page.
func testClusterSnapshotPages(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	if _, pages := snapshotPages(t, c); len(pages) != 1 || len(pages[0].Records) != 0 {
		t.Errorf("an empty cluster's snapshot: %v; want one empty page", summary(pages))
	}
	size := h.pageSize()
	want := fleet(t, c, 2*size+size/2)
	last := wrote(t, "SetTools")(c.SetTools(t.Context(), want[1].ID, "", []json.RawMessage{tool(9, 60)}))
	want[1].Tools = []json.RawMessage{tool(9, 60)}
	rev, pages := snapshotPages(t, c)
	if len(pages) < 3 {
		t.Errorf("%d records in %d pages; want at least 3 of at most %d", len(want), len(pages), size)
	}
	if rev < last {
		t.Errorf("Snapshot at revision %d, before the last write's %d", rev, last)
	}
	for i, p := range pages {
		if len(p.Records) > size {
			t.Errorf("page %d holds %d records, more than %d", i+1, len(p.Records), size)
		}
	}
	got := records(pages)
	if len(got) != len(want) {
		t.Fatalf("the pages hold %d records, want %d", len(got), len(want))
	}
	for i, rc := range got {
		w := want[i]
		if rc.ID != w.ID {
			t.Fatalf("record %d is %s, want %s: not in registration order", i, rc.ID, w.ID)
		}
		if !rc.Fields {
			t.Errorf("%s: Fields not set in a snapshot", rc.ID)
		}
		w.Seq = rc.Seq
		if d := diffRecord(w, rc.Record); d != nil {
			t.Errorf("%s: %v", rc.ID, d)
		}
	}
}

// A Watch behind a compaction re-lists in pages: a fleet of more than two
// pages comes as Reset pages, More on all but the last, without the
// records deleted meanwhile, and the Watch goes on after them.
func testClusterCompactionPaged(t *testing.T, h ClusterHarness) {
	c := clusterHandle(t, h)
	ctx := t.Context()
	start, _ := snapshot(t, c)
	size := h.pageSize()
	recs := fleet(t, c, 2*size+size/2)
	lastInactive := (len(recs) - 1) / 5 * 5                                   // fleet deactivates every fifth
	dropped := map[string]bool{recs[0].ID: true, recs[lastInactive].ID: true} // the first page's and the last's
	for id := range dropped {
		wrote(t, "DeleteInactive "+id)(c.DeleteInactive(ctx, []string{id}))
	}
	h.Compact(t)
	w := watch(t, c, start)
	isLast := func(ch registry.Change) bool { return ch.Reset && !ch.More }
	chs := w.until(t, "a whole re-list", func(chs []registry.Change) bool { return slices.ContainsFunc(chs, isLast) })
	end := slices.IndexFunc(chs, isLast)
	if err := checkPages(chs[:end+1]); err != nil {
		t.Fatalf("the re-list after a compaction: %v", err)
	}
	if end < 2 {
		t.Errorf("the re-list of %d records came in %d pages; want at least 3", len(recs)-len(dropped), end+1)
	}
	var ids []string
	for _, rc := range records(chs[:end+1]) {
		ids = append(ids, rc.ID)
	}
	var want []string
	for _, rec := range recs {
		if !dropped[rec.ID] {
			want = append(want, rec.ID)
		}
	}
	if !slices.Equal(ids, want) {
		t.Errorf("the re-list holds %d records %v ... %v; want %d, %v ... %v", len(ids), ids[:min(3, len(ids))], ids[max(0, len(ids)-3):],
			len(want), want[:3], want[len(want)-3:])
	}
	rev := wrote(t, "Register after")(c.Register(ctx, clusterRecord("after"), ""))
	chs = w.until(t, "the write after the re-list", upTo(rev))
	for _, ch := range chs[end+1:] {
		if ch.Reset {
			t.Errorf("a second re-list after the first: %v", summary([]registry.Change{ch}))
		}
	}
}

// differential_test.go applies one sequence of operations (registrations,
// heartbeats, tool posts, deregistrations, purges, time passing, restarts)
// to three registries, in memory, on a bolt file, and a replica on the
// in-memory Cluster with Run running, and requires the same answers from
// the library's read API after every step. FuzzDifferential draws the
// sequence from the fuzzer's bytes, TestDifferential from fixed seeds.
//
// The sequences that found a difference are tests of their own, named for
// the behaviour they pin: TestReplicaTakesSameInstantReregistration,
// TestReplicaDeregisterKeepsInactiveSince (replicas_test.go) and
// TestOldestInactiveAfterLatePurge (caps_test.go).

package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
	"github.com/runspec/registry/store/memcluster"
)

// The universe the operations draw from is small, so that they collide:
// few ids, hosts and names, and a registry that holds fewer records than
// there are ids.
const (
	diffIDs          = 7
	diffMaxInstances = 5
	diffMaxTools     = 6
	diffInterval     = 10 * time.Second // the registries' default
	diffRetain       = 5 * time.Minute
	diffMaxOps       = 120 // per fuzz input, so that one input stays fast
	diffWait         = 10 * time.Second
)

func diffID(b byte) string { return fmt.Sprintf("id-%d", int(b)%diffIDs) }

func diffName(b byte) string { return []string{"svc", "web"}[int(b)%2] }

// diffHost is one of three hosts, or "" (refused) one time in eight.
func diffHost(b byte) string { return []string{"h0", "h1", "h2", "h0", "h1", "h2", "h0", ""}[int(b)%8] }

func diffVersion(b byte) string { return []string{"1", "2", ""}[int(b)%3] }

// diffIntervals are heartbeat intervals: the default, short ones whose
// TTLs the advances hit exactly, the longest allowed, and one refused.
func diffIntervalOf(b byte) time.Duration {
	return []time.Duration{0, time.Second, 2 * time.Second, 5 * time.Second, 1500 * time.Millisecond,
		30 * time.Second, registry.MaxHeartbeatInterval, -time.Second}[int(b)%8]
}

func diffLabels(b byte) map[string]string {
	return []map[string]string{nil, nil, {"env": "prod"}, {"env": "dev", "team": "a"}, {"env": "prod", "team": "b"},
		{"bad\u200bkey": "x"}}[int(b)%6]
}

// diffToolPalette are the tools a post chooses from by a bit mask: some
// share a name (a post of both is refused), some carry execution fields
// that are not strings, repeated keys, escapes and odd spacing, which
// the stored and re-parsed forms must keep.
func diffToolPalette() []string {
	return []string{
		`{"name":"deploy","description":"Deploys.","inputSchema":{"type":"object"},"x-command":"/bin/deploy","x-run-as":"root"}`,
		`{"name":"deploy","description":"Deploys, v2.","x-command":"/bin/deploy2","x-become-method":"sudo"}`,
		`{"name":"status"}`,
		`{"name":"status","x-become-method":"sudo","x-become-flags":"-H","x-autonomy":1}`,
		`{"name":"logs","inputSchema":{"type":"object","properties":{"n":{"type":"integer"}}},"x-command":["not","a","string"],"x-run-as":null}`,
		`{"name":"d\u00e9ploy","description":"\ud83d\ude00 accents"}`,
		` { "name" : "spaced" , "k" : 1e5 , "x-command" : "c" } `,
		`{"name":"dup","x-command":"a","name":"dupe","x-command":"b"}`,
		`{"x-run-as":"svc","name":"first-exec","description":7}`,
	}
}

// diffSystems are heartbeat system objects (nil: none sent); [1] is refused.
func diffSystem(b byte) json.RawMessage {
	s := []string{"", `{"os":"linux"}`, `{"load":[1,2.5],"up":null}`, `{}`, `[1]`, `{"os":"linux","os":"bsd"}`}[int(b)%6]
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// diffAdvances are the steps of time: some end exactly on a TTL (3 x an
// interval) or on the retention, some just after.
func diffAdvance(b byte) time.Duration {
	return []time.Duration{time.Millisecond, 999 * time.Millisecond, time.Second, 2 * time.Second, 3 * time.Second,
		3*time.Second + time.Millisecond, 4500 * time.Millisecond, 6 * time.Second, 15 * time.Second, 29 * time.Second,
		30 * time.Second, 31 * time.Second, 90 * time.Second, diffRetain, diffRetain + time.Millisecond, time.Hour}[int(b)%16]
}

// diffLate reports whether an advance jumps over the due times on its way
// (Run was late), not stopping at each: bit 0x10 of its byte.
func diffLate(b byte) bool { return b&0x10 != 0 }

// A diffKind is the kind of an operation.
type diffKind int

const (
	opRegister diffKind = iota
	opHeartbeat
	opHeartbeatRaw // with the fuzzer's bytes as the system object
	opTools
	opToolsRaw // one tool: the fuzzer's bytes
	opDeregister
	opDelete
	opAdvance
	opRestartFile
	opRestartReplica
)

// diffKindOf maps an operation byte to its kind, heartbeats and time
// more often than restarts.
func diffKindOf(b byte) diffKind {
	return []diffKind{opRegister, opRegister, opHeartbeat, opHeartbeat, opHeartbeat, opHeartbeatRaw,
		opTools, opTools, opToolsRaw, opDeregister, opDelete, opAdvance, opAdvance, opAdvance,
		opRestartFile, opRestartReplica}[int(b)%16]
}

// A diffOp is one operation. Its fields are the bytes it was read from;
// the diff* functions above turn them into values.
type diffOp struct {
	kind                diffKind
	sameInstant         bool // a write at the instant of the one before (bit 0x10 of its kind byte)
	id                  byte
	name, host, version byte
	interval, labels    byte
	mask                uint16 // tools: which of diffToolPalette
	system, advance     byte
	raw                 []byte // opHeartbeatRaw, opToolsRaw
}

// diffOpBytes are how many parameter bytes each kind reads (raw ones also
// read a length and that many bytes).
func diffOpBytes(k diffKind) int {
	switch k {
	case opRegister:
		return 6
	case opHeartbeat:
		return 2
	case opTools:
		return 3
	case opHeartbeatRaw, opToolsRaw, opDeregister, opDelete, opAdvance:
		return 1
	}
	return 0
}

// parseDiffOps reads a sequence of at most diffMaxOps operations from data.
// Every input is a sequence: missing bytes read as zero.
func parseDiffOps(data []byte) []diffOp {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	var ops []diffOp
	for len(data) > 0 && len(ops) < diffMaxOps {
		kb := next()
		op := diffOp{kind: diffKindOf(kb), sameInstant: kb&0x10 != 0}
		p := make([]byte, diffOpBytes(op.kind))
		for i := range p {
			p[i] = next()
		}
		switch op.kind {
		case opRegister:
			op.id, op.name, op.host, op.version, op.interval, op.labels = p[0], p[1], p[2], p[3], p[4], p[5]
		case opHeartbeat:
			op.id, op.system = p[0], p[1]
		case opTools:
			op.id, op.mask = p[0], uint16(p[1])|uint16(p[2])<<8
		case opHeartbeatRaw, opToolsRaw:
			op.id = p[0]
			n := min(int(next())%96, len(data))
			op.raw, data = slices.Clone(data[:n]), data[n:]
		case opDeregister, opDelete:
			op.id = p[0]
		case opAdvance:
			op.advance = p[0]
		}
		ops = append(ops, op)
	}
	return ops
}

// appendTo appends the bytes that parseDiffOps reads as op (for seeds).
func (op diffOp) appendTo(b []byte) []byte {
	var kb byte
	for i := range 16 {
		if diffKindOf(byte(i)) == op.kind {
			kb = byte(i)
			break
		}
	}
	if op.sameInstant {
		kb |= 0x10
	}
	b = append(b, kb)
	switch op.kind {
	case opRegister:
		return append(b, op.id, op.name, op.host, op.version, op.interval, op.labels)
	case opHeartbeat:
		return append(b, op.id, op.system)
	case opTools:
		return append(b, op.id, byte(op.mask), byte(op.mask>>8))
	case opHeartbeatRaw, opToolsRaw:
		b = append(b, op.id, byte(len(op.raw)))
		return append(b, op.raw...)
	case opDeregister, opDelete:
		return append(b, op.id)
	case opAdvance:
		return append(b, op.advance)
	}
	return b
}

func (op diffOp) registration() registry.Registration {
	return registry.Registration{ID: diffID(op.id), Name: diffName(op.name), Version: diffVersion(op.version),
		Host: diffHost(op.host), HeartbeatInterval: diffIntervalOf(op.interval), Labels: diffLabels(op.labels)}
}

func (op diffOp) tools() []json.RawMessage {
	if op.kind == opToolsRaw {
		return []json.RawMessage{json.RawMessage(op.raw)}
	}
	tools := []json.RawMessage{} // an empty mask posts an empty list
	for i, s := range diffToolPalette() {
		if op.mask&(1<<i) != 0 {
			tools = append(tools, json.RawMessage(s))
		}
	}
	return tools
}

func (op diffOp) String() string {
	s := op.describe()
	if op.sameInstant && op.isWrite() {
		s += " (at the instant of the write before)"
	}
	return s
}

// isWrite reports whether op is a client's write: time moves before it,
// unless it is at the same instant.
func (op diffOp) isWrite() bool {
	switch op.kind {
	case opRegister, opHeartbeat, opHeartbeatRaw, opTools, opToolsRaw, opDeregister, opDelete:
		return true
	}
	return false
}

func (op diffOp) describe() string {
	switch op.kind {
	case opRegister:
		r := op.registration()
		return fmt.Sprintf("register %s name=%s host=%q version=%q interval=%v labels=%v", r.ID, r.Name, r.Host, r.Version, r.HeartbeatInterval, r.Labels)
	case opHeartbeat:
		return fmt.Sprintf("heartbeat %s system=%s", diffID(op.id), diffSystem(op.system))
	case opHeartbeatRaw:
		return fmt.Sprintf("heartbeat %s system=%q", diffID(op.id), op.raw)
	case opTools, opToolsRaw:
		var names []string
		for _, t := range op.tools() {
			names = append(names, string(t))
		}
		return fmt.Sprintf("post tools %s [%s]", diffID(op.id), strings.Join(names, ", "))
	case opDeregister:
		return "deregister " + diffID(op.id)
	case opDelete:
		return "delete (purge) " + diffID(op.id)
	case opAdvance:
		if diffLate(op.advance) {
			return fmt.Sprintf("advance %v at once (checkpoint; then leases end, one Purge: Run was late)", diffAdvance(op.advance))
		}
		return fmt.Sprintf("advance %v (checkpoint; at each due time on the way: leases end, Purge)", diffAdvance(op.advance))
	case opRestartFile:
		return "restart the bolt registry (checkpoint, close, open)"
	case opRestartReplica:
		return "restart the replica (Run ends, a new Registry on the Cluster)"
	}
	return fmt.Sprintf("op %d", op.kind)
}

// diffRegs are the three registries under test, on one fake clock.
type diffRegs struct {
	tb      testing.TB
	ctx     context.Context
	clock   *fakeClock
	mem     *registry.Registry
	file    *registry.Registry
	replica *registry.Registry
	path    string
	store   *bolt.Store
	cluster *memcluster.Cluster
	stop    func() // ends the replica's Run and waits for it
	done    []string
}

// options are the Options the three registries share. Checkpoints are
// the test's to make (before time passes, as Run makes them every few
// seconds), so Run's own come once an hour of real time.
func (d *diffRegs) options() registry.Options {
	return registry.Options{Now: d.clock.Now, HeartbeatInterval: diffInterval, RetainInactive: diffRetain,
		MaxInstances: diffMaxInstances, MaxTools: diffMaxTools, CheckpointInterval: time.Hour}
}

func newDiffRegs(tb testing.TB) *diffRegs {
	d := &diffRegs{tb: tb, ctx: context.Background(), clock: newFakeClock()}
	var err error
	if d.mem, err = registry.New(d.options()); err != nil {
		tb.Fatal(err)
	}
	d.path = filepath.Join(tb.TempDir(), "registry.db")
	d.openFile()
	d.cluster = memcluster.New(memcluster.Options{Now: d.clock.Now})
	d.startReplica()
	tb.Cleanup(func() {
		d.stop()
		if err := d.store.Close(); err != nil {
			tb.Error(err)
		}
	})
	return d
}

func (d *diffRegs) openFile() {
	st, err := bolt.Open(d.path, bolt.Options{NoSync: true})
	if err != nil {
		d.tb.Fatal(err)
	}
	opts := d.options()
	opts.Store = st
	reg, err := registry.New(opts)
	if err != nil {
		st.Close()
		d.tb.Fatal(err)
	}
	d.store, d.file = st, reg
}

func (d *diffRegs) startReplica() {
	opts := d.options()
	opts.Cluster = d.cluster
	reg, err := registry.New(opts)
	if err != nil {
		d.tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(d.ctx)
	errc := make(chan error, 1)
	go func() { errc <- reg.Run(ctx) }()
	d.replica = reg
	d.stop = func() {
		cancel()
		if err := <-errc; err != nil && !errors.Is(err, context.Canceled) {
			d.tb.Errorf("replica Run: %v", err)
		}
	}
}

func (d *diffRegs) all() []*registry.Registry { return []*registry.Registry{d.mem, d.file, d.replica} }

// regName names the i-th registry of diffRegs.all in reports.
func regName(i int) string { return []string{"memory", "bolt", "replica"}[i] }

// errClass is what the protocol would answer for err.
func errClass(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, registry.ErrInvalid):
		return "invalid"
	case errors.Is(err, registry.ErrNotFound):
		return "not found"
	case errors.Is(err, registry.ErrFull):
		return "full"
	case errors.Is(err, registry.ErrForbidden):
		return "forbidden"
	case errors.Is(err, registry.ErrUnavailable):
		return "unavailable: " + err.Error()
	}
	return "error: " + err.Error()
}

// failf reports a difference with the operations that led to it.
func (d *diffRegs) failf(format string, args ...any) {
	d.tb.Helper()
	var b strings.Builder
	for i, s := range d.done {
		fmt.Fprintf(&b, "  %2d. %s\n", i+1, s)
	}
	d.tb.Fatalf("after these operations:\n%s%s", b.String(), fmt.Sprintf(format, args...))
}

// write applies fn to each registry and requires the same answers.
func (d *diffRegs) write(fn func(r *registry.Registry) string) {
	d.tb.Helper()
	var got [3]string
	for i, r := range d.all() {
		got[i] = fn(r)
	}
	if got[1] != got[0] || got[2] != got[0] {
		d.failf("the answers differ: memory %q, bolt %q, replica %q", got[0], got[1], got[2])
	}
}

func (d *diffRegs) apply(op diffOp) {
	d.tb.Helper()
	d.done = append(d.done, op.String())
	ctx := d.ctx
	if op.isWrite() && !op.sameInstant {
		// Time moves between two requests, as a real clock does; a coarse
		// one (or Options.Now) may not move (TestReplicaTakesSameInstantReregistration).
		d.pass(time.Microsecond)
	}
	switch op.kind {
	case opRegister:
		d.write(func(r *registry.Registry) string { return errClass(r.Register(ctx, op.registration())) })
	case opHeartbeat, opHeartbeatRaw:
		sys := diffSystem(op.system)
		if op.kind == opHeartbeatRaw {
			sys = json.RawMessage(op.raw)
		}
		d.write(func(r *registry.Registry) string {
			st, err := r.Heartbeat(ctx, diffID(op.id), slices.Clone(sys))
			return string(st) + " " + errClass(err)
		})
	case opTools, opToolsRaw:
		d.write(func(r *registry.Registry) string { return errClass(r.UpdateTools(ctx, diffID(op.id), op.tools())) })
	case opDeregister:
		d.write(func(r *registry.Registry) string { return errClass(r.Deregister(ctx, diffID(op.id))) })
	case opDelete:
		d.write(func(r *registry.Registry) string { return errClass(r.Delete(ctx, diffID(op.id))) })
	case opAdvance:
		if diffLate(op.advance) {
			d.jump(diffAdvance(op.advance))
		} else {
			d.pass(diffAdvance(op.advance))
		}
	case opRestartFile:
		if err := d.file.Checkpoint(ctx); err != nil {
			d.tb.Fatal(err)
		}
		if err := d.store.Close(); err != nil {
			d.tb.Fatal(err)
		}
		d.openFile()
	case opRestartReplica:
		d.stop() // Run's end writes a last checkpoint
		d.startReplica()
	}
	d.compare()
}

// checkpoint writes the heartbeats of each registry where it keeps them.
func (d *diffRegs) checkpoint() {
	for i, r := range d.all() {
		if err := r.Checkpoint(d.ctx); err != nil {
			d.tb.Fatalf("%s: Checkpoint: %v", regName(i), err)
		}
	}
}

// pass moves the clock on by dt as Run lives through it: the heartbeats
// are checkpointed first (Run does every few seconds), and the clock stops
// at each due time on the way (an expiry, the end of a retention), where
// every registry settles, as Run's timer fires at each deadline.
func (d *diffRegs) pass(dt time.Duration) {
	d.tb.Helper()
	d.checkpoint()
	end := d.clock.Now().Add(dt)
	for {
		now := d.clock.Now()
		next, ok := d.nextDue()
		// Due at D means inactive (or deleted) from D + 1 µs on: all times
		// here are whole microseconds.
		step := end
		if ok && next.Add(time.Microsecond).Before(end) {
			step = next.Add(time.Microsecond)
		}
		d.clock.Advance(step.Sub(now))
		d.settle()
		if !step.Before(end) {
			return
		}
	}
}

// jump moves the clock on by dt at once, and every registry settles once:
// Run was late, or the caller purges, and the leases and retentions that
// fell due on the way end in one Purge (TestOldestInactiveAfterLatePurge).
func (d *diffRegs) jump(dt time.Duration) {
	d.tb.Helper()
	d.checkpoint()
	d.clock.Advance(dt)
	d.settle()
}

// nextDue is the earliest deadline or end of retention after now, as
// the memory registry shows them (the others show the same, or compare
// has failed).
func (d *diffRegs) nextDue() (time.Time, bool) {
	d.tb.Helper()
	all, _, err := d.mem.Instances(d.ctx, registry.Filter{})
	if err != nil {
		d.tb.Fatal(err)
	}
	now := d.clock.Now()
	var next time.Time
	for _, in := range all {
		due := in.LastSeen.Add(3 * in.HeartbeatInterval)
		if !in.Active {
			due = in.InactiveSince.Add(diffRetain)
		}
		if !due.Before(now) && (next.IsZero() || due.Before(next)) {
			next = due
		}
	}
	return next, !next.IsZero()
}

// settle applies what time brought to each registry: the Cluster ends
// the leases that are due (it does when asked, as etcd does on its own),
// the replica's view applies that, and every registry purges.
func (d *diffRegs) settle() {
	before := d.cluster.Rev()
	if _, err := d.cluster.Snapshot(d.ctx, func(registry.Change) {}); err != nil { // ends the leases that are due
		d.tb.Fatal(err)
	}
	d.awaitReplica(before)
	before = d.cluster.Rev()
	for i, r := range d.all() {
		if err := r.Purge(d.ctx); err != nil {
			d.tb.Fatalf("%s: Purge: %v", regName(i), err)
		}
	}
	d.awaitReplica(before)
}

// awaitReplica waits until the replica's view shows the Cluster's
// revisions after before. Those are lease ends and deletions, each of
// which moves the view's change index to its revision.
func (d *diffRegs) awaitReplica(before uint64) {
	d.tb.Helper()
	rev := d.cluster.Rev()
	if rev == before {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, diffWait)
	defer cancel()
	if _, meta, err := d.replica.Instances(ctx, registry.Filter{AfterIndex: rev - 1}); err != nil || meta.Index < rev {
		d.failf("the replica's view did not reach revision %d in %v: index %d, %v", rev, diffWait, meta.Index, err)
	}
}

// diffState is everything the read API answers, by query.
type diffState struct {
	Instance  map[string]string // id -> the record as JSON, or the error class
	Instances map[string][]registry.Instance
	Tools     map[string][]registry.Tool
	Tool      map[string]string // name and filter -> the tool as JSON, or the error class
	Hosts     map[string][]registry.Host
}

func diffFilters() map[string]registry.Filter {
	return map[string]registry.Filter{
		"all":            {},
		"active":         {ActiveOnly: true},
		"host=h0":        {Host: "h0"},
		"host=h1 active": {Host: "h1", ActiveOnly: true},
		"name=svc":       {Name: "svc"},
		"env=prod":       {Labels: map[string]string{"env": "prod"}},
	}
}

func (d *diffRegs) read(r *registry.Registry, toolNames []string) diffState {
	d.tb.Helper()
	ctx := d.ctx
	s := diffState{Instance: map[string]string{}, Instances: map[string][]registry.Instance{},
		Tools: map[string][]registry.Tool{}, Tool: map[string]string{}, Hosts: map[string][]registry.Host{}}
	fail := func(what string, err error) {
		d.tb.Helper()
		d.failf("%s: %v", what, err)
	}
	for i := range diffIDs {
		id := diffID(byte(i))
		in, _, err := r.Instance(ctx, id)
		s.Instance[id] = errClass(err)
		if err == nil {
			s.Instance[id] = fmt.Sprintf("%+v", in)
		}
	}
	for name, f := range diffFilters() {
		var err error
		if s.Instances[name], _, err = r.Instances(ctx, f); err != nil {
			fail("Instances "+name, err)
		}
		if s.Tools[name], _, err = r.Tools(ctx, f); err != nil {
			fail("Tools "+name, err)
		}
		if s.Hosts[name], _, err = r.Hosts(ctx, f); err != nil {
			fail("Hosts "+name, err)
		}
		for _, tn := range toolNames {
			t, _, err := r.Tool(ctx, tn, f)
			key := tn + " " + name
			s.Tool[key] = errClass(err)
			if err == nil {
				s.Tool[key] = fmt.Sprintf("%+v", t)
			}
		}
	}
	return s
}

// compare requires the three registries to answer every read alike, every
// field of every value: with one fake clock, exact leases (memcluster's
// are 3 x the interval, not rounded, and the test has the replica's view
// apply their ends before it reads) and checkpoints before time passes,
// they agree on liveness, last_seen and inactive_since to the
// microsecond. Only Meta (the change index, which differs by design) is
// not compared; ETags are not part of the Go API.
func (d *diffRegs) compare() {
	d.tb.Helper()
	names := map[string]bool{"deploy": true, "status": true, "nope": true}
	for _, r := range d.all() {
		tools, _, err := r.Tools(d.ctx, registry.Filter{})
		if err != nil {
			d.failf("Tools: %v", err)
		}
		for _, t := range tools {
			names[t.Name] = true
		}
	}
	toolNames := slices.Sorted(func(yield func(string) bool) {
		for n := range names {
			if !yield(n) {
				return
			}
		}
	})
	want := d.read(d.mem, toolNames)
	for i, r := range d.all()[1:] {
		got := d.read(r, toolNames)
		if reflect.DeepEqual(want, got) {
			continue // the fast path: cmp.Diff is what decides, and it is slow
		}
		if diff := cmp.Diff(want, got); diff != "" {
			d.failf("%s answers differently from memory (-memory +%s):\n%s", regName(i+1), regName(i+1), diff)
		}
	}
}

func runDiff(tb testing.TB, ops []diffOp) {
	tb.Helper()
	d := newDiffRegs(tb)
	for _, op := range ops {
		d.apply(op)
	}
}

// diffSeeds are hand-written sequences: the paths the fuzzer should start
// from (expiry at the exact TTL, revival, retention, a full registry,
// restarts with inactive records, odd tool objects).
func diffSeeds() map[string][]diffOp {
	reg := func(id, host, interval byte) diffOp {
		return diffOp{kind: opRegister, id: id, host: host, interval: interval}
	}
	hb := func(id, sys byte) diffOp { return diffOp{kind: opHeartbeat, id: id, system: sys} }
	tools := func(id byte, mask uint16) diffOp { return diffOp{kind: opTools, id: id, mask: mask} }
	adv := func(a byte) diffOp { return diffOp{kind: opAdvance, advance: a} }
	dereg := func(id byte) diffOp { return diffOp{kind: opDeregister, id: id} }
	return map[string][]diffOp{
		"expiry-at-exact-ttl": { // 1 s interval: active at 3 s, inactive at 3.001 s
			reg(0, 0, 1), tools(0, 0b101), hb(0, 1), adv(4), adv(0), hb(0, 0), adv(5)},
		"revival-and-retention": {
			reg(1, 1, 2), tools(1, 0b11100), adv(12), hb(1, 2), adv(12), adv(13), adv(14), hb(1, 0)},
		"full-registry-evicts-oldest-inactive": {
			reg(0, 0, 1), reg(1, 1, 1), reg(2, 2, 2), reg(3, 0, 3), reg(4, 1, 0), dereg(2), adv(5), reg(5, 2, 0), reg(6, 0, 0)},
		"late-purge-then-full": { // several leases end in one Purge, then new ids evict them oldest first
			reg(0, 0, 1), reg(1, 1, 2), reg(2, 2, 1), reg(3, 0, 4), reg(4, 1, 0), adv(0x10 | 8), {kind: opRestartFile},
			reg(5, 2, 0), reg(6, 0, 0), {kind: opRestartReplica}, reg(0, 1, 0), dereg(4), dereg(4), adv(0x10 | 15)},
		"restarts-with-inactive-records": {
			reg(0, 0, 0), tools(0, 0b1), reg(1, 1, 1), hb(1, 1), dereg(0), adv(6), {kind: opRestartFile},
			{kind: opRestartReplica}, hb(0, 0), dereg(1), {kind: opRestartReplica}},
		"odd-tool-objects": {
			reg(0, 0, 0), tools(0, 0b111110100), reg(1, 1, 0), tools(1, 0b11), {kind: opRestartFile},
			{kind: opRestartReplica}, {kind: opToolsRaw, id: 1, raw: []byte(`{"name":"r","x-command":"\u0063","a":{"name":"b"}}`)}},
		"reregistration-replaces": {
			reg(0, 0, 0), tools(0, 0b1), hb(0, 1), {kind: opRegister, id: 0, host: 1, name: 1, labels: 2}, hb(0, 0)},
		"same-instant-reregistration": {
			reg(0, 0, 0), {kind: opTools, id: 0, mask: 0b101, sameInstant: true},
			{kind: opRegister, id: 0, host: 1, name: 1, labels: 2, sameInstant: true}, hb(0, 1)},
		"system-objects": {
			reg(0, 0, 0), hb(0, 1), hb(0, 4), {kind: opHeartbeatRaw, id: 0, raw: []byte(`{"a":{"b":[true,false]},"a":1}`)},
			adv(3), {kind: opRestartFile}, {kind: opRestartReplica}},
	}
}

func FuzzDifferential(f *testing.F) {
	for _, ops := range diffSeeds() {
		var b []byte
		for _, op := range ops {
			b = op.appendTo(b)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		runDiff(t, parseDiffOps(data))
	})
}

// TestDifferential runs the hand-written sequences, then random ones
// from fixed seeds (the same sequences on every run).
func TestDifferential(t *testing.T) {
	for name, ops := range diffSeeds() {
		t.Run(name, func(t *testing.T) { runDiff(t, ops) })
	}
	rounds := 12
	if testing.Short() {
		rounds = 3
	}
	for seed := range uint64(rounds) {
		t.Run(fmt.Sprintf("seed-%d", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 0xd1ff))
			data := make([]byte, 600)
			for i := range data {
				data[i] = byte(rng.UintN(256))
			}
			runDiff(t, parseDiffOps(data))
		})
	}
}

// faults_internal_test.go drives four registry replicas (three writing, one
// only serving reads) on a three-member etcd cluster with concurrent clients while it injects faults (members
// killed with SIGKILL, the leader killed, a member paused with SIGSTOP, a
// replica crashed, etcd cut off), records every operation, and checks the
// history (history_internal_test.go). A seeded bug, a replica that answers
// writes before its view shows them, must fail the check.
//
// The short run is part of the tests; a long one runs by hand:
//
//	RUNSPEC_FAULTS_DURATION=10m go test -run TestHistoryUnderFaults -timeout 30m -v ./store/etcd/
//
// RUNSPEC_FAULTS_HOLD sets how long each fault lasts (2s by default), and
// RUNSPEC_FAULTS_OUT where a failed check leaves the history and
// porcupine's visualization (the system's temporary directory).

package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// members is the etcd cluster of a fault test, and the faults it can take.
type members struct {
	endpoints []string
	what      string // e.g. "etcd 3.4.23, 3 processes"
	kill      func(i int)
	restart   func(i int) error
	// pause and resume are nil for in-process members, which cannot be
	// stopped with SIGSTOP.
	pause, resume func(i int) error
	leader        func() int // -1: none known
}

// startMembers starts three etcd members: processes of the installed etcd
// binary if there is one ($ETCD_BIN, or etcd on $PATH), else in-process
// members (etcd 3.7), which take every fault but SIGSTOP.
func startMembers(t *testing.T) *members {
	bin := os.Getenv("ETCD_BIN")
	if bin == "" {
		bin, _ = exec.LookPath("etcd")
	}
	if bin == "" {
		c := etcdtest.Start(t, 3)
		return &members{endpoints: c.Endpoints(), what: "etcd 3.7 in process, 3 members (no SIGSTOP)",
			kill:    c.Kill,
			restart: func(i int) error { c.Restart(i); return nil },
			leader:  c.Leader}
	}
	ps := etcdtest.StartBinaryCluster(t, 3)
	m := &members{what: fmt.Sprintf("etcd %s, 3 processes", ps[0].Version),
		kill:    func(i int) { ps[i].Kill() },
		restart: func(i int) error { return ps[i].Restart() },
		pause:   func(i int) error { return ps[i].Pause() },
		resume:  func(i int) error { return ps[i].Resume() },
		leader: func() int {
			for i, p := range ps {
				if p.IsLeader() {
					return i
				}
			}
			return -1
		}}
	for _, p := range ps {
		m.endpoints = append(m.endpoints, p.Endpoint)
	}
	return m
}

// A replica is one registry on etcd, served over loopback HTTP. It can
// crash, and a successor (the next generation) take its place.
type replica struct {
	i    int
	run  *faultRun
	mu   sync.Mutex
	gen  int
	url  string
	stop func() // stops the current generation; nil while none runs
}

// current is the URL and generation of the replica now serving.
func (r *replica) current() (string, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.url, r.gen
}

// start starts a generation of the replica, retrying while etcd cannot be
// reached, for at most a minute.
func (r *replica) start() error {
	deadline := time.Now().Add(time.Minute)
	for {
		err := r.startOnce()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (r *replica) startOnce() error {
	f := r.run
	st, err := Open(context.Background(), Config{Endpoints: f.m.endpoints, Prefix: f.prefix,
		RequestTimeout: 2 * time.Second, DialTimeout: 2 * time.Second})
	if err != nil {
		return err
	}
	var cl registry.Cluster = st
	if f.wrap != nil {
		cl = f.wrap(st)
	}
	reg, err := registry.New(registry.Options{Cluster: cl, Logger: f.log})
	if err != nil {
		st.Close()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		reg.Run(ctx)
	}()
	srv := httptest.NewServer(reg)
	r.mu.Lock()
	r.gen++
	r.url = srv.URL
	r.stop = func() {
		// As a crash: connections cut, in-flight requests fail, the etcd
		// client goes before Run ends.
		srv.CloseClientConnections()
		st.Close()
		cancel()
		<-ran
		srv.Close()
	}
	r.mu.Unlock()
	return nil
}

// crash stops the current generation.
func (r *replica) crash() {
	r.mu.Lock()
	stop := r.stop
	r.stop = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// A faultRun is one run: the members, the replicas, the clients' history
// and the faults injected.
type faultRun struct {
	t        *testing.T
	m        *members
	prefix   string
	wrap     func(*Store) registry.Cluster // a seeded bug, or nil
	log      *slog.Logger
	replicas []*replica
	h        *history
	tags     atomic.Int64
	faults   []string
	client   *http.Client
}

// Replicas 0 to writers-1 each make the writes of idsPerReplica instances;
// the last replica, the observer, only serves reads: its change stream
// gets no help from writes of its own waiting for it.
const (
	writers       = 3
	idsPerReplica = 4
)

// homeIDs are the ids whose writes go through replica i (none for the
// observer).
func homeIDs(i int) []string {
	if i >= writers {
		return nil
	}
	ids := make([]string, idsPerReplica)
	for j := range ids {
		ids[j] = fmt.Sprintf("inst-%d-%d", i, j)
	}
	return ids
}

// do sends one request and classifies its answer: resOK for want, resNotFound
// for 404, resUnknown for a 503, a timeout or a lost connection.
func (f *faultRun) do(ctx context.Context, method, url, body string, want int) (result, []byte) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		f.t.Error(err)
		return resUnknown, nil
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return resUnknown, nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	switch {
	case err != nil:
		return resUnknown, nil
	case resp.StatusCode == want:
		return resOK, b
	case resp.StatusCode == http.StatusNotFound:
		return resNotFound, b
	case resp.StatusCode == http.StatusServiceUnavailable:
		return resUnknown, b
	}
	f.t.Errorf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
	return resUnknown, b
}

// operate makes one operation through replica rep, records it, and returns
// its result.
func (f *faultRun) operate(ctx context.Context, client int, rep *replica, home bool, kind opKind, id string, rng *rand.Rand) result {
	url, gen := rep.current()
	o := op{client: client, replica: rep.i, gen: gen, home: home, kind: kind, id: id}
	var method, path, body string
	want := http.StatusOK
	switch kind {
	case opRegister:
		o.tag = fmt.Sprintf("v%d", f.tags.Add(1))
		o.arg = recState{name: "agent", version: o.tag, host: fmt.Sprintf("host-%d", rng.IntN(3))}
		method, path, want = "POST", "/instances", http.StatusCreated
		body = fmt.Sprintf(`{"instance_id":%q,"name":%q,"version":%q,"host":%q,"heartbeat_interval":3600}`, id, o.arg.name, o.arg.version, o.arg.host)
	case opTools:
		o.tag = fmt.Sprintf("t%d", f.tags.Add(1))
		tools := []json.RawMessage{
			json.RawMessage(fmt.Sprintf(`{"name":"deploy","description":%q,"inputSchema":{"type":"object"},"x-command":"deploy %s"}`, o.tag, o.tag)),
			json.RawMessage(fmt.Sprintf(`{"name":"tool-%d","description":%q,"x-command":"run"}`, rng.IntN(5), o.tag)),
		}
		o.arg.tools, _ = toolsDigest(tools)
		b, _ := json.Marshal(map[string]any{"tools": tools})
		method, path, body = "POST", "/instances/"+id+"/tools", string(b)
	case opDeregister:
		method, path = "DELETE", "/instances/"+id
	case opRead:
		method, path = "GET", "/instances/"+id
	}
	o.call = f.h.now()
	res, b := f.do(ctx, method, url+path, body, want)
	o.ret, o.res = f.h.now(), res
	if kind == opRead {
		if res == resUnknown {
			return res // a read that failed shows nothing
		}
		if res == resOK {
			var err error
			if o.read, err = parseRecord(b); err != nil {
				f.t.Errorf("GET %s: %v: %s", path, err, b)
				return resUnknown
			}
		}
	}
	f.h.add(o)
	return res
}

// parseRecord is the model state of an answer of GET /instances/{id}.
func parseRecord(b []byte) (recState, error) {
	var rec struct {
		Name    string            `json:"name"`
		Version string            `json:"version"`
		Host    string            `json:"host"`
		Active  bool              `json:"active"`
		Tools   []json.RawMessage `json:"tools"`
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return recState{}, err
	}
	digest, err := toolsDigest(rec.Tools)
	if err != nil {
		return recState{}, fmt.Errorf("tools: %w", err)
	}
	return recState{exists: true, active: rec.Active, name: rec.Name, version: rec.Version, host: rec.Host, tools: digest}, nil
}

// readerPace is the least time between two reads of a reader of other
// replicas' ids; retryAfter is how long a writer waits after an answer it
// could not tell the outcome of.
const (
	readerPace = 10 * time.Millisecond
	retryAfter = 250 * time.Millisecond
)

// workload runs the clients until ctx is done: per writing replica, three
// writers on its ids (register, tool posts, deregistrations, reads) and one
// reader of the other replicas' ids; on the observer, two readers of every
// id.
func (f *faultRun) workload(ctx context.Context, seed uint64) *sync.WaitGroup {
	var wg sync.WaitGroup
	client := 0
	for i, rep := range f.replicas {
		mine := homeIDs(i)
		var others []string
		for j := range f.replicas {
			if j != i {
				others = append(others, homeIDs(j)...)
			}
		}
		first := 0
		if len(mine) == 0 {
			first = 2 // the observer: readers only
		}
		for w := first; w < 4; w++ {
			c := client
			client++
			rng := rand.New(rand.NewPCG(seed, uint64(c)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				pace := time.NewTicker(readerPace)
				defer pace.Stop()
				for ctx.Err() == nil {
					if w >= 2 && len(mine) == 0 || w == 3 { // a reader, at a bounded rate
						f.operate(ctx, c, rep, false, opRead, others[rng.IntN(len(others))], rng)
						select {
						case <-ctx.Done():
						case <-pace.C:
						}
						continue
					}
					id := mine[rng.IntN(len(mine))]
					var res result
					switch p := rng.IntN(100); {
					case p < 25:
						res = f.operate(ctx, c, rep, true, opRegister, id, rng)
					case p < 50:
						res = f.operate(ctx, c, rep, true, opTools, id, rng)
					case p < 62:
						res = f.operate(ctx, c, rep, true, opDeregister, id, rng)
					default:
						res = f.operate(ctx, c, rep, true, opRead, id, rng)
					}
					if res == resUnknown {
						// As a client honouring Retry-After (shorter): each
						// unknown outcome widens the search of the check.
						select {
						case <-ctx.Done():
						case <-time.After(retryAfter):
						}
					}
				}
			}()
		}
	}
	return &wg
}

// A fault is injected, lasts for hold, and is healed before it returns. It
// returns what it did, or "" if it could not be made here.
type fault struct {
	name   string
	inject func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error)
}

var faultKinds = []fault{
	{"kill -9 of a member", func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error) {
		i := rng.IntN(len(f.m.endpoints))
		if l := f.m.leader(); i == l {
			i = (i + 1) % len(f.m.endpoints)
		}
		f.m.kill(i)
		time.Sleep(hold)
		return fmt.Sprintf("member m%d killed (SIGKILL) for %v", i, hold), f.m.restart(i)
	}},
	{"kill -9 of the leader", func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error) {
		i := f.m.leader()
		if i < 0 {
			return "", errors.New("no leader")
		}
		f.m.kill(i)
		time.Sleep(hold)
		return fmt.Sprintf("leader m%d killed (SIGKILL) for %v", i, hold), f.m.restart(i)
	}},
	{"SIGSTOP of a member", func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error) {
		if f.m.pause == nil {
			return "", nil
		}
		i := rng.IntN(len(f.m.endpoints))
		leader := ""
		if i == f.m.leader() {
			leader = " (the leader)"
		}
		if err := f.m.pause(i); err != nil {
			return "", err
		}
		time.Sleep(hold)
		return fmt.Sprintf("member m%d%s paused (SIGSTOP) for %v", i, leader, hold), f.m.resume(i)
	}},
	{"crash of a replica", func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error) {
		r := f.replicas[rng.IntN(len(f.replicas))]
		r.crash()
		time.Sleep(hold / 4)
		return fmt.Sprintf("replica %d crashed, its successor started after %v", r.i, hold/4), r.start()
	}},
	{"etcd cut off", func(f *faultRun, rng *rand.Rand, hold time.Duration) (string, error) {
		n := len(f.m.endpoints)
		if f.m.pause != nil {
			for i := range n {
				if err := f.m.pause(i); err != nil {
					return "", err
				}
			}
			time.Sleep(hold)
			for i := range n {
				if err := f.m.resume(i); err != nil {
					return "", err
				}
			}
			return fmt.Sprintf("every member paused (SIGSTOP) for %v", hold), nil
		}
		for i := range n {
			f.m.kill(i)
		}
		time.Sleep(hold)
		errs := make(chan error, n)
		for i := range n { // in parallel: each waits for a quorum
			go func() { errs <- f.m.restart(i) }()
		}
		var err error
		for range n {
			err = errors.Join(err, <-errs)
		}
		return fmt.Sprintf("every member killed for %v", hold), err
	}},
}

// faultPlan is the size of a run.
type faultPlan struct {
	duration   time.Duration // of the workload
	hold, pace time.Duration // how long a fault lasts; the pause between two
	faults     bool
	// viewsBehind: the replicas' views lag by design (a seeded bug), so
	// drive waits only for the oracle to reach etcd's last revision, not
	// for the replicas to converge.
	viewsBehind bool
}

// newFaultRun starts the replicas (writers and the observer) on m, and
// the oracle.
func newFaultRun(t *testing.T, m *members, prefix string, wrap func(*Store) registry.Cluster) (*faultRun, *oracle) {
	f := &faultRun{t: t, m: m, prefix: prefix, wrap: wrap, log: slog.New(slog.DiscardHandler), h: newHistory(),
		client: &http.Client{Timeout: 15 * time.Second}}
	cli, err := clientv3.New(clientv3.Config{Endpoints: m.endpoints, DialTimeout: 5 * time.Second,
		DialKeepAliveTime: time.Second, DialKeepAliveTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	resp, err := cli.Get(t.Context(), prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Count != 0 {
		t.Fatalf("prefix %s is not empty", prefix)
	}
	o := &oracle{c: cli, prefix: prefix, h: f.h}
	octx, stop := context.WithCancel(context.Background())
	odone := make(chan struct{})
	go func() {
		defer close(odone)
		o.follow(octx, resp.Header.Revision)
	}()
	t.Cleanup(func() {
		stop()
		<-odone
	})
	for i := range writers + 1 {
		r := &replica{i: i, run: f}
		if err := r.start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.crash)
		f.replicas = append(f.replicas, r)
	}
	return f, o
}

// drive runs the workload for plan.duration, injecting faults in turn if
// plan.faults, then heals, waits until every replica shows etcd's last
// state (unless plan.viewsBehind: then only the oracle), and checks the
// history.
func (f *faultRun) drive(plan faultPlan, o *oracle, seed uint64) (report, porcupine.LinearizationInfo, []op, map[string][]oracleState) {
	t := f.t
	ctx, stop := context.WithTimeout(context.Background(), plan.duration)
	defer stop()
	wg := f.workload(ctx, seed)
	if plan.faults {
		rng := rand.New(rand.NewPCG(seed, 1<<32))
		for k := 0; ; k++ {
			select {
			case <-ctx.Done():
			case <-time.After(plan.pace):
			}
			if ctx.Err() != nil {
				break
			}
			fk := faultKinds[k%len(faultKinds)]
			began := time.Duration(f.h.now()).Round(time.Millisecond)
			did, err := fk.inject(f, rng, plan.hold)
			if err != nil {
				t.Fatalf("%s: %v", fk.name, err)
			}
			if did != "" {
				f.faults = append(f.faults, fmt.Sprintf("%v: %s", began, did))
			}
		}
	}
	wg.Wait()
	if plan.viewsBehind {
		f.settle(o, time.Now().Add(30*time.Second))
	} else {
		f.converge(o)
	}
	ops := f.h.all()
	states, err := o.history()
	if err != nil {
		t.Fatal(err)
	}
	rep, info := check(ops, states, time.Minute)
	return rep, info, ops, states
}

// converge waits until the oracle has followed etcd to its last revision
// and every replica shows the last state of every id. A write whose
// request was cut at the workload's end may still commit meanwhile: the
// last revision is read again until it stays put through a whole pass.
func (f *faultRun) converge(o *oracle) {
	t := f.t
	deadline := time.Now().Add(30 * time.Second)
	var diff string
	for time.Now().Before(deadline) {
		rev := f.reach(o, deadline)
		states, _ := o.history()
		if diff = f.differ(states); diff == "" && f.revision(o) == rev {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the replicas do not converge: %s", diff)
}

// settle waits until the oracle has followed etcd to its last revision,
// read again until it stays put, as converge does without the replicas.
// The check needs it: a write etcd stored that the oracle has not seen
// would count as lost, or as never made.
func (f *faultRun) settle(o *oracle, deadline time.Time) {
	for time.Now().Before(deadline) {
		rev := f.reach(o, deadline)
		time.Sleep(100 * time.Millisecond) // a cut write may commit late
		if f.revision(o) == rev {
			return
		}
	}
	f.t.Fatalf("etcd's revision does not stay put (at %d)", f.revision(o))
}

// reach reads etcd's last revision and waits until the oracle has
// followed to it, failing the test at deadline; it returns the revision.
func (f *faultRun) reach(o *oracle, deadline time.Time) int64 {
	rev := f.revision(o)
	for o.at() < rev {
		if time.Now().After(deadline) {
			f.t.Fatalf("the oracle did not reach revision %d (at %d)", rev, o.at())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return rev
}

// revision is etcd's current revision.
func (f *faultRun) revision(o *oracle) int64 {
	resp, err := o.c.Get(f.t.Context(), f.prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		f.t.Fatal(err)
	}
	return resp.Header.Revision
}

// differ says where a replica does not show the last of states, or "".
func (f *faultRun) differ(states map[string][]oracleState) string {
	for _, r := range f.replicas {
		url, _ := r.current()
		for i := range writers {
			for _, id := range homeIDs(i) {
				var want recState // absent if never written
				if ss := states[id]; len(ss) > 0 {
					want = ss[len(ss)-1].st
				}
				res, b := f.do(f.t.Context(), "GET", url+"/instances/"+id, "", http.StatusOK)
				var got recState
				if res == resOK {
					got, _ = parseRecord(b)
				}
				if res == resUnknown || got != want {
					return fmt.Sprintf("replica %d shows %s as %v, etcd's last state is %v", r.i, id, got, want)
				}
			}
		}
	}
	return ""
}

// logReport logs a run's figures and what the checks found.
func logReport(t *testing.T, name string, rep report, faults []string, took time.Duration) {
	t.Logf("%s: %d faults injected", name, len(faults))
	for _, f := range faults {
		t.Logf("  fault at %s", f)
	}
	t.Logf("%s: history of %d operations (%d writes, %d of them with unknown outcome, %d dropped as never stored; %d reads), "+
		"%d instances checked by porcupine: %v; %d reads through other replicas and %d through the writing one checked against etcd's write order: "+
		"%d violations; most behind: %v on another replica, %v on the writing one; in %v",
		name, rep.ops, rep.writes, rep.unknown, rep.dropped, rep.reads, rep.partitions, rep.porcupine,
		rep.viewReads, rep.homeReads, len(rep.violations), rep.stale.Round(time.Millisecond), rep.homeStale.Round(time.Millisecond), took.Round(time.Second))
	if rep.staleAt != "" {
		t.Logf("%s: the read most behind: %s", name, rep.staleAt)
	}
}

// saveHistory writes the operations and etcd's states of the ids named in
// rep's violations and illegal partitions, and returns its path.
func saveHistory(t *testing.T, rep report, ops []op, states map[string][]oracleState) string {
	ids := slices.Clone(rep.illegal)
	for _, v := range rep.violations {
		if _, rest, ok := strings.Cut(v, ": "+"read "); ok {
			ids = append(ids, strings.Fields(rest)[0])
		}
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	var b strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&b, "== %s: etcd's states\n", id)
		for _, s := range states[id] {
			fmt.Fprintf(&b, "rev %d seen %v: %v\n", s.rev, time.Duration(s.seen), s.st)
		}
		fmt.Fprintf(&b, "== %s: operations\n", id)
		mine := slices.DeleteFunc(slices.Clone(ops), func(o op) bool { return o.id != id })
		slices.SortFunc(mine, func(a, b op) int { return cmp.Compare(a.call, b.call) })
		for _, o := range mine {
			fmt.Fprintln(&b, o)
		}
	}
	path := filepath.Join(outDir(), fmt.Sprintf("history-%s-%d.txt", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Log(err)
	}
	return path
}

// outDir is where failed checks leave their files: $RUNSPEC_FAULTS_OUT, or
// the system's temporary directory.
func outDir() string {
	if dir := os.Getenv("RUNSPEC_FAULTS_OUT"); dir != "" {
		return dir
	}
	return os.TempDir()
}

// saveVisualization writes porcupine's HTML view of a failed check, and
// returns its path.
func saveVisualization(t *testing.T, info porcupine.LinearizationInfo) string {
	path := filepath.Join(outDir(), fmt.Sprintf("porcupine-%s-%d.html", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	file, err := os.Create(path)
	if err != nil {
		t.Log(err)
		return ""
	}
	defer file.Close()
	if err := porcupine.Visualize(recordModel(), info, file); err != nil {
		t.Log(err)
	}
	return path
}

// faultDuration is the workload's length: RUNSPEC_FAULTS_DURATION if set
// (a long run by hand), else a minute, or 30 s with -short.
func faultDuration(t *testing.T) time.Duration {
	if s := os.Getenv("RUNSPEC_FAULTS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("RUNSPEC_FAULTS_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 30 * time.Second // one fault of each kind
	}
	return time.Minute
}

// TestHistoryUnderFaults: with faults injected in turn, the history of
// four replicas' clients is linearizable per instance (writes, and reads
// through the replica that makes the instance's writes), no acknowledged
// write is lost, every replica's reads follow etcd's write order, and all
// replicas end up showing etcd's last state.
func TestHistoryUnderFaults(t *testing.T) {
	began := time.Now()
	m := startMembers(t)
	seed := uint64(time.Now().UnixNano())
	t.Logf("%s; seed %d", m.what, seed)
	f, o := newFaultRun(t, m, "/faults/", nil)
	plan := faultPlan{duration: faultDuration(t), hold: 2 * time.Second, pace: 1500 * time.Millisecond, faults: true}
	if s := os.Getenv("RUNSPEC_FAULTS_HOLD"); s != "" {
		var err error
		if plan.hold, err = time.ParseDuration(s); err != nil {
			t.Fatalf("RUNSPEC_FAULTS_HOLD: %v", err)
		}
	}
	rep, info, ops, states := f.drive(plan, o, seed)
	logReport(t, "under faults", rep, f.faults, time.Since(began))
	if rep.porcupine != porcupine.Ok {
		t.Errorf("porcupine: %v (instances %v); visualization in %s", rep.porcupine, rep.illegal, saveVisualization(t, info))
	}
	for _, v := range rep.violations {
		t.Errorf("violation: %s", v)
	}
	if rep.porcupine != porcupine.Ok || len(rep.violations) > 0 {
		t.Logf("the operations and etcd's states of those instances: %s", saveHistory(t, rep, ops, states))
	}
	// Not vacuous: enough of each operation, every fault kind made.
	counts := make(map[string]int)
	for _, o := range ops {
		key := o.kind.String()
		if o.res == resOK {
			key += " ok"
		}
		counts[key]++
	}
	for _, k := range []string{"register ok", "tools ok", "deregister ok", "read ok"} {
		if counts[k] < 20 {
			t.Errorf("only %d operations %q: the history checks too little (%v)", counts[k], k, counts)
		}
	}
	if n := len(faultKinds); m.pause == nil && len(f.faults) < n-1 || m.pause != nil && len(f.faults) < n {
		t.Errorf("%d faults injected, fewer than one of each kind", len(f.faults))
	}
}

// earlyAnswers is a seeded bug: a Cluster whose writes report no revision,
// so that the replica answers them before its view has caught up, and whose
// change stream lags, so that the view is behind when it answers.
type earlyAnswers struct {
	*Store
	lag time.Duration
}

func (e earlyAnswers) Register(ctx context.Context, rec registry.Record, guard string) (uint64, error) {
	_, err := e.Store.Register(ctx, rec, guard)
	return 0, err
}

func (e earlyAnswers) SetTools(ctx context.Context, id, guard string, tools []json.RawMessage) (uint64, error) {
	_, err := e.Store.SetTools(ctx, id, guard, tools)
	return 0, err
}

func (e earlyAnswers) Deactivate(ctx context.Context, id, guard string, lastSeen, at time.Time) (uint64, error) {
	_, err := e.Store.Deactivate(ctx, id, guard, lastSeen, at)
	return 0, err
}

func (e earlyAnswers) Watch(ctx context.Context, rev uint64, apply func(registry.Change)) error {
	return e.Store.Watch(ctx, rev, func(ch registry.Change) {
		select {
		case <-ctx.Done(): // a crash or the test's end: no lag to drain
		case <-time.After(e.lag):
		}
		apply(ch)
	})
}

// TestHistoryCatchesEarlyAnswers: the check is not vacuous. With replicas
// that answer writes before their view shows them, porcupine must find the
// history not linearizable. The replicas are not required to converge:
// each change costs their views the lag, and at full write rate (thousands
// of changes in the workload's 3 s without -race) they would take longer
// than converge's 30 s to drain it; convergence is TestHistoryUnderFaults'
// to show, and the check needs only the oracle, which does not lag.
func TestHistoryCatchesEarlyAnswers(t *testing.T) {
	c := etcdtest.Start(t, 1)
	m := &members{endpoints: c.Endpoints(), what: "etcd 3.7 in process, 1 member"}
	f, o := newFaultRun(t, m, "/early/", func(st *Store) registry.Cluster { return earlyAnswers{Store: st, lag: 5 * time.Millisecond} })
	began := time.Now()
	rep, _, _, _ := f.drive(faultPlan{duration: 3 * time.Second, viewsBehind: true}, o, uint64(time.Now().UnixNano()))
	logReport(t, "seeded bug", rep, nil, time.Since(began))
	if rep.porcupine != porcupine.Illegal {
		t.Errorf("porcupine: %v on replicas that answer writes early; want Illegal", rep.porcupine)
	} else {
		t.Logf("seeded bug: porcupine found the history not linearizable, on instances %v", rep.illegal)
	}
}

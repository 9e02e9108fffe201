// history_internal_test.go records and checks histories of operations on
// registry replicas: what each client did, through which replica, with its
// invocation and response times; a sequential model of one instance's
// record that porcupine checks the writes and the writing replica's reads
// against; an oracle that follows etcd's own history of the keys (the write
// order); and the check that every replica's reads follow that order,
// monotonically, at most a measured time behind.

package etcd

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// An opKind is what an operation does.
type opKind int

const (
	opRegister   opKind = iota // POST /instances
	opTools                    // POST /instances/{id}/tools
	opDeregister               // DELETE /instances/{id}
	opRead                     // GET /instances/{id}
)

func (k opKind) String() string {
	return [...]string{"register", "tools", "deregister", "read"}[k]
}

// A result is what a client learnt of an operation.
type result int

const (
	resOK       result = iota // a write acknowledged, a read that found the record
	resNotFound               // 404: a tool post or a read of an id not stored
	resUnknown                // 503, a timeout, a lost connection: it may or may not have happened
)

// recState is the model of one instance's record: the fields clients
// write. Time-driven fields (liveness from leases, last_seen) are left out.
type recState struct {
	exists, active      bool
	name, version, host string
	tools               string // a digest of the tool list (toolsDigest); "" for none
}

func (s recState) String() string {
	if !s.exists {
		return "absent"
	}
	return fmt.Sprintf("{%s %s %s active=%v tools=%q}", s.name, s.version, s.host, s.active, s.tools)
}

// An op is one operation of a history.
type op struct {
	client  int
	replica int  // the replica it went through
	gen     int  // that replica's generation (a crashed replica's successor is the next)
	home    bool // through the replica that makes the id's writes
	kind    opKind
	id      string
	arg     recState // register: name, version, host; tools: tools
	tag     string   // a register's version or a tool post's tag: unique in the run
	res     result
	read    recState // what a read saw (res resOK)
	call    int64    // invocation, ns since the history's start
	ret     int64    // response
}

func (o op) String() string {
	s := fmt.Sprintf("client %d via replica %d/%d: %s %s", o.client, o.replica, o.gen, o.kind, o.id)
	switch o.kind {
	case opRegister, opTools:
		s += " " + o.tag
	}
	switch o.res {
	case resNotFound:
		s += " -> not found"
	case resUnknown:
		s += " -> unknown"
	default:
		if o.kind == opRead {
			s += " -> " + o.read.String()
		} else {
			s += " -> ok"
		}
	}
	return fmt.Sprintf("%s [%v, %v]", s, time.Duration(o.call), time.Duration(o.ret))
}

// A history is the operations of one run, appended concurrently.
type history struct {
	start time.Time
	mu    sync.Mutex
	ops   []op
}

func newHistory() *history { return &history{start: time.Now()} }

// now is the time since the history's start, in ns (monotonic).
func (h *history) now() int64 { return int64(time.Since(h.start)) }

func (h *history) add(o op) {
	h.mu.Lock()
	h.ops = append(h.ops, o)
	h.mu.Unlock()
}

func (h *history) all() []op {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.ops)
}

// toolsDigest is a canonical form of a tool list: name, description and
// x-command of each tool, sorted ("" for an empty list or none).
func toolsDigest(tools []json.RawMessage) (string, error) {
	var parts []string
	for _, raw := range tools {
		var t struct {
			Name        string `json:"name"`
			Description string `json:"description"`
			Command     string `json:"x-command"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return "", err
		}
		parts = append(parts, t.Name+"|"+t.Description+"|"+t.Command)
	}
	slices.Sort(parts)
	return strings.Join(parts, ";"), nil
}

// recordModel is the sequential model of one instance's record, for
// porcupine, partitioned by id. Inputs and outputs are ops.
func recordModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(ops []porcupine.Operation) [][]porcupine.Operation {
			by := make(map[string][]porcupine.Operation)
			var ids []string
			for _, o := range ops {
				id := o.Input.(op).id
				if _, ok := by[id]; !ok {
					ids = append(ids, id)
				}
				by[id] = append(by[id], o)
			}
			out := make([][]porcupine.Operation, len(ids))
			for i, id := range ids {
				out[i] = by[id]
			}
			return out
		},
		Init: func() any { return recState{} },
		Step: func(state, input, _ any) (bool, any) {
			return step(state.(recState), input.(op))
		},
		DescribeOperation: func(input, _ any) string { return input.(op).String() },
		DescribeState:     func(state any) string { return state.(recState).String() },
	}
}

// step applies o to s: whether a record in state s could have given o's
// answer, and the state after it.
func step(s recState, o op) (bool, recState) {
	switch o.kind {
	case opRegister: // replaces the record, tools included; active again
		return true, recState{exists: true, active: true, name: o.arg.name, version: o.arg.version, host: o.arg.host}
	case opTools:
		switch o.res {
		case resOK:
			if !s.exists {
				return false, s
			}
			s.tools = o.arg.tools
			return true, s
		case resNotFound:
			return !s.exists, s
		}
		if s.exists { // unknown: if it happened, it replaced the list
			s.tools = o.arg.tools
		}
		return true, s
	case opDeregister: // an unknown id is not an error
		if s.exists {
			s.active = false
		}
		return true, s
	}
	if o.res == resNotFound {
		return !s.exists, s
	}
	return o.read == s, s
}

// An oracle follows etcd's history of a prefix with a client of its own:
// for each id, the states of its record in revision order, each with when
// the oracle saw it. It decodes the keys as the Store does.
type oracle struct {
	c      *clientv3.Client
	prefix string
	h      *history

	mu      sync.Mutex
	rev     int64
	ents    map[string]*entry
	tools   map[string]string // the tool digest of each record
	schemas map[string][]byte
	states  map[string][]oracleState
	err     error // a decoding error, or a gap in the history
}

// An oracleState is a state one record was in from revision rev, which
// the oracle saw at seen (ns since the history's start).
type oracleState struct {
	rev  int64
	seen int64
	st   recState
}

// follow watches the prefix after revision from until ctx is done.
func (o *oracle) follow(ctx context.Context, from int64) {
	o.mu.Lock()
	o.rev = from
	o.ents, o.tools, o.schemas = make(map[string]*entry), make(map[string]string), make(map[string][]byte)
	o.states = make(map[string][]oracleState)
	o.mu.Unlock()
	for ctx.Err() == nil {
		o.mu.Lock()
		next := o.rev + 1
		o.mu.Unlock()
		wch := o.c.Watch(clientv3.WithRequireLeader(ctx), o.prefix, clientv3.WithPrefix(), clientv3.WithRev(next))
		for resp := range wch {
			if err := resp.Err(); err != nil {
				if resp.CompactRevision != 0 {
					o.fail(fmt.Errorf("oracle: history compacted at %d", resp.CompactRevision))
					return
				}
				break // no leader, a lost stream: watch again from the next revision
			}
			evs := resp.Events
			for len(evs) > 0 {
				n := 1
				for n < len(evs) && evs[n].Kv.ModRevision == evs[0].Kv.ModRevision {
					n++
				}
				o.apply(evs[:n])
				evs = evs[n:]
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (o *oracle) fail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = err
	}
}

// apply takes the events of one revision.
func (o *oracle) apply(evs []*clientv3.Event) {
	seen := o.h.now()
	o.mu.Lock()
	defer o.mu.Unlock()
	rev := evs[0].Kv.ModRevision
	if rev <= o.rev {
		return // delivered again after a resumed watch
	}
	o.rev = rev
	recs := make(map[string]*recordValue)
	var touched []string
	for _, ev := range evs {
		k, ok := strings.CutPrefix(string(ev.Kv.Key), o.prefix)
		if !ok || len(k) < 2 {
			continue
		}
		dir, id := k[:2], k[2:]
		deleted := ev.Type == mvccpb.DELETE
		switch dir {
		case schemaDir:
			if !deleted {
				o.schemas[id] = ev.Kv.Value
			}
			continue
		case recordDir, seenDir, liveDir:
		default:
			continue
		}
		e := o.ents[id]
		if e == nil {
			e = &entry{}
			o.ents[id] = e
		}
		if err := e.apply(dir, id, ev.Kv, deleted, recs); err != nil {
			o.err = fmt.Errorf("oracle: revision %d: %w", rev, err)
			return
		}
		if !slices.Contains(touched, id) {
			touched = append(touched, id)
		}
	}
	for _, id := range touched {
		e := o.ents[id]
		if rv := recs[id]; rv != nil {
			tl, err := tools(rv, o.schemas)
			if err == nil {
				o.tools[id], err = toolsDigest(tl)
			}
			if err != nil {
				o.err = fmt.Errorf("oracle: revision %d: tools of %s: %w", rev, id, err)
				return
			}
		}
		var st recState
		if e.rec != nil {
			st = recState{exists: true, active: e.lease != 0, name: e.rec.Name, version: e.rec.Version, host: e.rec.Host, tools: o.tools[id]}
		}
		ss := o.states[id]
		if len(ss) == 0 && !st.exists {
			continue
		}
		if len(ss) == 0 || ss[len(ss)-1].st != st {
			o.states[id] = append(ss, oracleState{rev: rev, seen: seen, st: st})
		}
	}
}

// at is the revision the oracle has followed to.
func (o *oracle) at() int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.rev
}

// history returns the states of every id, each starting absent, and the
// oracle's error if it has one.
func (o *oracle) history() (map[string][]oracleState, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make(map[string][]oracleState, len(o.states))
	for id, ss := range o.states {
		out[id] = append([]oracleState{{}}, ss...)
	}
	return out, o.err
}

// A report sums up the checks of one history.
type report struct {
	ops, writes, reads, unknown, dropped int
	partitions                           int
	porcupine                            porcupine.CheckResult
	illegal                              []string // ids whose partition is not linearizable
	viewReads, homeReads                 int      // reads checked against the write order
	violations                           []string // reads out of the write order, lost writes
	stale, homeStale                     time.Duration
	staleAt                              string // the read that was the most behind
}

// check checks ops against the model (writes, and the reads through the
// replica that made the id's writes) and against the oracle's write order
// (every read), within timeout for porcupine.
func check(ops []op, states map[string][]oracleState, timeout time.Duration) (report, porcupine.LinearizationInfo) {
	var rep report
	rep.ops = len(ops)
	stored := make(map[string]bool) // tags that etcd stored
	for _, ss := range states {
		for _, s := range ss {
			stored[s.st.version] = true
			for _, part := range strings.Split(s.st.tools, ";") {
				if f := strings.Split(part, "|"); len(f) == 3 {
					stored[f[1]] = true // a tool post's tag is its tools' description
				}
			}
		}
	}
	var pops []porcupine.Operation
	for _, o := range ops {
		if o.kind != opRead {
			rep.writes++
			switch {
			case o.res == resUnknown:
				rep.unknown++
			case o.res == resOK && (o.kind == opRegister || o.kind == opTools) && !stored[o.tag]:
				rep.violations = append(rep.violations, fmt.Sprintf("lost: %v acknowledged, never stored in etcd", o))
			}
		} else {
			rep.reads++
		}
		if !o.home {
			continue
		}
		end := o.ret
		if o.res == resUnknown {
			if (o.kind == opRegister || o.kind == opTools) && !stored[o.tag] {
				rep.dropped++ // etcd never stored it: it did not happen
				continue
			}
			end = math.MaxInt64 // it may have happened at any time after its call
		}
		pops = append(pops, porcupine.Operation{ClientId: o.client, Input: o, Output: o, Call: o.call, Return: end})
	}
	model := recordModel()
	rep.partitions = len(model.Partition(pops))
	res, info := porcupine.CheckOperationsVerbose(model, pops, timeout)
	rep.porcupine = res
	if res == porcupine.Illegal {
		for _, part := range model.Partition(pops) {
			if porcupine.CheckOperationsTimeout(model, part, timeout) == porcupine.Illegal {
				rep.illegal = append(rep.illegal, part[0].Input.(op).id)
			}
		}
	}
	checkViews(ops, states, &rep)
	return rep, info
}

// checkViews checks that the reads of each replica (each generation of it,
// one view) follow the write order of each id: each read shows a state the
// record was in, no earlier than the states shown by the reads of the same
// view that returned before it was invoked. A read's staleness is how long
// before its invocation the oracle saw the state after the one it showed.
func checkViews(ops []op, states map[string][]oracleState, rep *report) {
	type viewKey struct {
		replica, gen int
		id           string
	}
	type placed struct {
		ret int64
		pos int
	}
	reads := make(map[viewKey][]op)
	for _, o := range ops {
		if o.kind == opRead && o.res != resUnknown {
			k := viewKey{o.replica, o.gen, o.id}
			reads[k] = append(reads[k], o)
		}
	}
	for k, rs := range reads {
		slices.SortFunc(rs, func(a, b op) int { return cmp.Compare(a.call, b.call) })
		ss := states[k.id]
		if len(ss) == 0 {
			ss = []oracleState{{}}
		}
		var done []placed
		for _, r := range rs {
			saw := r.read // zero (absent) for a not found
			lower := 0
			for _, d := range done {
				if d.ret < r.call {
					lower = max(lower, d.pos)
				}
			}
			pos := -1
			for i := lower; i < len(ss); i++ {
				if ss[i].st == saw {
					pos = i
					break
				}
			}
			if r.home {
				rep.homeReads++
			} else {
				rep.viewReads++
			}
			if pos < 0 {
				what := "a state the record never was in"
				if slices.ContainsFunc(ss, func(s oracleState) bool { return s.st == saw }) {
					what = fmt.Sprintf("a state older than the position %d an earlier read of this replica showed (%v)", lower, ss[lower].st)
				}
				rep.violations = append(rep.violations, fmt.Sprintf("%v: %s", r, what))
				continue
			}
			done = append(done, placed{r.ret, pos})
			// The latest position with this state that the oracle saw
			// before the read returned: the read showed it, or a later one.
			shown := pos
			for i := pos + 1; i < len(ss) && ss[i].seen <= r.ret; i++ {
				if ss[i].st == saw {
					shown = i
				}
			}
			if shown+1 < len(ss) && ss[shown+1].seen < r.call {
				behind := time.Duration(r.call - ss[shown+1].seen)
				switch {
				case r.home:
					rep.homeStale = max(rep.homeStale, behind)
				case behind > rep.stale:
					rep.stale = behind
					rep.staleAt = fmt.Sprintf("%v, while %v was seen in etcd %v before", r, ss[shown+1].st, behind.Round(time.Millisecond))
				}
			}
		}
	}
}

// replica_test.go runs registries (replicas) on etcd side by side, over
// loopback HTTP: replicas share writes and liveness (leases); a replica or
// an etcd member killed mid-load loses no acknowledged write; etcd cut off
// and back, another application's revisions, retention across rolling
// restarts, and the events of one revision.

package etcd_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/etcd"
	"github.com/runspec/registry/store/etcd/etcdtest"
)

// A replica is one Registry on etcd, served over loopback HTTP.
type replica struct {
	t    *testing.T
	reg  *registry.Registry
	st   *etcd.Store
	srv  *httptest.Server
	stop func()
}

// startReplica starts a registry on the etcd at endpoints, under prefix.
func startReplica(t *testing.T, endpoints []string, prefix string, opts registry.Options) *replica {
	t.Helper()
	return startReplicaWith(t, etcd.Config{Endpoints: endpoints, Prefix: prefix}, opts)
}

// startReplicaWith is startReplica with more of the etcd configuration.
func startReplicaWith(t *testing.T, cfg etcd.Config, opts registry.Options) *replica {
	t.Helper()
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 2 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 2 * time.Second
	}
	st, err := etcd.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	opts.Cluster = st
	if opts.CheckpointInterval == 0 {
		opts.CheckpointInterval = 200 * time.Millisecond
	}
	reg, err := registry.New(opts)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		reg.Run(ctx)
	}()
	r := &replica{t: t, reg: reg, st: st, srv: httptest.NewServer(reg)}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			r.srv.Close()
			cancel()
			<-ran
			st.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

type reply struct {
	code   int
	header http.Header
	body   string
}

func (r *replica) do(method, path, body string) reply {
	r.t.Helper()
	req, err := http.NewRequest(method, r.srv.URL+path, strings.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	resp, err := r.srv.Client().Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatal(err)
	}
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func (r *replica) must(method, path, body string, code int) reply {
	r.t.Helper()
	rep := r.do(method, path, body)
	if rep.code != code {
		r.t.Fatalf("%s %s: %d %s, want %d", method, path, rep.code, rep.body, code)
	}
	return rep
}

func (r *replica) register(id, host string, interval float64) {
	r.t.Helper()
	body := fmt.Sprintf(`{"instance_id":%q,"name":"agent","version":"1","host":%q,"heartbeat_interval":%v}`, id, host, interval)
	r.must("POST", "/instances", body, http.StatusCreated)
}

// instance is GET /instances/{id} decoded, or nil on 404.
func (r *replica) instance(id string) map[string]any {
	r.t.Helper()
	rep := r.do("GET", "/instances/"+id, "")
	if rep.code == http.StatusNotFound {
		return nil
	}
	if rep.code != http.StatusOK {
		r.t.Fatalf("GET /instances/%s: %d %s", id, rep.code, rep.body)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(rep.body), &m); err != nil {
		r.t.Fatal(err)
	}
	return m
}

// eventually polls cond every 10 ms until it holds or limit passes, and
// returns how long it took.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestReplicasShareWrites(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/share/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/share/", registry.Options{})

	a.register("i1", "h1", 30)
	// Read-your-writes: the writing replica shows the write at once.
	if got := a.instance("i1"); got == nil || got["active"] != true {
		t.Fatalf("A right after its write: %v", got)
	}
	took := eventually(t, time.Second, "B sees the registration", func() bool { return b.instance("i1") != nil })
	t.Logf("replica B saw A's registration after %v", took)

	tools := `{"tools":[{"name":"deploy","description":"d","inputSchema":{"type":"object"},"x-command":"deploy.sh","x-run-as":"ops"}]}`
	b.must("POST", "/instances/i1/tools", tools, http.StatusOK)
	if rep := b.must("GET", "/tools/deploy", "", http.StatusOK); !strings.Contains(rep.body, `"x-command":"deploy.sh"`) {
		t.Fatalf("B's tool after its post: %s", rep.body)
	}
	eventually(t, time.Second, "A sees B's tools", func() bool {
		return a.do("GET", "/tools/deploy", "").code == http.StatusOK
	})
	// Both answer the same body at the same change index.
	ra, rb := a.must("GET", "/tools", "", http.StatusOK), b.must("GET", "/tools", "", http.StatusOK)
	if ra.body != rb.body || ra.header.Get("X-Registry-Index") != rb.header.Get("X-Registry-Index") {
		t.Errorf("replicas differ:\nA %s %s\nB %s %s", ra.header.Get("X-Registry-Index"), ra.body, rb.header.Get("X-Registry-Index"), rb.body)
	}

	// A heartbeat through B of an instance registered through A.
	if rep := b.must("POST", "/instances/i1/heartbeat", `{"system":{"pid":7}}`, http.StatusOK); rep.body != `{"status":"ack"}` {
		t.Errorf("heartbeat through B: %s", rep.body)
	}
	b.must("POST", "/instances/nope/heartbeat", ``, http.StatusOK) // refresh
	eventually(t, 2*time.Second, "A sees B's system", func() bool {
		sys, _ := a.instance("i1")["system"].(map[string]any)
		return sys["pid"] == float64(7)
	})

	// Deregistration through B: inactive on both, record kept.
	b.must("DELETE", "/instances/i1", "", http.StatusOK)
	if b.instance("i1")["active"] != false {
		t.Error("B: still active after its DELETE")
	}
	eventually(t, time.Second, "A sees the deregistration", func() bool { return a.instance("i1")["active"] == false })
	if a.do("GET", "/tools/deploy", "").code != http.StatusNotFound {
		t.Error("A: tool of an inactive instance still listed by default")
	}
	// A heartbeat revives it, on any replica.
	a.must("POST", "/instances/i1/heartbeat", "", http.StatusOK)
	eventually(t, time.Second, "B sees the revival", func() bool { return b.instance("i1")["active"] == true })
}

// TestLeaseLiveness: heartbeats through B keep an instance registered through
// A alive beyond its TTL; when they stop, both replicas report it inactive
// within TTL + 1 s.
func TestLeaseLiveness(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/lease/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/lease/", registry.Options{})
	const interval = time.Second // TTL 3 s
	a.register("i1", "h1", interval.Seconds())
	b.must("POST", "/instances/i1/tools", `{"tools":[]}`, http.StatusOK)

	var last time.Time
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(interval / 2) {
		if rep := b.must("POST", "/instances/i1/heartbeat", "", http.StatusOK); rep.body != `{"status":"ack"}` {
			t.Fatalf("heartbeat: %s", rep.body)
		}
		last = time.Now()
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		if r.instance("i1")["active"] != true {
			t.Fatalf("%s: inactive after 5 s of heartbeats, beyond its 3 s TTL", name)
		}
	}
	ttl := 3 * interval
	for name, r := range map[string]*replica{"A": a, "B": b} {
		eventually(t, ttl+time.Second-time.Since(last), name+" reports the instance inactive", func() bool {
			return r.instance("i1")["active"] == false
		})
		t.Logf("%s: inactive %v after the last heartbeat (TTL %v)", name, time.Since(last).Round(time.Millisecond), ttl)
	}
	// Its last_seen, written by B's checkpoint, is the last heartbeat's, within
	// the checkpoint interval.
	seen := a.instance("i1")["last_seen"].(float64)
	if d := last.Sub(time.Unix(0, int64(seen*1e9))); d > 300*time.Millisecond || d < -300*time.Millisecond {
		t.Errorf("A's last_seen is %v from the last heartbeat", d)
	}
}

// TestReplicaKilled: a replica stopped in the middle of a load loses none of
// the writes it acknowledged.
func TestReplicaKilled(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/kill/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/kill/", registry.Options{})

	var mu sync.Mutex
	var acked []string
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				body := fmt.Sprintf(`{"instance_id":%q,"name":"n","version":"1","host":"h"}`, id)
				resp, err := http.Post(a.srv.URL+"/instances", "application/json", strings.NewReader(body))
				if err != nil {
					return // A is gone
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					return
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(700 * time.Millisecond)
	a.stop()
	wg.Wait()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before A stopped")
	}
	t.Logf("%d registrations acknowledged by A before it stopped", len(acked))
	eventually(t, 2*time.Second, "B has every acknowledged write", func() bool {
		for _, id := range acked {
			if _, _, err := b.reg.Instance(context.Background(), id); err != nil {
				return false
			}
		}
		return true
	})
}

// TestMemberStopped: with three etcd members, killing the leader in the
// middle of writes through two replicas stops them for no longer than an
// election, loses no acknowledged write, and never stops reads.
func TestMemberStopped(t *testing.T) {
	c := etcdtest.Start(t, 3)
	testMemberLoss(t, c.Endpoints(), func() string {
		leader := c.Leader()
		if leader < 0 {
			t.Fatal("no leader")
		}
		c.Kill(leader)
		return fmt.Sprintf("leader m%d (etcd 3.7, in process)", leader)
	})
}

// TestMemberKilledEtcd34 is TestMemberStopped with three processes of
// Debian's etcd 3.4, the leader killed with SIGKILL.
func TestMemberKilledEtcd34(t *testing.T) {
	ps := etcdtest.StartBinaryCluster(t, 3)
	var eps []string
	for _, p := range ps {
		eps = append(eps, p.Endpoint)
	}
	testMemberLoss(t, eps, func() string {
		for i, p := range ps {
			if p.IsLeader() {
				p.Kill()
				return fmt.Sprintf("leader m%d (etcd %s, kill -9)", i, p.Version)
			}
		}
		t.Fatal("no leader")
		return ""
	})
}

// testMemberLoss writes and heartbeats through two replicas while kill
// stops one member of their three-member etcd cluster.
func testMemberLoss(t *testing.T, endpoints []string, kill func() string) {
	// Every heartbeat is its own keep-alive, on streams that must move to
	// another member.
	cfg := etcd.Config{Endpoints: endpoints, Prefix: "/member/", KeepAliveWindow: -1}
	a := startReplicaWith(t, cfg, registry.Options{})
	b := startReplicaWith(t, cfg, registry.Options{})
	a.register("before", "h", 30)
	a.must("POST", "/instances/before/tools", `{"tools":[]}`, http.StatusOK)

	var (
		mu      sync.Mutex
		acked   []string
		failed  int
		beats   int           // acknowledged heartbeats
		longest time.Duration // the longest time between two acknowledged writes
		done    = make(chan struct{})
		wg      sync.WaitGroup
	)
	for w, r := range []*replica{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := time.Now()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				id := fmt.Sprintf("w%d-%d", w, i)
				rep := r.do("POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"n","version":"1","host":"h"}`, id))
				mu.Lock()
				switch {
				case rep.code == http.StatusCreated:
					acked = append(acked, id)
					longest = max(longest, time.Since(last))
					last = time.Now()
				case rep.code == http.StatusServiceUnavailable && rep.header.Get("Retry-After") != "":
					failed++
				default:
					t.Errorf("write during the failure: %d %s", rep.code, rep.body)
				}
				mu.Unlock()
				if r.do("GET", "/instances/before", "").code != http.StatusOK {
					t.Error("read failed during the failure")
				}
				switch hb := r.do("POST", "/instances/before/heartbeat", ""); {
				case hb.body == `{"status":"ack"}`:
					mu.Lock()
					beats++
					mu.Unlock()
				case hb.code != http.StatusServiceUnavailable:
					t.Errorf("heartbeat during the failure: %d %s", hb.code, hb.body)
				}
				if rep.code != http.StatusCreated {
					time.Sleep(50 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	killed := kill()
	time.Sleep(3 * time.Second) // writes go on through the two members left
	close(done)
	wg.Wait()
	t.Logf("%s killed: %d writes acknowledged, %d answered 503, longest pause between acknowledged writes %v; %d heartbeats acknowledged",
		killed, len(acked), failed, longest.Round(time.Millisecond), beats)
	// Heartbeats work again after the election, on new streams.
	for _, r := range []*replica{a, b} {
		eventually(t, 5*time.Second, "heartbeats after the election", func() bool {
			return r.do("POST", "/instances/before/heartbeat", "").body == `{"status":"ack"}`
		})
	}
	if longest > 6*time.Second { // an election (about 1 s) and a replaced watch (1 s), with room
		t.Errorf("writes stopped for %v", longest)
	}
	for name, r := range map[string]*replica{"A": a, "B": b} {
		eventually(t, 2*time.Second, name+" has every acknowledged write", func() bool {
			for _, id := range acked {
				if _, _, err := r.reg.Instance(context.Background(), id); err != nil {
					return false
				}
			}
			return true
		})
	}
}

// TestEtcdDown: with etcd gone, writes and heartbeats answer 503, reads
// answer from the last view marked stale, /health is degraded; all recover
// when etcd is back.
func TestEtcdDown(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/down/", registry.Options{})
	a.register("i1", "h1", 30)
	if rep := a.must("GET", "/health", "", http.StatusOK); rep.body != `{"status":"ok"}` {
		t.Fatalf("health: %s", rep.body)
	}

	c.Stop(0)
	took := eventually(t, 5*time.Second, "health degraded", func() bool {
		return a.do("GET", "/health", "").code == http.StatusServiceUnavailable
	})
	t.Logf("health degraded %v after etcd stopped", took.Round(time.Millisecond))
	health := a.do("GET", "/health", "")
	var hb struct{ Status, Detail string }
	if err := json.Unmarshal([]byte(health.body), &hb); err != nil || hb.Status != "degraded" || hb.Detail == "" {
		t.Errorf("degraded health body: %s", health.body)
	}
	for _, w := range []struct{ method, path, body string }{
		{"POST", "/instances", `{"instance_id":"i2","name":"n","version":"1","host":"h"}`},
		{"POST", "/instances/i1/heartbeat", ``},
		{"POST", "/instances/i1/tools", `{"tools":[]}`},
		{"DELETE", "/instances/i1", ``},
	} {
		rep := a.do(w.method, w.path, w.body)
		if rep.code != http.StatusServiceUnavailable || rep.header.Get("Retry-After") == "" || !strings.Contains(rep.body, "unavailable") {
			t.Errorf("%s %s with etcd down: %d %q, Retry-After %q", w.method, w.path, rep.code, rep.body, rep.header.Get("Retry-After"))
		}
	}
	rep := a.must("GET", "/instances/i1", "", http.StatusOK)
	if rep.header.Get("X-Registry-Stale") != "true" {
		t.Errorf("read with etcd down: X-Registry-Stale %q", rep.header.Get("X-Registry-Stale"))
	}

	c.Restart(0)
	took = eventually(t, 15*time.Second, "health back", func() bool {
		return a.do("GET", "/health", "").code == http.StatusOK
	})
	t.Logf("health ok %v after etcd restarted", took.Round(time.Millisecond))
	a.must("POST", "/instances", `{"instance_id":"i2","name":"n","version":"1","host":"h"}`, http.StatusCreated)
	if rep := a.must("GET", "/instances/i2", "", http.StatusOK); rep.header.Get("X-Registry-Stale") != "" {
		t.Error("still stale after recovery")
	}
	if a.must("POST", "/instances/i1/heartbeat", "", http.StatusOK).body != `{"status":"refresh"}` {
		t.Error("heartbeat after recovery") // i1 posted no tools: refresh
	}
}

// A transaction that changed nothing (here: an update of an id not stored)
// recorded the global etcd revision as written; when that revision was
// another application's, the watch never reached it, and the replica
// reopened its watch and turned unhealthy every second.
func TestForeignRevisionDoesNotStall(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/mine/", registry.Options{})
	a.register("i1", "h1", 30)
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.Endpoints()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Put(context.Background(), "/other-app/k", "v"); err != nil {
		t.Fatal(err)
	}
	if rev, err := a.st.Deactivate(context.Background(), "gone", "", time.Time{}, time.Now()); err != nil || rev != 0 {
		t.Fatalf("Deactivate of an unknown id = %d, %v; want 0 (nothing to wait for)", rev, err)
	}
	if rev, err := a.st.DeleteInactive(context.Background(), []string{"gone"}); err != nil || rev != 0 {
		t.Fatalf("DeleteInactive of an unknown id = %d, %v; want 0", rev, err)
	}
	bad := 0
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if a.reg.Health() != nil {
			bad++
		}
	}
	if bad > 0 {
		t.Errorf("Health failed %d times in 3 s with etcd up", bad)
	}
}

// TestReplicasEtcd34 repeats the replica tests' core on Debian's etcd 3.4:
// a write through A read through B, and lease liveness across replicas.
func TestReplicasEtcd34(t *testing.T) {
	p := etcdtest.StartBinary(t)
	eps := []string{p.Endpoint}
	a := startReplica(t, eps, "/v34/", registry.Options{})
	b := startReplica(t, eps, "/v34/", registry.Options{})
	a.register("i1", "h1", 1)
	took := eventually(t, time.Second, "B sees the registration", func() bool { return b.instance("i1") != nil })
	t.Logf("etcd %s: B saw A's registration after %v", p.Version, took)
	b.must("POST", "/instances/i1/tools", `{"tools":[{"name":"t","x-command":"c"}]}`, http.StatusOK)
	eventually(t, time.Second, "A sees B's tools", func() bool { return a.do("GET", "/tools/t", "").code == http.StatusOK })
	var last time.Time
	for end := time.Now().Add(4 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
		b.must("POST", "/instances/i1/heartbeat", "", http.StatusOK)
		last = time.Now()
	}
	if a.instance("i1")["active"] != true {
		t.Fatal("A: inactive while B heartbeats")
	}
	eventually(t, 4*time.Second-time.Since(last), "A reports it inactive within TTL + 1 s", func() bool {
		return a.instance("i1")["active"] == false
	})
	t.Logf("etcd %s: inactive on A %v after the last heartbeat (TTL 3s)", p.Version, time.Since(last).Round(time.Millisecond))
}

// TestRetention: an inactive record is deleted on every replica once it has
// been inactive for RetainInactive, and its id is then unknown.
func TestRetention(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := registry.Options{RetainInactive: time.Second}
	a := startReplica(t, c.Endpoints(), "/retain/", opts)
	b := startReplica(t, c.Endpoints(), "/retain/", opts)
	a.register("i1", "h1", 30)
	a.must("POST", "/instances/i1/tools", `{"tools":[]}`, http.StatusOK)
	b.register("i2", "h2", 30)
	a.must("DELETE", "/instances/i1", "", http.StatusOK)
	gone := time.Now()
	for name, r := range map[string]*replica{"A": a, "B": b} {
		eventually(t, 3*time.Second, name+" deletes the record", func() bool { return r.instance("i1") == nil })
		t.Logf("%s: deleted %v after the deregistration (retention 1s)", name, time.Since(gone).Round(time.Millisecond))
		if r.instance("i2") == nil {
			t.Fatalf("%s: the active instance was deleted too", name)
		}
	}
	if rep := b.must("POST", "/instances/i1/heartbeat", "", http.StatusOK); rep.body != `{"status":"refresh"}` {
		t.Errorf("heartbeat of a deleted id: %s", rep.body)
	}
}

// A lease expiry stored no inactive_since, so a replica counted retention
// from when it learnt of the expiry: with replicas restarted more often
// than RetainInactive, an expired record was never deleted.
func TestRetentionAcrossReplicaRestarts(t *testing.T) {
	c := etcdtest.Start(t, 1)
	opts := registry.Options{RetainInactive: 2 * time.Second, PurgeInterval: 100 * time.Millisecond}
	cur := startReplica(t, c.Endpoints(), "/ret/", opts)
	cur.register("i1", "h1", 0.5) // lease TTL 2 s
	eventually(t, 5*time.Second, "expired", func() bool { return cur.instance("i1")["active"] == false })
	expired := time.Now()
	for range 5 { // a rolling restart every 1.5 s
		time.Sleep(1500 * time.Millisecond)
		next := startReplica(t, c.Endpoints(), "/ret/", opts)
		cur.stop()
		cur = next
	}
	if rep := cur.do("GET", "/instances/i1", ""); rep.code != http.StatusNotFound {
		t.Errorf("%v after expiry with 2 s retention, still stored: %s", time.Since(expired).Round(time.Second), rep.body)
	}
}

// TestEventsOfOneRevision: two records deleted in one etcd transaction make
// two events at one index; a client that resumes after the first gets the
// second (again with the first), never skips it.
func TestEventsOfOneRevision(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/events/", registry.Options{})
	a.register("x", "h", 30)
	a.register("y", "h", 30)
	start := a.must("GET", "/instances", "", http.StatusOK).header.Get("X-Registry-Index")
	if _, err := a.st.Delete(context.Background(), []string{"x", "y"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Second, "both deleted", func() bool { return a.instance("x") == nil && a.instance("y") == nil })

	// read returns the id and instance of the deleted events after from.
	read := func(from string) (ids, insts []string) {
		req, _ := http.NewRequest("GET", a.srv.URL+"/events", nil)
		req.Header.Set("Last-Event-ID", from)
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		resp, err := http.DefaultClient.Do(req.WithContext(ctx))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body) // until the timeout
		var id string
		for _, line := range strings.Split(string(body), "\n") {
			switch {
			case strings.HasPrefix(line, "id: "):
				id = line[4:]
			case strings.HasPrefix(line, "data: ") && strings.Contains(line, `"instance_id"`):
				var e struct {
					InstanceID string `json:"instance_id"`
				}
				json.Unmarshal([]byte(line[6:]), &e)
				ids, insts = append(ids, id), append(insts, e.InstanceID)
			}
		}
		return ids, insts
	}
	ids, insts := read(start)
	if len(ids) != 2 || insts[0] != "x" || insts[1] != "y" {
		t.Fatalf("events after %s: ids %v instances %v", start, ids, insts)
	}
	if ids[0] == ids[1] {
		t.Fatalf("two events of one revision share the id %s: resuming after the first skips the second", ids[0])
	}
	_, again := read(ids[0])
	if len(again) == 0 || again[len(again)-1] != "y" {
		t.Errorf("resuming after the first event (id %s) gives %v, want y among them", ids[0], again)
	}
}

// TestClusterLagOnEtcd: the Store hears of the revisions of its writes,
// its keep-alives and its watch, so a replica that keeps up shows no lag,
// and one replica hears of another's writes through its watch.
func TestClusterLagOnEtcd(t *testing.T) {
	c := etcdtest.Start(t, 1)
	a := startReplica(t, c.Endpoints(), "/lag/", registry.Options{})
	b := startReplica(t, c.Endpoints(), "/lag/", registry.Options{})
	a.register("i1", "h1", 30)
	rev, _ := a.reg.ClusterRevision()
	if head := a.st.HeadRevision(); head < rev {
		t.Errorf("A's head revision %d is behind the revision of its own write, %d", head, rev)
	}
	if lag, ok := a.reg.ClusterLag(); !ok || lag != 0 {
		t.Errorf("A right after its write: ClusterLag() = %d, %v; want 0, true", lag, ok)
	}
	eventually(t, time.Second, "B hears of A's write and applies it", func() bool {
		lag, ok := b.reg.ClusterLag()
		return ok && lag == 0 && b.st.HeadRevision() >= rev
	})
}

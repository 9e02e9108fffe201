// caps_test.go checks the caps that bound what writers can make the
// registry hold: Options.MaxInstances (the oldest inactive record makes
// room, logged; all active is a 507 naming --max-instances), and the 256
// bytes of a version, whatever the body limit lets through.

package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/runspec/registry"
)

// fullDetail is the 507 detail of a registry of n records, all active.
func fullDetail(n int) string {
	return fmt.Sprintf("The registry is full: it holds %d records, all active (--max-instances); none can be deleted to make room", n)
}

func regJSON(id string) string {
	return fmt.Sprintf(`{"instance_id":%q,"name":"app","version":"1","host":"h-%s"}`, id, id)
}

// instanceIDs is the instance ids of GET /instances, in registration order.
func instanceIDs(t *testing.T, reg http.Handler) []string {
	t.Helper()
	rec := serveReq(reg, "GET", "/instances", "")
	var list []struct {
		ID     string `json:"instance_id"`
		Active bool
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatalf("GET /instances: %v", err)
	}
	var out []string
	for _, in := range list {
		s := in.ID
		if !in.Active {
			s += " (inactive)"
		}
		out = append(out, s)
	}
	return out
}

func TestMaxInstances(t *testing.T) {
	type step struct {
		method, target, body string
		code                 int
		detail               string // if not empty, the 507's detail
	}
	register := func(id string, code int) step {
		st := step{"POST", "/instances", regJSON(id), code, ""}
		if code == http.StatusInsufficientStorage {
			st.detail = fullDetail(3)
		}
		return st
	}
	deregister := func(id string) step { return step{"DELETE", "/instances/" + id, "", http.StatusOK, ""} }
	tick := step{method: "TICK"} // the clock moves on 1 ms
	tests := []struct {
		name    string
		steps   []step
		advance time.Duration // after the steps, the clock moves on
		after   []step
		want    []string // GET /instances at the end
		deleted []string // ids logged as deleted to make room, in order
	}{
		{
			name:  "all active: a new id is refused, a known one is not",
			steps: []step{register("a", 201), register("b", 201), register("c", 201), register("d", 507), register("a", 201)},
			want:  []string{"a", "b", "c"},
		},
		{
			name: "the oldest inactive record makes room",
			steps: []step{register("a", 201), register("b", 201), register("c", 201),
				deregister("b"), tick, deregister("a"), register("d", 201), register("e", 201), register("f", 507)},
			want:    []string{"c", "d", "e"},
			deleted: []string{"b", "a"},
		},
		{
			name: "of records inactive since the same instant, the first registered makes room first",
			steps: []step{register("a", 201), register("b", 201), register("c", 201),
				deregister("b"), deregister("a"), register("d", 201), register("e", 201), register("f", 507)},
			want:    []string{"c", "d", "e"},
			deleted: []string{"a", "b"},
		},
		{
			name: "a revived record is not deleted",
			steps: []step{register("a", 201), register("b", 201), register("c", 201),
				deregister("a"), {"POST", "/instances/a/heartbeat", "", 200, ""}, register("d", 507)},
			want: []string{"a", "b", "c"},
		},
		{
			name: "an expired record makes room, once a read has seen it expire",
			steps: []step{{"POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h-a","heartbeat_interval":1}`, 201, ""},
				register("b", 201), register("c", 201)},
			advance: 4 * time.Second, // past 3 × 1 s
			after:   []step{{"GET", "/instances/a", "", 200, ""}, register("d", 201)},
			want:    []string{"b", "c", "d"},
			deleted: []string{"a"},
		},
		{
			name: "an expired record makes room",
			steps: []step{{"POST", "/instances", `{"instance_id":"a","name":"app","version":"1","host":"h-a","heartbeat_interval":1}`, 201, ""},
				register("b", 201), register("c", 201)},
			advance: 4 * time.Second,
			after:   []step{register("d", 201)},
			want:    []string{"b", "c", "d"},
			deleted: []string{"a"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log logLines
			clock := newFakeClock()
			reg, err := registry.New(registry.Options{MaxInstances: 3, Now: clock.Now, Logger: log.logger()})
			if err != nil {
				t.Fatal(err)
			}
			run := func(steps []step) {
				for i, st := range steps {
					if st.method == "TICK" {
						clock.Advance(time.Millisecond)
						continue
					}
					rec := serveReq(reg, st.method, st.target, st.body)
					if rec.Code != st.code {
						t.Fatalf("step %d %s %s: status %d, want %d (%s)", i, st.method, st.target, rec.Code, st.code, rec.Body)
					}
					if st.detail != "" && detailOf(rec) != st.detail {
						t.Errorf("step %d: detail %q, want %q", i, detailOf(rec), st.detail)
					}
				}
			}
			run(tt.steps)
			clock.Advance(tt.advance)
			run(tt.after)
			if diff := cmp.Diff(tt.want, instanceIDs(t, reg)); diff != "" {
				t.Errorf("GET /instances mismatch (-want +got):\n%s", diff)
			}
			var deleted []string
			for _, line := range strings.Split(log.String(), "\n") {
				if strings.Contains(line, "registry full: deleted the oldest inactive record") {
					id, _, _ := strings.Cut(line[strings.Index(line, " id=")+4:], " ")
					deleted = append(deleted, id)
					if !strings.Contains(line, "max_instances=3") {
						t.Errorf("log line %q does not name the limit", line)
					}
				}
			}
			if diff := cmp.Diff(tt.deleted, deleted); diff != "" {
				t.Errorf("deletions logged mismatch (-want +got):\n%s\nlog:\n%s", diff, log.String())
			}
		})
	}
}

// Several instances that go inactive in one Purge (Run was late, or the
// caller purges) are ordered by when they went inactive: at MaxInstances a
// new id deletes the oldest inactive record. They used to join the list of
// inactive records in shard order, which a random seed of each Registry
// decides, so that the choice differed between two runs, and between a
// registry and the same one restarted from its file, whose load sorted the
// list. Found by the differential test, as memory against bolt.
func TestOldestInactiveAfterLatePurge(t *testing.T) {
	ctx := context.Background()
	for run := range 32 { // each Registry has its own shard seed
		clock := newFakeClock()
		r, err := registry.New(registry.Options{Now: clock.Now, MaxInstances: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, reg := range []registry.Registration{
			{ID: "a", Name: "svc", Host: "h0", HeartbeatInterval: time.Second}, // inactive from t0 + 3 s
			{ID: "b", Name: "svc", Host: "h1", HeartbeatInterval: time.Second}, // from t0 + 3 s + 1 µs
			{ID: "c", Name: "svc", Host: "h2", HeartbeatInterval: time.Hour},
		} {
			if err := r.Register(ctx, reg); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Microsecond)
		}
		clock.Advance(4 * time.Second)
		if err := r.Purge(ctx); err != nil { // a and b expire in this one
			t.Fatal(err)
		}
		if err := r.Register(ctx, registry.Registration{ID: "d", Name: "svc", Host: "h3"}); err != nil {
			t.Fatal(err)
		}
		var kept []string
		all, _, err := r.Instances(ctx, registry.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range all {
			kept = append(kept, in.ID)
		}
		if fmt.Sprint(kept) != "[b c d]" {
			t.Fatalf("run %d: kept %v; want [b c d] (a is the oldest inactive record)", run, kept)
		}
	}
}

// TestMaxInstancesUniqueIDs: two waves of unique ids, each as large as the
// cap (the attack was 2 × 100,000 with no cap anywhere). While the first
// is active the second is refused with ErrFull; once the first has gone
// inactive the second takes its place, and the registry never holds more
// than the cap.
func TestMaxInstancesUniqueIDs(t *testing.T) {
	const capN = 2000
	reg, err := registry.New(registry.Options{MaxInstances: capN})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	wave := func(prefix string) []error {
		errs := make([]error, capN)
		for i := range capN {
			id := fmt.Sprintf("%s-%d", prefix, i)
			errs[i] = reg.Register(ctx, registry.Registration{ID: id, Name: "app", Version: "1", Host: "h-" + id})
		}
		return errs
	}
	count := func() int {
		list, _, err := reg.Instances(ctx, registry.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		return len(list)
	}
	for i, err := range wave("one") {
		if err != nil {
			t.Fatalf("first wave, id %d: %v", i, err)
		}
	}
	for i, err := range wave("two") {
		if !errors.Is(err, registry.ErrFull) {
			t.Fatalf("second wave while the first is active, id %d: %v, want ErrFull", i, err)
		}
	}
	if n := count(); n != capN {
		t.Fatalf("%d records, want %d", n, capN)
	}
	for i := range capN {
		if err := reg.Deregister(ctx, fmt.Sprintf("one-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, err := range wave("two") {
		if err != nil {
			t.Fatalf("second wave after the first went inactive, id %d: %v", i, err)
		}
	}
	list, _, err := reg.Instances(ctx, registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != capN {
		t.Errorf("%d records, want %d", len(list), capN)
	}
	for _, in := range list {
		if !strings.HasPrefix(in.ID, "two-") {
			t.Errorf("record %s of the first wave kept, want it deleted to make room", in.ID)
			break
		}
	}
}

// TestVersionCap: version is at most 256 bytes (valid UTF-8, no control
// characters, empty allowed); 500 registrations with a 1 MB version (under
// the 1 MiB body limit) are each refused and leave nothing behind.
func TestVersionCap(t *testing.T) {
	reg, err := registry.New(registry.Options{})
	if err != nil {
		t.Fatal(err)
	}
	body := func(version string) string {
		return `{"instance_id":"a","name":"app","version":"` + version + `","host":"h"}`
	}
	tests := []struct {
		name    string
		version string
		code    int
		detail  string
	}{
		{"empty", "", 201, ""},
		{"256 bytes", strings.Repeat("v", 256), 201, ""},
		{"256 bytes of UTF-8", strings.Repeat("é", 128), 201, ""},
		{"257 bytes", strings.Repeat("v", 257), 422, `[{"loc":["body","version"],"msg":"Value error, must be at most 256 bytes","type":"value_error"}]`},
		{"1 MB", strings.Repeat("v", 1_000_000), 422, `[{"loc":["body","version"],"msg":"Value error, must be at most 256 bytes","type":"value_error"}]`},
		{"over the body limit", strings.Repeat("v", 1<<20), 413, "Request body too large: more than 1048576 bytes (--max-body-bytes)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := serveReq(reg, "POST", "/instances", body(tt.version))
			if rec.Code != tt.code || (tt.detail != "" && detailOf(rec) != tt.detail) {
				t.Errorf("status %d, detail %.300s; want %d, %s", rec.Code, detailOf(rec), tt.code, tt.detail)
			}
			in, _, err := reg.Instance(context.Background(), "a")
			if tt.code == 201 && (err != nil || in.Version != tt.version) {
				t.Errorf("stored version %.40q (%v), want the %d bytes sent", in.Version, err, len(tt.version))
			}
		})
	}

	t.Run("500 registrations with a 1 MB version", func(t *testing.T) {
		n := 500
		if lighter() {
			n = 5
		}
		big := body(strings.Repeat("v", 1_000_000))
		base := liveBytes()
		for i := range n {
			if rec := serveReq(reg, "POST", "/instances", strings.Replace(big, `"a"`, fmt.Sprintf(`"big-%d"`, i), 1)); rec.Code != 422 {
				t.Fatalf("registration %d: status %d", i, rec.Code)
			}
		}
		// Keeping any one of them would keep its megabyte.
		if grew := liveBytes() - base; grew > min(4*mib, int64(n)*mib/2) {
			t.Errorf("%d refused registrations left %d KiB behind", n, grew/kib)
		}
		if _, _, err := reg.Instance(context.Background(), "big-0"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("big-0: %v, want ErrNotFound", err)
		}
	})
}

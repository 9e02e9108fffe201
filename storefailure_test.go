// storefailure_test.go checks what a client's write gets when the Store
// cannot take it (a full disk): 503 with Retry-After and the store's
// reason in the detail, nothing applied in memory (a read shows the old
// state, the index does not move), heartbeats unaffected, and recovery by
// itself once the store works again. Against a fault-injecting Store, and
// against the bolt store on a small tmpfs filled up (as root).

package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

// faultStore is a Store whose writes go through its Func fields, which
// default to the wrapped Store.
type faultStore struct {
	registry.Store
	PutFunc       func(ctx context.Context, rec registry.Record) error
	SetStatesFunc func(ctx context.Context, states []registry.State) error
	DeleteFunc    func(ctx context.Context, ids []string) error
}

func (s *faultStore) Put(ctx context.Context, rec registry.Record) error {
	if s.PutFunc != nil {
		return s.PutFunc(ctx, rec)
	}
	return s.Store.Put(ctx, rec)
}

func (s *faultStore) SetStates(ctx context.Context, states []registry.State) error {
	if s.SetStatesFunc != nil {
		return s.SetStatesFunc(ctx, states)
	}
	return s.Store.SetStates(ctx, states)
}

func (s *faultStore) Delete(ctx context.Context, ids []string) error {
	if s.DeleteFunc != nil {
		return s.DeleteFunc(ctx, ids)
	}
	return s.Store.Delete(ctx, ids)
}

// diskFull is the error of a write to a full disk.
var diskFull = &fs.PathError{Op: "write", Path: "/var/lib/runspec-registry/registry.db", Err: syscall.ENOSPC}

// fullDiskDetail is the 503 detail of diskFull.
const fullDiskDetail = "Store unavailable, retry later: write registry.db: no space left on device" // the file, not its directory

// failing makes every write of s fail with err while *on is true.
func failing(s *faultStore, on *bool, mu *sync.Mutex, err error) {
	fail := func() bool { mu.Lock(); defer mu.Unlock(); return *on }
	s.PutFunc = func(ctx context.Context, rec registry.Record) error {
		if fail() {
			return err
		}
		return s.Store.Put(ctx, rec)
	}
	s.SetStatesFunc = func(ctx context.Context, states []registry.State) error {
		if fail() {
			return err
		}
		return s.Store.SetStates(ctx, states)
	}
	s.DeleteFunc = func(ctx context.Context, ids []string) error {
		if fail() {
			return err
		}
		return s.Store.Delete(ctx, ids)
	}
}

func TestStoreFailure(t *testing.T) {
	const (
		regA    = `{"instance_id":"a","name":"app","version":"1","host":"h1"}`
		toolsA  = `{"tools":[{"name":"deploy","x-command":"/bin/deploy"}]}`
		regOld  = `{"instance_id":"old","name":"app","version":"1","host":"h0"}`
		regNewB = `{"instance_id":"b","name":"app","version":"1","host":"h2"}`
	)
	tests := []struct {
		name     string
		max      int                  // Options.MaxInstances, if not zero
		setup    [][3]string          // method, target, body: made before the store fails
		write    [3]string            // the write made while it fails
		wantCode int                  // its status once the store works again
		check    func(h http.Handler) // reads that must show the state before the write
	}{
		{
			name: "register a new id", setup: [][3]string{{"POST", "/instances", regA}},
			write: [3]string{"POST", "/instances", regNewB}, wantCode: 201,
			check: func(h http.Handler) { wantStatus(t, h, "/instances/b", 404) },
		},
		{
			name: "register again", setup: [][3]string{{"POST", "/instances", regA}, {"POST", "/instances/a/tools", toolsA}},
			write: [3]string{"POST", "/instances", `{"instance_id":"a","name":"app","version":"2","host":"h9"}`}, wantCode: 201,
			check: func(h http.Handler) { wantBody(t, h, "/instances/a", `"version":"1","host":"h1"`, `"name":"deploy"`) },
		},
		{
			name: "post tools", setup: [][3]string{{"POST", "/instances", regA}, {"POST", "/instances/a/tools", toolsA}},
			write: [3]string{"POST", "/instances/a/tools", `{"tools":[{"name":"other"}]}`}, wantCode: 200,
			check: func(h http.Handler) {
				wantBody(t, h, "/instances/a", `"tools":[{"name":"deploy","x-command":"/bin/deploy"}]`)
				wantStatus(t, h, "/tools/other", 404)
			},
		},
		{
			name: "deregister", setup: [][3]string{{"POST", "/instances", regA}},
			write: [3]string{"DELETE", "/instances/a", ""}, wantCode: 200,
			check: func(h http.Handler) { wantBody(t, h, "/instances/a", `"active":true`) },
		},
		{
			name: "register at the cap, deleting the oldest inactive record", max: 2,
			setup: [][3]string{{"POST", "/instances", regOld}, {"DELETE", "/instances/old", ""}, {"POST", "/instances", regA}},
			write: [3]string{"POST", "/instances", regNewB}, wantCode: 201,
			check: func(h http.Handler) {
				wantStatus(t, h, "/instances/old", 200)
				wantStatus(t, h, "/instances/b", 404)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			on := false
			st := &faultStore{Store: registry.NewMemStore()}
			failing(st, &on, &mu, diskFull)
			reg, err := registry.New(registry.Options{Store: st, MaxInstances: tt.max})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tt.setup {
				if rec := serveReq(reg, s[0], s[1], s[2]); rec.Code >= 300 {
					t.Fatalf("setup %s %s: %d %s", s[0], s[1], rec.Code, rec.Body)
				}
			}
			before := registryIndex(t, reg, "/instances")
			mu.Lock()
			on = true
			mu.Unlock()
			for range 2 { // a retry while the disk is still full fails the same way
				rec := serveReq(reg, tt.write[0], tt.write[1], tt.write[2])
				if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "2" || detailOf(rec) != fullDiskDetail {
					t.Errorf("%s %s: %d, Retry-After %q, detail %q; want 503, 2, %q", tt.write[0], tt.write[1],
						rec.Code, rec.Header().Get("Retry-After"), detailOf(rec), fullDiskDetail)
				}
			}
			tt.check(reg)
			if after := registryIndex(t, reg, "/instances"); after != before {
				t.Errorf("index moved from %d to %d: the failed write changed memory", before, after)
			}
			// Heartbeats do not write to the store one by one.
			if rec := serveReq(reg, "POST", "/instances/a/heartbeat", ""); rec.Code != 200 {
				t.Errorf("heartbeat while the store fails: %d %s", rec.Code, rec.Body)
			}
			mu.Lock()
			on = false
			mu.Unlock()
			if rec := serveReq(reg, tt.write[0], tt.write[1], tt.write[2]); rec.Code != tt.wantCode {
				t.Errorf("once the store works: %d %s, want %d", rec.Code, rec.Body, tt.wantCode)
			}
			if after := registryIndex(t, reg, "/instances"); after == before {
				t.Errorf("index still %d after the write succeeded", before)
			}
		})
	}

	t.Run("library errors", func(t *testing.T) {
		var mu sync.Mutex
		on := true
		st := &faultStore{Store: registry.NewMemStore()}
		failing(st, &on, &mu, diskFull)
		reg, err := registry.New(registry.Options{Store: st})
		if err != nil {
			t.Fatal(err)
		}
		err = reg.Register(context.Background(), registry.Registration{ID: "a", Name: "app", Version: "1", Host: "h"})
		if !errors.Is(err, registry.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Register: %v, want ErrUnavailable wrapping ENOSPC", err)
		}
	})
}

func wantStatus(t *testing.T, h http.Handler, target string, code int) {
	t.Helper()
	if rec := serveReq(h, "GET", target, ""); rec.Code != code {
		t.Errorf("GET %s: %d %s, want %d", target, rec.Code, rec.Body, code)
	}
}

func wantBody(t *testing.T, h http.Handler, target string, parts ...string) {
	t.Helper()
	rec := serveReq(h, "GET", target, "")
	for _, p := range parts {
		if !strings.Contains(rec.Body.String(), p) {
			t.Errorf("GET %s: %d %s, want it to hold %s", target, rec.Code, rec.Body, p)
		}
	}
}

// TestStoreFailureDiskFull runs the bolt store on a 4 MiB tmpfs, fills the
// file system, and writes until the store fails: 503 with Retry-After and
// ENOSPC in the detail, the write not applied; once space is freed the
// same write succeeds, and a restart on the file serves every write that
// was acknowledged. It needs root (mount); it skips otherwise.
func TestStoreFailureDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	path := filepath.Join(dir, "registry.db")
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// Tool lists of ~100 KB: bbolt must grow the file soon.
	tools := make([]json.RawMessage, 400)
	for i := range tools {
		tools[i] = json.RawMessage(fmt.Sprintf(`{"name":"tool-%03d","description":"%s"}`, i, strings.Repeat("d", 200)))
	}
	toolsBody, _ := json.Marshal(map[string]any{"tools": tools})
	write := func(id string) *httptest.ResponseRecorder {
		rec := serveReq(reg, "POST", "/instances", fmt.Sprintf(`{"instance_id":%q,"name":"app","version":"1","host":"h-%s"}`, id, id))
		if rec.Code == http.StatusCreated {
			rec = serveReq(reg, "POST", "/instances/"+id+"/tools", string(toolsBody))
		}
		return rec
	}
	var acked []string
	for i := range 5 { // before the disk is full
		id := fmt.Sprintf("i%03d", i)
		if rec := write(id); rec.Code != http.StatusOK {
			t.Fatalf("%s: %d %s", id, rec.Code, rec.Body)
		}
		acked = append(acked, id)
	}
	// Fill what the file system has left.
	filler, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64*kib)
	for {
		if _, err := filler.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling: %v", err)
			}
			break
		}
	}
	var failedID string
	for i := 5; i < 200; i++ {
		id := fmt.Sprintf("i%03d", i)
		rec := write(id)
		switch rec.Code {
		case http.StatusCreated, http.StatusOK:
			acked = append(acked, id)
			continue
		case http.StatusServiceUnavailable:
		default:
			t.Fatalf("%s: %d %s", id, rec.Code, rec.Body)
		}
		if rec.Header().Get("Retry-After") == "" || !strings.Contains(detailOf(rec), "no space left on device") ||
			!strings.HasPrefix(detailOf(rec), "Store unavailable, retry later: ") {
			t.Errorf("%s: 503, Retry-After %q, detail %q; want Retry-After and the store's ENOSPC", id, rec.Header().Get("Retry-After"), detailOf(rec))
		}
		t.Logf("%s: 503, Retry-After %s, %s", id, rec.Header().Get("Retry-After"), rec.Body)
		failedID = id
		break
	}
	if failedID == "" {
		t.Fatalf("200 writes of ~100 KB fit on a full 4 MiB tmpfs: the test does not fill it")
	}
	t.Logf("%d writes acknowledged, then %s failed", len(acked), failedID)
	// Not applied: the failed write left the instance as it was (its
	// registration may have gone through, its tool list did not).
	if rec := serveReq(reg, "GET", "/instances/"+failedID, ""); rec.Code == 200 && strings.Contains(rec.Body.String(), "tool-000") {
		t.Errorf("GET /instances/%s shows the tools whose write failed", failedID)
	}
	for _, id := range acked {
		wantBody(t, reg, "/instances/"+id, `"name":"tool-399"`)
	}
	// Space again: the same write succeeds.
	filler.Close()
	if err := os.Remove(filler.Name()); err != nil {
		t.Fatal(err)
	}
	if rec := write(failedID); rec.Code != http.StatusOK {
		t.Fatalf("once space is freed: %d %s", rec.Code, rec.Body)
	}
	acked = append(acked, failedID)
	// A restart serves every acknowledged write.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st2, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("reopen after the disk was full: %v", err)
	}
	defer st2.Close()
	reg2, err := registry.New(registry.Options{Store: st2})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range acked {
		wantBody(t, reg2, "/instances/"+id, `"name":"tool-399"`)
	}
}

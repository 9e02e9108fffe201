// answer_index_test.go checks that the change index of an answer is at
// least the index of every write the answer shows: a client that waits
// for an index (or that keeps an answer only when its body changed, as the
// Go client's watch does) must find that write at that index or before.

package registry_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/runspec/registry"
)

var knownBugs = flag.Bool("known-bugs", false, "also run the tests of known bugs that are not fixed yet")

// TestAnswerIndexCoversWrites reads a tool while an agent posts new
// versions of it, and checks that no answer shows a version posted after
// the index the answer reports.
//
// The listings (GET /tools, Registry.Tools) and GET /instances/{id} fail
// it: see the skip below.
func TestAnswerIndexCoversWrites(t *testing.T) {
	// Enough tool names that a listing takes several chunks (list.go:
	// maxVisit, chunkSize): the lock is let go between them.
	const names = 6000
	tests := []struct {
		name  string
		known bool // a known bug: runs with -known-bugs only
		read  func(t *testing.T, reg *registry.Registry, base string) (version int, index uint64)
	}{
		{"GET /tools", true, func(t *testing.T, _ *registry.Registry, base string) (int, uint64) {
			var tools []struct {
				Name        string `json:"name"`
				Description string `json:"description"`
			}
			index := getIndexed(t, base+"/tools", &tools)
			return versionOf(t, tools[len(tools)-1].Name, tools[len(tools)-1].Description), index
		}},
		{"GET /tools/{name}", false, func(t *testing.T, _ *registry.Registry, base string) (int, uint64) {
			var tool struct {
				Name        string `json:"name"`
				Description string `json:"description"`
			}
			index := getIndexed(t, base+"/tools/zzz", &tool)
			return versionOf(t, tool.Name, tool.Description), index
		}},
		{"GET /instances/{id}", true, func(t *testing.T, _ *registry.Registry, base string) (int, uint64) {
			var in struct {
				Tools []struct {
					Name        string `json:"name"`
					Description string `json:"description"`
				} `json:"tools"`
			}
			index := getIndexed(t, base+"/instances/writer", &in)
			return versionOf(t, in.Tools[0].Name, in.Tools[0].Description), index
		}},
		{"Registry.Tools", true, func(t *testing.T, reg *registry.Registry, _ string) (int, uint64) {
			tools, meta, err := reg.Tools(context.Background(), registry.Filter{ActiveOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			last := tools[len(tools)-1]
			return versionOf(t, last.Name, last.Description), meta.Index
		}},
		{"Registry.Tool", false, func(t *testing.T, reg *registry.Registry, _ string) (int, uint64) {
			tool, meta, err := reg.Tool(context.Background(), "zzz", registry.Filter{ActiveOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			return versionOf(t, tool.Name, tool.Description), meta.Index
		}},
		{"Registry.Instance", false, func(t *testing.T, reg *registry.Registry, _ string) (int, uint64) {
			in, meta, err := reg.Instance(context.Background(), "writer")
			if err != nil {
				t.Fatal(err)
			}
			var tool struct{ Name, Description string }
			if err := json.Unmarshal(in.Tools[0], &tool); err != nil {
				t.Fatal(err)
			}
			return versionOf(t, tool.Name, tool.Description), meta.Index
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.known && !*knownBugs {
				t.Skip("known bug, not fixed: the answer takes its index (respond.go serveList and serveOne: block; " +
					"read.go Registry.Tools: meta) before it reads what it shows under another hold of the lock " +
					"(list.go list, read.go collect, chunk by chunk; encode.go appendInstanceOf); run with -known-bugs")
			}
			ctx := context.Background()
			reg, err := registry.New(registry.Options{NotifyInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(reg)
			defer srv.Close()
			many := make([]json.RawMessage, names)
			for i := range many {
				many[i] = json.RawMessage(fmt.Sprintf(`{"name":"t-%05d","x-command":"/bin/true"}`, i))
			}
			for _, id := range []string{"many", "writer"} {
				if err := reg.Register(ctx, registry.Registration{ID: id, Name: "ops", Version: "1", Host: id}); err != nil {
					t.Fatal(err)
				}
			}
			if err := reg.UpdateTools(ctx, "many", many); err != nil {
				t.Fatal(err)
			}
			post := func(v int) uint64 {
				tool := json.RawMessage(fmt.Sprintf(`{"name":"zzz","description":"v%d","x-command":"/bin/true"}`, v))
				if err := reg.UpdateTools(ctx, "writer", []json.RawMessage{tool}); err != nil {
					t.Error(err)
				}
				// Only this goroutine writes: the record's index is the post's.
				_, meta, err := reg.Instance(ctx, "writer")
				if err != nil {
					t.Error(err)
				}
				return meta.Index
			}
			posted := []uint64{post(0)} // posted[v]: the index of version v
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v := 1; ; v++ {
					select {
					case <-stop:
						return
					default:
					}
					idx := post(v)
					posted = append(posted, idx)
				}
			}()
			type seen struct {
				version int
				index   uint64
			}
			var reads []seen
			n := 2000 // single reads: the window is one lock hand-over
			if testing.Short() {
				n = 300
			}
			if tt.known {
				n = 200 // listings: the window is the whole walk
			}
			for range n {
				v, idx := tt.read(t, reg, srv.URL)
				reads = append(reads, seen{v, idx})
			}
			close(stop)
			wg.Wait()
			bad := 0
			for _, r := range reads {
				if posted[r.version] > r.index {
					if bad++; bad <= 3 {
						t.Errorf("an answer at index %d shows version %d of the tool, posted at index %d", r.index, r.version, posted[r.version])
					}
				}
			}
			if bad > 3 {
				t.Errorf("... %d answers of %d in all", bad, len(reads))
			}
		})
	}
}

// getIndexed reads url into out and returns its X-Registry-Index.
func getIndexed(t *testing.T, url string, out any) uint64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v: %s", url, resp.StatusCode, err, b)
	}
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	idx, err := strconv.ParseUint(resp.Header.Get("X-Registry-Index"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

// versionOf reads the version that the description of the tool zzz names.
func versionOf(t *testing.T, name, desc string) int {
	t.Helper()
	var v int
	if _, err := fmt.Sscanf(desc, "v%d", &v); name != "zzz" || err != nil {
		t.Fatalf("tool %s, description %q: want zzz, vN", name, desc)
	}
	return v
}

// answer_index_test.go checks what the change index of an answer says of
// the writes it shows: every write up to the index is shown (a client that
// follows changes from that index misses none), and, for a single record
// or tool, nothing after it (its index is the one its bytes were read at).
// A listing is read a chunk at a time: it may also show writes made after
// its index while it was read, which a client following from the index
// sees again (docs/protocol.md, X-Registry-Index).

package registry_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/runspec/registry"
)

// TestAnswerIndexCoversWrites reads a tool while an agent posts new
// versions of it, and checks that no answer shows a version older than
// the one its index had, and that no single read shows a version posted
// after its index.
func TestAnswerIndexCoversWrites(t *testing.T) {
	// Enough tool names that a listing takes several chunks (list.go:
	// maxVisit, chunkSize): the lock is let go between them.
	const names = 6000
	tests := []struct {
		name string
		walk bool // a listing read in chunks: later versions may show
		read func(t *testing.T, reg *registry.Registry, base string) (version int, index uint64)
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
		{"GET /instances/{id}", false, func(t *testing.T, _ *registry.Registry, base string) (int, uint64) {
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
			if tt.walk {
				n = 200 // listings take longer
			}
			for range n {
				v, idx := tt.read(t, reg, srv.URL)
				reads = append(reads, seen{v, idx})
			}
			close(stop)
			wg.Wait()
			bad, later := 0, 0
			for _, r := range reads {
				if next := r.version + 1; next < len(posted) && posted[next] <= r.index {
					if bad++; bad <= 3 {
						t.Errorf("an answer at index %d shows version %d of the tool, but version %d was posted at index %d",
							r.index, r.version, next, posted[next])
					}
				}
				if posted[r.version] > r.index {
					later++
					if !tt.walk {
						if bad++; bad <= 3 {
							t.Errorf("an answer at index %d shows version %d of the tool, posted at index %d", r.index, r.version, posted[r.version])
						}
					}
				}
			}
			if tt.walk {
				t.Logf("%d of %d answers showed a version posted while they were read", later, len(reads))
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

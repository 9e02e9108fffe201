// flights.go lets readers of the same answer share one encoding: the
// waiters that one change wakes ask for the same listing at the same index
// at the same moment, and all but the first wait for its bytes instead of
// encoding them again. Only answers up to bufferLimit are shared; larger
// ones stream to each reader, one chunk of memory each.

package registry

import "sync"

// Bounds of the shared answers kept for late readers.
const (
	maxFlights     = 4096
	maxFlightBytes = 32 << 20
)

type flights struct {
	mu    sync.Mutex
	m     map[string]*flight
	bytes int // of the bodies in m
}

// A flight is one encoding of an answer at an index (and heartbeat count).
type flight struct {
	key        string
	idx, extra uint64
	done       chan struct{} // closed when body is set, or known to be too large
	once       sync.Once
	body       []byte // nil: too large to share
	etag       string
	owner      *flights
}

// join returns the flight of key at (idx, extra), and whether the caller
// leads it (encodes the answer and shares it).
func (fs *flights) join(key string, idx, extra uint64) (*flight, bool) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if f := fs.m[key]; f != nil && f.idx == idx && f.extra == extra {
		return f, false
	}
	if fs.m == nil || len(fs.m) >= maxFlights {
		fs.m, fs.bytes = make(map[string]*flight), 0
	}
	if old := fs.m[key]; old != nil {
		fs.bytes -= len(old.body)
	}
	f := &flight{key: key, idx: idx, extra: extra, done: make(chan struct{}), owner: fs}
	fs.m[key] = f
	return f, true
}

// share gives the flight its body.
func (f *flight) share(body []byte, etag string) {
	f.once.Do(func() {
		fs := f.owner
		fs.mu.Lock()
		if fs.m[f.key] == f && fs.bytes+len(body) <= maxFlightBytes {
			f.body, f.etag = body, etag
			fs.bytes += len(body)
		}
		fs.mu.Unlock()
		close(f.done)
	})
}

// tooLarge says that the answer streams, or that its leader gave up: every
// reader encodes its own.
func (f *flight) tooLarge() { f.once.Do(func() { close(f.done) }) }

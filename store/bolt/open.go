// open.go opens and checks the store's file: the lock that keeps a second
// registry out, the format version, and the consistency checks that turn a
// damaged file into an error rather than a panic or an empty registry.

package bolt

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	bbolt "go.etcd.io/bbolt"
)

// Errors returned by Open (and ErrCorrupt by Load and the writes, for damage
// that Open's checks cannot see). Test for them with errors.Is; their
// messages name the file and what to do.
var (
	// ErrLocked reports that another process (or another Store in this
	// one) has the file open.
	ErrLocked = errors.New("bolt: file is in use")
	// ErrFormat reports a file written by a newer version of this package
	// (or of bbolt), which this version cannot read.
	ErrFormat = errors.New("bolt: unknown file format")
	// ErrCorrupt reports a file that is damaged (truncated, overwritten,
	// failing bbolt's consistency check) or that is not a registry store.
	ErrCorrupt = errors.New("bolt: file is damaged or not a registry store")
)

// formatVersion is the layout of buckets and values this code writes. A file
// with a higher version is refused, not misread.
const formatVersion = 1

// Bucket and key names.
var (
	metaBucket  = []byte("meta")
	formatKey   = []byte("format")
	fixedBucket = []byte("instances") // id -> appendFixed
	liveBucket  = []byte("liveness")  // id -> appendLive
)

// DefaultTimeout is how long Open waits for the file lock by default.
const DefaultTimeout = time.Second

// Options configures a Store. The zero value is the safe configuration.
type Options struct {
	// Timeout is how long Open waits for another process to release the
	// file before it fails with ErrLocked. If zero, defaults to 1s; if
	// negative, Open tries once.
	Timeout time.Duration

	// NoSync skips the fsync of each commit: a machine crash may then lose
	// acknowledged writes or damage the file. For tests and benchmarks
	// only.
	NoSync bool
}

// A Store is a registry.Store kept in one bbolt file. Create one with Open
// and release the file with Close. Its methods are safe for concurrent use.
type Store struct {
	db   *bbolt.DB
	path string
	w    committer
}

// Open opens the store in the file at path, creating it if it does not exist
// (its directory must exist). Only one Store may have a file open at a time:
// a second Open, from this process or another, waits opts.Timeout and fails
// with ErrLocked.
//
// Open checks the whole file before it returns, and fails with ErrCorrupt if
// it is not a registry store or is damaged, or ErrFormat if a newer version
// wrote it; it never starts empty over a file that holds something.
func Open(path string, opts Options) (*Store, error) {
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		timeout = time.Nanosecond // bbolt's zero waits forever
	}
	info, err := os.Stat(path)
	existed := err == nil && info.Size() > 0

	var file *os.File // kept to release the lock if bbolt panics
	db, err := protect(func() (*bbolt.DB, error) {
		return bbolt.Open(path, 0o600, &bbolt.Options{
			Timeout: timeout,
			NoSync:  opts.NoSync,
			// The hashmap freelist allocates in constant time where the
			// array one scans; under churn both keep the file flat.
			FreelistType: bbolt.FreelistMapType,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
	})
	if err != nil {
		if file != nil {
			file.Close() // after a panic, bbolt did not; else a no-op
		}
		return nil, openError(path, existed, timeout, err)
	}
	s := &Store{db: db, path: path}
	s.w.db = db
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openError explains a failure of bbolt.Open.
func openError(path string, existed bool, timeout time.Duration, err error) error {
	var pathErr *fs.PathError
	var errno syscall.Errno
	switch {
	case errors.Is(err, bbolt.ErrTimeout):
		return fmt.Errorf("%w: %s is held by another process (another registry?) and was not released within %v",
			ErrLocked, path, timeout)
	case errors.Is(err, bbolt.ErrVersionMismatch):
		return fmt.Errorf("%w: %s was written by an unknown version of bbolt: upgrade this program, or restore a backup: %w",
			ErrFormat, path, err)
	case errors.As(err, &pathErr):
		return fmt.Errorf("bolt: %w", err) // names the file already
	case !existed || errors.As(err, &errno):
		return fmt.Errorf("bolt: open %s: %w", path, err)
	}
	return corrupt(path, err)
}

// corrupt wraps a description of the damage of path in ErrCorrupt, with what
// to do.
func corrupt(path string, err error) error {
	return fmt.Errorf("%w: %s: %w; restore a backup to that path, or move the file away to start with an empty registry",
		ErrCorrupt, path, err)
}

var errPanic = errors.New("bbolt panicked")

// protect runs fn, turning a panic, and a fault on the file's memory map
// (a page past the end of a truncated file), into an error.
func protect[T any](fn func() (T, error)) (v T, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			var zero T
			v, err = zero, fmt.Errorf("%w: %v", errPanic, p)
		}
	}()
	return fn()
}

// init checks the file, then creates the buckets of a new one.
func (s *Store) init() error {
	fresh, err := protect(func() (bool, error) {
		var fresh bool
		err := s.db.View(func(tx *bbolt.Tx) error {
			var err error
			fresh, err = s.check(tx)
			return err
		})
		return fresh, err
	})
	if err != nil {
		if errors.Is(err, ErrFormat) {
			return err
		}
		return corrupt(s.path, err)
	}
	if !fresh {
		return nil
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		meta, err := tx.CreateBucket(metaBucket)
		if err != nil {
			return err
		}
		if err := meta.Put(formatKey, []byte(strconv.Itoa(formatVersion))); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(fixedBucket); err != nil {
			return err
		}
		_, err = tx.CreateBucket(liveBucket)
		return err
	})
}

// check verifies the file in tx: its size, its format version, every value's
// pages, and bbolt's consistency check. It reports whether the file holds no
// bucket at all, as a new one.
func (s *Store) check(tx *bbolt.Tx) (fresh bool, err error) {
	info, err := os.Stat(s.path)
	if err != nil {
		return false, err
	}
	if tx.Size() > info.Size() {
		return false, fmt.Errorf("truncated: %d bytes of %d", info.Size(), tx.Size())
	}
	var buckets int
	if err := tx.ForEach(func([]byte, *bbolt.Bucket) error { buckets++; return nil }); err != nil {
		return false, err
	}
	meta := tx.Bucket(metaBucket)
	switch {
	case buckets == 0:
		return true, nil
	case meta == nil:
		return false, errors.New("a bbolt database of another program (no meta bucket)")
	}
	raw := meta.Get(formatKey)
	v, err := strconv.Atoi(string(raw))
	switch {
	case err != nil || v < 1:
		return false, fmt.Errorf("bad format version %q", raw)
	case v > formatVersion:
		return false, fmt.Errorf("%w: %s has format version %d, and this program reads up to %d: upgrade it, or restore a backup it wrote",
			ErrFormat, s.path, v, formatVersion)
	}
	fixedB, liveB := tx.Bucket(fixedBucket), tx.Bucket(liveBucket)
	if fixedB == nil || liveB == nil {
		return false, errors.New("missing buckets")
	}

	// Read a byte of every value: a page past the end of the file faults
	// here, under protect, rather than in bbolt's checker goroutine.
	var sink byte
	for _, b := range []*bbolt.Bucket{meta, fixedB, liveB} {
		err := b.ForEach(func(k, v []byte) error {
			if len(v) > 0 {
				sink ^= v[0] ^ v[len(v)-1]
			}
			return nil
		})
		if err != nil {
			return false, err
		}
	}
	_ = sink

	var errs []error
	for err := range tx.Check() { // drain: the checker blocks until read
		if len(errs) < 5 {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return false, fmt.Errorf("consistency check: %w", errors.Join(errs...))
	}
	return false, nil
}

// Close releases the file. Writes after Close fail.
func (s *Store) Close() error {
	return s.db.Close()
}

// open_test.go checks that Open refuses what it must: a file in use, a newer
// format, and damaged or foreign files, with errors that name the file and
// never a panic.

package bolt_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

// fill creates a store at path holding n records, and closes it.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range n {
		if err := st.Put(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// wantOpenError opens path and checks that it fails with an error matching
// target that names the file.
func wantOpenError(t *testing.T, path string, target error) {
	t.Helper()
	st, err := bolt.Open(path, bolt.Options{})
	if err == nil {
		st.Close()
		t.Fatalf("Open succeeded, want %v", target)
	}
	if !errors.Is(err, target) {
		t.Errorf("Open: %v, want an error matching %v", err, target)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("Open: %v, want the error to name %s", err, path)
	}
}

func TestLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	first, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()

	start := time.Now()
	second, err := bolt.Open(path, bolt.Options{Timeout: 100 * time.Millisecond})
	elapsed := time.Since(start)
	if err == nil {
		second.Close()
		t.Fatal("second Open succeeded while the first store has the file")
	}
	if !errors.Is(err, bolt.ErrLocked) || !strings.Contains(err.Error(), path) {
		t.Errorf("second Open: %v, want ErrLocked naming %s", err, path)
	}
	if elapsed > 2*time.Second {
		t.Errorf("second Open took %v to fail, want about its 100ms timeout", elapsed)
	}
	if _, err := bolt.Open(path, bolt.Options{Timeout: -1}); !errors.Is(err, bolt.ErrLocked) {
		t.Errorf("Open with a negative timeout: %v, want ErrLocked", err)
	}

	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	third, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	third.Close()
}

// setMeta rewrites the meta bucket of a closed store with bbolt itself.
func setMeta(t *testing.T, path string, fn func(*bbolt.Tx) error) {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(fn); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestNewerFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	fill(t, path, 3)
	setMeta(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Put([]byte("format"), []byte("2"))
	})
	wantOpenError(t, path, bolt.ErrFormat)
}

func TestBadFormatKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	fill(t, path, 3)
	setMeta(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("meta")).Delete([]byte("format"))
	})
	wantOpenError(t, path, bolt.ErrCorrupt)
}

func TestForeignDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	setMeta(t, path, func(tx *bbolt.Tx) error {
		b, err := tx.CreateBucket([]byte("users"))
		if err != nil {
			return err
		}
		return b.Put([]byte("alice"), []byte("admin"))
	})
	wantOpenError(t, path, bolt.ErrCorrupt)
}

func TestMissingPart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "registry.db")
	fill(t, path, 3)
	setMeta(t, path, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("liveness")).Delete([]byte(testRecord(1).ID))
	})
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	err = st.Load(context.Background(), func(registry.Record) error { return nil })
	if !errors.Is(err, bolt.ErrCorrupt) || !strings.Contains(err.Error(), path) {
		t.Errorf("Load: %v, want ErrCorrupt naming %s", err, path)
	}
}

func TestGarbageFile(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{1, 100, 4096, 8192, 64 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			b := make([]byte, size)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			wantOpenError(t, path, bolt.ErrCorrupt)
			// The file is left as it was.
			if got, err := os.ReadFile(path); err != nil || string(got) != string(b) {
				t.Errorf("Open changed the file (err %v)", err)
			}
		})
	}
}

func TestEmptyFile(t *testing.T) {
	// An empty file holds nothing to lose: Open makes it a store.
	path := filepath.Join(t.TempDir(), "registry.db")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

func TestNoDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing", "registry.db")
	_, err := bolt.Open(path, bolt.Options{})
	if err == nil || errors.Is(err, bolt.ErrCorrupt) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open in a missing directory: %v, want a not-exist error", err)
	}
}

// highWater returns the bytes of path that bbolt uses (its high water mark).
func highWater(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	db.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n
}

func TestTruncatedFile(t *testing.T) {
	src := filepath.Join(t.TempDir(), "registry.db")
	fill(t, src, 300)
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	hw := highWater(t, src)
	t.Logf("file %d bytes, high water mark %d", len(orig), hw)
	for _, size := range []int64{0, 100, 4096, 2 * 4096, 3 * 4096, hw / 2, hw - 4096} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "registry.db")
			if err := os.WriteFile(path, orig[:size], 0o600); err != nil {
				t.Fatal(err)
			}
			if size == 0 {
				// Empty: nothing to protect, so a new store.
				st, err := bolt.Open(path, bolt.Options{})
				if err != nil {
					t.Fatal(err)
				}
				st.Close()
				return
			}
			wantOpenError(t, path, bolt.ErrCorrupt)
		})
	}
}

// TestDamagedPages overwrites each page of a small store in turn with
// garbage: Open and Load must fail with an error or give records back, and
// never panic or crash.
func TestDamagedPages(t *testing.T) {
	src := filepath.Join(t.TempDir(), "registry.db")
	fill(t, src, 40)
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096
	pages := int(highWater(t, src) / pageSize)
	rng := rand.New(rand.NewPCG(3, 4))
	dir := t.TempDir()
	var opened, refused int
	for p := range pages {
		path := filepath.Join(dir, fmt.Sprintf("page-%d.db", p))
		b := append([]byte(nil), orig...)
		for i := p * pageSize; i < (p+1)*pageSize; i++ {
			b[i] = byte(rng.Uint32())
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			refused++
			if !errors.Is(err, bolt.ErrCorrupt) || !strings.Contains(err.Error(), path) {
				t.Errorf("page %d: Open: %v, want ErrCorrupt naming the file", p, err)
			}
			continue
		}
		opened++
		n := 0
		err = st.Load(context.Background(), func(registry.Record) error { n++; return nil })
		if err != nil && !errors.Is(err, bolt.ErrCorrupt) {
			t.Errorf("page %d: Load: %v, want nil or ErrCorrupt", p, err)
		}
		st.Close()
	}
	// Pages 0 and 1 are the two meta pages: bbolt falls back to the other
	// one, so damaging one of them alone loses nothing.
	t.Logf("%d pages: %d damaged copies refused, %d opened (meta page fallback or free pages)", pages, refused, opened)
}

func TestClosed(t *testing.T) {
	st, err := bolt.Open(filepath.Join(t.TempDir(), "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, testRecord(1)); err == nil {
		t.Error("Put after Close succeeded")
	}
	if err := st.Touch(ctx, []registry.Seen{{ID: "x"}}); err == nil {
		t.Error("Touch after Close succeeded")
	}
	if err := st.Load(ctx, func(registry.Record) error { return nil }); err == nil {
		t.Error("Load after Close succeeded")
	}
}

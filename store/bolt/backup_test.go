// backup_test.go checks that Backup copies a consistent store while writes
// go on.

package bolt_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
)

func TestBackup(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const before, during = 100, 200
	for i := range before {
		if err := st.Put(ctx, testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		for i := before; i < before+during; i++ {
			if err := st.Put(ctx, testRecord(i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	var buf bytes.Buffer
	n, err := st.Backup(&buf)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Errorf("Backup returned %d, wrote %d bytes", n, buf.Len())
	}

	// Restore: copy the backup into place and open it.
	restored := filepath.Join(dir, "restored.db")
	if err := os.WriteFile(restored, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	st2, err := bolt.Open(restored, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	got := make(map[string]bool)
	err = st2.Load(ctx, func(rec registry.Record) error {
		got[rec.ID] = true
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range before {
		if !got[testRecord(i).ID] {
			t.Errorf("backup lacks %s, written before it", testRecord(i).ID)
		}
	}
	t.Logf("backup of %d bytes holds %d records (%d written before it, %d during)", n, len(got), before, during)
}

// store.go implements registry.Store on the file: Load streams the records
// out of one read transaction, the writes go through group commit, and
// Backup copies the file while the store serves.

package bolt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime/debug"

	bbolt "go.etcd.io/bbolt"

	"github.com/runspec/registry"
)

var _ registry.Store = (*Store)(nil)

// Load implements registry.Store. It calls fn for each record in id order
// from one read transaction, so it sees one consistent state and holds one
// record in memory at a time (a write that must grow the file waits for it:
// fn must not wait for a write of this store).
func (s *Store) Load(ctx context.Context, fn func(registry.Record) error) (err error) {
	// Recover bbolt's panics and faults on a damaged file, not fn's.
	inFn := false
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			if inFn {
				panic(p)
			}
			err = corrupt(s.path, fmt.Errorf("%w: %v", errPanic, p))
		}
	}()
	call := func(rec registry.Record) error {
		inFn = true
		prev := debug.SetPanicOnFault(false)
		err := fn(rec)
		debug.SetPanicOnFault(prev)
		inFn = false
		return err
	}
	return s.db.View(func(tx *bbolt.Tx) error {
		return s.load(ctx, tx, call)
	})
}

func (s *Store) load(ctx context.Context, tx *bbolt.Tx, fn func(registry.Record) error) error {
	fc := tx.Bucket(fixedBucket).Cursor()
	lc := tx.Bucket(liveBucket).Cursor()
	// Both buckets are sorted by id and hold the same ids: walk them
	// side by side.
	fk, fv := fc.First()
	lk, lv := lc.First()
	for fk != nil || lk != nil {
		if err := ctx.Err(); err != nil {
			return err
		}
		if fk == nil || lk == nil || !bytes.Equal(fk, lk) {
			id := fk
			if fk == nil || (lk != nil && bytes.Compare(lk, fk) < 0) {
				id = lk
			}
			return corrupt(s.path, fmt.Errorf("record %q has only one of its two parts", id))
		}
		f, err := decodeFixed(fv)
		if err != nil {
			return corrupt(s.path, fmt.Errorf("record %q: %w", fk, err))
		}
		l, err := decodeLive(lv, true)
		if err != nil {
			return corrupt(s.path, fmt.Errorf("record %q liveness: %w", fk, err))
		}
		if err := fn(join(string(fk), f, l)); err != nil {
			return err
		}
		fk, fv = fc.Next()
		lk, lv = lc.Next()
	}
	return nil
}

// Put implements registry.Store. It returns once the record is fsync'd, in
// a transaction it may share with concurrent writes.
func (s *Store) Put(ctx context.Context, rec registry.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, l := split(rec)
	fv := appendFixed(make([]byte, 0, fixedSize(f)), f)
	lv := appendLive(nil, l)
	id := []byte(rec.ID)
	return s.write(func(tx *bbolt.Tx) error {
		if err := tx.Bucket(fixedBucket).Put(id, fv); err != nil {
			return err
		}
		return tx.Bucket(liveBucket).Put(id, lv)
	})
}

// SetStates implements registry.Store. It returns once the states are fsync'd.
func (s *Store) SetStates(ctx context.Context, states []registry.State) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(states) == 0 {
		return nil
	}
	return s.write(func(tx *bbolt.Tx) error {
		b := tx.Bucket(liveBucket)
		for _, st := range states {
			id := []byte(st.ID)
			old := b.Get(id)
			if old == nil {
				continue
			}
			l, err := decodeLive(old, false)
			if err != nil {
				return fmt.Errorf("%w: record %q liveness: %w", ErrCorrupt, st.ID, err)
			}
			l.Active, l.InactiveSince = st.Active, st.InactiveSince
			if st.LastSeen.After(l.LastSeen) { // a checkpoint may have stored a later one
				l.LastSeen = st.LastSeen
			}
			if err := b.Put(id, appendLive(nil, l)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Touch implements registry.Store. It commits all of seen in one
// transaction of its own: the registry batches heartbeats already.
func (s *Store) Touch(ctx context.Context, seen []registry.Seen) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(seen) == 0 {
		return nil
	}
	err := s.w.update(func(tx *bbolt.Tx) error {
		b := tx.Bucket(liveBucket)
		for _, sn := range seen {
			id := []byte(sn.ID)
			old := b.Get(id)
			if old == nil {
				continue
			}
			l, err := decodeLive(old, false)
			if err != nil {
				return fmt.Errorf("%w: record %q liveness: %w", ErrCorrupt, sn.ID, err)
			}
			changed := false
			if sn.LastSeen.After(l.LastSeen) {
				l.LastSeen, changed = sn.LastSeen, true
			}
			if sn.System != nil && !bytes.Equal(sn.System, l.System) {
				l.System, changed = sn.System, true
			}
			if !changed {
				continue
			}
			if err := b.Put(id, appendLive(nil, l)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("bolt: %s: %w", s.path, err)
	}
	return nil
}

// Delete implements registry.Store. It returns once the deletion is
// fsync'd.
func (s *Store) Delete(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	return s.write(func(tx *bbolt.Tx) error {
		fb, lb := tx.Bucket(fixedBucket), tx.Bucket(liveBucket)
		for _, id := range ids {
			if err := fb.Delete([]byte(id)); err != nil {
				return err
			}
			if err := lb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Store) write(fn func(*bbolt.Tx) error) error {
	if err := s.w.do(fn); err != nil {
		return fmt.Errorf("bolt: %s: %w", s.path, err)
	}
	return nil
}

// Backup writes a consistent copy of the file to w while the store serves,
// and returns the bytes written. The copy is a complete store: to restore
// it, stop the registry, copy it to the store's path, and start the
// registry.
//
// Backup holds a read transaction while it writes: until it returns, the
// file cannot reuse the pages that writes free, and a write that must grow
// the file waits.
func (s *Store) Backup(w io.Writer) (int64, error) {
	var n int64
	err := s.db.View(func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("bolt: backup of %s: %w", s.path, err)
	}
	return n, nil
}

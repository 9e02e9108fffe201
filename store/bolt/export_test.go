// export_test.go exposes internals to the package's external tests.

package bolt

import bbolt "go.etcd.io/bbolt"

// HighWater returns the bytes of the file that hold pages, used or free:
// the file is this plus the room bbolt preallocates.
func HighWater(s *Store) int64 {
	var n int64
	s.db.View(func(tx *bbolt.Tx) error { n = tx.Size(); return nil })
	return n
}

// Commits returns the write transactions committed by group commit.
func Commits(s *Store) int64 { return s.w.commits.Load() }

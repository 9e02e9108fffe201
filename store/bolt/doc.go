// Package bolt is a registry.Store that keeps a registry's records in one
// local file, a bbolt database, so that a restarted registry serves what the
// previous one acknowledged:
//
//	st, err := bolt.Open("/var/lib/runspec/registry.db", bolt.Options{})
//	if err != nil {
//		return err // bolt.ErrLocked, bolt.ErrCorrupt, bolt.ErrFormat, or I/O
//	}
//	defer st.Close()
//	reg, err := registry.New(registry.Options{Store: st})
//
// # What the file holds
//
// A bucket "meta" with the format version, a bucket "instances" that maps
// each instance id to its name, version, host, registration order and time,
// heartbeat interval and tool list (the tool objects as posted), and a bucket
// "liveness" that maps the same ids to the active flag, last seen and
// inactive-since times and the last system object. The split lets a
// heartbeat checkpoint or a state change rewrite a few dozen bytes, not an
// instance's tool list.
//
// # Durability
//
// Put, SetStates and Delete return once their transaction is fsync'd. Writes
// that arrive while a transaction commits share the next one (group
// commit), so that concurrent registrations share fsyncs without making a
// lone write wait. Touch, which the registry calls with all the heartbeats of
// a checkpoint interval, commits them in one transaction of its own. After a
// crash the file is as of its last commit: bbolt needs no recovery.
//
// # One process
//
// Open takes an exclusive lock on the file, so that two registries never
// write it at once; the second fails with ErrLocked. The registry keeps all
// records in memory and reads the file only in Open and Load.
//
// # Damage
//
// Open checks the whole file (size, format, bbolt's consistency check) and
// refuses a damaged one with ErrCorrupt rather than start empty over it, or
// panic later. The way out it names: restore a backup, or move the file away
// to start with an empty registry whose agents register again.
//
// # Backup and restore
//
// Backup writes a consistent copy of the file while the registry serves. To
// restore, stop the registry, copy the backup to the store's path, and start
// it. A copy of the file taken by other means while the registry runs may be
// torn; one taken while it is stopped is good.
package bolt

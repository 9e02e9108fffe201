// commit.go groups concurrent writes into shared transactions (group
// commit): one fsync serves every write that arrived while the previous
// commit was running.

package bolt

import (
	"fmt"
	"runtime/debug"
	"sync"
	"sync/atomic"

	bbolt "go.etcd.io/bbolt"
)

// maxBatch bounds the writes in one transaction, and so its memory.
const maxBatch = 1000

// A committer runs writes in shared transactions. A writer that finds no
// commit running commits at once, alone or with whatever is queued; writers
// that arrive meanwhile queue up, and when the commit ends the first of them
// leads the next one with all the others. So a lone write waits for no timer
// (bbolt's DB.Batch waits up to MaxBatchDelay, 10ms, to fill a batch), and
// under load the writes share fsyncs. It starts no goroutine: leaders are
// writers' own goroutines.
type committer struct {
	db *bbolt.DB

	mu      sync.Mutex
	queue   []*write
	leading bool // a writer is committing; the queue waits for it

	commits atomic.Int64 // transactions committed, for benchmarks
}

type write struct {
	fn   func(*bbolt.Tx) error
	done chan result // buffered: the sender never blocks
}

type result struct {
	err  error
	lead bool // the writer must commit the queue
}

// do runs fn in a write transaction shared with other writes, and returns
// when that transaction is committed (or failed). fn must be idempotent: if
// the shared transaction fails, each write is run again in its own, so that
// one bad write does not fail the others.
func (c *committer) do(fn func(*bbolt.Tx) error) error {
	w := &write{fn: fn, done: make(chan result, 1)}
	c.mu.Lock()
	c.queue = append(c.queue, w)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if !lead {
		r := <-w.done
		if !r.lead {
			return r.err
		}
	}

	// Leader: commit the queue, which holds w, then hand over.
	c.mu.Lock()
	n := min(len(c.queue), maxBatch)
	batch := c.queue[:n:n]
	c.queue = c.queue[n:]
	c.mu.Unlock()
	c.commit(batch)
	c.mu.Lock()
	if len(c.queue) > 0 {
		c.queue[0].done <- result{lead: true}
	} else {
		c.leading = false
		c.queue = nil
	}
	c.mu.Unlock()
	return (<-w.done).err
}

// commit runs batch in one transaction and reports to each write.
func (c *committer) commit(batch []*write) {
	err := c.update(func(tx *bbolt.Tx) error {
		for _, w := range batch {
			if err := w.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil && len(batch) > 1 {
		for _, w := range batch {
			w.done <- result{err: c.update(w.fn)}
		}
		return
	}
	for _, w := range batch {
		w.done <- result{err: err}
	}
}

// update is db.Update that turns a panic (bbolt panics on some corrupt
// pages, and faults on pages past the end of a truncated file) into an
// error.
func (c *committer) update(fn func(*bbolt.Tx) error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: panic in write transaction: %v", ErrCorrupt, p)
		}
	}()
	err = c.db.Update(fn)
	if err == nil {
		c.commits.Add(1)
	}
	return err
}

// flights_internal_test.go checks the accounting of shared answers: a body
// counts against its budget while its owner keeps it or any reader still
// holds it, and not after; making room drops only the bodies no reader
// holds; a flight superseded while its leader encodes still gives its
// followers the body; an answer too large to share streams at once the
// next time, and is tried again once it shrinks.

package registry

import (
	"bytes"
	"hash/maphash"
	"testing"
)

// keep encodes chunks of n bytes each into a keeper of fs and returns it.
// (Its blocks are what the budget counts: minBlock, then twice as much.)
func keep(t *testing.T, fs *flights, sizes ...int) *keeper {
	t.Helper()
	k := fs.keeper(maphash.MakeSeed())
	for _, n := range sizes {
		if err := k.emit(bytes.Repeat([]byte("x"), n), false); err != nil {
			t.Fatalf("keep %d bytes: %v (held %d of %d)", n, err, fs.held, fs.limit)
		}
	}
	return k
}

func TestSharedBodiesCountWhileHeld(t *testing.T) {
	var fs flights
	f, leader := fs.join("a", 1, 0)
	if !leader {
		t.Fatal("the first reader does not lead")
	}
	follower, leads := fs.join("a", 1, 0)
	if leads || follower != f {
		t.Fatal("a second reader at the same index leads its own flight")
	}
	b := keep(t, &fs, 1000, 500).body()
	f.share(b)
	got := f.take() // the follower's
	if got != b || fs.held != minBlock || b.size != 1500 {
		t.Fatalf("take: %p (want %p), held %d, want %d, size %d", got, b, fs.held, minBlock, b.size)
	}
	b.release() // the leader is done
	// A change: the next flight of the key replaces it in the map, but the
	// follower still writes the old body.
	if _, leader := fs.join("a", 2, 0); !leader {
		t.Fatal("a new index does not lead")
	}
	if fs.held != minBlock {
		t.Errorf("held %d while a reader writes the body, want %d", fs.held, minBlock)
	}
	got.release()
	if fs.held != 0 {
		t.Errorf("held %d once no one holds the body, want 0", fs.held)
	}
}

func TestSharedBodiesRoom(t *testing.T) {
	var fs flights
	fs.limit = 4 * minBlock
	fa, _ := fs.join("a", 1, 0)
	ba := keep(t, &fs, 1000).body()
	fa.share(ba)
	ba.release() // kept by the map only: it may be dropped to make room
	fb, _ := fs.join("b", 1, 0)
	bb := keep(t, &fs, 1500).body()
	fb.share(bb)                  // the leader still writes it: it must stay
	k := keep(t, &fs, minBlock+1) // two blocks: a must go
	if fs.held != 4*minBlock || fs.lookup("a", 1, 0) != nil {
		t.Errorf("held %d, want %d (a dropped: %v)", fs.held, 4*minBlock, fs.lookup("a", 1, 0) == nil)
	}
	if err := k.emit(make([]byte, 2*minBlock), false); err != errTooLarge || k.tried != 0 {
		t.Errorf("over the budget while b is read: %v, tried %d; want errTooLarge from the budget", err, k.tried)
	}
	k.drop()
	bb.release()
	if fs.held != minBlock || fs.lookup("b", 1, 0) == nil {
		t.Errorf("held %d, want %d: b kept for late readers", fs.held, minBlock)
	}
}

func TestSupersededFlightGivesFollowersItsBody(t *testing.T) {
	var fs flights
	f, _ := fs.join("a", 1, 0)
	fs.join("a", 1, 0)            // a follower waits
	next, _ := fs.join("a", 2, 0) // a change while the leader encodes
	b := keep(t, &fs, 700).body()
	f.share(b)
	if got := f.take(); got != b {
		t.Fatal("the follower of a superseded flight gets no body")
	} else {
		got.release()
	}
	b.release()
	if fs.held != 0 {
		t.Errorf("held %d after everyone let go, want 0", fs.held)
	}
	// No follower: a superseded flight keeps nothing.
	next.share(keep(t, &fs, 300).body())
	fs.join("a", 3, 0)
	if fs.held != minBlock { // the leader's reference only
		t.Errorf("held %d, want %d", fs.held, minBlock)
	}
	// A follower that stops waiting lets go too.
	g, _ := fs.join("b", 1, 0)
	h, _ := fs.join("b", 1, 0)
	fs.join("b", 2, 0)
	bg := keep(t, &fs, 100).body()
	g.share(bg)
	bg.release()
	h.leave()
	if fs.held != minBlock {
		t.Errorf("held %d after the follower left, want %d", fs.held, minBlock)
	}
}

func TestTooLargeToShareStreamsNextTime(t *testing.T) {
	var fs flights
	f, _ := fs.join("a", 1, 0)
	k := fs.keeper(maphash.MakeSeed())
	var err error
	for err == nil {
		err = k.emit(make([]byte, chunkSize), false)
	}
	if err != errTooLarge || k.tried <= maxSharedBytes {
		t.Fatalf("%v, tried %d: want errTooLarge past maxSharedBytes", err, k.tried)
	}
	f.streams(k.tried)
	k.drop()
	next, _ := fs.join("a", 2, 0)
	if !next.large {
		t.Error("the next flight tries to share an answer known to be too large")
	}
	next.streams(maxSharedBytes + 1)
	next.measured(1000) // it shrank
	if last, _ := fs.join("a", 3, 0); last.large {
		t.Error("an answer that shrank is not tried again")
	}
	if fs.held != 0 {
		t.Errorf("held %d, want 0", fs.held)
	}
}

// An answer whole in its first chunk is held in a block of its own size:
// small answers (most lookups) do not take minBlock each, which would fit
// only a few hundred of them in the cache.
func TestWholeFirstChunkHeldAtItsSize(t *testing.T) {
	fs := flights{budget: budget{limit: maxFlightBytes}}
	k := fs.keeper(maphash.MakeSeed())
	if err := k.emit(bytes.Repeat([]byte("x"), 700), true); err != nil {
		t.Fatal(err)
	}
	b := k.body()
	if fs.held != 700 || b.held != 700 || b.size != 700 {
		t.Errorf("a 700-byte answer: budget holds %d, body %d (size %d); want 700", fs.held, b.held, b.size)
	}
	b.release()
	if fs.held != 0 {
		t.Errorf("held %d once released, want 0", fs.held)
	}
	// A longer answer still grows from minBlock.
	if k := keep(t, &fs, 1000, 500); k.held != minBlock {
		t.Errorf("an answer of two chunks holds %d, want %d", k.held, minBlock)
	}
}

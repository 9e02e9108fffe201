// follow.go follows the registry for Run: one listing of the records,
// then the change stream from the listing's index. Events are gathered as
// they come and applied in batches by one goroutine, which reads again
// only the records whose tools changed (a burst of events costs one read
// per instance, and a burst that names most of the fleet one listing),
// builds the entries of the tool names touched and publishes the catalog
// for the applier. A reset of the stream (the registry lost the changes:
// its ring moved on, it restarted) is a new listing.

package fleetmcp

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	registry "github.com/runspec/registry"
	"github.com/runspec/registry/client"
)

// Limits of following the registry.
const (
	// listPage is the number of records per page of a listing.
	listPage = 1000
	// readers is the number of records read at once.
	readers = 8
	// maxPending is the most events held for the next batch: beyond, a
	// listing is cheaper.
	maxPending = 100_000
	// relistMin is the fewest records to read again that may make a
	// listing cheaper than reading each (see follower.step).
	relistMin = 256
)

// pending holds what came from the change stream since the last batch.
// The stream's loop adds; the follower takes.
type pending struct {
	mu     sync.Mutex
	events []registry.Event
	last   uint64 // the index of the last event added (a reset may lower it: another registry)
	reset  bool   // list again: a listing shows what the events held would
	kick   chan struct{}
}

// add adds an event of the stream and wakes the follower.
func (p *pending) add(e registry.Event) {
	p.mu.Lock()
	p.last = e.Index
	switch {
	case e.Kind == registry.EventReset || len(p.events) >= maxPending:
		p.events, p.reset = nil, true
	case !p.reset: // else the listing to come, which starts later, shows it
		p.events = append(p.events, e)
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default: // a kick is pending: it takes this event too
	}
}

// retry asks for a listing again, one having failed: the loop tries it
// after a back-off.
func (p *pending) retry() {
	p.mu.Lock()
	p.events, p.reset = nil, true
	p.mu.Unlock()
}

// take returns and forgets what was added.
func (p *pending) take() (events []registry.Event, last uint64, reset bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	events, last, reset = p.events, p.last, p.reset
	p.events, p.reset = nil, false
	return events, last, reset
}

// follower applies the registry's changes to the fleet and the catalog.
// Its fields are its goroutine's, but pend.
type follower struct {
	s      *Server
	fleet  *fleet
	cats   *catalogBuilder
	pend   pending
	index  uint64          // the change index the fleet is at
	unread map[string]bool // records to read again (their read failed, or is to come)
}

func newFollower(s *Server) *follower {
	return &follower{s: s, fleet: newFleet(s.opts.View), cats: newCatalogBuilder(s.opts.MaxAutonomy, s.log),
		pend: pending{kick: make(chan struct{}, 1)}, unread: map[string]bool{}}
}

// follow lists the registry (until a listing works), then follows its
// change stream until ctx ends.
func (fw *follower) follow(ctx context.Context, wg *sync.WaitGroup) {
	s := fw.s
	for fails := 0; ; fails++ {
		err := fw.relist(ctx, 0)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return
		}
		d := backoff(fails)
		s.log.Warn("listing the registry failed; the listing stays as it is until it works", "err", err, "retry", d)
		if !sleep(ctx, d) {
			return
		}
	}
	wg.Go(func() { fw.loop(ctx) })
	for e, err := range s.opts.Source.Events(ctx, fw.index) {
		if err != nil {
			s.log.Warn("the registry's change stream failed; the listing stays as it was", "err", err)
			if errors.Is(err, client.ErrNotFound) {
				// No change stream (the v1 reference): list again at
				// each retry, which backs off.
				fw.pend.add(registry.Event{Kind: registry.EventReset})
			}
			continue
		}
		fw.pend.add(e)
	}
}

// loop applies batches of changes as they come, and retries what failed
// after a back-off.
func (fw *follower) loop(ctx context.Context) {
	var retry <-chan time.Time
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-fw.pend.kick:
		case <-retry:
		}
		retry = nil
		if err := fw.step(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			d := backoff(fails)
			fails++
			fw.s.log.Warn("reading the registry failed; the listing stays as it was until it works", "err", err, "retry", d)
			retry = time.After(d)
			continue
		}
		fails = 0
	}
}

// step applies what came since the last step.
func (fw *follower) step(ctx context.Context) error {
	events, last, reset := fw.pend.take()
	if reset {
		if err := fw.relist(ctx, last); err != nil {
			fw.pend.retry()
			return err
		}
		return nil
	}
	for _, e := range events {
		if fw.fleet.apply(e) {
			fw.unread[e.InstanceID] = true
		} else {
			delete(fw.unread, e.InstanceID) // its tools are gone, whatever a read would say
		}
	}
	// Reading every record costs about what one listing does.
	if len(fw.unread) > max(relistMin, len(fw.fleet.ranks)/2) {
		if err := fw.relist(ctx, last); err != nil {
			fw.pend.retry()
			return err
		}
		return nil
	}
	err := fw.read(ctx)
	if len(fw.unread) == 0 {
		// Every change up to last is applied: a read shows at least it.
		fw.index = max(fw.index, last)
	}
	fw.publish()
	return err
}

// read reads again the records of unread, readers at a time, and applies
// them; those that fail stay unread.
func (fw *follower) read(ctx context.Context) error {
	if len(fw.unread) == 0 {
		return nil
	}
	type result struct {
		id  string
		in  registry.Instance
		err error
	}
	results := make([]result, 0, len(fw.unread))
	for id := range fw.unread {
		results = append(results, result{id: id})
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, readers)
	for i := range results {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := &results[i]
			r.in, r.err = fw.s.opts.Source.Instance(ctx, r.id)
		})
	}
	wg.Wait()
	var failed error
	for _, r := range results {
		switch {
		case r.err == nil:
			fw.fleet.seen(r.in)
		case errors.Is(r.err, client.ErrNotFound) || errors.Is(r.err, registry.ErrNotFound):
			fw.fleet.forget(r.id) // deleted: the event of it is to come
		default:
			failed = r.err
			continue
		}
		delete(fw.unread, r.id)
	}
	return failed
}

// relist lists the registry into a new fleet, which replaces the current
// one if the listing works, and publishes its catalog. Its index is that
// of the first page, or after if that is later (the last event of a
// batch that the listing replaces).
func (fw *follower) relist(ctx context.Context, after uint64) error {
	nf := newFleet(fw.s.opts.View)
	var index uint64
	first := true
	for p, err := range fw.s.opts.Source.InstancePages(ctx, client.Filter{IncludeInactive: true}, listPage) {
		if err != nil {
			return err
		}
		if first {
			index, first = p.Index, false
		}
		for _, in := range p.Instances {
			nf.seen(in)
		}
	}
	for _, n := range fw.fleet.names() {
		nf.touched[n] = true // gone, or built again
	}
	nf.swept = len(nf.objs)
	fw.fleet, fw.index = nf, max(index, after)
	clear(fw.unread)
	fw.publish()
	return nil
}

// publish builds the catalog of the touched tool names and hands it to
// the applier.
func (fw *follower) publish() {
	c := fw.cats.update(fw.index, fw.fleet, fw.fleet.take())
	fw.fleet.sweep()
	fw.s.cat.Store(c)
	select {
	case fw.s.kick <- struct{}{}:
	default: // a kick is pending: it will apply the latest catalog
	}
}

// backoff returns the wait before retry n (from 0): from 0.5 s, doubling
// up to 30 s, with jitter.
func backoff(n int) time.Duration {
	d := 500 * time.Millisecond << min(n, 6)
	d = min(d, 30*time.Second)
	return d/2 + rand.N(d/2+1)
}

// sleep waits for d or until ctx ends, and reports whether ctx is live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

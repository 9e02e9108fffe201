// keepalive.go sends lease keep-alives for heartbeats over a few long-lived
// LeaseKeepAlive streams. clientv3's KeepAliveOnce opens a stream per call;
// a stream kept open carries many keep-alives in flight at once, and etcd
// answers each in order.

package etcd

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errKeepAliveTimeout is the cause of a keep-alive's context when the
// Store's request timeout ends it: only then is the stream suspect.
var errKeepAliveTimeout = errors.New("etcd: no keep-alive answer within the request timeout")

// kaStreams is how many keep-alive streams a Store keeps open: etcd serves
// the requests of one stream one after the other.
const kaStreams = 4

type keepAlives struct {
	c    *clientv3.Client
	saw  func(rev int64) // told the revision of each answer's header
	next atomic.Uint32
	s    [kaStreams]kaStream
}

// kaStream is one slot of the pool: its open stream, if any.
type kaStream struct {
	mu  sync.Mutex
	cur *kaConn // nil: opened by the next caller
}

// kaConn is one stream and the callers waiting for its answers, in the
// order of their requests. pending is guarded by the slot's mu.
type kaConn struct {
	stream  pb.Lease_LeaseKeepAliveClient
	cancel  context.CancelFunc
	pending []chan kaResult
}

type kaResult struct {
	ttl int64 // <= 0: the lease is gone
	err error
}

// keepAlive renews lease and returns its TTL (<= 0 if the lease is gone).
func (k *keepAlives) keepAlive(ctx context.Context, lease int64) (int64, error) {
	ks := &k.s[k.next.Add(1)%kaStreams]
	ch := make(chan kaResult, 1)
	ks.mu.Lock()
	conn := ks.cur
	if conn == nil {
		ks.mu.Unlock()
		var err error
		if conn, err = k.open(ctx); err != nil {
			return 0, err
		}
		ks.mu.Lock()
		if ks.cur != nil { // another caller opened one meanwhile
			conn.cancel()
			conn = ks.cur
		} else {
			ks.cur = conn
			go ks.receive(conn, k.saw)
		}
	}
	if err := conn.stream.Send(&pb.LeaseKeepAliveRequest{ID: lease}); err != nil {
		ks.drop(conn)
		ks.mu.Unlock()
		return 0, err
	}
	conn.pending = append(conn.pending, ch)
	ks.mu.Unlock()
	select {
	case r := <-ch:
		return r.ttl, r.err
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), errKeepAliveTimeout) {
			// No answer within the Store's request timeout: the stream
			// may be stuck (its member gone). The next caller opens a new
			// one, and the others waiting on this one fail. A caller that
			// gave up (cancelled, or its own deadline) leaves the stream
			// alone: its answer is dropped into its buffered channel.
			ks.mu.Lock()
			ks.drop(conn)
			ks.mu.Unlock()
		}
		return 0, ctx.Err()
	}
}

// open opens a keep-alive stream. The stream lives until dropped, but
// opening it is bounded by ctx: a connection that never becomes ready
// must not hold callers past their deadline.
func (k *keepAlives) open(ctx context.Context) (*kaConn, error) {
	sctx, cancel := context.WithCancel(clientv3.WithRequireLeader(context.Background()))
	stop := context.AfterFunc(ctx, cancel)
	st, err := pb.NewLeaseClient(k.c.ActiveConnection()).LeaseKeepAlive(sctx)
	if !stop() || err != nil {
		cancel()
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	}
	return &kaConn{stream: st, cancel: cancel}, nil
}

// drop closes conn and makes the next caller open a new stream. Called with
// mu held.
func (ks *kaStream) drop(conn *kaConn) {
	conn.cancel()
	if ks.cur == conn {
		ks.cur = nil
	}
}

// receive hands each answer of conn to the caller that waits for it, and
// fails them all when the stream ends.
func (ks *kaStream) receive(conn *kaConn, saw func(rev int64)) {
	for {
		resp, err := conn.stream.Recv()
		ks.mu.Lock()
		if err != nil {
			ks.drop(conn)
			for _, ch := range conn.pending {
				ch <- kaResult{err: err}
			}
			conn.pending = nil
			ks.mu.Unlock()
			return
		}
		if len(conn.pending) == 0 { // cannot happen: one answer per request
			ks.mu.Unlock()
			continue
		}
		ch := conn.pending[0]
		conn.pending[0] = nil
		conn.pending = conn.pending[1:]
		ks.mu.Unlock()
		if saw != nil {
			saw(resp.Header.GetRevision())
		}
		ch <- kaResult{ttl: resp.TTL}
	}
}

// close stops every stream.
func (k *keepAlives) close() {
	for i := range k.s {
		ks := &k.s[i]
		ks.mu.Lock()
		if ks.cur != nil {
			ks.drop(ks.cur)
		}
		ks.mu.Unlock()
	}
}

// auth.go guards the endpoints: who may make a request (guard: an identity
// with the roles the route needs, wrong keys throttled per address), the
// client address (X-Forwarded-For only from trusted proxies) and
// per-address rate limits (token buckets in a table that forgets idle
// addresses, so a scan from many addresses cannot grow it without bound).

package registry

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// guard finds who makes req and checks that it may use a route that needs
// one of the roles in need. When the registry requires no identity (no
// keys, no client certificates), anyone may do anything, purges included,
// as in v1: the identity is nil and the write acts with every right. Otherwise
// it answers 403 (429 when an address keeps sending wrong keys) and
// returns false.
func (r *Registry) guard(w http.ResponseWriter, req *http.Request, need Roles, rt, instance string) (*Identity, bool) {
	a := r.authenticate(req)
	if !r.identityRequired() {
		return nil, true
	}
	if a.id == nil {
		addr := r.clientAddr(req)
		if wait, ok := r.failed.allow(addr, routeAuth); !ok {
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			r.refused(req, rt, instance, nil, http.StatusTooManyRequests, "too many wrong keys")
			writeDetail(w, http.StatusTooManyRequests, "Too many requests with a wrong or missing API key; retry later")
			return nil, false
		}
		why := "missing key"
		if a.badKey {
			why = "wrong key"
		}
		r.refused(req, rt, instance, nil, http.StatusForbidden, why)
		writeDetail(w, http.StatusForbidden, "Invalid or missing API key")
		return nil, false
	}
	if a.id.Roles&need == 0 {
		r.refused(req, rt, instance, a.id, http.StatusForbidden, "role")
		writeDetail(w, http.StatusForbidden, fmt.Sprintf("Identity %q (roles: %s) may not do this", a.id.Name, a.id.Roles))
		return nil, false
	}
	return a.id, true
}

// clientAddr is the address a request is rate limited by: the connection's
// peer, or, when that peer is a trusted proxy, the last address in
// X-Forwarded-For that is not itself a trusted proxy.
func (r *Registry) clientAddr(req *http.Request) netip.Addr {
	peer := parseAddr(req.RemoteAddr)
	if !r.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(req.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed hop: trust nothing further left
		}
		a = a.Unmap()
		if !r.trusted(a) {
			return a
		}
		peer = a
	}
	return peer
}

func (r *Registry) trusted(a netip.Addr) bool {
	for _, p := range r.opts.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// parseAddr reads the address of a RemoteAddr ("host:port"); an unparsable
// one maps to the zero Addr, which then shares one bucket.
func parseAddr(hostport string) netip.Addr {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// A route is a rate-limited endpoint; each has its own bucket per address,
// as in the reference.
type route uint8

const (
	routeRegister route = iota
	routeTools
	routeDelete
	routeHeartbeat
	routeAuth // failed authentications, in Registry.failed
	numRoutes
)

type limitKey struct {
	addr  netip.Addr // an address, or the first address of an IPv6 /64
	route route
	net   bool // the aggregate bucket of addr's /64
}

// maxLimiters bounds one generation of the limiter table.
const maxLimiters = 100_000

// DefaultRateLimitPrefixFactor is the default Options.RateLimitPrefixFactor.
const DefaultRateLimitPrefixFactor = 100

// A limiter keeps a token bucket per (address, route), and one per (IPv6
// /64, route) for all the addresses of that prefix together: a client can
// take a new address inside its /64 for each request, but a /64 is also a
// whole LAN of agents, so its bucket is factor times larger. Buckets live in
// two generations: a bucket not used for a whole minute is full again, so
// dropping it changes nothing, and the table holds only the keys seen in the
// last two minutes (or maxLimiters of them, if a flood comes first).
type limiter struct {
	perMinute [numRoutes]int
	factor    int // the /64 buckets are this many times larger; 0: none
	now       func() time.Time

	mu      sync.Mutex
	cur     map[limitKey]*rate.Limiter
	prev    map[limitKey]*rate.Limiter
	rotated time.Time
}

func newLimiter(write, heartbeat, factor int, now func() time.Time) *limiter {
	l := &limiter{now: now, factor: factor, cur: make(map[limitKey]*rate.Limiter), rotated: now()}
	l.perMinute = [numRoutes]int{write, write, write, heartbeat, 0}
	return l
}

// allow takes a token for addr on rt (and for its /64), or returns how long
// until there is one.
func (l *limiter) allow(addr netip.Addr, rt route) (time.Duration, bool) {
	_, wait, ok := l.take(addr, rt)
	return wait, ok
}

// take is allow, and returns the tokens taken, to give back when the
// request turns out not to count against the bucket; when refused, the
// refusing bucket's size is in taken.limit.
func (l *limiter) take(addr netip.Addr, rt route) (taken, time.Duration, bool) {
	n := l.perMinute[rt]
	if n == 0 {
		return taken{}, 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.rotated) >= time.Minute || len(l.cur) >= maxLimiters {
		l.prev, l.cur, l.rotated = l.cur, make(map[limitKey]*rate.Limiter), now
	}
	res := l.bucket(limitKey{addr: addr, route: rt}, n).ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return taken{limit: n}, d, false
	}
	t := taken{at: now, res: [2]*rate.Reservation{res}}
	if addr.Is6() && l.factor > 0 {
		p, _ := addr.Prefix(64)
		net := l.bucket(limitKey{addr: p.Addr(), route: rt, net: true}, n*l.factor).ReserveN(now, 1)
		if d := net.DelayFrom(now); d > 0 {
			net.CancelAt(now)
			res.CancelAt(now)
			return taken{limit: n * l.factor, prefix: true}, d, false
		}
		t.res[1] = net
	}
	return t, 0, true
}

// taken is the tokens one request took from its buckets.
type taken struct {
	at  time.Time
	res [2]*rate.Reservation

	limit  int  // when refused: the size of the bucket that refused
	prefix bool // when refused: the bucket is the IPv6 /64's
}

// giveBack returns the tokens to their buckets (as far as later requests
// have not used the bucket since).
func (t taken) giveBack() {
	for _, res := range t.res {
		if res != nil {
			// Cancelled as of the time it was made: a reservation
			// that acted in the past is otherwise not given back.
			res.CancelAt(t.at)
		}
	}
}

// bucket returns the bucket of k, of n tokens a minute, keeping it in the
// current generation. Called with mu held.
func (l *limiter) bucket(k limitKey, n int) *rate.Limiter {
	lim := l.cur[k]
	if lim == nil {
		if lim = l.prev[k]; lim == nil {
			lim = rate.NewLimiter(rate.Limit(float64(n)/60), n)
		}
		l.cur[k] = lim
	}
	return lim
}

func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.cur) + len(l.prev)
}

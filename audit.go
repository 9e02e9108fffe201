// audit.go writes the audit trail: one structured line (slog, message
// "audit") per registration, tool post, deregistration, purge, refused
// write and heartbeat that changes state, naming the identity (never a
// secret), the client address, the route, the instance, the outcome and the
// status. Routine heartbeats are not logged. Refusals are aggregated per
// client address (an IPv6 address's /64) and identity per minute: the first
// is logged, the rest are counted and summed up in one line, so that an
// attacker cannot make the log grow faster than one line per address and
// identity per minute, and wrong keys from an address do not hide the
// refused writes of a known identity from the same address.

package registry

import (
	"context"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// refusalWindow is the period over which refusals of one refuser are summed.
const refusalWindow = time.Minute

// maxRefusers bounds the refusers whose refusals are being counted.
const maxRefusers = 100_000

// refusals counts the refused requests of each refuser in its window.
type refusals struct {
	mu sync.Mutex
	m  map[refuser]*refusalCount
}

// A refuser is whose refusals are counted together: an IPv4 address or an
// IPv6 /64, and the identity, if the request had one.
type refuser struct {
	addr     netip.Addr // the address, or the first address of its /64
	identity string     // "" for none
}

func refuserOf(addr netip.Addr, id *Identity) refuser {
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		addr = p.Addr()
	}
	k := refuser{addr: addr}
	if id != nil {
		k.identity = id.Name
	}
	return k
}

type refusalCount struct {
	since time.Time
	n     int // refusals after the first, in the window
}

// auditWrite logs the outcome of a write: done (status ok) in full, or
// refused (aggregated per address).
func (r *Registry) auditWrite(req *http.Request, route, instance string, err error, ok int, outcome string) {
	id := identityOf(req.Context())
	if err == nil {
		r.audited(req, route, id, instance, outcome, ok)
		return
	}
	status, _ := errorStatus(err)
	r.refused(req, route, instance, id, status, err.Error())
}

// audited logs a write that the trail keeps.
func (r *Registry) audited(req *http.Request, route string, id *Identity, instance, outcome string, status int) {
	if !r.log.Enabled(req.Context(), slog.LevelInfo) {
		return
	}
	r.log.LogAttrs(req.Context(), slog.LevelInfo, "audit", r.auditAttrs(req, route, id, instance, outcome, status)...)
}

func (r *Registry) auditAttrs(req *http.Request, route string, id *Identity, instance, outcome string, status int) []slog.Attr {
	name := "-" // no identity: the registry requires none
	if id != nil {
		name = id.Name
	}
	attrs := []slog.Attr{
		slog.String("identity", name),
		slog.String("client", r.clientAddr(req).String()),
		slog.String("route", route),
	}
	if instance != "" {
		attrs = append(attrs, slog.String("instance", instance))
	}
	return append(attrs, slog.String("outcome", outcome), slog.Int("status", status))
}

// refused logs a refused request: the first of its refuser in a window in
// full, the others as one count when the window ends.
func (r *Registry) refused(req *http.Request, route, instance string, id *Identity, status int, why string) {
	if status == http.StatusForbidden {
		r.counts.refused.Add(1)
	}
	who := refuserOf(r.clientAddr(req), id)
	now := time.Now()
	rf := &r.refusals
	rf.mu.Lock()
	if rf.m == nil || len(rf.m) >= maxRefusers {
		rf.m = make(map[refuser]*refusalCount)
	}
	c := rf.m[who]
	if c != nil && now.Sub(c.since) < refusalWindow {
		c.n++
		rf.mu.Unlock()
		return
	}
	var ended *refusalCount
	if c != nil && c.n > 0 {
		ended = &refusalCount{since: c.since, n: c.n}
	}
	rf.m[who] = &refusalCount{since: now}
	rf.mu.Unlock()
	if ended != nil {
		r.logRefusals(req.Context(), who, ended)
	}
	note := "further refusals from this address in the next minute are counted, not logged"
	if who.addr.Is6() {
		note = "further refusals from this address's /64 in the next minute are counted, not logged"
	}
	if who.identity != "" {
		note = strings.Replace(note, "refusals from", "refusals of this identity from", 1)
	}
	attrs := append(r.auditAttrs(req, route, id, instance, "refused: "+why, status), slog.String("note", note))
	r.log.LogAttrs(req.Context(), slog.LevelWarn, "audit", attrs...)
}

// flushRefusals sums up the windows that have ended. Run calls it.
func (r *Registry) flushRefusals(ctx context.Context) {
	now := time.Now()
	type ended struct {
		who refuser
		c   refusalCount
	}
	var out []ended
	rf := &r.refusals
	rf.mu.Lock()
	for who, c := range rf.m {
		if now.Sub(c.since) >= refusalWindow {
			if c.n > 0 {
				out = append(out, ended{who, *c})
			}
			delete(rf.m, who)
		}
	}
	rf.mu.Unlock()
	for _, e := range out {
		r.logRefusals(ctx, e.who, &e.c)
	}
}

func (r *Registry) logRefusals(ctx context.Context, who refuser, c *refusalCount) {
	client := who.addr.String()
	if who.addr.Is6() {
		client = netip.PrefixFrom(who.addr, 64).String()
	}
	identity := who.identity
	if identity == "" {
		identity = "-"
	}
	r.log.LogAttrs(ctx, slog.LevelWarn, "audit",
		slog.String("identity", identity),
		slog.String("client", client),
		slog.String("outcome", "refused, counted"),
		slog.Int("refusals", c.n),
		slog.Time("since", c.since),
		slog.Duration("window", refusalWindow))
}

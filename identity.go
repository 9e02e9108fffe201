// identity.go defines who makes a request: an Identity with Roles, from an
// API key (Key, keys files) or a verified TLS client certificate, what each
// role may do, the host patterns an identity may register, and how the
// registry finds the identity of a request (authenticate) and hands it to
// the library's methods (WithIdentity).

package registry

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"slices"
	"strings"
)

// Roles is a set of roles.
type Roles uint8

// The roles an identity may have.
const (
	// RoleAgent registers, heartbeats, posts tools and deregisters the
	// instances it owns.
	RoleAgent Roles = 1 << iota
	// RoleRead reads (when reads require an identity: Options.ReadAuth).
	RoleRead
	// RoleAdmin does everything, on any instance, including hard deletes.
	RoleAdmin
)

var roleNames = []struct {
	r    Roles
	name string
}{{RoleAgent, "agent"}, {RoleRead, "read"}, {RoleAdmin, "admin"}}

// Has reports whether rs holds every role of want.
func (rs Roles) Has(want Roles) bool { return rs&want == want }

func (rs Roles) String() string {
	var names []string
	for _, n := range roleNames {
		if rs.Has(n.r) {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParseRoles reads a comma-separated list of roles (agent, read, admin).
func ParseRoles(s string) (Roles, error) {
	var rs Roles
	for _, f := range strings.Split(s, ",") {
		i := slices.IndexFunc(roleNames, func(n struct {
			r    Roles
			name string
		}) bool {
			return n.name == strings.TrimSpace(f)
		})
		if i < 0 {
			return 0, fmt.Errorf("unknown role %q (want agent, read or admin)", f)
		}
		rs |= roleNames[i].r
	}
	return rs, nil
}

// APIKeyIdentity is the name of the identity of Options.APIKey (roles agent
// and admin). Records stored before ownership existed belong to it.
const APIKeyIdentity = "api-key"

// An Identity is who makes a request: an API key's name, or a client
// certificate's identity (its DNS names, else its common name).
type Identity struct {
	Name  string
	Roles Roles
	// Hosts are the host names or glob patterns (path.Match, compared
	// case-insensitively) whose instances this identity may register; nil
	// allows any host. The hosts of a certificate's identity are its DNS
	// names, compared literally (see Options.BindCertToHost).
	Hosts []string
	// Certificate reports an identity from a client certificate.
	Certificate bool

	// dnsNames makes Hosts DNS names, not globs: a name matches itself
	// only, and a wildcard *.domain matches one label under domain.
	dnsNames bool
}

// MayRegister reports whether id may register an instance on host.
func (id Identity) MayRegister(host string) bool {
	if id.Hosts == nil {
		return true
	}
	h := strings.ToLower(host)
	for _, p := range id.Hosts {
		p = strings.ToLower(p)
		if p == h {
			return true
		}
		if id.dnsNames {
			if domain, ok := strings.CutPrefix(p, "*."); ok {
				label, rest, _ := strings.Cut(h, ".")
				if label != "" && rest == domain {
					return true
				}
			}
			continue
		}
		if ok, err := path.Match(p, h); err == nil && ok {
			return true
		}
	}
	return false
}

type identityKey struct{}

// WithIdentity returns a context whose writes (Register, Heartbeat,
// UpdateTools, Deregister, Delete) act as id: ownership and host rules
// apply to it. The handler does this for every request; a library caller
// whose context carries no identity acts with every right.
func WithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, &id)
}

// identityOf returns the identity a write acts as, or nil for the
// embedder's own calls.
func identityOf(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// MinKeyBytes is the shortest key that loads without a warning.
const MinKeyBytes = 16

// A Key is an API key the registry accepts, and the identity it stands
// for. Several keys may name one identity (keys are rolled without losing
// ownership).
type Key struct {
	Identity
	// Hash is the SHA-256 of the secret: the registry keeps no secret.
	Hash [sha256.Size]byte
	// Short reports a secret shorter than MinKeyBytes (given in clear).
	Short bool
	// Line is the line of the keys file it came from, if it came from one.
	Line int
}

// NewKey returns the key secret for an identity.
func NewKey(id Identity, secret string) Key {
	return Key{Identity: id, Hash: sha256.Sum256([]byte(secret)), Short: len(secret) < MinKeyBytes}
}

// ParseKeys reads a keys file: one key a line, NAME ROLES SECRET
// [hosts=PATTERNS], where ROLES is a comma-separated list of roles, SECRET
// the key itself or sha256: and the hex SHA-256 of the key, and PATTERNS a
// comma-separated list of host names or globs the identity may register.
// Blank lines and lines starting with # are ignored. A NAME may appear on
// several lines, with the same roles and hosts. Errors name their line.
func ParseKeys(r io.Reader) ([]Key, error) {
	var keys []Key
	byName := make(map[string]Key)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := parseKeyLine(line)
		if err != nil {
			return nil, fmt.Errorf("keys file line %d: %w", n, err)
		}
		k.Line = n
		if prev, ok := byName[k.Name]; ok && (prev.Roles != k.Roles || !slices.Equal(prev.Hosts, k.Hosts)) {
			return nil, fmt.Errorf("keys file line %d: %q has other roles or hosts than on line %d", n, k.Name, prev.Line)
		}
		byName[k.Name] = k
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	return keys, nil
}

func parseKeyLine(line string) (Key, error) {
	f := strings.Fields(line)
	if len(f) < 3 || len(f) > 4 {
		return Key{}, errors.New("want NAME ROLES SECRET [hosts=PATTERNS]")
	}
	if fe := checkText(f[0], "name"); fe != nil {
		return Key{}, fmt.Errorf("name %q: %s", f[0], fe.Msg)
	}
	roles, err := ParseRoles(f[1])
	if err != nil {
		return Key{}, err
	}
	id := Identity{Name: f[0], Roles: roles}
	if len(f) == 4 {
		list, ok := strings.CutPrefix(f[3], "hosts=")
		if !ok || list == "" {
			return Key{}, fmt.Errorf("the fourth field must be hosts=PATTERNS, not %q", f[3])
		}
		for _, p := range strings.Split(list, ",") {
			if _, err := path.Match(p, ""); err != nil || p == "" {
				return Key{}, fmt.Errorf("host pattern %q is not a valid glob", p)
			}
			id.Hosts = append(id.Hosts, p)
		}
	}
	if h, ok := strings.CutPrefix(f[2], "sha256:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != sha256.Size {
			return Key{}, errors.New("sha256: must be followed by 64 hex digits")
		}
		k := Key{Identity: id}
		copy(k.Hash[:], b)
		return k, nil
	}
	return NewKey(id, f[2]), nil
}

// keyring is the set of keys in force, swapped whole by SetKeys.
type keyring struct {
	byHash map[[sha256.Size]byte]*Identity
}

// SetKeys replaces the API keys the registry accepts (Options.Keys; the
// key of Options.APIKey stays), for example when a keys file is reloaded.
// Requests in flight finish with the keys they started with.
func (r *Registry) SetKeys(keys []Key) error {
	kr := &keyring{byHash: make(map[[sha256.Size]byte]*Identity)}
	add := func(k Key) error {
		if old := kr.byHash[k.Hash]; old != nil && old.Name != k.Name {
			return fmt.Errorf("registry: one key is given to both %q and %q", old.Name, k.Name)
		}
		id := k.Identity
		kr.byHash[k.Hash] = &id
		return nil
	}
	if r.opts.APIKey != "" {
		if err := add(NewKey(Identity{Name: APIKeyIdentity, Roles: RoleAgent | RoleAdmin}, r.opts.APIKey)); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if k.Name == "" || k.Roles == 0 {
			return fmt.Errorf("registry: a key needs a name and a role")
		}
		if err := add(k); err != nil {
			return err
		}
	}
	r.keys.Store(kr)
	return nil
}

// authenticated is the identity of a request, and why there is none.
type authenticated struct {
	id     *Identity // nil: none
	key    string    // the key presented, if any (never logged)
	badKey bool      // a key was presented and is not known
}

// presentedKey is the key a request carries: X-API-Key (v1), or
// Authorization: Bearer.
func presentedKey(req *http.Request) string {
	if k := req.Header.Get("X-API-Key"); k != "" {
		return k
	}
	if a := req.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "Bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}

// authenticate finds the identity of req: its key's, which decides when
// both a key and a certificate come (the certificate was verified by TLS),
// else its verified client certificate's.
func (r *Registry) authenticate(req *http.Request) authenticated {
	a := authenticated{key: presentedKey(req)}
	if a.key != "" {
		// Keys are known by their SHA-256 only: the lookup compares
		// hashes, never the secret, so its time says nothing of a key.
		h := sha256.Sum256([]byte(a.key))
		if id := r.keys.Load().byHash[h]; id != nil {
			a.id = id
			return a
		}
		a.badKey = true
		return a
	}
	if r.opts.ClientCertificates && req.TLS != nil && len(req.TLS.VerifiedChains) > 0 && len(req.TLS.VerifiedChains[0]) > 0 {
		a.id = r.certIdentity(req.TLS.VerifiedChains[0][0])
	}
	return a
}

// certIdentity is the identity of a verified client certificate: named by
// its first DNS name (else its common name), with the roles agent and
// read; bound to its names' hosts with Options.BindCertToHost.
func (r *Registry) certIdentity(c *x509.Certificate) *Identity {
	names := c.DNSNames
	if len(names) == 0 && c.Subject.CommonName != "" {
		names = []string{c.Subject.CommonName}
	}
	if len(names) == 0 {
		return nil
	}
	id := &Identity{Name: names[0], Roles: RoleAgent | RoleRead, Certificate: true}
	if r.opts.BindCertToHost {
		id.Hosts, id.dnsNames = []string{}, true
		for _, n := range names {
			n = strings.ToLower(n)
			id.Hosts = append(id.Hosts, n)
			// Agents send their short host name: web-1 for web-1.example.
			// A wildcard's first label names no host.
			if first, _, ok := strings.Cut(n, "."); ok && !strings.ContainsAny(first, "*?[\\") {
				id.Hosts = append(id.Hosts, first)
			}
		}
	}
	return id
}

// identityRequired reports whether writes need an identity: keys are
// configured, or client certificates are.
func (r *Registry) identityRequired() bool {
	return len(r.keys.Load().byHash) > 0 || r.opts.ClientCertificates
}

// ownerFor is the owner of an id that ctx registers first: its identity's
// name, or "" for an embedder's call.
func ownerFor(ctx context.Context) string {
	if id := identityOf(ctx); id != nil {
		return id.Name
	}
	return ""
}

// guardFor is the owner a write that ctx makes requires of a stored record
// (Cluster's guard): its identity's name, or "" (none) for an admin or an
// embedder's call.
func guardFor(ctx context.Context) string {
	if id := identityOf(ctx); id != nil && !id.Roles.Has(RoleAdmin) {
		return id.Name
	}
	return ""
}

// mayActOn reports whether id may write to an instance owned by owner: an
// embedder's own call (no identity), an admin, or the owner. Records stored
// before ownership existed (owner "") belong to APIKeyIdentity.
func mayActOn(id *Identity, owner string) bool {
	if owner == "" {
		owner = APIKeyIdentity
	}
	return id == nil || id.Roles.Has(RoleAdmin) || id.Name == owner
}

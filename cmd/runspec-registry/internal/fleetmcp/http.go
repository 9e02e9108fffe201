// http.go serves the MCP server over streamable HTTP at /mcp, behind two
// checks: the Origin of a browser's request must be the server's own or
// a loopback one (the MCP transport's rule against DNS rebinding), and
// every request must carry the bearer token, compared in constant time.

package fleetmcp

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Path is where Handler serves MCP.
const Path = "/mcp"

// HTTPOptions configure Handler.
type HTTPOptions struct {
	// Token is the bearer token every request must carry
	// (Authorization: Bearer TOKEN). It must not be empty.
	Token string
	// SessionTimeout closes sessions idle for this long. If zero,
	// defaults to 30 minutes.
	SessionTimeout time.Duration
}

// Handler returns the HTTP handler of the server: streamable HTTP at
// Path, 404 elsewhere.
func (s *Server) Handler(o HTTPOptions) (http.Handler, error) {
	if o.Token == "" {
		return nil, fmt.Errorf("%w: HTTP needs a bearer token", ErrOptions)
	}
	if o.SessionTimeout == 0 {
		o.SessionTimeout = 30 * time.Minute
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s.mcp },
		&mcp.StreamableHTTPOptions{Logger: s.log, SessionTimeout: o.SessionTimeout})
	want := sha256.Sum256([]byte(o.Token))
	mux := http.NewServeMux()
	mux.Handle(Path, checkOrigin(s.log, checkToken(s.log, want, h)))
	return mux, nil
}

// checkToken answers 401 to a request without the token. The hashes are
// compared, in constant time, so that neither the token's bytes nor its
// length show in the time taken.
func checkToken(log *slog.Logger, want [32]byte, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := bearer(r.Header.Get("Authorization"))
		sum := sha256.Sum256([]byte(got))
		if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			log.Warn("mcp request refused: missing or wrong bearer token", "remote", r.RemoteAddr, "token_given", ok)
			w.Header().Set("WWW-Authenticate", `Bearer realm="runspec-registry mcp"`)
			http.Error(w, ErrUnauthorized.Error(), http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer reads the token of an Authorization header.
func bearer(h string) (string, bool) {
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// checkOrigin answers 403 to a request whose Origin header is neither the
// server's own (the Host it was asked for) nor a loopback origin. A
// request without Origin is not from a browser page, and passes.
func checkOrigin(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !allowedOrigin(o, r.Host) {
			log.Warn("mcp request refused: origin not allowed", "remote", r.RemoteAddr, "origin", o)
			http.Error(w, ErrOrigin.Error(), http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// allowedOrigin reports whether a browser origin may call the server
// reached at host.
func allowedOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false // "null" (a sandboxed page, a file) included
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	name := u.Hostname()
	if strings.EqualFold(name, "localhost") {
		return true
	}
	ip := net.ParseIP(name)
	return ip != nil && ip.IsLoopback()
}

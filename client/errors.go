// errors.go defines the errors of the client: sentinels to test with
// errors.Is, and APIError, the registry's answer to a failed request.

package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/runspec/registry"
)

// Errors that APIError values match with errors.Is. ErrNotFound and
// ErrInvalid are the root package's, so that code written against an
// embedded registry and code written against this client test the same
// values.
var (
	// ErrNotFound matches a 404: an unknown instance or tool.
	ErrNotFound = registry.ErrNotFound
	// ErrInvalid matches a 422, 413 or 400: a request that breaks the
	// protocol's rules. NewAgent's and SetTools' checks match it too.
	ErrInvalid = registry.ErrInvalid
	// ErrForbidden matches a 403: a wrong or missing API key.
	ErrForbidden = errors.New("registry: invalid or missing API key")
	// ErrRateLimited matches a 429: the registry's rate limit was hit.
	// APIError.RetryAfter says when to try again.
	ErrRateLimited = errors.New("registry: rate limited")
)

// An APIError is an answer of the registry with an error status. Requests
// that got no answer (the registry is down, TLS failed, the context ended)
// return the transport's error instead, wrapped.
type APIError struct {
	// Request is the method and path of the request, e.g. "GET /tools/deploy".
	Request string
	// StatusCode is the HTTP status of the answer.
	StatusCode int
	// Detail is the error text of the answer's {"detail": ...} body, or a
	// summary of Fields, or the status text if the body had neither.
	Detail string
	// Fields lists each bad field of a 422 answer.
	Fields []registry.FieldError
	// RetryAfter is the wait the Retry-After header asked for (429), or zero.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("registry: %s: %d %s", e.Request, e.StatusCode, e.Detail)
}

// Is makes errors.Is match the sentinel of the status code.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrInvalid:
		return e.StatusCode == http.StatusUnprocessableEntity ||
			e.StatusCode == http.StatusRequestEntityTooLarge ||
			e.StatusCode == http.StatusBadRequest
	case ErrForbidden:
		return e.StatusCode == http.StatusForbidden
	case ErrRateLimited:
		return e.StatusCode == http.StatusTooManyRequests
	}
	return false
}

// newAPIError reads an error answer: {"detail": "text"} or
// {"detail": [{"loc","msg","type"}, ...]}; anything else (a proxy's HTML
// page) leaves the status text.
func newAPIError(request string, r *response) *APIError {
	e := &APIError{Request: request, StatusCode: r.status}
	var body struct {
		Detail json.RawMessage `json:"detail"`
	}
	if json.Unmarshal(r.body, &body) == nil && len(body.Detail) > 0 {
		if json.Unmarshal(body.Detail, &e.Detail) != nil {
			if json.Unmarshal(body.Detail, &e.Fields) == nil && len(e.Fields) > 0 {
				parts := make([]string, len(e.Fields))
				for i, f := range e.Fields {
					parts[i] = strings.Join(f.Loc, ".") + ": " + f.Msg
				}
				e.Detail = strings.Join(parts, "; ")
			}
		}
	}
	if e.Detail == "" {
		e.Detail = http.StatusText(r.status)
	}
	if s := r.header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			e.RetryAfter = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			e.RetryAfter = max(time.Until(t), 0)
		}
	}
	return e
}

// raw.go reads an answer as the registry sent it, for programs that pass
// the registry's JSON on unchanged (a command's --output json) or read an
// answer that the Client has no method for (an export).

package client

import (
	"context"
	"net/http"
	"net/url"
)

// Get reads path, relative to the base URL and escaped as a URL path
// ("/tools/" + url.PathEscape(name)), with the query q, and returns the
// answer's body byte for byte. A status other than 2xx is an *APIError,
// as for the other reads (ErrNotFound for a 404). Filter.Values gives the
// query of the Client's own reads.
func (c *Client) Get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	r, err := c.call(ctx, &call{method: http.MethodGet, path: path, query: q})
	if err != nil {
		return nil, err
	}
	return r.body, nil
}

// Values returns the query that the Client's reads send for f: active
// (always, since the wire default differs per endpoint), detail, and host,
// name and label when set.
func (f Filter) Values() url.Values { return f.values() }

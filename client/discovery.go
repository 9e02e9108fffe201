// discovery.go holds the reads: which instances, tools and hosts the
// registry knows, one answer at a time (watch.go follows them).

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"

	"github.com/runspec/registry"
)

// Filter narrows a read. The zero Filter selects the active instances, and
// the tools and hosts they offer: what an orchestrator can use now.
type Filter struct {
	// IncludeInactive also selects inactive instances (deregistered or
	// expired records the registry keeps as history), and what they offer.
	IncludeInactive bool
	// Host keeps only the instances on this host (Instances, Tools, Tool).
	Host string
	// Name keeps only the instances with this agent name (Instances, Hosts).
	Name string
	// Labels keeps only the instances that carry all these labels. A map
	// holds one value per key; the registry ANDs repeated label=
	// parameters, so a query that gives one key two values (sent with Get)
	// selects nothing.
	Labels map[string]string
}

// values encodes f. The active filter is always sent, because the wire
// default differs per endpoint, and detail, which makes host entries name
// their instance and liveness (a registry that predates it ignores it).
func (f Filter) values() url.Values {
	v := url.Values{"active": {"true"}, "detail": {"true"}}
	if f.IncludeInactive {
		v.Set("active", "false")
	}
	if f.Host != "" {
		v.Set("host", f.Host)
	}
	if f.Name != "" {
		v.Set("name", f.Name)
	}
	for _, k := range slices.Sorted(maps.Keys(f.Labels)) {
		v.Add("label", k+"="+f.Labels[k])
	}
	return v
}

// get reads path into out.
func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	k := &call{method: http.MethodGet, path: path, query: q}
	r, err := c.call(ctx, k)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		return fmt.Errorf("registry: %s: decoding the answer: %w", k, err)
	}
	return nil
}

// Instances returns the instance records that f selects, in registration
// order.
func (c *Client) Instances(ctx context.Context, f Filter) ([]registry.Instance, error) {
	var out []registry.Instance
	return out, c.get(ctx, "/instances", f.values(), &out)
}

// Instance returns the record of the instance id, active or not, or an
// error matching ErrNotFound.
func (c *Client) Instance(ctx context.Context, id string) (registry.Instance, error) {
	var out registry.Instance
	return out, c.get(ctx, "/instances/"+url.PathEscape(id), url.Values{"detail": {"true"}}, &out)
}

// Tools returns the tools offered by the instances that f selects, grouped
// by name, in name order.
func (c *Client) Tools(ctx context.Context, f Filter) ([]registry.Tool, error) {
	var out []registry.Tool
	return out, c.get(ctx, "/tools", f.values(), &out)
}

// Tool returns the tool name as the instances that f selects offer it (one
// Hosts entry per instance), or an error matching ErrNotFound if none
// does.
func (c *Client) Tool(ctx context.Context, name string, f Filter) (registry.Tool, error) {
	var out registry.Tool
	return out, c.get(ctx, toolPath(name), f.values(), &out)
}

// Hosts returns one entry per (host, agent name) of the instances that f
// selects, by host then name.
func (c *Client) Hosts(ctx context.Context, f Filter) ([]registry.Host, error) {
	var out []registry.Host
	return out, c.get(ctx, "/hosts", f.values(), &out)
}

// Health checks that the registry answers GET /health.
func (c *Client) Health(ctx context.Context) error {
	_, err := c.call(ctx, &call{method: http.MethodGet, path: "/health"})
	return err
}

func toolPath(name string) string { return "/tools/" + url.PathEscape(name) }

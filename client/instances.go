// instances.go holds the writes an agent makes: register, heartbeat, post
// tools, deregister. Agent (agent.go) drives them; they are exported for
// programs that run their own loop.

package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"

	"github.com/runspec/registry"
)

// Register creates or replaces the record of reg.ID: active, with no tool
// list until UpdateTools. A non-zero reg.HeartbeatInterval is sent as
// heartbeat_interval, so that the registry expects heartbeats at that
// period.
func (c *Client) Register(ctx context.Context, reg registry.Registration) error {
	body := struct {
		ID       string            `json:"instance_id"`
		Name     string            `json:"name"`
		Version  string            `json:"version"`
		Host     string            `json:"host"`
		Interval *float64          `json:"heartbeat_interval,omitempty"`
		Labels   map[string]string `json:"labels,omitempty"`
	}{ID: reg.ID, Name: reg.Name, Version: reg.Version, Host: reg.Host, Labels: reg.Labels}
	if reg.HeartbeatInterval > 0 {
		secs := reg.HeartbeatInterval.Seconds()
		body.Interval = &secs
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("registry: register: %w", err)
	}
	_, err = c.call(ctx, &call{method: http.MethodPost, path: "/instances", body: b})
	return err
}

// Heartbeat tells the registry that the instance id is alive. The answer is
// registry.Refresh when the registry wants the tool list again (it does not
// know the instance, or no list was posted since it registered): post it
// with UpdateTools. system, if not nil, must be a JSON object; the registry
// shows it in the instance record.
func (c *Client) Heartbeat(ctx context.Context, id string, system json.RawMessage) (registry.HeartbeatStatus, error) {
	b := []byte("{}") // not an empty body: the reference registry refuses that
	if system != nil {
		var err error
		if b, err = json.Marshal(struct {
			System json.RawMessage `json:"system"`
		}{system}); err != nil {
			return "", fmt.Errorf("registry: heartbeat: system: %w", err)
		}
	}
	k := &call{method: http.MethodPost, path: instancePath(id) + "/heartbeat", body: b}
	r, err := c.call(ctx, k)
	if err != nil {
		return "", err
	}
	var ans struct {
		Status registry.HeartbeatStatus `json:"status"`
	}
	if err := json.Unmarshal(r.body, &ans); err != nil {
		return "", fmt.Errorf("registry: %s: decoding the answer: %w", k, err)
	}
	return ans.Status, nil
}

// UpdateTools replaces the tool list of the instance id. Each tool is a
// JSON object (an MCP tool schema with x- execution fields) with a unique
// non-empty string name. An unknown id is an error matching ErrNotFound:
// register again.
func (c *Client) UpdateTools(ctx context.Context, id string, tools []json.RawMessage) error {
	if tools == nil {
		tools = []json.RawMessage{}
	}
	b, err := json.Marshal(struct {
		Tools []json.RawMessage `json:"tools"`
	}{tools})
	if err != nil {
		return fmt.Errorf("registry: tools: %w", err)
	}
	_, err = c.call(ctx, &call{method: http.MethodPost, path: instancePath(id) + "/tools", body: b})
	return err
}

// Deregister marks the instance id inactive; the registry keeps its record
// as history. An unknown id is not an error.
func (c *Client) Deregister(ctx context.Context, id string) error {
	_, err := c.call(ctx, &call{method: http.MethodDelete, path: instancePath(id)})
	return err
}

func instancePath(id string) string { return "/instances/" + url.PathEscape(id) }

// fleet.go generates the simulated fleet: agents, their hosts and their tool lists.

package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
)

// Tool is one MCP-style tool as an agent posts it: the schema part (name,
// description, inputSchema) is the same on every host offering the tool, the
// x- execution fields are per host.
type Tool struct {
	Name         string          `json:"name"`
	Description  string          `json:"description"`
	InputSchema  json.RawMessage `json:"inputSchema"`
	Command      string          `json:"x-command"`
	RunAs        string          `json:"x-run-as"`
	BecomeMethod string          `json:"x-become-method"`
}

// Agent is one simulated agent process; each runs on its own host.
type Agent struct {
	InstanceID string
	Name       string
	Version    string
	Host       string
	HostIndex  int // 1-based, the number in Host
	Tools      []Tool
}

// Fleet is the whole simulated population.
type Fleet struct {
	Agents    []Agent
	ToolNames []string // every distinct tool name, each offered by at least one agent
}

// agentPackages is how many distinct agent names ("agent-pkg-<k>") the fleet uses.
const agentPackages = 10

// NewFleet builds agents agents with tools tools each, spread over
// ceil(agents*tools/share) tool names so that each name is offered by share
// agents (exactly share when share divides agents*tools, at most share
// otherwise). When share > agents that is impossible: there are then exactly
// tools names and every agent offers all of them. The same seed gives the same
// fleet, instance ids included, so re-running against one registry replaces
// the previous run's records instead of adding new ones.
func NewFleet(agents, tools, share int, seed uint64) (*Fleet, error) {
	if agents < 1 || tools < 1 || share < 1 {
		return nil, errors.New("agents, tools and share must all be at least 1")
	}
	slots := agents * tools
	names := (slots + share - 1) / share
	// Each agent needs tools distinct names.
	names = max(names, tools)

	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))

	// Shuffle which name number lands in which slot window, so that the names
	// an agent offers are not simply consecutive.
	perm := rng.Perm(names)
	schemas := make([]json.RawMessage, names)
	toolNames := make([]string, names)
	for i := range names {
		toolNames[i] = toolName(i)
		schemas[i] = inputSchema(toolNames[i])
	}

	f := &Fleet{Agents: make([]Agent, agents), ToolNames: toolNames}
	for a := range agents {
		hostIndex := a + 1
		ag := Agent{
			InstanceID: uuid4(rng),
			Name:       fmt.Sprintf("agent-pkg-%d", a%agentPackages),
			Version:    "1",
			Host:       fmt.Sprintf("host-%05d", hostIndex),
			HostIndex:  hostIndex,
			Tools:      make([]Tool, tools),
		}
		// Agent a fills slots a*tools .. a*tools+tools-1 of a round robin over
		// the names: tools consecutive slots modulo names >= tools are distinct
		// names, and every name gets floor or ceil(slots/names) slots.
		for j := range tools {
			n := perm[(a*tools+j)%names]
			name := toolNames[n]
			ag.Tools[j] = Tool{
				Name:         name,
				Description:  toolDescription(name),
				InputSchema:  schemas[n],
				Command:      "/usr/local/bin/" + name,
				RunAs:        fmt.Sprintf("svc%d", hostIndex%7),
				BecomeMethod: "sudo",
			}
		}
		f.Agents[a] = ag
	}
	return f, nil
}

func toolName(i int) string { return fmt.Sprintf("tool-%04d", i) }

func toolDescription(name string) string {
	return name + ": checks the target service, gathers its status and prints a short report."
}

func inputSchema(name string) json.RawMessage {
	return json.RawMessage(`{"type":"object","properties":{"target":{"type":"string","description":"Host, service or path that ` +
		name + ` acts on"},"count":{"type":"integer"}},"required":["target"]}`)
}

// uuid4 returns a random UUID-4-shaped id drawn from rng (so it is reproducible).
func uuid4(rng *rand.Rand) string {
	var b [16]byte
	for i := 0; i < 16; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// registerBody is the POST /instances body of an agent.
func (a *Agent) registerBody() []byte {
	b, err := json.Marshal(struct {
		InstanceID string `json:"instance_id"`
		Name       string `json:"name"`
		Version    string `json:"version"`
		Host       string `json:"host"`
	}{a.InstanceID, a.Name, a.Version, a.Host})
	if err != nil {
		panic(err) // only strings: cannot fail
	}
	return b
}

// toolsBody is the POST /instances/{id}/tools body of an agent.
func (a *Agent) toolsBody() []byte {
	b, err := json.Marshal(struct {
		Tools []Tool `json:"tools"`
	}{a.Tools})
	if err != nil {
		panic(err) // fixed shapes and valid raw JSON: cannot fail
	}
	return b
}

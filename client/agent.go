// agent.go defines Agent, the loop of a runspec agent's registry side:
// register, post tools, heartbeat, re-post on refresh, re-register when the
// registry forgot the instance, back off while it is down, deregister at
// the end.

package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/runspec/registry"
)

// Defaults used by NewAgent for zero AgentConfig fields.
const (
	DefaultAgentVersion      = "1"
	DefaultHeartbeatInterval = registry.DefaultHeartbeatInterval
	DefaultDeregisterTimeout = 5 * time.Second
)

// AgentConfig describes an agent to NewAgent.
type AgentConfig struct {
	// InstanceID identifies this process in the registry. If empty,
	// defaults to a random UUID (version 4), as the runspec agent does.
	InstanceID string

	// Name is the agent or group name (a project or venv name). Required.
	Name string

	// Version is the agent's spec version. If empty, defaults to "1".
	Version string

	// Host is the name of the host the agent runs on. If empty, defaults to
	// os.Hostname().
	Host string

	// Tools are the tool objects to post: MCP tool schemas with the x-
	// execution fields (x-command, x-run-as, ...). Each must be a JSON object
	// with a non-empty string "name", unique in the list. If nil, an empty
	// list is posted.
	Tools []json.RawMessage

	// Labels are sent with the registration, for choosing hosts
	// (?label=k=v); a registry that predates labels ignores them. At most
	// registry.MaxLabels, keys and values under the rules of a host name.
	Labels map[string]string

	// HeartbeatInterval is the period of heartbeats. It is sent to the
	// registry, which marks the instance inactive after three missed ones.
	// Each wait is jittered by ±10%. If zero, defaults to 30s.
	HeartbeatInterval time.Duration

	// System, if not nil, is called before each heartbeat; a non-nil result
	// (a JSON object such as {"pid":..,"uptime":..}) is sent with it.
	System func() json.RawMessage

	// DeregisterTimeout bounds the deregistration when Run ends.
	// If zero, defaults to 5s.
	DeregisterTimeout time.Duration

	// OnEvent, if not nil, is called after every request of the agent
	// except an acknowledged heartbeat that leaves the state unchanged:
	// registrations, tool posts, refreshes, failures, state changes, the
	// deregistration. It is called from Run's goroutine, one call at a
	// time, and must not block for long.
	OnEvent func(AgentEvent)
}

// AgentState is where an agent stands with the registry.
type AgentState int32

// The states of an Agent.
const (
	// StateIdle: Run has not started.
	StateIdle AgentState = iota
	// StateRegistering: registering and posting tools, at the start or
	// because the registry forgot the instance (a restart without a store,
	// or expiry).
	StateRegistering
	// StateActive: registered with its tools, heartbeating.
	StateActive
	// StateRetrying: the last request failed (the registry is down or
	// answered an error); the agent retries with back-off.
	StateRetrying
	// StateStopped: Run has returned.
	StateStopped
)

var stateNames = [...]string{"idle", "registering", "active", "retrying", "stopped"}

func (s AgentState) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("AgentState(%d)", int32(s))
}

// Operations of an agent, as AgentEvent.Op names them.
const (
	OpRegister   = "register"
	OpTools      = "tools"
	OpHeartbeat  = "heartbeat"
	OpDeregister = "deregister"
)

// An AgentEvent reports a request of an Agent and the state it left.
type AgentEvent struct {
	// Op is the request: OpRegister, OpTools, OpHeartbeat or OpDeregister.
	Op string
	// Err is the request's error, or nil if it succeeded.
	Err error
	// State is the agent's state after the request.
	State AgentState
	// Retry is the back-off before the next attempt, after a failure.
	Retry time.Duration
}

// An Agent keeps one instance registered with its tools: create it with
// NewAgent and call Run. Its methods are safe for concurrent use.
type Agent struct {
	c        *Client
	cfg      AgentConfig
	state    atomic.Int32
	toolsMu  sync.Mutex
	tools    []json.RawMessage
	newTools chan struct{} // 1-buffered: SetTools was called

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	done    chan struct{}
	runErr  error
}

// NewAgent returns an Agent for cfg, talking to the registry through c. It
// checks cfg as the registry would and fills defaults; it starts nothing.
func NewAgent(c *Client, cfg AgentConfig) (*Agent, error) {
	if c == nil {
		return nil, errors.New("client: NewAgent: nil Client")
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = newUUID()
	}
	if cfg.Version == "" {
		cfg.Version = DefaultAgentVersion
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("client: NewAgent: host name: %w", err)
		}
		cfg.Host = h
	}
	if cfg.HeartbeatInterval == 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.DeregisterTimeout <= 0 {
		cfg.DeregisterTimeout = DefaultDeregisterTimeout
	}
	// The registry's own rules, so that NewAgent refuses what it would.
	reg := registry.Registration{ID: cfg.InstanceID, Name: cfg.Name, Version: cfg.Version, Host: cfg.Host,
		HeartbeatInterval: cfg.HeartbeatInterval, Labels: cfg.Labels}
	if err := reg.Validate(); err != nil {
		return nil, fmt.Errorf("client: NewAgent: %w", err)
	}
	tools, err := checkTools(cfg.Tools)
	if err != nil {
		return nil, fmt.Errorf("client: NewAgent: %w", err)
	}
	a := &Agent{c: c, cfg: cfg, tools: tools, newTools: make(chan struct{}, 1)}
	return a, nil
}

// checkTools checks a tool list with the registry's rules (but its
// --max-tools, which only the registry knows), and copies it.
func checkTools(tools []json.RawMessage) ([]json.RawMessage, error) {
	if tools == nil {
		tools = []json.RawMessage{} // nil posts an empty list
	}
	if err := registry.ValidateTools(tools, -1); err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(tools))
	for i, t := range tools {
		out[i] = bytes.Clone(t)
	}
	return out, nil
}

// newUUID returns a random UUID, version 4.
func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ID returns the agent's instance id.
func (a *Agent) ID() string { return a.cfg.InstanceID }

// Config returns the agent's configuration, with defaults filled in.
func (a *Agent) Config() AgentConfig { return a.cfg }

// State returns the agent's current state.
func (a *Agent) State() AgentState { return AgentState(a.state.Load()) }

// SetTools replaces the agent's tool list; a running agent posts it at
// once (or when the registry is back). The list is checked as NewAgent
// checks AgentConfig.Tools.
func (a *Agent) SetTools(tools []json.RawMessage) error {
	tools, err := checkTools(tools)
	if err != nil {
		return fmt.Errorf("client: SetTools: %w", err)
	}
	a.toolsMu.Lock()
	a.tools = tools
	a.toolsMu.Unlock()
	select {
	case a.newTools <- struct{}{}:
	default:
	}
	return nil
}

func (a *Agent) currentTools() []json.RawMessage {
	a.toolsMu.Lock()
	defer a.toolsMu.Unlock()
	return a.tools
}

// Run registers the agent, posts its tools and heartbeats until ctx ends or
// Close is called, then deregisters (within DeregisterTimeout) and returns
// the deregistration's error, or nil. Failures in between never end it:
// they are reported to OnEvent and the Logger, and retried with jittered
// exponential back-off. When a heartbeat answers refresh the tools are
// posted again; when the registry does not know the instance any more (the
// tool post answers 404), the agent registers again. Run may be called once.
func (a *Agent) Run(ctx context.Context) error {
	a.mu.Lock()
	if a.started {
		a.mu.Unlock()
		return errors.New("client: Agent.Run called twice")
	}
	a.started = true
	if a.closed {
		a.mu.Unlock()
		a.state.Store(int32(StateStopped))
		return nil
	}
	ctx, a.cancel = context.WithCancel(ctx)
	a.done = make(chan struct{})
	a.mu.Unlock()

	attempted := a.loop(ctx)
	var err error
	if attempted {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.cfg.DeregisterTimeout)
		err = a.c.Deregister(dctx, a.cfg.InstanceID)
		cancel()
	}
	a.setState(StateStopped)
	if attempted {
		a.report(AgentEvent{Op: OpDeregister, Err: err, State: StateStopped})
	}
	a.mu.Lock()
	a.runErr = err
	a.cancel()
	close(a.done)
	a.mu.Unlock()
	return err
}

// Close stops Run, waits for it to deregister and returns Run's result. It
// returns nil at once if Run was not started (and a later Run does
// nothing).
func (a *Agent) Close() error {
	a.mu.Lock()
	a.closed = true
	cancel, done := a.cancel, a.done
	a.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	<-done
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runErr
}

// loop runs until ctx ends and reports whether a registration was
// attempted (so that Run deregisters).
func (a *Agent) loop(ctx context.Context) (attempted bool) {
	reg := registry.Registration{ID: a.cfg.InstanceID, Name: a.cfg.Name, Version: a.cfg.Version,
		Host: a.cfg.Host, HeartbeatInterval: a.cfg.HeartbeatInterval, Labels: a.cfg.Labels}
	var (
		registered, posted bool
		fails              int // consecutive failed requests, for back-off
		forgotten          int // 404s to tool posts since the agent was last active, for back-off
		delay              time.Duration
		backingOff         bool
	)
	a.setState(StateRegistering)
	for {
		if !a.pause(ctx, delay, !backingOff) {
			return attempted
		}
		select {
		case <-a.newTools:
			posted = false
		default:
		}
		var (
			op  string
			err error
		)
		switch {
		case !registered:
			op, attempted = OpRegister, true
			if err = a.c.Register(ctx, reg); err == nil {
				registered, posted = true, false
				a.c.log.Info("registered with the registry", "instance_id", reg.ID, "name", reg.Name, "host", reg.Host)
			}
		case !posted:
			op = OpTools
			tools := a.currentTools()
			err = a.c.UpdateTools(ctx, reg.ID, tools)
			if errors.Is(err, ErrNotFound) {
				// The registry forgot us (a restart without a store, or the
				// record expired and was deleted): register again, at once
				// the first time, with back-off if it keeps happening.
				a.c.log.Info("the registry does not know the instance: registering again", "instance_id", reg.ID)
				registered, fails = false, 0
				delay, backingOff = 0, false
				if forgotten > 0 {
					delay, backingOff = a.c.backoff(forgotten-1), true
				}
				forgotten++
				a.setState(StateRegistering)
				a.report(AgentEvent{Op: op, Err: err, State: StateRegistering, Retry: delay})
				continue
			}
			if err == nil {
				posted = true
				a.c.log.Debug("posted tools", "instance_id", reg.ID, "count", len(tools))
			}
		default:
			op = OpHeartbeat
			var system json.RawMessage
			if a.cfg.System != nil {
				system = a.cfg.System()
			}
			var st registry.HeartbeatStatus
			if st, err = a.c.Heartbeat(ctx, reg.ID, system); err == nil && st == registry.Refresh {
				a.c.log.Info("the registry asked for the tools again", "instance_id", reg.ID)
				posted = false
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return attempted
			}
			delay, backingOff = a.c.backoff(fails), true
			fails++
			var ae *APIError
			if errors.As(err, &ae) && ae.RetryAfter > delay {
				delay = ae.RetryAfter + time.Duration(a.c.opts.Rand()*float64(a.c.opts.MinBackoff))
			}
			a.c.log.Warn("registry request failed", "op", op, "instance_id", reg.ID, "err", err, "retry", delay)
			a.setState(StateRetrying)
			a.report(AgentEvent{Op: op, Err: err, State: StateRetrying, Retry: delay})
			continue
		}
		fails = 0
		before := a.State()
		switch {
		case registered && posted:
			forgotten = 0
			delay, backingOff = a.interval(), false
			a.setState(StateActive)
		case op == OpHeartbeat: // refresh: post at once
			delay, backingOff = 0, false
		default: // registered, tools to post next
			delay, backingOff = 0, false
			a.setState(StateRegistering)
		}
		if op != OpHeartbeat || before != a.State() || !posted {
			a.report(AgentEvent{Op: op, State: a.State()})
		}
	}
}

// interval returns the heartbeat interval, jittered by ±10%.
func (a *Agent) interval() time.Duration {
	return time.Duration(float64(a.cfg.HeartbeatInterval) * (0.9 + 0.2*a.c.opts.Rand()))
}

// pause waits for d, until ctx ends, or (if toolsWake) until SetTools is
// called. It reports whether ctx is still live.
func (a *Agent) pause(ctx context.Context, d time.Duration, toolsWake bool) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	var wake chan struct{}
	if toolsWake {
		wake = a.newTools
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	case <-wake:
		// Leave the signal for the loop, which re-posts the tools.
		select {
		case a.newTools <- struct{}{}:
		default:
		}
	}
	return true
}

func (a *Agent) setState(s AgentState) {
	if old := AgentState(a.state.Swap(int32(s))); old != s {
		a.c.log.Info("agent state", "instance_id", a.cfg.InstanceID, "from", old, "to", s)
	}
}

func (a *Agent) report(e AgentEvent) {
	if a.cfg.OnEvent != nil {
		a.cfg.OnEvent(e)
	}
}

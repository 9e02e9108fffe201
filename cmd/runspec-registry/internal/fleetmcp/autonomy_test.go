// autonomy_test.go checks x-autonomy end to end, over both ways MCP
// elicits (input requests of the 2026-07-28 protocol, elicitation/create
// of older ones): manual tools are neither listed nor called, confirm
// tools run only after an explicit accept of the exact command, and
// never for a client that cannot ask; supervised results say so; the
// strictest level of a tool's hosts and the cap apply; a level made
// stricter since the listing applies at the call; an approval cannot be
// forged or used twice.

package fleetmcp_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/cmd/runspec-registry/internal/fleetmcp"
)

func answer(action string, content map[string]any) func(*mcp.ElicitParams) *mcp.ElicitResult {
	return func(*mcp.ElicitParams) *mcp.ElicitResult { return &mcp.ElicitResult{Action: action, Content: content} }
}

func TestAutonomy(t *testing.T) {
	accept := answer("accept", map[string]any{"approve": true})
	tests := []struct {
		name        string
		levels      [2]string // x-autonomy on web-1 and web-2; "" is absent
		max         fleetmcp.Autonomy
		print       bool
		elicit      func(*mcp.ElicitParams) *mcp.ElicitResult
		wantListed  bool
		wantRun     bool
		wantAsked   bool
		wantText    []string
		wantNotText []string
	}{
		{name: "manual", levels: [2]string{"manual", "manual"}, elicit: accept},
		{name: "one host manual", levels: [2]string{"autonomous", "manual"}, elicit: accept},
		{name: "autonomous", levels: [2]string{"autonomous", "autonomous"}, wantListed: true, wantRun: true,
			wantText: []string{"ran deploy on web-1"}, wantNotText: []string{"review"}},
		{name: "supervised", levels: [2]string{"supervised", "autonomous"}, wantListed: true, wantRun: true,
			wantText: []string{"ran deploy on web-1", "a person should review this result"}},
		{name: "unspecified is confirm, accepted", elicit: accept, wantListed: true, wantRun: true, wantAsked: true,
			wantText: []string{"ran deploy on web-1"}},
		{name: "confirm, accepted", levels: [2]string{"confirm", "autonomous"}, elicit: accept,
			wantListed: true, wantRun: true, wantAsked: true},
		{name: "confirm, declined", levels: [2]string{"confirm", "confirm"}, elicit: answer("decline", nil),
			wantListed: true, wantAsked: true, wantText: []string{"Not run", "declined"}},
		{name: "confirm, cancelled", levels: [2]string{"confirm", "confirm"}, elicit: answer("cancel", nil),
			wantListed: true, wantAsked: true, wantText: []string{"Not run", "without approving"}},
		{name: "confirm, accepted without the box", levels: [2]string{"confirm", "confirm"},
			elicit: answer("accept", map[string]any{"approve": false}), wantListed: true, wantAsked: true,
			wantText: []string{"Not run", "without ticking"}},
		{name: "confirm, no elicitation", levels: [2]string{"confirm", "confirm"}, wantListed: true,
			wantText: []string{"a person must approve this call"}, wantNotText: []string{"ssh "}},
		{name: "confirm, no elicitation, print commands", levels: [2]string{"confirm", "confirm"}, print: true, wantListed: true,
			wantText: []string{"a person must approve this call", "ssh -o 'BatchMode=yes' -T -- web-1 "}},
		{name: "unknown level is confirm", levels: [2]string{"yolo", "autonomous"}, wantListed: true,
			wantText: []string{"a person must approve this call"}},
		{name: "capped at confirm", levels: [2]string{"autonomous", "autonomous"}, max: fleetmcp.Confirm, elicit: accept,
			wantListed: true, wantRun: true, wantAsked: true},
		{name: "capped at supervised", levels: [2]string{"autonomous", "autonomous"}, max: fleetmcp.Supervised,
			wantListed: true, wantRun: true, wantText: []string{"a person should review this result"}},
		{name: "capped at manual", levels: [2]string{"autonomous", "autonomous"}, max: fleetmcp.Manual},
	}
	for _, protocol := range []string{newProtocol, legacyProtocol} {
		for _, tt := range tests {
			t.Run(protocol+"/"+tt.name, func(t *testing.T) {
				f := newFixture(t, fleetmcp.Options{MaxAutonomy: tt.max, PrintCommands: tt.print})
				for i, host := range []string{"web-1", "web-2"} {
					tl := echo("deploy").with("x-run-as", "deploy")
					if tt.levels[i] != "" {
						tl = tl.with("x-autonomy", tt.levels[i])
					}
					f.agent("a"+host, "ops", host, nil, tl)
				}
				f.sync()
				s := f.connect(clientConfig{protocol: protocol, elicit: tt.elicit})
				if listed := s.listed(t, "deploy") != nil; listed != tt.wantListed {
					t.Fatalf("listed %v, want %v", listed, tt.wantListed)
				}
				res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy",
					Arguments: map[string]any{"runspec_host": "web-1", "message": "hi"}})
				if !tt.wantListed {
					if err == nil {
						t.Fatalf("calling an unlisted tool answered %s, want an error", text(res))
					}
					if runs := f.run.taken(); len(runs) > 0 {
						t.Errorf("an unlisted tool ran: %v", runs)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				runs := f.run.taken()
				if ran := len(runs) > 0; ran != tt.wantRun || res.IsError == tt.wantRun {
					t.Errorf("ran %d times, isError %v, want run %v: %s", len(runs), res.IsError, tt.wantRun, text(res))
				}
				s.mu.Lock()
				asked := s.elicited
				s.mu.Unlock()
				if (len(asked) > 0) != tt.wantAsked {
					t.Errorf("asked %d times, want asked %v", len(asked), tt.wantAsked)
				}
				if len(asked) > 0 {
					for _, w := range []string{"Host: web-1", "Runs as: deploy (through sudo)", "sudo -u deploy /usr/bin/echo --message hi"} {
						if !strings.Contains(asked[0].Message, w) {
							t.Errorf("the approval does not show %q:\n%s", w, asked[0].Message)
						}
					}
				}
				got := text(res)
				for _, w := range tt.wantText {
					if !strings.Contains(got, w) {
						t.Errorf("answer without %q: %s", w, got)
					}
				}
				for _, w := range tt.wantNotText {
					if strings.Contains(got, w) {
						t.Errorf("answer with %q: %s", w, got)
					}
				}
			})
		}
	}
}

// TestStricterAtCall: a level made stricter after the listing (the agent
// posts the same tool as manual) applies to the next call, though the
// listing was not read again.
func TestStricterAtCall(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, echo("deploy").with("x-autonomy", "autonomous"))
	f.sync()
	s := f.connect(clientConfig{})
	if res := s.call(t, "deploy", map[string]any{"message": "hi"}); res.IsError {
		t.Fatalf("autonomous call: %s", text(res))
	}
	f.run.taken()
	f.post("a1", echo("deploy").with("x-autonomy", "manual"))
	res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": "hi"}})
	if err == nil && !res.IsError {
		t.Errorf("a tool made manual ran: %s", text(res))
	}
	if runs := f.run.taken(); len(runs) > 0 {
		t.Errorf("a tool made manual ran %d times", len(runs))
	}
}

// TestForgedApproval: answers that the server did not ask for, or asked
// for another command, or that were used already, run nothing.
func TestForgedApproval(t *testing.T) {
	f := newFixture(t, fleetmcp.Options{})
	f.agent("a1", "ops", "web-1", nil, echo("deploy").with("x-autonomy", "confirm"))
	f.sync()
	accept := mcp.InputResponseMap{"runspec_approval": &mcp.ElicitResult{Action: "accept", Content: map[string]any{"approve": true}}}

	// A client that answers on its own, with no state or a made-up one.
	s := f.connect(clientConfig{protocol: legacyProtocol})
	for _, state := range []string{"", "eyJuIjoieCJ9.c2ln"} {
		res, err := s.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": "hi"},
			InputResponses: accept, RequestState: state})
		if err != nil {
			t.Fatal(err)
		}
		if !res.IsError || !strings.Contains(text(res), "not issued by this server") {
			t.Errorf("state %q: %s", state, text(res))
		}
	}

	// A real state, for another command, then twice for its own.
	var states []string
	c := mcp.NewClient(&mcp.Implementation{Name: "raw", Version: "1"}, &mcp.ClientOptions{
		ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			return nil, errors.New("not used: the test answers itself")
		},
		MultiRoundTrip: &mcp.MultiRoundTripOptions{Disabled: true},
	})
	cs := f.connectClient(c, newProtocol)
	first, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": "hi"}})
	if err != nil {
		t.Fatal(err)
	}
	if !first.NeedsInput() || first.RequestState == "" {
		t.Fatalf("a confirm call did not ask for input: %s", text(first))
	}
	states = append(states, first.RequestState)
	retry := func(msg string) *mcp.CallToolResult {
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "deploy", Arguments: map[string]any{"message": msg},
			InputResponses: accept, RequestState: states[0]})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := retry("other"); !res.IsError || !strings.Contains(text(res), "another command") {
		t.Errorf("an approval of --message hi ran --message other: %s", text(res))
	}
	if res := retry("hi"); res.IsError {
		t.Errorf("the approved retry did not run: %s", text(res))
	}
	if res := retry("hi"); !res.IsError || !strings.Contains(text(res), "used already") {
		t.Errorf("an approval ran twice: %s", text(res))
	}
	if runs := f.run.taken(); len(runs) != 1 {
		t.Errorf("%d runs, want 1", len(runs))
	}
}

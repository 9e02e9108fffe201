// approval.go asks a person to approve a confirm call through MCP
// elicitation (the SDK's multi round-trip requests: an input request in
// the result, which the SDK turns into elicitation/create for clients of
// older protocol versions), and checks the answer: the request state
// that comes back is signed by this process, names the exact command
// that was shown, and is good for one run only.

package fleetmcp

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/runspec/registry/run"
)

// approvalID is the id of the input request that asks for approval, and
// approveField the boolean the person sets in the form.
const (
	approvalID   = "runspec_approval"
	approveField = "approve"
)

// approvalTTL is how long an approval request may be answered.
const approvalTTL = 10 * time.Minute

// Errors of an approval that does not let a call run.
var (
	errStateForged  = errors.New("the approval's request state was not issued by this server")
	errStateExpired = errors.New("the approval request expired")
	errStateUsed    = errors.New("the approval was used already")
	errStateOther   = errors.New("the approval was given for another command")
)

// claim is what a request state says: which command was shown to the
// person, until when the answer counts, and a nonce that makes it good
// once.
type claim struct {
	Nonce   string `json:"n"`
	Tool    string `json:"t"` // the MCP name
	Digest  string `json:"d"` // of the plan: instance, host and ssh command line
	Expires int64  `json:"e"` // Unix seconds
}

// approvals issues and checks request states.
type approvals struct {
	key []byte
	now func() time.Time

	mu   sync.Mutex
	used map[string]int64 // nonce -> expiry, until it expires
}

func newApprovals(now func() time.Time) *approvals {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand)
	return &approvals{key: key, now: now, used: map[string]int64{}}
}

// planDigest names what a plan runs, exactly.
func planDigest(p *run.Plan) string {
	h := sha256.New()
	h.Write([]byte(p.InstanceID))
	for _, w := range p.SSH {
		h.Write([]byte{0})
		h.Write([]byte(w))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

func (a *approvals) mac(payload string) string {
	m := hmac.New(sha256.New, a.key)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// issue returns a signed request state for the plan of the MCP tool name.
func (a *approvals) issue(name string, p *run.Plan) string {
	nonce := make([]byte, 16)
	rand.Read(nonce)
	b, _ := json.Marshal(claim{
		Nonce: base64.RawURLEncoding.EncodeToString(nonce), Tool: name, Digest: planDigest(p),
		Expires: a.now().Add(approvalTTL).Unix(),
	})
	payload := base64.RawURLEncoding.EncodeToString(b)
	return payload + "." + a.mac(payload)
}

// redeem checks a request state against the plan about to run and uses
// it up.
func (a *approvals) redeem(state, name string, p *run.Plan) error {
	payload, sig, ok := strings.Cut(state, ".")
	if !ok || !hmac.Equal([]byte(sig), []byte(a.mac(payload))) {
		return errStateForged
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	var c claim
	if err != nil || json.Unmarshal(b, &c) != nil {
		return errStateForged
	}
	now := a.now().Unix()
	if now > c.Expires {
		return errStateExpired
	}
	if c.Tool != name || c.Digest != planDigest(p) {
		return errStateOther
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for n, exp := range a.used {
		if now > exp {
			delete(a.used, n)
		}
	}
	if _, dup := a.used[c.Nonce]; dup {
		return errStateUsed
	}
	a.used[c.Nonce] = c.Expires
	return nil
}

// canElicit reports whether the client can show an elicitation form.
func canElicit(caps *mcp.ClientCapabilities) bool {
	if caps == nil || caps.Elicitation == nil {
		return false
	}
	e := caps.Elicitation
	return e.Form != nil || e.URL == nil // neither: form, as the SDK reads it
}

// approvalSchema is the form: one box to tick.
var approvalSchema = json.RawMessage(`{"type":"object","properties":{"` + approveField +
	`":{"type":"boolean","title":"Run this command","description":"Tick to run the command shown, exactly as shown, on the host shown."}},"required":["` + approveField + `"]}`)

// approvalRequest is the result that asks a person to approve plan.
func (s *Server) approvalRequest(e *entry, p *run.Plan, runAs string) *mcp.CallToolResult {
	msg := fmt.Sprintf("Approve a run of %s (x-autonomy: confirm)?\n\nHost: %s\nRuns as: %s\nCommand on %s:\n%s\n\n"+
		"It runs with the SSH credentials of the person who started this MCP server. "+
		"Tick the box and accept to run it; decline to refuse.",
		e.runspec, p.Host, runAs, p.Host, p.Command)
	return &mcp.CallToolResult{
		InputRequests: mcp.InputRequestMap{approvalID: &mcp.ElicitParams{Mode: "form", Message: msg, RequestedSchema: approvalSchema}},
		RequestState:  s.approvals.issue(e.name, p),
	}
}

// approved checks the answer of a retried call: nil when a person
// accepted this exact plan.
func (s *Server) approved(params *mcp.CallToolParamsRaw, name string, p *run.Plan) error {
	if err := s.approvals.redeem(params.RequestState, name, p); err != nil {
		return err
	}
	res, _ := params.InputResponses[approvalID].(*mcp.ElicitResult)
	switch {
	case res == nil:
		return errors.New("the call came back without an answer to the approval request")
	case res.Action == "decline":
		return errors.New("the person declined")
	case res.Action == "cancel":
		return errors.New("the person dismissed the request without approving")
	case res.Action != "accept":
		return fmt.Errorf("the answer was %q, not accept", res.Action)
	}
	if ok, _ := res.Content[approveField].(bool); !ok {
		return errors.New("the person accepted the form without ticking the box to run it")
	}
	return nil
}

// limits_docs_test.go checks a figure the protocol description gives: the
// largest tool list that fits the default body limit.

package registry_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/runspec/registry"
)

// docs/protocol.md says that about 3,000 tools of 300 bytes each fit the
// default --max-body-bytes (1 MiB).
func TestDefaultBodyFitsThreeThousandTools(t *testing.T) {
	h := newHarness(t, registry.Options{})
	h.register("a", "ops", "h")
	tool := func(i int) string {
		t := fmt.Sprintf(`{"name":"tool-%04d","description":"Restart the service and wait until it answers","inputSchema":{"type":"object","properties":{"unit":{"type":"string"}}},"x-command":"/usr/local/bin/tool-%04d","x-run-as":"svc","x-become-method":"sudo"`, i, i)
		return t + `,"x-become-flags":"-H"` + strings.Repeat(" ", 300-len(t)-len(`,"x-become-flags":"-H"`)-1) + "}"
	}
	if n := len(tool(0)); n != 300 {
		t.Fatalf("a tool is %d bytes, want 300", n)
	}
	tools := make([]string, 3000)
	for i := range tools {
		tools[i] = tool(i)
	}
	body := `{"tools":[` + strings.Join(tools, ",") + `]}`
	if len(body) > registry.DefaultMaxBodyBytes {
		t.Fatalf("the body is %d bytes, over the default limit", len(body))
	}
	h.must(200, "POST", "/instances/a/tools", body)
	var in registry.Instance
	if err := json.Unmarshal(h.must(200, "GET", "/instances/a", "").Body.Bytes(), &in); err != nil || len(in.Tools) != 3000 {
		t.Errorf("stored %d tools, %v", len(in.Tools), err)
	}
}

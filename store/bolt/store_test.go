// store_test.go runs the conformance suite against the bolt store, and
// restarts a Registry on it.

package bolt_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/runspec/registry"
	"github.com/runspec/registry/store/bolt"
	"github.com/runspec/registry/store/storetest"
)

// open opens the store of dir with the default options: the suite runs with
// fsync on, as in production.
func open(t *testing.T, dir string) registry.Store {
	t.Helper()
	st, err := bolt.Open(filepath.Join(dir, "registry.db"), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestStore(t *testing.T) {
	storetest.Run(t, open)
}

// testRecord returns a plausible record: ten tools, a system object.
func testRecord(i int) registry.Record {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	tools := make([]json.RawMessage, 10)
	for j := range tools {
		tools[j] = json.RawMessage(fmt.Sprintf(
			`{"name":"tool-%d","description":"Does thing %d on the host.","inputSchema":{"type":"object","properties":{"path":{"type":"string"}}},"x-command":"/usr/bin/tool-%d"}`, j, j, j))
	}
	return registry.Record{
		ID: fmt.Sprintf("agent-%06d", i), Name: "runspec-agent", Version: "1.4.2",
		Host:              fmt.Sprintf("host-%d.example.com", i),
		Seq:               uint64(i + 1),
		Registered:        now,
		LastSeen:          now,
		HeartbeatInterval: 30 * time.Second,
		Active:            true,
		Tools:             tools,
		System:            json.RawMessage(`{"os":"linux","arch":"amd64","cpus":8}`),
	}
}

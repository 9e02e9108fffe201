// durable_test.go tests the durable default end to end: kill -9 mid-load
// loses no acknowledged write, SIGTERM keeps last_seen exactly, a second
// registry on the same data fails fast, and backups of a running registry
// restore.

package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func toolsBody(i int) string {
	return fmt.Sprintf(`{"tools":[{"name":"t-%d","inputSchema":{"type":"object"},"x-command":"/bin/t"},{"name":"common","description":"c"}]}`, i)
}

func post(client *http.Client, url, body string) (int, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	s := start(t, bin, nil, "--data-dir", dir, "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")

	const agents = 1000
	var mu sync.Mutex
	registered := map[int]bool{} // acknowledged registrations
	tooled := map[int]bool{}     // acknowledged tool lists
	acks := make(chan struct{}, 4*agents)
	work := make(chan int, agents)
	for i := 0; i < agents; i++ {
		work <- i
	}
	close(work)
	client := &http.Client{Timeout: 10 * time.Second}
	var wg sync.WaitGroup
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := fmt.Sprintf("crash-%04d", i)
				code, err := post(client, s.url+"/instances", fmt.Sprintf(`{"instance_id":%q,"name":"n","version":"1","host":"h-%d"}`, id, i))
				if err != nil || code != 201 {
					return // the server is gone
				}
				mu.Lock()
				registered[i] = true
				mu.Unlock()
				acks <- struct{}{}
				code, err = post(client, s.url+"/instances/"+id+"/tools", toolsBody(i))
				if err != nil || code != 200 {
					return
				}
				mu.Lock()
				tooled[i] = true
				mu.Unlock()
				acks <- struct{}{}
			}
		}()
	}
	for n := 0; n < agents/2; n++ { // kill it mid-load
		<-acks
	}
	s.cmd.Process.Signal(syscall.SIGKILL)
	wg.Wait()
	<-s.done
	mu.Lock()
	defer mu.Unlock()
	t.Logf("killed after %d registrations and %d tool lists were acknowledged", len(registered), len(tooled))

	s = start(t, bin, nil, "--data-dir", dir, "--rate-limit-write", "0", "--rate-limit-heartbeat", "0")
	var all []struct {
		ID    string            `json:"instance_id"`
		Tools []json.RawMessage `json:"tools"`
	}
	resp, err := http.Get(s.url + "/instances")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&all)
	resp.Body.Close()
	found := map[string]int{}
	for _, in := range all {
		found[in.ID] = len(in.Tools)
		if n := len(in.Tools); n != 0 && n != 2 {
			t.Errorf("%s has %d tools: a half-written list", in.ID, n)
		}
	}
	for i := range registered {
		id := fmt.Sprintf("crash-%04d", i)
		n, ok := found[id]
		switch {
		case !ok:
			t.Errorf("acknowledged registration %s lost", id)
		case tooled[i] && n != 2:
			t.Errorf("acknowledged tool list of %s lost (%d tools)", id, n)
		}
	}
	for i := range tooled {
		id := fmt.Sprintf("crash-%04d", i)
		code, _ := postBody(t, s.url+"/instances/"+id+"/heartbeat", "")
		if code != `{"status":"ack"}` {
			t.Errorf("heartbeat of %s after restart: %s, want ack", id, code)
			break
		}
	}
	s.stop(t)
}

func postBody(t *testing.T, url, body string) (string, int) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return strings.TrimSpace(b.String()), resp.StatusCode
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v any
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestCleanRestartKeepsLastSeen(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	s := start(t, bin, nil, "--data-dir", dir, "--rate-limit-write", "0")
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("r-%02d", i)
		postBody(t, s.url+"/instances", fmt.Sprintf(`{"instance_id":%q,"name":"n","version":"1","host":"h-%d"}`, id, i))
		postBody(t, s.url+"/instances/"+id+"/tools", toolsBody(i))
		postBody(t, s.url+"/instances/"+id+"/heartbeat", `{"system":{"pid":`+fmt.Sprint(100+i)+`}}`)
	}
	postBody(t, s.url+"/instances/r-03/heartbeat", "")
	req, _ := http.NewRequest("DELETE", s.url+"/instances/r-07", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
	}
	before := getBody(t, s.url+"/instances")
	s.stop(t) // SIGTERM: the last checkpoint writes every last_seen

	s = start(t, bin, nil, "--data-dir", dir)
	if diff := cmp.Diff(before, getBody(t, s.url+"/instances")); diff != "" {
		t.Errorf("records changed across a clean restart (-before +after):\n%s", diff)
	}
	if got, _ := postBody(t, s.url+"/instances/r-05/heartbeat", ""); got != `{"status":"ack"}` {
		t.Errorf("heartbeat after restart: %s", got)
	}
	s.stop(t)
}

func TestSecondRegistryOnSameDataFailsFast(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	s := start(t, bin, nil, "--data-dir", dir)
	began := time.Now()
	out, err := exec.Command(bin, "--host", "127.0.0.1", "--port", "0", "--data-dir", dir).CombinedOutput()
	if err == nil || !strings.Contains(string(out), dataFile) {
		t.Fatalf("second registry: %v\n%s\nwant a failure naming the data file", err, out)
	}
	if d := time.Since(began); d > 15*time.Second {
		t.Errorf("second registry took %v to fail", d)
	}
	s.stop(t)
}

func TestBackupWhileRunning(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	s := start(t, bin, nil, "--data-dir", dir)
	postBody(t, s.url+"/instances", `{"instance_id":"b1","name":"n","version":"1","host":"h"}`)
	postBody(t, s.url+"/instances/b1/tools", toolsBody(1))
	before := getBody(t, s.url+"/tools")

	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if out, err := exec.Command(bin, "backup", "--data-dir", dir, copyPath).CombinedOutput(); err != nil {
		t.Fatalf("backup of a running registry: %v\n%s", err, out)
	}
	s.stop(t)

	restored := t.TempDir()
	b, err := os.ReadFile(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(restored, dataFile), b, 0o600)
	s = start(t, bin, nil, "--data-dir", restored)
	if diff := cmp.Diff(before, getBody(t, s.url+"/tools")); diff != "" {
		t.Errorf("restored backup differs (-before +after):\n%s", diff)
	}
	s.stop(t)

	// Stopped registry: the backup reads the file itself (--force: it
	// replaces the first copy).
	if out, err := exec.Command(bin, "backup", "--data-dir", restored, "--force", copyPath).CombinedOutput(); err != nil {
		t.Fatalf("backup of a stopped registry: %v\n%s", err, out)
	}
}

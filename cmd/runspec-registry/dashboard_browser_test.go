// dashboard_browser_test.go drives the dashboard in headless Chromium
// (Debian's /usr/bin/chromium; skipped where it is absent) against an
// in-process registry served as serve serves it (withDashboard): the fleet
// lists the hosts and follows registrations, expiry, a lost stream and a
// reset live; filters narrow it; a tool's page shows each host's execution
// metadata and run command; hostile names stay text and CSP blocks
// injected code; keys stay in memory; 20,000 agents render fast.
// RUNSPEC_DASHBOARD_SCREENSHOTS=1 writes the screenshots of docs/.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/runspec/registry"
)

const chromiumPath = "/usr/bin/chromium"

// dashServer is an in-process registry served with the dashboard, with a
// switch that cuts the event streams (to test a lost stream).
type dashServer struct {
	reg *registry.Registry
	srv *httptest.Server
	key string // sent with the test's own writes

	mu       sync.Mutex
	down     bool                 // /events answers 503
	streams  []context.CancelFunc // the open event streams
	resumes  []string             // Last-Event-ID of each /events request
	eventReq int
}

func newDashServer(t *testing.T, opts registry.Options, key string) *dashServer {
	t.Helper()
	reg, err := registry.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	s := &dashServer{reg: reg, key: key}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		reg.Run(ctx)
	}()
	dash := withDashboard(reg)
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/events" {
			s.mu.Lock()
			s.eventReq++
			s.resumes = append(s.resumes, req.Header.Get("Last-Event-ID"))
			if s.down {
				s.mu.Unlock()
				http.Error(w, "down for the test", http.StatusServiceUnavailable)
				return
			}
			rctx, stop := context.WithCancel(req.Context())
			s.streams = append(s.streams, stop)
			s.mu.Unlock()
			req = req.WithContext(rctx)
		}
		dash.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		reg.ReleaseWaiters() // ends the event streams, so that Close returns
		s.srv.Close()
		cancel()
		<-done
	})
	return s
}

// cut ends the open event streams and refuses new ones until restore.
func (s *dashServer) cut() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = true
	for _, stop := range s.streams {
		stop()
	}
	s.streams = nil
}

func (s *dashServer) restore() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = false
}

// do sends a write and fails the test unless it succeeds.
func (s *dashServer) do(t *testing.T, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, s.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if s.key != "" {
		req.Header.Set("X-API-Key", s.key)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s %s = %d: %s", method, path, res.StatusCode, b)
	}
}

// agent registers an instance over HTTP and posts its tools (nil: none).
func (s *dashServer) agent(t *testing.T, id, name, host string, interval int, labels map[string]string, tools ...string) {
	t.Helper()
	reg := map[string]any{"instance_id": id, "name": name, "version": "1.4", "host": host}
	if interval > 0 {
		reg["heartbeat_interval"] = interval
	}
	if labels != nil {
		reg["labels"] = labels
	}
	b, _ := json.Marshal(reg)
	s.do(t, "POST", "/instances", string(b))
	if tools != nil {
		s.do(t, "POST", "/instances/"+id+"/tools", `{"tools":[`+strings.Join(tools, ",")+`]}`)
	}
}

// deployTool is a tool "deploy" with execution metadata for one host.
func deployTool(command, runAs, become, flags string) string {
	t := map[string]any{
		"name": "deploy", "description": "Deploy a release of the app",
		"inputSchema": map[string]any{
			"type": "object",
			"properties": map[string]any{
				"version": map[string]any{"type": "string", "description": "The release tag, such as v1.4.2"},
				"dry_run": map[string]any{"type": "boolean", "default": false, "description": "Show what would change"},
				"target":  map[string]any{"enum": []string{"blue", "green"}, "description": "Which half of the pool"},
			},
			"required": []string{"version"},
		},
		"x-command": command, "x-run-as": runAs,
	}
	if become != "" {
		t["x-become-method"] = become
	}
	if flags != "" {
		t["x-become-flags"] = flags
	}
	b, _ := json.Marshal(t)
	return string(b)
}

// newBrowser starts headless Chromium with a fresh profile for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Skipf("the dashboard's browser tests need Chromium at %s (Debian's chromium package; .ci/run installs it): %v", chromiumPath, err)
	}
	// Without the background-networking flags, Chromium keeps trying to
	// reach Google's services, which a closed network makes it hang on.
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
	)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	return bctx
}

// A tab is one page of the browser, with what its console said and the
// dialogs it opened.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
	dialogs []string
}

// recordViolations runs before any script of each page: it keeps the CSP
// violations the page reports, and notes any dialog (alert) it opens.
const recordViolations = `window.__violations = [];
document.addEventListener('securitypolicyviolation', (e) => window.__violations.push({directive: e.effectiveDirective, sample: e.sample || ''}), true);`

func newTab(t *testing.T, bctx context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(bctx)
	t.Cleanup(cancel)
	tb := &tab{t: t, ctx: ctx}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.dialogs = append(tb.dialogs, ev.Message)
			tb.mu.Unlock()
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	if _, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: recordViolations}); err != nil {
		t.Fatal(err)
	}
	return tb
}

// do runs actions, failing the test on an error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, js string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

// waitFor polls a JavaScript expression until it is truthy, and returns how
// long that took; it fails the test after timeout.
func (tb *tab) waitFor(js string, timeout time.Duration, what string) time.Duration {
	tb.t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](js, chromedp.WithPollingInterval(10*time.Millisecond), chromedp.WithPollingTimeout(timeout)))
	if err != nil {
		tb.t.Fatalf("%s: not within %v (%v); the page shows:\n%s", what, timeout, err, tb.text())
	}
	return time.Since(start)
}

// text is the page's visible text, for failure messages.
func (tb *tab) text() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
	return s
}

// errors returns the console's errors and exceptions since the last call,
// without those that allow says are expected.
func (tb *tab) errors(allow func(chromedp.ConsoleMessage) bool) []string {
	time.Sleep(50 * time.Millisecond) // messages come asynchronously
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, m := range tb.console {
		if (m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException) && (allow == nil || !allow(m)) {
			out = append(out, fmt.Sprintf("%s (%s %s)", m, m.Source, m.URL))
		}
	}
	tb.console = nil
	return out
}

func (tb *tab) noErrors(allow func(chromedp.ConsoleMessage) bool) {
	tb.t.Helper()
	if errs := tb.errors(allow); len(errs) > 0 {
		tb.t.Errorf("the browser console has errors:\n%s", strings.Join(errs, "\n"))
	}
}

// Reading the page.
const (
	jsHosts  = `[...document.querySelectorAll('.rows .row')].map((r) => r.querySelector('.c-host a').textContent)`
	jsStates = `Object.fromEntries([...document.querySelectorAll('.rows .row')].map((r) => [r.querySelector('.c-host a').textContent, r.querySelector('.c-state').dataset.state]))`
)

// jsConfirmShown: the confirmation dialog is open and laid out.
const jsConfirmShown = `document.getElementById('confirm').open && document.getElementById('confirm-ok').getBoundingClientRect().width > 0`

func jsHasHost(host string) string {
	b, _ := json.Marshal(host)
	return fmt.Sprintf(`%s.includes(%s)`, jsHosts, b)
}

func jsState(host, state string) string {
	h, _ := json.Marshal(host)
	return fmt.Sprintf(`(%s)[%s] === %q`, jsStates, h, state)
}

// setInput types a value into an input as a user would (replacing what
// it holds).
func (tb *tab) setInput(sel, value string) {
	tb.t.Helper()
	tb.do(chromedp.Focus(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%q).select()`, sel)),
		chromedp.KeyEvent("\b"))
	if value != "" {
		tb.do(chromedp.SendKeys(chromedp.CSS(sel), value))
	}
}

func (tb *tab) hosts() []string {
	tb.t.Helper()
	return eval[[]string](tb, jsHosts)
}

func TestDashboardBrowser(t *testing.T) {
	bctx := newBrowser(t)
	t.Run("Fleet", func(t *testing.T) { testFleet(t, bctx) })
	t.Run("ToolPage", func(t *testing.T) { testToolPage(t, bctx) })
	t.Run("HostileNames", func(t *testing.T) { testHostile(t, bctx) })
	t.Run("Keys", func(t *testing.T) { testKeys(t, bctx) })
	t.Run("Scale", func(t *testing.T) { testScale(t, bctx) })
	t.Run("Screenshots", func(t *testing.T) { testScreenshots(t, bctx) })
}

func testFleet(t *testing.T, bctx context.Context) {
	s := newDashServer(t, registry.Options{}, "")
	s.agent(t, "i-1", "ops", "web-1", 0, map[string]string{"env": "prod"}, deployTool("/usr/local/bin/deploy", "oracle", "sudo", "-H"))
	s.agent(t, "i-2", "ops", "web-2", 0, map[string]string{"env": "prod"}, deployTool("/usr/local/bin/deploy", "oracle", "", ""))
	s.agent(t, "i-3", "ci", "build-1", 0, map[string]string{"env": "staging"}, deployTool("/opt/deploy", "ci", "", ""))

	tb := newTab(t, bctx)
	// A browser asking for / lands on the dashboard.
	tb.do(chromedp.Navigate(s.srv.URL + "/"))
	tb.waitFor(`document.documentElement.dataset.fleetReady === 'true'`, 5*time.Second, "the fleet's first rows")
	if got := eval[string](tb, `location.pathname`); got != "/ui/" {
		t.Errorf("/ led the browser to %s, want /ui/", got)
	}
	if got, want := tb.hosts(), []string{"build-1", "web-1", "web-2"}; !slices.Equal(got, want) {
		t.Errorf("the fleet lists %q, want %q", got, want)
	}
	tb.waitFor(`document.getElementById('stream').dataset.state === 'live'`, 5*time.Second, "the event stream")

	// A registration made over HTTP appears without a reload, and in the
	// events panel.
	start := time.Now()
	s.agent(t, "i-4", "ops", "web-4", 0, nil)
	tb.waitFor(jsHasHost("web-4"), time.Second, "a new registration in the fleet")
	t.Logf("a registration over HTTP was in the page %v after its answer", time.Since(start).Round(time.Millisecond))
	tb.waitFor(`[...document.querySelectorAll('#event-list li')].some((li) => li.dataset.kind === 'registered' && li.textContent.includes('web-4'))`,
		time.Second, "the registration in the events panel")

	// An instance that stops heartbeating is marked expiring soon, then
	// inactive when it expires (3 × 1 s).
	s.agent(t, "i-5", "batch", "short-1", 1, nil)
	tb.waitFor(jsState("short-1", "active"), time.Second, "short-1 active")
	tb.waitFor(jsState("short-1", "expiring"), 3*time.Second, "short-1 expiring soon")
	tb.waitFor(jsState("short-1", "inactive"), 3*time.Second, "short-1 inactive after its deadline")

	// Filters narrow the list: text, label, state.
	tb.setInput(`.toolbar input[type="search"]`, "web-2")
	tb.waitFor(fmt.Sprintf(`JSON.stringify(%s) === '["web-2"]'`, jsHosts), time.Second, "the text filter")
	tb.setInput(`.toolbar input[type="search"]`, "")
	tb.setInput(`.toolbar .label-filter`, "env=staging")
	tb.waitFor(fmt.Sprintf(`JSON.stringify(%s) === '["build-1"]'`, jsHosts), time.Second, "the label filter")
	tb.setInput(`.toolbar .label-filter`, "")
	tb.do(chromedp.SetValue(chromedp.CSS(`.toolbar select`), "inactive"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.toolbar select').dispatchEvent(new Event('change'))`))
	tb.waitFor(fmt.Sprintf(`JSON.stringify(%s) === '["short-1"]'`, jsHosts), time.Second, "the state filter")
	if got := eval[string](tb, `location.hash`); got != "#/?state=inactive" {
		t.Errorf("the filter is not in the page's address: %q", got)
	}
	tb.do(chromedp.SetValue(chromedp.CSS(`.toolbar select`), ""),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('.toolbar select').dispatchEvent(new Event('change'))`))
	// Sorting by a column: by tool count, descending on the second click.
	tb.do(chromedp.Click(chromedp.CSS(`.grid-head .c-tools button`)), chromedp.Click(chromedp.CSS(`.grid-head .c-tools button`)))
	tb.waitFor(`document.querySelector('.grid-head .c-tools').getAttribute('aria-sort') === 'descending'`, time.Second, "sorting by tools")
	// Equal counts are in host order.
	tb.waitFor(fmt.Sprintf(`JSON.stringify(%s) === '["build-1","web-1","web-2","short-1","web-4"]'`, jsHosts), time.Second, "the fleet sorted by tools, descending")
	tb.noErrors(nil)

	// The stream is cut: the page says so, reconnects by itself and
	// resumes from the last event id, so that a registration made while it
	// was away still arrives.
	lastID := eval[string](tb, `String(Math.max(...[...document.querySelectorAll('#event-list li .what')].map((w) => Number((/index (\d+)/.exec(w.title) || [0, 0])[1]))))`)
	s.cut()
	tb.waitFor(`document.getElementById('stream').dataset.state === 'lost'`, 3*time.Second, "the lost stream shown")
	if txt := eval[string](tb, `document.getElementById('stream-text').textContent`); !strings.Contains(txt, "stream lost at") {
		t.Errorf("the stream's status says %q", txt)
	}
	s.agent(t, "i-6", "ops", "web-6", 0, nil)
	s.restore()
	tb.waitFor(`document.getElementById('stream').dataset.state === 'live'`, 20*time.Second, "the stream back")
	tb.waitFor(jsHasHost("web-6"), 2*time.Second, "the registration made while the stream was lost")
	s.mu.Lock()
	resumed := s.resumes[len(s.resumes)-1]
	s.mu.Unlock()
	if resumed == "" || resumed < lastID && len(resumed) <= len(lastID) {
		t.Errorf("the stream resumed with Last-Event-ID %q, want at least %s", resumed, lastID)
	}
	// While it was refused, the browser logged the refused requests.
	tb.errors(func(m chromedp.ConsoleMessage) bool { return m.Source == "network" })

	if testing.Short() {
		return
	}
	// The stream is cut while more changes happen than the registry keeps
	// for resuming (8,192): it answers with a reset, and the page lists
	// the fleet again.
	s.cut()
	tb.waitFor(`document.getElementById('stream').dataset.state === 'lost'`, 3*time.Second, "the lost stream shown")
	ctx := context.Background()
	for i := range 4200 {
		id := fmt.Sprintf("gap-%d", i)
		if err := s.reg.Register(ctx, registry.Registration{ID: id, Name: "gap", Version: "1", Host: id}); err != nil {
			t.Fatal(err)
		}
		if err := s.reg.Deregister(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	s.restore()
	tb.waitFor(`[...document.querySelectorAll('#event-list li')].some((li) => li.dataset.kind === 'reset')`, 20*time.Second, "the reset in the events panel")
	tb.waitFor(`document.querySelector('.count').textContent.includes('4,206 agents')`, 5*time.Second, "the fleet listed again after the reset")
	tb.errors(func(m chromedp.ConsoleMessage) bool { return m.Source == "network" })
}

func testToolPage(t *testing.T, bctx context.Context) {
	s := newDashServer(t, registry.Options{}, "")
	s.agent(t, "i-1", "ops", "web-1", 0, nil, deployTool("/usr/local/bin/deploy", "oracle", "sudo", "-H -E"))
	s.agent(t, "i-2", "ops", "web-2", 0, nil, deployTool("/usr/local/bin/deploy", "produser", "su", ""))
	// A host whose name a shell would run: the run command quotes it.
	s.agent(t, "i-3", "ops", "$(touch /tmp/pwned)", 0, nil, deployTool("/opt/deploy 'x'", "ci", "", ""))

	tb := newTab(t, bctx)
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/#/tools"))
	tb.waitFor(`[...document.querySelectorAll('tbody tr')].some((tr) => tr.textContent.includes('deploy') && tr.lastElementChild.textContent === '3')`,
		5*time.Second, "deploy offered by 3 hosts in the tools list")
	tb.do(chromedp.Click(chromedp.CSS(`a[href="#/tools/deploy"]`)))
	tb.waitFor(`document.querySelectorAll('table.tool-hosts tbody').length === 3`, 5*time.Second, "the tool's hosts")

	// The arguments, as a form.
	args := eval[[]string](tb, `[...document.querySelectorAll('.args .arg label')].map((l) => l.textContent)`)
	if want := []string{"dry_runboolean", "targetone of", "versionstringrequired"}; !slices.Equal(args, want) {
		t.Errorf("the arguments form shows %q, want %q", args, want)
	}

	// Each host's execution metadata and run command, as the API answers
	// them.
	type row struct{ Host, Command, RunAs, Become, Flags, Run string }
	got := eval[[]row](tb, `[...document.querySelectorAll('table.tool-hosts tbody')].map((tb) => {
		const c = [...tb.rows[0].children].map((td) => td.textContent);
		return {Host: c[1], Command: c[3], RunAs: c[4], Become: c[5], Flags: c[6], Run: tb.querySelector('.run code').textContent};
	})`)
	tool, _, err := s.reg.Tool(context.Background(), "deploy", registry.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var want []row
	for _, h := range tool.Hosts {
		dash := func(f registry.ExecField) string {
			if !f.Set {
				return "–"
			}
			return f.String()
		}
		if h.Run != registry.RunCommand(h.Host, "deploy") {
			t.Fatalf("the API's run field %q is not RunCommand's", h.Run)
		}
		want = append(want, row{h.Host, dash(h.Command), dash(h.RunAs), dash(h.BecomeMethod), dash(h.BecomeFlags), h.Run})
	}
	slices.SortFunc(want, func(a, b row) int { return strings.Compare(a.Host, b.Host) })
	slices.SortFunc(got, func(a, b row) int { return strings.Compare(a.Host, b.Host) })
	if !slices.Equal(got, want) {
		t.Errorf("the tool page shows\n%+v\nwant\n%+v", got, want)
	}
	if !slices.ContainsFunc(got, func(r row) bool { return r.Run == `runspec-registry run --host '$(touch /tmp/pwned)' deploy` }) {
		t.Errorf("the hostile host's run command is not quoted: %+v", got)
	}

	// The copy button puts the run command on the clipboard.
	origin := s.srv.URL
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(tb.ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name}, Setting: browser.PermissionSettingGranted, Origin: origin}); err != nil {
			t.Fatal(err)
		}
	}
	tb.do(chromedp.Click(chromedp.CSS(`table.tool-hosts tbody:first-of-type .run button`)))
	tb.waitFor(`document.querySelector('table.tool-hosts tbody:first-of-type .run button').textContent === 'Copied'`, 2*time.Second, "the copy button")
	clip := eval[string](tb, `navigator.clipboard.readText()`)
	if first := eval[string](tb, `document.querySelector('table.tool-hosts tbody:first-of-type .run code').textContent`); clip != first {
		t.Errorf("the clipboard holds %q, want %q", clip, first)
	}

	// A host that goes away leaves the table live, without a reload.
	s.do(t, "DELETE", "/instances/i-2", "")
	tb.waitFor(`[...document.querySelectorAll('table.tool-hosts tbody')].some((tb) => tb.rows[0].children[1].textContent === 'web-2' && tb.querySelector('.state').dataset.state === 'inactive')`,
		2*time.Second, "web-2 inactive on the tool page")
	tb.noErrors(nil)
}

func testHostile(t *testing.T, bctx context.Context) {
	s := newDashServer(t, registry.Options{}, "")
	const evilHost = `<img src=x onerror=alert(1)>`
	const evilName = `<img src=x onerror="window.__pwned=1">`
	evilTool := `{"name":"<script>window.__pwned=2</script>","description":"<img src=x onerror=\"window.__pwned=3\">",` +
		`"inputSchema":{"type":"object","properties":{"<b>x</b>":{"type":"string","description":"<img src=x onerror=\"window.__pwned=4\">"}}},` +
		`"x-command":"<img src=x onerror=\"window.__pwned=5\">"}`
	s.agent(t, "evil-1", evilName, evilHost, 0, map[string]string{"k": "<i>v</i>"}, evilTool)
	s.agent(t, "ok-1", "ops", "web-1", 0, nil)

	tb := newTab(t, bctx)
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/"))
	tb.waitFor(jsHasHost(evilHost), 5*time.Second, "the hostile host, as text")
	if got := eval[string](tb, `document.querySelector('.rows .row .c-name').textContent`); got != evilName {
		t.Errorf("the agent's name shows as %q", got)
	}
	// Its instance page and its tool's page.
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/#/instances/evil-1"))
	tb.waitFor(`document.getElementById('inst-title').textContent.includes('<img')`, 5*time.Second, "the hostile instance page")
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/#/tools/" + "%3Cscript%3Ewindow.__pwned%3D2%3C%2Fscript%3E"))
	tb.waitFor(`document.querySelectorAll('table.tool-hosts tbody').length === 1`, 5*time.Second, "the hostile tool page")
	if got := eval[string](tb, `document.getElementById('tool-title').textContent`); got != "<script>window.__pwned=2</script>" {
		t.Errorf("the tool's name shows as %q", got)
	}
	time.Sleep(200 * time.Millisecond) // time for an image's error to fire, had one been made

	pwned := eval[bool](tb, `window.__pwned !== undefined`)
	imgs := eval[int](tb, `[...document.images].filter((i) => !i.src.endsWith('/icon.svg')).length`)
	violations := eval[int](tb, `window.__violations.length`)
	tb.mu.Lock()
	dialogs := slices.Clone(tb.dialogs)
	tb.mu.Unlock()
	if pwned || imgs != 0 || len(dialogs) != 0 || violations != 0 {
		t.Errorf("hostile names ran or made elements: flag set %v, %d images, dialogs %q, %d CSP violations", pwned, imgs, dialogs, violations)
	}
	tb.noErrors(nil)

	// Markup injected into the page (as a bug would) runs nothing: the
	// policy blocks the inline handler and the inline style, and says so.
	doc, err := chromedp.Call(tb.ctx, dom.GetDocument, dom.GetDocumentParams{})
	if err != nil {
		t.Fatal(err)
	}
	node, err := chromedp.Call(tb.ctx, dom.QuerySelector, dom.QuerySelectorParams{NodeID: doc.Root.NodeID, Selector: "#event-empty"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(tb.ctx, dom.SetOuterHTML, dom.SetOuterHTMLParams{NodeID: node.NodeID,
		OuterHTML: `<p id="event-empty"><img src="x" onerror="window.__pwned=6"><span id="styled" style="color: rgb(255, 0, 0)">x</span></p>`}); err != nil {
		t.Fatal(err)
	}
	tb.waitFor(`window.__violations.some((v) => v.directive === 'script-src-attr')`, 3*time.Second, "a CSP violation for the inline handler")
	if eval[bool](tb, `window.__pwned !== undefined`) {
		t.Error("the injected inline handler ran")
	}
	if got := eval[string](tb, `getComputedStyle(document.getElementById('styled')).color`); got == "rgb(255, 0, 0)" {
		t.Error("the injected inline style applied")
	}
	if !eval[bool](tb, `window.__violations.some((v) => v.directive === 'style-src-attr')`) {
		t.Errorf("no CSP violation for the inline style: %s", eval[string](tb, `JSON.stringify(window.__violations)`))
	}
	// The policy's own reports, and the image's failed load, are the only
	// console errors.
	tb.noErrors(func(m chromedp.ConsoleMessage) bool {
		return strings.Contains(m.Text, "Content Security Policy") || strings.HasSuffix(m.URL, "/x")
	})
}

func testKeys(t *testing.T, bctx context.Context) {
	const admin, reader = "admin-key-0123456789abcdef", "reader-key-0123456789abcdef"
	keys, err := registry.ParseKeys(strings.NewReader("boss admin " + admin + "\nviewer read " + reader + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := newDashServer(t, registry.Options{Keys: keys, ReadAuth: true}, admin)
	s.agent(t, "i-1", "ops", "web-1", 0, nil, deployTool("/usr/local/bin/deploy", "oracle", "", ""))
	s.agent(t, "i-2", "ops", "web-2", 0, nil)

	tb := newTab(t, bctx)
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/"))
	tb.waitFor(`!document.getElementById('notice').hidden && document.getElementById('notice').textContent.includes('needs a key')`,
		5*time.Second, "the page asking for a key")
	if got := eval[string](tb, `document.activeElement.id`); got != "key-input" {
		t.Errorf("the focus is on %q, want the key field", got)
	}
	tb.do(chromedp.SendKeys(chromedp.ID("key-input"), reader), chromedp.Click(chromedp.ID("key-use")))
	tb.waitFor(`document.documentElement.dataset.fleetReady === 'true' && document.querySelectorAll('.rows .row').length === 2`, 5*time.Second, "the fleet, read with the key")
	tb.waitFor(`document.getElementById('stream').dataset.state === 'live'`, 5*time.Second, "the event stream with the key")
	s.agent(t, "i-3", "ops", "web-3", 0, nil)
	tb.waitFor(jsHasHost("web-3"), time.Second, "a registration, streamed with the key")

	// The key is in the tab's memory only.
	stored := eval[string](tb, `JSON.stringify([localStorage.length, sessionStorage.length, document.cookie, location.href, history.length])`)
	if strings.Contains(stored, "key-0123") || !strings.HasPrefix(stored, `[0,0,"",`) {
		t.Errorf("the key is kept outside memory: %s", stored)
	}

	// A read key may not deregister: the page says what the registry said.
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/#/instances/i-2"))
	tb.waitFor(`!document.querySelector('.actions button').disabled`, 5*time.Second, "the deregister button enabled by the key")
	tb.do(chromedp.Click(chromedp.CSS(`.actions button`)))
	tb.waitFor(jsConfirmShown, 2*time.Second, "the confirmation")
	tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
	tb.waitFor(`document.querySelector('.result').textContent.startsWith('Refused (403)')`, 2*time.Second, "the refusal shown")

	// An admin key: deregister, then delete.
	tb.do(chromedp.Click(chromedp.ID("key-forget")))
	tb.waitFor(`document.querySelector('.actions button').disabled`, time.Second, "the buttons greyed out without a key")
	tb.do(chromedp.SendKeys(chromedp.ID("key-input"), admin), chromedp.Click(chromedp.ID("key-use")))
	tb.waitFor(`!document.querySelector('.actions button').disabled`, time.Second, "the buttons enabled by the admin key")
	// Cancelling changes nothing.
	tb.do(chromedp.Click(chromedp.CSS(`.actions button`)))
	tb.waitFor(jsConfirmShown, 2*time.Second, "the confirmation")
	tb.do(chromedp.Click(chromedp.ID("confirm-cancel")))
	if in, _, err := s.reg.Instance(context.Background(), "i-2"); err != nil || !in.Active {
		t.Fatalf("after cancelling, i-2: %+v, %v", in, err)
	}
	tb.do(chromedp.Click(chromedp.CSS(`.actions button`)))
	tb.waitFor(jsConfirmShown, 2*time.Second, "the confirmation")
	tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
	tb.waitFor(`document.querySelector('#view .state').dataset.state === 'inactive'`, 3*time.Second, "the instance inactive")
	if in, _, err := s.reg.Instance(context.Background(), "i-2"); err != nil || in.Active {
		t.Fatalf("after deregistering, i-2: %+v, %v", in, err)
	}
	tb.do(chromedp.Click(chromedp.CSS(`.actions button + button`)))
	tb.waitFor(jsConfirmShown, 2*time.Second, "the confirmation")
	tb.do(chromedp.Click(chromedp.ID("confirm-ok")))
	tb.waitFor(`document.querySelector('#view p.muted:not([hidden])') && document.body.textContent.includes('no record of this instance')`, 3*time.Second, "the record gone")
	if _, _, err := s.reg.Instance(context.Background(), "i-2"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("after deleting, i-2: %v", err)
	}
	// The refused reads before the key, the refused deregistration and
	// the reads of the deleted record are the console's only errors.
	tb.noErrors(func(m chromedp.ConsoleMessage) bool {
		return m.Source == "network" && (strings.Contains(m.Text, "403") || strings.Contains(m.Text, "404") && strings.Contains(m.URL, "/instances/i-2"))
	})
}

// testScale measures the first screen of a fleet of 20,000 agents, in the
// browser: from the navigation's start to the User Timing mark the page
// sets once its first rows are in, and a scroll through the whole list.
func testScale(t *testing.T, bctx context.Context) {
	if testing.Short() {
		t.Skip("20,000 agents: not with -short")
	}
	const n = 20000
	s := newDashServer(t, registry.Options{MaxInstances: 2 * n}, "")
	ctx := context.Background()
	tools := []json.RawMessage{json.RawMessage(deployTool("/usr/local/bin/deploy", "oracle", "sudo", "")),
		json.RawMessage(`{"name":"restart","description":"Restart a service","inputSchema":{"type":"object"}}`)}
	for i := range n {
		id := fmt.Sprintf("inst-%05d", i)
		reg := registry.Registration{ID: id, Name: "ops", Version: "1.4", Host: fmt.Sprintf("host-%05d", i),
			Labels: map[string]string{"env": []string{"prod", "staging"}[i%2], "dc": fmt.Sprintf("dc%d", i%4)}}
		if err := s.reg.Register(ctx, reg); err != nil {
			t.Fatal(err)
		}
		if err := s.reg.UpdateTools(ctx, id, tools); err != nil {
			t.Fatal(err)
		}
	}
	tb := newTab(t, bctx)
	var firsts []float64
	for range 3 { // the first load warms nothing in the registry that users would not also have warm
		tb.do(chromedp.Navigate(s.srv.URL + "/ui/"))
		tb.waitFor(`document.documentElement.dataset.fleetReady === 'true'`, 10*time.Second, "the first rows of 20,000 agents")
		firsts = append(firsts, eval[float64](tb, `performance.getEntriesByName('runspec:first-rows')[0].startTime`))
	}
	hostsFetch := eval[float64](tb, `performance.getEntriesByType('resource').find((e) => e.name.endsWith('/hosts?detail=true&active=false')).duration`)
	slices.Sort(firsts)
	t.Logf("first screen of %d agents: %.0f ms (median of %d loads: %.0f; GET /hosts took %.0f ms of the last)", n, firsts[1], len(firsts), firsts, hostsFetch)
	if firsts[1] >= 1000 {
		t.Errorf("the first screen of %d agents took %.0f ms in the browser (median), want under 1 s", n, firsts[1])
	}
	if got := eval[string](tb, `document.querySelector('.count').textContent`); !strings.Contains(got, "20,000 agents") {
		t.Errorf("the count says %q", got)
	}
	if rows := eval[int](tb, `document.querySelectorAll('.rows .row').length`); rows > 100 {
		t.Errorf("%d rows in the page for a screen of 20: render only what is visible", rows)
	}
	// Scrolling: 200 steps of a screen each through the list, one frame
	// each; the longest frame of the page's own work.
	tb.waitFor(`document.documentElement.dataset.intervals === 'ready'`, 10*time.Second, "the heartbeat intervals read")
	type scroll struct {
		Max, Median, LongTasks float64
		Host                   string
	}
	sc := eval[scroll](tb, `(async () => {
		const s = document.querySelector('.scroller');
		const times = [];
		const long = [];
		const obs = new PerformanceObserver((l) => long.push(...l.getEntries()));
		obs.observe({type: 'longtask'});
		for (let i = 1; i <= 200; i++) {
			const t0 = performance.now();
			s.scrollTop = i * (s.scrollHeight - s.clientHeight) / 200;
			s.dispatchEvent(new Event('scroll'));
			await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
			times.push(performance.now() - t0);
		}
		times.sort((a, b) => a - b);
		const rows = [...document.querySelectorAll('.rows .row')];
		const last = rows[rows.length - 1].querySelector('.c-host a').textContent;
		obs.disconnect();
		return {Max: times[times.length - 1], Median: times[100], LongTasks: long.length, Host: last};
	})()`)
	t.Logf("scrolling through %d agents: a step takes %.1f ms (median), %.1f ms at most (two frames); %.0f long tasks (over 50 ms)", n, sc.Median, sc.Max, sc.LongTasks)
	if sc.Host != fmt.Sprintf("host-%05d", n-1) {
		t.Errorf("at the end of the list the last row is %q", sc.Host)
	}
	tb.noErrors(nil)
}

// testScreenshots writes the screenshots of docs/dashboard.md, when
// RUNSPEC_DASHBOARD_SCREENSHOTS is set.
func testScreenshots(t *testing.T, bctx context.Context) {
	if os.Getenv("RUNSPEC_DASHBOARD_SCREENSHOTS") == "" {
		t.Skip("set RUNSPEC_DASHBOARD_SCREENSHOTS=1 to write the screenshots of docs/")
	}
	s := newDashServer(t, registry.Options{}, "")
	roles := []struct{ name, runAs string }{{"web", "www-data"}, {"db", "postgres"}, {"batch", "batch"}}
	for i := range 24 {
		r := roles[i%3]
		host := fmt.Sprintf("%s-%02d.fra1", r.name, i/3+1)
		env := "prod"
		if i%5 == 4 {
			env = "staging"
		}
		become, flags := "sudo", ""
		if r.name == "db" {
			flags = "-i"
		}
		tools := []string{deployTool("/usr/local/bin/deploy", r.runAs, become, flags),
			`{"name":"restart","description":"Restart a systemd unit","inputSchema":{"type":"object","properties":{"unit":{"type":"string"}},"required":["unit"]},"x-command":"systemctl restart","x-become-method":"sudo"}`}
		if r.name == "db" {
			tools = append(tools, `{"name":"backup","description":"Take a base backup","inputSchema":{"type":"object"},"x-command":"/usr/local/bin/pg-backup","x-run-as":"postgres"}`)
		}
		interval := 0
		if i == 7 {
			interval = 2 // goes expiring, then inactive, as the page opens
		}
		s.agent(t, fmt.Sprintf("i-%02d", i), "ops", host, interval, map[string]string{"env": env, "role": r.name}, tools...)
	}
	s.do(t, "DELETE", "/instances/i-10", "")
	tb := newTab(t, bctx)
	tb.do(chromedp.EmulateViewport(1280, 760))
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/"))
	tb.waitFor(`document.getElementById('stream').dataset.state === 'live'`, 5*time.Second, "the stream")
	s.agent(t, "i-30", "ops", "web-09.fra1", 0, map[string]string{"env": "prod", "role": "web"}, deployTool("/usr/local/bin/deploy", "www-data", "sudo", ""))
	tb.waitFor(jsState("db-03.fra1", "expiring"), 5*time.Second, "db-03 expiring")
	tb.waitFor(`document.querySelector(".count").textContent.includes("25 agents")`, time.Second, "web-09 in the count")
	time.Sleep(300 * time.Millisecond)
	shot := func(name string) {
		b, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join("..", "..", "docs", name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", path)
	}
	shot("dashboard-fleet.png")
	tb.do(chromedp.EmulateViewport(1280, 1040))
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/#/tools/deploy"))
	tb.waitFor(`document.querySelectorAll('table.tool-hosts tbody').length === 25`, 5*time.Second, "the tool's hosts")
	shot("dashboard-tool.png")
	// A phone, in the dark.
	tb.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2)))
	if _, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	tb.do(chromedp.Navigate(s.srv.URL + "/ui/"))
	tb.waitFor(`document.documentElement.dataset.fleetReady === 'true'`, 5*time.Second, "the fleet")
	time.Sleep(300 * time.Millisecond)
	shot("dashboard-phone-dark.png")
	tb.noErrors(nil)
}

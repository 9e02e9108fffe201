// logging_test.go tests the log format: durations in JSON and text, the
// levels of net/http's and gRPC's lines, and, end to end, that every line
// of a JSON log parses, an http.Server error included.

package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// records parses each line of a JSON log, dropping the time.
func records(t *testing.T, log string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Errorf("not a JSON line: %q: %v", sc.Text(), err)
			continue
		}
		delete(rec, "time")
		out = append(out, rec)
	}
	return out
}

func TestDurations(t *testing.T) {
	tests := []struct {
		d    time.Duration
		json float64
		text string
	}{
		{1500 * time.Microsecond, 0.0015, "1.5ms"},
		{59288 * time.Nanosecond, 0.000059288, "59.3µs"}, // slog alone: 59.288µs
		{5998141191 * time.Nanosecond, 5.998141191, "5.998s"},
		{72 * time.Hour, 259200, "72h0m0s"},
		{0, 0, "0s"},
		{-1234567 * time.Nanosecond, -0.001234567, "-1.23ms"},
	}
	for _, tt := range tests {
		t.Run(tt.d.String(), func(t *testing.T) {
			var jb, tb bytes.Buffer
			jl, _ := newLogger(&jb, "json", "info")
			tl, _ := newLogger(&tb, "text", "info")
			for _, l := range []*slog.Logger{jl, tl} {
				l.Info("request", "duration", tt.d, slog.Group("g", "wait", tt.d))
			}
			want := []map[string]any{{"level": "INFO", "msg": "request", "duration": tt.json, "g": map[string]any{"wait": tt.json}}}
			if diff := cmp.Diff(want, records(t, jb.String())); diff != "" {
				t.Errorf("JSON mismatch (-want +got):\n%s", diff)
			}
			text := strings.TrimSpace(tb.String())
			wantText := fmt.Sprintf("level=INFO msg=request duration=%s g.wait=%s", tt.text, tt.text)
			if !strings.HasSuffix(text, wantText) {
				t.Errorf("text %q, want it to end with %q", text, wantText)
			}
		})
	}
}

func TestServerErrorLog(t *testing.T) {
	var b bytes.Buffer
	log, _ := newLogger(&b, "json", "info")
	el := serverErrorLog(log)
	el.Printf("http: TLS handshake error from %s: %v", "127.0.0.1:5555", "EOF")
	el.Printf("http: panic serving 127.0.0.1:5556: boom\ngoroutine 7 [running]:\n...")
	el.Printf("http: Accept error: too many open files; retrying in 5ms")
	want := []map[string]any{
		{"level": "WARN", "msg": "http server", "err": "TLS handshake error from 127.0.0.1:5555: EOF"},
		{"level": "ERROR", "msg": "http server", "err": "panic serving 127.0.0.1:5556: boom\ngoroutine 7 [running]:\n..."},
		{"level": "WARN", "msg": "http server", "err": "Accept error: too many open files; retrying in 5ms"},
	}
	if diff := cmp.Diff(want, records(t, b.String())); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
}

func TestGRPCLogger(t *testing.T) {
	for _, level := range []string{"info", "debug"} {
		t.Run(level, func(t *testing.T) {
			var b bytes.Buffer
			log, _ := newLogger(&b, "json", level)
			g := grpcLogger{log}
			g.Infof("[core] connecting to %s", "127.0.0.1:2379")
			g.Warningln("[transport] closing:", "EOF")
			g.Error("[core] ", "failed")
			want := []map[string]any{{"level": "ERROR", "msg": "[core] failed", "component": "grpc"}}
			if level == "debug" {
				want = []map[string]any{
					{"level": "DEBUG", "msg": "[core] connecting to 127.0.0.1:2379", "component": "grpc"},
					{"level": "DEBUG", "msg": "[transport] closing: EOF", "component": "grpc"},
					{"level": "ERROR", "msg": "[core] failed", "component": "grpc"},
				}
			}
			if diff := cmp.Diff(want, records(t, b.String())); diff != "" {
				t.Errorf("mismatch (-want +got):\n%s", diff)
			}
			if got := g.V(2); got != (level == "debug") {
				t.Errorf("V(2) = %v at %s", got, level)
			}
		})
	}
}

// TestJSONLogEndToEnd runs the binary with --log-format json over HTTPS,
// makes net/http complain (a plain HTTP request on the HTTPS port), makes a
// request, sends SIGHUP and SIGTERM, and parses every line it logged.
func TestJSONLogEndToEnd(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	pool := writeCert(t, dir)
	s := start(t, bin, nil, "--log-format", "json", "--log-level", "debug", "--rate-limit-write", "0",
		"--ssl-certfile", filepath.Join(dir, "cert.pem"), "--ssl-keyfile", filepath.Join(dir, "key.pem"))

	plain := strings.Replace(s.url, "https://", "http://", 1)
	resp, err := http.Get(plain + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("plain HTTP on the HTTPS port: %d, want 400", resp.StatusCode)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	a := agent{t: t, client: client, base: s.url}
	a.expect("POST", "/instances", `{"instance_id":"j1","name":"ops","version":"1","host":"web-1"}`, 201, "")
	until(t, 10*time.Second, "the handshake error is logged", func() bool {
		return strings.Contains(s.logs.String(), "TLS handshake error")
	})
	s.hangup(t)
	s.stop(t)

	recs := records(t, s.logs.String())
	var sawHTTPError, sawDuration bool
	for _, rec := range recs {
		if rec["msg"] == "http server" {
			sawHTTPError = true
			if rec["level"] != "WARN" || !strings.Contains(fmt.Sprint(rec["err"]), "TLS handshake error") {
				t.Errorf("http server line: %v", rec)
			}
		}
		if rec["msg"] == "request" && rec["method"] == "POST" {
			d, ok := rec["duration"].(float64)
			sawDuration = true
			if !ok || d <= 0 || d > 10 {
				t.Errorf("request duration %#v, want seconds as a number", rec["duration"])
			}
		}
	}
	if !sawHTTPError || !sawDuration {
		t.Errorf("http server error logged: %v, request with duration logged: %v; log:\n%s", sawHTTPError, sawDuration, s.logs.String())
	}
}

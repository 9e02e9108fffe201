// logging.go sets up log/slog for the command (--log-format, --log-level),
// writes durations as seconds in JSON and as Go durations in text, and
// sends the log lines of net/http, gRPC and the standard log package
// through the same handler, so that every line has one format.

package main

import (
	"context"
	"fmt"
	"io"
	stdlog "log"
	"log/slog"
	"strings"
	"time"

	"google.golang.org/grpc/grpclog"
)

// newLogger returns the logger that format ("text" or "json") and level
// ("debug", "info", "warn", "error") describe, writing to w.
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, err
	}
	json := format == "json"
	opts := &slog.HandlerOptions{Level: l, ReplaceAttr: durationAttr(json)}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// durationAttr rewrites duration values: JSON gets seconds as a number
// (slog's own is nanoseconds, which nobody reading the log expects), text
// gets Go's form, rounded ("1.23ms", "5.998s").
func durationAttr(json bool) func([]string, slog.Attr) slog.Attr {
	return func(_ []string, a slog.Attr) slog.Attr {
		if a.Value.Kind() != slog.KindDuration {
			return a
		}
		d := a.Value.Duration()
		if json {
			return slog.Float64(a.Key, d.Seconds())
		}
		return slog.String(a.Key, roundDuration(d).String())
	}
}

// roundDuration keeps three significant digits of a duration under a
// second, and milliseconds of a longer one (72h stays 72h0m0s).
func roundDuration(d time.Duration) time.Duration {
	if d.Abs() >= time.Second {
		return d.Round(time.Millisecond)
	}
	unit := time.Duration(1)
	for d.Abs() >= 1000*unit {
		unit *= 10
	}
	return d.Round(unit)
}

// serverErrorLog is an http.Server's ErrorLog that writes to log: TLS
// handshake failures and other trouble with one connection at warn, a
// handler's panic at error.
func serverErrorLog(log *slog.Logger) *stdlog.Logger {
	return stdlog.New(logWriter{log: log, msg: "http server"}, "", 0)
}

// logWriter turns each line that a *log.Logger writes into a slog record.
type logWriter struct {
	log *slog.Logger
	msg string
}

// Write logs one line of a *log.Logger.
func (w logWriter) Write(p []byte) (int, error) {
	text := strings.TrimSpace(strings.TrimPrefix(string(p), "http: "))
	level := slog.LevelWarn
	if strings.Contains(text, "panic") {
		level = slog.LevelError
	}
	w.log.Log(context.Background(), level, w.msg, "err", text)
	return len(p), nil
}

// routeLibraryLogs sends what libraries log on their own (the standard log
// package, gRPC under the etcd client) to log. gRPC's info and warning
// lines are debug here, as gRPC itself shows only errors by default: they
// narrate every connection attempt (a warning a second while etcd is down,
// which the etcd store reports in its own words).
func routeLibraryLogs(log *slog.Logger) {
	slog.SetDefault(log) // also redirects the standard log package
	grpclog.SetLoggerV2(grpcLogger{log})
}

// grpcLogger is a grpclog.LoggerV2 on slog.
type grpcLogger struct{ log *slog.Logger }

var _ grpclog.LoggerV2 = grpcLogger{}

func (g grpcLogger) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if g.log.Enabled(ctx, level) {
		g.log.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)), "component", "grpc")
	}
}

// Info, Warning and Error, each also with ln and f, implement
// grpclog.LoggerV2.
func (g grpcLogger) Info(args ...any)                    { g.logf(slog.LevelDebug, "%s", fmt.Sprint(args...)) }
func (g grpcLogger) Infoln(args ...any)                  { g.logf(slog.LevelDebug, "%s", fmt.Sprintln(args...)) }
func (g grpcLogger) Infof(format string, args ...any)    { g.logf(slog.LevelDebug, format, args...) }
func (g grpcLogger) Warning(args ...any)                 { g.logf(slog.LevelDebug, "%s", fmt.Sprint(args...)) }
func (g grpcLogger) Warningln(args ...any)               { g.logf(slog.LevelDebug, "%s", fmt.Sprintln(args...)) }
func (g grpcLogger) Warningf(format string, args ...any) { g.logf(slog.LevelDebug, format, args...) }
func (g grpcLogger) Error(args ...any)                   { g.logf(slog.LevelError, "%s", fmt.Sprint(args...)) }
func (g grpcLogger) Errorln(args ...any)                 { g.logf(slog.LevelError, "%s", fmt.Sprintln(args...)) }
func (g grpcLogger) Errorf(format string, args ...any)   { g.logf(slog.LevelError, format, args...) }

// Fatal and friends are what gRPC calls before it exits the process; log
// at error and let grpclog exit as it would.
func (g grpcLogger) Fatal(args ...any)                 { g.logf(slog.LevelError, "%s", fmt.Sprint(args...)) }
func (g grpcLogger) Fatalln(args ...any)               { g.logf(slog.LevelError, "%s", fmt.Sprintln(args...)) }
func (g grpcLogger) Fatalf(format string, args ...any) { g.logf(slog.LevelError, format, args...) }

// V reports whether gRPC's verbose level l is logged: only at debug.
func (g grpcLogger) V(l int) bool { return g.log.Enabled(context.Background(), slog.LevelDebug) }

// flags.go holds the command's own kinds of flag: intervals that take both
// "60" (seconds, as the reference server) and "60s", and the record of which
// flags the command line or the environment set, as opposed to defaults.

package main

import (
	"fmt"
	"math"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kong"
)

// intervalMapper decodes a time.Duration flag tagged type:"interval". A
// bare number is seconds ("60", "0.5"), as the reference server takes
// --purge-interval; anything else is a Go duration ("60s", "1m30s",
// "250ms").
type intervalMapper struct{}

var _ kong.Mapper = intervalMapper{}

// Decode implements kong.Mapper.
func (intervalMapper) Decode(ctx *kong.DecodeContext, target reflect.Value) error {
	if target.Type() != reflect.TypeFor[time.Duration]() {
		return fmt.Errorf(`type:"interval" must be applied to a time.Duration, not %s`, target.Type())
	}
	t, err := ctx.Scan.PopValue("interval")
	if err != nil {
		return err
	}
	var d time.Duration
	switch v := t.Value.(type) {
	case string:
		d, err = parseInterval(v)
	case int, int64, float64: // from a configuration resolver
		d, err = parseInterval(fmt.Sprint(v))
	default:
		err = fmt.Errorf("expected an interval but got %v", v)
	}
	if err != nil {
		return err
	}
	target.Set(reflect.ValueOf(d))
	return nil
}

// parseInterval reads "60" (seconds) or a Go duration.
func parseInterval(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if secs, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > math.MaxInt64/float64(time.Second) {
			return 0, fmt.Errorf("interval %q is out of range", s)
		}
		return time.Duration(secs * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("expected seconds (60) or a duration (60s, 1m30s, 250ms) but got %q", s)
	}
	return d, nil
}

// setFlags records, for each flag that the command line or the environment
// set, where its value came from ("--data-dir" or
// "RUNSPEC_REGISTRY_DATA_DIR"); flags left at their defaults are absent.
// A flag given both ways is named as on the command line, which wins.
type setFlags map[string]string

// explicitFlags finds the flags of the selected command that were set.
func explicitFlags(kctx *kong.Context) setFlags {
	set := setFlags{}
	if node := kctx.Selected(); node != nil {
		for _, group := range node.AllFlags(false) {
			for _, f := range group {
				for _, env := range f.Envs {
					if _, ok := os.LookupEnv(env); ok { // as kong: an empty variable is a value
						set[f.Name] = env
						break
					}
				}
			}
		}
	}
	for _, p := range kctx.Path {
		if p.Flag != nil {
			set[p.Flag.Name] = "--" + p.Flag.Name
		}
	}
	return set
}

// describe names flag as it was set: "--etcd-prefix", or
// "RUNSPEC_REGISTRY_ETCD_PREFIX (--etcd-prefix)" from the environment.
func (s setFlags) describe(flag string) string {
	src := s[flag]
	if src == "" || strings.HasPrefix(src, "--") {
		return "--" + flag
	}
	return src + " (--" + flag + ")"
}

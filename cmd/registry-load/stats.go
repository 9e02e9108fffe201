// stats.go records request outcomes per worker and turns them into figures: counts, throughput and latency percentiles.

package main

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// recorder collects the outcomes of one worker's requests. It is not safe for
// concurrent use: each worker owns one, and they are merged when all are done.
type recorder struct {
	lat     []time.Duration // latency of every completed attempt, failed ones included
	errs    map[string]int  // error kind ("transport" or the HTTP status) -> count
	refresh int             // heartbeats answered {"status":"refresh"}
	bytes   int64           // response body bytes read
}

func newRecorder() *recorder {
	return &recorder{lat: make([]time.Duration, 0, 1024)}
}

// add records one request. A transport error or a non-2xx status is an error.
func (r *recorder) add(lat time.Duration, status int, n int64, err error) {
	r.lat = append(r.lat, lat)
	r.bytes += n
	var kind string
	switch {
	case err != nil:
		kind = "transport"
	case status < 200 || status > 299:
		kind = strconv.Itoa(status)
	default:
		return
	}
	if r.errs == nil {
		r.errs = make(map[string]int)
	}
	r.errs[kind]++
}

// Stats are the merged figures of one measured phase.
type Stats struct {
	Requests   int
	Errors     int
	ErrorKinds map[string]int
	Refresh    int
	Bytes      int64
	Elapsed    time.Duration
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	Max        time.Duration
}

// Throughput is requests per second over the phase's wall time.
func (s Stats) Throughput() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Requests) / s.Elapsed.Seconds()
}

// merge combines the recorders of one phase that took elapsed wall time.
func merge(elapsed time.Duration, recs ...*recorder) Stats {
	s := Stats{Elapsed: elapsed}
	n := 0
	for _, r := range recs {
		n += len(r.lat)
	}
	all := make([]time.Duration, 0, n)
	for _, r := range recs {
		all = append(all, r.lat...)
		s.Refresh += r.refresh
		s.Bytes += r.bytes
		for k, v := range r.errs {
			if s.ErrorKinds == nil {
				s.ErrorKinds = make(map[string]int)
			}
			s.ErrorKinds[k] += v
			s.Errors += v
		}
	}
	slices.Sort(all)
	s.Requests = len(all)
	s.P50 = percentile(all, 50)
	s.P90 = percentile(all, 90)
	s.P99 = percentile(all, 99)
	if len(all) > 0 {
		s.Max = all[len(all)-1]
	}
	return s
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted: the smallest sample that at least p% of the samples do not exceed.
// It returns 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p * float64(len(sorted)) / 100))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// fmtDur prints a latency with about three significant digits.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// fmtKinds prints error kinds as "429×12 transport×1", sorted by kind.
func fmtKinds(kinds map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		parts = append(parts, fmt.Sprintf("%s×%d", k, kinds[k]))
	}
	return strings.Join(parts, " ")
}

// rss.go reads a server process's resident memory (VmRSS) and peak resident memory (VmHWM) from /proc.

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Mem is a process's memory in KiB, as /proc/PID/status gives it.
type Mem struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: peak resident since the process started
}

// readMem reads the memory figures of process pid (Linux only).
func readMem(pid int) (Mem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, err
	}
	return parseStatus(b)
}

// parseStatus extracts VmRSS and VmHWM from the text of /proc/PID/status.
func parseStatus(b []byte) (Mem, error) {
	var m Mem
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		num, _, _ := strings.Cut(strings.TrimSpace(val), " ") // "12345 kB"
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("bad %s line %q: %w", key, sc.Text(), err)
		}
		if key == "VmRSS" {
			m.RSS = kb
		} else {
			m.HWM = kb
		}
		seen++
	}
	if seen != 2 {
		return Mem{}, fmt.Errorf("VmRSS or VmHWM missing (kernel thread or exited process?)")
	}
	return m, nil
}

// fmtKiB prints a KiB figure as MiB.
func fmtKiB(kb int64) string {
	return fmt.Sprintf("%.1fMiB", float64(kb)/1024)
}

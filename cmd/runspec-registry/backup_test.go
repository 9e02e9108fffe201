// backup_test.go tests where backup writes, in the process: standard
// output, a new file, a directory, and what it refuses to replace.

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/go-cmp/cmp"
	"github.com/runspec/registry/store/bolt"
)

// dataDir returns a data directory holding a valid, closed data file.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := bolt.Open(filepath.Join(dir, dataFile), bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBackup runs "backup --data-dir dir args..." in the process.
func runBackup(t *testing.T, dir string, args ...string) (stdout, stderr []byte, err error) {
	t.Helper()
	var c cli
	var out, errOut bytes.Buffer
	p, err := newParser(&c, kong.Exit(func(int) {}), kong.Writers(&out, &errOut),
		kong.BindTo(context.Background(), (*context.Context)(nil)))
	if err != nil {
		t.Fatal(err)
	}
	kctx, err := p.Parse(append([]string{"backup", "--data-dir", dir}, args...))
	if err != nil {
		t.Fatal(err)
	}
	err = kctx.Run()
	return out.Bytes(), errOut.Bytes(), err
}

// checkCopy fails unless path is a complete data file, identical to want.
func checkCopy(t *testing.T, path string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes, not the %d of the copy to standard output", path, len(got), len(want))
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatalf("the copy does not open: %v", err)
	}
	st.Close()
}

// noTemporaryFiles fails if a backup left a temporary file in dir.
func noTemporaryFiles(t *testing.T, dir string) {
	t.Helper()
	if left, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

func TestBackupDestinations(t *testing.T) {
	dir := dataDir(t)
	stdout, stderr, err := runBackup(t, dir, "-")
	if err != nil {
		t.Fatal(err)
	}
	want := stdout // the reference copy: two copies of an unchanged file are the same bytes
	if len(want) == 0 {
		t.Fatal("nothing written to standard output")
	}
	if !strings.Contains(string(stderr), "bytes to standard output") {
		t.Errorf("stderr %q does not say what was written", stderr)
	}
	checkCopy(t, writeTemp(t, want), want)

	t.Run("new file", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.db")
		stdout, _, err := runBackup(t, dir, out)
		if err != nil {
			t.Fatal(err)
		}
		checkCopy(t, out, want)
		if fi, _ := os.Stat(out); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600", fi.Mode().Perm())
		}
		if !strings.Contains(string(stdout), "wrote "+out) {
			t.Errorf("stdout %q does not name the file", stdout)
		}
		noTemporaryFiles(t, filepath.Dir(out))
	})

	t.Run("existing file needs --force", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.db")
		os.WriteFile(out, []byte("older copy"), 0o600)
		_, _, err := runBackup(t, dir, out)
		if diff := cmp.Diff(out+" exists: give --force to replace it", errString(err)); diff != "" {
			t.Errorf("error mismatch (-want +got):\n%s", diff)
		}
		if b, _ := os.ReadFile(out); string(b) != "older copy" {
			t.Error("the existing file was changed")
		}
		noTemporaryFiles(t, filepath.Dir(out))
		if _, _, err := runBackup(t, dir, "--force", out); err != nil {
			t.Fatal(err)
		}
		checkCopy(t, out, want)
	})

	t.Run("directory", func(t *testing.T) {
		into := t.TempDir()
		if _, _, err := runBackup(t, dir, into); err != nil {
			t.Fatal(err)
		}
		names, _ := filepath.Glob(filepath.Join(into, "*"))
		if len(names) != 1 || !regexp.MustCompile(`/registry-\d{8}T\d{6}Z\.db$`).MatchString(names[0]) {
			t.Fatalf("directory holds %v, want one registry-<UTC time>.db", names)
		}
		checkCopy(t, names[0], want)
		noTemporaryFiles(t, into)
	})

	t.Run("symbolic link to a directory", func(t *testing.T) {
		into, link := t.TempDir(), filepath.Join(t.TempDir(), "backups")
		if err := os.Symlink(into, link); err != nil {
			t.Fatal(err)
		}
		if _, _, err := runBackup(t, dir, link); err != nil {
			t.Fatal(err)
		}
		if names, _ := filepath.Glob(filepath.Join(into, "registry-*.db")); len(names) != 1 {
			t.Errorf("directory holds %v, want one copy", names)
		}
	})

	t.Run("symbolic link to a file", func(t *testing.T) {
		tdir := t.TempDir()
		target, link := filepath.Join(tdir, "target.db"), filepath.Join(tdir, "latest.db")
		os.WriteFile(target, []byte("older copy"), 0o600)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{link}, {"--force", link}} {
			_, _, err := runBackup(t, dir, args...)
			want := link + " is a symbolic link, not a regular file: not replacing it (use - for standard output)"
			if diff := cmp.Diff(want, errString(err)); diff != "" {
				t.Errorf("%v: error mismatch (-want +got):\n%s", args, diff)
			}
		}
		if dest, err := os.Readlink(link); err != nil || dest != target {
			t.Errorf("the link was replaced: %q, %v", dest, err)
		}
		if b, _ := os.ReadFile(target); string(b) != "older copy" {
			t.Error("the link's target was changed")
		}
		noTemporaryFiles(t, tdir)
	})

	t.Run("named pipe", func(t *testing.T) {
		fifo := filepath.Join(t.TempDir(), "pipe")
		if err := syscall.Mkfifo(fifo, 0o600); err != nil {
			t.Skip("no named pipes here:", err)
		}
		_, _, err := runBackup(t, dir, "--force", fifo)
		want := fifo + " is a named pipe, not a regular file: not replacing it (use - for standard output)"
		if diff := cmp.Diff(want, errString(err)); diff != "" {
			t.Errorf("error mismatch (-want +got):\n%s", diff)
		}
		if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
			t.Errorf("the pipe was replaced: %v, %v", fi, err)
		}
	})

	t.Run("nothing to back up", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "copy.db")
		_, _, err := runBackup(t, t.TempDir(), out)
		if err == nil || !strings.Contains(err.Error(), "nothing to back up") {
			t.Errorf("error %v, want nothing to back up", err)
		}
		if _, err := os.Lstat(out); !os.IsNotExist(err) {
			t.Errorf("%s exists after a failed backup", out)
		}
		noTemporaryFiles(t, filepath.Dir(out))
	})
}

// TestMayReplace checks, without writing anything, what backup refuses to
// replace among the system's files: devices and /dev/stdout, the link that
// an earlier version replaced with a regular file when run as root.
func TestMayReplace(t *testing.T) {
	tests := []struct{ path, want string }{
		{"/dev/null", "/dev/null is a device, not a regular file: not replacing it (use - for standard output)"},
		{"/dev/stdout", "/dev/stdout is a symbolic link, not a regular file: not replacing it (use - for standard output)"},
		{"/", "/ is a directory, not a regular file: not replacing it (use - for standard output)"},
		{filepath.Join(t.TempDir(), "new.db"), ""},
	}
	for _, tt := range tests {
		fi, err := os.Lstat(tt.path)
		if err == nil && tt.path == "/dev/stdout" && fi.Mode()&os.ModeSymlink == 0 {
			continue // not a link on this system
		}
		if diff := cmp.Diff(tt.want, errString(mayReplace(tt.path, true))); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tt.path, diff)
		}
	}
}

func TestBackupPath(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 42, 0, 0, time.FixedZone("CET", 3600))
	dir := t.TempDir()
	tests := []struct{ file, want string }{
		{dir, filepath.Join(dir, "registry-20261201T074200Z.db")},
		{filepath.Join(dir, "copy.db"), filepath.Join(dir, "copy.db")},
		{"relative.db", "relative.db"},
	}
	for _, tt := range tests {
		got, err := backupPath(tt.file, now)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: mismatch (-want +got):\n%s", tt.file, diff)
		}
	}
}

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stdout.db")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

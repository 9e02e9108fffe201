// backup.go holds the backup command: a consistent copy of the data file,
// through the running registry's socket or from the file itself, written to
// standard output, to a file (atomically, never over anything but a regular
// file, and over one only with --force) or into a directory.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kong"
	"github.com/runspec/registry/store/bolt"
)

// backupCmd is the backup command.
type backupCmd struct {
	DataDir string `name:"data-dir" env:"RUNSPEC_REGISTRY_DATA_DIR" type:"path" help:"Data directory of the registry (default: the state directory)."`
	Force   bool   `help:"Replace the file if it exists (a regular file only)."`
	File    string `arg:"" type:"path" help:"Where to write the copy: a file, a directory (the copy is then named registry-<UTC time>.db), or - for standard output. Restore by copying it to DATA-DIR/registry.db while the registry is stopped."`
}

// backupTimeFormat names copies written into a directory.
const backupTimeFormat = "20060102T150405Z"

// Run writes a consistent copy of the data file: through the running
// registry's socket if it runs, else from the file directly.
func (b *backupCmd) Run(ctx context.Context, kctx *kong.Context) error {
	dir := b.DataDir
	if dir == "" {
		var err error
		if dir, err = defaultDataDir(); err != nil {
			return err
		}
	}
	copyTo := func(w io.Writer) (int64, error) { return backupData(ctx, dir, w) }
	if b.File == "-" {
		n, err := copyTo(kctx.Stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(kctx.Stderr, "wrote %d bytes to standard output\n", n)
		return nil
	}
	dest, err := backupPath(b.File, time.Now())
	if err != nil {
		return err
	}
	n, err := writeFileAtomically(dest, b.Force, copyTo)
	if err != nil {
		return err
	}
	fmt.Fprintf(kctx.Stdout, "wrote %s (%d bytes)\n", dest, n)
	return nil
}

// backupPath is where a copy asked for as file goes: file itself, or a
// new name in it if it is a directory (or a link to one).
func backupPath(file string, now time.Time) (string, error) {
	fi, err := os.Stat(file)
	if err == nil && fi.IsDir() {
		return filepath.Join(file, "registry-"+now.UTC().Format(backupTimeFormat)+".db"), nil
	}
	return file, nil
}

// writeFileAtomically writes what write produces to a temporary file next to
// path and moves it to path once it is complete and synced, so that path
// is either the whole copy or what it was before. It never replaces
// anything but a regular file, and a regular file only if force is set.
func writeFileAtomically(path string, force bool, write func(io.Writer) (int64, error)) (int64, error) {
	if err := mayReplace(path, force); err != nil {
		return 0, err
	}
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp") // new, mode 0600
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := write(tmp)
	if err != nil {
		return n, err
	}
	if err := tmp.Sync(); err != nil {
		return n, err
	}
	if err := tmp.Close(); err != nil {
		return n, err
	}
	if err := publish(tmp.Name(), path, force); err != nil {
		return n, err
	}
	if d, err := os.Open(dir); err == nil { // make the new name durable
		d.Sync()
		d.Close()
	}
	return n, nil
}

// mayReplace says why path must not be written, if it must not.
func mayReplace(path string, force bool) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return fmt.Errorf("%s is %s, not a regular file: not replacing it (use - for standard output)", path, fileKind(fi.Mode()))
	case !force:
		return fmt.Errorf("%s exists: give --force to replace it", path)
	}
	return nil
}

// publish moves the complete temporary file tmp to path. Without force a
// hard link makes it appear only if path is still free; where the file
// system has no hard links, a check just before the rename has to do.
func publish(tmp, path string, force bool) error {
	if !force {
		err := os.Link(tmp, path)
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s exists: give --force to replace it", path)
		}
		if err == nil {
			return nil
		}
	}
	if err := mayReplace(path, force); err != nil { // it may have changed meanwhile
		return err
	}
	return os.Rename(tmp, path)
}

// fileKind names what a file that is not a regular file is.
func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m.IsDir():
		return "a directory"
	case m&fs.ModeDevice != 0, m&fs.ModeCharDevice != 0:
		return "a device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "a special file"
}

// backupData writes a consistent copy of the data file in dir to w.
func backupData(ctx context.Context, dir string, w io.Writer) (int64, error) {
	n, err := backupViaSocket(ctx, filepath.Join(dir, backupSock), w)
	if errors.Is(err, errNoServer) {
		n, err = backupFile(filepath.Join(dir, dataFile), w)
	}
	return n, err
}

var errNoServer = errors.New("no registry is serving this data directory")

func backupViaSocket(ctx context.Context, sock string, w io.Writer) (int64, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://registry/backup", nil)
	resp, err := client.Do(req)
	if err != nil {
		return 0, errNoServer
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("backup through %s: %s", sock, resp.Status)
	}
	return io.Copy(w, resp.Body)
}

func backupFile(path string, w io.Writer) (int64, error) {
	if _, err := os.Stat(path); err != nil {
		return 0, fmt.Errorf("nothing to back up: %w", err)
	}
	st, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		return 0, err
	}
	defer st.Close()
	return st.Backup(w)
}

// backup.go holds the backup command: a consistent copy of the data file,
// through the running registry's socket or from the file itself.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"github.com/runspec/registry/store/bolt"
)

// backupCmd is the backup command.
type backupCmd struct {
	DataDir string `name:"data-dir" env:"RUNSPEC_REGISTRY_DATA_DIR" type:"path" help:"Data directory of the registry (default: the state directory)."`
	File    string `arg:"" type:"path" help:"Where to write the copy. Restore by copying it to DATA-DIR/registry.db while the registry is stopped."`
}

// Run writes a consistent copy of the data file: through the running
// registry's socket if it runs, else from the file directly.
func (b *backupCmd) Run(ctx context.Context) error {
	dir := b.DataDir
	if dir == "" {
		var err error
		if dir, err = defaultDataDir(); err != nil {
			return err
		}
	}
	tmp := b.File + ".tmp"
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	defer out.Close()
	n, err := backupViaSocket(ctx, filepath.Join(dir, backupSock), out)
	if errors.Is(err, errNoServer) {
		n, err = backupFile(filepath.Join(dir, dataFile), out)
	}
	if err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, b.File); err != nil {
		return err
	}
	fmt.Printf("wrote %s (%d bytes)\n", b.File, n)
	return nil
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

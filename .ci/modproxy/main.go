// Command modproxy writes a file-based Go module proxy (for GOPROXY=file://DIR)
// holding modules of a working tree at one version, so that a release can be
// installed and required before it is tagged:
//
//	go run . -o DIR -v v0.2.0 MODULE-DIR...
//
// Each module's zip is made with golang.org/x/mod/zip (the code the go command
// itself uses) from the files git would commit: tracked files and untracked
// ones that .gitignore does not exclude, as they are in the working tree.
// Nested modules, vendor directories and the like are left out as they would
// be from a published version. It prints the go.sum lines of what it wrote.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/mod/modfile"
	"golang.org/x/mod/module"
	"golang.org/x/mod/semver"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

func main() {
	out := flag.String("o", "", "proxy directory to write (created if missing)")
	version := flag.String("v", "", "version to give every module, e.g. v0.2.0")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: modproxy -o DIR -v VERSION MODULE-DIR...")
		flag.PrintDefaults()
	}
	flag.Parse()
	if *out == "" || flag.NArg() == 0 || !semver.IsValid(*version) || semver.Canonical(*version) != *version {
		flag.Usage()
		os.Exit(2)
	}
	for _, dir := range flag.Args() {
		sums, err := write(*out, *version, dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "modproxy:", err)
			os.Exit(1)
		}
		fmt.Print(sums)
	}
}

// write adds the module in dir to the proxy at out as version v and returns
// its go.sum lines.
func write(out, v, dir string) (string, error) {
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return "", err
	}
	path := modfile.ModulePath(gomod)
	if path == "" {
		return "", fmt.Errorf("%s/go.mod names no module", dir)
	}
	m := module.Version{Path: path, Version: v}
	files, err := gitFiles(dir)
	if err != nil {
		return "", err
	}
	escaped, err := module.EscapePath(path)
	if err != nil {
		return "", err
	}
	vdir := filepath.Join(out, filepath.FromSlash(escaped), "@v")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		return "", err
	}
	zipPath := filepath.Join(vdir, v+".zip")
	zf, err := os.Create(zipPath)
	if err != nil {
		return "", err
	}
	if err := zip.Create(zf, m, files); err != nil {
		zf.Close()
		return "", fmt.Errorf("%s: %w", dir, err)
	}
	if err := zf.Close(); err != nil {
		return "", err
	}
	info, _ := json.Marshal(struct {
		Version string
		Time    time.Time
	}{v, time.Now().UTC().Truncate(time.Second)})
	if err := os.WriteFile(filepath.Join(vdir, v+".info"), info, 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(vdir, v+".mod"), gomod, 0o644); err != nil {
		return "", err
	}
	if err := addToList(filepath.Join(vdir, "list"), v); err != nil {
		return "", err
	}

	zipHash, err := dirhash.HashZip(zipPath, dirhash.Hash1)
	if err != nil {
		return "", err
	}
	modHash, err := dirhash.Hash1([]string{"go.mod"}, func(string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(gomod)), nil
	})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%s %s %s\n%s %s/go.mod %s\n", path, v, zipHash, path, v, modHash), nil
}

// addToList adds v to the proxy's version list if it is not there yet.
func addToList(list, v string) error {
	b, err := os.ReadFile(list)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	versions := strings.Fields(string(b))
	if slices.Contains(versions, v) {
		return nil
	}
	versions = append(versions, v)
	semver.Sort(versions)
	return os.WriteFile(list, []byte(strings.Join(versions, "\n")+"\n"), 0o644)
}

// gitFiles lists the files of dir that git would commit, relative to dir.
// Files deleted from the working tree but still tracked are left out.
func gitFiles(dir string) ([]zip.File, error) {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("git ls-files in %s: %w", dir, err)
	}
	var files []zip.File
	seen := map[string]bool{}
	for _, name := range strings.Split(string(b), "\x00") {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		f := file{slash: name, path: filepath.Join(dir, filepath.FromSlash(name))}
		if _, err := os.Lstat(f.path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		files = append(files, f)
	}
	return files, nil
}

// file is a file of the working tree, as zip.Create wants it.
type file struct {
	slash string // the path in the module, slash-separated
	path  string // the path on disk
}

// Path, Lstat and Open implement zip.File.
func (f file) Path() string                 { return f.slash }
func (f file) Lstat() (os.FileInfo, error)  { return os.Lstat(f.path) }
func (f file) Open() (io.ReadCloser, error) { return os.Open(f.path) }

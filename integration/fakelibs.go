//go:build integration

package integration

// The fake GGML backend libraries, built once per test binary, and a file
// copy for the install trees of llamaserver_test.go.

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

var (
	fakeMu    sync.Mutex
	fakeCache = map[string]string{}
	fakeDir   string
)

// FakeLib returns the path of fake library variant v, building it once per
// test binary (into a directory removed by TestMain).
func FakeLib(t testing.TB, v fakegpu.Variant) string {
	t.Helper()
	fakeMu.Lock()
	defer fakeMu.Unlock()
	if p, ok := fakeCache[v.Prefix+v.FileName]; ok {
		return p
	}
	if fakeDir == "" {
		d, err := os.MkdirTemp("", "obs-fakegpu-")
		if err != nil {
			t.Fatal(err)
		}
		fakeDir = d
	}
	p, err := fakegpu.Build("", filepath.Join(fakeDir, v.Prefix), v)
	if errors.Is(err, fakegpu.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	fakeCache[v.Prefix+v.FileName] = p
	return p
}

func cleanupFakes() {
	fakeMu.Lock()
	defer fakeMu.Unlock()
	if fakeDir != "" {
		os.RemoveAll(fakeDir)
	}
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyTree copies the folder src to dst: regular files with their mode,
// folders, and symbolic links as links (the sonames of an install tree).
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case info.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		default:
			return copyFile(path, target, info.Mode().Perm())
		}
	})
}

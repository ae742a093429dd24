//go:build integration

package integration

// Install-tree fixture: <tmp>/bin/ollama plus <tmp>/lib/ollama with fake (and
// optionally real) GGML backend libraries, in the flat layout used by distro
// packages (everything directly in lib/ollama) or the subdirectory layout of
// upstream's release tarballs (lib/ollama/rocm, lib/ollama/vulkan, ...).

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// Layout of lib/ollama.
type Layout int

const (
	// Flat puts every library directly in lib/ollama.
	Flat Layout = iota
	// Subdir puts each GPU library in its own directory (rocm/, vulkan/,
	// cuda_v12/), as upstream's release builds do.
	Subdir
)

func (l Layout) String() string {
	if l == Subdir {
		return "subdir"
	}
	return "flat"
}

// SubdirFor is the lib/ollama subdirectory upstream uses for a backend
// library file name in the Subdir layout.
func SubdirFor(file string) string {
	switch file {
	case "libggml-hip.so":
		return "rocm"
	case "libggml-vulkan.so":
		return "vulkan"
	case "libggml-cuda.so":
		return "cuda_v12"
	}
	return ""
}

// InstallOptions configure NewInstallTree.
type InstallOptions struct {
	// Binary is copied (or hard-linked) to bin/ollama. It must not be a
	// symlink in the tree: ollama resolves its own path with EvalSymlinks
	// and would look for lib/ollama next to the link target.
	Binary string
	Layout Layout
	// Fakes are the fake libraries to build and install (nil = HIP and
	// Vulkan twins; use an empty non-nil slice for none).
	Fakes []fakegpu.Variant
	// Real maps a destination relative to lib/ollama (e.g.
	// "libggml-base.so" or "vulkan/libggml-vulkan.so") to a real library
	// to copy there.
	Real map[string]string
}

// InstallTree is a laid-out fixture.
type InstallTree struct {
	Root   string
	Bin    string // Root/bin/ollama
	LibDir string // Root/lib/ollama
	// Libs maps each installed library file name (fake or real) to its path.
	Libs map[string]string
}

// NewInstallTree builds the fixture in a fresh temp dir.
func NewInstallTree(t testing.TB, opts InstallOptions) *InstallTree {
	t.Helper()
	RequireBinary(t, opts.Binary, "ollama")
	root := t.TempDir()
	it := &InstallTree{
		Root:   root,
		Bin:    filepath.Join(root, "bin", "ollama"),
		LibDir: filepath.Join(root, "lib", "ollama"),
		Libs:   map[string]string{},
	}
	if err := os.MkdirAll(it.LibDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(it.Bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := linkOrCopy(opts.Binary, it.Bin, 0o755); err != nil {
		t.Fatal(err)
	}
	fakes := opts.Fakes
	if fakes == nil {
		fakes = []fakegpu.Variant{fakegpu.HIP, fakegpu.Vulkan}
	}
	for _, v := range fakes {
		src := FakeLib(t, v)
		dst := filepath.Join(it.LibDir, v.FileName)
		if opts.Layout == Subdir {
			dst = filepath.Join(it.LibDir, SubdirFor(v.FileName), v.FileName)
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(src, dst, 0o755); err != nil {
			t.Fatal(err)
		}
		it.Libs[v.FileName] = dst
	}
	for rel, src := range opts.Real {
		dst := filepath.Join(it.LibDir, rel)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(src, dst, 0o755); err != nil {
			t.Fatal(err)
		}
		it.Libs[filepath.Base(rel)] = dst
	}
	return it
}

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

func linkOrCopy(src, dst string, mode os.FileMode) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	return copyFile(src, dst, mode)
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

// Package fakegpu builds the fake GGML GPU backend library in
// integration/testdata/fakegpu/fakegpu.c and offers helpers to configure it.
//
// The library is loaded by the real llama-server of the runtime root
// (scripts/buildroot.sh runtime: Debian sid's llama.cpp-tools and libggml0),
// so it is compiled there, with the root's gcc (through scripts/inroot.sh,
// as root), against the root's public ggml headers and the backend ABI of
// the root's ggml version: ggml's own ggml-backend-impl.h when
// scripts/ggml-src.sh can fetch Debian's source package, else the fake's
// declarations in testdata/fakegpu/ggml-abi.h (ggml 0.27.0, API version 3).
//
// One process may load several copies at once, e.g. a libggml-hip.so and a
// libggml-vulkan-fake.so twin that report the same PCI device. Each copy is
// built with its own environment prefix (FAKEHIP_, FAKEVK_, ...) and
// compiled-in defaults, and additionally reads the shared FAKEGPU_ prefix.
// See fakegpu.c for the list of settings.
package fakegpu

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
)

// RootName is the build root the library is compiled in and loaded by.
const RootName = "runtime"

// ABIVersion is the ggml version whose backend ABI testdata/fakegpu/ggml-abi.h
// declares (used when ggml's own header cannot be fetched).
const ABIVersion = "0.27.0"

// Variant is one built copy of the fake library.
type Variant struct {
	// FileName is the library file name, e.g. "libggml-hip.so". ggml's
	// loader only picks up libggml-NAME.so or libggml-NAME-*.so for the
	// known backend names (hip, vulkan, cuda, ...); see FlatTree.
	FileName string
	// Prefix is the per-copy environment prefix, e.g. "FAKEHIP_".
	Prefix string
	// Defaults are compiled-in settings (keys as in fakegpu.c without
	// prefix, e.g. "LIBRARY": "ROCm"). Environment variables override them.
	Defaults map[string]string
}

// Standard variants. HIP reports library ROCm (devices "ROCm0", as ggml's
// HIP build names them), Vulkan reports Vulkan, CUDA reports CUDA.
//
// Vulkan is named libggml-vulkan-fake.so: ggml loads the best-scoring
// libggml-vulkan-*.so of all its search folders and falls back to a plain
// libggml-vulkan.so only when none scores, taking the first folder that has
// one, which is always the compiled-in backends0 folder with Debian's real
// Vulkan backend. A scored variant therefore replaces the real one wherever
// it lies; set GGML_BACKEND_PATH to the real library (RealVulkan) to have
// both, and Vulkan.Env("INDEX", "1") to keep their names apart.
var (
	HIP    = Variant{FileName: "libggml-hip.so", Prefix: "FAKEHIP_", Defaults: map[string]string{"LIBRARY": "ROCm"}}
	Vulkan = Variant{FileName: "libggml-vulkan-fake.so", Prefix: "FAKEVK_", Defaults: map[string]string{"LIBRARY": "Vulkan"}}
	CUDA   = Variant{FileName: "libggml-cuda.so", Prefix: "FAKECUDA_", Defaults: map[string]string{"LIBRARY": "CUDA"}}
)

// Env returns "PREFIXKEY=value" for this variant.
func (v Variant) Env(key, value string) string { return v.Prefix + key + "=" + value }

// SharedEnv returns "FAKEGPU_KEY=value" (read by every copy).
func SharedEnv(key, value string) string { return "FAKEGPU_" + key + "=" + value }

// Library reports the compiled-in library name of the variant.
func (v Variant) Library() string { return v.Defaults["LIBRARY"] }

// TestdataDir is integration/testdata/fakegpu in this checkout.
func TestdataDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return filepath.Join("integration", "testdata", "fakegpu")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "testdata", "fakegpu")
}

// RepoDir is the root of this checkout.
func RepoDir() string {
	d, err := filepath.Abs(filepath.Join(TestdataDir(), "..", "..", ".."))
	if err != nil {
		return filepath.Join(TestdataDir(), "..", "..", "..")
	}
	return d
}

// RootDir is the runtime root's directory on this machine
// (${OBS_ROOTS:-/var/cache/ollama-backend-select/roots}/runtime).
func RootDir() string {
	roots := os.Getenv("OBS_ROOTS")
	if roots == "" {
		roots = "/var/cache/ollama-backend-select/roots"
	}
	return filepath.Join(roots, RootName)
}

// Paths inside the runtime root (Debian's flat layout).
var (
	// BackendsDir is ggml's compiled-in backend folder.
	BackendsDir = "/usr/lib/" + triplet() + "/ggml/backends0"
	// RealVulkan is Debian's Vulkan backend (lavapipe in the root).
	RealVulkan = BackendsDir + "/libggml-vulkan.so"
	// LlamaServer is the root's llama-server.
	LlamaServer = "/usr/bin/llama-server"
)

func triplet() string {
	if runtime.GOARCH == "arm64" {
		return "aarch64-linux-gnu"
	}
	return "x86_64-linux-gnu"
}

// ErrNoCompiler is returned when the library cannot be built here; errors
// that wrap it (ErrNoRuntime) mean the same to callers that skip on it.
var ErrNoCompiler = errors.New("fakegpu: no C compiler")

// ErrNoRuntime is returned when the runtime root is missing or this process
// is not root (scripts/inroot.sh needs both). It wraps ErrNoCompiler.
var ErrNoRuntime = fmt.Errorf("%w: the fake backend is built and loaded in the %q root (scripts/buildroot.sh %s), which needs root and that root", ErrNoCompiler, RootName, RootName)

// Available reports whether the runtime root can be used (nil) or why not
// (an error wrapping ErrNoRuntime).
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w (not running as root)", ErrNoRuntime)
	}
	if _, err := os.Stat(filepath.Join(RootDir(), "usr", "bin", "llama-server")); err != nil {
		return fmt.Errorf("%w (%s: no usr/bin/llama-server)", ErrNoRuntime, RootDir())
	}
	return nil
}

// InRoot returns a command that runs args inside the runtime root
// (scripts/inroot.sh). binds are host folders the command needs (test temp
// dirs): they are mounted at the same paths inside; the repository always
// is. The command's Env is nil (the caller's environment).
func InRoot(binds []string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(RepoDir(), "scripts", "inroot.sh"), append([]string{RootDir()}, args...)...)
	if len(binds) > 0 {
		cmd.Env = append(os.Environ(), "OBS_BIND="+strings.Join(append(binds, strings.Fields(os.Getenv("OBS_BIND"))...), " "))
	}
	return cmd
}

var (
	versionOnce sync.Once
	version     string
	versionErr  error
)

// GGMLVersion is the Debian version of the runtime root's libggml0, e.g.
// "0.27.0-1".
func GGMLVersion() (string, error) {
	versionOnce.Do(func() {
		if versionErr = Available(); versionErr != nil {
			return
		}
		out, err := InRoot(nil, "dpkg-query", "-W", "-f", "${Version}", "libggml0").Output()
		version = strings.TrimSpace(string(out))
		if err != nil || version == "" {
			versionErr = fmt.Errorf("fakegpu: cannot read libggml0's version in the %s root: %v", RootName, err)
		}
	})
	return version, versionErr
}

var (
	headersOnce sync.Once
	headersDir  string
	headersNote string
	headersErr  error
)

// Headers runs scripts/ggml-src.sh once per process and returns the folder
// with ggml's own headers of the root's ggml version (include/ and src/), or
// "" when the mirror does not serve that source package (the fake then uses
// its own ggml-abi.h; note says so). $OBS_GGML_SRC overrides the folder.
func Headers() (dir, note string, err error) {
	headersOnce.Do(func() {
		if d := os.Getenv("OBS_GGML_SRC"); d != "" {
			headersDir, headersNote = d, "ggml headers from $OBS_GGML_SRC"
			if _, err := os.Stat(filepath.Join(d, "src", "ggml-backend-impl.h")); err != nil {
				headersErr = fmt.Errorf("fakegpu: OBS_GGML_SRC=%s lacks src/ggml-backend-impl.h", d)
			}
			return
		}
		if headersErr = Available(); headersErr != nil {
			return
		}
		ver, err := GGMLVersion()
		if err != nil {
			headersErr = err
			return
		}
		cmd := exec.Command(filepath.Join(RepoDir(), "scripts", "ggml-src.sh"), RootDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		var exit *exec.ExitError
		switch {
		case err == nil:
			headersDir = strings.TrimSpace(string(out))
			headersNote = "ggml " + ver + " headers from Debian's source package (" + headersDir + ")"
		case errors.As(err, &exit) && exit.ExitCode() == 3:
			headersNote = fmt.Sprintf("ggml %s source not served by the mirror: built against ggml-abi.h (ABI of ggml %s)", ver, ABIVersion)
			if !strings.HasPrefix(ver, ABIVersion+"-") && ver != ABIVersion {
				headersErr = fmt.Errorf("fakegpu: the %s root has ggml %s, ggml-abi.h declares the ABI of %s, and ggml's own headers cannot be fetched (scripts/ggml-src.sh: %s)",
					RootName, ver, ABIVersion, strings.TrimSpace(stderr.String()))
			}
		default:
			headersErr = fmt.Errorf("fakegpu: scripts/ggml-src.sh: %v\n%s", err, stderr.String())
		}
	})
	return headersDir, headersNote, headersErr
}

// touch reads a source file in-process so that `go test` caching notices
// when it changes (the compiler reading it is invisible to the cache).
func touch(paths ...string) error {
	for _, p := range paths {
		if _, err := os.ReadFile(p); err != nil {
			return err
		}
	}
	return nil
}

func cString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// cflags are the compiler flags for src, the ggml header folder ("" =
// Headers(); no folder: the root's public headers and ggml-abi.h).
func cflags(src string) ([]string, error) {
	if src == "" {
		var err error
		if src, _, err = Headers(); err != nil {
			return nil, err
		}
	}
	td := TestdataDir()
	if err := touch(filepath.Join(td, "fakegpu.c"), filepath.Join(td, "probe.c"), filepath.Join(td, "ggml-abi.h")); err != nil {
		return nil, err
	}
	args := []string{"-std=c11", "-O2", "-Wall", "-I" + td}
	if src != "" {
		args = append(args, "-DFAKEGPU_IMPL_HEADER", "-I"+filepath.Join(src, "include"), "-I"+filepath.Join(src, "src"))
	}
	return args, nil
}

func gcc(binds []string, args ...string) error {
	if err := Available(); err != nil {
		return err
	}
	cmd := InRoot(binds, append([]string{"gcc"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fakegpu: gcc %s (in the %s root): %w\n%s", strings.Join(args, " "), RootName, err, out.String())
	}
	return nil
}

// Build compiles variant v into outDir/v.FileName and returns its path. src
// is a folder with ggml's headers (include/, src/ggml-backend-impl.h); ""
// means Headers().
func Build(src, outDir string, v Variant) (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	flags, err := cflags(src)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", err
	}
	if outDir, err = filepath.Abs(outDir); err != nil {
		return "", err
	}
	var defs []string
	for k, val := range v.Defaults {
		if strings.ContainsAny(k, ";=") || strings.Contains(val, ";") {
			return "", fmt.Errorf("fakegpu: bad compiled-in default %s=%q (no ';' allowed, no '=' in keys)", k, val)
		}
		defs = append(defs, k+"="+val)
	}
	sort.Strings(defs)
	out := filepath.Join(outDir, v.FileName)
	args := append(flags, "-fPIC", "-shared", "-fvisibility=hidden",
		"-DFAKEGPU_PREFIX="+cString(v.Prefix),
		"-DFAKEGPU_DEFAULTS="+cString(strings.Join(defs, ";")),
		"-o", out, filepath.Join(TestdataDir(), "fakegpu.c"),
		"-lggml", "-lggml-base", "-lpthread", "-ldl")
	if err := gcc([]string{outDir}, args...); err != nil {
		return "", err
	}
	return out, nil
}

// BuildProbe compiles the probe host (testdata/fakegpu/probe.c) to outPath;
// it runs in the root (Probe).
func BuildProbe(src, outPath string) error {
	flags, err := cflags(src)
	if err != nil {
		return err
	}
	if outPath, err = filepath.Abs(outPath); err != nil {
		return err
	}
	args := append(flags, "-o", outPath, filepath.Join(TestdataDir(), "probe.c"), "-lggml-base", "-ldl")
	return gcc([]string{filepath.Dir(outPath)}, args...)
}

// Probe runs the probe binary on lib inside the root with extra
// environment and returns its key=value output and its stderr (where the
// library prints its init lines). allocBytes > 0 also allocates and
// round-trips a buffer.
func Probe(probe, lib string, env []string, allocBytes int) (map[string]string, string, error) {
	args := []string{probe, lib}
	if allocBytes > 0 {
		args = append(args, fmt.Sprint(allocBytes))
	}
	cmd := InRoot([]string{filepath.Dir(probe), filepath.Dir(lib)}, append([]string{"env"}, append(env, args...)...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	kv := map[string]string{}
	for _, line := range strings.Split(stdout.String(), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			kv[k] = v
		}
	}
	return kv, stderr.String(), err
}

// FlatTree lays out dir the way Debian installs ggml (every backend in one
// folder) for a llama-server started as dir/llama-server inside the root:
// a copy of the root's llama-server (ggml searches the folder of
// /proc/self/exe, which a symlink would resolve to /usr/bin), a symlink to
// every backend of the root's backends0 folder, and the given libraries
// (copied; one with a backend's name replaces its symlink), with a copy of
// the root's ggml-rpc-server beside, as the fork installs it. It returns the
// llama-server path. ggml still searches backends0 itself first; see Vulkan.
func FlatTree(dir string, libs ...string) (string, error) {
	if err := Available(); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	own := map[string]bool{}
	for _, l := range libs {
		own[filepath.Base(l)] = true
	}
	entries, err := os.ReadDir(filepath.Join(RootDir(), BackendsDir))
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if own[e.Name()] {
			continue
		}
		if err := os.Symlink(filepath.Join(BackendsDir, e.Name()), filepath.Join(dir, e.Name())); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	for _, l := range libs {
		if err := copyFile(l, filepath.Join(dir, filepath.Base(l)), 0o755); err != nil {
			return "", err
		}
		// Ollama's native probe (PCI ids) opens libggml-vulkan.so by that
		// name: there, too, the fake stands in for the real one.
		if filepath.Base(l) == Vulkan.FileName {
			_ = os.Remove(filepath.Join(dir, "libggml-vulkan.so"))
			if err := copyFile(l, filepath.Join(dir, "libggml-vulkan.so"), 0o755); err != nil {
				return "", err
			}
		}
	}
	// The native probe also opens libggml-base.so and libggml.so from the
	// folder, where Debian keeps them in the library path.
	for _, name := range []string{"libggml-base.so", "libggml.so"} {
		if err := os.Symlink(filepath.Join("/usr/lib", triplet(), name+".0"), filepath.Join(dir, name)); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	server := filepath.Join(dir, "llama-server")
	if err := copyFile(filepath.Join(RootDir(), LlamaServer), server, 0o755); err != nil {
		return "", err
	}
	rpc := filepath.Join(RootDir(), "usr", "libexec", triplet(), "llama", "bin", "ggml-rpc-server")
	if _, err := os.Stat(rpc); err == nil {
		if err := copyFile(rpc, filepath.Join(dir, "ggml-rpc-server"), 0o755); err != nil {
			return "", err
		}
	}
	return server, nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

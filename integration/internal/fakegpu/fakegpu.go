// Package fakegpu compiles the fake GGML GPU backend library in
// integration/testdata/fakegpu/fakegpu.c with the system C compiler against
// upstream Ollama's ggml headers, and offers helpers to configure it.
//
// One process (Ollama's runner) may load several copies at once, e.g. a
// libggml-hip.so and a libggml-vulkan.so twin that report the same PCI
// device. Each copy is built with its own environment prefix (FAKEHIP_,
// FAKEVK_, ...) and compiled-in defaults, and additionally reads the shared
// FAKEGPU_ prefix. See fakegpu.c for the list of settings.
package fakegpu

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
)

// UpstreamModule and UpstreamVersion identify the pinned upstream source
// whose headers the library is compiled against.
const (
	UpstreamModule  = "github.com/ollama/ollama"
	UpstreamVersion = "v0.18.2"
)

// Variant is one built copy of the fake library.
type Variant struct {
	// FileName is the library file name, e.g. "libggml-hip.so". Upstream's
	// loader only picks up lib<ggml-NAME>.so or libggml-NAME-*.so for the
	// known backend names (hip, vulkan, cuda, ...).
	FileName string
	// Prefix is the per-copy environment prefix, e.g. "FAKEHIP_".
	Prefix string
	// Defaults are compiled-in settings (keys as in fakegpu.c without
	// prefix, e.g. "LIBRARY": "ROCm"). Environment variables override them.
	Defaults map[string]string
}

// Standard variants. HIP reports library ROCm (the name upstream's HIP
// build uses for its registry, devices and props.library), Vulkan reports
// Vulkan, CUDA reports CUDA.
var (
	HIP    = Variant{FileName: "libggml-hip.so", Prefix: "FAKEHIP_", Defaults: map[string]string{"LIBRARY": "ROCm"}}
	Vulkan = Variant{FileName: "libggml-vulkan.so", Prefix: "FAKEVK_", Defaults: map[string]string{"LIBRARY": "Vulkan"}}
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

// UpstreamSourceDir locates the upstream Ollama source tree: $OBS_OLLAMA_SRC
// if set, else the module's directory as reported by `go list -m`, else the
// default module cache location.
func UpstreamSourceDir() (string, error) {
	if d := os.Getenv("OBS_OLLAMA_SRC"); d != "" {
		return d, checkSource(d)
	}
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", UpstreamModule)
	cmd.Dir = filepath.Join(TestdataDir(), "..", "..", "..")
	if out, err := cmd.Output(); err == nil {
		if d := strings.TrimSpace(string(out)); d != "" {
			if err := checkSource(d); err == nil {
				return d, nil
			}
		}
	}
	modcache := os.Getenv("GOMODCACHE")
	if modcache == "" {
		if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
			modcache = strings.TrimSpace(string(out))
		}
	}
	if modcache == "" {
		home, _ := os.UserHomeDir()
		modcache = filepath.Join(home, "go", "pkg", "mod")
	}
	d := filepath.Join(modcache, UpstreamModule+"@"+UpstreamVersion)
	return d, checkSource(d)
}

func checkSource(dir string) error {
	h := filepath.Join(dir, "ml", "backend", "ggml", "ggml", "src", "ggml-backend-impl.h")
	if _, err := os.Stat(h); err != nil {
		return fmt.Errorf("fakegpu: upstream source %s lacks ggml headers: %w", dir, err)
	}
	return nil
}

// IncludeDirs are the -I directories for the ggml headers under src.
func IncludeDirs(src string) []string {
	g := filepath.Join(src, "ml", "backend", "ggml", "ggml")
	return []string{filepath.Join(g, "include"), filepath.Join(g, "src")}
}

// Compiler returns $CC or "cc".
func Compiler() string {
	if cc := os.Getenv("CC"); cc != "" {
		return cc
	}
	return "cc"
}

// ErrNoCompiler is returned when no C compiler is found.
var ErrNoCompiler = errors.New("fakegpu: no C compiler (set CC or install cc)")

// touch reads a source file in-process so that `go test` caching notices
// when it changes (the compiler reading it is invisible to the cache).
func touch(path string) error {
	_, err := os.ReadFile(path)
	return err
}

func run(args ...string) error {
	cc := Compiler()
	if _, err := exec.LookPath(cc); err != nil {
		return ErrNoCompiler
	}
	cmd := exec.Command(cc, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fakegpu: %s %s: %w\n%s", cc, strings.Join(args, " "), err, out.String())
	}
	return nil
}

func cString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// Build compiles variant v into outDir/v.FileName and returns its path.
// src is the upstream source dir ("" = UpstreamSourceDir()).
func Build(src, outDir string, v Variant) (string, error) {
	if src == "" {
		var err error
		if src, err = UpstreamSourceDir(); err != nil {
			return "", err
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
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
	if err := touch(filepath.Join(TestdataDir(), "fakegpu.c")); err != nil {
		return "", err
	}
	args := []string{"-std=c11", "-O2", "-Wall", "-fPIC", "-shared", "-fvisibility=hidden"}
	for _, inc := range IncludeDirs(src) {
		args = append(args, "-I"+inc)
	}
	args = append(args,
		"-DFAKEGPU_PREFIX="+cString(v.Prefix),
		"-DFAKEGPU_DEFAULTS="+cString(strings.Join(defs, ";")),
		"-o", out, filepath.Join(TestdataDir(), "fakegpu.c"),
		"-ldl")
	if err := run(args...); err != nil {
		return "", err
	}
	return out, nil
}

// BuildProbe compiles the probe host (testdata/fakegpu/probe.c) to outPath.
func BuildProbe(src, outPath string) error {
	if src == "" {
		var err error
		if src, err = UpstreamSourceDir(); err != nil {
			return err
		}
	}
	if err := touch(filepath.Join(TestdataDir(), "probe.c")); err != nil {
		return err
	}
	args := []string{"-std=c11", "-O2", "-Wall"}
	for _, inc := range IncludeDirs(src) {
		args = append(args, "-I"+inc)
	}
	args = append(args, "-o", outPath, filepath.Join(TestdataDir(), "probe.c"), "-ldl")
	return run(args...)
}

// Probe runs the probe binary on lib with extra environment and returns its
// key=value output. allocBytes > 0 also allocates and round-trips a buffer.
func Probe(probe, lib string, env []string, allocBytes int) (map[string]string, string, error) {
	args := []string{lib}
	if allocBytes > 0 {
		args = append(args, fmt.Sprint(allocBytes))
	}
	cmd := exec.Command(probe, args...)
	cmd.Env = append(os.Environ(), env...)
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

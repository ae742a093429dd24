//go:build integration

package integration

// The Arch packages (packaging/arch, made by `make arch-pkg`) unpacked into a
// scratch root the way pacman lays them out, with the fake ROCm + Vulkan twin
// put where the packages install the real GPU modules: the packaged
// /usr/bin/ollama must select exactly what the fork binary selects in a
// `make install LAYOUT=flat` tree (NewInstallTree, Flat), with the same env.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// archPkgNames are the split packages of packaging/arch/PKGBUILD.
var archPkgNames = []string{"ollama-backend-select", "ollama-backend-select-vulkan", "ollama-backend-select-rocm"}

// archPkgDir holds the packages: $OBS_ARCH_PKG_DIR or <repo>/build/arch/pkg.
func archPkgDir() string {
	if d := os.Getenv("OBS_ARCH_PKG_DIR"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), "build", "arch", "pkg")
}

// archUnavailable skips the test, or fails it where the packages were just
// made and must be there (ci-makepkg.sh sets OBS_ARCH_PKG_REQUIRED=1).
func archUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("OBS_ARCH_PKG_REQUIRED") == "1" {
		t.Fatalf("%s (OBS_ARCH_PKG_REQUIRED=1)", msg)
	}
	t.Skipf("%s; `make arch-pkg` makes them", msg)
}

// archPackages maps each package name to its file in archPkgDir.
func archPackages(t *testing.T) map[string]string {
	t.Helper()
	dir := archPkgDir()
	files, _ := filepath.Glob(filepath.Join(dir, "*.pkg.tar.zst"))
	// name-pkgver-pkgrel-arch.pkg.tar.zst
	re := regexp.MustCompile(`^(.+)-[^-]+-[^-]+-[^-]+\.pkg\.tar\.zst$`)
	pkgs := map[string]string{}
	for _, f := range files {
		if m := re.FindStringSubmatch(filepath.Base(f)); m != nil {
			if old, dup := pkgs[m[1]]; dup {
				t.Fatalf("two versions of %s in %s: %s and %s", m[1], dir, filepath.Base(old), filepath.Base(f))
			}
			pkgs[m[1]] = f
		}
	}
	for _, name := range archPkgNames {
		if pkgs[name] == "" {
			archUnavailable(t, "no %s package in %s (found %v)", name, dir, files)
		}
	}
	// Packages older than the fork binary are left from an earlier
	// checkout; comparing them with today's binary says nothing.
	bin := forkBin(t)
	if bst, err := os.Stat(bin); err == nil {
		for _, name := range archPkgNames {
			if pst, err := os.Stat(pkgs[name]); err == nil && pst.ModTime().Before(bst.ModTime()) {
				archUnavailable(t, "%s is older than %s", pkgs[name], bin)
			}
		}
	}
	return pkgs
}

// archUnpack extracts the packages into a fresh root (as pacman would,
// without the metadata files) and replaces the packaged libggml-hip.so and
// libggml-vulkan.so by the fake twin, at the paths the packages gave them.
func archUnpack(t *testing.T, pkgs map[string]string) *InstallTree {
	t.Helper()
	bsdtar, err := exec.LookPath("bsdtar")
	if err != nil {
		archUnavailable(t, "no bsdtar (Debian: libarchive-tools): %v", err)
	}
	root := t.TempDir()
	for _, name := range archPkgNames {
		cmd := exec.Command(bsdtar, "-xpf", pkgs[name], "-C", root,
			"--exclude", ".PKGINFO", "--exclude", ".BUILDINFO", "--exclude", ".MTREE", "--exclude", ".INSTALL")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bsdtar -xpf %s: %v\n%s", pkgs[name], err, out)
		}
	}
	tree := &InstallTree{
		Root:   root,
		Bin:    filepath.Join(root, "usr", "bin", "ollama"),
		LibDir: filepath.Join(root, "usr", "lib", "ollama"),
		Libs:   map[string]string{},
	}
	RequireBinary(t, tree.Bin, "packaged ollama")
	for _, v := range []fakegpu.Variant{fakegpu.HIP, fakegpu.Vulkan} {
		dst := filepath.Join(tree.LibDir, v.FileName)
		st, err := os.Lstat(dst)
		if err != nil || !st.Mode().IsRegular() {
			t.Fatalf("the packages do not install %s as a file (%v); the fake %s has nowhere to go", dst, err, v.Library())
		}
		if err := copyFile(FakeLib(t, v), dst, 0o755); err != nil {
			t.Fatal(err)
		}
		tree.Libs[v.FileName] = dst
	}
	return tree
}

// archSelection is what a server selected: everything that must be the
// same in the packaged root and the make install tree.
type archSelection struct {
	// Compute: one line per "inference compute" record (all fields but
	// "available", which is free memory).
	Compute []string
	// Chosen: the "backend library chosen" line's library and alternates.
	Chosen string
	// Discovery: the fake libraries any process loaded before a model.
	Discovery []string
	// Model runner of a tiny qwen2: its OLLAMA_GGML_BACKENDS, the fake
	// libraries it loaded, and /api/ps's library.
	RunnerBackends string
	RunnerLibs     []string
	PsLibrary      string
}

// archLoaded lists the base names of the fake libraries that the given
// PIDs (all when nil) loaded, per the trace file.
func archLoaded(t *testing.T, s *forkServer, pids map[int]bool) []string {
	t.Helper()
	var libs []string
	for _, e := range s.traceEvents(t) {
		if pids != nil && !pids[e.PID] {
			continue
		}
		if b := filepath.Base(e.SO); !slices.Contains(libs, b) {
			libs = append(libs, b)
		}
	}
	slices.Sort(libs)
	return libs
}

func archObserve(t *testing.T, s *forkServer) archSelection {
	t.Helper()
	var sel archSelection
	for _, r := range s.InferenceCompute() {
		var kv []string
		for _, k := range []string{"library", "id", "filter_id", "compute", "name", "description", "libdirs", "driver", "pci_id", "type", "total"} {
			kv = append(kv, k+"="+r[k])
		}
		sel.Compute = append(sel.Compute, strings.Join(kv, " "))
	}
	slices.Sort(sel.Compute)
	if recs := s.LogRecords("backend library chosen"); len(recs) > 0 {
		sel.Chosen = fmt.Sprintf("%s (alternates %s)", recs[0]["library"], recs[0]["alternates"])
	}
	sel.Discovery = archLoaded(t, s, nil)

	m := forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, m)
	r := forkLastRunner(t, s.Server, m)
	sel.RunnerBackends = r.Env["OLLAMA_GGML_BACKENDS"]
	sel.RunnerLibs = archLoaded(t, s, map[int]bool{r.PID: true})
	sel.PsLibrary = forkPsEntry(t, s.Server, m).Library
	return sel
}

// TestForkArchPackages compares the packaged server with the make install
// tree for the default environment, each OLLAMA_LLM_LIBRARY and the
// denylist, and checks each outcome is the one the fork promises.
func TestForkArchPackages(t *testing.T) {
	pkgs := archPackages(t)
	pkgBed := &forkBed{Layout: Flat, Tree: archUnpack(t, pkgs)}
	refBed := newForkBed(t, Flat)
	t.Logf("packaged root %s from %s; make install tree %s (%s)", pkgBed.Tree.Root, archPkgDir(), refBed.Tree.Root, forkBin(t))

	cases := []struct {
		name  string
		env   []string
		sysfs bool   // a fake KFD topology with the gfx1200 (for the denylist)
		want  string // the library of the one inference compute line
	}{
		{name: "default", want: "ROCm"},
		{name: "OLLAMA_VULKAN=1", env: []string{"OLLAMA_VULKAN=1"}, want: "ROCm"},
		{name: "rocm", env: []string{"OLLAMA_LLM_LIBRARY=rocm"}, want: "ROCm"},
		{name: "vulkan", env: []string{"OLLAMA_LLM_LIBRARY=vulkan"}, want: "Vulkan"},
		{name: "denylist", env: []string{"OLLAMA_BACKEND_DENYLIST=rocm:gfx1200"}, sysfs: true, want: "Vulkan"},
	}
	var table []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := c.env
			if c.sysfs {
				env = append(slices.Clone(env), "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t))
			}
			ref := archObserve(t, refBed.start(t, env...))
			ps := pkgBed.start(t, env...)
			got := archObserve(t, ps)
			if d := cmp.Diff(ref, got); d != "" {
				t.Errorf("packaged root selects differently from the make install tree (-make install +packaged):\n%s", d)
			}
			if libs := forkInferenceLibraries(ps.Server); !slices.Equal(libs, []string{c.want}) {
				t.Errorf("packaged root: inference compute libraries %v, want [%s]", libs, c.want)
			}
			if got.PsLibrary != c.want {
				t.Errorf("packaged root: /api/ps library %q, want %q", got.PsLibrary, c.want)
			}
			// every module it loaded came from the packaged /usr/lib/ollama
			for _, e := range ps.traceEvents(t) {
				if filepath.Dir(e.SO) != pkgBed.Tree.LibDir {
					t.Errorf("pid %d loaded %s, outside the packaged %s", e.PID, e.SO, pkgBed.Tree.LibDir)
				}
			}
			table = append(table, fmt.Sprintf("%-16s %s; runner %s loads %v; ps %s",
				c.name, got.Chosen, got.RunnerBackends, got.RunnerLibs, got.PsLibrary))
		})
	}
	t.Logf("packaged root = make install tree:\n%s", strings.Join(table, "\n"))
}

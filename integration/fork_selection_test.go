//go:build integration

package integration

// The fork's OLLAMA_LLM_LIBRARY in both layouts, with the fake ROCm +
// Vulkan twin (one GPU, same PCI id): what discovery loads and logs, what
// each inference runner loads, and what /api/ps, `ollama ps`, /api/backends
// and `ollama backends` answer.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

type forkSelectionCase struct {
	name string
	env  []string
	// chosen is the library of the one "inference compute" line ("cpu"
	// when no GPU is used).
	chosen string
	// alternates is the "backend library chosen" line's alternates field.
	alternates string
	// never lists fake libraries no process may load (discovery included).
	never []string
	// missing is the library of the expected "requested library found no
	// device" ERROR line ("" = none expected).
	missing string
	// backends is the model runner's OLLAMA_GGML_BACKENDS.
	backends string
	// ggml is what every discovery runner's OLLAMA_GGML_BACKENDS must be
	// a non-empty subset of ("" = not checked: every backend may load).
	ggml string
}

var forkSelectionCases = []forkSelectionCase{
	{
		// Unset: every installed library, CUDA > ROCm > Vulkan as upstream.
		name: "unset", env: []string{"OLLAMA_VULKAN=1"},
		chosen: "ROCm", alternates: "Vulkan (default order CUDA > ROCm > Vulkan)",
		backends: "hip,cpu",
	},
	{
		// vulkan alone: no OLLAMA_VULKAN needed, HIP never opened.
		name: "vulkan", env: []string{"OLLAMA_LLM_LIBRARY=vulkan"},
		chosen: "Vulkan", alternates: "none", never: []string{"libggml-hip.so"},
		backends: "vulkan,cpu", ggml: "vulkan,cpu",
	},
	{
		// case-insensitive; Vulkan enabled but not requested: never opened.
		name: "ROCM", env: []string{"OLLAMA_LLM_LIBRARY=ROCM", "OLLAMA_VULKAN=1"},
		chosen: "ROCm", alternates: "none", never: []string{"libggml-vulkan.so"},
		backends: "hip,cpu", ggml: "hip,cpu",
	},
	{
		// a list: both probed, the first listed wins, the other is kept as
		// the alternate.
		name: "Vulkan,rocm", env: []string{"OLLAMA_LLM_LIBRARY=Vulkan,rocm"},
		chosen: "Vulkan", alternates: "ROCm (OLLAMA_LLM_LIBRARY=vulkan,rocm lists Vulkan first)",
		backends: "vulkan,cpu", ggml: "vulkan,hip,cpu",
	},
	{
		// cpu: no GPU library is loaded by any process.
		name: "cpu", env: []string{"OLLAMA_LLM_LIBRARY=cpu", "OLLAMA_VULKAN=1"},
		chosen: "cpu", never: []string{"libggml-hip.so", "libggml-vulkan.so"},
		backends: "cpu", ggml: "cpu",
	},
	{
		// a listed library without a device: one ERROR, the rest serves.
		name: "cuda,vulkan", env: []string{"OLLAMA_LLM_LIBRARY=cuda,vulkan"},
		chosen: "Vulkan", alternates: "none", never: []string{"libggml-hip.so"},
		missing: "cuda", backends: "vulkan,cpu", ggml: "cuda,vulkan,cpu",
	},
}

// TestForkLLMLibrary runs every selection case in the flat and the subdir
// layout, one server each; a tiny qwen2 model (not touched by the built-in
// quirk table) is loaded on the chosen library.
func TestForkLLMLibrary(t *testing.T) {
	forkBin(t)
	var table []string
	for _, layout := range forkLayouts {
		bed := newForkBed(t, layout)
		for _, c := range forkSelectionCases {
			t.Run(layout.String()+"/"+c.name, func(t *testing.T) {
				s := bed.start(t, c.env...)
				got := forkCheckSelection(t, s, c)
				table = append(table, fmt.Sprintf("%-7s %-28s -> %s", layout, strings.Join(c.env, " "), got))
			})
		}
	}
	t.Logf("fork with the fake ROCm+Vulkan twin:\n%s", strings.Join(table, "\n"))
}

func forkCheckSelection(t *testing.T, s *forkServer, c forkSelectionCase) string {
	// discovery: the inference compute line and the explanation
	if got := forkInferenceLibraries(s.Server); !slices.Equal(got, []string{c.chosen}) {
		t.Errorf("inference compute libraries %v, want [%s]", got, c.chosen)
	}
	if c.chosen == "cpu" {
		if recs := s.LogRecords("backend library chosen"); len(recs) != 0 {
			t.Errorf("CPU only, yet %d backend library chosen line(s): %v", len(recs), recs)
		}
	} else {
		compute := "0.0"
		if c.chosen == "ROCm" {
			compute = "gfx1200"
		}
		rec := forkOneRecord(t, s.Server, "backend library chosen")
		forkCheckFields(t, "backend library chosen", rec, map[string]string{
			"level": "INFO", "library": c.chosen, "pci_id": forkPCIID, "compute": compute, "alternates": c.alternates,
		})
		t.Logf("log: backend library chosen library=%s alternates=%q", rec["library"], rec["alternates"])
	}
	for _, rec := range s.LogRecords("backend library not used") {
		t.Logf("log: backend library not used library=%s reason=%q", rec["library"], rec["reason"])
	}
	errs := s.LogRecords("requested library found no device; continuing with what remains")
	if c.missing == "" {
		if len(errs) != 0 {
			t.Errorf("unexpected ERROR lines: %v", errs)
		}
	} else {
		rec := forkOneRecord(t, s.Server, "requested library found no device; continuing with what remains")
		forkCheckFields(t, "missing library", rec, map[string]string{
			"level": "ERROR", "library": c.missing, "found": "~" + c.chosen,
		})
		t.Logf("log: %s library=%s found=%q", rec["msg"], rec["library"], rec["found"])
	}
	for _, lib := range c.never {
		if pids := s.loadedBy(t, s.Bed.Tree.Libs[lib]); len(pids) != 0 {
			t.Errorf("%s was loaded by pid(s) %v; OLLAMA_LLM_LIBRARY does not request it", lib, pids)
		}
	}
	for _, r := range s.Runners() {
		if r.IsDiscovery() {
			if be := r.Env["OLLAMA_GGML_BACKENDS"]; c.ggml != "" {
				allowed := strings.Split(c.ggml, ",")
				if be == "" || slices.ContainsFunc(strings.Split(be, ","), func(n string) bool { return !slices.Contains(allowed, n) }) {
					t.Errorf("discovery runner %d OLLAMA_GGML_BACKENDS=%q, want a non-empty subset of %s", r.PID, be, c.ggml)
				}
			}
			t.Logf("discovery runner %d: OLLAMA_GGML_BACKENDS=%q OLLAMA_LIBRARY_PATH=%q libs=%v",
				r.PID, r.Env["OLLAMA_GGML_BACKENDS"], r.Env["OLLAMA_LIBRARY_PATH"], r.Libs)
		}
	}

	// a model on the chosen library
	m := forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, m)
	r := forkLastRunner(t, s.Server, m)
	if got := r.Env["OLLAMA_GGML_BACKENDS"]; got != c.backends {
		t.Errorf("model runner OLLAMA_GGML_BACKENDS=%q, want %q", got, c.backends)
	}
	switch c.chosen {
	case "ROCm":
		s.checkRunnerLibs(t, r, "libggml-hip.so")
	case "Vulkan":
		s.checkRunnerLibs(t, r, "libggml-vulkan.so")
	default:
		s.checkRunnerLibs(t, r)
		if len(r.Libs) != 0 {
			t.Errorf("CPU model runner maps GPU libraries %v", r.Libs)
		}
	}

	// the API and the CLI
	ps := forkPsEntry(t, s.Server, m)
	wantLib, wantProc := c.chosen, "100% GPU ("+c.chosen+")"
	if c.chosen == "cpu" {
		wantLib, wantProc = "", "100% CPU"
		if ps.SizeVRAM != 0 {
			t.Errorf("/api/ps size_vram %d on the CPU", ps.SizeVRAM)
		}
	} else if ps.SizeVRAM != ps.Size {
		t.Errorf("/api/ps size_vram %d of %d: want the whole model on the GPU", ps.SizeVRAM, ps.Size)
	}
	if ps.Library != wantLib {
		t.Errorf("/api/ps library %q, want %q", ps.Library, wantLib)
	}
	if c.chosen == "cpu" {
		var raw struct {
			Models []map[string]any `json:"models"`
		}
		forkGetJSON(t, s.Server, "/api/ps", &raw)
		for _, e := range raw.Models {
			if v, ok := e["library"]; ok {
				t.Errorf("/api/ps has library=%v for a CPU-only model; want the field omitted", v)
			}
		}
	}
	out := forkCli(t, s.Server, "ps")
	if !strings.Contains(out, wantProc) || (c.chosen == "cpu" && strings.Contains(out, "(")) {
		t.Errorf("ollama ps does not show %q:\n%s", wantProc, out)
	}
	l := forkBackends(t, s.Server)
	if l.DefaultOrder != "CUDA > ROCm > Vulkan" {
		t.Errorf("/api/backends default_order %q", l.DefaultOrder)
	}
	wantPref := ""
	for _, kv := range c.env {
		if v, ok := strings.CutPrefix(kv, "OLLAMA_LLM_LIBRARY="); ok {
			wantPref = strings.ToLower(v)
		}
	}
	if l.LLMLibrary != wantPref {
		t.Errorf("/api/backends llm_library %q, want %q", l.LLMLibrary, wantPref)
	}
	var rows []string
	for _, b := range l.Backends {
		rows = append(rows, b.Library+"="+b.Status)
	}
	var wantRows []string
	if c.chosen != "cpu" {
		wantRows = append(wantRows, c.chosen+"=chosen")
	}
	if c.alternates != "" && c.alternates != "none" {
		alt, _, _ := strings.Cut(c.alternates, " ")
		wantRows = append(wantRows, alt+"=alternate")
		if b, ok := l.row(alt, "alternate"); ok {
			_, reason, _ := strings.Cut(c.alternates, " (")
			if want := strings.TrimSuffix(reason, ")"); b.Reason != want {
				t.Errorf("/api/backends %s reason %q, want %q", alt, b.Reason, want)
			}
		}
	}
	if !slices.Equal(rows, wantRows) {
		t.Errorf("/api/backends rows %v, want %v", rows, wantRows)
	}
	table := forkCli(t, s.Server, "backends")
	for _, want := range wantRows {
		lib, status, _ := strings.Cut(want, "=")
		if !strings.Contains(table, lib) || !strings.Contains(table, status) {
			t.Errorf("ollama backends lacks %s %s:\n%s", lib, status, table)
		}
	}
	forkCheckServes(t, s.Server, m)
	return fmt.Sprintf("%s (alternates %q; runner OLLAMA_GGML_BACKENDS=%s; ps %q)", c.chosen, c.alternates, r.Env["OLLAMA_GGML_BACKENDS"], wantProc)
}

// TestForkLLMLibraryRejected: a value that is not a library name stops
// `ollama serve` at once with one line naming it.
func TestForkLLMLibraryRejected(t *testing.T) {
	bin := forkBin(t)
	for _, c := range []struct{ value, item string }{
		{"vulkn", `"vulkn" is not a library name`},
		{"bogus", `"bogus" is not a library name`},
		{"../x", `"../x" is not a library name`},
		{"vulkan,,cpu", `"vulkan,,cpu" has an empty item`},
	} {
		t.Run(c.value, func(t *testing.T) {
			t.Parallel()
			line := forkRefuseToServe(t, bin, []string{"OLLAMA_LLM_LIBRARY=" + c.value},
				"Error: OLLAMA_LLM_LIBRARY", c.item,
				"accepted: one of cpu, cuda, cuda_v12, cuda_v13, cuda_jetpack5, cuda_jetpack6, rocm, vulkan")
			t.Logf("%s", line)
		})
	}
}

// TestForkBackendsLoadFailure: a libggml-vulkan.so that dlopen rejects is
// reported once in the log and listed by /api/backends and `ollama
// forkBackends` as "failed to load"; the ROCm twin still serves.
func TestForkBackendsLoadFailure(t *testing.T) {
	bin := forkBin(t)
	garbage := filepath.Join(t.TempDir(), "garbage.so")
	if err := os.WriteFile(garbage, []byte("this is not an ELF shared object\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, layout := range forkLayouts {
		t.Run(layout.String(), func(t *testing.T) {
			dst := "libggml-vulkan.so"
			if layout == Subdir {
				dst = filepath.Join(SubdirFor(dst), dst)
			}
			bed := &forkBed{Layout: layout, Tree: NewInstallTree(t, InstallOptions{
				Binary: bin, Layout: layout, Fakes: []fakegpu.Variant{fakegpu.HIP},
				Real: map[string]string{dst: garbage},
			})}
			broken := filepath.Join(bed.Tree.LibDir, dst)
			s := bed.start(t, "OLLAMA_VULKAN=1")
			rec := forkOneRecord(t, s.Server, "backend library failed to load; its devices are not used")
			forkCheckFields(t, "load failure", rec, map[string]string{"level": "ERROR", "library": "vulkan", "file": broken})
			t.Logf("log: %s library=%s error=%q", rec["msg"], rec["library"], rec["error"])
			if got := forkInferenceLibraries(s.Server); !slices.Equal(got, []string{"ROCm"}) {
				t.Errorf("inference compute %v, want [ROCm]", got)
			}
			l := forkBackends(t, s.Server)
			row, ok := l.row("vulkan", "failed to load")
			if !ok || row.File != broken || row.Reason == "" {
				t.Errorf("/api/backends: want a vulkan row %q with status failed to load and the loader's message: %+v", broken, l.Backends)
			}
			if _, ok := l.row("ROCm", "chosen"); !ok {
				t.Errorf("/api/backends: no chosen ROCm row: %+v", l.Backends)
			}
			if table := forkCli(t, s.Server, "backends"); !strings.Contains(table, "failed to load") || !strings.Contains(table, broken) {
				t.Errorf("ollama backends does not list the failure:\n%s", table)
			}
			m := forkCreateTiny(t, s.Server, "qwen2")
			forkCheckServes(t, s.Server, m)
			if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
				t.Errorf("/api/ps library %q, want ROCm", e.Library)
			}
			if n := len(s.LogRecords("backend library failed to load; its devices are not used")); n != 1 {
				t.Errorf("%d load failure lines after a model load, want it reported once", n)
			}
		})
	}
}

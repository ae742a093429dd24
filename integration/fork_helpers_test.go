//go:build integration

package integration

// Helpers for the fork scenarios (fork_*_test.go): the fake ROCm + Vulkan
// twin, a fake sysfs tree (KFD topology, DRM cards), tiny models, the fork's
// own API fields (/api/ps "library", /api/backends) read as raw JSON (the
// harness's api package is pristine upstream and lacks them), and
// assertions on runners, the trace file and the log.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

// The fake GPU every fork scenario uses: one Radeon at 0000:03:00.0 seen by
// the fake libggml-hip.so (ROCm, id GPU-fa4e000000000001) and the fake
// libggml-vulkan.so (Vulkan).
const (
	forkPCIID = "0000:03:00.0"
	forkBus   = 3
	// forkHIPUniqueID is the fake HIP device's id GPU-fa4e000000000001 as
	// the KFD unique_id it comes from.
	forkHIPUniqueID uint64 = 0xfa4e000000000001
)

// upstreamOnly is set (OBS_UPSTREAM_ONLY=1) when the binary under test is
// pristine upstream with the series of an upstream pull request (make pr):
// the fork's own API fields, commands and log lines are absent there, so a
// scenario asserts only what the pull request changes (the runner's
// --device and environment, size_vram, llama-server's own log).
func upstreamOnly() bool { return os.Getenv("OBS_UPSTREAM_ONLY") == "1" }

// forkBin is the fork binary under test; the test is skipped without it.
func forkBin(t testing.TB) string {
	t.Helper()
	b := OllamaBin()
	RequireBinary(t, b, "fork ollama (make build, or set OBS_OLLAMA_BIN)")
	return b
}

// ---------------------------------------------------------------------------
// fake sysfs

// forkKFDGPU is one GPU node of the fake KFD topology.
type forkKFDGPU struct {
	GfxVersion int // gfx_target_version, e.g. 120000 for gfx1200
	Bus        int // PCI bus: location_id = bus<<8 (device 0, function 0)
	UniqueID   uint64
}

// forkWriteFakeSysfs writes a KFD topology under root (node 0 a CPU, then one
// node per GPU) and a boot id, and returns root.
func forkWriteFakeSysfs(t testing.TB, root string, gpus ...forkKFDGPU) string {
	t.Helper()
	nodes := filepath.Join("sys", "class", "kfd", "kfd", "topology", "nodes")
	write := func(rel, data string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(nodes, "0", "properties"),
		"cpu_cores_count 8\nsimd_count 0\nmem_banks_count 1\ngfx_target_version 0\nvendor_id 0\ndevice_id 0\nlocation_id 0\ndomain 0\nunique_id 0\n")
	for i, g := range gpus {
		write(filepath.Join(nodes, fmt.Sprint(i+1), "properties"), fmt.Sprintf(
			"cpu_cores_count 0\nsimd_count 64\nmax_waves_per_simd 16\nwave_front_size 32\n"+
				"gfx_target_version %d\nvendor_id 4098\ndevice_id 30033\nlocation_id %d\ndomain 0\n"+
				"drm_render_minor %d\nunique_id %d\nnum_xcc 1\n",
			g.GfxVersion, g.Bus<<8, 128+i, g.UniqueID))
	}
	write("proc/sys/kernel/random/boot_id", "0f0e0d0c-0b0a-4908-8706-050403020100\n")
	return root
}

// forkWriteFakeDRM adds an amdgpu DRM card for the PCI address: its device link
// (to a fake PCI function directory with uevent PCI_SLOT_NAME), a static
// gpu_busy_percent, pp_dpm_sclk at the top level and a 66 W hwmon reading.
func forkWriteFakeDRM(t testing.TB, root, card, pci string, busy int) {
	t.Helper()
	dev := filepath.Join(root, "sys", "devices", "pci0000:00", "0000:00:01.1", pci)
	files := map[string]string{
		"uevent":                      "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_ID=1002:7551\nPCI_SLOT_NAME=" + pci + "\n",
		"gpu_busy_percent":            fmt.Sprintf("%d\n", busy),
		"pp_dpm_sclk":                 "0: 500Mhz\n1: 2000Mhz\n2: 3470Mhz *\n",
		"hwmon/hwmon3/power1_average": "66000000\n",
		"hwmon/hwmon3/name":           "amdgpu\n",
	}
	for rel, data := range files {
		p := filepath.Join(dev, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cardDir := filepath.Join(root, "sys", "class", "drm", card)
	if err := os.MkdirAll(cardDir, 0o755); err != nil {
		t.Fatal(err)
	}
	target, err := filepath.Rel(cardDir, dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(cardDir, "device")); err != nil {
		t.Fatal(err)
	}
}

// forkRdna4Sysfs is a fake root with one gfx1200 GPU at forkPCIID whose KFD
// unique_id matches the fake HIP device.
func forkRdna4Sysfs(t testing.TB) string {
	return forkWriteFakeSysfs(t, t.TempDir(), forkKFDGPU{GfxVersion: 120000, Bus: forkBus, UniqueID: forkHIPUniqueID})
}

// ---------------------------------------------------------------------------
// models

// forkModel is a tiny GGUF imported into a server.
type forkModel struct {
	Name   string // e.g. "tiny-qwen3" (ps reports "tiny-qwen3:latest")
	Arch   string
	Digest string // hex sha256 of the GGUF: the runner's --model blob
}

// forkCreateTiny writes a tiny model of arch and imports it as tiny-<arch>.
func forkCreateTiny(t testing.TB, s *Server, arch string) forkModel {
	t.Helper()
	return forkCreateModel(t, s, "tiny-"+arch, arch, tinymodel.Tiny(arch).Seed, false, nil)
}

// forkCreateModel writes a tiny model of arch (seed: one digest per model),
// with a vision projector as a second file when projector is set, and
// creates it with the parameters.
func forkCreateModel(t testing.TB, s *Server, name, arch string, seed uint64, projector bool, params map[string]any) forkModel {
	t.Helper()
	c := tinymodel.Tiny(arch)
	c.Seed = seed
	gguf := filepath.Join(s.Dir, name+".gguf")
	if err := tinymodel.Write(gguf, c); err != nil {
		t.Fatal(err)
	}
	files := []string{gguf}
	if projector {
		mmproj := filepath.Join(s.Dir, name+"-mmproj.gguf")
		if err := tinymodel.WriteProjector(mmproj, c.Projector()); err != nil {
			t.Fatal(err)
		}
		files = append(files, mmproj)
	}
	data, err := os.ReadFile(gguf)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := s.CreateModelFiles(ctx, name, files, params); err != nil {
		t.Fatal(err)
	}
	return forkModel{Name: name, Arch: arch, Digest: hex.EncodeToString(sum[:])}
}

// loadTimeout bounds a model load with its first tokens: on lavapipe a
// llama-server with an empty Mesa shader cache compiles every pipeline on
// the CPU first (about 110 CPU-seconds for a tiny model with Mesa 26.2).
const loadTimeout = 6 * time.Minute

// forkGenerate loads the model (if needed) and generates 2 tokens.
func forkGenerate(t testing.TB, s *Server, m forkModel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	res, err := s.Generate(ctx, m.Name, "Hi", 2, nil)
	if err != nil {
		t.Fatalf("generate %s: %v\nlog tail:\n%s", m.Name, err, tail(s.Log(), 30))
	}
	if res.EvalCount != 2 {
		t.Errorf("generate %s: eval_count %d, want 2", m.Name, res.EvalCount)
	}
}

// forkUnload asks the server to unload m (keep_alive 0) and waits until its
// runner process is gone.
func forkUnload(t testing.TB, s *Server, m forkModel) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	zero := api.Duration{Duration: 0}
	if err := s.Client.Generate(ctx, &api.GenerateRequest{Model: m.Name, KeepAlive: &zero}, func(api.GenerateResponse) error { return nil }); err != nil {
		t.Fatalf("unload %s: %v", m.Name, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		alive := false
		for _, r := range s.LiveRunners() {
			if forkRunsModel(r, m) {
				alive = true
			}
		}
		if !alive {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("runner of %s still alive 30s after keep_alive 0", m.Name)
}

func forkRunsModel(p Proc, m forkModel) bool {
	return p.IsRunner() && slices.ContainsFunc(p.Args, func(a string) bool { return strings.Contains(a, m.Digest) })
}

// forkModelRunners returns every runner process (alive or not) started for m,
// in start order.
func forkModelRunners(s *Server, m forkModel) []Proc {
	var out []Proc
	for _, r := range s.Runners() {
		if forkRunsModel(r, m) {
			out = append(out, r)
		}
	}
	return out
}

// forkLastRunner is the most recent runner of m; the test fails without one.
func forkLastRunner(t testing.TB, s *Server, m forkModel) Proc {
	t.Helper()
	s.LiveRunners() // refresh
	rs := forkModelRunners(s, m)
	if len(rs) == 0 {
		t.Fatalf("no runner process seen for %s", m.Name)
	}
	return rs[len(rs)-1]
}

// ---------------------------------------------------------------------------
// fork API

// forkPSModel is an /api/ps entry with the fork's "library" field.
type forkPSModel struct {
	Name     string `json:"name"`
	Size     int64  `json:"size"`
	SizeVRAM int64  `json:"size_vram"`
	Library  string `json:"library"`
	// LibraryDecidedBy is the input that chose Library.
	LibraryDecidedBy string `json:"library_decided_by"`
}

func forkGetJSON(t testing.TB, s *Server, path string, v any) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(s.URL.String() + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
}

// forkPsModels is GET /api/ps.
func forkPsModels(t testing.TB, s *Server) []forkPSModel {
	t.Helper()
	var ps struct {
		Models []forkPSModel `json:"models"`
	}
	forkGetJSON(t, s, "/api/ps", &ps)
	return ps.Models
}

// forkPsEntry is m's /api/ps entry; the test fails when m is not loaded.
func forkPsEntry(t testing.TB, s *Server, m forkModel) forkPSModel {
	t.Helper()
	ms := forkPsModels(t, s)
	for _, e := range ms {
		if e.Name == m.Name+":latest" || e.Name == m.Name {
			return e
		}
	}
	t.Fatalf("%s not in /api/ps: %+v", m.Name, ms)
	return forkPSModel{}
}

// forkCli runs the server's own binary as a client (`ollama ps`, `ollama
// forkBackends`) against it.
func forkCli(t testing.TB, s *Server, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.Bin, args...)
	cmd.Env = []string{"OLLAMA_HOST=" + s.Host, "HOME=" + s.Home, "PATH=" + os.Getenv("PATH"), "TERM=dumb"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ollama %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// psProcessors reads `ollama ps` output: each model's PROCESSOR cell,
// keyed by NAME, with the lines the table wraps it onto joined by spaces.
// Rows keep whatever order the CLI prints them in.
func psProcessors(t testing.TB, out string) map[string]string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) == 0 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("ollama ps: no header line:\n%s", out)
	}
	from, to := strings.Index(lines[0], "PROCESSOR"), strings.Index(lines[0], "CONTEXT")
	if from < 0 || to < from {
		t.Fatalf("ollama ps: no PROCESSOR and CONTEXT columns:\n%s", out)
	}
	cells := map[string]string{}
	name := ""
	for _, line := range lines[1:] {
		if len(line) < to {
			line += strings.Repeat(" ", to-len(line))
		}
		if f := strings.Fields(line[:from]); len(f) > 0 {
			name = f[0]
		}
		if name == "" {
			t.Fatalf("ollama ps: a continuation line before any row:\n%s", out)
		}
		if cell := strings.TrimSpace(line[from:to]); cell != "" {
			cells[name] = strings.TrimSpace(cells[name] + " " + cell)
		}
	}
	return cells
}

// ---------------------------------------------------------------------------
// log and trace assertions

// forkOneRecord returns the only log record with msg; it fails the test when
// there is not exactly one.
func forkOneRecord(t testing.TB, s *Server, msg string) LogRecord {
	t.Helper()
	recs := s.LogRecords(msg)
	if len(recs) != 1 {
		t.Errorf("want exactly 1 log line msg=%q, got %d: %v", msg, len(recs), recs)
		if len(recs) == 0 {
			return nil
		}
	}
	return recs[0]
}

// forkCheckFields reports every key of want whose value differs in rec;
// a want value starting with "~" only has to be contained. A nil record
// (already reported missing by oneRecord) is not checked.
func forkCheckFields(t testing.TB, what string, rec LogRecord, want map[string]string) {
	t.Helper()
	if rec == nil {
		return
	}
	for k, v := range want {
		if sub, ok := strings.CutPrefix(v, "~"); ok {
			if !strings.Contains(rec[k], sub) {
				t.Errorf("%s: %s=%q, want it to contain %q", what, k, rec[k], sub)
			}
			continue
		}
		if rec[k] != v {
			t.Errorf("%s: %s=%q, want %q", what, k, rec[k], v)
		}
	}
}

// forkRefuseToServe starts the binary with env and asserts it exits non-zero
// within a few seconds, printing exactly one line that starts with prefix
// and contains every string of contains. It returns the line.
func forkRefuseToServe(t *testing.T, bin string, env []string, prefix string, contains ...string) string {
	t.Helper()
	start := time.Now()
	s := StartServer(t, ServerOptions{Bin: bin, NoWait: true, Env: env})
	code, err := s.WaitExit(20 * time.Second)
	if err != nil {
		t.Fatalf("%v; log:\n%s", err, tail(s.Log(), 20))
	}
	took := time.Since(start)
	out := strings.TrimRight(s.Log(), "\n")
	lines := strings.Split(out, "\n")
	if code == 0 {
		t.Errorf("exit code 0, want non-zero")
	}
	if len(lines) != 1 {
		t.Errorf("want exactly one line of output, got %d:\n%s", len(lines), out)
	}
	if !strings.HasPrefix(lines[0], prefix) {
		t.Errorf("output %q does not start with %q", lines[0], prefix)
	}
	for _, c := range contains {
		if !strings.Contains(out, c) {
			t.Errorf("output %q lacks %q", out, c)
		}
	}
	if took > 5*time.Second {
		t.Errorf("took %s to refuse; want at once", took)
	}
	return lines[0]
}

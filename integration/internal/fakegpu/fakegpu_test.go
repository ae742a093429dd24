package fakegpu

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// skipUnlessRuntime skips when the runtime root cannot be used.
func skipUnlessRuntime(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	_, note, err := Headers()
	if err != nil {
		t.Fatal(err)
	}
	headersLogged.Do(func() { t.Log(note) })
}

var headersLogged sync.Once

// The probe and the libraries are built once per test binary (each build
// enters the root; the machine may have two cores).
var (
	buildMu   sync.Mutex
	buildDir  string
	buildLibs = map[string]string{}
	buildPrb  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// build compiles (or reuses) the probe and the requested variants.
func build(t *testing.T, vs ...Variant) (probe string, libs []string) {
	t.Helper()
	skipUnlessRuntime(t)
	buildMu.Lock()
	defer buildMu.Unlock()
	if buildDir == "" {
		d, err := os.MkdirTemp("", "fakegpu-test-")
		if err != nil {
			t.Fatal(err)
		}
		buildDir = d
	}
	if buildPrb == "" {
		p := filepath.Join(buildDir, "probe")
		if err := BuildProbe("", p); err != nil {
			if errors.Is(err, ErrNoCompiler) {
				t.Skip(err)
			}
			t.Fatal(err)
		}
		buildPrb = p
	}
	for _, v := range vs {
		lib, ok := buildLibs[v.Prefix]
		if !ok {
			var err error
			if lib, err = Build("", filepath.Join(buildDir, v.Prefix), v); err != nil {
				t.Fatal(err)
			}
			buildLibs[v.Prefix] = lib
		}
		libs = append(libs, lib)
	}
	return buildPrb, libs
}

// visibilityVars are unset for the probes: one in the caller's environment
// could hide the device.
var visibilityVars = []string{"ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "GPU_DEVICE_ORDINAL", "CUDA_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES"}

func clearVisibility(t *testing.T) {
	for _, k := range visibilityVars {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
}

func probeOK(t *testing.T, probe, lib string, env []string, alloc int) (map[string]string, string) {
	t.Helper()
	kv, stderr, err := Probe(probe, lib, env, alloc)
	if err != nil {
		t.Fatalf("probe %s: %v\nstdout: %v\nstderr: %s", lib, err, kv, stderr)
	}
	return kv, stderr
}

func expect(t *testing.T, kv map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
}

func expectLine(t *testing.T, out, line string) {
	t.Helper()
	for _, l := range strings.Split(out, "\n") {
		if strings.TrimSpace(l) == strings.TrimSpace(line) {
			return
		}
	}
	t.Errorf("no line %q in:\n%s", line, out)
}

func TestDefaults(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan, CUDA)
	clearVisibility(t)
	hip, stderr := probeOK(t, probe, libs[0], nil, 4096)
	expect(t, hip, map[string]string{
		"api_version": "3", "reg_name": "ROCm", "devices": "1", "score": "1",
		"dev0.name": "ROCm0", "dev0.description": "Fake ROCm GPU", "dev0.reg": "ROCm",
		"dev0.device_id": "0000:03:00.0", "dev0.type": "1",
		"dev0.total": "17179869184", "dev0.buft_is_host": "1", "dev0.roundtrip": "fakegpu",
		"dev0.backend": "ROCm0", "dev0.buft": "ROCm0", "dev0.buffer_size": "4096",
		"dev0.alloc_ok": "1", "dev0.free_after_alloc": "17179865088", "dev0.free_after_free": "17179869184",
		"feature.FAKEGPU": "1", "set_n_threads": "1",
	})
	// what Ollama v0.34 parses for the gfx target
	expectLine(t, stderr, "ggml_cuda_init: found 1 ROCm devices:")
	expectLine(t, stderr, "Device 0: Fake ROCm GPU, gfx1200 (0x1200), VMM: no, Wave Size: 32")

	vk, stderr := probeOK(t, probe, libs[1], nil, 0)
	expect(t, vk, map[string]string{
		"reg_name": "Vulkan", "dev0.name": "Vulkan0", "dev0.description": "Fake Vulkan GPU",
		"dev0.device_id": "0000:03:00.0", "dev0.type": "1",
	})
	if !regexp.MustCompile(`ggml_vulkan: 0 = Fake Vulkan GPU \(fakegpu\) \| uma: 0 \|`).MatchString(stderr) {
		t.Errorf("no ggml_vulkan line in:\n%s", stderr)
	}
	cu, stderr := probeOK(t, probe, libs[2], nil, 0)
	expect(t, cu, map[string]string{"reg_name": "CUDA", "dev0.name": "CUDA0"})
	expectLine(t, stderr, "Device 0: Fake CUDA GPU, compute capability 8.9, VMM: yes")
}

func TestEnvironment(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan)
	clearVisibility(t)
	hip, vk := libs[0], libs[1]
	env := []string{
		SharedEnv("PCI_ID", "0000:0c:00.0"),
		SharedEnv("TOTAL_MIB", "8192"),
		HIP.Env("COMPUTE", "gfx90a"),
		HIP.Env("NAME", "AMD Radeon Test"),
		HIP.Env("FREE_MIB", "4096"),
		Vulkan.Env("INTEGRATED", "1"),
		Vulkan.Env("INDEX", "1"),
	}
	kv, stderr := probeOK(t, probe, hip, env, 0)
	expect(t, kv, map[string]string{
		"dev0.device_id": "0000:0c:00.0", "dev0.total": "8589934592", "dev0.free": "4294967296",
		"dev0.description": "AMD Radeon Test", "dev0.name": "ROCm0",
	})
	expectLine(t, stderr, "Device 0: AMD Radeon Test, gfx90a (0x90a), VMM: no, Wave Size: 32")
	kv, stderr = probeOK(t, probe, vk, env, 0)
	expect(t, kv, map[string]string{
		"dev0.device_id": "0000:0c:00.0", "dev0.total": "8589934592", "dev0.free": "8589934592",
		"dev0.type": "2", "dev0.name": "Vulkan1", "reg_name": "Vulkan",
	})
	if !strings.Contains(stderr, "ggml_vulkan: 1 = Fake Vulkan GPU (fakegpu) | uma: 1 |") {
		t.Errorf("no uma: 1 line for Vulkan1 in:\n%s", stderr)
	}
	// the per-copy prefix does not leak into the other copy
	kv, _ = probeOK(t, probe, hip, []string{Vulkan.Env("LIBRARY", "CUDA")}, 0)
	expect(t, kv, map[string]string{"reg_name": "ROCm"})
	kv, _ = probeOK(t, probe, hip, []string{SharedEnv("PCI_ID", "none")}, 0)
	expect(t, kv, map[string]string{"dev0.device_id": "(null)"})
}

func TestVisibility(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan)
	clearVisibility(t)
	cases := []struct {
		lib  string
		env  []string
		want string
	}{
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=GPU-fa4e000000000001"}, "1"},
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=0"}, "1"},
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=1"}, "0"},
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=-1"}, "0"},
		{libs[0], []string{"HIP_VISIBLE_DEVICES=2"}, "0"},
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=0", "HIP_VISIBLE_DEVICES=-1"}, "0"}, // every variable filters
		{libs[0], []string{"GPU_DEVICE_ORDINAL=1"}, "0"},
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=1", HIP.Env("IGNORE_VISIBLE", "1")}, "1"},
		{libs[0], []string{"GGML_VK_VISIBLE_DEVICES=1"}, "1"},
		{libs[1], []string{"GGML_VK_VISIBLE_DEVICES=1"}, "0"},
		{libs[1], []string{"GGML_VK_VISIBLE_DEVICES=0"}, "1"},
		{libs[1], []string{"ROCR_VISIBLE_DEVICES=1"}, "1"},
	}
	for _, c := range cases {
		kv, stderr := probeOK(t, probe, c.lib, c.env, 0)
		if kv["devices"] != c.want {
			t.Errorf("%s %v: devices=%s want %s", filepath.Base(c.lib), c.env, kv["devices"], c.want)
		}
		if c.want == "0" && (strings.Contains(stderr, "Device 0:") || strings.Contains(stderr, "ggml_vulkan: 0 =")) {
			t.Errorf("%s %v: init line for a hidden device:\n%s", filepath.Base(c.lib), c.env, stderr)
		}
	}
}

func TestFaults(t *testing.T) {
	probe, libs := build(t, HIP)
	clearVisibility(t)
	hip := libs[0]
	trace := filepath.Join(t.TempDir(), "trace")
	bind := []string{filepath.Dir(trace)}
	traceEnv := SharedEnv("TRACE", trace)

	// Probe binds the probe and library folders; the trace folder is in a
	// third one.
	t.Setenv("OBS_BIND", strings.Join(bind, " "))
	if _, _, err := Probe(probe, hip, []string{HIP.Env("FAULT", "crash"), traceEnv}, 0); err == nil {
		t.Error("crash fault: probe exited 0")
	}
	kv, _ := probeOK(t, probe, hip, []string{HIP.Env("FAULT", "crash-validate")}, 0)
	expect(t, kv, map[string]string{"devices": "1"})
	if _, _, err := Probe(probe, hip, []string{HIP.Env("FAULT", "crash-validate"), "GGML_CUDA_INIT=1"}, 0); err == nil {
		t.Error("crash-validate with GGML_CUDA_INIT=1: probe exited 0")
	}
	p := func(env []string, alloc int) map[string]string {
		kv, _ := probeOK(t, probe, hip, env, alloc)
		return kv
	}
	expect(t, p([]string{HIP.Env("FAULT", "nodevices")}, 0), map[string]string{"devices": "0"})
	expect(t, p([]string{HIP.Env("FAULT", "nullreg")}, 0), map[string]string{"reg": "null"})
	expect(t, p([]string{HIP.Env("FAULT", "badapi")}, 0), map[string]string{"api_version": "103"})
	expect(t, p([]string{HIP.Env("FAULT", "score0,oom")}, 64), map[string]string{"score": "0", "dev0.alloc_ok": "0"})
	expect(t, p([]string{HIP.Env("FAULT", "dup-pci")}, 0), map[string]string{
		"devices": "2", "dev0.name": "ROCm0", "dev1.name": "ROCm1",
		"dev0.device_id": "0000:03:00.0", "dev1.device_id": "0000:03:00.0",
	})
	// the second id passes a visibility filter too (the validation pass)
	expect(t, p([]string{HIP.Env("FAULT", "dup-pci"), "ROCR_VISIBLE_DEVICES=GPU-fa4e000000000002"}, 0), map[string]string{"devices": "2"})
	expect(t, p([]string{HIP.Env("FREE_MIB", "1")}, 2<<20), map[string]string{"dev0.alloc_ok": "0"})

	evs, err := ReadTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	if len(Filter(evs, "fault")) != 1 || Filter(evs, "fault")[0].Fields["mode"] != "crash" {
		t.Errorf("trace: %+v", evs)
	}
	if len(evs) > 0 && (evs[0].Library != "ROCm" || evs[0].SO != hip || evs[0].Prefix != "FAKEHIP_") {
		t.Errorf("trace event: %+v", evs[0])
	}
	if in := Filter(evs, "init"); len(in) != 1 || in[0].Fields["exe"] != probe {
		t.Errorf("init events (want one, exe=%s): %+v", probe, in)
	}
}

// listDevices runs `llama-server --list-devices` of the runtime root from a
// flat tree holding the fake HIP and Vulkan libraries, and returns the
// device lines ("ROCm0: Fake ROCm GPU (16384 MiB, 16384 MiB free)") and the
// whole output.
func listDevices(t *testing.T, server string, env []string) ([]string, string) {
	t.Helper()
	cmd := InRoot([]string{filepath.Dir(server)}, append([]string{"env"}, append(env, server, "--list-devices")...)...)
	cmd.Dir = "/"
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("llama-server --list-devices: %v\n%s", err, out.String())
	}
	var devs []string
	in := false
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "Available devices:") {
			in = true
			continue
		}
		if in && strings.HasPrefix(l, "  ") && strings.TrimSpace(l) != "(none)" {
			devs = append(devs, strings.TrimSpace(l))
		}
	}
	return devs, out.String()
}

func hasPrefix(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

// TestLlamaServerListDevices checks the fake ROCm device and its Vulkan
// twin (same PCI id) through the real llama-server, with and without the
// real Vulkan backend's lavapipe, and the visibility variables.
func TestLlamaServerListDevices(t *testing.T) {
	clearVisibility(t)
	_, libs := build(t, HIP, Vulkan)
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	server, err := FlatTree(tree, libs...)
	if err != nil {
		t.Fatal(err)
	}
	trace := filepath.Join(tree, "trace")
	base := []string{SharedEnv("TRACE", trace), SharedEnv("PCI_ID", "0000:03:00.0")}

	// both fakes; the real Vulkan backend is replaced by the scored fake
	devs, out := listDevices(t, server, base)
	t.Logf("devices: %q", devs)
	want := []string{"ROCm0: Fake ROCm GPU (16384 MiB, 16384 MiB free)", "Vulkan0: Fake Vulkan GPU (16384 MiB, 16384 MiB free)"}
	if strings.Join(devs, "|") != strings.Join(want, "|") {
		t.Errorf("devices %q, want %q\n%s", devs, want, out)
	}
	expectLine(t, out, "Device 0: Fake ROCm GPU, gfx1200 (0x1200), VMM: no, Wave Size: 32")

	// and lavapipe through GGML_BACKEND_PATH, the fake renamed Vulkan1
	devs, out = listDevices(t, server, append(base, "GGML_VK_VISIBLE_DEVICES=0", "GGML_BACKEND_PATH="+RealVulkan, Vulkan.Env("INDEX", "1")))
	t.Logf("devices with lavapipe: %q", devs)
	if !hasPrefix(devs, "ROCm0: Fake ROCm GPU (") || !hasPrefix(devs, "Vulkan1: Fake Vulkan GPU (") || !hasPrefix(devs, "Vulkan0: llvmpipe") {
		t.Errorf("devices %q, want ROCm0 (fake), Vulkan1 (fake) and Vulkan0 (llvmpipe)\n%s", devs, out)
	}

	// ROCm hidden by ROCR_VISIBLE_DEVICES, the Vulkan twin by GGML_VK_VISIBLE_DEVICES
	devs, out = listDevices(t, server, append(base, "ROCR_VISIBLE_DEVICES=-1"))
	if hasPrefix(devs, "ROCm0") || !hasPrefix(devs, "Vulkan0: Fake Vulkan GPU") {
		t.Errorf("ROCR_VISIBLE_DEVICES=-1: devices %q\n%s", devs, out)
	}
	devs, out = listDevices(t, server, append(base, "HIP_VISIBLE_DEVICES=1", "GGML_VK_VISIBLE_DEVICES=1"))
	if len(devs) != 0 {
		t.Errorf("HIP_VISIBLE_DEVICES=1 GGML_VK_VISIBLE_DEVICES=1: devices %q, want none\n%s", devs, out)
	}

	// the trace says which copy was initialised by which process
	evs, err := ReadTrace(trace)
	if err != nil {
		t.Fatal(err)
	}
	inits := map[string]int{}
	pids := map[int]bool{}
	for _, e := range Filter(evs, "init") {
		inits[filepath.Base(e.SO)]++
		pids[e.PID] = true
		if e.Fields["exe"] != server || e.Fields["list"] != "1" {
			t.Errorf("init event: %+v", e)
		}
	}
	if inits["libggml-hip.so"] != 4 || inits["libggml-vulkan-fake.so"] != 4 || len(pids) != 4 {
		t.Errorf("init events per library %v in %d processes, want 4 each in 4", inits, len(pids))
	}
	hidden := 0
	for _, e := range Filter(evs, "visible") {
		if e.Fields["visible"] == "0" {
			hidden++
		}
	}
	if hidden != 3 { // ROCR=-1 (hip), HIP=1 (hip), GGML_VK=1 (vulkan)
		t.Errorf("%d visible=0 events, want 3", hidden)
	}
}

package fakegpu

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// build compiles the probe and the requested variants, skipping the test
// when no compiler or upstream source is available.
func build(t *testing.T, vs ...Variant) (probe string, libs []string) {
	t.Helper()
	src, err := UpstreamSourceDir()
	if err != nil {
		t.Skipf("upstream source not available: %v", err)
	}
	dir := t.TempDir()
	probe = filepath.Join(dir, "probe")
	if err := BuildProbe(src, probe); err != nil {
		if errors.Is(err, ErrNoCompiler) {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	for _, v := range vs {
		lib, err := Build(src, filepath.Join(dir, v.Prefix), v)
		if err != nil {
			t.Fatal(err)
		}
		libs = append(libs, lib)
	}
	return probe, libs
}

func probeOK(t *testing.T, probe, lib string, env []string, alloc int) map[string]string {
	t.Helper()
	kv, stderr, err := Probe(probe, lib, env, alloc)
	if err != nil {
		t.Fatalf("probe %s: %v\nstdout: %v\nstderr: %s", lib, err, kv, stderr)
	}
	return kv
}

func expect(t *testing.T, kv map[string]string, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if kv[k] != v {
			t.Errorf("%s = %q, want %q", k, kv[k], v)
		}
	}
}

func TestDefaults(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan, CUDA)
	// A *_VISIBLE_DEVICES in the caller's environment could hide the device.
	for _, k := range []string{"ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES", "GGML_VK_VISIBLE_DEVICES"} {
		if v, ok := os.LookupEnv(k); ok {
			os.Unsetenv(k)
			t.Cleanup(func() { os.Setenv(k, v) })
		}
	}
	hip := probeOK(t, probe, libs[0], nil, 4096)
	expect(t, hip, map[string]string{
		"api_version": "2", "reg_name": "ROCm", "devices": "1", "score": "1",
		"dev0.name": "ROCm0", "dev0.library": "ROCm", "dev0.id": "GPU-fa4e000000000001",
		"dev0.device_id": "0000:03:00.0", "dev0.compute": "18.0", "dev0.type": "1",
		"dev0.total": "17179869184", "dev0.buft_is_host": "1", "dev0.roundtrip": "fakegpu",
		"dev0.alloc_ok": "1", "dev0.free_after_alloc": "17179865088", "dev0.free_after_free": "17179869184",
		"feature.FAKEGPU": "1",
	})
	vk := probeOK(t, probe, libs[1], nil, 0)
	expect(t, vk, map[string]string{
		"reg_name": "Vulkan", "dev0.name": "Vulkan0", "dev0.library": "Vulkan",
		"dev0.device_id": "0000:03:00.0", "dev0.compute": "0.0",
	})
	cu := probeOK(t, probe, libs[2], nil, 0)
	expect(t, cu, map[string]string{"reg_name": "CUDA", "dev0.compute": "8.9", "dev0.driver": "12.8"})
}

func TestEnvironment(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan)
	hip, vk := libs[0], libs[1]
	env := []string{
		SharedEnv("PCI_ID", "0000:0c:00.0"),
		SharedEnv("TOTAL_MIB", "8192"),
		HIP.Env("COMPUTE", "gfx90a"),
		HIP.Env("NAME", "AMD Radeon Test"),
		HIP.Env("FREE_MIB", "4096"),
		Vulkan.Env("INTEGRATED", "1"),
		Vulkan.Env("ID", "abc"),
	}
	kv := probeOK(t, probe, hip, env, 0)
	expect(t, kv, map[string]string{
		"dev0.device_id": "0000:0c:00.0", "dev0.total": "8589934592", "dev0.free": "4294967296",
		"dev0.compute": "9.10", "dev0.description": "AMD Radeon Test", "dev0.integrated": "0",
	})
	kv = probeOK(t, probe, vk, env, 0)
	expect(t, kv, map[string]string{
		"dev0.device_id": "0000:0c:00.0", "dev0.total": "8589934592", "dev0.free": "8589934592",
		"dev0.integrated": "1", "dev0.type": "2", "dev0.id": "abc", "dev0.library": "Vulkan",
	})
	// the per-copy prefix does not leak into the other copy
	kv = probeOK(t, probe, hip, []string{Vulkan.Env("LIBRARY", "CUDA")}, 0)
	expect(t, kv, map[string]string{"dev0.library": "ROCm"})
	kv = probeOK(t, probe, hip, []string{SharedEnv("PCI_ID", "none")}, 0)
	expect(t, kv, map[string]string{"dev0.device_id": "(null)"})
}

func TestVisibility(t *testing.T) {
	probe, libs := build(t, HIP, Vulkan)
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
		{libs[0], []string{"ROCR_VISIBLE_DEVICES=1", HIP.Env("IGNORE_VISIBLE", "1")}, "1"},
		{libs[0], []string{"GGML_VK_VISIBLE_DEVICES=1"}, "1"},
		{libs[1], []string{"GGML_VK_VISIBLE_DEVICES=1"}, "0"},
		{libs[1], []string{"ROCR_VISIBLE_DEVICES=1"}, "1"},
	}
	for _, c := range cases {
		kv := probeOK(t, probe, c.lib, c.env, 0)
		if kv["devices"] != c.want {
			t.Errorf("%s %v: devices=%s want %s", filepath.Base(c.lib), c.env, kv["devices"], c.want)
		}
	}
}

func TestFaults(t *testing.T) {
	probe, libs := build(t, HIP)
	hip := libs[0]
	trace := filepath.Join(t.TempDir(), "trace")

	if _, _, err := Probe(probe, hip, []string{HIP.Env("FAULT", "crash"), SharedEnv("TRACE", trace)}, 0); err == nil {
		t.Error("crash fault: probe exited 0")
	}
	kv := probeOK(t, probe, hip, []string{HIP.Env("FAULT", "crash-validate")}, 0)
	expect(t, kv, map[string]string{"devices": "1"})
	if _, _, err := Probe(probe, hip, []string{HIP.Env("FAULT", "crash-validate"), "GGML_CUDA_INIT=1"}, 0); err == nil {
		t.Error("crash-validate with GGML_CUDA_INIT=1: probe exited 0")
	}
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "nodevices")}, 0), map[string]string{"devices": "0"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "nullreg")}, 0), map[string]string{"reg": "null"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "badapi")}, 0), map[string]string{"api_version": "102"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "score0,oom")}, 64), map[string]string{"score": "0", "dev0.alloc_ok": "0"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "nolibname")}, 0), map[string]string{"reg_name": "ROCm", "dev0.library": "", "dev0.name": "ROCm0"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "dup-pci")}, 0), map[string]string{
		"devices": "2", "dev0.id": "GPU-fa4e000000000001", "dev1.id": "GPU-fa4e000000000002",
		"dev0.device_id": "0000:03:00.0", "dev1.device_id": "0000:03:00.0", "dev1.name": "ROCm1",
	})
	// the second id passes a visibility filter too (the validation pass)
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FAULT", "dup-pci"), "ROCR_VISIBLE_DEVICES=GPU-fa4e000000000002"}, 0), map[string]string{"devices": "2"})
	expect(t, probeOK(t, probe, hip, []string{HIP.Env("FREE_MIB", "1")}, 2<<20), map[string]string{"dev0.alloc_ok": "0"})

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
}

package ml

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/ollama/ollama/envconfig"
)

// hideLibraryEnv holds, per GPU library, the variables that keep all of its
// devices from a process that loads its ggml backend. llama-server loads
// every backend it finds, so this is how a library is left out.
var hideLibraryEnv = map[string]map[string]string{
	"CUDA": {"CUDA_VISIBLE_DEVICES": "-1"},
	"ROCm": {"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"},
	// ggml-vulkan reads the variable as a list of indexes: empty is none.
	"Vulkan": {"GGML_VK_VISIBLE_DEVICES": ""},
}

// RequestedLibrary returns OLLAMA_LLM_LIBRARY in lower case: cpu, a GPU
// library (cuda, rocm, vulkan) or one of its runner folders (cuda_v13,
// rocm_v7_2). It is "" when unset or naming an MLX variant, which the GGML
// backends do not read.
func RequestedLibrary() (string, error) {
	requested := strings.ToLower(strings.TrimSpace(envconfig.LLMLibrary()))
	if requested == "" || strings.HasPrefix(requested, "mlx_") {
		return "", nil
	}
	family := libraryFamily(requested)
	if _, ok := hideLibraryEnv[family]; !ok && requested != "cpu" {
		return "", fmt.Errorf("OLLAMA_LLM_LIBRARY=%q is not a library: use cpu, cuda, rocm, vulkan or a runner folder such as cuda_v13", requested)
	}
	return requested, nil
}

// libraryFamily is the library a requested name or runner folder belongs to,
// as DeviceInfo.Library spells it: "CUDA" for cuda and cuda_v13.
func libraryFamily(name string) string {
	name, _, _ = strings.Cut(strings.ToLower(name), "_")
	for library := range hideLibraryEnv {
		if strings.EqualFold(name, library) {
			return library
		}
	}
	return name
}

// WantLibraryDir reports whether the runner folder dir (cuda_v13) is one
// that requested (from RequestedLibrary) selects.
func WantLibraryDir(requested, dir string) bool {
	return requested == "" || requested == strings.ToLower(dir) || requested == strings.ToLower(libraryFamily(dir))
}

// WantDevice reports whether requested (from RequestedLibrary) selects the
// library of d.
func WantDevice(requested string, d DeviceInfo) bool {
	return requested == "" || libraryFamily(requested) == d.Library
}

// HideOtherLibraries returns a copy of env with the variables that hide the
// devices of every GPU library but those in shown (library names as
// DeviceInfo.Library or OLLAMA_LLM_LIBRARY spell them) from a llama-server;
// a variable env sets is kept. HIP also reads CUDA_VISIBLE_DEVICES, so CUDA
// is not hidden while ROCm is shown.
func HideOtherLibraries(env map[string]string, shown ...string) map[string]string {
	var families []string
	for _, name := range shown {
		families = append(families, libraryFamily(name))
	}
	out := maps.Clone(env)
	if out == nil {
		out = map[string]string{}
	}
	for library, hide := range hideLibraryEnv {
		if slices.Contains(families, library) || (library == "CUDA" && slices.Contains(families, "ROCm")) {
			continue
		}
		for k, v := range hide {
			if _, ok := out[k]; !ok {
				out[k] = v
			}
		}
	}
	return out
}

// LlamaServerDevices returns llama-server's --device value for a runner of
// devices l started with env (from GetDevicesEnv): "none" with no device,
// "" when a device's name is not known. A library whose devices env lists
// numbers them from 0 in that order; otherwise a device keeps the name
// discovery saw.
func LlamaServerDevices(l []DeviceInfo, env map[string]string) string {
	if len(l) == 0 {
		return "none"
	}
	names := make([]string, len(l))
	next := map[string]int{}
	for i, d := range l {
		prefix := strings.TrimRight(d.Name, "0123456789")
		if prefix == "" || prefix == d.Name {
			return ""
		}
		names[i] = d.Name
		probe := map[string]string{}
		d.updateVisibleDevicesEnv(probe, true)
		for k := range probe {
			if _, filtered := env[k]; filtered {
				names[i] = prefix + strconv.Itoa(next[d.Library])
			}
		}
		next[d.Library]++
	}
	return strings.Join(names, ",")
}

package llm

import (
	"strings"

	"github.com/ollama/ollama/ml"
)

// RunnerBackendsEnv tells a runner which GGML backend libraries it may load:
// a comma-separated list of GGML backend names (the "name" in
// libggml-name.so). Unset, a runner loads every libggml-*.so in its library
// folders, as upstream does; in the flat layout that means HIP is loaded and
// initialised even for a model that runs on Vulkan.
const RunnerBackendsEnv = "OLLAMA_GGML_BACKENDS"

// GGMLBackendName is the GGML backend name of a library as ml.DeviceInfo
// names it: "CUDA" -> "cuda", "ROCm" -> "hip", "Vulkan" -> "vulkan".
func GGMLBackendName(library string) string {
	if strings.EqualFold(library, "ROCm") {
		return "hip"
	}
	return strings.ToLower(library)
}

// RunnerBackends lists the GGML backends a runner for these devices needs:
// each device's library once, in order, then CPU, which every runner has.
func RunnerBackends(devices []ml.DeviceInfo) string {
	names := []string{}
	seen := map[string]bool{}
	for _, d := range devices {
		if n := GGMLBackendName(d.Library); n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	if !seen["cpu"] {
		names = append(names, "cpu")
	}
	return strings.Join(names, ",")
}

// RunnerEnv is the extra environment of a runner given these devices:
// upstream's device-visibility variables plus RunnerBackendsEnv, so that the
// runner opens only the backend libraries of its own devices.
func RunnerEnv(devices []ml.DeviceInfo, mustFilter bool) map[string]string {
	env := ml.GetVisibleDevicesEnv(devices, mustFilter)
	if env == nil {
		env = map[string]string{}
	}
	env[RunnerBackendsEnv] = RunnerBackends(devices)
	return env
}

// RunnerEnvHook adds variables to a model runner's environment from what is
// known when the model loads: its devices and the model's architecture
// (general.architecture). discover registers the quirk table's this way,
// since llm cannot import discover.
type RunnerEnvHook func(devices []ml.DeviceInfo, arch string) map[string]string

var runnerEnvHooks []RunnerEnvHook

// AddRunnerEnvHook registers h for every model runner started afterwards.
// It is meant for package initialisation, before runners start.
func AddRunnerEnvHook(h RunnerEnvHook) { runnerEnvHooks = append(runnerEnvHooks, h) }

// ModelRunnerEnv is RunnerEnv for a runner that loads a model of
// architecture arch, with what the hooks add.
func ModelRunnerEnv(devices []ml.DeviceInfo, arch string) map[string]string {
	env := RunnerEnv(devices, false)
	for _, h := range runnerEnvHooks {
		for k, v := range h(devices, arch) {
			env[k] = v
		}
	}
	return env
}

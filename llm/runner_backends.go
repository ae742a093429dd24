package llm

import (
	"fmt"
	"strings"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/ollama/ollama/ml"
)

// RunnerDevices is what one llama-server may use: the devices it was given
// and nothing else. ggml loads every backend it finds (its compiled-in
// folder, the executable's folder, GGML_BACKEND_PATH), and llama-server
// offloads to every device it sees unless --device says otherwise, so both
// are set: the environment shows each chosen library only its devices and
// hides every other GPU library, and Device names the devices in the
// numbering that environment gives them.
type RunnerDevices struct {
	// Device is llama-server's --device value: "Vulkan0", "ROCm0,ROCm1",
	// "none" for a CPU-only runner, or "" where a device's name is not
	// known (Metal): then llama-server chooses, as upstream.
	Device string
	// Env holds the visibility variables.
	Env map[string]string
}

// PlanRunnerDevices gives the runner of these devices (from discovery,
// after the choice of library) its --device list and environment.
func PlanRunnerDevices(devices []ml.DeviceInfo) RunnerDevices {
	env := map[string]string{}
	var names, shown []string
	knownNames := true
	byLibrary := map[string][]ml.DeviceInfo{}
	for _, d := range devices {
		if _, ok := byLibrary[d.Library]; !ok {
			shown = append(shown, d.Library)
		}
		byLibrary[d.Library] = append(byLibrary[d.Library], d)
	}
	for _, library := range shown {
		group := byLibrary[library]
		for k, v := range ml.GetDevicesEnv(group) {
			env[k] = v
		}
		lib, ok := envconfig.LookupGPULibrary(library)
		if !ok {
			knownNames = false
			continue
		}
		// Upstream leaves some groups unfiltered (several Vulkan devices);
		// the numbering below needs the list in every case.
		if _, set := env[lib.Visible]; !set {
			ids := make([]string, len(group))
			for i, d := range group {
				ids[i] = d.FilterID
				if ids[i] == "" {
					ids[i] = d.ID
				}
			}
			env[lib.Visible] = strings.Join(ids, ",")
		}
		for i, d := range group {
			prefix := strings.TrimRight(d.Name, "0123456789")
			if prefix == "" || prefix == d.Name {
				knownNames = false
				break
			}
			names = append(names, fmt.Sprintf("%s%d", prefix, i))
		}
	}
	var hidden []string
	for _, l := range envconfig.GPULibraries() {
		if _, ok := byLibrary[l.Device]; !ok {
			hidden = append(hidden, l.Device)
		}
	}
	for k, v := range envconfig.HideEnv(hidden, shown) {
		env[k] = v
	}
	rd := RunnerDevices{Env: env}
	switch {
	case len(devices) == 0:
		rd.Device = "none"
	case knownNames:
		rd.Device = strings.Join(names, ",")
	}
	return rd
}

// RunnerEnv is the extra environment of a runner for these devices: see
// PlanRunnerDevices.
func RunnerEnv(devices []ml.DeviceInfo) map[string]string {
	return PlanRunnerDevices(devices).Env
}

// appendRunnerDeviceArgs adds --device to a model runner's arguments.
func appendRunnerDeviceArgs(params []string, devices []ml.DeviceInfo) []string {
	if d := PlanRunnerDevices(devices).Device; d != "" {
		params = append(params, "--device", d)
	}
	return params
}

// ModelLoad is what the backend decision knows of a model when it loads.
type ModelLoad struct {
	// Name is the model's short name, for logs.
	Name string
	// Arch is the model's GGUF general.architecture, "qwen3".
	Arch string
	// Vision is set when the model loads a vision projector (mmproj).
	Vision bool
	// Library is the model's `library` option as the request carries it
	// (request option over the model's parameter), "" when unset, and
	// LibrarySource says which of the two set it: "request option" or
	// "model parameter".
	Library, LibrarySource string
}

// RunnerEnvHook adds variables to a model runner's environment from what is
// known when the model loads: its devices and the model's traits. discover
// registers the quirk table's this way, since llm cannot import discover.
type RunnerEnvHook func(devices []ml.DeviceInfo, m ModelLoad) map[string]string

var runnerEnvHooks []RunnerEnvHook

// AddRunnerEnvHook registers h for every model runner started afterwards.
// It is meant for package initialisation, before runners start.
func AddRunnerEnvHook(h RunnerEnvHook) { runnerEnvHooks = append(runnerEnvHooks, h) }

// ModelRunnerEnv is RunnerEnv for a runner that loads model m, with what
// the hooks add.
func ModelRunnerEnv(devices []ml.DeviceInfo, m ModelLoad) map[string]string {
	env := RunnerEnv(devices)
	for _, h := range runnerEnvHooks {
		for k, v := range h(devices, m) {
			env[k] = v
		}
	}
	return env
}

// NewModelLoad describes a model for the backend decision: requested is the
// `library` option the request carries (Ollama merges the request's options
// over the model's parameters), modelParams the model's own parameters,
// which tell whether the value came from the model (`PARAMETER library` in
// its Modelfile) or from the request.
func NewModelLoad(name, arch string, vision bool, requested string, modelParams map[string]any) ModelLoad {
	m := ModelLoad{Name: name, Arch: arch, Vision: vision, Library: requested}
	if requested == "" {
		return m
	}
	m.LibrarySource = "request option"
	if v, ok := modelParams[envconfig.LibraryOptionName].(string); ok && v == requested {
		m.LibrarySource = "model parameter"
	}
	return m
}

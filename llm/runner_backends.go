package llm

import (
	"maps"

	"github.com/ollama/ollama/ml"
)

// RunnerDevices is what one llama-server may use, as the backend plan
// decided it (discover.Plan.Runner): its devices and nothing else.
type RunnerDevices struct {
	// Device is llama-server's --device value: "Vulkan0", "ROCm0,ROCm1",
	// "none" for a CPU-only runner, or "" where a device's name is not
	// known (Metal): then llama-server chooses, as upstream.
	Device string
	// Env holds the visibility variables and those the rules ask for; nil
	// when no plan was made (then the runner gets upstream's environment).
	Env map[string]string
}

// deviceEnv is the runner's device environment: the plan's, or upstream's
// for gpus when there is none.
func (r RunnerDevices) deviceEnv(gpus []ml.DeviceInfo) map[string]string {
	if r.Env == nil {
		return ml.GetDevicesEnv(gpus)
	}
	return maps.Clone(r.Env)
}

// appendRunnerDeviceArgs adds the plan's --device to a runner's arguments.
func appendRunnerDeviceArgs(params []string, r RunnerDevices) []string {
	if r.Device != "" {
		params = append(params, "--device", r.Device)
	}
	return params
}

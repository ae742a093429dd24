package llm

import (
	"maps"
	"strings"

	"github.com/ollama/ollama/ml"
)

// RunnerDevices is the devices one llama-server may use, from discover.Plan.Runner.
type RunnerDevices struct {
	// Device is the --device value; "" (Metal) lets llama-server choose.
	Device string
	// Env is nil when no plan was made: then upstream's environment applies.
	Env map[string]string
	// RPC are the --rpc endpoints; Remote their devices, which the runner
	// uses after the local ones.
	RPC    []string
	Remote []ml.DeviceInfo
}

func (r RunnerDevices) deviceEnv(gpus []ml.DeviceInfo) map[string]string {
	if r.Env == nil {
		return ml.GetDevicesEnv(gpus)
	}
	return maps.Clone(r.Env)
}

func appendRunnerDeviceArgs(params []string, r RunnerDevices) []string {
	if len(r.RPC) > 0 {
		params = append(params, "--rpc", strings.Join(r.RPC, ","))
	}
	if r.Device != "" {
		params = append(params, "--device", r.Device)
	}
	return params
}

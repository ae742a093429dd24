package llm

import (
	"fmt"
	"maps"
	"net"
	"strings"
	"time"

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

// RemoteFault adds to a failed runner's message the --rpc endpoints that no
// longer accept connections: ggml's own message does not name them.
func (r RunnerDevices) RemoteFault(msg string) string {
	var down []string
	for _, e := range r.RPC {
		c, err := net.DialTimeout("tcp", e, time.Second)
		if err != nil {
			down = append(down, e)
			continue
		}
		c.Close()
	}
	if len(down) == 0 {
		return msg
	}
	return fmt.Sprintf("remote RPC server %s stopped answering (%s)", strings.Join(down, ", "), msg)
}

package llm

import (
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ollama/ollama/format"
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

// remoteAllocFailed is ggml's line for a buffer a remote could not allocate.
var remoteAllocFailed = regexp.MustCompile(`failed to allocate RPC\d+\[([^\]]+)\] buffer of size (\d+)`)

// RemoteFault says which remote a failed runner's message is about: one out
// of memory, or the --rpc endpoints that no longer accept connections.
// ggml's own message names neither plainly.
func (r RunnerDevices) RemoteFault(msg string) string {
	if m := remoteAllocFailed.FindStringSubmatch(msg); m != nil && slices.Contains(r.RPC, m[1]) {
		size, _ := strconv.ParseUint(m[2], 10, 64)
		return fmt.Sprintf("remote RPC server %s is out of memory: it could not allocate %s (%s)", m[1], format.HumanBytes2(size), msg)
	}
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

package discover

import (
	"fmt"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/llm"
	"github.com/costa-os/ollama-backend-select/ml/backends"
	"github.com/ollama/ollama/ml"
)

// runnerDevices gives a runner its --device list and environment. ggml loads
// every backend it finds and llama-server offloads to every device it sees,
// so the environment hides every other library, and --device numbers the
// devices as that environment does.
func runnerDevices(devices []ml.DeviceInfo) llm.RunnerDevices {
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
		lib, ok := backends.Lookup(library)
		if !ok {
			knownNames = false
			continue
		}
		// Upstream leaves some groups unfiltered; the numbering needs the list.
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
	for _, l := range backends.GPUs() {
		if _, ok := byLibrary[l.Device]; !ok {
			hidden = append(hidden, l.Device)
		}
	}
	for k, v := range backends.HideEnv(hidden, shown) {
		env[k] = v
	}
	rd := llm.RunnerDevices{Env: env}
	switch {
	case len(devices) == 0:
		rd.Device = "none"
	case knownNames:
		rd.Device = strings.Join(names, ",")
	}
	return rd
}

func formatEnv(env map[string]string) string {
	parts := make([]string, 0, len(env))
	for k, v := range env {
		parts = append(parts, k+"="+v)
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}

// withRemote adds remote devices to a runner: llama-server numbers them
// RPC0, RPC1, ... over the --rpc endpoints in order.
func withRemote(r llm.RunnerDevices, remote []ml.DeviceInfo) llm.RunnerDevices {
	if len(remote) == 0 {
		return r
	}
	var names []string
	for i, d := range remote {
		if e := remoteEndpoint(d.DeviceID); !slices.Contains(r.RPC, e) {
			r.RPC = append(r.RPC, e)
		}
		names = append(names, fmt.Sprintf("RPC%d", i))
	}
	switch r.Device {
	case "none":
		r.Device = strings.Join(names, ",")
	case "":
	default:
		r.Device += "," + strings.Join(names, ",")
	}
	r.Remote = remote
	return r
}

package discover

import (
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	upstreamenv "github.com/ollama/ollama/envconfig"
	"github.com/ollama/ollama/format"
	upstreamllm "github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// Remote is one OLLAMA_RPC_SERVERS endpoint as a probe found it.
type Remote struct {
	Endpoint string
	// Devices have Library backends.RPC, the endpoint as Description, and
	// as Name the prefix of llama-server's buffer lines for them.
	Devices []ml.DeviceInfo
	// Err says why the endpoint offers no device.
	Err string
}

// rpcProbeTimeout bounds one endpoint's probe: a host that drops packets
// would otherwise hold a load for the kernel's connect timeout.
const rpcProbeTimeout = 5 * time.Second

// ProbeRemotes asks every endpoint for its devices, in parallel, through
// llama-server itself, so that an endpoint speaking another protocol version
// fails here as it would in the runner. Failures are logged, one WARN each.
func ProbeRemotes(ctx context.Context, endpoints []string) []Remote {
	if len(endpoints) == 0 {
		return nil
	}
	remotes := make([]Remote, len(endpoints))
	exe, err := upstreamllm.FindLlamaServer()
	var wg sync.WaitGroup
	for i, e := range endpoints {
		remotes[i].Endpoint = e
		if err != nil {
			remotes[i].Err = err.Error()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			remotes[i] = probeRemote(ctx, exe, e)
		}()
	}
	wg.Wait()
	for _, r := range remotes {
		if r.Err != "" {
			slog.Warn("remote RPC server left out, serving without it", "endpoint", r.Endpoint, "error", r.Err)
		}
	}
	return remotes
}

func probeRemote(ctx context.Context, exe, endpoint string) Remote {
	ctx, cancel := context.WithTimeout(ctx, rpcProbeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "--rpc", endpoint, "--list-devices", "--offline")
	cmd.WaitDelay = time.Second
	// Only the remote's devices: the environment of a runner with no local device.
	upstreamllm.SetupLlamaServerCommandEnv(cmd, exe, nil, runnerDevices(nil).Env)
	out, err := cmd.CombinedOutput()
	r := Remote{Endpoint: endpoint, Devices: parseRemoteDevices(endpoint, string(out))}
	switch {
	case ctx.Err() != nil:
		// An RPC server serves one client at a time.
		r.Err = fmt.Sprintf("no answer within %s: down, or serving another runner", rpcProbeTimeout)
	case len(r.Devices) == 0:
		r.Err = remoteFailure(string(out), err)
	}
	return r
}

var remoteDeviceLine = regexp.MustCompile(`^\s+RPC\d+:\s+(\S+)\s+\((\d+)\s+MiB,\s+(\d+)\s+MiB\s+free\)`)

func parseRemoteDevices(endpoint, out string) []ml.DeviceInfo {
	var devices []ml.DeviceInfo
	for _, line := range strings.Split(out, "\n") {
		m := remoteDeviceLine.FindStringSubmatch(line)
		if m == nil || m[1] != endpoint {
			continue
		}
		total, _ := strconv.ParseUint(m[2], 10, 64)
		free, _ := strconv.ParseUint(m[3], 10, 64)
		i := len(devices)
		devices = append(devices, ml.DeviceInfo{
			DeviceID:    ml.DeviceID{Library: backends.RPC, ID: fmt.Sprintf("%s/%d", endpoint, i)},
			Name:        fmt.Sprintf("RPC%d[%s]", i, endpoint),
			Description: endpoint,
			TotalMemory: total << 20,
			FreeMemory:  free << 20,
			LibraryPath: []string{ml.LibOllamaPath},
		})
	}
	return devices
}

// remoteFailure picks ggml's own words for the failure: "Failed to connect
// to ...", "RPC server version mismatch: ...".
func remoteFailure(out string, err error) string {
	lines := strings.Split(out, "\n")
	for _, line := range lines {
		for _, key := range []string{"version mismatch", "Failed to connect", "handshake failed", "Failed to parse endpoint", "Cannot resolve host"} {
			if i := strings.Index(line, key); i >= 0 {
				start := 0
				if j := strings.LastIndex(line[:i], ": "); j >= 0 {
					start = j + 2
				}
				return strings.TrimSpace(line[start:])
			}
		}
	}
	if err != nil {
		return "llama-server --rpc --list-devices: " + err.Error()
	}
	return "no device"
}

// remoteEndpoint is the endpoint of a remote device's id.
func remoteEndpoint(id ml.DeviceID) string {
	if i := strings.LastIndex(id.ID, "/"); i >= 0 {
		return id.ID[:i]
	}
	return id.ID
}

// mayUseRemotes reports whether model m may use remote devices at all, so
// that a load that cannot is not held up probing them.
func mayUseRemotes(d Discovery, m ModelLoad) bool {
	pref, _ := preferenceFor(d, m)
	return len(d.RPCServers) > 0 && (!pref.IsSet() || pref.Names("rpc"))
}

// remoteChoice is which remote devices a model may use and why: all of
// them unless a preference leaves rpc out.
func remoteChoice(in PlanInput) ([]ml.DeviceInfo, bool, string) {
	var devices []ml.DeviceInfo
	for _, r := range in.Discovery.Remote {
		devices = append(devices, r.Devices...)
	}
	pref, by := preferenceFor(in.Discovery, in.Model)
	switch {
	case len(devices) == 0:
		return nil, false, ""
	case !pref.IsSet():
		return devices, false, ""
	case pref.Names("rpc"):
		return devices, true, by
	}
	return nil, false, ""
}

// remoteFor is the remote devices a runner on local uses: those named by a
// preference, else all of them when the local GPUs cannot hold need.
func (p Plan) remoteFor(local []ml.DeviceInfo, need uint64) ([]ml.DeviceInfo, string) {
	if len(p.Remote) == 0 || p.remoteNamed {
		return p.Remote, p.RemoteReason
	}
	// What the scheduler lets a model use: free less the reserve it keeps
	// (server/sched.go: OLLAMA_GPU_OVERHEAD and the minimum per GPU).
	var free uint64
	for _, g := range local {
		if reserve := upstreamenv.GpuOverhead() + g.MinimumMemory(); g.FreeMemory > reserve {
			free += g.FreeMemory - reserve
		}
	}
	if len(local) > 0 && need <= free {
		return nil, ""
	}
	return p.Remote, fmt.Sprintf("the model needs %s, the local GPUs have %s usable", format.HumanBytes2(need), format.HumanBytes2(free))
}

// remoteUse is remoteFor's policy in words, for the listing.
func (p Plan) remoteUse(pref backends.Preference) string {
	switch {
	case p.remoteNamed:
		return p.RemoteReason + ": every model"
	case len(p.Remote) > 0 && len(p.Choices) == 0:
		return "no local GPU: every model"
	case len(p.Remote) > 0:
		return "for what the local GPUs cannot hold"
	}
	return "OLLAMA_LLM_LIBRARY=" + pref.String() + " does not request rpc"
}

// RunnerLibraryShares is RunnerLibrary with each name's share of the
// runner's GPU memory where remote devices hold some, for ps:
// "Vulkan 60%, RPC 10.0.0.2:50052 40%".
func RunnerLibraryShares(ids []ml.DeviceID, vram map[ml.DeviceID]uint64) string {
	var total uint64
	remote := false
	for _, id := range ids {
		total += vram[id]
		remote = remote || id.Library == backends.RPC
	}
	if !remote || total == 0 {
		return RunnerLibrary(ids)
	}
	var names []string
	shares := map[string]uint64{}
	for _, id := range ids {
		name := RunnerLibrary([]ml.DeviceID{id})
		if _, ok := shares[name]; !ok {
			names = append(names, name)
		}
		shares[name] += vram[id]
	}
	for i, n := range names {
		names[i] = fmt.Sprintf("%s %d%%", n, (shares[n]*100+total/2)/total)
	}
	return strings.Join(names, ", ")
}

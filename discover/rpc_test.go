package discover

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

// remote is an endpoint the probe reached, with one device per size in GiB.
func remote(endpoint string, gib ...uint64) Remote {
	var out strings.Builder
	for i, g := range gib {
		fmt.Fprintf(&out, "  RPC%d: %s (%d MiB, %d MiB free)\n", i+3, endpoint, g<<10, g<<10)
	}
	return Remote{Endpoint: endpoint, Devices: parseRemoteDevices(endpoint, out.String())}
}

func withFree(d ml.DeviceInfo, gib uint64) ml.DeviceInfo {
	d.FreeMemory = gib << 30
	return d
}

// rpcDecideCases are Decide's rows with OLLAMA_RPC_SERVERS set.
func rpcDecideCases() []decideCase {
	vulkan := []ml.DeviceInfo{withFree(dev("flat", "Vulkan", "0", "0000:03:00.0", "", false), 8)}
	two := []Remote{remote("10.0.0.2:50052", 24), remote("10.0.0.3:50052", 16, 16)}
	down := Remote{Endpoint: "10.0.0.4:50052", Err: "Failed to connect to 10.0.0.4:50052"}
	hideAll := runnerEnv(hidden["CUDA"], hidden["ROCm"], hidden["Vulkan"])
	vulkanOnly := runnerEnv(map[string]string{"GGML_VK_VISIBLE_DEVICES": "0"}, hidden["CUDA"], hidden["ROCm"])
	return []decideCase{
		{
			name: "rpc: no local GPU, two remotes: every remote device, in --rpc order", remotes: two, cpuOnly: true, need: 4 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want:  decideWant{Device: "RPC0,RPC1,RPC2", RPC: "10.0.0.2:50052,10.0.0.3:50052", Env: hideAll, DecidedBy: "default order"},
		},
		{
			name: "rpc: the local GPU holds the model: no remote", devices: vulkan, remotes: two, need: 4 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want: decideWant{
				Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkanOnly,
				Reason: "the only library of this GPU", DecidedBy: "default order",
			},
		},
		{
			name: "rpc: the model does not fit the local GPU: the remotes after it", devices: vulkan, remotes: two, need: 12 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want: decideWant{
				Libraries: []string{"Vulkan"}, Device: "Vulkan0,RPC0,RPC1,RPC2", RPC: "10.0.0.2:50052,10.0.0.3:50052", Env: vulkanOnly,
				Reason: "the only library of this GPU", DecidedBy: "default order",
			},
		},
		{
			name: "rpc: free memory holds the model, the scheduler's reserve does not: the remotes after it", devices: vulkan, remotes: two[:1], need: 8<<30 - 256<<20,
			model: ModelLoad{Arch: "qwen3"},
			want: decideWant{
				Libraries: []string{"Vulkan"}, Device: "Vulkan0,RPC0", RPC: "10.0.0.2:50052", Env: vulkanOnly,
				Reason: "the only library of this GPU", DecidedBy: "default order",
			},
		},
		{
			name: "rpc: an unreachable endpoint is left out", remotes: []Remote{down, remote("10.0.0.2:50052", 24)}, cpuOnly: true, need: 1 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want:  decideWant{Device: "RPC0", RPC: "10.0.0.2:50052", Env: hideAll, DecidedBy: "default order"},
		},
		{
			name: "rpc: OLLAMA_LLM_LIBRARY=rpc puts every layer remote", pref: "rpc", remotes: two[:1], cpuOnly: true, need: 1 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want:  decideWant{Device: "RPC0", RPC: "10.0.0.2:50052", Env: hideAll, DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "rpc: OLLAMA_LLM_LIBRARY=vulkan leaves the remotes out even when the model does not fit", pref: "vulkan", devices: vulkan, remotes: two, need: 12 << 30,
			model: ModelLoad{Arch: "qwen3"},
			want: decideWant{
				Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkanOnly,
				Reason: "OLLAMA_LLM_LIBRARY=vulkan; the only library of this GPU it requests", DecidedBy: "OLLAMA_LLM_LIBRARY",
			},
		},
		{
			name: "rpc: the model's library=rpc uses the remote though the local GPU would do", devices: vulkan, remotes: two[:1], need: 1 << 30,
			model: ModelLoad{Arch: "qwen3", Library: mustPreference("rpc"), LibrarySource: "request option"},
			want:  decideWant{Device: "RPC0", RPC: "10.0.0.2:50052", Env: hideAll, DecidedBy: "request option"},
		},
		{
			name: "rpc: library=rpc with no remote reachable is refused", devices: vulkan, remotes: []Remote{down},
			model:   ModelLoad{Name: "tiny", Arch: "qwen3", Library: mustPreference("rpc")},
			wantErr: `library option "rpc" of model tiny: no device can serve it (found: Vulkan)`,
		},
	}
}

func TestParseRemoteDevices(t *testing.T) {
	out := "load_backend: loaded RPC backend from /usr/lib/x86_64-linux-gnu/ggml/backends0/libggml-rpc.so\n" +
		"Available devices:\n  RPC0: 10.0.0.2:50052 (24105 MiB, 23613 MiB free)\n  RPC1: 10.0.0.2:50052 (8192 MiB, 8000 MiB free)\n" +
		"  RPC2: 10.0.0.3:50052 (100 MiB, 100 MiB free)\n"
	got := parseRemoteDevices("10.0.0.2:50052", out)
	want := []ml.DeviceInfo{
		{
			DeviceID: ml.DeviceID{Library: "RPC", ID: "10.0.0.2:50052/0"}, Name: "RPC0[10.0.0.2:50052]", Description: "10.0.0.2:50052",
			TotalMemory: 24105 << 20, FreeMemory: 23613 << 20, LibraryPath: []string{ml.LibOllamaPath},
		},
		{
			DeviceID: ml.DeviceID{Library: "RPC", ID: "10.0.0.2:50052/1"}, Name: "RPC1[10.0.0.2:50052]", Description: "10.0.0.2:50052",
			TotalMemory: 8192 << 20, FreeMemory: 8000 << 20, LibraryPath: []string{ml.LibOllamaPath},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseRemoteDevices (-want +got):\n%s", diff)
	}
	if e := remoteEndpoint(got[1].DeviceID); e != "10.0.0.2:50052" {
		t.Errorf("remoteEndpoint = %q", e)
	}
}

func TestRemoteFailure(t *testing.T) {
	tests := []struct {
		name, out string
		err       error
		want      string
	}{
		{
			"refused", "load_backend: loaded RPC backend\n./src/ggml-rpc/ggml-rpc.cpp:650: Failed to connect to 127.0.0.1:50099\n/usr/lib/libggml-base.so.0(+0x150c5)\nAborted\n",
			errors.New("signal: aborted"), "Failed to connect to 127.0.0.1:50099",
		},
		{
			"version", "RPC server version mismatch: 2.0.0\nggml-rpc.cpp:551: RPC handshake failed for 10.0.0.2:50052\n",
			errors.New("signal: aborted"), "RPC server version mismatch: 2.0.0",
		},
		{"nothing said", "", errors.New("exit status 1"), "llama-server --rpc --list-devices: exit status 1"},
		{"no device", "Available devices:\n", nil, "no device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := remoteFailure(tt.out, tt.err); got != tt.want {
				t.Errorf("remoteFailure = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunnerLibraryNamesTheEndpoint(t *testing.T) {
	ids := []ml.DeviceID{{Library: "Vulkan", ID: "0"}, {Library: "RPC", ID: "10.0.0.2:50052/0"}, {Library: "RPC", ID: "10.0.0.2:50052/1"}, {Library: "RPC", ID: "gpu-box:50052/0"}}
	if got, want := RunnerLibrary(ids), "Vulkan,RPC 10.0.0.2:50052,RPC gpu-box:50052"; got != want {
		t.Errorf("RunnerLibrary = %q, want %q", got, want)
	}
}

func TestRunnerLibraryShares(t *testing.T) {
	vk := ml.DeviceID{Library: "Vulkan", ID: "0"}
	r1, r2 := ml.DeviceID{Library: "RPC", ID: "10.0.0.2:50052/0"}, ml.DeviceID{Library: "RPC", ID: "10.0.0.3:50052/0"}
	tests := []struct {
		name string
		ids  []ml.DeviceID
		vram map[ml.DeviceID]uint64
		want string
	}{
		{"local only: the library alone", []ml.DeviceID{vk}, map[ml.DeviceID]uint64{vk: 100}, "Vulkan"},
		{"local and remote", []ml.DeviceID{vk, r1}, map[ml.DeviceID]uint64{vk: 600, r1: 400}, "Vulkan 60%, RPC 10.0.0.2:50052 40%"},
		{"two remotes", []ml.DeviceID{r1, r2}, map[ml.DeviceID]uint64{r1: 1, r2: 3}, "RPC 10.0.0.2:50052 25%, RPC 10.0.0.3:50052 75%"},
		{"nothing parsed yet", []ml.DeviceID{vk, r1}, nil, "Vulkan,RPC 10.0.0.2:50052"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := RunnerLibraryShares(tt.ids, tt.vram); got != tt.want {
				t.Errorf("RunnerLibraryShares = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestMayUseRemotes(t *testing.T) {
	servers := []string{"10.0.0.2:50052"}
	tests := []struct {
		name        string
		servers     []string
		pref, model string
		want        bool
	}{
		{"no OLLAMA_RPC_SERVERS", nil, "", "", false},
		{"nothing set", servers, "", "", true},
		{"OLLAMA_LLM_LIBRARY=vulkan", servers, "vulkan", "", false},
		{"OLLAMA_LLM_LIBRARY=vulkan,rpc", servers, "vulkan,rpc", "", true},
		{"the model's option names rpc over OLLAMA_LLM_LIBRARY", servers, "vulkan", "rpc", true},
		{"the model's option leaves rpc out", servers, "", "cpu", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Discovery{RPCServers: tt.servers, Preference: mustPreference(tt.pref)}
			if got := mayUseRemotes(d, ModelLoad{Library: mustPreference(tt.model)}); got != tt.want {
				t.Errorf("mayUseRemotes = %v, want %v", got, tt.want)
			}
		})
	}
}

package llm

import (
	"net"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

// TestRunnerDevicesLaunch: a runner gets the plan's --device and environment
// as they are, and upstream's environment when there is no plan.
func TestRunnerDevicesLaunch(t *testing.T) {
	vulkan := ml.DeviceInfo{DeviceID: ml.DeviceID{Library: "Vulkan", ID: "0"}, Name: "Vulkan0"}
	tests := []struct {
		name     string
		plan     RunnerDevices
		wantArgs []string
		wantEnv  map[string]string
	}{
		{
			name:     "planned: its --device and environment",
			plan:     RunnerDevices{Device: "Vulkan0", Env: map[string]string{"GGML_VK_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": "-1"}},
			wantArgs: []string{"--model", "m", "--device", "Vulkan0"},
			wantEnv:  map[string]string{"GGML_VK_VISIBLE_DEVICES": "0", "HIP_VISIBLE_DEVICES": "-1"},
		},
		{
			name:     "planned on the CPU: --device none",
			plan:     RunnerDevices{Device: "none", Env: map[string]string{"GGML_VK_VISIBLE_DEVICES": ""}},
			wantArgs: []string{"--model", "m", "--device", "none"},
			wantEnv:  map[string]string{"GGML_VK_VISIBLE_DEVICES": ""},
		},
		{
			name:     "no plan: upstream's environment, no --device",
			wantArgs: []string{"--model", "m"},
			wantEnv:  ml.GetDevicesEnv([]ml.DeviceInfo{vulkan}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.wantArgs, appendRunnerDeviceArgs([]string{"--model", "m"}, tt.plan)); diff != "" {
				t.Errorf("arguments (-want +got):\n%s", diff)
			}
			env := tt.plan.deviceEnv([]ml.DeviceInfo{vulkan})
			if diff := cmp.Diff(tt.wantEnv, env); diff != "" {
				t.Errorf("environment (-want +got):\n%s", diff)
			}
			if tt.plan.Env != nil {
				env["X"] = "changed"
				if _, ok := tt.plan.Env["X"]; ok {
					t.Error("the runner's environment is the plan's map, not a copy")
				}
			}
		})
	}
}

func TestRemoteFaultNamesTheEndpointThatStopped(t *testing.T) {
	alive, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer alive.Close()
	gone, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	goneAddr := gone.Addr().String()
	gone.Close()

	oom := "exit status 1: ggml_backend_buft_alloc_buffer_n_default: failed to allocate RPC0[" + alive.Addr().String() + "] buffer of size 362752"
	tests := []struct {
		name string
		rpc  []string
		msg  string
		want string
	}{
		{"no remote", nil, "unexpected EOF", "unexpected EOF"},
		{"all answer", []string{alive.Addr().String()}, "unexpected EOF", "unexpected EOF"},
		{"one stopped", []string{alive.Addr().String(), goneAddr}, "unexpected EOF", "remote RPC server " + goneAddr + " stopped answering (unexpected EOF)"},
		{"one out of memory", []string{alive.Addr().String()}, oom, "remote RPC server " + alive.Addr().String() + " is out of memory: it could not allocate 354.2 KiB (" + oom + ")"},
		{"a buffer of an endpoint not this runner's", nil, oom, oom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (RunnerDevices{RPC: tt.rpc}).RemoteFault(tt.msg); got != tt.want {
				t.Errorf("RemoteFault = %q, want %q", got, tt.want)
			}
		})
	}
}

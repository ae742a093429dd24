package discover

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"
)

func TestRPCExposure(t *testing.T) {
	rdna4 := []ml.DeviceInfo{dev("flat", "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)}
	rdna3 := []ml.DeviceInfo{dev("flat", "ROCm", "0", "0000:04:00.0", "gfx1100", false), dev("flat", "Vulkan", "0", "0000:04:00.0", "", false)}
	tests := []struct {
		name      string
		devices   []ml.DeviceInfo
		rules     []QuirkRule
		learned   []QuirkRule
		pref      string
		want      []string // library@pci
		wantArgs  string
		wantLeft  string
		wantEnvIn map[string]string
	}{
		{name: "no GPU: the CPU", wantArgs: "-H 127.0.0.1 -p 50052 -d CPU"},
		{
			name: "gfx1200 with the built-in rules: Vulkan, never ROCm", devices: rdna4, rules: builtinQuirks(),
			want: []string{"Vulkan@0000:03:00.0"}, wantArgs: "-H 127.0.0.1 -p 50052 -d Vulkan0",
			wantEnvIn: map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1", "GGML_VK_VISIBLE_DEVICES": "0"},
		},
		{
			name: "gfx1200, OLLAMA_BACKEND_DENYLIST=none: ROCm", devices: rdna4,
			want: []string{"ROCm@0000:03:00.0"}, wantArgs: "-H 127.0.0.1 -p 50052 -d ROCm0",
			wantEnvIn: map[string]string{"GGML_VK_VISIBLE_DEVICES": ""},
		},
		{
			name: "gfx1100 keeps ROCm beside a gfx1200 on Vulkan", devices: append(slices.Clone(rdna4), rdna3...), rules: builtinQuirks(),
			want: []string{"Vulkan@0000:03:00.0", "ROCm@0000:04:00.0"}, wantArgs: "-H 127.0.0.1 -p 50052 -d Vulkan0,ROCm0",
		},
		{
			name: "a rule the watchdog learned for one model keeps the gfx1100 off ROCm", devices: rdna3, rules: builtinQuirks(),
			learned: []QuirkRule{{Library: "ROCm", ComputePattern: "gfx1100", ArchPatterns: []string{"llama"}, Action: QuirkUseOtherLibrary, Source: QuirkSourceLearned}},
			want:    []string{"Vulkan@0000:04:00.0"}, wantArgs: "-H 127.0.0.1 -p 50052 -d Vulkan0",
		},
		{
			name: "a learned rule on a gfx1100 without a Vulkan twin: left out, naming the reset", devices: rdna3[:1], rules: builtinQuirks(),
			learned:  []QuirkRule{{Library: "ROCm", ComputePattern: "gfx1100", ArchPatterns: []string{"llama"}, Action: QuirkUseOtherLibrary, Source: QuirkSourceLearned}},
			wantArgs: "-H 127.0.0.1 -p 50052 -d CPU", wantLeft: "(rule rocm:gfx1100:llama, learned); OLLAMA_BACKEND_QUIRKS_RESET=1 forgets the learned rules",
		},
		{
			name: "gfx1200 without a Vulkan twin is left out, named", devices: rdna4[:1], rules: builtinQuirks(),
			wantArgs: "-H 127.0.0.1 -p 50052 -d CPU", wantLeft: "every library it has is denied for some model: ROCm (rule rocm:gfx1200:",
		},
		{
			name: "OLLAMA_LLM_LIBRARY=rocm with the built-in rules: still not ROCm on the gfx1200", devices: rdna4, rules: builtinQuirks(), pref: "rocm",
			wantArgs: "-H 127.0.0.1 -p 50052 -d CPU", wantLeft: "0000:03:00.0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pref := mustPreference(tt.pref)
			exposed, left := rpcExposure(Discovery{Devices: tt.devices, Rules: tt.rules, Preference: pref}, tt.learned)
			var got []string
			for _, e := range exposed {
				got = append(got, e.Library+"@"+e.PCIID)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("exposed (-want +got):\n%s", diff)
			}
			if l := strings.Join(left, "\n"); (tt.wantLeft == "") != (l == "") || !strings.Contains(l, tt.wantLeft) {
				t.Errorf("left out %q, want %q", l, tt.wantLeft)
			}
			args, env := rpcServerArgs(exposed, "127.0.0.1:50052")
			if a := strings.Join(args, " "); a != tt.wantArgs {
				t.Errorf("ggml-rpc-server %s, want %s", a, tt.wantArgs)
			}
			for k, v := range tt.wantEnvIn {
				if got, ok := env[k]; !ok || got != v {
					t.Errorf("env %s=%q (set %v), want %q", k, got, ok, v)
				}
			}
		})
	}
}

func TestRPCOutput(t *testing.T) {
	tests := []struct {
		name     string
		writes   []string
		want     string // the client events: + connected, - left
		wantLast string
	}{
		{
			name: "a client comes and goes", writes: []string{"Starting RPC server v3.0.0\n", "Accepted client connection\nClient connection closed\n"},
			want: "+-", wantLast: "Client connection closed",
		},
		{
			name: "lines split across writes", writes: []string{"Accepted cli", "ent connection\n", "Client connection closed", "\n"},
			want: "+-", wantLast: "Client connection closed",
		},
		{
			name: "the last line may lack its newline", writes: []string{"Accepted client connection\n", "Failed to create server socket"},
			want: "+", wantLast: "Failed to create server socket",
		},
		{
			name: "a line without end is kept to its last 4096 bytes", writes: []string{strings.Repeat("x", 5000), "Starting"},
			wantLast: strings.Repeat("x", maxRPCLine-len("Starting")) + "Starting",
		},
		{
			name: "other text that mentions a client is not one", writes: []string{"  Accepted client connection from a test\n"},
			wantLast: "Accepted client connection from a test",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var passed strings.Builder
			var events string
			o := &rpcOutput{w: &passed, client: func(connected bool) {
				events += map[bool]string{true: "+", false: "-"}[connected]
			}}
			for _, w := range tt.writes {
				if n, err := o.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			if events != tt.want {
				t.Errorf("client events %q, want %q", events, tt.want)
			}
			if got := o.String(); got != tt.wantLast {
				t.Errorf("last line %q, want %q", got, tt.wantLast)
			}
			if passed.String() != strings.Join(tt.writes, "") {
				t.Errorf("passed on %q, want every byte", passed.String())
			}
		})
	}
}

func TestRPCEndpoint(t *testing.T) {
	tests := []struct{ host, port, want, wantErr string }{
		{"127.0.0.1", "50052", "127.0.0.1:50052", ""},
		{"10.0.0.2", "050052", "10.0.0.2:50052", ""},
		{"fd00::2", "50052", "", `--host "fd00::2" is not an IPv4 address`},
		{"gpu-box", "1", "", `--host "gpu-box" is not an IPv4 address`},
		{"localhost", "1", "", `--host "localhost"`},
		{"", "50052", "", `--host "" is not an IPv4 address (e.g. 127.0.0.1, 10.0.0.2)`},
		{"10.0.0.2/24", "50052", "", `--host "10.0.0.2/24"`},
		{"10.0.0.2", "0", "", `--port: port "0" is not a number from 1 to 65535`},
		{"10.0.0.2", "http", "", `--port: port "http"`},
	}
	for _, tt := range tests {
		t.Run(tt.host+" "+tt.port, func(t *testing.T) {
			got, err := RPCEndpoint(tt.host, tt.port)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RPCEndpoint error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("RPCEndpoint = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

package discover

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// TestDecide reads like the README: one GPU seen through two libraries, a
// preference, the rules, a model; the plan says which library and which
// llama-server device the model gets.
func TestDecide(t *testing.T) {
	// An RX 9060 XT seen through ROCm and Vulkan, and an H200 seen through
	// CUDA and Vulkan, as discovery reports them in the flat layout.
	rdna4 := []ml.DeviceInfo{dev("flat", "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)}
	h200 := []ml.DeviceInfo{dev("flat", "CUDA", "0", "0000:18:00.0", "9.0", false), dev("flat", "Vulkan", "0", "0000:18:00.0", "", false)}
	userROCmGfx1200 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Action: QuirkUseOtherLibrary, Source: QuirkSourceEnv}

	type want struct {
		Libraries []string // per placement
		Device    string   // the runner's --device
		Reason    string   // of the first placement
	}
	cases := []struct {
		name    string
		devices []ml.DeviceInfo
		pref    string
		rules   []QuirkRule
		arch    string
		cpuOnly bool // the scheduler offers no GPU
		want    want
	}{
		{
			name: "RX 9060 XT, nothing set, qwen2: ROCm", devices: rdna4, rules: builtinQuirks(), arch: "qwen2",
			want: want{[]string{"ROCm"}, "ROCm0", "default order CUDA > ROCm > Vulkan"},
		},
		{
			name: "RX 9060 XT, nothing set, qwen3: the built-in rule sends it to the Vulkan twin", devices: rdna4, rules: builtinQuirks(), arch: "qwen3",
			want: want{[]string{"Vulkan"}, "Vulkan0", "rule " + builtinQuirks()[0].String() + " (builtin) denies ROCm for this model"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=none, qwen3: ROCm", devices: rdna4, arch: "qwen3",
			want: want{[]string{"ROCm"}, "ROCm0", "default order CUDA > ROCm > Vulkan"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200, qwen2: Vulkan", devices: rdna4, rules: []QuirkRule{userROCmGfx1200}, arch: "qwen2",
			want: want{[]string{"Vulkan"}, "Vulkan0", "rule " + userROCmGfx1200.String() + " (env) denies ROCm for this model"},
		},
		{
			name: "RX 9060 XT, OLLAMA_LLM_LIBRARY=vulkan: Vulkan, ROCm not requested", devices: rdna4, pref: "vulkan", rules: builtinQuirks(), arch: "qwen2",
			want: want{[]string{"Vulkan"}, "Vulkan0", "OLLAMA_LLM_LIBRARY=vulkan; the only library of this GPU it requests"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cpu: the Vulkan twin, not CUDA0", devices: h200, pref: "vulkan,cpu", arch: "qwen3",
			want: want{[]string{"Vulkan"}, "Vulkan0", "OLLAMA_LLM_LIBRARY=vulkan,cpu; the only library of this GPU it requests"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cuda: Vulkan first, CUDA the alternate", devices: h200, pref: "vulkan,cuda", arch: "qwen3",
			want: want{[]string{"Vulkan"}, "Vulkan0", "OLLAMA_LLM_LIBRARY=vulkan,cuda lists Vulkan first"},
		},
		{
			name: "H200, OLLAMA_LLM_LIBRARY=cpu: no GPU, --device none", devices: h200, pref: "cpu", arch: "qwen3", cpuOnly: true,
			want: want{nil, "none", ""},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pref, err := envconfig.ParseLLMLibrary(tc.pref)
			if err != nil {
				t.Fatal(err)
			}
			// The scheduler offers the chosen devices, as discovery left them.
			offered := choiceDevices(Decide(PlanInput{Devices: tc.devices, Preference: pref}).Choices)
			if tc.cpuOnly {
				if len(offered) != 0 {
					t.Fatalf("discovery plan places %d GPUs, want none", len(offered))
				}
			}
			p := Decide(PlanInput{Devices: tc.devices, Preference: pref, Rules: tc.rules, Model: "m", Arch: tc.arch, Offered: offered})
			got := want{Device: p.Runner.Device}
			for _, g := range p.GPUs {
				got.Libraries = append(got.Libraries, g.Library)
			}
			if len(p.Reasons) > 0 {
				got.Reason = p.Reasons[0]
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			// The same input gives the same plan.
			again := Decide(PlanInput{Devices: tc.devices, Preference: pref, Rules: tc.rules, Model: "m", Arch: tc.arch, Offered: offered})
			if diff := cmp.Diff(p.Runner, again.Runner); diff != "" {
				t.Errorf("Decide is not deterministic (-first +second):\n%s", diff)
			}
		})
	}
}

// TestDecideKeepsOfferedWithoutModelName: a model whose name and
// architecture are unknown keeps the GPUs it is offered (upstream's
// scheduler tests load such models).
func TestDecideKeepsOfferedWithoutModelName(t *testing.T) {
	gpu := dev("flat", "CUDA", "0", "0000:18:00.0", "9.0", false)
	p := Decide(PlanInput{Rules: builtinQuirks(), Offered: []ml.DeviceInfo{gpu}})
	if diff := cmp.Diff([]ml.DeviceInfo{gpu}, p.GPUs); diff != "" {
		t.Errorf("GPUs (-want +got):\n%s", diff)
	}
	if p.Runner.Device != "CUDA0" {
		t.Errorf("runner --device %q, want CUDA0", p.Runner.Device)
	}
}

package discover

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/llm"
)

// TestDecide reads like the README: one GPU seen through two libraries, a
// preference, the rules, a model; the plan says which library and which
// llama-server device the model gets.
func TestDecide(t *testing.T) {
	// An RX 9060 XT seen through ROCm and Vulkan, and an H200 seen through
	// CUDA and Vulkan, as discovery reports them in the flat layout.
	rdna4 := []ml.DeviceInfo{dev("flat", "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)}
	h200 := []ml.DeviceInfo{dev("flat", "CUDA", "0", "0000:18:00.0", "9.0", false), dev("flat", "Vulkan", "0", "0000:18:00.0", "", false)}
	userROCmGfx1200 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Action: QuirkUseOtherLibrary, Source: quirkSourceEnv}

	userVisionGfx1200 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Capabilities: []string{"vision"}, Action: QuirkUseOtherLibrary, Source: quirkSourceEnv}
	builtinEntry := builtinQuirks()[0].String()

	type want struct {
		Libraries []string // per placement
		Device    string   // the runner's --device
		Reason    string   // of the first placement
		DecidedBy string
		Overrides []string // rules the model's library option overrode
	}
	cases := []struct {
		name    string
		devices []ml.DeviceInfo
		pref    string
		rules   []QuirkRule
		model   llm.ModelLoad
		cpuOnly bool // the scheduler offers no GPU
		want    want
		wantErr string
	}{
		{
			name: "RX 9060 XT, nothing set, qwen2: ROCm", devices: rdna4, rules: builtinQuirks(), model: llm.ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, nothing set, qwen3: the built-in rule sends it to the Vulkan twin", devices: rdna4, rules: builtinQuirks(), model: llm.ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "rule " + builtinEntry + " (builtin) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=none, qwen3: ROCm", devices: rdna4, model: llm.ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200, qwen2: Vulkan", devices: rdna4, rules: []QuirkRule{userROCmGfx1200}, model: llm.ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "rule " + userROCmGfx1200.String() + " (env) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:*:vision, qwen2 with a projector: Vulkan", devices: rdna4, rules: []QuirkRule{userVisionGfx1200}, model: llm.ModelLoad{Arch: "qwen2", Vision: true},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "rule rocm:gfx1200:*:vision (env) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:*:vision, qwen2 without a projector: ROCm", devices: rdna4, rules: []QuirkRule{userVisionGfx1200}, model: llm.ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, OLLAMA_LLM_LIBRARY=vulkan: Vulkan, ROCm not requested", devices: rdna4, pref: "vulkan", rules: builtinQuirks(), model: llm.ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "OLLAMA_LLM_LIBRARY=vulkan; the only library of this GPU it requests", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "RX 9060 XT, PARAMETER library vulkan, qwen2: Vulkan, by the model's parameter", devices: rdna4, rules: builtinQuirks(),
			model: llm.ModelLoad{Arch: "qwen2", Library: "vulkan", LibrarySource: "model parameter"},
			want:  want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "model parameter library=vulkan", DecidedBy: "model parameter"},
		},
		{
			name: "RX 9060 XT, request option library rocm, qwen3: ROCm over the built-in rule", devices: rdna4, rules: builtinQuirks(),
			model: llm.ModelLoad{Arch: "qwen3", Library: "rocm", LibrarySource: "request option"},
			want:  want{Libraries: []string{"ROCm"}, Device: "ROCm0", Reason: "request option library=rocm", DecidedBy: "request option", Overrides: []string{builtinEntry}},
		},
		{
			name: "RX 9060 XT, option library cpu,vulkan: cpu comes first, no GPU", devices: rdna4, rules: builtinQuirks(),
			model: llm.ModelLoad{Arch: "qwen2", Library: "cpu,vulkan", LibrarySource: "model parameter"},
			want:  want{Device: "none", DecidedBy: "model parameter"},
		},
		{
			name: "RX 9060 XT, option library cuda,vulkan: the first listed library the GPU has", devices: rdna4,
			model: llm.ModelLoad{Arch: "qwen2", Library: "cuda,vulkan", LibrarySource: "request option"},
			want:  want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "request option library=cuda,vulkan", DecidedBy: "request option"},
		},
		{
			name: "RX 9060 XT, OLLAMA_LLM_LIBRARY=rocm keeps Vulkan out, option library vulkan: an error, not a CPU run", devices: rdna4, pref: "rocm",
			model:   llm.ModelLoad{Name: "qwen3:4b", Arch: "qwen3", Library: "vulkan", LibrarySource: "model parameter"},
			wantErr: `library option "vulkan" of model qwen3:4b: no device can serve it (found: ROCm); add cpu to the list to allow a CPU run`,
		},
		{
			name: "no GPU, option library vulkan: an error", devices: nil, cpuOnly: true,
			model:   llm.ModelLoad{Name: "m", Arch: "qwen3", Library: "vulkan", LibrarySource: "request option"},
			wantErr: `library option "vulkan" of model m: no device can serve it (found: no GPU)`,
		},
		{
			name: "option library vulkn: an error naming it", devices: rdna4,
			model:   llm.ModelLoad{Arch: "qwen3", Library: "vulkn", LibrarySource: "request option"},
			wantErr: `library option "vulkn": "vulkn" is not a library name`,
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cpu: the Vulkan twin, not CUDA0", devices: h200, pref: "vulkan,cpu", model: llm.ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "OLLAMA_LLM_LIBRARY=vulkan,cpu; the only library of this GPU it requests", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cuda: Vulkan first, CUDA the alternate", devices: h200, pref: "vulkan,cuda", model: llm.ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Reason: "OLLAMA_LLM_LIBRARY=vulkan,cuda lists Vulkan first", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cuda, option library cuda: CUDA0", devices: h200, pref: "vulkan,cuda",
			model: llm.ModelLoad{Arch: "qwen3", Library: "cuda", LibrarySource: "model parameter"},
			want:  want{Libraries: []string{"CUDA"}, Device: "CUDA0", Reason: "model parameter library=cuda", DecidedBy: "model parameter"},
		},
		{
			name: "H200, OLLAMA_LLM_LIBRARY=cpu: no GPU, --device none", devices: h200, pref: "cpu", model: llm.ModelLoad{Arch: "qwen3"}, cpuOnly: true,
			want: want{Device: "none", DecidedBy: "no GPU offered"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pref, err := envconfig.ParseLLMLibrary(tc.pref)
			if err != nil {
				t.Fatal(err)
			}
			// The scheduler offers the chosen devices, as discovery left them.
			discovery, err := Decide(PlanInput{Devices: tc.devices, Preference: pref})
			if err != nil {
				t.Fatal(err)
			}
			offered := choiceDevices(discovery.Choices)
			if tc.cpuOnly {
				if len(offered) != 0 {
					t.Fatalf("discovery plan places %d GPUs, want none", len(offered))
				}
			}
			in := PlanInput{Devices: tc.devices, Preference: pref, Rules: tc.rules, Model: tc.model, Offered: offered}
			p, err := Decide(in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, envconfig.ErrLibraryOption) {
					t.Fatalf("Decide error = %v, want ErrLibraryOption containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := want{Device: p.Runner.Device, DecidedBy: p.DecidedBy}
			for _, g := range p.GPUs {
				got.Libraries = append(got.Libraries, g.Library)
			}
			if len(p.Reasons) > 0 {
				got.Reason = p.Reasons[0]
			}
			for _, o := range p.Overrides {
				got.Overrides = append(got.Overrides, o.Denied.String())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			// The same input gives the same plan.
			again, _ := Decide(in)
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
	p, err := Decide(PlanInput{Rules: builtinQuirks(), Offered: []ml.DeviceInfo{gpu}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ml.DeviceInfo{gpu}, p.GPUs); diff != "" {
		t.Errorf("GPUs (-want +got):\n%s", diff)
	}
	if p.Runner.Device != "CUDA0" {
		t.Errorf("runner --device %q, want CUDA0", p.Runner.Device)
	}
}

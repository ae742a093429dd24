package discover

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// decideCase is one row of Decide's table: what discovery found, the
// configuration, the model, the GPUs the scheduler places it on, and the
// plan expected. TestDecide checks the plan; TestLaunchCarriesOutThePlan
// (launch_plan_test.go, in the assembled tree) starts llama-server through
// upstream's launch path for each row and checks it gets exactly the plan.
type decideCase struct {
	name    string
	devices []ml.DeviceInfo
	pref    string
	rules   []QuirkRule
	model   ModelLoad
	cpuOnly bool // the scheduler offers no GPU
	// placed picks the GPUs the scheduler places the model on, by library
	// and PCI id ("ROCm@0000:04:00.0"); nil: every GPU of the plan.
	placed []string
	// remotes are what the probe of OLLAMA_RPC_SERVERS found; need is the
	// model's predicted memory.
	remotes []Remote
	need    uint64
	want    decideWant
	wantErr string
}

type decideWant struct {
	Libraries []string // per GPU of the plan
	Device    string   // the runner's --device
	Env       map[string]string
	Reason    string // of the first GPU
	DecidedBy string
	Overrides []string // rules the model's library option overrode
	RPC       string   // the runner's --rpc
}

// hidden is the runner environment that hides the libraries named.
var hidden = map[string]map[string]string{
	"CUDA":   {"CUDA_VISIBLE_DEVICES": "-1"},
	"ROCm":   {"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"},
	"Vulkan": {"GGML_VK_VISIBLE_DEVICES": ""},
}

// runnerEnv merges visibility maps for a table row.
func runnerEnv(parts ...map[string]string) map[string]string {
	env := map[string]string{}
	for _, p := range parts {
		for k, v := range p {
			env[k] = v
		}
	}
	return env
}

// decideCases reads like the README: one GPU seen through two libraries, a
// preference, the rules, a model; and two GPUs with different rules.
func decideCases() []decideCase {
	// An RX 9060 XT seen through ROCm and Vulkan, and an H200 seen through
	// CUDA and Vulkan, as discovery reports them in the flat layout.
	rdna4 := []ml.DeviceInfo{dev("flat", "ROCm", "0", "0000:03:00.0", "gfx1200", false), dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)}
	h200 := []ml.DeviceInfo{dev("flat", "CUDA", "0", "0000:18:00.0", "9.0", false), dev("flat", "Vulkan", "0", "0000:18:00.0", "", false)}
	// A gfx1200 and a gfx1100 (RX 7900 XTX), each with its Vulkan twin.
	// ROCm numbers its devices ROCm0, ROCm1 and filters them by unique id.
	named := func(d ml.DeviceInfo, name string) ml.DeviceInfo { d.Name = name; return d }
	two := []ml.DeviceInfo{
		named(dev("flat", "ROCm", "GPU-1", "0000:03:00.0", "gfx1200", false), "ROCm0"), dev("flat", "Vulkan", "0", "0000:03:00.0", "", false),
		named(dev("flat", "ROCm", "GPU-2", "0000:04:00.0", "gfx1100", false), "ROCm1"), dev("flat", "Vulkan", "1", "0000:04:00.0", "", false),
	}
	userROCmGfx1200 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Action: QuirkUseOtherLibrary, Source: quirkSourceEnv}
	userVisionGfx1200 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Capabilities: []string{"vision"}, Action: QuirkUseOtherLibrary, Source: quirkSourceEnv}
	queues1 := QuirkRule{Library: "ROCm", ComputePattern: "gfx1200", Action: quirkQueues1, Source: quirkSourceEnv}
	builtinEntry := builtinQuirks()[0].String()

	rocm0 := runnerEnv(map[string]string{"ROCR_VISIBLE_DEVICES": "0"}, hidden["Vulkan"])
	vulkan0 := runnerEnv(map[string]string{"GGML_VK_VISIBLE_DEVICES": "0"}, hidden["CUDA"], hidden["ROCm"])
	cpu := runnerEnv(hidden["CUDA"], hidden["ROCm"], hidden["Vulkan"])
	type want = decideWant
	return append([]decideCase{
		{
			name: "RX 9060 XT, nothing set, qwen2: ROCm", devices: rdna4, rules: builtinQuirks(), model: ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Env: rocm0, Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, nothing set, qwen3: the built-in rule sends it to the Vulkan twin", devices: rdna4, rules: builtinQuirks(), model: ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "rule " + builtinEntry + " (builtin) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=none, qwen3: ROCm", devices: rdna4, model: ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Env: rocm0, Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200, qwen2: Vulkan", devices: rdna4, rules: []QuirkRule{userROCmGfx1200}, model: ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "rule " + userROCmGfx1200.String() + " (env) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:*:vision, qwen2 with a projector: Vulkan", devices: rdna4, rules: []QuirkRule{userVisionGfx1200}, model: ModelLoad{Arch: "qwen2", Vision: true},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "rule rocm:gfx1200:*:vision (env) denies ROCm for this model", DecidedBy: "rule"},
		},
		{
			name: "RX 9060 XT, OLLAMA_BACKEND_DENYLIST=rocm:gfx1200:*:vision, qwen2 without a projector: ROCm", devices: rdna4, rules: []QuirkRule{userVisionGfx1200}, model: ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"ROCm"}, Device: "ROCm0", Env: rocm0, Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order"},
		},
		{
			name: "RX 9060 XT, OLLAMA_LLM_LIBRARY=vulkan: Vulkan, ROCm not requested", devices: rdna4, pref: "vulkan", rules: builtinQuirks(), model: ModelLoad{Arch: "qwen2"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "OLLAMA_LLM_LIBRARY=vulkan; the only library of this GPU it requests", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "RX 9060 XT, PARAMETER library vulkan, qwen2: Vulkan, by the model's parameter", devices: rdna4, rules: builtinQuirks(),
			model: ModelLoad{Arch: "qwen2", Library: mustLibrary("vulkan"), LibrarySource: "model parameter"},
			want:  want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "model parameter library=vulkan", DecidedBy: "model parameter"},
		},
		{
			name: "RX 9060 XT, request option library rocm, qwen3: ROCm over the built-in rule", devices: rdna4, rules: builtinQuirks(),
			model: ModelLoad{Arch: "qwen3", Library: mustLibrary("rocm"), LibrarySource: "request option"},
			want:  want{Libraries: []string{"ROCm"}, Device: "ROCm0", Env: rocm0, Reason: "request option library=rocm", DecidedBy: "request option", Overrides: []string{builtinEntry}},
		},
		{
			name: "RX 9060 XT, option library cpu,vulkan: cpu comes first, no GPU", devices: rdna4, rules: builtinQuirks(),
			model: ModelLoad{Arch: "qwen2", Library: mustLibrary("cpu,vulkan"), LibrarySource: "model parameter"},
			want:  want{Device: "none", Env: cpu, DecidedBy: "model parameter"},
		},
		{
			name: "RX 9060 XT, option library cuda,vulkan: the first listed library the GPU has", devices: rdna4,
			model: ModelLoad{Arch: "qwen2", Library: mustLibrary("cuda,vulkan"), LibrarySource: "request option"},
			want:  want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "request option library=cuda,vulkan", DecidedBy: "request option"},
		},
		{
			name: "RX 9060 XT, OLLAMA_LLM_LIBRARY=rocm keeps Vulkan out, option library vulkan: an error, not a CPU run", devices: rdna4, pref: "rocm",
			model:   ModelLoad{Name: "qwen3:4b", Arch: "qwen3", Library: mustLibrary("vulkan"), LibrarySource: "model parameter"},
			wantErr: `library option "vulkan" of model qwen3:4b: no device can serve it (found: ROCm); add cpu to the list to allow a CPU run`,
		},
		{
			name: "no GPU, option library vulkan: an error", devices: nil, cpuOnly: true,
			model:   ModelLoad{Name: "m", Arch: "qwen3", Library: mustLibrary("vulkan"), LibrarySource: "request option"},
			wantErr: `library option "vulkan" of model m: no device can serve it (found: no GPU)`,
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cpu: the Vulkan twin, not CUDA0", devices: h200, pref: "vulkan,cpu", model: ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "OLLAMA_LLM_LIBRARY=vulkan,cpu; the only library of this GPU it requests", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cuda: Vulkan first, CUDA the alternate", devices: h200, pref: "vulkan,cuda", model: ModelLoad{Arch: "qwen3"},
			want: want{Libraries: []string{"Vulkan"}, Device: "Vulkan0", Env: vulkan0, Reason: "OLLAMA_LLM_LIBRARY=vulkan,cuda lists Vulkan first", DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "H200 flat, OLLAMA_LLM_LIBRARY=vulkan,cuda, option library cuda: CUDA0", devices: h200, pref: "vulkan,cuda",
			model: ModelLoad{Arch: "qwen3", Library: mustLibrary("cuda"), LibrarySource: "model parameter"},
			want:  want{Libraries: []string{"CUDA"}, Device: "CUDA0", Reason: "model parameter library=cuda", DecidedBy: "model parameter"},
		},
		{
			name: "H200, OLLAMA_LLM_LIBRARY=cpu: no GPU, --device none", devices: h200, pref: "cpu", model: ModelLoad{Arch: "qwen3"}, cpuOnly: true,
			want: want{Device: "none", Env: cpu, DecidedBy: "OLLAMA_LLM_LIBRARY"},
		},
		{
			name: "no GPU, nothing set: the CPU, no input to name", cpuOnly: true, model: ModelLoad{Arch: "qwen3"},
			want: want{Device: "none", Env: cpu},
		},
		{
			name: "gfx1200 and gfx1100, qwen3: the rule moves the gfx1200 to Vulkan, the gfx1100 keeps ROCm, split over both", devices: two, rules: builtinQuirks(), model: ModelLoad{Arch: "qwen3"},
			want: want{
				Libraries: []string{"Vulkan", "ROCm"}, Device: "Vulkan0,ROCm0", Env: map[string]string{"GGML_VK_VISIBLE_DEVICES": "0", "ROCR_VISIBLE_DEVICES": "GPU-2"},
				Reason: "rule " + builtinEntry + " (builtin) denies ROCm for this model", DecidedBy: "rule",
			},
		},
		{
			name: "gfx1200 and gfx1100, qwen3, placed on the gfx1100 alone: ROCm0 is the gfx1100", devices: two, rules: builtinQuirks(), model: ModelLoad{Arch: "qwen3"},
			placed: []string{"ROCm@0000:04:00.0"},
			want: want{
				Libraries: []string{"Vulkan", "ROCm"}, Device: "ROCm0", Env: runnerEnv(map[string]string{"ROCR_VISIBLE_DEVICES": "GPU-2"}, hidden["Vulkan"]),
				Reason: "rule " + builtinEntry + " (builtin) denies ROCm for this model", DecidedBy: "rule",
			},
		},
		{
			name: "gfx1200 and gfx1100, qwen2: ROCm on both", devices: two, rules: builtinQuirks(), model: ModelLoad{Arch: "qwen2"},
			want: want{
				Libraries: []string{"ROCm", "ROCm"}, Device: "ROCm0,ROCm1", Env: runnerEnv(map[string]string{"ROCR_VISIBLE_DEVICES": "GPU-1,GPU-2"}, hidden["Vulkan"]),
				Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order",
			},
		},
		{
			name: "gfx1200 and gfx1100, queues1 on the gfx1200: one hardware queue for its runner", devices: two, rules: []QuirkRule{queues1}, model: ModelLoad{Arch: "qwen2"},
			want: want{
				Libraries: []string{"ROCm", "ROCm"}, Device: "ROCm0,ROCm1", Env: runnerEnv(map[string]string{"ROCR_VISIBLE_DEVICES": "GPU-1,GPU-2", "GPU_MAX_HW_QUEUES": "1"}, hidden["Vulkan"]),
				Reason: "default order CUDA > ROCm > Vulkan", DecidedBy: "default order",
			},
		},
	}, rpcDecideCases()...)
}

// TestDecide checks each row's plan and the runner it gives.
func TestDecide(t *testing.T) {
	for _, tc := range decideCases() {
		t.Run(tc.name, func(t *testing.T) {
			in, placed := tc.input(t)
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
			r := p.Runner(placed(p), tc.need)
			got := decideWant{Device: r.Device, Env: r.Env, DecidedBy: p.DecidedBy, RPC: strings.Join(r.RPC, ",")}
			for _, g := range p.GPUs {
				got.Libraries = append(got.Libraries, g.Library)
			}
			if len(p.Reasons) > 0 {
				got.Reason = p.Reasons[0]
			}
			for _, o := range p.Overrides {
				got.Overrides = append(got.Overrides, o.Denied.String())
			}
			want := tc.want
			if want.Env == nil {
				got.Env = nil // rows written before the environment was in the table
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
			// The same input gives the same plan.
			again, _ := Decide(in)
			if diff := cmp.Diff(p, again, cmp.AllowUnexported(Plan{}, quirkDecision{}, libraryChoice{}, excludedLibrary{})); diff != "" {
				t.Errorf("Decide is not deterministic (-first +second):\n%s", diff)
			}
		})
	}
}

// input is the row's PlanInput, the scheduler offering what discovery
// chose, and the row's placement as a function of the plan.
func (tc decideCase) input(t *testing.T) (PlanInput, func(Plan) []ml.DeviceInfo) {
	t.Helper()
	pref, err := envconfig.ParseLLMLibrary(tc.pref)
	if err != nil {
		t.Fatal(err)
	}
	found := Discovery{Devices: tc.devices, Preference: pref, Rules: tc.rules, Remote: tc.remotes}
	chosen, _ := Decide(PlanInput{Discovery: found})
	offered := choiceDevices(chosen.Choices)
	if tc.cpuOnly && len(offered) != 0 {
		t.Fatalf("discovery plan places %d GPUs, want none", len(offered))
	}
	placed := func(p Plan) []ml.DeviceInfo {
		if tc.placed == nil {
			return p.GPUs
		}
		var out []ml.DeviceInfo
		for _, g := range p.GPUs {
			if slices.Contains(tc.placed, g.Library+"@"+g.PCIID) {
				out = append(out, g)
			}
		}
		return out
	}
	return PlanInput{Discovery: found, Model: tc.model, Offered: offered}, placed
}

// TestDecideKeepsOfferedWithoutModelName: a model whose name and
// architecture are unknown keeps the GPUs it is offered (upstream's
// scheduler tests load such models).
func TestDecideKeepsOfferedWithoutModelName(t *testing.T) {
	gpu := dev("flat", "CUDA", "0", "0000:18:00.0", "9.0", false)
	p, err := Decide(PlanInput{Discovery: Discovery{Rules: builtinQuirks()}, Offered: []ml.DeviceInfo{gpu}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ml.DeviceInfo{gpu}, p.GPUs); diff != "" {
		t.Errorf("GPUs (-want +got):\n%s", diff)
	}
	if r := p.Runner(p.GPUs, 0); r.Device != "CUDA0" {
		t.Errorf("runner --device %q, want CUDA0", r.Device)
	}
}

package discover

import (
	"io"
	"log/slog"
	"testing"

	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// upstreamLikeHandler mirrors what upstream's logutil handler assumes: an
// attribute keyed "source" is the *slog.Source of the call site. An overlay
// log line that uses "source" for anything else panics the server there.
func upstreamLikeHandler(t *testing.T) slog.Handler {
	return slog.NewTextHandler(io.Discard, &slog.HandlerOptions{
		AddSource: true,
		ReplaceAttr: func(_ []string, attr slog.Attr) slog.Attr {
			if attr.Key == slog.SourceKey {
				if _, ok := attr.Value.Any().(*slog.Source); !ok {
					t.Errorf("attribute %q is %T, not *slog.Source: upstream's logutil would panic", attr.Key, attr.Value.Any())
				}
			}
			return attr
		},
	})
}

func TestOverlayLogLinesSuitUpstreamHandler(t *testing.T) {
	prev := slog.Default()
	slog.SetDefault(slog.New(upstreamLikeHandler(t)))
	t.Cleanup(func() { slog.SetDefault(prev) })
	t.Setenv("OLLAMA_BACKEND_DENYLIST", "")

	rdna4 := dev("flat", "ROCm", "GPU-1", "0000:03:00.0", "gfx1200", false)
	vk := dev("flat", "Vulkan", "0", "0000:03:00.0", "", false)
	choice := libraryChoice{Chosen: rdna4, Alternates: []ml.DeviceInfo{vk}, Reasons: []string{"default order"}}
	qwen3 := ModelLoad{Name: "tiny", Arch: "qwen3", Vision: true, Library: mustLibrary("vulkan"), LibrarySource: "model parameter"}
	_, decisions := applyQuirks([]ml.DeviceInfo{rdna4}, qwen3, configuredQuirkRules(), []libraryChoice{choice})
	logQuirkDecisions(qwen3, decisions)
	_, decisions = applyQuirks([]ml.DeviceInfo{rdna4}, qwen3, configuredQuirkRules(), nil)
	logQuirkDecisions(qwen3, decisions) // the WARN: no alternate
	pref, _ := envconfig.ParseLLMLibrary("cuda")
	p, _ := Decide(PlanInput{Discovery: Discovery{Devices: []ml.DeviceInfo{rdna4, vk}, Preference: pref}})
	logLibraryChoices(p, pref)
	for _, r := range builtinQuirks() {
		slog.Info("rule", "rule", r)
	}

	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"sys/class/kfd/kfd/topology/nodes/1/properties": "simd_count 64\ngfx_target_version 120000\nlocation_id 768\n",
	})
	t.Setenv("OLLAMA_SYSFS_ROOT", root)
	t.Setenv("OLLAMA_BACKEND_DENYLIST", "rocm:gfx1200")
	if found := StartDiscovery(); !found.ROCm.allDenied() {
		t.Error("the fake gfx1200 should be denied")
	}
}

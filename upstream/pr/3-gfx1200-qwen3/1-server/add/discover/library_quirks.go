package discover

import (
	"log/slog"
	"slices"

	"github.com/ollama/ollama/ml"
)

// libraryQuirks lists models that must not run on a library of some GPUs.
// A GPU that matches loads those models on its alternate library use (the
// same GPU seen through another backend, see Alternates) when discovery
// found one.
var libraryQuirks = []struct {
	library, compute string
	archs            []string
	use              string
	reason           string
}{
	{
		library: "ROCm", compute: "gfx1200",
		archs:  []string{"qwen3", "qwen3moe", "qwen35", "qwen35moe", "qwen3next", "qwen3vl", "qwen3vlmoe"},
		use:    "Vulkan",
		reason: "Qwen3 models leave RDNA4 gfx1200 at 100% busy after unload under HIP",
	},
}

// GPUsForModel returns gpus for loading a model of architecture arch, with
// each GPU that libraryQuirks sends to another library replaced by that
// alternate.
func GPUsForModel(gpus []ml.DeviceInfo, arch string) []ml.DeviceInfo {
	out := slices.Clone(gpus)
	for i, gpu := range out {
		for _, q := range libraryQuirks {
			if gpu.Library != q.library || gpu.Compute() != q.compute || !slices.Contains(q.archs, arch) {
				continue
			}
			alts := Alternates(gpu)
			j := slices.IndexFunc(alts, func(d ml.DeviceInfo) bool { return d.Library == q.use })
			if j < 0 {
				slog.Warn("no alternate library for model on GPU", "reason", q.reason, "want", q.use, "id", gpu.ID, "library", gpu.Library, "compute", q.compute, "architecture", arch)
				continue
			}
			alt := alts[j]
			// The same memory, as the last refresh saw it
			alt.TotalMemory, alt.FreeMemory = gpu.TotalMemory, gpu.FreeMemory
			slog.Info("using alternate library for model on GPU", "reason", q.reason, "id", gpu.ID, "library", alt.Library, "compute", q.compute, "architecture", arch)
			out[i] = alt
		}
	}
	return out
}

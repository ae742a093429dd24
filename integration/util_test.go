//go:build integration

package integration

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseLogLine(t *testing.T) {
	line := `time=2026-01-01T00:00:00.000Z level=INFO source=types.go:42 msg="inference compute" id=GPU-fa4e000000000001 filter_id="" library=ROCm compute=gfx1200 name=ROCm0 description="AMD \"fake\" GPU" libdirs=ollama driver=6.4 pci_id=0000:03:00.0 type=discrete total="16.0 GiB" available="16.0 GiB"`
	rec := ParseLogLine(line)
	want := map[string]string{
		"msg": "inference compute", "library": "ROCm", "compute": "gfx1200", "filter_id": "",
		"description": `AMD "fake" GPU`, "total": "16.0 GiB", "available": "16.0 GiB", "pci_id": "0000:03:00.0",
	}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %q, want %q", k, rec[k], v)
		}
	}
	if ParseLogLine("ggml_cuda_init: found 1 ROCm devices") != nil {
		t.Error("non-slog line parsed")
	}
}

func TestPSProcessors(t *testing.T) {
	// As `ollama ps` printed it in CI: the cell wraps after "Vulkan,".
	out := "" +
		"NAME                 ID              SIZE      PROCESSOR                         CONTEXT    UNTIL              \n" +
		"tiny-qwen3:latest    12bcb53caecc    4.0 MB    100% GPU (Vulkan,                 2048       4 minutes from now    \n" +
		"                                               OLLAMA_LLM_LIBRARY)                                                \n" +
		"qwen2.5:latest       0123456789ab    4.1 MB    100% GPU (ROCm)                   2048       4 minutes from now    \n"
	want := map[string]string{
		"tiny-qwen3:latest": "100% GPU (Vulkan, OLLAMA_LLM_LIBRARY)",
		"qwen2.5:latest":    "100% GPU (ROCm)",
	}
	if diff := cmp.Diff(want, psProcessors(t, out)); diff != "" {
		t.Errorf("psProcessors (-want +got):\n%s", diff)
	}
}

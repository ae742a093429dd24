package listing

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/costa-os/ollama-backend-select/discover"
)

// TestWrite: `ollama backends` prints what GET /api/backends answers, the
// table first, then the preference, stuck GPUs and discovery failures.
func TestWrite(t *testing.T) {
	l := discover.BackendListing{
		LLMLibrary:   "vulkan,rocm",
		DefaultOrder: "CUDA > ROCm > Vulkan",
		Backends: []discover.BackendStatus{
			{Library: "Vulkan", Description: "AMD Radeon RX 9060 XT", PCIID: "0000:03:00.0", Compute: "0.0", TotalMemory: 16 << 30, Status: "chosen"},
			{
				Library: "ROCm", Description: "AMD Radeon RX 9060 XT", PCIID: "0000:03:00.0", Compute: "gfx1200", TotalMemory: 16 << 30, Status: "alternate",
				Reason: "OLLAMA_LLM_LIBRARY=vulkan,rocm lists Vulkan first", Rules: []string{"rocm:gfx1200:qwen3,qwen3moe=use-other-library (builtin)"},
			},
			{Library: "CPU", Description: "CPU", Status: "fallback", Reason: "layers the GPUs do not hold"},
		},
		StuckGPUs: []discover.StuckGPU{{PCIID: "0000:03:00.0", Library: "ROCm", Model: "qwen3:8b", Vision: true, MESFirmware: "0x00000080", BusyMin: 99, BusyMax: 100, Remedy: "reboot"}},
		DiscoveryFailures: []discover.DiscoveryFailure{{
			Failure: "hung", LibDirs: "/usr/lib/ollama", Exit: "no answer in 30s, stopped",
			Backends: []string{"libggml-hip.so"}, LastOutput: "ggml_abort", Remedy: "move the backend library",
		}},
	}
	srv := httptest.NewServer(fixed(l))
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	var b bytes.Buffer
	if err := Write(context.Background(), &b, base); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	want := []string{
		"DEVICE                 PCI ID        COMPUTE  LIBRARY  MEMORY    STATUS     REASON                                             RULES",
		"AMD Radeon RX 9060 XT  0000:03:00.0  0.0      Vulkan   16.0 GiB  chosen     -                                                  -",
		"AMD Radeon RX 9060 XT  0000:03:00.0  gfx1200  ROCm     16.0 GiB  alternate  OLLAMA_LLM_LIBRARY=vulkan,rocm lists Vulkan first  rocm:gfx1200:qwen3,qwen3moe=use-other-library (builtin)",
		"CPU                    -             -        CPU      -         fallback   layers the GPUs do not hold                        -",
		"",
		"OLLAMA_LLM_LIBRARY: vulkan,rocm; default order: CUDA > ROCm > Vulkan",
		"GPU 0000:03:00.0 (MES firmware 0x00000080) stayed 99%-100% busy after qwen3:8b with a vision projector (ROCm) unloaded; reboot",
		"llama-server hung during GPU discovery in /usr/lib/ollama (no answer in 30s, stopped); GPU backends there: libggml-hip.so; last output: ggml_abort; move the backend library",
		"",
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i := range want {
		if strings.TrimRight(lines[i], " ") != want[i] {
			t.Errorf("line %d:\n got %q\nwant %q", i, lines[i], want[i])
		}
	}
}

// TestWriteServerError: a server without the endpoint (an upstream Ollama)
// is an error naming the address and the status.
func TestWriteServerError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	base, _ := url.Parse(srv.URL)
	err := Write(context.Background(), &bytes.Buffer{}, base)
	if err == nil || !strings.Contains(err.Error(), "/api/backends: 404") {
		t.Errorf("Write against a server without /api/backends: %v", err)
	}
}

// fixed serves l as GET /api/backends does.
func fixed(l discover.BackendListing) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(l)
	})
}

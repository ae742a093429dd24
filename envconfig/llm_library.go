package envconfig

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// ParseLLMLibrary parses OLLAMA_LLM_LIBRARY (backends.ParsePreference), its
// error naming the variable. One mlx_<variant> value alone (Ollama's MLX
// runner reads it) is accepted as no GGML preference: see MLXVariant.
func ParseLLMLibrary(value string) (backends.Preference, error) {
	p, err := backends.ParsePreference(value)
	if err != nil {
		return backends.Preference{}, fmt.Errorf("OLLAMA_LLM_LIBRARY=%q: %w", strings.TrimSpace(value), err)
	}
	return p, nil
}

// LLMLibraryPreference reads OLLAMA_LLM_LIBRARY from the environment. A value
// that does not parse counts as not set here; `ollama serve` refuses to start
// with such a value (CheckLLMLibrary), so this only matters to other callers.
func LLMLibraryPreference() backends.Preference {
	p, _ := ParseLLMLibrary(llmLibraryValue())
	return p
}

// CheckLLMLibrary validates OLLAMA_LLM_LIBRARY for the server's start.
func CheckLLMLibrary() error {
	p, err := ParseLLMLibrary(llmLibraryValue())
	if err == nil && strings.Contains(strings.ToLower(llmLibraryValue()), "cpu_") {
		slog.Info("OLLAMA_LLM_LIBRARY names a CPU variant: it is read as cpu, and ggml picks the CPU variant itself", "OLLAMA_LLM_LIBRARY", llmLibraryValue())
	}
	if err == nil && p.MLXVariant() != "" {
		// Said once at start: the value is not a GGML library name.
		slog.Info("OLLAMA_LLM_LIBRARY names an MLX runner variant: it picks the MLX runner's library where this Ollama has one; GGML libraries are chosen in the default order", "variant", p.MLXVariant())
	}
	return err
}

// llmLibraryValue reads the variable the way upstream reads every
// OLLAMA_* value: surrounding spaces and quotes do not count.
func llmLibraryValue() string {
	return strings.Trim(strings.TrimSpace(os.Getenv("OLLAMA_LLM_LIBRARY")), "\"'")
}

// CheckBackendSelection validates every variable of backend selection
// (OLLAMA_LLM_LIBRARY, OLLAMA_BACKEND_DENYLIST, OLLAMA_BACKEND_QUIRKS_RESET)
// for the server's start; the first bad one is returned.
func CheckBackendSelection() error {
	if err := CheckLLMLibrary(); err != nil {
		return err
	}
	if _, err := BackendDenylistFromEnv(); err != nil {
		return err
	}
	_, err := ParseBackendQuirksReset(os.Getenv(BackendQuirksResetEnv))
	return err
}

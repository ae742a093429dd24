package envconfig

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// ParseLLMLibrary parses OLLAMA_LLM_LIBRARY, its error naming the variable.
func ParseLLMLibrary(value string) (backends.Preference, error) {
	p, err := backends.ParsePreference(value)
	if err != nil {
		return backends.Preference{}, fmt.Errorf("OLLAMA_LLM_LIBRARY=%q: %w", strings.TrimSpace(value), err)
	}
	return p, nil
}

// LLMLibraryPreference reads OLLAMA_LLM_LIBRARY; a bad value counts as not
// set here, since the server refuses to start with one (CheckLLMLibrary).
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
		slog.Info("OLLAMA_LLM_LIBRARY names an MLX runner variant: it picks the MLX runner's library where this Ollama has one; GGML libraries are chosen in the default order", "variant", p.MLXVariant())
	}
	return err
}

// llmLibraryValue ignores surrounding spaces and quotes, as upstream does.
func llmLibraryValue() string {
	return strings.Trim(strings.TrimSpace(os.Getenv("OLLAMA_LLM_LIBRARY")), "\"'")
}

// CheckBackendSelection validates every backend selection variable.
func CheckBackendSelection() error {
	if err := CheckLLMLibrary(); err != nil {
		return err
	}
	if _, err := BackendDenylistFromEnv(); err != nil {
		return err
	}
	if _, err := ParseBackendQuirksReset(os.Getenv(BackendQuirksResetEnv)); err != nil {
		return err
	}
	_, err := ParseRPCServers(os.Getenv(RPCServersEnv))
	return err
}

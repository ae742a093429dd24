package envconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// LibraryOptionName is the model option that names one model's backend library.
const LibraryOptionName = "library"

// ErrLibraryOption marks a bad `library` option, or one no device can serve.
var ErrLibraryOption = errors.New("library option")

// ParseModelLibrary parses a model's `library` option, which takes what
// OLLAMA_LLM_LIBRARY takes except an MLX runner variant.
func ParseModelLibrary(value string) (backends.Preference, error) {
	p, err := backends.ParsePreference(value)
	if err != nil {
		return backends.Preference{}, fmt.Errorf("%w %q: %w", ErrLibraryOption, value, err)
	}
	if p.MLXVariant() != "" {
		return backends.Preference{}, fmt.Errorf("%w %q: an MLX runner variant is not a per-model library; accepted: one of %s, or a comma-separated list of them",
			ErrLibraryOption, value, strings.Join(backends.AcceptedNames(), ", "))
	}
	return p, nil
}

// CheckLibraryOption validates the `library` entry of a request's parameters
// or options: absent, null or a string that ParseModelLibrary accepts.
func CheckLibraryOption(v any) error {
	switch v := v.(type) {
	case nil:
		return nil
	case string:
		_, err := ParseModelLibrary(v)
		return err
	case []string:
		// Modelfile parameters arrive as lists; one value is accepted.
		if len(v) != 1 {
			return fmt.Errorf("%w: %d values %q, accepted: one value", ErrLibraryOption, len(v), v)
		}
		return CheckLibraryOption(v[0])
	}
	return fmt.Errorf("%w %s: %s, accepted: a string such as \"vulkan\" or \"vulkan,cpu\"", ErrLibraryOption, Shorten(asJSON(v)), jsonKind(v))
}

func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func jsonKind(v any) string {
	switch v.(type) {
	case float64, json.Number:
		return "a number"
	case bool:
		return "true or false"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "not a string"
}

package envconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// LibraryOptionName is the model option that names the backend library for
// one model: `PARAMETER library vulkan` in a Modelfile, or
// `"options": {"library": "vulkan"}` in a request.
const LibraryOptionName = "library"

// ErrLibraryOption marks a bad `library` option, and a `library` that no
// device can serve: the request (or `ollama create`) is refused with it.
var ErrLibraryOption = errors.New("library option")

// ParseModelLibrary parses a model's `library` option. It takes what
// OLLAMA_LLM_LIBRARY takes (one library name or a comma-separated list,
// most preferred first, any case) except an MLX runner variant; "" means not
// set. A bad value is an error naming it and the accepted names, wrapping
// ErrLibraryOption.
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

// CheckLibraryOption validates the `library` entry of a parameters or
// options map as it arrives in a create or generate request: absent or null
// is fine, a string must parse with ParseModelLibrary, anything else is an
// error naming its type.
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

// asJSON writes v back as the request had it.
func asJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// jsonKind names what a decoded JSON value is, in the user's terms.
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

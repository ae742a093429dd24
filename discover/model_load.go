package discover

import (
	"cmp"

	"github.com/costa-os/ollama-backend-select/envconfig"
	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// ModelLoad is what the backend decision knows of a model when it loads.
type ModelLoad struct {
	// Name is the model's short name, for logs.
	Name string
	// Arch is the model's GGUF general.architecture.
	Arch string
	// Vision is set when the model loads a vision projector (mmproj).
	Vision bool
	// Library is the model's `library` option; LibrarySource says who set
	// it: "request option" or "model parameter".
	Library       backends.Preference
	LibrarySource string
}

// WithLibraryOption parses the model's `library` option once. The request's
// options are merged over the model's parameters, so modelParams tells
// where it came from. The error wraps envconfig.ErrLibraryOption.
func (m ModelLoad) WithLibraryOption(requested string, modelParams map[string]any) (ModelLoad, error) {
	if requested == "" {
		return m, nil
	}
	pref, err := envconfig.ParseModelLibrary(requested)
	if err != nil {
		return ModelLoad{}, err
	}
	m.Library, m.LibrarySource = pref, "request option"
	if v, ok := modelParams[envconfig.LibraryOptionName].(string); ok && v == requested {
		m.LibrarySource = "model parameter"
	}
	return m, nil
}

// preferenceFor is the preference in force for model m, its `library`
// option else OLLAMA_LLM_LIBRARY, and by, which says so in a reason.
func preferenceFor(d Discovery, m ModelLoad) (pref backends.Preference, by string) {
	if m.Library.IsSet() {
		return m.Library, m.librarySource() + " library=" + m.Library.String()
	}
	return d.Preference, "OLLAMA_LLM_LIBRARY=" + d.Preference.String()
}

// librarySource says who set the `library` option, for plans and logs.
func (m ModelLoad) librarySource() string { return cmp.Or(m.LibrarySource, "model option") }

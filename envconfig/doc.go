// Package envconfig holds this fork's parsers of the environment variables
// it adds or changes: OLLAMA_LLM_LIBRARY (llm_library.go, a preference list
// in ml/backends' grammar), OLLAMA_BACKEND_DENYLIST (backend_denylist.go),
// OLLAMA_BACKEND_QUIRKS_RESET and the per-model `library` option. Parsers
// take the raw string and return a value or an error that names the bad
// item; CheckBackendSelection validates them all when `ollama serve` starts.
package envconfig

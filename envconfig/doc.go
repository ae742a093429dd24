// Package envconfig holds this fork's parsers for the environment variables
// it adds or changes, and the one table of GPU libraries (libraries.go:
// names, spellings, folder prefixes, ggml file stems, visibility variables).
// OLLAMA_LLM_LIBRARY is a preference list (llm_library.go), the backend
// denylist a list of rules (backend_denylist.go). Parsers take the raw
// string and return a value or an error that names the bad item; reading the
// environment stays at upstream's call sites.
package envconfig

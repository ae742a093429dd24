// Package envconfig holds this fork's parsers for the environment variables
// it adds or changes (OLLAMA_LLM_LIBRARY as a preference list, the backend
// denylist). Parsers take the raw string and return a value or an error that
// names the bad item; reading the environment stays at upstream's call sites.
package envconfig

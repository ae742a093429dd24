// Package backends is the fork's table of GPU backend libraries and the
// policy that ranks them: every name a library goes by (ml.DeviceInfo's
// "ROCm", OLLAMA_LLM_LIBRARY's "rocm", the denylist's "hip", ggml's file
// stem), the variables that show or hide its devices, and Preference, the
// parsed OLLAMA_LLM_LIBRARY list with Prefer, the one ranking of two
// libraries of a GPU. It imports nothing of Ollama's, so envconfig's parsers
// and discover's decision can both use it.
package backends

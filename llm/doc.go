// Package llm holds this fork's additions to upstream's llm package: the
// runner's devices as the backend plan decided them (RunnerDevices, carried
// in LlamaServerConfig and applied unchanged), and the CPU's AMX buffers
// counted as host memory.
package llm

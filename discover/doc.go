// Package discover holds this fork's additions to upstream's discover
// package: the backend decision, the quirk table it applies, and what GPU
// discovery records for it.
//
// The decision is Decide(PlanInput) Plan, in plan.go: what discovery found,
// OLLAMA_LLM_LIBRARY, the rules and a model in; per GPU the library, the
// alternates and the reasons out, and Plan.Runner, the runner's --device
// and environment for the GPUs the scheduler placed the model on. Decide is
// pure. Everything else gathers its inputs or carries the plan out:
//
//   - discovery.go: Discovery, the record of the bootstrap discovery
//     (StartDiscovery before any backend runs: OLLAMA_LLM_LIBRARY, the
//     configured rules, KFD; Choose after: every library's devices). Upstream's
//     GPUDevices keeps it beside its devices, under its lock (LastDiscovery).
//   - backend_quirks.go: the call sites of a model load. PlaceModel decides
//     and logs the rules' decisions; StartRunner turns the plan into the
//     runner's launch for the GPUs placed and logs it in one line, which
//     llm.LlamaServerConfig.Runner carries to llama-server unchanged;
//     NextLibrary is Decide after a runner died, with the learned rule.
//   - model_load.go: ModelLoad, the model as the decision sees it; its
//     `library` option is parsed once, by WithLibraryOption.
//   - library_choice.go, runner_launch.go: the ranking of one GPU's
//     libraries, and the runner's devices and visibility variables.
//   - quirks.go, rocm_discovery.go, kfd.go: the quirk table and its
//     matching; which AMD GPUs HIP is kept away from at discovery.
//   - discovery_faults.go, discovery_death.go: devices reported with
//     impossible properties; a discovery llama-server that a backend
//     killed or hung, named in one ERROR line and listed.
//   - backend_listing.go: ListBackends, what GET /api/backends answers;
//     discover/listing serves it and prints it for `ollama backends`.
//
// The idle-GPU watchdog and the learned-quirks file are the package
// discover/gpuwatch, which imports this one: the server owns its Watchdog
// and hands what it learned to PlaceModel and ListBackends.
package discover

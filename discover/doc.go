// Package discover holds this fork's additions to upstream's discover
// package: the policy that ranks the backend libraries of one physical
// device, the quirk table (denylist) and the readers of KFD sysfs.
//
// The files here are plain functions over upstream's exported types. The
// build copies them into github.com/ollama/ollama/discover, where patches in
// patches/ add the call sites.
//
// Files:
//
//   - plan.go: the one decision, Decide(PlanInput) Plan: devices,
//     OLLAMA_LLM_LIBRARY, rules and a model in; per GPU the library, the
//     alternates and the reasons, and the runner's --device and
//     environment out. Pure; discovery (selectLibraries) and the model
//     load (PlaceModel) gather its inputs and carry it out.
//   - library_choice.go: the library each device uses and its alternates
//     (OLLAMA_LLM_LIBRARY, the default order), logged and kept for the
//     listing and the quirk table.
//   - quirks.go: the quirk table, its rules and their matching.
//   - backend_quirks.go: the table in force at a model load (built-in,
//     OLLAMA_BACKEND_DENYLIST, then what the server learned, passed in by
//     the caller), the GPUs it leaves a model, and the library a model
//     moves to (NextLibrary).
//   - kfd.go, rocm_discovery.go: the KFD topology, and the discovery
//     environment: libraries not wanted hidden by their visibility
//     variables, HIP kept off GPUs the table denies for every model.
//   - discovery_faults.go: devices reported with impossible properties.
//   - discovery_death.go: a discovery llama-server that a backend library
//     killed or hung, named in one ERROR line and listed.
//   - backend_listing.go: GET /api/backends and `ollama backends`, with
//     what the server learned (the Learned interface: rules and StuckGPU).
//
// The idle-GPU watchdog and the learned-quirks file are the package
// discover/gpuwatch, which imports this one: the server owns its Watchdog
// and hands what it learned to PlaceModel and BackendsHandler.
//
// State. Upstream keeps the devices of its one discovery in package
// variables (runner.go: deviceMu, devices, libDirs, bootstrapped) and
// reaches them through package functions (GPUDevices), and the runner's
// environment is built in llm, which cannot import this package. What the
// fork records about that same discovery therefore lives beside it, each
// behind its own mutex: the devices of every library with the choices and
// exclusions (library_choice.go, read by PlaceModel and the listing), the
// faults and discovery failures already reported (discovery_faults.go,
// discovery_death.go: one line each per process), and the ROCm discovery
// plan, read from KFD once (rocm_discovery.go). llm's runner-environment
// hook (llm.AddRunnerEnvHook) is registered once, at init. Values the
// server owns (its Scheduler) would need GPUDevices and the runner's
// constructor to take them, a change of upstream's API rather than a call
// site; it belongs with upstream's own discovery state.
package discover

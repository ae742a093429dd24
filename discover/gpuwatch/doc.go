// Package gpuwatch is the idle-GPU watchdog and what it learns: it notices
// a GPU left busy after its runner exited (the RDNA4 symptom where Qwen3
// models on ROCm keep the GPU at 100% busy and top clock until reboot) and
// runners that keep dying, and records the (library, compute, model
// architecture) triple so that the next load of that architecture uses
// another library of the GPU. docs/watchdog.md describes it for users.
//
// The server owns one Watchdog (New), held by the scheduler, which reports
// loads and runner exits to it (LoadStarting, RunnerLoaded, RunnerExiting).
// Discover's quirk table reads back what was learned
// (discover.PlaceModel takes LearnedRules; the backend listing takes
// the Watchdog as a discover.Learned). This package imports discover, not
// the other way round: a learned quirk is a discover.QuirkRule, and the
// library a model moves to is discover's decision (discover.NextLibrary).
//
// Files:
//
//   - watchdog.go: Watchdog, what the server and the scheduler call; the
//     runners alive on each GPU.
//   - watch.go: the watcher, which samples the GPUs of an exited runner and
//     reports a stuck one (discover.StuckGPU), with the remedy.
//   - sysfs.go: the DRM sysfs readers and parsers (gpu_busy_percent,
//     pp_dpm_sclk, hwmon power, uevent, boot id).
//   - learned.go: the learned-quirks file (~/.ollama/backend-quirks.json):
//     learned triples and the GPUs stuck during this boot, read back when it
//     changes on disk, written atomically.
//   - crashes.go: the count of consecutive runner deaths per triple.
//
// In the assembled tree this is the new package
// github.com/ollama/ollama/discover/gpuwatch, which upstream does not have;
// this file is copied with it.
package gpuwatch

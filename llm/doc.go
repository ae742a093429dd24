// Package llm holds this fork's additions to upstream's llm package: what a
// model's llama-server may use (PlanRunnerDevices: its --device list and the
// visibility variables that hide every other GPU library), and the hooks
// that add a model's rule-driven variables to its runner.
package llm

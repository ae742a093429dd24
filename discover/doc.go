// Package discover holds this fork's additions to upstream's discover
// package: the policy that ranks the backend libraries of one physical
// device, the quirk table (denylist) and the readers of KFD sysfs.
//
// The files here are plain functions over upstream's exported types. The
// build copies them into github.com/ollama/ollama/discover, where patches in
// patches/ add the call sites.
package discover

//go:build !linux

package llm

import "syscall"

// DiscoveryRunnerSysProcAttr returns base: only Linux can tie a runner's
// life to the server's (see the Linux version).
func DiscoveryRunnerSysProcAttr(base *syscall.SysProcAttr) *syscall.SysProcAttr { return base }

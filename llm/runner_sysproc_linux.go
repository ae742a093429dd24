package llm

import "syscall"

// DiscoveryRunnerSysProcAttr returns the process attributes of a runner
// started without a model (GPU discovery, free-memory refresh): base, with
// the kernel told to kill the runner when the server dies. A server that
// exits while such a runner answers would otherwise leave it behind for
// good (it is stopped only by the call that started it); model runners are
// stopped by the server itself.
func DiscoveryRunnerSysProcAttr(base *syscall.SysProcAttr) *syscall.SysProcAttr {
	var attr syscall.SysProcAttr
	if base != nil {
		attr = *base
	}
	attr.Pdeathsig = syscall.SIGKILL
	return &attr
}

package llm

import (
	"syscall"
	"testing"
)

func TestDiscoveryRunnerSysProcAttr(t *testing.T) {
	base := &syscall.SysProcAttr{Setpgid: true}
	got := DiscoveryRunnerSysProcAttr(base)
	if got.Pdeathsig != syscall.SIGKILL || !got.Setpgid {
		t.Errorf("got %+v, want base's settings and Pdeathsig SIGKILL", got)
	}
	if base.Pdeathsig != 0 {
		t.Error("the shared base attributes were changed")
	}
	if got := DiscoveryRunnerSysProcAttr(nil); got.Pdeathsig != syscall.SIGKILL {
		t.Errorf("nil base: %+v", got)
	}
}

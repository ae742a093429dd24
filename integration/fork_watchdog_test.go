//go:build integration

package integration

// The fork's idle-GPU watchdog (docs/watchdog.md) against a fake sysfs
// whose DRM card for the fake twin's PCI address reports a static 100%
// gpu_busy_percent: a GPU that stays busy after its runner exits is
// reported once, learned in ~/.ollama/backend-quirks.json, and the next
// load of that architecture uses the other library.

import (
	"encoding/json"
	"os"
	"testing"
)

const forkStuckMsg = "GPU stayed busy after its runner exited; it may stay stuck until reboot"

type forkLearnedFile struct {
	Version int `json:"version"`
	Quirks  []struct {
		Library, Compute, Arch, Cause, Evidence, Model string
		PCIID                                          string `json:"pci_id"`
	} `json:"quirks"`
	StuckGPUs []json.RawMessage `json:"stuck_gpus"`
}

// forkCheckLearned asserts the learned-quirks file holds exactly one quirk:
// ROCm on the fake gfx1200 GPU for arch, learned from cause.
func forkCheckLearned(t *testing.T, state, arch, cause string) {
	t.Helper()
	data, err := os.ReadFile(state)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var lf forkLearnedFile
	if err := json.Unmarshal(data, &lf); err != nil {
		t.Fatalf("state file %s: %v\n%s", state, err, data)
	}
	if lf.Version != 1 || len(lf.Quirks) != 1 {
		t.Fatalf("state file: %s", data)
	}
	q := lf.Quirks[0]
	if q.Library != "ROCm" || q.Compute != "gfx1200" || q.Arch != arch || q.Cause != cause || q.PCIID != forkPCIID {
		t.Errorf("learned %+v, want ROCm gfx1200 %s %s on %s", q, arch, cause, forkPCIID)
	}
	t.Logf("learned: %+v", q)
}

//go:build integration

package integration

// Bad input everywhere the fork reads it: environment values (refused at
// start with one line naming the value and what is accepted, before any of
// them could be used as a path), the learned-quirks state file, and sysfs
// (KFD topology, DRM busy percentage). Each gives one clear WARN naming the
// file and the value; none stops the server.

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestForkReliabilityBadEnv: values that are malformed or look like paths.
func TestForkReliabilityBadEnv(t *testing.T) {
	bin := forkBin(t)
	for _, c := range []struct {
		env, prefix string
		contains    []string
	}{
		{"OLLAMA_BACKEND_QUIRKS_RESET=maybe", "Error: OLLAMA_BACKEND_QUIRKS_RESET=", []string{`"maybe"`, "accepted: 1, true, 0, false (or unset)"}},
		{"OLLAMA_BACKEND_QUIRKS_RESET=/tmp/backend-quirks.json", "Error: OLLAMA_BACKEND_QUIRKS_RESET=", []string{`"/tmp/backend-quirks.json"`, "accepted"}},
		{"OLLAMA_LLM_LIBRARY=../../lib/ollama/vulkan", "Error: OLLAMA_LLM_LIBRARY", []string{`"../../lib/ollama/vulkan" is not a library name`, "accepted: one of"}},
		{"OLLAMA_LLM_LIBRARY=/usr/lib/ollama", "Error: OLLAMA_LLM_LIBRARY", []string{`"/usr/lib/ollama" is not a library name`}},
		{"OLLAMA_BACKEND_DENYLIST=rocm:../../etc", "Error: OLLAMA_BACKEND_DENYLIST entry", []string{`"rocm:../../etc"`, "library:compute[:arch[,arch...]][=queues1]"}},
		{"OLLAMA_BACKEND_DENYLIST=vulkan:0.0:" + strings.Repeat("a", 5000), "Error: OLLAMA_BACKEND_DENYLIST", []string{"5011 bytes long once normalized; at most 4096 accepted"}},
	} {
		name, _, _ := strings.Cut(c.env, "=")
		t.Run(name+"/"+fmt.Sprint(len(c.env)), func(t *testing.T) {
			t.Parallel()
			line := forkRefuseToServe(t, bin, []string{c.env}, c.prefix, c.contains...)
			if len(line) > 1000 {
				t.Errorf("message of %d bytes for one bad value", len(line))
			}
			t.Logf("%.300s", line)
		})
	}
}

// TestForkReliabilityStateFile: a learned-quirks file that is not what the
// fork writes is ignored with one WARN naming it; the server serves on the
// default policy (qwen2 on ROCm) and does not touch the file.
func TestForkReliabilityStateFile(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	huge := `{"version": 1, "quirks": [` + strings.Repeat(" ", 2<<20) + `]}`
	for _, c := range []struct {
		name, content, errWant string
	}{
		{"truncated", `{"version": 1, "quirks": [{"library": "ROCm", "compute": "gfx1200", "ar`, "unexpected end of JSON input"},
		{"not-an-object", `[1, 2, 3]`, "not a JSON object"},
		{"wrong-types", `{"version": 1, "quirks": {"library": 5}}`, "version 1 content"},
		{"version-a-string", `{"version": "1", "quirks": []}`, `version "1": want a whole number`},
		{"huge", huge, "larger than the 1048576 accepted"},
		{"path-like-entry", `{"version": 1, "quirks": [{"library": "ROCm", "compute": "gfx1200", "arch": "../../etc/passwd", "cause": "crashes", "learned_at": "2026-01-01T00:00:00Z"}]}`, `entries left out`},
	} {
		t.Run(c.name, func(t *testing.T) {
			home := t.TempDir()
			state := filepath.Join(home, ".ollama", "backend-quirks.json")
			if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(state, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "HOME="+home)
			m := forkCreateTiny(t, s.Server, "qwen2")
			forkGenerate(t, s.Server, m)
			if e := forkPsEntry(t, s.Server, m); e.Library != "ROCm" {
				t.Errorf("/api/ps library %q, want ROCm", e.Library)
			}
			rec := forkOneRecord(t, s.Server, "ignoring learned backend quirks file")
			forkCheckFields(t, c.name, rec, map[string]string{"level": "WARN", "file": state, "error": "~" + c.errWant})
			if rec != nil {
				t.Logf("log: level=%s msg=%q error=%.200q", rec["level"], rec["msg"], rec["error"])
			}
			forkCheckServes(t, s.Server, m)
			relStopClean(t, s.Server)
			if data, err := os.ReadFile(state); err != nil || string(data) != c.content {
				t.Errorf("the state file was changed or removed (%v)", err)
			}
		})
	}
}

// TestForkReliabilitySysfs: KFD properties and the DRM busy percentage
// missing, non-numeric, negative or enormous.
func TestForkReliabilitySysfs(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	kfd := func(t *testing.T, gfx string) string {
		root := forkRdna4Sysfs(t)
		p := filepath.Join(root, "sys/class/kfd/kfd/topology/nodes/1/properties")
		if gfx == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			return root
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		data = regexp.MustCompile(`gfx_target_version \d+`).ReplaceAll(data, []byte("gfx_target_version "+gfx))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return root
	}
	for _, c := range []struct{ name, gfx, errWant string }{
		{"kfd-missing", "", "no such file or directory"},
		{"kfd-non-numeric", "gfx1200", `gfx_target_version "gfx1200": want an unsigned decimal`},
		{"kfd-negative", "-120000", `gfx_target_version "-120000": want an unsigned decimal`},
		{"kfd-enormous", "99999999999999999999999999", `gfx_target_version "99999999999999999999999999": want an unsigned decimal`},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := bed.start(t, "OLLAMA_SYSFS_ROOT="+kfd(t, c.gfx))
			rec := forkOneRecord(t, s.Server, "reading AMD GPU topology")
			forkCheckFields(t, c.name, rec, map[string]string{"level": "WARN", "error": "~" + c.errWant})
			if rec != nil && !strings.Contains(rec["error"], "nodes/1/properties") {
				t.Errorf("error %q does not name the file", rec["error"])
			}
			if rec != nil {
				t.Logf("log: level=%s msg=%q error=%q", rec["level"], rec["msg"], rec["error"])
			}
			m := forkCreateTiny(t, s.Server, "qwen2")
			forkCheckServes(t, s.Server, m)
			relStopClean(t, s.Server)
		})
	}
	for _, c := range []struct{ name, busy string }{
		{"busy-non-numeric", "busy"},
		{"busy-negative", "-5"},
		{"busy-enormous", "100000000000000000000000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := forkRdna4Sysfs(t)
			forkWriteFakeDRM(t, root, "card1", forkPCIID, 0)
			busy := filepath.Join(root, "sys/devices/pci0000:00/0000:00:01.1", forkPCIID, "gpu_busy_percent")
			if err := os.WriteFile(busy, []byte(c.busy+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			s := bed.start(t, "OLLAMA_SYSFS_ROOT="+root, "OLLAMA_BACKEND_DENYLIST=none")
			m := forkCreateTiny(t, s.Server, "qwen2")
			for i := 0; i < 2; i++ { // two runner exits: one message
				forkGenerate(t, s.Server, m)
				forkUnload(t, s.Server, m)
			}
			const msg = "GPU watchdog: cannot read GPU busy percentage; not watching this GPU"
			if _, err := s.WaitForLog(regexp.MustCompile(regexp.QuoteMeta(`msg="`+msg+`"`)), 10*time.Second); err != nil {
				t.Fatal(err)
			}
			rec := forkOneRecord(t, s.Server, msg)
			forkCheckFields(t, c.name, rec, map[string]string{
				"level": "WARN", "pci_id": forkPCIID, "card": "card1",
				"error": fmt.Sprintf("~gpu_busy_percent %q: want a whole percentage from 0 to 100", c.busy),
			})
			if rec != nil {
				t.Logf("log: level=%s msg=%q error=%q", rec["level"], rec["msg"], rec["error"])
			}
			if recs := s.LogRecords(forkStuckMsg); len(recs) != 0 {
				t.Errorf("a GPU whose busy percentage cannot be read was reported stuck: %v", recs)
			}
			forkCheckServes(t, s.Server, m)
			relStopClean(t, s.Server)
		})
	}
}

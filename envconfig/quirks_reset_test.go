package envconfig

import (
	"strings"
	"testing"
)

func TestParseBackendQuirksReset(t *testing.T) {
	for _, tt := range []struct {
		value string
		want  bool
		err   string
	}{
		{"", false, ""},
		{"1", true, ""},
		{" true ", true, ""},
		{`"TRUE"`, true, ""},
		{"0", false, ""},
		{"false", false, ""},
		{"yes", false, `OLLAMA_BACKEND_QUIRKS_RESET="yes": accepted: 1, true, 0, false (or unset)`},
		{"/etc/passwd", false, `OLLAMA_BACKEND_QUIRKS_RESET="/etc/passwd": accepted`},
		{strings.Repeat("x", 100), false, `"` + strings.Repeat("x", 64) + `..."`},
	} {
		got, err := ParseBackendQuirksReset(tt.value)
		if tt.err == "" {
			if err != nil || got != tt.want {
				t.Errorf("ParseBackendQuirksReset(%q) = %v, %v; want %v", tt.value, got, err, tt.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.err) || got {
			t.Errorf("ParseBackendQuirksReset(%q) = %v, %v; want false and an error containing %q", tt.value, got, err, tt.err)
		}
	}
}

func TestCheckBackendSelectionQuirksReset(t *testing.T) {
	t.Setenv("OLLAMA_LLM_LIBRARY", "")
	t.Setenv("OLLAMA_BACKEND_DENYLIST", "")
	t.Setenv(BackendQuirksResetEnv, "maybe")
	if err := CheckBackendSelection(); err == nil || !strings.Contains(err.Error(), `"maybe"`) {
		t.Errorf("CheckBackendSelection() = %v, want the bad reset value named", err)
	}
	if BackendQuirksReset() {
		t.Error("a malformed value must not reset")
	}
	t.Setenv(BackendQuirksResetEnv, "1")
	if err := CheckBackendSelection(); err != nil || !BackendQuirksReset() {
		t.Errorf("OLLAMA_BACKEND_QUIRKS_RESET=1: %v, reset %v", err, BackendQuirksReset())
	}
}

func FuzzParseBackendQuirksReset(f *testing.F) {
	for _, seed := range []string{"", "1", "true", "FALSE", "yes", "'0'", "\x00", "../../x", "tru\u00e9"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		b, err := ParseBackendQuirksReset(value)
		if err != nil {
			if b {
				t.Errorf("ParseBackendQuirksReset(%q) failed but reset", value)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "accepted") {
				t.Errorf("error %q: want one line naming what is accepted", err)
			}
			// The value is cut to 64 bytes, each quoted in at most 4
			// characters (\xNN): the message stays bounded whatever the
			// input's length.
			if len(err.Error()) > 64*4+120 {
				t.Errorf("error of %d bytes for a %d-byte value", len(err.Error()), len(value))
			}
		}
	})
}

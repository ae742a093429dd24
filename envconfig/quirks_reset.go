package envconfig

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// BackendQuirksResetEnv forgets the learned backend quirks at the server's start.
const BackendQuirksResetEnv = "OLLAMA_BACKEND_QUIRKS_RESET"

// ParseBackendQuirksReset parses OLLAMA_BACKEND_QUIRKS_RESET; a value that is
// no boolean is an error, so that a typo neither wipes nor keeps what was learned.
func ParseBackendQuirksReset(value string) (bool, error) {
	v := strings.Trim(strings.TrimSpace(value), "\"'")
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: accepted: 1, true, 0, false (or unset)", BackendQuirksResetEnv, Shorten(v))
	}
	return b, nil
}

// BackendQuirksReset reads OLLAMA_BACKEND_QUIRKS_RESET; a bad value is false.
func BackendQuirksReset() bool {
	b, _ := ParseBackendQuirksReset(os.Getenv(BackendQuirksResetEnv))
	return b
}

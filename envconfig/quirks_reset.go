package envconfig

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// BackendQuirksResetEnv forgets, at the server's start, the backend quirks
// the server learned (discover's learned-quirks file).
const BackendQuirksResetEnv = "OLLAMA_BACKEND_QUIRKS_RESET"

// ParseBackendQuirksReset parses OLLAMA_BACKEND_QUIRKS_RESET: empty (unset)
// is false, else one of the booleans strconv.ParseBool accepts. Anything
// else is an error that names the value, so that a typo neither wipes nor
// silently keeps what was learned.
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

// BackendQuirksReset reads OLLAMA_BACKEND_QUIRKS_RESET from the
// environment; a malformed value is false here (`ollama serve` refuses to
// start with one, CheckBackendSelection).
func BackendQuirksReset() bool {
	b, _ := ParseBackendQuirksReset(os.Getenv(BackendQuirksResetEnv))
	return b
}

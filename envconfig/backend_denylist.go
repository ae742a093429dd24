package envconfig

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"

	"github.com/costa-os/ollama-backend-select/ml/backends"
)

// Backend denylist actions, the values BackendDenyEntry.Action takes. They are
// spelled like the discover package's quirk actions so the conversion is a
// plain string copy.
const (
	// BackendDenyUseOtherLibrary is the default action: do not use this
	// library for matching devices and models; another library (Vulkan, say)
	// may take the device.
	BackendDenyUseOtherLibrary = "use-other-library"

	// BackendDenyQueues1 keeps the library but starts the runner with
	// GPU_MAX_HW_QUEUES=1. It is written "=queues1" after an entry.
	BackendDenyQueues1 = "queues1"
)

const (
	// backendDenylistMaxRaw bounds the raw value the parser looks at at all.
	backendDenylistMaxRaw = 64 << 10

	// backendDenylistMaxLen bounds the normalized value (what
	// BackendDenylist.String returns). Checking the normalized form rather
	// than the raw one keeps every accepted value round-tripping: "hip" is
	// written back as "rocm", so the normalized form can be longer than the
	// input.
	backendDenylistMaxLen = 4096

	backendDenyForm      = "library:compute[:arch[,arch...][:vision]][=queues1]"
	backendDenyLibraries = "rocm (or hip), cuda, vulkan"
)

// BackendDenyEntry is one parsed OLLAMA_BACKEND_DENYLIST entry.
type BackendDenyEntry struct {
	// Library is the canonical library name as upstream reports it in
	// ml.DeviceInfo.Library: "ROCm", "CUDA" or "Vulkan".
	Library string

	// Compute is a path.Match glob on ml.DeviceInfo.Compute, lower-cased.
	Compute string

	// Archs are path.Match globs on GGUF general.architecture, lower-cased.
	// Nil means every architecture (the entry had no arch list, or "*" in
	// it).
	Archs []string

	// Capabilities are model capabilities the entry needs besides the
	// arch: "vision" (the model loads a vision projector, mmproj). Nil
	// means every model of the archs.
	Capabilities []string

	// Action is BackendDenyUseOtherLibrary or BackendDenyQueues1.
	Action string
}

// BackendDenyCapabilities are the model capabilities an entry may name,
// with Ollama's own capability names: "vision" is a model that loads a
// vision projector, which public reports tie to a GPU left busy
// (docs/watchdog.md).
var BackendDenyCapabilities = []string{"vision"}

// String formats the entry in the syntax ParseBackendDenylist accepts, in
// normalized form (lower-case library, default action omitted).
func (e BackendDenyEntry) String() string {
	var b strings.Builder
	b.WriteString(strings.ToLower(e.Library))
	b.WriteByte(':')
	b.WriteString(e.Compute)
	if len(e.Archs) > 0 || len(e.Capabilities) > 0 {
		b.WriteByte(':')
		b.WriteString(cmp.Or(strings.Join(e.Archs, ","), "*"))
	}
	if len(e.Capabilities) > 0 {
		b.WriteByte(':')
		b.WriteString(strings.Join(e.Capabilities, ","))
	}
	if e.Action != "" && e.Action != BackendDenyUseOtherLibrary {
		b.WriteByte('=')
		b.WriteString(e.Action)
	}
	return b.String()
}

// BackendDenylist is a parsed OLLAMA_BACKEND_DENYLIST value. The zero value
// means "the built-in quirk table only".
type BackendDenylist struct {
	// DropBuiltins is set when the value contained the word none.
	DropBuiltins bool

	// Entries are the user's entries in the order given.
	Entries []BackendDenyEntry
}

// String formats the denylist in the syntax ParseBackendDenylist accepts:
// "none" first when the built-ins are dropped, then the entries, separated
// by single spaces. Parsing the result gives back an equal value.
func (d BackendDenylist) String() string {
	parts := make([]string, 0, len(d.Entries)+1)
	if d.DropBuiltins {
		parts = append(parts, "none")
	}
	for _, e := range d.Entries {
		parts = append(parts, e.String())
	}
	return strings.Join(parts, " ")
}

// ParseBackendDenylist parses an OLLAMA_BACKEND_DENYLIST value.
//
// The value is a list of entries separated by whitespace or ';'. Each entry
// has the form
//
//	library:compute[:arch[,arch...][:vision]][=queues1]
//
// library is rocm (or hip), cuda or vulkan, in any letter case. compute is a
// glob on the compute string upstream's ml.DeviceInfo.Compute reports: the
// gfx name for ROCm ("gfx1200"), "major.minor" for CUDA ("9.0"). The optional
// arch list holds globs on the model's GGUF general.architecture ("qwen3",
// "qwen3*"); without it, or with "*" in it, the entry covers every model.
// The optional fourth field names a model capability the entry needs:
// "vision" covers only models that load a vision projector
// ("rocm:gfx1201:*:vision"). The
// optional "=queues1" keeps the library but starts the runner with
// GPU_MAX_HW_QUEUES=1; without it the entry means "use another library".
//
// The word none drops the built-in quirk table, alone ("none") or next to
// entries ("none rocm:gfx1100"). The empty value means the built-in table
// only.
//
// ':' ',' ';' '=' and whitespace are separators, so they cannot appear inside
// a pattern; patterns are ASCII letters, digits, '.', '_', '-', '+' and the
// path.Match metacharacters '*', '?', '[', ']', '^'. Entries are not
// ','-separated so that ',' stays free to list archs inside one entry. The
// value may be at most 4096 bytes once normalized (see String).
//
// Library names are made canonical ("hip" becomes "ROCm"), patterns are
// lower-cased, an all-'*' compute becomes "*", and an arch list that contains
// an all-'*' pattern becomes nil.
//
// Every malformed entry is reported, joined into one error that names each
// entry, the expected form and the accepted libraries. On error the returned
// value is the zero BackendDenylist, so a caller that logs the error and goes
// on keeps the built-in table unchanged rather than applying half of what the
// user wrote.
func ParseBackendDenylist(s string) (BackendDenylist, error) {
	if len(s) > backendDenylistMaxRaw {
		return BackendDenylist{}, fmt.Errorf("OLLAMA_BACKEND_DENYLIST is %d bytes long; at most %d accepted", len(s), backendDenylistMaxRaw)
	}

	var (
		d    BackendDenylist
		errs []error
	)
	for _, item := range strings.FieldsFunc(s, isBackendDenySeparator) {
		if strings.EqualFold(item, "none") {
			d.DropBuiltins = true
			continue
		}
		e, err := parseBackendDenyEntry(item)
		if err != nil {
			errs = append(errs, fmt.Errorf("OLLAMA_BACKEND_DENYLIST entry %q: %w; expected %s with library one of %s", item, err, backendDenyForm, backendDenyLibraries))
			continue
		}
		d.Entries = append(d.Entries, e)
	}
	if len(errs) > 0 {
		return BackendDenylist{}, errors.Join(errs...)
	}
	if n := len(d.String()); n > backendDenylistMaxLen {
		return BackendDenylist{}, fmt.Errorf("OLLAMA_BACKEND_DENYLIST is %d bytes long once normalized; at most %d accepted", n, backendDenylistMaxLen)
	}
	return d, nil
}

func isBackendDenySeparator(r rune) bool {
	switch r {
	case ' ', '\t', '\n', '\r', '\v', '\f', ';':
		return true
	}
	return false
}

// parseBackendDenyEntry parses one entry, already split off the list. Its
// errors describe the problem only; the caller adds the entry and the form.
func parseBackendDenyEntry(item string) (BackendDenyEntry, error) {
	e := BackendDenyEntry{Action: BackendDenyUseOtherLibrary}

	body, action, hasAction := strings.Cut(item, "=")
	if hasAction {
		switch strings.ToLower(action) {
		case BackendDenyQueues1:
			e.Action = BackendDenyQueues1
		case "":
			return BackendDenyEntry{}, errors.New("empty action after '='")
		default:
			return BackendDenyEntry{}, fmt.Errorf("unknown action %q (accepted: %s; leave it out to use another library)", action, BackendDenyQueues1)
		}
	}

	fields := strings.Split(body, ":")
	if len(fields) < 2 {
		return BackendDenyEntry{}, errors.New("missing ':compute'")
	}
	if len(fields) > 4 {
		return BackendDenyEntry{}, fmt.Errorf("%d ':'-separated fields, at most 4 accepted", len(fields))
	}

	lib, ok := CanonicalLibraryName(fields[0])
	if !ok {
		if fields[0] == "" {
			return BackendDenyEntry{}, errors.New("empty library")
		}
		return BackendDenyEntry{}, fmt.Errorf("unknown library %q", fields[0])
	}
	e.Library = lib

	compute := strings.ToLower(fields[1])
	if compute == "" {
		return BackendDenyEntry{}, errors.New("empty compute")
	}
	if err := checkDenyPattern(compute); err != nil {
		return BackendDenyEntry{}, fmt.Errorf("compute %q: %w", fields[1], err)
	}
	if err := checkDenyComputeShape(lib, compute); err != nil {
		return BackendDenyEntry{}, fmt.Errorf("compute %q: %w", fields[1], err)
	}
	if isDenyMatchAll(compute) {
		compute = "*"
	}
	e.Compute = compute

	if len(fields) == 4 {
		for _, c := range strings.Split(fields[3], ",") {
			c = strings.ToLower(c)
			if !slices.Contains(BackendDenyCapabilities, c) {
				return BackendDenyEntry{}, fmt.Errorf("unknown model capability %q (accepted: %s)", c, strings.Join(BackendDenyCapabilities, ", "))
			}
			if !slices.Contains(e.Capabilities, c) {
				e.Capabilities = append(e.Capabilities, c)
			}
		}
	}
	if len(fields) >= 3 {
		if fields[2] == "" {
			return BackendDenyEntry{}, errors.New("empty arch list after the second ':'")
		}
		all := false
		for _, a := range strings.Split(fields[2], ",") {
			arch := strings.ToLower(a)
			if arch == "" {
				return BackendDenyEntry{}, fmt.Errorf("empty arch in list %q", fields[2])
			}
			if err := checkDenyPattern(arch); err != nil {
				return BackendDenyEntry{}, fmt.Errorf("arch %q: %w", a, err)
			}
			if isDenyMatchAll(arch) {
				all = true
			}
			e.Archs = append(e.Archs, arch)
		}
		if all {
			e.Archs = nil
		}
	}
	return e, nil
}

// CanonicalLibraryName maps a user's spelling of a GPU library ("rocm" or
// "hip", "cuda", "vulkan", any case) to the name upstream reports in
// ml.DeviceInfo.Library ("ROCm", "CUDA", "Vulkan").
func CanonicalLibraryName(s string) (string, bool) {
	if l, ok := backends.Lookup(s); ok {
		return l.Device, true
	}
	return "", false
}

// checkDenyPattern accepts a path.Match pattern made of the characters listed
// in the syntax comment above.
func checkDenyPattern(p string) error {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("._-+*?[]^", c) >= 0:
		default:
			return fmt.Errorf("character %q not accepted in a pattern (letters, digits, . _ - + and the glob characters * ? [ ] ^)", c)
		}
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("bad glob: %w", err)
	}
	return nil
}

// checkDenyComputeShape catches compute strings in the wrong format for the
// library, which would otherwise never match anything.
func checkDenyComputeShape(lib, compute string) error {
	switch lib {
	case "ROCm":
		if !strings.HasPrefix(compute, "gfx") && !isDenyMatchAll(compute) {
			return errors.New(`ROCm compute is a gfx name such as "gfx1200" or "gfx120*", or "*"`)
		}
	case "CUDA":
		for i := 0; i < len(compute); i++ {
			if strings.IndexByte("0123456789.*?[]-^", compute[i]) < 0 {
				return errors.New(`CUDA compute is major.minor such as "9.0" or "12.*", or "*"`)
			}
		}
	}
	// Vulkan: upstream reports "0.0" for every Vulkan device, so only "*" (or
	// "0.0") matches anything there today; any well-formed glob is accepted
	// in case a caller passes a gfx name it looked up elsewhere.
	return nil
}

// isDenyMatchAll reports whether p matches every string without '/'.
func isDenyMatchAll(p string) bool {
	return p != "" && strings.Trim(p, "*") == ""
}

// BackendDenylistFromEnv reads and parses OLLAMA_BACKEND_DENYLIST.
func BackendDenylistFromEnv() (BackendDenylist, error) {
	return ParseBackendDenylist(strings.Trim(strings.TrimSpace(os.Getenv("OLLAMA_BACKEND_DENYLIST")), "\"'"))
}

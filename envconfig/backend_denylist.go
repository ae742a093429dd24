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

// Backend denylist actions, spelled like the discover package's quirk actions.
const (
	// BackendDenyUseOtherLibrary leaves matching devices to another library.
	BackendDenyUseOtherLibrary = "use-other-library"

	// BackendDenyQueues1 keeps the library but sets GPU_MAX_HW_QUEUES=1.
	BackendDenyQueues1 = "queues1"
)

const (
	backendDenylistMaxRaw = 64 << 10

	// backendDenylistMaxLen bounds the normalized value, which can be longer
	// than the raw one ("hip" becomes "rocm"), so accepted values round-trip.
	backendDenylistMaxLen = 4096

	backendDenyForm      = "library:compute[:arch[,arch...][:vision]][=queues1]"
	backendDenyLibraries = "rocm (or hip), cuda, vulkan"
)

// BackendDenyEntry is one parsed OLLAMA_BACKEND_DENYLIST entry.
type BackendDenyEntry struct {
	// Library is ml.DeviceInfo.Library: "ROCm", "CUDA" or "Vulkan".
	Library string

	// Compute is a lower-case glob on ml.DeviceInfo.Compute.
	Compute string

	// Archs are lower-case globs on GGUF general.architecture; nil means all.
	Archs []string

	// Capabilities are model capabilities the entry needs; nil means any.
	Capabilities []string

	// Action is BackendDenyUseOtherLibrary or BackendDenyQueues1.
	Action string
}

// BackendDenyCapabilities are the model capabilities an entry may name.
var BackendDenyCapabilities = []string{"vision"}

// String formats the entry in normalized ParseBackendDenylist syntax.
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

// BackendDenylist is a parsed OLLAMA_BACKEND_DENYLIST value; zero means unset.
type BackendDenylist struct {
	// DropBuiltins is set by the word none.
	DropBuiltins bool

	// Entries are the user's entries in the order given.
	Entries []BackendDenyEntry
}

// String formats the denylist so that parsing it gives back an equal value.
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

// ParseBackendDenylist parses an OLLAMA_BACKEND_DENYLIST value: entries
// separated by whitespace or ';', each of the form
//
//	library:compute[:arch[,arch...][:vision]][=queues1]
//
// where compute and arch are globs. The word none drops the built-in quirk
// table. On error the zero value is returned, so that a caller that goes on
// keeps the built-in table rather than half of what the user wrote.
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

// parseBackendDenyEntry parses one entry; the caller names it in errors.
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

// CanonicalLibraryName maps a user's library name to ml.DeviceInfo.Library.
func CanonicalLibraryName(s string) (string, bool) {
	if l, ok := backends.Lookup(s); ok {
		return l.Device, true
	}
	return "", false
}

func checkDenyPattern(p string) error {
	for i := range len(p) {
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

// checkDenyComputeShape catches compute strings that could never match.
func checkDenyComputeShape(lib, compute string) error {
	switch lib {
	case "ROCm":
		if !strings.HasPrefix(compute, "gfx") && !isDenyMatchAll(compute) {
			return errors.New(`ROCm compute is a gfx name such as "gfx1200" or "gfx120*", or "*"`)
		}
	case "CUDA":
		for i := range len(compute) {
			if strings.IndexByte("0123456789.*?[]-^", compute[i]) < 0 {
				return errors.New(`CUDA compute is major.minor such as "9.0" or "12.*", or "*"`)
			}
		}
	}
	// Upstream reports "0.0" for every Vulkan device, so only "*" matches there.
	return nil
}

func isDenyMatchAll(p string) bool {
	return p != "" && strings.Trim(p, "*") == ""
}

// BackendDenylistFromEnv reads and parses OLLAMA_BACKEND_DENYLIST.
func BackendDenylistFromEnv() (BackendDenylist, error) {
	return ParseBackendDenylist(strings.Trim(strings.TrimSpace(os.Getenv("OLLAMA_BACKEND_DENYLIST")), "\"'"))
}

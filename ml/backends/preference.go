package backends

import (
	"fmt"
	"slices"
	"strings"
)

var acceptedNames = func() []string {
	names := []string{"cpu"}
	for _, l := range gpus {
		names = append(append(names, l.Name), l.Folders...)
	}
	return append(names, "rpc")
}()

// Preference is OLLAMA_LLM_LIBRARY parsed; the zero value means not set.
type Preference struct {
	names []string // canonical lower-case names from acceptedNames
	mlx   string   // an MLX runner variant (mlx_*), given alone
}

// mlxVariantPrefix starts values that the MLX runner (v0.20.4+) reads as its
// library subfolder; they are no GGML preference.
const mlxVariantPrefix = "mlx_"

func isMLXVariant(name string) bool {
	rest, ok := strings.CutPrefix(name, mlxVariantPrefix)
	if !ok || rest == "" {
		return false
	}
	for _, r := range rest {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '_' {
			return false
		}
	}
	return true
}

// ParsePreference parses OLLAMA_LLM_LIBRARY or the per-model library option.
// CPU variants such as cpu_avx2 mean the CPU: ggml picks its variant itself.
func ParsePreference(value string) (Preference, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return Preference{}, nil
	}
	if name := strings.ToLower(value); isMLXVariant(name) {
		return Preference{mlx: name}, nil
	}
	accepted := "one of " + strings.Join(acceptedNames, ", ") + ", or a comma-separated list of them"
	var p Preference
	for _, item := range strings.Split(value, ",") {
		name := strings.ToLower(strings.TrimSpace(item))
		if isCPUVariant(name) {
			name = "cpu"
		}
		switch {
		case isMLXVariant(name):
			return Preference{}, fmt.Errorf("the MLX runner variant %q must be the only value; accepted: %s, or one mlx_<variant>", name, accepted)
		case name == "":
			return Preference{}, fmt.Errorf("empty item; accepted: %s", accepted)
		case !isAcceptedName(name) && olderFolder(name) != "":
			return Preference{}, fmt.Errorf("%q is a library folder of older Ollama releases, not of this one; use %q (accepted: %s)", strings.TrimSpace(item), olderFolder(name), accepted)
		case !isAcceptedName(name):
			return Preference{}, fmt.Errorf("%q is not a library name; accepted: %s", strings.TrimSpace(item), accepted)
		}
		if !p.Names(name) {
			p.names = append(p.names, name)
		}
	}
	return p, nil
}

// AcceptedNames lists the library names a preference takes.
func AcceptedNames() []string { return slices.Clone(acceptedNames) }

// olderFolders are shown in upstream's docs but no longer shipped.
var olderFolders = []string{"cuda_v11", "rocm_v5", "rocm_v6"}

func olderFolder(name string) string {
	if !slices.Contains(olderFolders, name) {
		return ""
	}
	for _, l := range gpus {
		if strings.HasPrefix(name, l.FolderPrefix) {
			return l.Name
		}
	}
	return ""
}

func isAcceptedName(name string) bool {
	for _, n := range acceptedNames {
		if n == name {
			return true
		}
	}
	return false
}

// MLXVariant is the MLX runner variant named, or "".
func (p Preference) MLXVariant() string { return p.mlx }

// IsSet reports whether the user asked for specific GGML libraries.
func (p Preference) IsSet() bool { return len(p.names) > 0 }

// Names reports whether name was listed; for "cuda", any cuda_vNN counts.
func (p Preference) Names(name string) bool {
	for _, n := range p.names {
		if n == name || (name == "cuda" && strings.HasPrefix(n, "cuda_")) {
			return true
		}
	}
	return false
}

// String gives the canonical form, e.g. "vulkan,cpu".
func (p Preference) String() string { return strings.Join(p.names, ",") }

// Rank is library's index in the user's list, or false if it is not listed.
func (p Preference) Rank(library, libDir string) (int, bool) {
	for i, n := range p.names {
		if NameMatches(n, library, libDir) {
			return i, true
		}
	}
	return 0, false
}

// NameMatches reports whether a canonical name selects library, loaded from libDir.
func NameMatches(name, library, libDir string) bool {
	if strings.EqualFold(library, "cpu") || strings.EqualFold(library, RPC) {
		return name == strings.ToLower(library)
	}
	l, ok := Lookup(library)
	switch {
	case !ok:
		return false
	case name == l.Name:
		return true
	case !slices.Contains(l.Folders, name):
		return false
	}
	base := strings.ToLower(libDir)
	if i := strings.LastIndexAny(base, `/\`); i >= 0 {
		base = base[i+1:]
	}
	// A library outside its versioned folders is the flat layout's only one.
	return base == name || !strings.HasPrefix(base, l.FolderPrefix)
}

// WantsLibraryDir reports whether a lib/ollama subfolder holds a requested library.
func (p Preference) WantsLibraryDir(dir string) bool {
	if !p.IsSet() {
		return true
	}
	dir = strings.ToLower(dir)
	for _, n := range p.names {
		if n == dir {
			return true
		}
		if l, ok := Lookup(n); ok && strings.HasPrefix(dir, l.FolderPrefix) {
			return true
		}
	}
	return false
}

var defaultLibraryOrder = func() []string {
	var order []string
	for _, l := range gpus {
		order = append(order, l.Device)
	}
	return order
}()

// DefaultOrder describes the built-in order for explanations.
func DefaultOrder() string { return strings.Join(defaultLibraryOrder, " > ") }

// Option is one library that can drive a device.
type Option struct {
	Library     string
	LibraryPath []string
}

// Prefer reports whether library a beats b for one device, and why.
func (pref Preference) Prefer(a, b Option) (bool, string) {
	if pref.IsSet() {
		ra, oka := pref.Rank(a.Library, a.libraryDir())
		rb, okb := pref.Rank(b.Library, b.libraryDir())
		switch {
		case oka && okb && ra != rb:
			winner := a.Library
			if rb < ra {
				winner = b.Library
			}
			return ra < rb, fmt.Sprintf("OLLAMA_LLM_LIBRARY=%s lists %s first", pref, winner)
		case oka && !okb:
			return true, fmt.Sprintf("OLLAMA_LLM_LIBRARY=%s does not request %s", pref, b.Library)
		case !oka && okb:
			return false, fmt.Sprintf("OLLAMA_LLM_LIBRARY=%s does not request %s", pref, a.Library)
		}
	}
	ra, rb := defaultLibraryRank(a.Library), defaultLibraryRank(b.Library)
	if ra == rb {
		// Keep the first one found, as upstream's dedup does.
		return true, "found first"
	}
	return ra < rb, "default order " + DefaultOrder()
}

func defaultLibraryRank(library string) int {
	for i, l := range defaultLibraryOrder {
		if strings.EqualFold(l, library) {
			return i
		}
	}
	return len(defaultLibraryOrder)
}

// libraryDir is the last entry of the path; the first is lib/ollama.
func (o Option) libraryDir() string {
	if len(o.LibraryPath) == 0 {
		return ""
	}
	return o.LibraryPath[len(o.LibraryPath)-1]
}

// LibraryNames lists the requested names, most preferred first.
func (p Preference) LibraryNames() []string { return append([]string(nil), p.names...) }

func isCPUVariant(name string) bool {
	rest, ok := strings.CutPrefix(name, "cpu_")
	if !ok || rest == "" {
		return false
	}
	return !strings.ContainsFunc(rest, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') })
}

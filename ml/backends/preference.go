package backends

import (
	"fmt"
	"slices"
	"strings"
)

// acceptedNames are the values OLLAMA_LLM_LIBRARY accepts, in the order
// they are listed to users. "cuda" stands for any CUDA library folder
// (cuda_v12, cuda_v13, cuda_jetpack5, ...); the others name one library.
var acceptedNames = func() []string {
	names := []string{"cpu"}
	for _, l := range gpus {
		names = append(append(names, l.Name), l.Folders...)
	}
	return names
}()

// Preference is OLLAMA_LLM_LIBRARY parsed: the backend libraries the
// user asked for, most preferred first. The zero value means "not set":
// every installed library may be used, in the built-in order.
type Preference struct {
	names []string // canonical lower-case names from acceptedNames
	mlx   string   // an MLX runner variant (mlx_*), given alone
}

// mlxVariantPrefix starts the OLLAMA_LLM_LIBRARY values that Ollama's MLX
// runner (v0.20.4 and later) reads as the name of its library subfolder,
// e.g. mlx_metal_v3. GGML's discovery leaves such values alone, so they are
// no GGML preference.
const mlxVariantPrefix = "mlx_"

// isMLXVariant accepts mlx_ followed by lower-case letters, digits and
// underscores: a folder name, never a path.
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

// ParsePreference parses the grammar OLLAMA_LLM_LIBRARY and the per-model
// `library` option share: one library name or a comma-separated list, most
// preferred first, case-insensitive; "" is not set. Upstream's documented
// CPU variants (cpu_avx2) are the CPU: ggml picks its CPU variant itself.
// Its errors name the item and the accepted names; the caller names the
// setting. The value is never used to build a path.
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

// AcceptedNames lists the library names a preference takes, in the order
// they are listed to users.
func AcceptedNames() []string { return slices.Clone(acceptedNames) }

// olderFolders are folder names upstream's docs still show
// (troubleshooting.mdx) that this Ollama does not ship.
var olderFolders = []string{"cuda_v11", "rocm_v5", "rocm_v6"}

// olderFolder is the library name to use instead of a folder of older
// releases ("cuda_v11" -> "cuda"), or "".
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

// MLXVariant is the MLX runner variant the value named (mlx_metal_v3, ...),
// or "". It leaves the GGML libraries to the default order: IsSet is false.
func (p Preference) MLXVariant() string { return p.mlx }

// IsSet reports whether the user asked for specific GGML libraries.
func (p Preference) IsSet() bool { return len(p.names) > 0 }

// Names reports whether name (a canonical OLLAMA_LLM_LIBRARY name) was
// listed. With "cuda", a listed cuda_vNN counts too.
func (p Preference) Names(name string) bool {
	for _, n := range p.names {
		if n == name || (name == "cuda" && strings.HasPrefix(n, "cuda_")) {
			return true
		}
	}
	return false
}

// String gives the canonical form, e.g. "vulkan,cpu"; "" when not set.
func (p Preference) String() string { return strings.Join(p.names, ",") }

// Rank places a backend library in the user's list: its index (0 is most
// preferred) and true, or false when the user did not ask for it. library is
// ml.DeviceInfo.Library ("CUDA", "ROCm", "Vulkan", ...); libDir is the folder
// it was loaded from, whose base name tells CUDA versions apart in the
// subfolder layout. In the flat layout there is one CUDA library, which any
// cuda or cuda_vNN item selects.
func (p Preference) Rank(library, libDir string) (int, bool) {
	for i, n := range p.names {
		if NameMatches(n, library, libDir) {
			return i, true
		}
	}
	return 0, false
}

// NameMatches reports whether the OLLAMA_LLM_LIBRARY name (canonical,
// e.g. "cuda_v13") selects a library as ml.DeviceInfo names it, loaded from
// libDir; see Rank.
func NameMatches(name, library, libDir string) bool {
	if strings.EqualFold(library, "cpu") {
		return name == "cpu"
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

// WantsLibraryDir reports whether a subfolder of lib/ollama (its base name,
// e.g. "rocm_v7_2", "cuda_v13", "vulkan") holds a library the user asked for.
// Folders that hold no known library are only loaded when not set.
func (p Preference) WantsLibraryDir(dir string) bool {
	if !p.IsSet() {
		return true
	}
	dir = strings.ToLower(dir)
	for _, n := range p.names {
		if n == dir {
			return true
		}
		// "cuda" is any cuda_* folder, "rocm" any rocm_v7_* folder.
		if l, ok := Lookup(n); ok && strings.HasPrefix(dir, l.FolderPrefix) {
			return true
		}
	}
	return false
}

// defaultLibraryOrder ranks the libraries of one physical device when the
// user has not set OLLAMA_LLM_LIBRARY: vendor libraries first, then Vulkan,
// as upstream has always done.
var defaultLibraryOrder = func() []string {
	var order []string
	for _, l := range gpus {
		order = append(order, l.Device)
	}
	return order
}()

// DefaultOrder describes the built-in order for explanations.
func DefaultOrder() string { return strings.Join(defaultLibraryOrder, " > ") }

// Option is one library that can drive a device, as the preference sees
// it: ml.DeviceInfo's Library and LibraryPath.
type Option struct {
	Library     string
	LibraryPath []string
}

// Prefer reports whether library a is preferred over library b for
// the same physical device, and why, in a few words for logs and listings.
// The user's OLLAMA_LLM_LIBRARY list decides first; a library it does not
// name loses to one it names. Otherwise the built-in order decides. It is
// the one policy of ranking.
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
		// Same rank: keep the first one found, as upstream's dedup does.
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

// libraryDir is the folder the library itself was loaded from: the last
// entry of the path (the first is lib/ollama in every layout).
func (o Option) libraryDir() string {
	if len(o.LibraryPath) == 0 {
		return ""
	}
	return o.LibraryPath[len(o.LibraryPath)-1]
}

// LibraryNames lists the requested names, most preferred first.
func (p Preference) LibraryNames() []string { return append([]string(nil), p.names...) }

// isCPUVariant accepts upstream's documented CPU folder names (cpu_avx,
// cpu_avx2): cpu_ and lower-case letters or digits.
func isCPUVariant(name string) bool {
	rest, ok := strings.CutPrefix(name, "cpu_")
	if !ok || rest == "" {
		return false
	}
	return !strings.ContainsFunc(rest, func(r rune) bool { return (r < 'a' || r > 'z') && (r < '0' || r > '9') })
}

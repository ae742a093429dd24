package envconfig

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
)

// llmLibraryNames are the values OLLAMA_LLM_LIBRARY accepts, in the order
// they are listed to users. "cuda" stands for any CUDA library folder
// (cuda_v12, cuda_v13, cuda_jetpack5, ...); the others name one library.
var llmLibraryNames = func() []string {
	names := []string{"cpu"}
	for _, l := range gpuLibraries {
		names = append(append(names, l.Name), l.Folders...)
	}
	return names
}()

// LibraryPreference is OLLAMA_LLM_LIBRARY parsed: the backend libraries the
// user asked for, most preferred first. The zero value means "not set":
// every installed library may be used, in the built-in order.
type LibraryPreference struct {
	names []string // canonical lower-case names from llmLibraryNames
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

// ParseLLMLibrary parses OLLAMA_LLM_LIBRARY: one library name or a
// comma-separated preference list, case-insensitive, e.g. "vulkan" or
// "vulkan,cpu". An empty value means not set. Anything that is not a library
// name (a typo, a path, an empty item) is an error naming the item; the value
// is never used to build a path. One mlx_<variant> value alone (Ollama's MLX
// runner reads it) is accepted as no GGML preference: see MLXVariant.
func ParseLLMLibrary(value string) (LibraryPreference, error) {
	p, err := parseLibraryList(value)
	if err != nil {
		return LibraryPreference{}, fmt.Errorf("OLLAMA_LLM_LIBRARY=%q: %w", strings.TrimSpace(value), err)
	}
	return p, nil
}

// parseLibraryList parses the grammar OLLAMA_LLM_LIBRARY and the per-model
// `library` option share; its errors name the item and the accepted names,
// the caller names the setting.
func parseLibraryList(value string) (LibraryPreference, error) {
	value = strings.TrimSpace(value)
	if value == "" {
		return LibraryPreference{}, nil
	}
	if name := strings.ToLower(value); isMLXVariant(name) {
		return LibraryPreference{mlx: name}, nil
	}
	accepted := "one of " + strings.Join(llmLibraryNames, ", ") + ", or a comma-separated list of them"
	var p LibraryPreference
	for _, item := range strings.Split(value, ",") {
		name := strings.ToLower(strings.TrimSpace(item))
		switch {
		case isMLXVariant(name):
			return LibraryPreference{}, fmt.Errorf("the MLX runner variant %q must be the only value; accepted: %s, or one mlx_<variant>", name, accepted)
		case name == "":
			return LibraryPreference{}, fmt.Errorf("empty item; accepted: %s", accepted)
		case !isLLMLibraryName(name):
			return LibraryPreference{}, fmt.Errorf("%q is not a library name; accepted: %s", strings.TrimSpace(item), accepted)
		}
		if !p.Names(name) {
			p.names = append(p.names, name)
		}
	}
	return p, nil
}

func isLLMLibraryName(name string) bool {
	for _, n := range llmLibraryNames {
		if n == name {
			return true
		}
	}
	return false
}

// MLXVariant is the MLX runner variant the value named (mlx_metal_v3, ...),
// or "". It leaves the GGML libraries to the default order: IsSet is false.
func (p LibraryPreference) MLXVariant() string { return p.mlx }

// IsSet reports whether the user asked for specific GGML libraries.
func (p LibraryPreference) IsSet() bool { return len(p.names) > 0 }

// Names reports whether name (a canonical OLLAMA_LLM_LIBRARY name) was
// listed. With "cuda", a listed cuda_vNN counts too.
func (p LibraryPreference) Names(name string) bool {
	for _, n := range p.names {
		if n == name || (name == "cuda" && strings.HasPrefix(n, "cuda_")) {
			return true
		}
	}
	return false
}

// String gives the canonical form, e.g. "vulkan,cpu"; "" when not set.
func (p LibraryPreference) String() string { return strings.Join(p.names, ",") }

// Rank places a backend library in the user's list: its index (0 is most
// preferred) and true, or false when the user did not ask for it. library is
// ml.DeviceInfo.Library ("CUDA", "ROCm", "Vulkan", ...); libDir is the folder
// it was loaded from, whose base name tells CUDA versions apart in the
// subfolder layout. In the flat layout there is one CUDA library, which any
// cuda or cuda_vNN item selects.
func (p LibraryPreference) Rank(library, libDir string) (int, bool) {
	for i, n := range p.names {
		if LibraryNameMatches(n, library, libDir) {
			return i, true
		}
	}
	return 0, false
}

// LibraryNameMatches reports whether the OLLAMA_LLM_LIBRARY name (canonical,
// e.g. "cuda_v13") selects a library as ml.DeviceInfo names it, loaded from
// libDir; see Rank.
func LibraryNameMatches(name, library, libDir string) bool {
	if strings.EqualFold(library, "cpu") {
		return name == "cpu"
	}
	l, ok := LookupGPULibrary(library)
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
func (p LibraryPreference) WantsLibraryDir(dir string) bool {
	if !p.IsSet() {
		return true
	}
	dir = strings.ToLower(dir)
	for _, n := range p.names {
		if n == dir {
			return true
		}
		// "cuda" is any cuda_* folder, "rocm" any rocm_v7_* folder.
		if l, ok := LookupGPULibrary(n); ok && strings.HasPrefix(dir, l.FolderPrefix) {
			return true
		}
	}
	return false
}

// LLMLibraryPreference reads OLLAMA_LLM_LIBRARY from the environment. A value
// that does not parse counts as not set here; `ollama serve` refuses to start
// with such a value (CheckLLMLibrary), so this only matters to other callers.
func LLMLibraryPreference() LibraryPreference {
	p, _ := ParseLLMLibrary(llmLibraryValue())
	return p
}

// CheckLLMLibrary validates OLLAMA_LLM_LIBRARY for the server's start.
func CheckLLMLibrary() error {
	p, err := ParseLLMLibrary(llmLibraryValue())
	if err == nil && p.MLXVariant() != "" {
		// Said once at start: the value is not a GGML library name.
		slog.Info("OLLAMA_LLM_LIBRARY names an MLX runner variant: it picks the MLX runner's library where this Ollama has one; GGML libraries are chosen in the default order", "variant", p.MLXVariant())
	}
	return err
}

// llmLibraryValue reads the variable the way upstream reads every
// OLLAMA_* value: surrounding spaces and quotes do not count.
func llmLibraryValue() string {
	return strings.Trim(strings.TrimSpace(os.Getenv("OLLAMA_LLM_LIBRARY")), "\"'")
}

// defaultLibraryOrder ranks the libraries of one physical device when the
// user has not set OLLAMA_LLM_LIBRARY: vendor libraries first, then Vulkan,
// as upstream has always done.
var defaultLibraryOrder = func() []string {
	var order []string
	for _, l := range gpuLibraries {
		order = append(order, l.Device)
	}
	return order
}()

// DefaultLibraryOrder describes the built-in order for explanations.
func DefaultLibraryOrder() string { return strings.Join(defaultLibraryOrder, " > ") }

// LibraryOption is one library that can drive a device, as the preference
// sees it: ml.DeviceInfo's Library and LibraryPath. (envconfig cannot import
// ml, which would be a cycle.)
type LibraryOption struct {
	Library     string
	LibraryPath []string
}

// Prefer reports whether library a is preferred over library b for
// the same physical device, and why, in a few words for logs and listings.
// The user's OLLAMA_LLM_LIBRARY list decides first; a library it does not
// name loses to one it names. Otherwise the built-in order decides. It is
// the one policy: DeviceInfo.PreferredLibrary and discovery's dedup call it.
func (pref LibraryPreference) Prefer(a, b LibraryOption) (bool, string) {
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
	return ra < rb, "default order " + DefaultLibraryOrder()
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
func (o LibraryOption) libraryDir() string {
	if len(o.LibraryPath) == 0 {
		return ""
	}
	return o.LibraryPath[len(o.LibraryPath)-1]
}

// LibraryNames lists the requested names, most preferred first.
func (p LibraryPreference) LibraryNames() []string { return append([]string(nil), p.names...) }

// CheckBackendSelection validates every variable of backend selection
// (OLLAMA_LLM_LIBRARY, OLLAMA_BACKEND_DENYLIST, OLLAMA_BACKEND_QUIRKS_RESET)
// for the server's start; the first bad one is returned.
func CheckBackendSelection() error {
	if err := CheckLLMLibrary(); err != nil {
		return err
	}
	if _, err := BackendDenylistFromEnv(); err != nil {
		return err
	}
	_, err := ParseBackendQuirksReset(os.Getenv(BackendQuirksResetEnv))
	return err
}

package backends

import "strings"

// GPU is one GPU backend library, as every part of the fork names it.
type GPU struct {
	// Device is ml.DeviceInfo.Library: "CUDA", "ROCm", "Vulkan".
	Device string
	// Name is the OLLAMA_LLM_LIBRARY and OLLAMA_BACKEND_DENYLIST name.
	Name string
	// Folders are OLLAMA_LLM_LIBRARY names of single lib/ollama subfolders
	// of the library (cuda_v13): one CUDA version among several.
	Folders []string
	// Spellings are other names accepted for it in OLLAMA_BACKEND_DENYLIST.
	Spellings []string
	// FolderPrefix starts the lib/ollama subfolders that hold it
	// (cuda_v12, cuda_v13, rocm_v7_2, vulkan).
	FolderPrefix string
	// Stem is the ggml backend name, the NAME of libggml-NAME.so.
	Stem string
	// Visible is the variable that lists the devices a process may use, as
	// upstream's ml.GetDevicesEnv sets it on Linux.
	Visible string
	// Hide is the environment that keeps every device of the library from a
	// process that loads its backend. HIP also reads CUDA_VISIBLE_DEVICES,
	// so CUDA is hidden through it only where ROCm is hidden too
	// (HideEnv).
	Hide map[string]string
}

// gpus is the one table of GPU libraries.
var gpus = []GPU{
	{Device: "CUDA", Name: "cuda", Folders: []string{"cuda_v12", "cuda_v13", "cuda_jetpack5", "cuda_jetpack6"}, FolderPrefix: "cuda_", Stem: "cuda", Visible: "CUDA_VISIBLE_DEVICES",
		Hide: map[string]string{"CUDA_VISIBLE_DEVICES": "-1"}},
	{Device: "ROCm", Name: "rocm", Folders: []string{"rocm_v7_1", "rocm_v7_2"}, Spellings: []string{"hip"}, FolderPrefix: "rocm", Stem: "hip", Visible: "ROCR_VISIBLE_DEVICES",
		Hide: map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"}},
	// ggml's Vulkan backend reads the variable as a list of indexes: an
	// empty list is no device.
	{Device: "Vulkan", Name: "vulkan", FolderPrefix: "vulkan", Stem: "vulkan", Visible: "GGML_VK_VISIBLE_DEVICES",
		Hide: map[string]string{"GGML_VK_VISIBLE_DEVICES": ""}},
}

// GPUs lists the GPU libraries in the built-in order of preference
// (upstream's: vendor libraries first, then Vulkan).
func GPUs() []GPU { return append([]GPU(nil), gpus...) }

// Lookup finds a library by any of its names (device name,
// OLLAMA_LLM_LIBRARY name, spelling or ggml stem), case-insensitive.
func Lookup(s string) (GPU, bool) {
	s = strings.ToLower(s)
	for _, l := range gpus {
		if s == strings.ToLower(l.Device) || s == l.Name || s == l.Stem {
			return l, true
		}
		for _, sp := range l.Spellings {
			if s == sp {
				return l, true
			}
		}
	}
	return GPU{}, false
}

// HideEnv is the environment that hides every device of the libraries
// whose Device names are in hidden from a llama-server, so that it neither
// offloads to them nor initialises them (the seed report's users did this
// by hand for ROCm). shown are the libraries the process does use: CUDA
// is not hidden through CUDA_VISIBLE_DEVICES while ROCm is shown, since
// HIP would read it too.
func HideEnv(hidden, shown []string) map[string]string {
	env := map[string]string{}
	rocmShown := false
	for _, s := range shown {
		if strings.EqualFold(s, "ROCm") {
			rocmShown = true
		}
	}
	for _, h := range hidden {
		l, ok := Lookup(h)
		if !ok || (l.Device == "CUDA" && rocmShown) {
			continue
		}
		for k, v := range l.Hide {
			env[k] = v
		}
	}
	return env
}

// Same compares two library names by the library they name ("hip" and
// "ROCm" are one), case-insensitively; unknown names compare as text.
func Same(a, b string) bool {
	if l, ok := Lookup(a); ok {
		a = l.Device
	}
	if l, ok := Lookup(b); ok {
		b = l.Device
	}
	return strings.EqualFold(a, b)
}

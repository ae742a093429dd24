package backends

import "strings"

// GPU is one GPU backend library and the names it goes by.
type GPU struct {
	// Device is ml.DeviceInfo.Library.
	Device string
	// Name is the OLLAMA_LLM_LIBRARY and OLLAMA_BACKEND_DENYLIST name.
	Name string
	// Folders are the single-version subfolders a user may name (cuda_v13).
	Folders []string
	// Spellings are other names OLLAMA_BACKEND_DENYLIST accepts.
	Spellings []string
	// FolderPrefix starts the lib/ollama subfolders that hold the library.
	FolderPrefix string
	// Stem is NAME in libggml-NAME.so.
	Stem string
	// Visible lists the devices a process may use, as ml.GetDevicesEnv sets it.
	Visible string
	// Hide keeps every device of the library from a process; see HideEnv.
	Hide map[string]string
}

var gpus = []GPU{
	{
		Device: "CUDA", Name: "cuda", Folders: []string{"cuda_v12", "cuda_v13", "cuda_jetpack5", "cuda_jetpack6"}, FolderPrefix: "cuda_", Stem: "cuda", Visible: "CUDA_VISIBLE_DEVICES",
		Hide: map[string]string{"CUDA_VISIBLE_DEVICES": "-1"},
	},
	{
		Device: "ROCm", Name: "rocm", Folders: []string{"rocm_v7_1", "rocm_v7_2"}, Spellings: []string{"hip"}, FolderPrefix: "rocm", Stem: "hip", Visible: "ROCR_VISIBLE_DEVICES",
		Hide: map[string]string{"ROCR_VISIBLE_DEVICES": "-1", "HIP_VISIBLE_DEVICES": "-1"},
	},
	// ggml's Vulkan backend reads an empty index list as no device.
	{
		Device: "Vulkan", Name: "vulkan", FolderPrefix: "vulkan", Stem: "vulkan", Visible: "GGML_VK_VISIBLE_DEVICES",
		Hide: map[string]string{"GGML_VK_VISIBLE_DEVICES": ""},
	},
}

// RPC is the library of the devices of remote ggml RPC servers, which
// llama-server registers for --rpc; it is no local GPU library.
const RPC = "RPC"

// GPUs lists the GPU libraries in the built-in order of preference.
func GPUs() []GPU { return append([]GPU(nil), gpus...) }

// Lookup finds a library by any of its names, case-insensitive.
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

// HideEnv hides the devices of the hidden libraries from a llama-server. HIP
// also reads CUDA_VISIBLE_DEVICES, so CUDA is not hidden while ROCm is shown.
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

// Same reports whether two names denote one library ("hip" and "ROCm").
func Same(a, b string) bool {
	if l, ok := Lookup(a); ok {
		a = l.Device
	}
	if l, ok := Lookup(b); ok {
		b = l.Device
	}
	return strings.EqualFold(a, b)
}

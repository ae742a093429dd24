package tinymodel

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/fs/gguf"
)

// isOllamaProjector mirrors isProjectorGGUF in upstream's server/create.go
// (v0.34.4), which decides whether `ollama create` files a GGUF as an
// application/vnd.ollama.image.projector layer.
func isOllamaProjector(md *gguf.Metadata) bool {
	switch md.Kind() {
	case "projector", "mmproj":
		return true
	}
	if md.BlockCount() == 0 && md.Uint("vision.block_count") > 0 {
		return true
	}
	return md.Architecture() == "clip" && md.BlockCount() == 0 &&
		(md.Bool("has_vision_encoder") || md.Bool("has_audio_encoder"))
}

func TestProjectorRoundTrip(t *testing.T) {
	custom := Projector{
		Name: "p", ProjectionDim: 96, ImageSize: 48, PatchSize: 16, HiddenSize: 24,
		Layers: 1, Heads: 3, FFNSize: 40, F16: true, Seed: 3,
	}
	tests := []struct {
		name        string
		p           Projector
		wantKV      map[string]any
		wantTensors map[string][]uint64
		wantTypes   map[string]TensorType
	}{
		{
			name: "qwen3 companion",
			p:    Tiny("qwen3").Projector(),
			wantKV: map[string]any{
				"general.architecture":         "clip",
				"general.type":                 "mmproj",
				"general.name":                 "tiny-qwen3-mmproj",
				"clip.projector_type":          "mlp",
				"clip.has_vision_encoder":      true,
				"clip.vision.projection_dim":   uint32(64),
				"clip.vision.image_size":       uint32(32),
				"clip.vision.patch_size":       uint32(8),
				"clip.vision.block_count":      uint32(2),
				"clip.vision.embedding_length": uint32(32),
			},
			wantTensors: map[string][]uint64{
				"v.patch_embd.weight":     {8, 8, 3, 32},
				"v.position_embd.weight":  {32, 17},
				"v.class_embd":            {32},
				"v.blk.1.ffn_up.weight":   {32, 64},
				"v.blk.1.ffn_down.weight": {64, 32},
				"mm.0.weight":             {32, 64},
				"mm.2.weight":             {64, 64},
				"mm.2.bias":               {64},
			},
			wantTypes: map[string]TensorType{"mm.2.weight": TensorTypeF32, "v.patch_embd.weight": TensorTypeF32},
		},
		{
			name: "custom F16",
			p:    custom,
			wantKV: map[string]any{
				"general.file_type":                uint32(FileTypeF16),
				"clip.vision.projection_dim":       uint32(96),
				"clip.vision.attention.head_count": uint32(3),
			},
			wantTensors: map[string][]uint64{
				"v.patch_embd.weight":    {16, 16, 3, 24},
				"v.position_embd.weight": {24, 10},
				"mm.2.weight":            {96, 96},
			},
			wantTypes: map[string]TensorType{"mm.2.weight": TensorTypeF16, "v.patch_embd.weight": TensorTypeF16, "mm.2.bias": TensorTypeF32},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mmproj.gguf")
			if err := WriteProjector(path, tt.p); err != nil {
				t.Fatal(err)
			}
			kv, infos, _ := readGGUF(t, path)
			if diff := cmp.Diff(tt.p.KV(), kv); diff != "" {
				t.Errorf("KV mismatch (-written +read):\n%s", diff)
			}
			if diff := cmp.Diff(infosOf(tt.p.Tensors()), infos); diff != "" {
				t.Errorf("tensors mismatch (-want +read):\n%s", diff)
			}
			for k, want := range tt.wantKV {
				if diff := cmp.Diff(want, kv[k]); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			byName := map[string]tensorInfo{}
			for _, ti := range infos {
				byName[ti.Name] = ti
			}
			for name, shape := range tt.wantTensors {
				if diff := cmp.Diff(shape, byName[name].Shape); diff != "" {
					t.Errorf("%s shape (-want +got):\n%s", name, diff)
				}
			}
			for name, typ := range tt.wantTypes {
				if byName[name].Type != typ {
					t.Errorf("%s type %v, want %v", name, byName[name].Type, typ)
				}
			}

			md, err := gguf.ReadFileMetadata(path, 1) // what `ollama create` reads
			if err != nil {
				t.Fatal(err)
			}
			if !isOllamaProjector(md) {
				t.Error("ollama create would not file this GGUF as a projector")
			}
			if md.BlockCount() != 0 {
				t.Errorf("clip.block_count = %d; a projector must not look like a text model", md.BlockCount())
			}
			if md.ParameterCount() != kv["general.parameter_count"] {
				t.Errorf("parameter count %d, KV %v", md.ParameterCount(), kv["general.parameter_count"])
			}
		})
	}
}

func TestProjectorValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Projector
		want string
	}{
		{"companion", Tiny("qwen2").Projector(), ""},
		{"no projection dim", Projector{}, "ProjectionDim"},
		{"patch size", Projector{ProjectionDim: 8, ImageSize: 30, PatchSize: 8}, "multiple of the patch size"},
		{"heads", Projector{ProjectionDim: 8, HiddenSize: 30, Heads: 4}, "multiple of heads"},
		{"ffn = hidden", Projector{ProjectionDim: 8, HiddenSize: 32, FFNSize: 32}, "FFN size must differ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
	if err := WriteProjector(filepath.Join(t.TempDir(), "x"), Projector{}); err == nil {
		t.Error("WriteProjector accepted an invalid projector")
	}
}

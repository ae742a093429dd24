package tinymodel

import (
	"cmp"
	"fmt"
)

// Projector describes a vision projector ("mmproj") GGUF file in
// llama.cpp's CLIP format: general.architecture "clip", general.type
// "mmproj", clip.* keys, a LLaVA-1.5 style ViT (v.* tensors) and the
// two-layer "mlp" projector (mm.0, mm.2) that maps image patches into the
// text model's embedding space. Ollama's `ollama create` files such a GGUF
// (a second FROM line) as an application/vnd.ollama.image.projector layer
// and hands it to llama-server as --mmproj.
//
// Weights are random (uniform, variance 1/fan_in; norms 1, biases 0); the
// projector only has to load and run, not to see.
type Projector struct {
	Name string // general.name

	// ProjectionDim is the text model's embedding length (clip.vision.
	// projection_dim, the rows of mm.2.weight); llama.cpp refuses a
	// projector whose output size differs from the text model's.
	ProjectionDim int

	ImageSize  int // clip.vision.image_size; default 32
	PatchSize  int // clip.vision.patch_size; default 8
	HiddenSize int // ViT embedding_length; default 32
	Layers     int // ViT block_count; default 2 (LLaVA uses all but the last)
	Heads      int // ViT attention.head_count; default 2
	FFNSize    int // ViT feed_forward_length; default 64

	// F16 stores the 2-D matrices and the patch convolution as F16.
	F16 bool

	Seed uint64
}

// Projector returns a tiny projector that fits the text model c.
func (c Config) Projector() Projector {
	return Projector{
		Name:          cmp.Or(c.Name, "tiny-"+c.Arch) + "-mmproj",
		ProjectionDim: c.HiddenSize,
		Seed:          c.Seed,
	}
}

func (p Projector) withDefaults() Projector {
	p.ImageSize = cmp.Or(p.ImageSize, 32)
	p.PatchSize = cmp.Or(p.PatchSize, 8)
	p.HiddenSize = cmp.Or(p.HiddenSize, 32)
	p.Layers = cmp.Or(p.Layers, 2)
	p.Heads = cmp.Or(p.Heads, 2)
	p.FFNSize = cmp.Or(p.FFNSize, 64)
	return p
}

// Validate reports configuration errors.
func (p Projector) Validate() error {
	p = p.withDefaults()
	if p.ProjectionDim <= 0 {
		return fmt.Errorf("tinymodel: projector needs the text model's embedding length (ProjectionDim)")
	}
	if p.ImageSize <= 0 || p.PatchSize <= 0 || p.ImageSize%p.PatchSize != 0 {
		return fmt.Errorf("tinymodel: projector image size %d must be a positive multiple of the patch size %d", p.ImageSize, p.PatchSize)
	}
	if p.HiddenSize <= 0 || p.Layers <= 0 || p.Heads <= 0 || p.FFNSize <= 0 || p.HiddenSize%p.Heads != 0 {
		return fmt.Errorf("tinymodel: projector dimensions must be positive, hidden size a multiple of heads: %+v", p)
	}
	if p.FFNSize == p.HiddenSize {
		// llama.cpp swaps ffn_up/ffn_down of "mlp" projectors whose
		// ffn_down has ne[0] == hidden size (legacy files).
		return fmt.Errorf("tinymodel: projector FFN size must differ from the hidden size (%d)", p.HiddenSize)
	}
	return nil
}

// Patches is the number of image patches (and of image tokens the text
// model receives per image).
func (p Projector) Patches() int {
	p = p.withDefaults()
	n := p.ImageSize / p.PatchSize
	return n * n
}

// KV returns the GGUF metadata.
func (p Projector) KV() KV {
	p = p.withDefaults()
	fileType := FileTypeF32
	if p.F16 {
		fileType = FileTypeF16
	}
	return KV{
		"general.architecture":    "clip",
		"general.type":            "mmproj",
		"general.name":            cmp.Or(p.Name, "tiny-mmproj"),
		"general.file_type":       fileType,
		"general.alignment":       uint32(DefaultAlignment),
		"general.parameter_count": paramCount(p.specs()),

		"clip.has_vision_encoder": true,
		"clip.projector_type":     "mlp",
		"clip.use_gelu":           true,

		"clip.vision.image_size":                   uint32(p.ImageSize),
		"clip.vision.patch_size":                   uint32(p.PatchSize),
		"clip.vision.embedding_length":             uint32(p.HiddenSize),
		"clip.vision.feed_forward_length":          uint32(p.FFNSize),
		"clip.vision.block_count":                  uint32(p.Layers),
		"clip.vision.attention.head_count":         uint32(p.Heads),
		"clip.vision.attention.layer_norm_epsilon": float32(1e-5),
		"clip.vision.projection_dim":               uint32(p.ProjectionDim),
		"clip.vision.image_mean":                   []float32{0.48145466, 0.4578275, 0.40821073},
		"clip.vision.image_std":                    []float32{0.26862954, 0.26130258, 0.27577711},
	}
}

func (p Projector) specs() []tensorSpec {
	p = p.withDefaults()
	h := uint64(p.HiddenSize)
	ff := uint64(p.FFNSize)
	ps := uint64(p.PatchSize)
	out := uint64(p.ProjectionDim)
	w := p.F16

	s := []tensorSpec{
		{name: "v.class_embd", shape: []uint64{h}, kind: kindRandom},
		// conv2d kernel: [kernel w, kernel h, input channels, output channels]
		{name: "v.patch_embd.weight", shape: []uint64{ps, ps, 3, h}, kind: kindRandom, f16: w},
		{name: "v.patch_embd.bias", shape: []uint64{h}, kind: kindZeros},
		{name: "v.position_embd.weight", shape: []uint64{h, uint64(p.Patches()) + 1}, kind: kindRandom},
		{name: "v.pre_ln.weight", shape: []uint64{h}, kind: kindOnes},
		{name: "v.pre_ln.bias", shape: []uint64{h}, kind: kindZeros},
	}
	for i := range p.Layers {
		b := fmt.Sprintf("v.blk.%d.", i)
		for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_out"} {
			s = append(s,
				tensorSpec{name: b + n + ".weight", shape: []uint64{h, h}, kind: kindRandom, f16: w},
				tensorSpec{name: b + n + ".bias", shape: []uint64{h}, kind: kindZeros},
			)
		}
		s = append(s,
			tensorSpec{name: b + "ln1.weight", shape: []uint64{h}, kind: kindOnes},
			tensorSpec{name: b + "ln1.bias", shape: []uint64{h}, kind: kindZeros},
			tensorSpec{name: b + "ln2.weight", shape: []uint64{h}, kind: kindOnes},
			tensorSpec{name: b + "ln2.bias", shape: []uint64{h}, kind: kindZeros},
			tensorSpec{name: b + "ffn_up.weight", shape: []uint64{h, ff}, kind: kindRandom, f16: w},
			tensorSpec{name: b + "ffn_up.bias", shape: []uint64{ff}, kind: kindZeros},
			tensorSpec{name: b + "ffn_down.weight", shape: []uint64{ff, h}, kind: kindRandom, f16: w},
			tensorSpec{name: b + "ffn_down.bias", shape: []uint64{h}, kind: kindZeros},
		)
	}
	s = append(s,
		tensorSpec{name: "mm.0.weight", shape: []uint64{h, out}, kind: kindRandom, f16: w},
		tensorSpec{name: "mm.0.bias", shape: []uint64{out}, kind: kindZeros},
		tensorSpec{name: "mm.2.weight", shape: []uint64{out, out}, kind: kindRandom, f16: w},
		tensorSpec{name: "mm.2.bias", shape: []uint64{out}, kind: kindZeros},
	)
	return s
}

// TensorNames lists the tensors in the file (in file order).
func (p Projector) TensorNames() []string {
	var names []string
	for _, s := range p.specs() {
		names = append(names, s.name)
	}
	return names
}

// Tensors returns the tensors, each with a WriterTo that generates its data.
func (p Projector) Tensors() []*Tensor {
	g := &weightGen{seed: p.Seed, style: WeightsRandom}
	return g.tensors(p.specs())
}

// WriteProjector writes the projector to path.
func WriteProjector(path string, p Projector) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return writeFile(path, p.KV(), p.Tensors())
}

// Package tinymodel writes small (or, for benchmarks, large) GGUF language
// models with synthetic weights that Ollama and llama.cpp can load and run,
// and, optionally, a matching vision projector (mmproj) file.
//
// The files are written by the package's own GGUF v3 writer (WriteGGUF;
// upstream Ollama no longer ships one). Supported architectures are "qwen3"
// and "qwen2". The vocabulary is GPT-2 byte level: the 256 byte tokens plus
// three control tokens (<|endoftext|>, <|im_start|>, <|im_end|>), tokenizer
// model "gpt2", pre-tokenizer "qwen2", and an empty merge list, so every
// byte of a prompt becomes one token. Larger vocabularies (VocabSize) are
// padded with unused "<|extra_N|>" tokens so that benchmark models can have
// production-sized embedding matrices.
//
// Weights are deterministic pseudo-random numbers derived from Config.Seed
// and the tensor name, so the same Config always produces the same file.
// Norm weights are 1 and the embedding/output rows of control and padding
// tokens are zero, which keeps greedy decoding away from end-of-sequence
// tokens: a raw generate with num_predict=N yields N tokens.
//
// With the default WeightsCycle the output matrix is built from the
// embedding matrix so that the model predicts, after each printable ASCII
// byte, the next byte of a fixed seed-derived cycle through all 94
// printable non-space bytes (Config.Cycle); the attention and MLP blocks
// are random but scaled down so that they do not overturn that prediction.
// Generations therefore never repeat one token (Ollama aborts requests
// whose output repeats a token too often) and are valid ASCII text.
// WeightsRandom makes every matrix independent random noise, whose greedy
// output tends to get stuck on one token.
package tinymodel

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"math/rand/v2"
	"os"
)

// Weights selects how the weight values are generated.
type Weights int

const (
	// WeightsCycle (the default): a deterministic "next byte of the cycle"
	// model (see the package documentation). Needs an output matrix, so
	// not with TiedEmbeddings.
	WeightsCycle Weights = iota
	// WeightsRandom: independent uniform random matrices (variance
	// 1/fan_in), token embedding and output included.
	WeightsRandom
)

func (w Weights) String() string {
	switch w {
	case WeightsCycle:
		return "cycle"
	case WeightsRandom:
		return "random"
	}
	return fmt.Sprintf("Weights(%d)", int(w))
}

// ParseWeights parses "cycle" or "random".
func ParseWeights(s string) (Weights, error) {
	switch s {
	case "cycle":
		return WeightsCycle, nil
	case "random":
		return WeightsRandom, nil
	}
	return 0, fmt.Errorf("tinymodel: unknown weights %q (want cycle or random)", s)
}

// Config describes the model to write.
type Config struct {
	// Arch is the GGUF architecture: "qwen3" or "qwen2".
	Arch string
	// Name goes to general.name.
	Name string

	HiddenSize    int // embedding_length
	Layers        int // block_count
	Heads         int // attention.head_count
	KVHeads       int // attention.head_count_kv
	HeadDim       int // attention.key_length/value_length; 0 = HiddenSize/Heads
	FFNSize       int // feed_forward_length
	ContextLength int // context_length

	// VocabSize is the total number of tokens. Values below 259 mean the
	// minimal 256 byte tokens + 3 control tokens.
	VocabSize int

	// TiedEmbeddings omits output.weight (the model reuses token_embd).
	TiedEmbeddings bool
	// QKVBias adds attn_{q,k,v}.bias tensors (what real Qwen2 checkpoints
	// have). Only used for qwen2.
	QKVBias bool

	// F16 stores the 2-D weight matrices as F16 instead of F32. Norms and
	// biases are always F32.
	F16 bool

	RopeFreqBase float32 // default 1e6
	RMSEpsilon   float32 // default 1e-6

	// Weights selects the weight generator (default WeightsCycle).
	Weights Weights

	// Seed for the pseudo-random weights.
	Seed uint64
}

// Control token ids of the minimal vocabulary.
const (
	TokenEndOfText = 256 // <|endoftext|>
	TokenIMStart   = 257 // <|im_start|>
	TokenIMEnd     = 258 // <|im_end|>
	MinVocabSize   = 259
)

// Tiny returns the measured ~107K parameter recipe for arch ("qwen3" or
// "qwen2"): hidden 64, 2 layers, 4 heads / 2 KV heads, FFN 128, F32,
// untied output, 259-token byte vocabulary, context 2048, cycle weights.
func Tiny(arch string) Config {
	return Config{
		Arch:          arch,
		Name:          "tiny-" + arch,
		HiddenSize:    64,
		Layers:        2,
		Heads:         4,
		KVHeads:       2,
		FFNSize:       128,
		ContextLength: 2048,
		QKVBias:       arch == "qwen2",
		Seed:          1,
	}
}

// Qwen3_4B returns Qwen3-4B-class dimensions (hidden 2560, 36 layers, 32
// heads / 8 KV heads, head dim 128, FFN 9728, vocab 151936, tied
// embeddings), stored as F16 with random weights: about 4.0e9 parameters,
// an ~8 GB file.
func Qwen3_4B() Config {
	return Config{
		Arch:           "qwen3",
		Name:           "random-qwen3-4b",
		HiddenSize:     2560,
		Layers:         36,
		Heads:          32,
		KVHeads:        8,
		HeadDim:        128,
		FFNSize:        9728,
		ContextLength:  40960,
		VocabSize:      151936,
		TiedEmbeddings: true,
		F16:            true,
		Weights:        WeightsRandom,
		Seed:           1,
	}
}

func (c Config) headDim() int { return cmp.Or(c.HeadDim, c.HiddenSize/max(c.Heads, 1)) }

func (c Config) vocab() int { return max(c.VocabSize, MinVocabSize) }

func (c Config) ropeBase() float32 { return cmp.Or(c.RopeFreqBase, 1e6) }

func (c Config) rmsEps() float32 { return cmp.Or(c.RMSEpsilon, 1e-6) }

// Validate reports configuration errors.
func (c Config) Validate() error {
	switch c.Arch {
	case "qwen3", "qwen2":
	default:
		return fmt.Errorf("tinymodel: unsupported architecture %q (want qwen3 or qwen2)", c.Arch)
	}
	if c.HiddenSize <= 0 || c.Layers <= 0 || c.Heads <= 0 || c.KVHeads <= 0 || c.FFNSize <= 0 {
		return fmt.Errorf("tinymodel: dimensions must be positive: %+v", c)
	}
	if c.Heads%c.KVHeads != 0 {
		return fmt.Errorf("tinymodel: heads (%d) must be a multiple of KV heads (%d)", c.Heads, c.KVHeads)
	}
	if c.HeadDim == 0 && c.HiddenSize%c.Heads != 0 {
		return fmt.Errorf("tinymodel: hidden size %d not divisible by %d heads", c.HiddenSize, c.Heads)
	}
	if c.headDim()%2 != 0 {
		return fmt.Errorf("tinymodel: head dim %d must be even (RoPE)", c.headDim())
	}
	switch c.Weights {
	case WeightsCycle:
		if c.TiedEmbeddings {
			return fmt.Errorf("tinymodel: cycle weights need an output matrix; use untied embeddings or random weights")
		}
	case WeightsRandom:
	default:
		return fmt.Errorf("tinymodel: unknown weights %v", c.Weights)
	}
	return nil
}

// Vocabulary returns the token strings and token types (1 normal, 3
// control, 5 unused) of the model's vocabulary.
func (c Config) Vocabulary() (tokens []string, types []int32) {
	n := c.vocab()
	tokens = make([]string, 0, n)
	types = make([]int32, 0, n)
	b2u := byteToUnicode()
	for b := range 256 {
		tokens = append(tokens, string(b2u[b]))
		types = append(types, 1)
	}
	tokens = append(tokens, "<|endoftext|>", "<|im_start|>", "<|im_end|>")
	types = append(types, 3, 3, 3)
	for i := len(tokens); i < n; i++ {
		tokens = append(tokens, fmt.Sprintf("<|extra_%d|>", i-MinVocabSize))
		types = append(types, 5)
	}
	return tokens, types
}

// byteToUnicode is GPT-2's reversible byte -> printable rune mapping:
// printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
func byteToUnicode() [256]rune {
	var m [256]rune
	n := 0
	for b := range 256 {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[b] = rune(b)
		} else {
			m[b] = rune(256 + n)
			n++
		}
	}
	return m
}

// Cycle returns the order in which a WeightsCycle model emits the 94
// printable non-space ASCII bytes ('!' to '~'; the token id of a byte is
// its value): after token Cycle()[i] it predicts Cycle()[(i+1)%94]. After
// any other token it predicts some token of the cycle. The order depends
// only on Seed.
func (c Config) Cycle() []int {
	order := make([]int, 0, '~'-'!'+1)
	for b := '!'; b <= '~'; b++ {
		order = append(order, int(b))
	}
	rng := rand.New(rand.NewPCG(c.Seed, hashName("cycle")))
	rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// KV returns the GGUF metadata.
func (c Config) KV() KV {
	a := c.Arch
	tokens, types := c.Vocabulary()
	fileType := FileTypeF32
	if c.F16 {
		fileType = FileTypeF16
	}
	return KV{
		"general.architecture":    a,
		"general.name":            cmp.Or(c.Name, "tiny-"+a),
		"general.file_type":       fileType,
		"general.alignment":       uint32(DefaultAlignment),
		"general.parameter_count": c.ParamCount(),

		a + ".block_count":                      uint32(c.Layers),
		a + ".context_length":                   uint32(cmp.Or(c.ContextLength, 2048)),
		a + ".embedding_length":                 uint32(c.HiddenSize),
		a + ".feed_forward_length":              uint32(c.FFNSize),
		a + ".attention.head_count":             uint32(c.Heads),
		a + ".attention.head_count_kv":          uint32(c.KVHeads),
		a + ".attention.key_length":             uint32(c.headDim()),
		a + ".attention.value_length":           uint32(c.headDim()),
		a + ".attention.layer_norm_rms_epsilon": c.rmsEps(),
		a + ".rope.freq_base":                   c.ropeBase(),
		a + ".rope.dimension_count":             uint32(c.headDim()),

		"tokenizer.ggml.model":            "gpt2",
		"tokenizer.ggml.pre":              "qwen2",
		"tokenizer.ggml.tokens":           tokens,
		"tokenizer.ggml.token_type":       types,
		"tokenizer.ggml.merges":           []string{},
		"tokenizer.ggml.bos_token_id":     uint32(TokenEndOfText),
		"tokenizer.ggml.eos_token_id":     uint32(TokenIMEnd),
		"tokenizer.ggml.padding_token_id": uint32(TokenEndOfText),
		"tokenizer.ggml.add_bos_token":    false,
		"tokenizer.ggml.add_eos_token":    false,
	}
}

// Kinds of tensor data.
const (
	kindOnes   = "ones"
	kindZeros  = "zeros"
	kindRandom = "random" // uniform, variance 1/fan_in
	kindMix    = "mix"    // random; scaled by mixScale for cycle weights
	kindEmbd   = "embd"   // token embedding: random rows, control/padding rows zero
	kindOutput = "output" // output matrix: cycle successor map, or like embd
)

// mixScale scales the matrices that write into the residual stream
// (attention output, FFN down) of cycle models, so the token embedding
// dominates the stream.
const mixScale = 1.0 / 16

// tensorSpec is one tensor to write.
type tensorSpec struct {
	name  string
	shape []uint64 // GGUF order: ne0 (input/fastest) first
	kind  string
	f16   bool
}

func (c Config) specs() []tensorSpec {
	h := uint64(c.HiddenSize)
	hd := uint64(c.headDim())
	q := uint64(c.Heads) * hd
	kvd := uint64(c.KVHeads) * hd
	ff := uint64(c.FFNSize)
	v := uint64(c.vocab())
	w := c.F16

	s := []tensorSpec{
		{name: "token_embd.weight", shape: []uint64{h, v}, kind: kindEmbd, f16: w},
		{name: "output_norm.weight", shape: []uint64{h}, kind: kindOnes},
	}
	if !c.TiedEmbeddings {
		s = append(s, tensorSpec{name: "output.weight", shape: []uint64{h, v}, kind: kindOutput, f16: w})
	}
	for i := range c.Layers {
		p := fmt.Sprintf("blk.%d.", i)
		s = append(s,
			tensorSpec{name: p + "attn_norm.weight", shape: []uint64{h}, kind: kindOnes},
			tensorSpec{name: p + "attn_q.weight", shape: []uint64{h, q}, kind: kindRandom, f16: w},
			tensorSpec{name: p + "attn_k.weight", shape: []uint64{h, kvd}, kind: kindRandom, f16: w},
			tensorSpec{name: p + "attn_v.weight", shape: []uint64{h, kvd}, kind: kindRandom, f16: w},
			tensorSpec{name: p + "attn_output.weight", shape: []uint64{q, h}, kind: kindMix, f16: w},
			tensorSpec{name: p + "ffn_norm.weight", shape: []uint64{h}, kind: kindOnes},
			tensorSpec{name: p + "ffn_gate.weight", shape: []uint64{h, ff}, kind: kindRandom, f16: w},
			tensorSpec{name: p + "ffn_up.weight", shape: []uint64{h, ff}, kind: kindRandom, f16: w},
			tensorSpec{name: p + "ffn_down.weight", shape: []uint64{ff, h}, kind: kindMix, f16: w},
		)
		switch c.Arch {
		case "qwen3":
			s = append(s,
				tensorSpec{name: p + "attn_q_norm.weight", shape: []uint64{hd}, kind: kindOnes},
				tensorSpec{name: p + "attn_k_norm.weight", shape: []uint64{hd}, kind: kindOnes},
			)
		case "qwen2":
			if c.QKVBias {
				s = append(s,
					tensorSpec{name: p + "attn_q.bias", shape: []uint64{q}, kind: kindZeros},
					tensorSpec{name: p + "attn_k.bias", shape: []uint64{kvd}, kind: kindZeros},
					tensorSpec{name: p + "attn_v.bias", shape: []uint64{kvd}, kind: kindZeros},
				)
			}
		}
	}
	return s
}

// TensorNames lists the tensors in the file (in file order).
func (c Config) TensorNames() []string {
	var names []string
	for _, s := range c.specs() {
		names = append(names, s.name)
	}
	return names
}

// ParamCount is the number of weights in the file.
func (c Config) ParamCount() uint64 { return paramCount(c.specs()) }

// FileSizeEstimate is the approximate size of the written file in bytes
// (tensor data only; metadata adds a few KB).
func (c Config) FileSizeEstimate() uint64 { return dataSize(c.specs()) }

func paramCount(specs []tensorSpec) uint64 {
	var n uint64
	for _, s := range specs {
		n += elements(s.shape)
	}
	return n
}

func dataSize(specs []tensorSpec) uint64 {
	var n uint64
	for _, s := range specs {
		if s.f16 {
			n += 2 * elements(s.shape)
		} else {
			n += 4 * elements(s.shape)
		}
	}
	return n
}

func elements(shape []uint64) uint64 {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// Tensors returns the tensors, each with a WriterTo that generates its data.
func (c Config) Tensors() []*Tensor {
	g := &weightGen{seed: c.Seed, style: c.Weights}
	if c.Weights == WeightsCycle {
		order := c.Cycle()
		g.pred = make(map[uint64]uint64, len(order))
		for i, t := range order {
			g.pred[uint64(order[(i+1)%len(order)])] = uint64(t)
		}
	}
	return g.tensors(c.specs())
}

// Write writes the model to path.
func Write(path string, c Config) error {
	if err := c.Validate(); err != nil {
		return err
	}
	return writeFile(path, c.KV(), c.Tensors())
}

func writeFile(path string, kv KV, tensors []*Tensor) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteGGUF(f, kv, tensors); err != nil {
		f.Close()
		return fmt.Errorf("tinymodel: writing %s: %w", path, err)
	}
	return f.Close()
}

// weightGen generates the data of all tensors of one file.
type weightGen struct {
	seed  uint64
	style Weights
	// pred maps a cycle token to its predecessor (cycle weights only).
	pred map[uint64]uint64
}

func (g *weightGen) tensors(specs []tensorSpec) []*Tensor {
	var ts []*Tensor
	for _, s := range specs {
		typ := TensorTypeF32
		if s.f16 {
			typ = TensorTypeF16
		}
		ts = append(ts, &Tensor{
			Name:     s.name,
			Type:     typ,
			Shape:    append([]uint64(nil), s.shape...),
			WriterTo: &generator{spec: s, gen: g},
		})
	}
	return ts
}

func hashName(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// uniformRow fills dst with uniform values in [-a, a], a deterministic
// function of (seed, name, row).
func (g *weightGen) uniformRow(dst []float32, name string, row uint64, a float32) {
	rng := rand.New(rand.NewPCG(g.seed, hashName(name)^(row*0x9e3779b97f4a7c15)))
	for i := range dst {
		dst[i] = (2*rng.Float32() - 1) * a
	}
}

// row fills dst with row r of the tensor described by s.
func (g *weightGen) row(dst []float32, s tensorSpec, r uint64) {
	cols := float64(len(dst))
	// Uniform in [-a, a] with variance 1/fan_in keeps activations O(1).
	a := float32(math.Sqrt(3 / cols))
	cycle := g.style == WeightsCycle
	switch s.kind {
	case kindOnes:
		for i := range dst {
			dst[i] = 1
		}
	case kindZeros:
		clear(dst)
	case kindRandom:
		g.uniformRow(dst, s.name, r, a)
	case kindMix:
		if cycle {
			a *= mixScale
		}
		g.uniformRow(dst, s.name, r, a)
	case kindEmbd, kindOutput:
		if cycle {
			// Variance 1: the embedding dominates the residual stream.
			a = float32(math.Sqrt(3))
		}
		switch {
		case r >= 256:
			clear(dst) // control and padding tokens
		case !cycle:
			g.uniformRow(dst, s.name, r, a)
		case s.kind == kindEmbd:
			g.uniformRow(dst, "token_embd.weight", r, a)
		default:
			// logit(v) = <embd(t), embd(pred(v))>: largest for v = succ(t).
			p, ok := g.pred[r]
			if !ok {
				clear(dst)
				return
			}
			g.uniformRow(dst, "token_embd.weight", p, a)
		}
	default:
		panic("tinymodel: unknown tensor kind " + s.kind)
	}
}

// generator produces the data of one tensor.
type generator struct {
	spec tensorSpec
	gen  *weightGen
}

func (g *generator) WriteTo(w io.Writer) (int64, error) {
	s := g.spec
	rows, cols := uint64(1), s.shape[0]
	for _, d := range s.shape[1:] {
		rows *= d
	}
	elem := 4
	if s.f16 {
		elem = 2
	}
	const chunk = 1 << 20
	buf := make([]byte, 0, chunk+int(cols)*elem)
	vals := make([]float32, cols)
	var total int64
	flush := func() error {
		n, err := w.Write(buf)
		total += int64(n)
		buf = buf[:0]
		return err
	}
	for r := range rows {
		g.gen.row(vals, s, r)
		for _, v := range vals {
			if s.f16 {
				buf = binary.LittleEndian.AppendUint16(buf, f32ToF16(v))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
		if len(buf) >= chunk {
			if err := flush(); err != nil {
				return total, err
			}
		}
	}
	if len(buf) > 0 {
		if err := flush(); err != nil {
			return total, err
		}
	}
	return total, nil
}

// f32ToF16 converts to IEEE 754 binary16 with round-to-nearest-even.
func f32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int32(b>>23&0xff) - 127 + 15
	mant := b & 0x7fffff
	switch {
	case b&0x7fffffff == 0:
		return sign
	case int32(b>>23&0xff) == 0xff: // inf/nan
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp >= 0x1f:
		return sign | 0x7c00
	case exp <= 0:
		if exp < -10 {
			return sign
		}
		mant |= 0x800000
		shift := uint32(14 - exp)
		half := mant >> shift
		rem := mant & (1<<shift - 1)
		mid := uint32(1) << (shift - 1)
		if rem > mid || (rem == mid && half&1 == 1) {
			half++
		}
		return sign | uint16(half)
	}
	half := uint32(exp)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && half&1 == 1) {
		half++ // may carry into the exponent, which is still correct
	}
	return sign | uint16(half)
}

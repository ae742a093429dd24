package tinymodel

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/fs/gguf"
)

func TestModelRoundTrip(t *testing.T) {
	f16 := Config{
		Arch: "qwen3", HiddenSize: 128, Layers: 3, Heads: 8, KVHeads: 4, HeadDim: 32,
		FFNSize: 256, ContextLength: 512, VocabSize: 1000, TiedEmbeddings: true, F16: true,
		Weights: WeightsRandom, Seed: 7,
	}
	random := Tiny("qwen2")
	random.Weights = WeightsRandom
	noBias := Tiny("qwen2")
	noBias.QKVBias = false

	tests := []struct {
		name string
		cfg  Config
		// spot checks, in addition to the full KV and tensor comparison
		wantKV      map[string]any // architecture-qualified through gguf.Metadata
		wantTensors map[string][]uint64
		absent      []string
		params      [2]uint64 // inclusive range
	}{
		{
			name: "tiny qwen3",
			cfg:  Tiny("qwen3"),
			wantKV: map[string]any{
				"general.architecture":         "qwen3",
				"general.file_type":            uint32(FileTypeF32),
				"block_count":                  uint32(2),
				"embedding_length":             uint32(64),
				"feed_forward_length":          uint32(128),
				"attention.head_count":         uint32(4),
				"attention.head_count_kv":      uint32(2),
				"attention.key_length":         uint32(16),
				"context_length":               uint32(2048),
				"tokenizer.ggml.model":         "gpt2",
				"tokenizer.ggml.pre":           "qwen2",
				"tokenizer.ggml.eos_token_id":  uint32(TokenIMEnd),
				"tokenizer.ggml.add_bos_token": false,
			},
			wantTensors: map[string][]uint64{
				"token_embd.weight":        {64, MinVocabSize},
				"output.weight":            {64, MinVocabSize},
				"blk.1.attn_q.weight":      {64, 64},
				"blk.1.attn_k.weight":      {64, 32},
				"blk.1.attn_output.weight": {64, 64},
				"blk.1.ffn_down.weight":    {128, 64},
				"blk.1.attn_k_norm.weight": {16},
			},
			absent: []string{"blk.0.attn_q.bias"},
			params: [2]uint64{100_000, 115_000},
		},
		{
			name: "tiny qwen2",
			cfg:  Tiny("qwen2"),
			wantKV: map[string]any{
				"general.architecture": "qwen2",
				"block_count":          uint32(2),
				"rope.freq_base":       float32(1e6),
			},
			wantTensors: map[string][]uint64{
				"blk.0.attn_q.bias": {64},
				"blk.0.attn_v.bias": {32},
			},
			absent: []string{"blk.0.attn_q_norm.weight"},
			params: [2]uint64{100_000, 115_000},
		},
		{
			name:   "qwen2 random weights",
			cfg:    random,
			params: [2]uint64{100_000, 115_000},
		},
		{
			name:   "qwen2 without biases",
			cfg:    noBias,
			absent: []string{"blk.0.attn_q.bias", "blk.1.attn_k.bias"},
		},
		{
			name: "F16 tied 1000-token vocabulary",
			cfg:  f16,
			wantKV: map[string]any{
				"general.file_type":    uint32(FileTypeF16),
				"attention.key_length": uint32(32),
				"block_count":          uint32(3),
			},
			wantTensors: map[string][]uint64{
				"token_embd.weight":   {128, 1000},
				"blk.0.attn_q.weight": {128, 256},
			},
			absent: []string{"output.weight"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			path := filepath.Join(t.TempDir(), "m.gguf")
			if err := Write(path, c); err != nil {
				t.Fatal(err)
			}

			kv, infos, file := readGGUF(t, path)
			if diff := cmp.Diff(c.KV(), kv); diff != "" {
				t.Errorf("KV mismatch (-written +read):\n%s", diff)
			}
			if diff := cmp.Diff(infosOf(c.Tensors()), infos); diff != "" {
				t.Errorf("tensors mismatch (-want +read):\n%s", diff)
			}

			md, err := gguf.ReadFileMetadata(path, -1)
			if err != nil {
				t.Fatal(err) // also checks every tensor lies within the file
			}
			for k, want := range tt.wantKV {
				if diff := cmp.Diff(want, md.KeyValue(k).Any()); diff != "" {
					t.Errorf("%s (-want +got):\n%s", k, diff)
				}
			}
			for name, shape := range tt.wantTensors {
				if diff := cmp.Diff(shape, file.TensorInfo(name).Shape); diff != "" {
					t.Errorf("%s shape (-want +got):\n%s", name, diff)
				}
			}
			for _, name := range tt.absent {
				if file.TensorInfo(name).Name != "" {
					t.Errorf("unexpected tensor %s", name)
				}
			}
			for _, ti := range infos {
				want := TensorTypeF32
				if c.F16 && len(ti.Shape) == 2 {
					want = TensorTypeF16
				}
				if ti.Type != want {
					t.Errorf("%s type %v, want %v", ti.Name, ti.Type, want)
				}
			}

			tokens := md.KeyValue("tokenizer.ggml.tokens").Strings()
			if len(tokens) != c.vocab() || tokens[TokenIMEnd] != "<|im_end|>" || tokens[' '] != "Ġ" {
				t.Errorf("vocabulary: %d tokens, [%d]=%q, [' ']=%q", len(tokens), TokenIMEnd, tokens[TokenIMEnd], tokens[' '])
			}

			if got := md.ParameterCount(); got != c.ParamCount() || got != kv["general.parameter_count"] {
				t.Errorf("decoded %d params, config says %d, KV %v", got, c.ParamCount(), kv["general.parameter_count"])
			}
			if p := c.ParamCount(); tt.params[1] > 0 && (p < tt.params[0] || p > tt.params[1]) {
				t.Errorf("%d params, want %d..%d", p, tt.params[0], tt.params[1])
			}

			// one tensor's data, through the reader
			_, r, err := file.TensorReader("blk.0.attn_q.weight")
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if _, err := got.ReadFrom(r); err != nil {
				t.Fatal(err)
			}
			for _, tensor := range c.Tensors() {
				if tensor.Name == "blk.0.attn_q.weight" && !bytes.Equal(got.Bytes(), dataOf(t, tensor)) {
					t.Errorf("blk.0.attn_q.weight data differs")
				}
			}
			st, _ := os.Stat(path)
			t.Logf("%s: %d params, file %d bytes", c.Arch, c.ParamCount(), st.Size())
		})
	}
}

func TestDeterministic(t *testing.T) {
	write := func(c Config) []byte {
		t.Helper()
		p := filepath.Join(t.TempDir(), "m.gguf")
		if err := Write(p, c); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := write(Tiny("qwen3"))
	if !bytes.Equal(a, write(Tiny("qwen3"))) {
		t.Fatal("same config produced different files")
	}
	c := Tiny("qwen3")
	c.Seed = 2
	if bytes.Equal(a, write(c)) {
		t.Fatal("different seeds produced identical files")
	}
	c = Tiny("qwen3")
	c.Weights = WeightsRandom
	if bytes.Equal(a, write(c)) {
		t.Fatal("cycle and random weights produced identical files")
	}
}

// readF32 returns the rows of an F32 tensor's generated data.
func readF32(t *testing.T, tensor *Tensor) [][]float32 {
	t.Helper()
	b := dataOf(t, tensor)
	cols := int(tensor.Shape[0])
	var rows [][]float32
	for len(b) > 0 {
		row := make([]float32, cols)
		for i := range row {
			row[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		rows = append(rows, row)
		b = b[4*cols:]
	}
	return rows
}

// TestCycleLogits checks the embedding -> output path of cycle weights:
// with the residual stream equal to a token's embedding, the output layer
// ranks the token's cycle successor first, by a wide margin, and never a
// control token.
func TestCycleLogits(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		c := Tiny("qwen3")
		c.Seed = seed
		tensors := map[string]*Tensor{}
		for _, tensor := range c.Tensors() {
			tensors[tensor.Name] = tensor
		}
		embd := readF32(t, tensors["token_embd.weight"])
		out := readF32(t, tensors["output.weight"])

		cycle := c.Cycle()
		if len(cycle) != 94 {
			t.Fatalf("cycle has %d tokens", len(cycle))
		}
		succ := map[int]int{}
		for i, tok := range cycle {
			succ[tok] = cycle[(i+1)%len(cycle)]
		}
		if len(succ) != 94 {
			t.Fatalf("cycle repeats a token: %v", cycle)
		}

		minMargin := math.Inf(1)
		for tok := range 256 {
			logits := make([]float64, len(out))
			for v, row := range out {
				for i, w := range row {
					logits[v] += float64(embd[tok][i] * w)
				}
			}
			best := 0
			for v := range logits {
				if logits[v] > logits[best] {
					best = v
				}
			}
			want, inCycle := succ[tok]
			switch {
			case inCycle && best != want:
				t.Errorf("seed %d: after %q the top token is %d, want %q", seed, rune(tok), best, rune(want))
			case !inCycle && succ[best] == 0:
				t.Errorf("seed %d: after byte %d the top token %d is outside the cycle", seed, tok, best)
			}
			if inCycle {
				second := math.Inf(-1)
				for v, l := range logits {
					if v != want {
						second = max(second, l)
					}
				}
				minMargin = min(minMargin, logits[want]-second)
			}
		}
		t.Logf("seed %d: cycle starts %q, smallest logit margin %.1f", seed, string(runes(cycle[:12])), minMargin)
		if minMargin < 10 {
			t.Errorf("seed %d: logit margin %.1f is too small", seed, minMargin)
		}
	}
}

func runes(ids []int) []rune {
	var r []rune
	for _, id := range ids {
		r = append(r, rune(id))
	}
	return r
}

func TestQwen3_4BDims(t *testing.T) {
	c := Qwen3_4B()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	p := c.ParamCount()
	if p < 3_900_000_000 || p > 4_100_000_000 {
		t.Errorf("4B config has %d params", p)
	}
	t.Logf("4B-class: %d params, ~%.1f GB", p, float64(c.FileSizeEstimate())/1e9)
}

func TestValidate(t *testing.T) {
	tied := Tiny("qwen3")
	tied.TiedEmbeddings = true
	tiedRandom := tied
	tiedRandom.Weights = WeightsRandom
	tests := []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"tiny qwen3", Tiny("qwen3"), ""},
		{"tiny qwen2", Tiny("qwen2"), ""},
		{"tied random", tiedRandom, ""},
		{"tied cycle", tied, "cycle weights need an output matrix"},
		{"llama", Config{Arch: "llama", HiddenSize: 64, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8}, "unsupported architecture"},
		{"kv heads", Config{Arch: "qwen3", HiddenSize: 64, Layers: 1, Heads: 4, KVHeads: 3, FFNSize: 8}, "multiple of KV heads"},
		{"zero hidden", Config{Arch: "qwen3", HiddenSize: 0, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8}, "must be positive"},
		{"odd head dim", Config{Arch: "qwen3", HiddenSize: 12, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8}, "must be even"},
		{"weights", Config{Arch: "qwen3", HiddenSize: 64, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8, Weights: 9}, "unknown weights"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestParseWeights(t *testing.T) {
	for _, w := range []Weights{WeightsCycle, WeightsRandom} {
		got, err := ParseWeights(w.String())
		if err != nil || got != w {
			t.Errorf("ParseWeights(%q) = %v, %v", w.String(), got, err)
		}
	}
	if _, err := ParseWeights("zeros"); err == nil {
		t.Error("ParseWeights(zeros) succeeded")
	}
}

func TestF16Conversion(t *testing.T) {
	cases := map[float32]uint16{
		0: 0, 1: 0x3c00, -2: 0xc000, 0.5: 0x3800, 65504: 0x7bff, 1e9: 0x7c00,
		float32(math.Inf(-1)): 0xfc00, 5.960464477539063e-08: 0x0001, 0.333333343: 0x3555,
	}
	for f, want := range cases {
		if got := f32ToF16(f); got != want {
			t.Errorf("f32ToF16(%g) = %#04x, want %#04x", f, got, want)
		}
	}
}

func TestGeneratorSizes(t *testing.T) {
	for _, weights := range []Weights{WeightsCycle, WeightsRandom} {
		for _, f16 := range []bool{false, true} {
			var buf bytes.Buffer
			spec := tensorSpec{name: "x", shape: []uint64{3, 300}, kind: kindEmbd, f16: f16}
			g := &generator{spec: spec, gen: &weightGen{seed: 1, style: weights}}
			n, err := g.WriteTo(&buf)
			if err != nil {
				t.Fatal(err)
			}
			elem := 4
			if f16 {
				elem = 2
			}
			if n != int64(3*300*elem) || buf.Len() != 3*300*elem {
				t.Errorf("%v f16=%v wrote %d bytes", weights, f16, n)
			}
			// rows >= 256 (control/padding tokens) are zero
			row := buf.Bytes()[256*3*elem : 257*3*elem]
			if !bytes.Equal(row, make([]byte, len(row))) {
				t.Errorf("%v f16=%v control token row not zero", weights, f16)
			}
			if f16 {
				continue
			}
			v := math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()))
			if limit := map[Weights]float64{WeightsCycle: 1.74, WeightsRandom: 1.01}[weights]; v == 0 || math.Abs(float64(v)) > limit {
				t.Errorf("%v: unexpected first weight %g", weights, v)
			}
		}
	}
}

func TestTensorNamesMatchTensors(t *testing.T) {
	c := Tiny("qwen2")
	var names []string
	for _, tensor := range c.Tensors() {
		names = append(names, tensor.Name)
	}
	if !slices.Equal(names, c.TensorNames()) {
		t.Errorf("TensorNames() = %v, Tensors() = %v", c.TensorNames(), names)
	}
}

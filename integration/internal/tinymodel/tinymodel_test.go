package tinymodel

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ollama/ollama/fs/ggml"
)

func decode(t *testing.T, path string) *ggml.GGML {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ggml.Decode(f, -1)
	if err != nil {
		t.Fatalf("decode %s: %v", path, err)
	}
	return m
}

func TestTinyRoundTrip(t *testing.T) {
	for _, arch := range []string{"qwen3", "qwen2"} {
		t.Run(arch, func(t *testing.T) {
			cfg := Tiny(arch)
			path := filepath.Join(t.TempDir(), arch+".gguf")
			if err := Write(path, cfg); err != nil {
				t.Fatal(err)
			}
			m := decode(t, path)
			kv := m.KV()

			if got := kv.Architecture(); got != arch {
				t.Errorf("architecture = %q, want %q", got, arch)
			}
			checks := map[string]uint64{
				"block_count":                 2,
				"embedding_length":            64,
				"feed_forward_length":         128,
				"attention.head_count":        4,
				"attention.head_count_kv":     2,
				"attention.key_length":        16,
				"context_length":              2048,
				"general.file_type":           0,
				"tokenizer.ggml.eos_token_id": TokenIMEnd,
			}
			for k, want := range checks {
				if got := uint64(kv.Uint(k)); got != want {
					t.Errorf("%s = %d, want %d", k, got, want)
				}
			}
			if got := kv.String("tokenizer.ggml.model"); got != "gpt2" {
				t.Errorf("tokenizer model = %q", got)
			}
			if got := kv.String("tokenizer.ggml.pre"); got != "qwen2" {
				t.Errorf("tokenizer pre = %q", got)
			}
			tokens := kv.Strings("tokenizer.ggml.tokens")
			if len(tokens) != MinVocabSize {
				t.Errorf("vocab = %d tokens, want %d", len(tokens), MinVocabSize)
			}
			if len(tokens) > TokenIMEnd && tokens[TokenIMEnd] != "<|im_end|>" {
				t.Errorf("token %d = %q", TokenIMEnd, tokens[TokenIMEnd])
			}
			if len(tokens) > ' ' && tokens[' '] != "Ġ" {
				t.Errorf("space token = %q, want Ġ (GPT-2 byte mapping)", tokens[' '])
			}
			if types := kv.Ints("tokenizer.ggml.token_type"); len(types) != len(tokens) {
				t.Errorf("token_type has %d entries for %d tokens", len(types), len(tokens))
			}
			if kv.Bool("tokenizer.ggml.add_bos_token", true) {
				t.Errorf("add_bos_token should be false")
			}

			var names []string
			for _, tt := range m.Tensors().Items() {
				names = append(names, tt.Name)
			}
			want := cfg.TensorNames()
			slices.Sort(names)
			slices.Sort(want)
			if !slices.Equal(names, want) {
				t.Errorf("tensors = %v\nwant %v", names, want)
			}
			if arch == "qwen3" && !slices.Contains(names, "blk.1.attn_k_norm.weight") {
				t.Errorf("qwen3 needs attn_k_norm")
			}
			if arch == "qwen2" && !slices.Contains(names, "blk.0.attn_q.bias") {
				t.Errorf("qwen2 recipe should carry QKV biases")
			}

			var params uint64
			for _, tt := range m.Tensors().Items() {
				params += tt.Elements()
				if tt.Kind != uint32(ggml.TensorTypeF32) {
					t.Errorf("%s kind %d, want F32", tt.Name, tt.Kind)
				}
			}
			if params != cfg.ParamCount() {
				t.Errorf("decoded %d params, config says %d", params, cfg.ParamCount())
			}
			if arch == "qwen3" && (params < 100_000 || params > 115_000) {
				t.Errorf("qwen3 tiny recipe has %d params, want ~107K", params)
			}
			t.Logf("%s: %d params, file %d bytes", arch, params, m.Length)
		})
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a.gguf"), filepath.Join(dir, "b.gguf")
	for _, p := range []string{a, b} {
		if err := Write(p, Tiny("qwen3")); err != nil {
			t.Fatal(err)
		}
	}
	da, _ := os.ReadFile(a)
	db, _ := os.ReadFile(b)
	if !bytes.Equal(da, db) {
		t.Fatal("same config produced different files")
	}
	c := Tiny("qwen3")
	c.Seed = 2
	if err := Write(b, c); err != nil {
		t.Fatal(err)
	}
	db, _ = os.ReadFile(b)
	if bytes.Equal(da, db) {
		t.Fatal("different seeds produced identical files")
	}
}

func TestF16AndParameterized(t *testing.T) {
	c := Config{
		Arch: "qwen3", HiddenSize: 128, Layers: 3, Heads: 8, KVHeads: 4, HeadDim: 32,
		FFNSize: 256, ContextLength: 512, VocabSize: 1000, TiedEmbeddings: true, F16: true, Seed: 7,
	}
	path := filepath.Join(t.TempDir(), "f16.gguf")
	if err := Write(path, c); err != nil {
		t.Fatal(err)
	}
	m := decode(t, path)
	kv := m.KV()
	if kv.Uint("attention.key_length") != 32 || kv.Uint("block_count") != 3 {
		t.Errorf("unexpected dims: key_length=%d block_count=%d", kv.Uint("attention.key_length"), kv.Uint("block_count"))
	}
	if n := len(kv.Strings("tokenizer.ggml.tokens")); n != 1000 {
		t.Errorf("vocab %d, want 1000", n)
	}
	for _, tt := range m.Tensors().Items() {
		if tt.Name == "output.weight" {
			t.Errorf("tied model has output.weight")
		}
		wantKind := uint32(ggml.TensorTypeF16)
		if len(tt.Shape) == 1 {
			wantKind = uint32(ggml.TensorTypeF32)
		}
		if tt.Kind != wantKind {
			t.Errorf("%s kind %d want %d", tt.Name, tt.Kind, wantKind)
		}
		if tt.Name == "blk.0.attn_q.weight" && !slices.Equal(tt.Shape, []uint64{128, 256}) {
			t.Errorf("attn_q shape %v", tt.Shape)
		}
	}
	if kv.Uint("general.file_type") != uint32(ggml.FileTypeF16) {
		t.Errorf("file_type %d", kv.Uint("general.file_type"))
	}
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
	bad := []Config{
		{Arch: "llama", HiddenSize: 64, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8},
		{Arch: "qwen3", HiddenSize: 64, Layers: 1, Heads: 4, KVHeads: 3, FFNSize: 8},
		{Arch: "qwen3", HiddenSize: 0, Layers: 1, Heads: 4, KVHeads: 2, FFNSize: 8},
	}
	for _, c := range bad {
		if c.Validate() == nil {
			t.Errorf("expected error for %+v", c)
		}
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
	for _, f16 := range []bool{false, true} {
		var buf bytes.Buffer
		g := &generator{spec: tensorSpec{name: "x", shape: []uint64{3, 300}, kind: "embd", f16: f16}, seed: 1}
		n, err := g.WriteTo(&buf)
		if err != nil {
			t.Fatal(err)
		}
		elem := 4
		if f16 {
			elem = 2
		}
		if n != int64(3*300*elem) || buf.Len() != 3*300*elem {
			t.Errorf("f16=%v wrote %d bytes", f16, n)
		}
		// rows >= 256 (control/padding tokens) are zero
		row := buf.Bytes()[256*3*elem : 257*3*elem]
		if !bytes.Equal(row, make([]byte, len(row))) {
			t.Errorf("f16=%v control token row not zero", f16)
		}
		if f16 {
			continue
		}
		v := math.Float32frombits(binary.LittleEndian.Uint32(buf.Bytes()))
		if v == 0 || math.Abs(float64(v)) > 1.01 {
			t.Errorf("unexpected first weight %g", v)
		}
	}
}

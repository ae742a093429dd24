package tinymodel

import (
	"bytes"
	"encoding/binary"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/ollama/ollama/fs/gguf"
)

// tensorInfo is what the reader reports about a tensor.
type tensorInfo struct {
	Name  string
	Type  TensorType
	Shape []uint64
}

// readGGUF reads path with upstream's reader and returns its metadata,
// tensor infos (file order) and the open file (closed at test end).
func readGGUF(t *testing.T, path string) (KV, []tensorInfo, *gguf.File) {
	t.Helper()
	f, err := gguf.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	t.Cleanup(func() { f.Close() })
	if string(f.Magic[:]) != "GGUF" || f.Version != GGUFVersion {
		t.Errorf("magic %q version %d, want GGUF %d", f.Magic[:], f.Version, GGUFVersion)
	}
	kv := KV{}
	for _, e := range f.KeyValues() {
		kv[e.Key] = e.Value.Any()
	}
	var infos []tensorInfo
	for _, ti := range f.TensorInfos() {
		infos = append(infos, tensorInfo{Name: ti.Name, Type: TensorType(ti.Type), Shape: ti.Shape})
		if ti.Offset%DefaultAlignment != 0 {
			t.Errorf("tensor %s offset %d not aligned", ti.Name, ti.Offset)
		}
	}
	if err := f.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(kv) != f.NumKeyValues() || len(infos) != f.NumTensors() {
		t.Errorf("read %d KVs / %d tensors, header says %d / %d", len(kv), len(infos), f.NumKeyValues(), f.NumTensors())
	}
	return kv, infos, f
}

func infosOf(tensors []*Tensor) []tensorInfo {
	var infos []tensorInfo
	for _, t := range tensors {
		infos = append(infos, tensorInfo{Name: t.Name, Type: t.Type, Shape: t.Shape})
	}
	return infos
}

// dataOf returns the bytes a tensor's WriterTo produces.
func dataOf(t *testing.T, tensor *Tensor) []byte {
	t.Helper()
	var b bytes.Buffer
	if _, err := tensor.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bytesTensor is a tensor with fixed data.
type bytesTensor []byte

func (b bytesTensor) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(b)
	return int64(n), err
}

func f32s(vs ...float32) bytesTensor {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func f16s(vs ...float32) bytesTensor {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, f32ToF16(v))
	}
	return b
}

func TestWriteGGUFRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		kv      KV
		tensors []*Tensor
	}{
		{
			name: "every value type",
			kv: KV{
				"general.architecture": "test",
				"general.alignment":    uint32(32),
				"test.u32":             uint32(math.MaxUint32),
				"test.i32":             int32(-7),
				"test.f32":             float32(-1.5e-6),
				"test.true":            true,
				"test.false":           false,
				"test.u64":             uint64(1) << 40,
				"test.string":          "héllo\x00world",
				"test.empty_string":    "",
				"test.strings":         []string{"a", "", "Ġ<|im_end|>"},
				"test.no_strings":      []string{},
				"test.ints":            []int32{-1, 0, 1 << 30},
				"test.floats":          []float32{0.25, float32(math.Inf(1)), -0},
			},
			tensors: []*Tensor{
				{Name: "odd", Type: TensorTypeF32, Shape: []uint64{3}, WriterTo: f32s(1, 2, 3)},
				{Name: "half", Type: TensorTypeF16, Shape: []uint64{5, 1}, WriterTo: f16s(1, -2, 0.5, 65504, 0)},
				{Name: "four_dims", Type: TensorTypeF32, Shape: []uint64{1, 2, 1, 2}, WriterTo: f32s(9, 8, 7, 6)},
			},
		},
		{
			name: "no alignment key, no tensors",
			kv:   KV{"general.architecture": "empty"},
		},
		{
			name: "alignment 64",
			kv:   KV{"general.architecture": "x", "general.alignment": uint32(64)},
			tensors: []*Tensor{
				{Name: "a", Type: TensorTypeF16, Shape: []uint64{1}, WriterTo: f16s(1)},
				{Name: "b", Type: TensorTypeF32, Shape: []uint64{2, 2}, WriterTo: f32s(1, 2, 3, 4)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t.gguf")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteGGUF(f, tt.kv, tt.tensors); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			kv, infos, file := readGGUF(t, path)
			if diff := cmp.Diff(tt.kv, kv); diff != "" {
				t.Errorf("KV mismatch (-written +read):\n%s", diff)
			}
			if diff := cmp.Diff(infosOf(tt.tensors), infos); diff != "" {
				t.Errorf("tensors mismatch (-written +read):\n%s", diff)
			}
			for _, tensor := range tt.tensors {
				_, r, err := file.TensorReader(tensor.Name)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(dataOf(t, tensor), got); diff != "" {
					t.Errorf("tensor %s data (-written +read):\n%s", tensor.Name, diff)
				}
			}

			// ggml pads the data section to the alignment after every tensor.
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			align := int64(DefaultAlignment)
			if a, ok := tt.kv["general.alignment"].(uint32); ok {
				align = int64(a)
			}
			if len(tt.tensors) > 0 && st.Size()%align != 0 {
				t.Errorf("file size %d not a multiple of the alignment %d", st.Size(), align)
			}
		})
	}
}

func TestWriteGGUFDeterministicKeyOrder(t *testing.T) {
	kv := KV{"general.architecture": "a", "b.x": uint32(1), "a.y": "z", "general.name": "n"}
	var first []byte
	for i := range 5 {
		var b bytes.Buffer
		if err := WriteGGUF(&b, kv, nil); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = b.Bytes()
			// the first key follows magic, version and the two counts
			want := "\x14\x00\x00\x00\x00\x00\x00\x00general.architecture"
			if got := string(first[24 : 24+len(want)]); got != want {
				t.Errorf("first key = %q, want general.architecture", got)
			}
			continue
		}
		if !bytes.Equal(first, b.Bytes()) {
			t.Fatal("same KV set gave different bytes")
		}
	}
}

func TestWriteGGUFErrors(t *testing.T) {
	ok := func() *Tensor { return &Tensor{Name: "t", Type: TensorTypeF32, Shape: []uint64{1}, WriterTo: f32s(1)} }
	tests := []struct {
		name    string
		kv      KV
		tensors []*Tensor
		want    string
	}{
		{"unsupported value", KV{"k": 1}, nil, "unsupported value type int"},
		{"unsupported array", KV{"k": []uint32{1}}, nil, "unsupported value type []uint32"},
		{"empty key", KV{"": "v"}, nil, "empty key"},
		{"bad alignment type", KV{"general.alignment": 32}, nil, "general.alignment"},
		{"zero alignment", KV{"general.alignment": uint32(0)}, nil, "general.alignment"},
		{"duplicate tensor", nil, []*Tensor{ok(), ok()}, "duplicate tensor t"},
		{"long name", nil, []*Tensor{{Name: strings.Repeat("x", 64), Type: TensorTypeF32, Shape: []uint64{1}, WriterTo: f32s(1)}}, "1 to 63 bytes"},
		{"no dims", nil, []*Tensor{{Name: "t", Type: TensorTypeF32, WriterTo: f32s()}}, "0 dimensions"},
		{"five dims", nil, []*Tensor{{Name: "t", Type: TensorTypeF32, Shape: []uint64{1, 1, 1, 1, 1}, WriterTo: f32s(1)}}, "5 dimensions"},
		{"zero dim", nil, []*Tensor{{Name: "t", Type: TensorTypeF32, Shape: []uint64{2, 0}, WriterTo: f32s()}}, "empty dimension"},
		{"quantized", nil, []*Tensor{{Name: "t", Type: 2, Shape: []uint64{32}, WriterTo: f32s()}}, "unsupported type TensorType(2)"},
		{"no data", nil, []*Tensor{{Name: "t", Type: TensorTypeF32, Shape: []uint64{1}}}, "no data"},
		{"short data", nil, []*Tensor{{Name: "t", Type: TensorTypeF32, Shape: []uint64{2}, WriterTo: f32s(1)}}, "wrote 4 bytes, want 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := WriteGGUF(io.Discard, tt.kv, tt.tensors)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

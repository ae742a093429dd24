package tinymodel

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
)

// A minimal GGUF v3 writer (little endian), enough for the models of this
// package. The layout, as read by ggml's gguf.cpp and Ollama's fs/gguf:
//
//	magic "GGUF", version uint32 (3), tensor count uint64, KV count uint64
//	KV pairs:     key string, value type uint32, value
//	tensor infos: name string, n_dims uint32, ne[n_dims] uint64, type uint32,
//	              offset uint64 (relative to the data section)
//	padding to the alignment, then the tensor data, each tensor padded to
//	the alignment (ggml expects offset[i+1] = offset[i] + pad(size[i]))
//
// A string is a uint64 byte length followed by the bytes (no terminator);
// an array is the element type uint32, the count uint64 and the elements.

// GGUFVersion is the GGUF version this writer produces.
const GGUFVersion = 3

// DefaultAlignment is the tensor data alignment used when the KV set has no
// general.alignment.
const DefaultAlignment = 32

// GGUF metadata value types (gguf_type in ggml's gguf.h).
const (
	ggufTypeUint32  uint32 = 4
	ggufTypeInt32   uint32 = 5
	ggufTypeFloat32 uint32 = 6
	ggufTypeBool    uint32 = 7
	ggufTypeString  uint32 = 8
	ggufTypeArray   uint32 = 9
	ggufTypeUint64  uint32 = 10
)

// maxTensorName is ggml's GGML_MAX_NAME (64) minus the terminating NUL.
const maxTensorName = 63

// KV is GGUF metadata. Supported value types: string, uint32, int32,
// float32, bool, uint64, []string, []int32 and []float32. WriteGGUF writes
// general.architecture first, then the other keys in sorted order, so equal
// KV sets give identical files.
type KV map[string]any

// TensorType is a ggml tensor type. Only F32 and F16 are supported.
type TensorType uint32

const (
	TensorTypeF32 TensorType = 0
	TensorTypeF16 TensorType = 1
)

func (t TensorType) String() string {
	switch t {
	case TensorTypeF32:
		return "F32"
	case TensorTypeF16:
		return "F16"
	}
	return fmt.Sprintf("TensorType(%d)", uint32(t))
}

// elemSize is the size of one element in bytes (0: unsupported type).
func (t TensorType) elemSize() uint64 {
	switch t {
	case TensorTypeF32:
		return 4
	case TensorTypeF16:
		return 2
	}
	return 0
}

// GGUF general.file_type values (llama_ftype) of the supported files.
const (
	FileTypeF32 uint32 = 0 // LLAMA_FTYPE_ALL_F32
	FileTypeF16 uint32 = 1 // LLAMA_FTYPE_MOSTLY_F16
)

// Tensor is one tensor to write. Shape is in ggml order: ne[0], the
// contiguous (input) dimension, first. WriterTo must write exactly Size()
// bytes of little-endian element data.
type Tensor struct {
	Name  string
	Type  TensorType
	Shape []uint64
	io.WriterTo
}

// Elements is the number of elements of the tensor.
func (t *Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Size is the size of the tensor data in bytes.
func (t *Tensor) Size() uint64 { return t.Elements() * t.Type.elemSize() }

func pad(n, alignment uint64) uint64 { return (n + alignment - 1) / alignment * alignment }

// WriteGGUF writes a GGUF v3 file with the metadata kv and the tensors (in
// the given order) to w.
func WriteGGUF(w io.Writer, kv KV, tensors []*Tensor) error {
	alignment := uint64(DefaultAlignment)
	if a, ok := kv["general.alignment"]; ok {
		v, ok := a.(uint32)
		if !ok || v == 0 || v%8 != 0 {
			return fmt.Errorf("gguf: general.alignment must be a non-zero uint32 multiple of 8, got %v (%T)", a, a)
		}
		alignment = uint64(v)
	}
	if err := checkTensors(tensors); err != nil {
		return err
	}

	buf := bufio.NewWriterSize(w, 1<<20)
	bw := &countingWriter{w: buf}
	e := &encoder{w: bw}

	e.raw([]byte("GGUF"))
	e.u32(GGUFVersion)
	e.u64(uint64(len(tensors)))
	e.u64(uint64(len(kv)))

	keys := make([]string, 0, len(kv))
	for k := range kv {
		keys = append(keys, k)
	}
	first := func(k string) int {
		if k == "general.architecture" {
			return 0
		}
		return 1
	}
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(first(a), first(b)), cmp.Compare(a, b))
	})
	for _, k := range keys {
		if k == "" {
			return errors.New("gguf: empty key")
		}
		e.str(k)
		if err := e.value(k, kv[k]); err != nil {
			return err
		}
	}

	var offset uint64
	for _, t := range tensors {
		e.str(t.Name)
		e.u32(uint32(len(t.Shape)))
		for _, d := range t.Shape {
			e.u64(d)
		}
		e.u32(uint32(t.Type))
		e.u64(offset)
		offset += pad(t.Size(), alignment)
	}
	e.zeros(pad(bw.n, alignment) - bw.n)
	if e.err != nil {
		return e.err
	}

	for _, t := range tensors {
		start := bw.n
		if _, err := t.WriteTo(bw); err != nil {
			return fmt.Errorf("gguf: tensor %s: %w", t.Name, err)
		}
		if got := bw.n - start; got != t.Size() {
			return fmt.Errorf("gguf: tensor %s: wrote %d bytes, want %d", t.Name, got, t.Size())
		}
		e.zeros(pad(t.Size(), alignment) - t.Size())
		if e.err != nil {
			return e.err
		}
	}
	return buf.Flush()
}

func checkTensors(tensors []*Tensor) error {
	seen := make(map[string]bool, len(tensors))
	for _, t := range tensors {
		switch {
		case t.Name == "" || len(t.Name) > maxTensorName:
			return fmt.Errorf("gguf: tensor name %q must have 1 to %d bytes", t.Name, maxTensorName)
		case seen[t.Name]:
			return fmt.Errorf("gguf: duplicate tensor %s", t.Name)
		case len(t.Shape) == 0 || len(t.Shape) > 4:
			return fmt.Errorf("gguf: tensor %s has %d dimensions (want 1 to 4)", t.Name, len(t.Shape))
		case slices.Contains(t.Shape, 0):
			return fmt.Errorf("gguf: tensor %s has an empty dimension: %v", t.Name, t.Shape)
		case t.Type.elemSize() == 0:
			return fmt.Errorf("gguf: tensor %s: unsupported type %v", t.Name, t.Type)
		case t.WriterTo == nil:
			return fmt.Errorf("gguf: tensor %s has no data", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n uint64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += uint64(n)
	return n, err
}

// encoder writes little-endian GGUF primitives and keeps the first error.
type encoder struct {
	w   io.Writer
	err error
	buf [8]byte
}

func (e *encoder) raw(b []byte) {
	if e.err == nil {
		_, e.err = e.w.Write(b)
	}
}

func (e *encoder) u32(v uint32) {
	binary.LittleEndian.PutUint32(e.buf[:4], v)
	e.raw(e.buf[:4])
}

func (e *encoder) u64(v uint64) {
	binary.LittleEndian.PutUint64(e.buf[:8], v)
	e.raw(e.buf[:8])
}

func (e *encoder) str(s string) {
	e.u64(uint64(len(s)))
	e.raw([]byte(s))
}

func (e *encoder) zeros(n uint64) {
	var z [64]byte
	for n > 0 {
		k := min(n, uint64(len(z)))
		e.raw(z[:k])
		n -= k
	}
}

func (e *encoder) value(key string, v any) error {
	switch v := v.(type) {
	case string:
		e.u32(ggufTypeString)
		e.str(v)
	case uint32:
		e.u32(ggufTypeUint32)
		e.u32(v)
	case int32:
		e.u32(ggufTypeInt32)
		e.u32(uint32(v))
	case float32:
		e.u32(ggufTypeFloat32)
		e.u32(math.Float32bits(v))
	case bool:
		e.u32(ggufTypeBool)
		if v {
			e.raw([]byte{1})
		} else {
			e.raw([]byte{0})
		}
	case uint64:
		e.u32(ggufTypeUint64)
		e.u64(v)
	case []string:
		e.u32(ggufTypeArray)
		e.u32(ggufTypeString)
		e.u64(uint64(len(v)))
		for _, s := range v {
			e.str(s)
		}
	case []int32:
		e.u32(ggufTypeArray)
		e.u32(ggufTypeInt32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(uint32(x))
		}
	case []float32:
		e.u32(ggufTypeArray)
		e.u32(ggufTypeFloat32)
		e.u64(uint64(len(v)))
		for _, x := range v {
			e.u32(math.Float32bits(x))
		}
	default:
		return fmt.Errorf("gguf: key %s: unsupported value type %T", key, v)
	}
	return e.err
}

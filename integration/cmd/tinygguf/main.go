// Command tinygguf writes a GGUF model with synthetic weights (see
// integration/internal/tinymodel) for import with `ollama create` or for
// llama-server, optionally with a vision projector (mmproj) companion.
//
//	go run ./integration/cmd/tinygguf -o tiny.gguf                 # ~107K params qwen3
//	go run ./integration/cmd/tinygguf -arch qwen2 -o tiny2.gguf
//	go run ./integration/cmd/tinygguf -o tiny.gguf -mmproj tiny-mmproj.gguf
//	go run ./integration/cmd/tinygguf -preset qwen3-4b -o big.gguf  # ~4.0B params, F16, ~8 GB
//	go run ./integration/cmd/tinygguf -hidden 256 -layers 4 -heads 8 -kv-heads 4 -ffn 512 -o m.gguf
//
// -weights cycle (the tiny preset's default) makes greedy generations walk a
// fixed cycle through the printable ASCII bytes, so they never repeat one
// token; -weights random gives independent random matrices (the qwen3-4b
// preset's default; tied embeddings need it).
//
// With -modelfile it also writes a Modelfile next to the model: "FROM
// ./<file>", plus "FROM ./<mmproj file>" with -mmproj (Ollama files the
// second GGUF as the projector layer).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

func main() {
	var (
		out       = flag.String("o", "tiny.gguf", "output file")
		preset    = flag.String("preset", "tiny", "starting point: tiny or qwen3-4b")
		arch      = flag.String("arch", "", "architecture: qwen3 or qwen2 (default: the preset's)")
		hidden    = flag.Int("hidden", 0, "hidden size (embedding_length)")
		layers    = flag.Int("layers", 0, "number of layers (block_count)")
		heads     = flag.Int("heads", 0, "attention heads")
		kvHeads   = flag.Int("kv-heads", 0, "KV heads")
		headDim   = flag.Int("head-dim", -1, "head dimension (0 = hidden/heads)")
		ffn       = flag.Int("ffn", 0, "feed forward size")
		ctx       = flag.Int("ctx", 0, "context length")
		vocab     = flag.Int("vocab", 0, "vocabulary size (>= 259)")
		tied      = flag.String("tied", "", "tied embeddings: true/false (default: the preset's)")
		f16       = flag.String("f16", "", "F16 weight matrices: true/false (default: the preset's)")
		weights   = flag.String("weights", "", "weights: cycle or random (default: the preset's)")
		seed      = flag.Uint64("seed", 0, "random seed (default: the preset's)")
		name      = flag.String("name", "", "general.name")
		mmproj    = flag.String("mmproj", "", "also write a vision projector (mmproj) for the model to this file")
		modelfile = flag.Bool("modelfile", false, "also write <dir>/Modelfile with FROM ./<file> (and the -mmproj file)")
	)
	flag.Parse()

	var c tinymodel.Config
	switch *preset {
	case "tiny":
		a := *arch
		if a == "" {
			a = "qwen3"
		}
		c = tinymodel.Tiny(a)
	case "qwen3-4b":
		c = tinymodel.Qwen3_4B()
	default:
		fatalf("unknown preset %q", *preset)
	}
	if *arch != "" {
		c.Arch = *arch
		c.QKVBias = *arch == "qwen2"
	}
	setInt := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	setInt(&c.HiddenSize, *hidden)
	setInt(&c.Layers, *layers)
	setInt(&c.Heads, *heads)
	setInt(&c.KVHeads, *kvHeads)
	setInt(&c.FFNSize, *ffn)
	setInt(&c.ContextLength, *ctx)
	setInt(&c.VocabSize, *vocab)
	if *headDim >= 0 {
		c.HeadDim = *headDim
	}
	setBool := func(dst *bool, v, flagName string) {
		switch v {
		case "":
		case "true", "1":
			*dst = true
		case "false", "0":
			*dst = false
		default:
			fatalf("-%s: want true or false, got %q", flagName, v)
		}
	}
	setBool(&c.TiedEmbeddings, *tied, "tied")
	setBool(&c.F16, *f16, "f16")
	if *weights != "" {
		w, err := tinymodel.ParseWeights(*weights)
		if err != nil {
			fatalf("-weights: %v", err)
		}
		c.Weights = w
	}
	if *seed != 0 {
		c.Seed = *seed
	}
	if *name != "" {
		c.Name = *name
	}
	if err := c.Validate(); err != nil {
		fatalf("%v", err)
	}

	start := time.Now()
	fmt.Fprintf(os.Stderr, "writing %s: %s, %d params, ~%d MB\n", *out, c.Arch, c.ParamCount(), c.FileSizeEstimate()>>20)
	if err := tinymodel.Write(*out, c); err != nil {
		fatalf("%v", err)
	}
	fmt.Fprintf(os.Stderr, "done in %s\n", time.Since(start).Round(time.Millisecond))

	from := "FROM ./" + filepath.Base(*out) + "\n"
	if *mmproj != "" {
		p := c.Projector()
		fmt.Fprintf(os.Stderr, "writing %s: clip mmproj, %d image tokens -> %d-dim embeddings\n", *mmproj, p.Patches(), p.ProjectionDim)
		if err := tinymodel.WriteProjector(*mmproj, p); err != nil {
			fatalf("%v", err)
		}
		rel, err := filepath.Rel(filepath.Dir(*out), *mmproj)
		if err != nil {
			rel = *mmproj
		}
		from += "FROM ./" + filepath.ToSlash(rel) + "\n"
	}

	if *modelfile {
		mf := filepath.Join(filepath.Dir(*out), "Modelfile")
		if err := os.WriteFile(mf, []byte(from), 0o644); err != nil {
			fatalf("%v", err)
		}
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "tinygguf: "+format+"\n", args...)
	os.Exit(1)
}

//go:build integration

package integration

// Benchmarks of the fork against pristine Ollama on the same runtime: the
// run-time root's llama-server with the Vulkan backend on lavapipe, a tiny
// qwen3. Both sides run in one invocation, one after the other per
// sub-benchmark, so compare their ratio, never absolute times across runs:
//
//	make build build-upstream runtime
//	go test -tags integration -run '^$' -bench LlamaServer -benchtime 5x ./integration/
//
// The standard benchmark lines are the table (benchstat reads them).
// Pristine v0.34.4 ignores OLLAMA_LLM_LIBRARY in this flat layout; on a
// machine with only lavapipe both sides end on the same Vulkan device.

import (
	"context"
	"testing"
	"time"
)

// benchSides are the binaries compared; a missing one is skipped.
func benchSides() []struct{ name, bin string } {
	return []struct{ name, bin string }{{"fork", OllamaBin()}, {"pristine", UpstreamBin()}}
}

// BenchmarkLlamaServerFirstToken: `ollama serve` started to the first
// generated token with OLLAMA_LLM_LIBRARY=vulkan (discovery, model load,
// one token). Importing the model is not timed.
func BenchmarkLlamaServerFirstToken(b *testing.B) {
	for _, side := range benchSides() {
		b.Run(side.name, func(b *testing.B) {
			RequireBinary(b, side.bin, side.name)
			bed := newLSBed(b, side.bin)
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				prep := bed.start(b, "GGML_VK_VISIBLE_DEVICES=0")
				m := forkCreateTiny(b, prep, "qwen3")
				models, home := prep.Models, prep.Home
				prep.Stop()
				b.StartTimer()
				s := bed.start(b, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkan", "OLLAMA_MODELS="+models, "HOME="+home)
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				if _, err := s.Generate(ctx, m.Name, "Hi", 1, nil); err != nil {
					cancel()
					b.Fatal(err)
				}
				cancel()
				b.StopTimer()
				s.Stop()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkLlamaServerDecode: tokens per second of a loaded model, 64
// tokens a request, reported as decode-tok/s and prefill-tok/s.
func BenchmarkLlamaServerDecode(b *testing.B) {
	for _, side := range benchSides() {
		b.Run(side.name, func(b *testing.B) {
			RequireBinary(b, side.bin, side.name)
			bed := newLSBed(b, side.bin)
			s := bed.start(b, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkan")
			m := forkCreateTiny(b, s, "qwen3")
			forkGenerate(b, s, m) // load
			var evalCount, promptCount int
			var evalDur, promptDur time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
				res, err := s.Generate(ctx, m.Name, "The quick brown fox jumps over the lazy dog", 64, nil)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				evalCount += res.EvalCount
				evalDur += res.EvalDuration
				promptCount += res.PromptEvalCount
				promptDur += res.PromptEvalDuration
			}
			b.StopTimer()
			if evalDur > 0 {
				b.ReportMetric(float64(evalCount)/evalDur.Seconds(), "decode-tok/s")
			}
			if promptDur > 0 {
				b.ReportMetric(float64(promptCount)/promptDur.Seconds(), "prefill-tok/s")
			}
		})
	}
}

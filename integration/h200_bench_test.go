//go:build integration

package integration

// Issue 21: the fork against pristine v0.34.4 and bare llama-server on a
// real GPU (an NVIDIA H200 seen through CUDA and through NVIDIA's Vulkan
// driver), both Ollama binaries driving the same llama-server build. Skipped
// unless OBS_H200_DIST names the tree scripts/h200/run.sh lays out:
//
//	$OBS_H200_DIST/fork/bin/ollama, $OBS_H200_DIST/pristine/bin/ollama
//	$OBS_H200_DIST/{fork,pristine}/lib -> the one lib/ollama (subfolder layout:
//	    llama-server and the CPU variants, cuda_v13/, vulkan/)
//
// OBS_H200_WORK keeps the models between phases (and between calls while
// the machine is warm), OBS_H200_OUT gets the raw results, OBS_H200_PHASES
// picks phases (setup, perf, startup, idle, matrix), OBS_H200_RUNS and
// OBS_H200_BLOCKS size the speed runs, OBS_H200_DEADLINE (unix seconds)
// stops starting new blocks after it. Every number is measured inside one
// process, side by side; compare ratios, not absolute times across runs.
//
// Random weights make Ollama's token-repeat guard (more than 100 identical
// tokens in a row) abort greedy generations, so every request samples
// (temperature 1, top_k 40, a seed per request) among the 256 byte tokens
// (the padding tokens' logits are 0, under the top 40 byte logits); requests
// that abort or end short are counted and left out of the statistics.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"

	"github.com/costa-os/ollama-backend-select/integration/internal/tinymodel"
)

const (
	h2Model     = "obs-qwen3-4b"
	h2Tiny      = "obs-tiny-qwen3"
	h2PromptLen = 512
	h2Predict   = 128
	h2Ctx       = 4096
)

type h2Env struct {
	dist, work, out, models string
	runs, blocks            int
	deadline                time.Time
	big, tiny               forkModel
	mu                      sync.Mutex
	results                 map[string]any
}

func h2Setup(t *testing.T) *h2Env {
	dist := os.Getenv("OBS_H200_DIST")
	if dist == "" {
		t.Skip("OBS_H200_DIST not set (scripts/h200/run.sh on the GPU machine)")
	}
	e := &h2Env{dist: dist, work: os.Getenv("OBS_H200_WORK"), out: os.Getenv("OBS_H200_OUT"), runs: 5, blocks: 2, results: map[string]any{}}
	if e.work == "" {
		e.work = t.TempDir()
	}
	if e.out == "" {
		e.out = t.TempDir()
	}
	e.models = filepath.Join(e.work, "models")
	if n, err := strconv.Atoi(os.Getenv("OBS_H200_RUNS")); err == nil && n > 0 {
		e.runs = n
	}
	if n, err := strconv.Atoi(os.Getenv("OBS_H200_BLOCKS")); err == nil && n > 0 {
		e.blocks = n
	}
	if s, err := strconv.ParseInt(os.Getenv("OBS_H200_DEADLINE"), 10, 64); err == nil {
		e.deadline = time.Unix(s, 0)
	}
	for _, d := range []string{e.work, e.out, e.models, filepath.Join(e.work, "logs")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *h2Env) bin(side string) string { return filepath.Join(e.dist, side, "bin", "ollama") }
func (e *h2Env) lib() string            { return filepath.Join(e.dist, "fork", "lib", "ollama") }

func (e *h2Env) late() bool { return !e.deadline.IsZero() && time.Now().After(e.deadline) }

// record keeps a result for results.json (written after every phase).
func (e *h2Env) record(key string, v any) {
	e.mu.Lock()
	e.results[key] = v
	b, _ := json.MarshalIndent(e.results, "", "  ")
	e.mu.Unlock()
	_ = os.WriteFile(filepath.Join(e.out, "results.json"), b, 0o644)
}

// appendFile appends one line to a raw file under OUT.
func (e *h2Env) appendFile(name, line string) {
	f, err := os.OpenFile(filepath.Join(e.out, name), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintln(f, line)
}

// start runs `ollama serve` of side on the shared models folder, with no
// wrapper; env is added (OLLAMA_LLM_LIBRARY and the like).
func (e *h2Env) start(t testing.TB, side string, noWait bool, env ...string) *Server {
	env = append([]string{"OLLAMA_MODELS=" + e.models, "OLLAMA_KEEP_ALIVE=30m"}, env...)
	return StartServer(t, ServerOptions{Bin: e.bin(side), Env: env, Prefix: []string{}, NoWait: noWait, ReadyTimeout: 2 * time.Minute})
}

func h2Digest(t testing.TB, file string) string {
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// models loads (or, in the setup phase, makes) the two models: the 4B
// qwen3 (tinygguf's qwen3-4b preset, random weights, F16, quantized to
// Q4_K_M by the build's llama-quantize: v0.34.4's `ollama create -q`
// refuses GGUF input) and the tiny qwen3 for start-up.
func (e *h2Env) models_(t *testing.T, make bool) {
	meta := filepath.Join(e.work, "models.json")
	if b, err := os.ReadFile(meta); err == nil {
		var m [2]forkModel
		if json.Unmarshal(b, &m) == nil {
			e.big, e.tiny = m[0], m[1]
			return
		}
	}
	if !make {
		t.Fatalf("no models in %s: run the setup phase first", e.work)
	}
	t0 := time.Now()
	f16 := filepath.Join(e.work, "qwen3-4b-f16.gguf")
	q4 := filepath.Join(e.work, "qwen3-4b-q4_k_m.gguf")
	tiny := filepath.Join(e.work, "tiny-qwen3.gguf")
	c := tinymodel.Qwen3_4B()
	if os.Getenv("OBS_H200_SMALL") != "" {
		// rehearsal on a machine without the GPU: same vocabulary and
		// weights, a few layers of hidden 256
		c.HiddenSize, c.Layers, c.Heads, c.KVHeads, c.HeadDim, c.FFNSize = 256, 2, 4, 2, 64, 512
	}
	if err := tinymodel.Write(f16, c); err != nil {
		t.Fatal(err)
	}
	tWrite := time.Since(t0)
	q := exec.Command(filepath.Join(e.lib(), "llama-quantize"), f16, q4, "Q4_K_M")
	q.Env = append(os.Environ(), "LD_LIBRARY_PATH="+e.lib())
	if out, err := q.CombinedOutput(); err != nil {
		t.Fatalf("llama-quantize: %v\n%s", err, tail(string(out), 30))
	}
	os.Remove(f16)
	tQuant := time.Since(t0) - tWrite
	if err := tinymodel.Write(tiny, tinymodel.Tiny("qwen3")); err != nil {
		t.Fatal(err)
	}
	s := e.start(t, "fork", false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := s.CreateModel(ctx, h2Model, q4); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateModel(ctx, h2Tiny, tiny); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	st, _ := os.Stat(q4)
	e.big = forkModel{Name: h2Model, Arch: "qwen3", Digest: h2Digest(t, q4)}
	e.tiny = forkModel{Name: h2Tiny, Arch: "qwen3", Digest: h2Digest(t, tiny)}
	os.Remove(q4)
	b, _ := json.Marshal([2]forkModel{e.big, e.tiny})
	_ = os.WriteFile(meta, b, 0o644)
	e.record("setup", map[string]any{"params": c.ParamCount(), "q4_k_m_bytes": st.Size(), "write_s": tWrite.Seconds(), "quantize_s": tQuant.Seconds(), "total_s": time.Since(t0).Seconds()})
	t.Logf("models ready in %s (write %s, quantize %s), Q4_K_M %d bytes", time.Since(t0).Round(time.Second), tWrite.Round(time.Second), tQuant.Round(time.Second), st.Size())
}

// h2Prompt is 512 bytes, one token each in the byte vocabulary; the run
// number at its start makes every prompt new to llama-server's cache.
func h2Prompt(n int) string {
	p := fmt.Sprintf("%06d ", n)
	words := "the quick brown fox jumps over the lazy dog while seven bright stars watch "
	for len(p) < h2PromptLen {
		p += words
	}
	return p[:h2PromptLen]
}

func h2Options(seed int) map[string]any {
	return map[string]any{
		"num_predict": h2Predict, "num_ctx": h2Ctx, "temperature": 1.0, "top_k": 40, "top_p": 1.0,
		"min_p": 0.0, "repeat_penalty": 1.0, "repeat_last_n": 64, "seed": seed,
	}
}

// h2Sample is one request's outcome.
type h2Sample struct {
	Backend, Side string
	Block, Run    int
	PromptN       int
	PromptTPS     float64
	EvalN         int
	EvalTPS       float64
	WallS         float64
	Err           string
}

// ok: the request completed with all its tokens. Bare llama-server counts
// only the prompt tokens it evaluated (507-509 of 512: the prompts share
// their first bytes with the one before, which its cache keeps); Ollama
// reports all 512. Rates are per token, so both compare.
func (s h2Sample) ok() bool {
	return s.Err == "" && s.EvalN == h2Predict && (s.PromptN == h2PromptLen || s.Side == "bare" && s.PromptN >= h2PromptLen-16)
}

func (e *h2Env) ollamaRequest(s *Server, model string, n int) h2Sample {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	res, err := s.Generate(ctx, model, h2Prompt(n), h2Predict, h2Options(n))
	out := h2Sample{WallS: res.Wall.Seconds()}
	if err != nil {
		out.Err = err.Error()
		return out
	}
	out.PromptN, out.EvalN = res.PromptEvalCount, res.EvalCount
	if res.PromptEvalDuration > 0 {
		out.PromptTPS = float64(res.PromptEvalCount) / res.PromptEvalDuration.Seconds()
	}
	if res.EvalDuration > 0 {
		out.EvalTPS = float64(res.EvalCount) / res.EvalDuration.Seconds()
	}
	return out
}

// bare is a llama-server started by hand with the arguments and environment
// Ollama gave its runner (another port).
type bare struct {
	cmd  *exec.Cmd
	url  string
	done chan struct{}
}

func startBare(t testing.TB, args []string, env map[string]string, logPath string) (*bare, error) {
	port := FreePort(t)
	a := slices.Clone(args)
	if i := slices.Index(a, "--port"); i >= 0 && i+1 < len(a) {
		a[i+1] = strconv.Itoa(port)
	} else {
		a = append(a, "--port", strconv.Itoa(port))
	}
	cmd := exec.Command(a[0], a[1:]...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "bare llama-server: %s\n", strings.Join(a, " "))
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	b := &bare{cmd: cmd, url: fmt.Sprintf("http://127.0.0.1:%d", port), done: make(chan struct{})}
	go func() { cmd.Wait(); f.Close(); close(b.done) }()
	t.Cleanup(b.stop)
	return b, nil
}

func (b *bare) stop() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
		<-b.done
	}
}

// waitHealth polls /health every 5 ms until it answers 200.
func (b *bare) waitHealth(timeout time.Duration) error {
	hc := &http.Client{Timeout: time.Second}
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		select {
		case <-b.done:
			return fmt.Errorf("llama-server exited")
		default:
		}
		if resp, err := hc.Get(b.url + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
	}
	return fmt.Errorf("llama-server not healthy after %s", timeout)
}

// complete sends what Ollama sends for the same request (its
// llamaServerCompletionRequest fields) to /completion.
func (b *bare) complete(prompt string, nPredict, seed int) (h2Sample, error) {
	req := map[string]any{
		"prompt": prompt, "stream": false, "cache_prompt": true, "n_predict": nPredict,
		"temperature": 1.0, "top_k": 40, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0,
		"repeat_last_n": 64, "frequency_penalty": 0.0, "presence_penalty": 0.0, "seed": seed,
	}
	body, _ := json.Marshal(req)
	t0 := time.Now()
	hc := &http.Client{Timeout: 4 * time.Minute}
	resp, err := hc.Post(b.url+"/completion", "application/json", bytes.NewReader(body))
	if err != nil {
		return h2Sample{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return h2Sample{}, fmt.Errorf("%s: %s", resp.Status, raw)
	}
	var r struct {
		Timings struct {
			PromptN   int     `json:"prompt_n"`
			PromptPS  float64 `json:"prompt_per_second"`
			PredictN  int     `json:"predicted_n"`
			PredictPS float64 `json:"predicted_per_second"`
		} `json:"timings"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return h2Sample{}, err
	}
	return h2Sample{PromptN: r.Timings.PromptN, PromptTPS: r.Timings.PromptPS, EvalN: r.Timings.PredictN, EvalTPS: r.Timings.PredictPS, WallS: time.Since(t0).Seconds()}, nil
}

// modelRunner is the live runner of m (the llama-server with its --model).
func modelRunner(s *Server, m forkModel) (Proc, bool) {
	for _, r := range s.LiveRunners() {
		if forkRunsModel(r, m) {
			return r, true
		}
	}
	return Proc{}, false
}

func shortLibs(p Proc) []string {
	var out []string
	for _, l := range p.Libs {
		out = append(out, strings.TrimPrefix(strings.Split(filepath.Base(l), ".so")[0], "libggml-"))
	}
	sort.Strings(out)
	return out
}

func usingDeviceLines(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "using device") || strings.Contains(l, "offloaded") {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

type h2Stat struct {
	N                     int
	Median, Min, Max      float64
	EvalMedian, EvalMin   float64
	EvalMax               float64
	Failed                int
	RunnerLibs, RunnerDev []string
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func h2Stats(samples []h2Sample) h2Stat {
	var p, d []float64
	st := h2Stat{}
	for _, s := range samples {
		if !s.ok() {
			st.Failed++
			continue
		}
		p = append(p, s.PromptTPS)
		d = append(d, s.EvalTPS)
	}
	st.N = len(p)
	if st.N > 0 {
		st.Median, st.Min, st.Max = median(p), slices.Min(p), slices.Max(p)
		st.EvalMedian, st.EvalMin, st.EvalMax = median(d), slices.Min(d), slices.Max(d)
	}
	return st
}

// TestH200Bench runs the phases named by OBS_H200_PHASES (default all).
func TestH200Bench(t *testing.T) {
	e := h2Setup(t)
	phases := os.Getenv("OBS_H200_PHASES")
	if phases == "" {
		phases = "setup,perf,startup,idle,matrix"
	}
	e.record("nvidia_smi", h2SMIInfo())
	// Every phase but setup reads the models setup made.
	measure := map[string]func(*testing.T){"perf": e.perf, "startup": e.startup, "idle": e.idle, "matrix": e.matrix}
	for _, ph := range strings.Split(phases, ",") {
		ph := strings.TrimSpace(ph)
		t.Run(ph, func(t *testing.T) {
			if ph == "setup" {
				e.models_(t, true)
				return
			}
			run, ok := measure[ph]
			if !ok {
				t.Fatalf("unknown phase %q", ph)
			}
			e.models_(t, false)
			run(t)
		})
	}
}

func h2SMIInfo() string {
	out, _ := exec.Command("nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm,clocks.max.memory,vbios_version,pci.bus_id", "--format=csv").CombinedOutput()
	return strings.TrimSpace(string(out))
}

// perf: for each backend, blocks of fresh servers, one on the GPU at a
// time, in the order fork, pristine, bare / bare, pristine, fork; each
// server gets one warm-up request of the measured shape, then RUNS
// requests.
func (e *h2Env) perf(t *testing.T) {
	type sideRes struct{ samples []h2Sample }
	all := map[string][]h2Sample{}
	runner := map[string]Proc{}
	maps := map[string][]string{}
	for _, backend := range []string{"CUDA", "Vulkan"} {
		env := []string{}
		if backend == "Vulkan" {
			env = append(env, "OLLAMA_LLM_LIBRARY=vulkan")
		}
		for blk := 0; blk < e.blocks; blk++ {
			if e.late() {
				t.Logf("deadline: %s block %d not run", backend, blk)
				break
			}
			order := []string{"fork", "pristine", "bare"}
			if blk%2 == 1 {
				slices.Reverse(order)
			}
			for _, side := range order {
				key := backend + "/" + side
				var samples []h2Sample
				seed0 := 1000*blk + 100
				if side == "bare" {
					r, ok := runner[backend+"/fork"]
					if !ok {
						r, ok = runner[backend+"/pristine"]
					}
					if !ok {
						t.Errorf("%s: no Ollama runner seen to copy flags from", key)
						continue
					}
					b, err := startBare(t, r.Args, r.Env, filepath.Join(e.work, "logs", "bare-"+backend+".log"))
					if err != nil {
						t.Errorf("%s: %v", key, err)
						continue
					}
					if err := b.waitHealth(3 * time.Minute); err != nil {
						t.Errorf("%s: %v", key, err)
						b.stop()
						continue
					}
					t1 := time.Now()
					w, err := b.complete(h2Prompt(seed0-1), h2Predict, seed0-1)
					t.Logf("%s block %d warm-up %.1fs %+v %v", key, blk, time.Since(t1).Seconds(), w, err)
					for i := 0; i < e.runs; i++ {
						s, err := b.complete(h2Prompt(seed0+i), h2Predict, seed0+i)
						if err != nil {
							s.Err = err.Error()
						}
						samples = append(samples, s)
					}
					b.stop()
				} else {
					os.MkdirAll(filepath.Join(e.work, "logs"), 0o755)
					s := e.start(t, side, false, append([]string{"OLLAMA_DEBUG=0"}, env...)...)
					t1 := time.Now()
					w := e.ollamaRequest(s, h2Model, seed0-1)
					t.Logf("%s block %d first request (load + warm-up) %.1fs prompt %d eval %d err %q", key, blk, time.Since(t1).Seconds(), w.PromptN, w.EvalN, w.Err)
					if r, ok := modelRunner(s, e.big); ok {
						runner[key] = r
						maps[key] = shortLibs(r)
					}
					for i := 0; i < e.runs; i++ {
						samples = append(samples, e.ollamaRequest(s, h2Model, seed0+i))
					}
					if r, ok := modelRunner(s, e.big); ok {
						maps[key] = shortLibs(r)
					}
					_ = os.WriteFile(filepath.Join(e.work, "logs", fmt.Sprintf("perf-%s-%s-%d.log", backend, side, blk)), []byte(s.Log()), 0o644)
					s.Stop()
				}
				for i := range samples {
					samples[i].Side = side
					samples[i].Backend, samples[i].Side, samples[i].Block, samples[i].Run = backend, side, blk, i
					sm := samples[i]
					e.appendFile("perf.csv", fmt.Sprintf("%s,%s,%d,%d,%d,%.2f,%d,%.2f,%.3f,%q", sm.Backend, sm.Side, sm.Block, sm.Run, sm.PromptN, sm.PromptTPS, sm.EvalN, sm.EvalTPS, sm.WallS, sm.Err))
				}
				all[key] = append(all[key], samples...)
			}
		}
	}
	stats := map[string]h2Stat{}
	for k, v := range all {
		st := h2Stats(v)
		st.RunnerLibs = maps[k]
		if r, ok := runner[k]; ok {
			st.RunnerDev = r.Args
		}
		stats[k] = st
		t.Logf("%-16s n=%d failed=%d prefill %.1f (%.1f-%.1f) decode %.2f (%.2f-%.2f) maps %v", k, st.N, st.Failed, st.Median, st.Min, st.Max, st.EvalMedian, st.EvalMin, st.EvalMax, maps[k])
	}
	for _, b := range []string{"CUDA", "Vulkan"} {
		f, p, r := stats[b+"/fork"], stats[b+"/pristine"], stats[b+"/bare"]
		if p.Median > 0 && p.EvalMedian > 0 {
			t.Logf("%s fork/pristine prefill %.3f decode %.3f", b, f.Median/p.Median, f.EvalMedian/p.EvalMedian)
		}
		if r.Median > 0 && r.EvalMedian > 0 {
			t.Logf("%s fork/bare prefill %.3f decode %.3f; pristine/bare %.3f %.3f", b, f.Median/r.Median, f.EvalMedian/r.EvalMedian, p.Median/r.Median, p.EvalMedian/r.EvalMedian)
		}
	}
	e.record("perf", stats)
}

// startup: `ollama serve` started to the first generated token of the tiny
// model with OLLAMA_LLM_LIBRARY=vulkan, fork and pristine taking turns, and
// the floor: llama-server --list-devices with only the Vulkan backend, plus
// a bare llama-server with the fork runner's flags started to its first
// token.
func (e *h2Env) startup(t *testing.T) {
	n := e.runs
	type row struct {
		Side    string
		Run     int
		ReadyS  float64
		FirstS  float64
		Libs    []string
		Devices []string
		Err     string
	}
	var rows []row
	var fv Proc
	one := func(side string, run int) row {
		t0 := time.Now()
		s := e.start(t, side, true, "OLLAMA_LLM_LIBRARY=vulkan")
		rw := row{Side: side, Run: run}
		hc := &http.Client{Timeout: time.Second}
		for time.Since(t0) < time.Minute {
			if resp, err := hc.Get(s.URL.String() + "/api/version"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					break
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		rw.ReadyS = time.Since(t0).Seconds()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		_, err := s.Generate(ctx, h2Tiny, "Hi", 1, nil)
		cancel()
		rw.FirstS = time.Since(t0).Seconds()
		if err != nil {
			rw.Err = err.Error()
		}
		if r, ok := modelRunner(s, e.tiny); ok {
			rw.Libs = shortLibs(r)
			if side == "fork" {
				fv = r
			}
		}
		for _, rec := range s.InferenceCompute() {
			rw.Devices = append(rw.Devices, rec["library"]+":"+rec["name"])
		}
		_ = os.WriteFile(filepath.Join(e.work, "logs", fmt.Sprintf("startup-%s-%d.log", side, run)), []byte(s.Log()), 0o644)
		s.Stop()
		return rw
	}
	os.MkdirAll(filepath.Join(e.work, "logs"), 0o755)
	// one warm-up round, not counted
	one("fork", -1)
	one("pristine", -1)
	var listS, bareS []float64
	for i := 0; i < n; i++ {
		order := []string{"fork", "pristine"}
		if i%2 == 1 {
			slices.Reverse(order)
		}
		for _, side := range order {
			r := one(side, i)
			rows = append(rows, r)
			e.appendFile("startup.csv", fmt.Sprintf("%s,%d,%.3f,%.3f,%q,%q,%q", r.Side, r.Run, r.ReadyS, r.FirstS, strings.Join(r.Libs, " "), strings.Join(r.Devices, " "), r.Err))
		}
		// the floor, same round
		lib := e.lib()
		t0 := time.Now()
		ld := exec.Command(filepath.Join(lib, "llama-server"), "--list-devices")
		ld.Env = []string{"LD_LIBRARY_PATH=" + lib + ":" + filepath.Join(lib, "vulkan"), "GGML_BACKEND_PATH=" + filepath.Join(lib, "vulkan", "libggml-vulkan.so"), "PATH=" + os.Getenv("PATH")}
		out, err := ld.CombinedOutput()
		ls := time.Since(t0).Seconds()
		if i == 0 {
			e.record("startup_list_devices_output", string(out))
		}
		if err != nil {
			t.Errorf("list-devices: %v", err)
		}
		bs := -1.0
		if len(fv.Args) > 0 {
			t1 := time.Now()
			b, err := startBare(t, fv.Args, fv.Env, filepath.Join(e.work, "logs", "startup-bare.log"))
			if err == nil {
				if err = b.waitHealth(time.Minute); err == nil {
					_, err = b.complete("Hi", 1, 1)
				}
				bs = time.Since(t1).Seconds()
				b.stop()
			}
			if err != nil {
				t.Errorf("bare start-up: %v", err)
			}
		}
		listS, bareS = append(listS, ls), append(bareS, bs)
		e.appendFile("startup.csv", fmt.Sprintf("floor,%d,%.3f,%.3f,\"list-devices + bare llama-server to first token\",\"\",\"\"", i, ls, ls+bs))
	}
	var fk, pr []float64
	for _, r := range rows {
		if r.Err == "" {
			if r.Side == "fork" {
				fk = append(fk, r.FirstS)
			} else {
				pr = append(pr, r.FirstS)
			}
		}
	}
	floor := median(listS) + median(bareS)
	res := map[string]any{"rows": rows, "fork_first_s": median(fk), "pristine_first_s": median(pr), "list_devices_s": median(listS), "bare_first_token_s": median(bareS), "floor_s": floor, "fork_runner_args": fv.Args}
	if median(pr) > 0 {
		res["fork_over_pristine"] = median(fk) / median(pr)
	}
	if floor > 0 {
		res["fork_over_floor"] = median(fk) / floor
	}
	t.Logf("start-up to first token, Vulkan: fork %.3fs pristine %.3fs floor %.3fs (list-devices %.3f + bare %.3f)", median(fk), median(pr), floor, median(listS), median(bareS))
	e.record("startup", res)
}

// smiSampler runs nvidia-smi every 100 ms; each line is stamped on arrival.
type smiSample struct {
	T                  time.Time
	Util, Power, Clock float64
	Mem                float64
}

type smiSampler struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	samples []smiSample
	done    chan struct{}
}

func startSMI() (*smiSampler, error) {
	cmd := exec.Command("nvidia-smi", "--query-gpu=utilization.gpu,power.draw,clocks.sm,memory.used", "--format=csv,noheader,nounits", "-lms", "100")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &smiSampler{cmd: cmd, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Split(sc.Text(), ",")
			if len(f) < 4 {
				continue
			}
			var v [4]float64
			for i := range v {
				v[i], _ = strconv.ParseFloat(strings.TrimSpace(f[i]), 64)
			}
			s.mu.Lock()
			s.samples = append(s.samples, smiSample{time.Now(), v[0], v[1], v[2], v[3]})
			s.mu.Unlock()
		}
	}()
	return s, nil
}

func (s *smiSampler) stop() []smiSample {
	_ = s.cmd.Process.Kill()
	<-s.done
	_ = s.cmd.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.samples)
}

// idle: generate, then keep_alive 0 at t=0; SM clock and power every 100 ms
// from 3 s before to 10 s after; time back to rest (the values read before
// any server started, power within 15 % and SM clock within 100 MHz, util 0,
// staying there).
func (e *h2Env) idle(t *testing.T) {
	time.Sleep(5 * time.Second) // after the phases before, the card settles
	sm, err := startSMI()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	rest := sm.stop()
	var rp, rc []float64
	for _, s := range rest {
		rp, rc = append(rp, s.Power), append(rc, s.Clock)
	}
	restPower, restClock := median(rp), median(rc)
	res := map[string]any{"rest_power_w": restPower, "rest_clock_mhz": restClock, "rest_samples": len(rest)}
	t.Logf("at rest: %.1f W, %.0f MHz (%d samples)", restPower, restClock, len(rest))
	for _, backend := range []string{"CUDA", "Vulkan"} {
		for _, side := range []string{"fork", "pristine"} {
			if e.late() {
				t.Logf("deadline: idle %s %s not run", backend, side)
				continue
			}
			key := backend + "/" + side
			env := []string{}
			if backend == "Vulkan" {
				env = append(env, "OLLAMA_LLM_LIBRARY=vulkan")
			}
			s := e.start(t, side, false, env...)
			opts := map[string]any{"num_ctx": h2Ctx, "temperature": 1.0, "top_k": 40, "seed": 7}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			_, err := s.Generate(ctx, h2Model, "warm up the runner", 64, opts)
			cancel()
			if err != nil {
				t.Errorf("%s warm-up: %v", key, err)
			}
			smp, err := startSMI()
			if err != nil {
				t.Fatal(err)
			}
			// generate for about 3 s (two requests of 100 tokens, which the
			// repeat guard cannot stop)
			tg := time.Now()
			for time.Since(tg) < 3*time.Second {
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				_, err := s.Generate(ctx, h2Model, fmt.Sprintf("%d keep the GPU busy", time.Since(tg).Milliseconds()), 100, opts)
				cancel()
				if err != nil {
					t.Logf("%s generate: %v", key, err)
				}
			}
			r0, _ := modelRunner(s, e.big)
			t0 := time.Now()
			zero := api.Duration{Duration: 0}
			_ = s.Client.Generate(context.Background(), &api.GenerateRequest{Model: h2Model, KeepAlive: &zero}, func(api.GenerateResponse) error { return nil })
			exitS := -1.0
			for time.Since(t0) < 10*time.Second {
				if exitS < 0 && r0.PID != 0 && !processAlive(r0.PID, r0.Start) {
					exitS = time.Since(t0).Seconds()
				}
				time.Sleep(20 * time.Millisecond)
			}
			samples := smp.stop()
			_ = os.WriteFile(filepath.Join(e.work, "logs", fmt.Sprintf("idle-%s-%s.log", backend, side)), []byte(s.Log()), 0o644)
			s.Stop()
			var during []smiSample
			utilZero, powerRest, clockRest, allRest := -1.0, -1.0, -1.0, -1.0
			for i, x := range samples {
				dt := x.T.Sub(t0).Seconds()
				e.appendFile("idle.csv", fmt.Sprintf("%s,%s,%.3f,%.0f,%.2f,%.0f,%.0f", backend, side, dt, x.Util, x.Power, x.Clock, x.Mem))
				if dt < 0 {
					during = append(during, x)
					continue
				}
				_ = i
			}
			// first time after t0 from which every later sample satisfies the condition
			settle := func(ok func(smiSample) bool) float64 {
				at := -1.0
				for _, x := range samples {
					dt := x.T.Sub(t0).Seconds()
					if dt < 0 {
						continue
					}
					if ok(x) {
						if at < 0 {
							at = dt
						}
					} else {
						at = -1
					}
				}
				return at
			}
			utilZero = settle(func(x smiSample) bool { return x.Util == 0 })
			powerRest = settle(func(x smiSample) bool { return x.Power <= restPower*1.15 })
			clockRest = settle(func(x smiSample) bool { return x.Clock <= restClock+100 })
			allRest = settle(func(x smiSample) bool { return x.Util == 0 && x.Power <= restPower*1.15 && x.Clock <= restClock+100 })
			var du, dp, dc []float64
			for _, x := range during {
				du, dp, dc = append(du, x.Util), append(dp, x.Power), append(dc, x.Clock)
			}
			row := map[string]any{"runner_exit_s": exitS, "util0_s": utilZero, "power_rest_s": powerRest, "clock_rest_s": clockRest, "all_rest_s": allRest,
				"during_util": median(du), "during_power": median(dp), "during_clock": median(dc), "samples": len(samples), "runner_libs": shortLibs(r0)}
			res[key] = row
			t.Logf("idle %s: %v", key, row)
		}
	}
	e.record("idle", res)
}

// matrix: the fork's OLLAMA_LLM_LIBRARY values on the H200's CUDA + Vulkan
// twin, the 4B model, each row with what the runner really used.
func (e *h2Env) matrix(t *testing.T) {
	type row struct {
		Library     string
		Exit        string
		PSLibrary   string
		SizeVRAM    int64
		Size        int64
		RunnerLibs  []string
		RunnerDev   string
		UsingDevice []string
		Inference   []string
		Err         string
	}
	var rows []row
	for _, lib := range []string{"", "vulkan", "cuda", "cpu", "vulkan,cpu", "vulkn"} {
		if e.late() {
			t.Logf("deadline: matrix row %q not run", lib)
			continue
		}
		r := row{Library: lib}
		env := []string{}
		if lib != "" {
			env = append(env, "OLLAMA_LLM_LIBRARY="+lib)
		}
		s := e.start(t, "fork", true, env...)
		if err := s.WaitReady(time.Minute); err != nil {
			code, _ := s.WaitExit(10 * time.Second)
			r.Exit = fmt.Sprintf("exit %d: %s", code, strings.TrimSpace(tail(s.Log(), 2)))
			rows = append(rows, r)
			e.appendFile("matrix.txt", fmt.Sprintf("%+v", r))
			s.Stop()
			continue
		}
		for _, rec := range s.InferenceCompute() {
			r.Inference = append(r.Inference, rec["library"]+":"+rec["name"])
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		_, err := s.Generate(ctx, h2Model, "Hi", 4, map[string]any{"num_ctx": h2Ctx, "temperature": 1.0, "top_k": 40})
		cancel()
		if err != nil {
			r.Err = err.Error()
		}
		for _, p := range forkPsModels(t, s) {
			if strings.HasPrefix(p.Name, h2Model) {
				r.PSLibrary, r.SizeVRAM, r.Size = p.Library, p.SizeVRAM, p.Size
			}
		}
		if p, ok := modelRunner(s, e.big); ok {
			r.RunnerLibs, r.RunnerDev = shortLibs(p), runnerDevice(p)
		}
		r.UsingDevice = usingDeviceLines(s.Log())
		_ = os.WriteFile(filepath.Join(e.work, "logs", fmt.Sprintf("matrix-%s.log", strings.ReplaceAll(cmpOr(lib, "unset"), ",", "_"))), []byte(s.Log()), 0o644)
		s.Stop()
		rows = append(rows, r)
		e.appendFile("matrix.txt", fmt.Sprintf("%+v", r))
		t.Logf("matrix %q: %+v", lib, r)
	}
	e.record("matrix", rows)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

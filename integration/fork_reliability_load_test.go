//go:build integration

package integration

// Load: two models on one fake GPU through two libraries, under 8
// concurrent clients x 20 requests, all on 127.0.0.1 (OLLAMA_NUM_PARALLEL=4
// so that a runner batches them). The built-in quirk sends the qwen3 model
// to the Vulkan twin and the qwen2 model keeps ROCm.
// /api/ps is sampled throughout: each model stays on its library, and the
// VRAM in use never exceeds the one GPU's total (TestForkReliabilityOneGPU-
// Accounting checks the scheduler counts both libraries' runners against
// that GPU).

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

const (
	relLoadClients  = 8
	relLoadRequests = 20
	relLoadGPUMiB   = 900
)

func TestForkReliabilityLoad(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t),
		fakegpu.SharedEnv("TOTAL_MIB", fmt.Sprint(relLoadGPUMiB)), "OLLAMA_KEEP_ALIVE=10m", "OLLAMA_NUM_PARALLEL=4")
	models := []forkModel{forkCreateTiny(t, s.Server, "qwen3"), forkCreateTiny(t, s.Server, "qwen2")}
	wantLib := map[string]string{models[0].Name + ":latest": "Vulkan", models[1].Name + ":latest": "ROCm"}
	const total = uint64(relLoadGPUMiB) << 20

	// Watch the scheduler's view while the clients run.
	var (
		mu       sync.Mutex
		samples  int
		maxVRAM  int64
		problems []string
	)
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			ms, err := relPs(s.Server)
			if err != nil {
				mu.Lock()
				problems = append(problems, "GET /api/ps: "+err.Error())
				mu.Unlock()
				continue
			}
			var vram int64
			mu.Lock()
			samples++
			for _, e := range ms {
				vram += e.SizeVRAM
				if e.SizeVRAM > 0 && e.Library != wantLib[e.Name] {
					problems = append(problems, fmt.Sprintf("%s on %q, want %s", e.Name, e.Library, wantLib[e.Name]))
				}
			}
			maxVRAM = max(maxVRAM, vram)
			if uint64(vram) > total {
				problems = append(problems, fmt.Sprintf("VRAM in use %d > the GPU's %d: %+v", vram, total, ms))
			}
			mu.Unlock()
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, relLoadClients*relLoadRequests)
	answered := make([]int, relLoadClients)
	for c := 0; c < relLoadClients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for r := 0; r < relLoadRequests; r++ {
				m := models[(c+r)%2]
				res, err := s.Generate(ctx, m.Name, fmt.Sprintf("client %d request %d", c, r), 4, nil)
				if err != nil {
					errs <- fmt.Errorf("client %d request %d (%s): %w", c, r, m.Name, err)
					continue
				}
				if res.EvalCount != 4 {
					errs <- fmt.Errorf("client %d request %d (%s): eval_count %d, want 4", c, r, m.Name, res.EvalCount)
					continue
				}
				answered[c]++
			}
		}(c)
	}
	wg.Wait()
	took := time.Since(start)
	close(stop)
	<-watched
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	for _, a := range answered {
		n += a
	}
	if n != relLoadClients*relLoadRequests {
		t.Errorf("%d of %d requests answered", n, relLoadClients*relLoadRequests)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems[:min(len(problems), 10)] {
		t.Error(p)
	}
	if len(problems) > 10 {
		t.Errorf("... and %d more", len(problems)-10)
	}
	if samples == 0 {
		t.Error("/api/ps was never sampled")
	}
	// Every runner loaded only its model's library.
	for _, m := range models {
		for _, r := range forkModelRunners(s.Server, m) {
			want := "libggml-hip.so"
			if wantLib[m.Name+":latest"] == "Vulkan" {
				want = "libggml-vulkan.so"
			}
			s.checkRunnerLibs(t, r, want)
		}
	}
	t.Logf("%d requests by %d clients in %s; /api/ps sampled %d times, at most %.1f MiB in VRAM of %d MiB; %d runner(s) for qwen3, %d for qwen2",
		n, relLoadClients, took.Round(time.Millisecond), samples, float64(maxVRAM)/(1<<20), relLoadGPUMiB,
		len(forkModelRunners(s.Server, models[0])), len(forkModelRunners(s.Server, models[1])))
	if s.Exited() {
		t.Fatalf("server exited: %s", s.ExitDescription())
	}
	relStopClean(t, s.Server)
}

// relPs is GET /api/ps for a goroutine other than the test's.
func relPs(s *Server) ([]forkPSModel, error) {
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get(s.URL.String() + "/api/ps")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var ps struct {
		Models []forkPSModel `json:"models"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&ps); err != nil {
		return nil, err
	}
	return ps.Models, nil
}

// relMiB parses format.HumanBytes2 output in MiB or GiB ("878.9 MiB").
func relMiB(v string) (float64, bool) {
	var n float64
	var unit string
	if _, err := fmt.Sscanf(v, "%f %s", &n, &unit); err != nil {
		return 0, false
	}
	switch unit {
	case "MiB":
		return n, true
	case "GiB":
		return n * 1024, true
	}
	return 0, false
}

// TestForkReliabilityOneGPUAccounting: the qwen3 model runs on the Vulkan
// twin; the qwen2 model then asks for the same GPU through ROCm. The
// scheduler's view of the ROCm device's free memory ("updated VRAM based on
// existing loaded models") must count the Vulkan runner's memory: it is the
// same GPU.
func TestForkReliabilityOneGPUAccounting(t *testing.T) {
	forkBin(t)
	bed := newForkBed(t, Flat)
	const gpuMiB = 900 // under 1 GiB the log prints MiB to 0.1
	s := bed.start(t, "OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), fakegpu.SharedEnv("TOTAL_MIB", fmt.Sprint(gpuMiB)), "OLLAMA_KEEP_ALIVE=10m")
	q3, q2 := forkCreateTiny(t, s.Server, "qwen3"), forkCreateTiny(t, s.Server, "qwen2")
	forkGenerate(t, s.Server, q3)
	e3 := forkPsEntry(t, s.Server, q3)
	if e3.Library != "Vulkan" || e3.SizeVRAM == 0 {
		t.Fatalf("/api/ps qwen3 %+v, want it in VRAM on Vulkan", e3)
	}
	forkGenerate(t, s.Server, q2)
	var rocm LogRecord
	for _, rec := range s.LogRecords("updated VRAM based on existing loaded models") {
		if rec["library"] == "ROCm" {
			rocm = rec
		}
	}
	if rocm == nil {
		t.Fatalf("no \"updated VRAM based on existing loaded models\" line for the ROCm device while qwen3 ran on its Vulkan twin")
	}
	avail, ok := relMiB(rocm["available"])
	if !ok {
		t.Fatalf("available=%q", rocm["available"])
	}
	// The scheduler subtracts a runner's predicted memory on the device
	// (less than /api/ps's size_vram, which also holds what is not per
	// device); without the twin counted, the ROCm device reads all free.
	used := float64(e3.SizeVRAM) / (1 << 20)
	if avail > gpuMiB-0.1 {
		t.Errorf("scheduler: ROCm device available %s of %d MiB while the Vulkan runner of the same GPU holds %.1f MiB: the twin's memory is not counted",
			rocm["available"], gpuMiB, used)
	}
	var vram int64
	ms := forkPsModels(t, s.Server)
	for _, e := range ms {
		vram += e.SizeVRAM
	}
	if uint64(vram) > gpuMiB<<20 {
		t.Errorf("/api/ps %+v: %d bytes in VRAM of %d", ms, vram, uint64(gpuMiB)<<20)
	}
	t.Logf("scheduler's view of the ROCm device with qwen3 (%.1f MiB) on its Vulkan twin: available %s of %d MiB; /api/ps %+v", used, rocm["available"], gpuMiB, ms)
	forkCheckServes(t, s.Server, q2)
	relStopClean(t, s.Server)
}

//go:build integration

package tinymodel

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestLlamaServer loads the tiny models into a real llama-server and checks
// the generated token ids against the cycle the weights encode.
//
//	OBS_LLAMA_SERVER   llama-server command, e.g. "/work/main/scripts/inroot.sh
//	                   runtime llama-server" (the test's temp dir is added to
//	                   OBS_BIND for such wrappers); unset: skip
//	OBS_LLAMA_DEVICES  devices to try, space separated (default "none");
//	                   others than "none" get -ngl 99, e.g. "none Vulkan0"
//	                   with GGML_VK_VISIBLE_DEVICES=0
//	OBS_LLAMA_READY_TIMEOUT  how long a start may take (default 2m)
func TestLlamaServer(t *testing.T) {
	server := strings.Fields(os.Getenv("OBS_LLAMA_SERVER"))
	if len(server) == 0 {
		t.Skip("OBS_LLAMA_SERVER not set")
	}
	devices := strings.Fields(os.Getenv("OBS_LLAMA_DEVICES"))
	if len(devices) == 0 {
		devices = []string{"none"}
	}
	dir := t.TempDir()
	img := filepath.Join(dir, "img.png")
	writePNG(t, img)

	for _, arch := range []string{"qwen3", "qwen2"} {
		c := Tiny(arch)
		model := filepath.Join(dir, arch+".gguf")
		if err := Write(model, c); err != nil {
			t.Fatal(err)
		}
		mmproj := filepath.Join(dir, arch+"-mmproj.gguf")
		if err := WriteProjector(mmproj, c.Projector()); err != nil {
			t.Fatal(err)
		}
		for _, dev := range devices {
			t.Run(arch+"/"+dev, func(t *testing.T) {
				args := []string{"-m", model, "--mmproj", mmproj, "-c", "1024", "--device", dev}
				if dev != "none" {
					args = append(args, "-ngl", "99")
				}
				base := startLlamaServer(t, server, dir, args)

				// "Hello" ends in 'o': the model continues the cycle after it.
				const n = 120
				r := complete(t, base, map[string]any{"prompt": "Hello", "n_predict": n, "temperature": 0})
				want := cycleAfter(c, 'o', n)
				if diff := cmp.Diff(want, r.Tokens); diff != "" {
					t.Errorf("tokens (-cycle +generated):\n%s", diff)
				}
				t.Logf("%s on %s: %q, ids %v...", arch, dev, r.Content[:24], r.Tokens[:12])

				// Default sampling (temperature 0.8) picks the same tokens.
				r = complete(t, base, map[string]any{"prompt": "Hello", "n_predict": 16})
				if diff := cmp.Diff(want[:16], r.Tokens); diff != "" {
					t.Errorf("sampled tokens (-cycle +generated):\n%s", diff)
				}

				// One image through the projector: its patches become tokens.
				b, err := os.ReadFile(img)
				if err != nil {
					t.Fatal(err)
				}
				const text = "Look: " + mediaMarker + " says"
				r = complete(t, base, map[string]any{
					"prompt": map[string]any{
						"prompt_string":   text,
						"multimodal_data": []string{base64.StdEncoding.EncodeToString(b)},
					},
					"n_predict":   8,
					"temperature": 0,
				})
				wantEval := len(text) - len(mediaMarker) + c.Projector().Patches()
				if r.TokensEvaluated != wantEval || len(r.Tokens) != 8 {
					t.Errorf("image prompt: %d tokens evaluated (want %d), %d generated", r.TokensEvaluated, wantEval, len(r.Tokens))
				}
				// after "says" ('s') the cycle continues
				if diff := cmp.Diff(cycleAfter(c, 's', 8), r.Tokens); diff != "" {
					t.Errorf("tokens after the image (-cycle +generated):\n%s", diff)
				}
			})
		}
	}
}

// mediaMarker is handed to llama-server as LLAMA_MEDIA_MARKER, as Ollama does.
const mediaMarker = "<__tinymodel_media__>"

func cycleAfter(c Config, tok, n int) []int {
	cycle := c.Cycle()
	i := slices.Index(cycle, tok)
	var out []int
	for k := range n {
		out = append(out, cycle[(i+1+k)%len(cycle)])
	}
	return out
}

func writePNG(t *testing.T, path string) {
	m := image.NewRGBA(image.Rect(0, 0, 40, 40))
	for y := range 40 {
		for x := range 40 {
			m.Set(x, y, color.RGBA{uint8(6 * x), uint8(6 * y), 128, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startLlamaServer starts the server and waits until /health answers.
func startLlamaServer(t *testing.T, server []string, bind string, args []string) string {
	t.Helper()
	port := freePort(t)
	args = append(args, "--host", "127.0.0.1", "--port", fmt.Sprint(port))
	cmd := exec.Command(server[0], append(server[1:], args...)...)
	cmd.Env = append(os.Environ(),
		"OBS_BIND="+strings.TrimSpace(os.Getenv("OBS_BIND")+" "+bind),
		"LLAMA_MEDIA_MARKER="+mediaMarker)
	logPath := filepath.Join(t.TempDir(), "llama-server.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("llama-server log:\n%s", b)
		}
	})

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	// OBS_LLAMA_READY_TIMEOUT (a Go duration, default 2m): lavapipe
	// compiles the Vulkan pipelines at load, minutes with an empty Mesa
	// shader cache (make integration gives it 6m, native-check 8m).
	wait := 2 * time.Minute
	if d, err := time.ParseDuration(os.Getenv("OBS_LLAMA_READY_TIMEOUT")); err == nil && d > 0 {
		wait = d
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			t.Fatalf("llama-server exited: %v", cmd.ProcessState)
		default:
		}
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("llama-server did not become healthy")
	return ""
}

type completion struct {
	Content         string `json:"content"`
	Tokens          []int  `json:"tokens"`
	TokensEvaluated int    `json:"tokens_evaluated"`
}

func complete(t *testing.T, base string, req map[string]any) completion {
	t.Helper()
	req["return_tokens"] = true
	body, err := json.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/completion", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/completion: %s: %s", resp.Status, out.String())
	}
	var r completion
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("/completion: %v: %s", err, out.String())
	}
	return r
}

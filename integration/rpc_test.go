//go:build integration

package integration

// Remote GPUs through llama.cpp's RPC backend, with real remote hosts on
// this machine: two network namespaces joined to the host by veth pairs,
// each running `ollama rpc` (the CPU in one, lavapipe in the other).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
	"golang.org/x/sys/unix"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

// rpcHost is a network namespace with a veth pair to the host: the
// namespace has IP, the host Peer.
type rpcHost struct {
	NS, IP, Peer string
	HostIf, NSIf string
}

// newRPCHost makes namespace i of this test process and removes it (with
// its veth pair) at cleanup.
func newRPCHost(t testing.TB, i int) rpcHost {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("network namespaces need root")
	}
	id := os.Getpid()%100000*10 + i
	subnet := fmt.Sprintf("10.231.%d", (os.Getpid()%100)*2+i)
	hostIf, nsIf := fmt.Sprintf("or%dh", id), fmt.Sprintf("or%dn", id)
	h := rpcHost{NS: fmt.Sprintf("obs-rpc-%d", id), IP: subnet + ".2", Peer: subnet + ".1", HostIf: hostIf, NSIf: nsIf}
	ip := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", h.NS)
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", h.NS).Run() })
	ip("link", "add", hostIf, "type", "veth", "peer", "name", nsIf)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", hostIf).Run() })
	ip("link", "set", nsIf, "netns", h.NS)
	ip("addr", "add", h.Peer+"/24", "dev", hostIf)
	ip("link", "set", hostIf, "up")
	ip("-n", h.NS, "addr", "add", h.IP+"/24", "dev", nsIf)
	ip("-n", h.NS, "link", "set", nsIf, "up")
	ip("-n", h.NS, "link", "set", "lo", "up")
	return h
}

// rpcRemote is a running `ollama rpc`.
type rpcRemote struct {
	Endpoint string
	Log      string
	cmd      *exec.Cmd
	exited   atomic.Bool
}

// startRPC runs `ollama rpc` with args under prefix (in a namespace, a root)
// and waits until it prints what it exposes and endpoint accepts connections.
func startRPC(t testing.TB, prefix []string, bin string, env []string, endpoint string, args ...string) *rpcRemote {
	t.Helper()
	r := &rpcRemote{Endpoint: endpoint, Log: filepath.Join(t.TempDir(), "rpc.log")}
	f, err := os.Create(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	argv := append(append(slices.Clone(prefix), bin, "rpc"), args...)
	r.cmd = exec.Command(argv[0], argv[1:]...)
	r.cmd.Env = env
	r.cmd.Stdout, r.cmd.Stderr = f, f
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", strings.Join(argv, " "), err)
	}
	go func() { _ = r.cmd.Wait(); r.exited.Store(true) }()
	t.Cleanup(r.kill)
	deadline := time.Now().Add(90 * time.Second)
	for {
		b, _ := os.ReadFile(r.Log)
		if strings.Contains(string(b), "Starting RPC server") && r.accepts() {
			return r
		}
		if r.exited.Load() || time.Now().After(deadline) {
			t.Fatalf("ollama rpc on %s did not start (exited: %v):\n%s", endpoint, r.exited.Load(), tail(string(b), 30))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (r *rpcRemote) accepts() bool {
	c, err := net.DialTimeout("tcp", r.Endpoint, time.Second)
	if err == nil {
		c.Close()
	}
	return err == nil
}

// kill ends `ollama rpc` and its ggml-rpc-server at once, as a host that dies.
func (r *rpcRemote) kill() {
	if r.cmd.Process != nil {
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	}
	for i := 0; i < 100 && !r.exited.Load(); i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

func (r *rpcRemote) output() string {
	b, _ := os.ReadFile(r.Log)
	return string(b)
}

// rpcEnv is the environment of `ollama rpc`: the harness's pass-through
// variables (OBS_BIND, the Mesa cache) and extra.
func rpcEnv(t testing.TB, extra ...string) []string {
	env := []string{"HOME=" + t.TempDir()}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); passthrough.MatchString(k) {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

func TestRPCRemotes(t *testing.T) {
	b := newLSBed(t, forkBin(t))
	cpuHost, vkHost := newRPCHost(t, 0), newRPCHost(t, 1)
	inNS := func(h rpcHost) []string {
		return []string{"ip", "netns", "exec", h.NS, filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName}
	}
	bind := "OBS_BIND=" + os.Getenv("OBS_BIND") + " " + filepath.Dir(b.dir)
	cpu := startRPC(t, inNS(cpuHost), b.bin, rpcEnv(t, bind), cpuHost.IP+":50052", "--host", cpuHost.IP)
	vk := startRPC(t, inNS(vkHost), b.bin, rpcEnv(t, bind, "GGML_VK_VISIBLE_DEVICES=0", "OLLAMA_LLM_LIBRARY=vulkan"), vkHost.IP+":50052", "--host", vkHost.IP)
	// Nothing listens there: refused at once, as a host whose server is down.
	refused := cpuHost.IP + ":50053"
	for _, r := range []*rpcRemote{cpu, vk} {
		if out := r.output(); !strings.Contains(out, "anyone who reaches this port can run work") {
			t.Errorf("ollama rpc --host %s did not warn that the protocol has no authentication:\n%s", r.Endpoint, tail(out, 20))
		}
	}
	if out := vk.output(); !strings.Contains(out, "ollama rpc: exposing Vulkan llvmpipe") || !strings.Contains(out, "-d Vulkan0") {
		t.Errorf("the lavapipe host does not say it exposes Vulkan0:\n%s", tail(out, 20))
	}
	if out := cpu.output(); !strings.Contains(out, "ollama rpc: exposing CPU on "+cpu.Endpoint) {
		t.Errorf("the CPU host does not say it exposes the CPU:\n%s", tail(out, 20))
	}
	servers := "OLLAMA_RPC_SERVERS=" + strings.Join([]string{cpu.Endpoint, vk.Endpoint, refused}, ",")

	s := b.start(t, servers)
	m := forkCreateTiny(t, s, "qwen3")

	t.Run("an endpoint refused at start: one WARN naming it, listed, the rest served", func(t *testing.T) {
		var warned int
		for _, rec := range s.LogRecords("remote RPC server left out, serving without it") {
			if rec["endpoint"] == refused {
				warned++
			}
		}
		if warned == 0 {
			t.Errorf("no WARN names %s", refused)
		}
		out := forkCli(t, s, "backends")
		for _, want := range []string{refused + " ", "unreachable", "Failed to connect to " + refused, cpu.Endpoint, vk.Endpoint, "remote"} {
			if !strings.Contains(out, want) {
				t.Errorf("ollama backends lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("split over the local CPU and both remotes: the local run's greedy tokens", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		local, err := s.Generate(ctx, m.Name, "Hello world", 24, map[string]any{"library": "cpu"})
		if err != nil {
			t.Fatal(err)
		}
		split, err := s.Generate(ctx, m.Name, "Hello world", 24, nil)
		if err != nil {
			t.Fatalf("generate over the remotes: %v\n%s", err, tail(s.Log(), 30))
		}
		if split.Response != local.Response || split.EvalCount != 24 {
			t.Errorf("over the remotes %q (%d tokens), local %q", split.Response, split.EvalCount, local.Response)
		}
		r := forkLastRunner(t, s, m)
		if got, want := argAfter(r.Args, "--rpc"), cpu.Endpoint+","+vk.Endpoint; got != want {
			t.Errorf("runner --rpc %q, want %q (the refused endpoint left out)", got, want)
		}
		if got := runnerDevice(r); got != "RPC0,RPC1" {
			t.Errorf("runner --device %q, want RPC0,RPC1", got)
		}
		for _, e := range []string{cpu.Endpoint, vk.Endpoint} {
			if !strings.Contains(s.Log(), "RPC0["+e+"] model buffer size") {
				t.Errorf("no layers on %s: llama-server logged no model buffer there", e)
			}
		}
		ps := forkPsEntry(t, s, m)
		if !strings.Contains(ps.Library, "RPC "+cpu.Endpoint) || !strings.Contains(ps.Library, "RPC "+vk.Endpoint) || ps.LibraryDecidedBy != "default order" {
			t.Errorf("/api/ps library %q (%s), want both endpoints with their shares", ps.Library, ps.LibraryDecidedBy)
		}
		plans := s.LogRecords("backend plan for model")
		if rec := plans[len(plans)-1]; !strings.Contains(rec["remote_reason"], "the local GPUs have 0 B usable") || rec["rpc"] != cpu.Endpoint+","+vk.Endpoint {
			t.Errorf("the plan line does not say which remotes hold the model and why: %v", rec)
		}
	})
	s.Stop() // an RPC server serves one runner at a time

	s = b.start(t, servers, "OLLAMA_LLM_LIBRARY=rpc")
	m = forkCreateTiny(t, s, "qwen3")

	t.Run("OLLAMA_LLM_LIBRARY=rpc: every layer remote", func(t *testing.T) {
		forkGenerate(t, s, m)
		if !allLayersOffloaded(s.Log()) {
			t.Errorf("llama-server did not offload every layer:\n%s", tail(s.Log(), 30))
		}
		if ps := forkPsEntry(t, s, m); ps.LibraryDecidedBy != "OLLAMA_LLM_LIBRARY" || !strings.Contains(ps.Library, "RPC ") {
			t.Errorf("/api/ps library %q decided by %q", ps.Library, ps.LibraryDecidedBy)
		}
	})

	t.Run("a remote killed mid-generation: the request names it, the next load runs on the other", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
		defer cancel()
		var tokens atomic.Int32
		done := make(chan error, 1)
		go func() {
			req := &api.GenerateRequest{Model: m.Name, Prompt: "Hello", Raw: true, Options: map[string]any{"num_predict": 100000, "temperature": 0.8, "seed": 3}}
			done <- s.Client.Generate(ctx, req, func(api.GenerateResponse) error { tokens.Add(1); return nil })
		}()
		for tokens.Load() < 5 && ctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
		}
		cpu.kill()
		var err error
		select {
		case err = <-done:
		case <-time.After(60 * time.Second):
			t.Fatal("the request still runs 60s after its remote died")
		}
		if err == nil || !strings.Contains(err.Error(), "remote RPC server "+cpu.Endpoint+" stopped answering") {
			t.Fatalf("request error %v, want one naming %s", err, cpu.Endpoint)
		}
		deadline := time.Now().Add(30 * time.Second)
		for len(s.LiveRunners()) > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if n := len(s.LiveRunners()); n > 0 {
			t.Errorf("%d runners alive 30s after the remote died", n)
		}
		if !vk.accepts() {
			t.Fatalf("the other remote died too:\n%s", tail(vk.output(), 20))
		}
		forkGenerate(t, s, m)
		if got := argAfter(forkLastRunner(t, s, m).Args, "--rpc"); got != vk.Endpoint {
			t.Errorf("next runner --rpc %q, want %s alone", got, vk.Endpoint)
		}
	})

	t.Run("the remote back: the next load uses it again", func(t *testing.T) {
		startRPC(t, inNS(cpuHost), b.bin, rpcEnv(t, bind), cpu.Endpoint, "--host", cpuHost.IP)
		forkUnload(t, s, m)
		forkGenerate(t, s, m)
		if got, want := argAfter(forkLastRunner(t, s, m).Args, "--rpc"), cpu.Endpoint+","+vk.Endpoint; got != want {
			t.Errorf("runner --rpc %q, want %q", got, want)
		}
	})
}

// TestRPCExposesVulkanOnGfx1200: `ollama rpc` cannot know the model, so on
// a gfx1200 (a rule denies ROCm for Qwen3) it exposes the Vulkan twin.
func TestRPCExposesVulkanOnGfx1200(t *testing.T) {
	b := newLSBed(t, forkBin(t), fakegpu.HIP, fakegpu.Vulkan)
	port := FreePort(t)
	env := rpcEnv(t, fakegpu.SharedEnv("TRACE", b.trace), fakegpu.SharedEnv("PCI_ID", forkPCIID),
		"OLLAMA_SYSFS_ROOT="+forkRdna4Sysfs(t), "OBS_BIND="+os.Getenv("OBS_BIND")+" "+filepath.Dir(b.dir))
	r := startRPC(t, []string{filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName}, b.bin, env, fmt.Sprintf("127.0.0.1:%d", port),
		"--port", fmt.Sprint(port))
	out := r.output()
	if !strings.Contains(out, "ollama rpc: exposing Vulkan ") || !strings.Contains(out, "-d Vulkan0") || strings.Contains(out, "-d ROCm") {
		t.Errorf("ollama rpc on the gfx1200 twin should expose Vulkan0 only:\n%s", tail(out, 30))
	}
	if strings.Contains(out, "listens beyond this machine") {
		t.Errorf("a loopback endpoint was warned about:\n%s", tail(out, 30))
	}

	// A second one on the same port cannot listen; ggml-rpc-server then
	// exits 0, and `ollama rpc` must not.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName, b.bin, "rpc", "--port", fmt.Sprint(port))
	second.Env = env
	got, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(got), "ggml-rpc-server on "+r.Endpoint+" stopped: ") {
		t.Errorf("ollama rpc on a port in use: %v, want an error saying the server stopped:\n%s", err, tail(string(got), 20))
	}
	r.kill()

	// With the rules dropped it exposes ROCm, and the watchdog watches the
	// GPU after each client, as after a runner: startRPC's own connection is
	// one, and the fake sysfs keeps the GPU at 100% busy.
	stuck := forkRdna4Sysfs(t)
	forkWriteFakeDRM(t, stuck, "card1", forkPCIID, 100)
	rocm := startRPC(t, []string{filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName}, b.bin,
		append(slices.Clone(env), "OLLAMA_SYSFS_ROOT="+stuck, "OLLAMA_BACKEND_DENYLIST=none"), fmt.Sprintf("127.0.0.1:%d", port), "--port", fmt.Sprint(port))
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(rocm.output(), forkStuckMsg) && time.Now().Before(deadline) {
		time.Sleep(250 * time.Millisecond)
	}
	out = rocm.output()
	if !strings.Contains(out, "-d ROCm0") {
		t.Fatalf("ollama rpc with OLLAMA_BACKEND_DENYLIST=none should expose ROCm0:\n%s", tail(out, 30))
	}
	i := strings.Index(out, forkStuckMsg)
	if i < 0 {
		t.Fatalf("no watchdog report after a client left a stuck GPU:\n%s", tail(out, 30))
	}
	report, _, _ := strings.Cut(out[i:], "\n")
	for _, want := range []string{"card=card1", "library=ROCm", "gfx_target=gfx1200", `model="RPC client"`, "learned=false", "OLLAMA_LLM_LIBRARY=vulkan"} {
		if !strings.Contains(report, want) {
			t.Errorf("watchdog report lacks %s:\n%s", want, report)
		}
	}
}

var offloadedLayers = regexp.MustCompile(`offloaded (\d+)/(\d+) layers to GPU`)

// allLayersOffloaded reports whether llama-server's last load put every layer on a device.
func allLayersOffloaded(log string) bool {
	m := offloadedLayers.FindAllStringSubmatch(log, -1)
	return len(m) > 0 && m[len(m)-1][1] == m[len(m)-1][2]
}

func argAfter(args []string, flag string) string {
	if i := slices.Index(args, flag); i >= 0 && i+1 < len(args) {
		return args[i+1]
	}
	return ""
}

// TestRPCRemoteOutOfMemory: a remote that cannot allocate the model's
// buffer (its ggml-rpc-server's address space capped just above what it
// uses, so the allocation fails as on a full device) fails the load with an
// error naming the endpoint.
func TestRPCRemoteOutOfMemory(t *testing.T) {
	b := newLSBed(t, forkBin(t))
	port := FreePort(t)
	bind := "OBS_BIND=" + os.Getenv("OBS_BIND") + " " + filepath.Dir(b.dir)
	r := startRPC(t, []string{filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName}, b.bin,
		rpcEnv(t, bind), fmt.Sprintf("127.0.0.1:%d", port), "--port", fmt.Sprint(port))
	capAddressSpace(t, fmt.Sprintf("ggml-rpc-server -H 127.0.0.1 -p %d", port), 256<<10)
	s := b.start(t, "OLLAMA_RPC_SERVERS="+r.Endpoint, "OLLAMA_LLM_LIBRARY=rpc")
	m := forkCreateTiny(t, s, "qwen3")
	ctx, cancel := context.WithTimeout(context.Background(), loadTimeout)
	defer cancel()
	_, err := s.Generate(ctx, m.Name, "Hello", 4, nil)
	if want := "remote RPC server " + r.Endpoint + " is out of memory: it could not allocate "; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("load on a remote out of memory: %v, want %q\nremote:\n%s", err, want, tail(r.output(), 20))
	}
	if n := len(s.LiveRunners()); n > 0 {
		t.Errorf("%d runners alive after the failed load", n)
	}
	if !r.accepts() {
		t.Errorf("the remote died of the failed allocation:\n%s", tail(r.output(), 20))
	}
	if !strings.Contains(r.output(), "failed to allocate buffer of size") {
		t.Errorf("the remote did not fail an allocation, so the cap tested nothing:\n%s", tail(r.output(), 20))
	}
}

// capAddressSpace limits the address space of the process whose command
// line has match to what it maps now plus margin.
func capAddressSpace(t *testing.T, match string, margin uint64) {
	t.Helper()
	out, err := exec.Command("pgrep", "-f", match).Output()
	if err != nil {
		t.Fatalf("pgrep -f %q: %v", match, err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(out))[0])
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var kb uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmSize:"); ok {
			kb, _ = strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	if kb == 0 {
		t.Fatalf("no VmSize for pid %d", pid)
	}
	limit := unix.Rlimit{Cur: kb<<10 + margin, Max: kb<<10 + margin}
	if err := unix.Prlimit(pid, unix.RLIMIT_AS, &limit, nil); err != nil {
		t.Fatalf("prlimit %d: %v", pid, err)
	}
}

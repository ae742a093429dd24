package discover

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	upstreamllm "github.com/ollama/ollama/llm"
	"github.com/ollama/ollama/ml"

	"github.com/costa-os/ollama-backend-select/envconfig"
)

// RPCDefaultPort is llama.cpp's RPC server's default port.
const RPCDefaultPort = "50052"

// rpcExposure is what `ollama rpc` exposes: per GPU the best-ranked library
// that no rule, configured or learned, denies for any model, since this
// side cannot know the model. A GPU whose every library a rule denies is
// left out, with the reason.
func rpcExposure(d Discovery, learned []QuirkRule) ([]ml.DeviceInfo, []string) {
	rules := slices.Concat(d.Rules, learned)
	choices, _ := chooseLibraries(d.Devices, d.Preference)
	var exposed []ml.DeviceInfo
	var left []string
	for _, c := range choices {
		var denied, undo []string
		found := false
		for _, dev := range append([]ml.DeviceInfo{c.Chosen}, c.Alternates...) {
			if r, ok := deniesSomeUse(rules, dev.Library, dev.Compute()); ok {
				denied = append(denied, fmt.Sprintf("%s (rule %s, %s)", dev.Library, r.String(), r.Source))
				if u := undoRule[r.Source]; !slices.Contains(undo, u) {
					undo = append(undo, u)
				}
				continue
			}
			exposed, found = append(exposed, dev), true
			break
		}
		if !found {
			left = append(left, fmt.Sprintf("%s %s: every library it has is denied for some model: %s; %s",
				c.Chosen.Description, c.Chosen.PCIID, strings.Join(denied, ", "), strings.Join(undo, "; ")))
		}
	}
	return exposed, left
}

// undoRule says how a rule of each source is undone.
var undoRule = map[QuirkSource]string{
	quirkSourceBuiltin: "OLLAMA_BACKEND_DENYLIST=none drops the built-in rules",
	quirkSourceEnv:     "the rule is in OLLAMA_BACKEND_DENYLIST",
	QuirkSourceLearned: envconfig.BackendQuirksResetEnv + "=1 forgets the learned rules",
}

// deniesSomeUse returns the first QuirkUseOtherLibrary rule that matches the
// device for any model.
func deniesSomeUse(rules []QuirkRule, library, compute string) (QuirkRule, bool) {
	for _, r := range rules {
		if r.Action == QuirkUseOtherLibrary && r.matchesDevice(library, compute) {
			return r, true
		}
	}
	return QuirkRule{}, false
}

// rpcServerArgs are ggml-rpc-server's arguments and environment for the
// exposed devices; the CPU when there is no GPU.
func rpcServerArgs(exposed []ml.DeviceInfo, endpoint string) ([]string, map[string]string) {
	host, port, _ := net.SplitHostPort(endpoint)
	host = strings.Trim(host, "[]")
	r := runnerDevices(exposed)
	args := []string{"-H", host, "-p", port}
	switch r.Device {
	case "none":
		args = append(args, "-d", "CPU")
	case "":
	default:
		args = append(args, "-d", r.Device)
	}
	return args, r.Env
}

// rpcServerNames are the names of llama.cpp's RPC server: Debian's, then llama.cpp's.
var rpcServerNames = []string{"ggml-rpc-server", "rpc-server"}

// findRPCServer looks beside llama-server, then where distributions install
// it, then on PATH.
func findRPCServer() (string, error) {
	var dirs []string
	if exe, err := upstreamllm.FindLlamaServer(); err == nil {
		dirs = append(dirs, filepath.Dir(exe))
	}
	distro, _ := filepath.Glob("/usr/libexec/*/llama/bin")
	dirs = append(dirs, distro...)
	for _, dir := range dirs {
		for _, name := range rpcServerNames {
			if p, err := exec.LookPath(filepath.Join(dir, name)); err == nil {
				return p, nil
			}
		}
	}
	for _, name := range rpcServerNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("llama.cpp's RPC server (%s) is neither beside llama-server, nor in /usr/libexec/*/llama/bin, nor on PATH",
		strings.Join(rpcServerNames, " or "))
}

// RPCEndpoint checks `ollama rpc`'s --host and --port: ggml-rpc-server
// binds an IPv4 address only.
func RPCEndpoint(host, port string) (string, error) {
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || strings.Contains(host, ":") {
		return "", fmt.Errorf("--host %q is not an IPv4 address (e.g. 127.0.0.1, 10.0.0.2)", host)
	}
	n, err := envconfig.ParsePort(port)
	if err != nil {
		return "", fmt.Errorf("--port: %w", err)
	}
	return host + ":" + strconv.Itoa(n), nil
}

// RunnerWatch is what the idle-GPU watchdog (gpuwatch.Watchdog) is told of
// the runners on this host's GPUs, and what it learned.
type RunnerWatch interface {
	Learned
	RunnerLoaded(pid int, m ModelLoad, ids []ml.DeviceID, devices []ml.DeviceInfo)
	RunnerExiting(pid int, hasExited func() bool)
}

// rpcClient is how the watchdog names an RPC client, whose model this side
// does not know.
const rpcClient = "RPC client"

// ServeRPC runs ggml-rpc-server on endpoint until ctx ends, exposing the
// devices of d that rpcExposure allows. Each client is, for watch, a runner
// on the exposed GPUs that exits when the client leaves; watch may be nil.
func ServeRPC(ctx context.Context, d Discovery, endpoint string, watch RunnerWatch) error {
	exe, err := findRPCServer()
	if err != nil {
		return err
	}
	var learned []QuirkRule
	if watch != nil {
		learned = watch.LearnedRules()
	}
	exposed, left := rpcExposure(d, learned)
	for _, l := range left {
		slog.Warn("ollama rpc: GPU not exposed", "gpu", l)
	}
	args, env := rpcServerArgs(exposed, endpoint)
	host, _, _ := net.SplitHostPort(endpoint)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		slog.Warn("ollama rpc listens beyond this machine: llama.cpp's RPC protocol has no authentication, anyone who reaches this port can run work on these devices; expose it only on a network you trust", "endpoint", endpoint)
	}
	what := "CPU"
	if len(exposed) > 0 {
		var names []string
		for _, e := range exposed {
			names = append(names, strings.TrimSuffix(fmt.Sprintf("%s %s (%s)", e.Library, e.Description, e.PCIID), " ()"))
		}
		what = strings.Join(names, ", ")
	}
	fmt.Fprintf(os.Stderr, "ollama rpc: exposing %s on %s (%s %s)\n", what, endpoint, exe, strings.Join(args, " "))
	// ggml-rpc-server leaves SIGPIPE at its default, so a client that dies
	// mid-reply (a runner that another remote's failure aborted) would kill
	// it; an ignored signal stays ignored across exec.
	ignoreSIGPIPE()
	cmd := exec.CommandContext(ctx, exe, args...)
	upstreamllm.SetupLlamaServerCommandEnv(cmd, exe, ml.LibraryPaths(exposed), env)
	ids := make([]ml.DeviceID, len(exposed))
	for i, e := range exposed {
		ids[i] = e.DeviceID
	}
	// cmd.Process is set before Run starts copying the output.
	last := &rpcOutput{w: os.Stderr, client: func(connected bool) {
		switch {
		case watch == nil:
		case connected:
			watch.RunnerLoaded(cmd.Process.Pid, ModelLoad{Name: rpcClient}, ids, exposed)
		default:
			watch.RunnerExiting(cmd.Process.Pid, nil)
		}
	}}
	cmd.Stdout, cmd.Stderr = last, last
	err = cmd.Run()
	select {
	case <-ctx.Done():
		return nil // stopped by us
	default:
	}
	// It returns 0 when it cannot listen: any end before ours is a failure.
	why := last.String()
	if err != nil {
		why = cmp.Or(why+" ("+err.Error()+")", err.Error())
	}
	return fmt.Errorf("%s on %s stopped: %s", filepath.Base(exe), endpoint, cmp.Or(why, "no reason given"))
}

// maxRPCLine bounds what rpcOutput keeps of a line without its newline.
const maxRPCLine = 4096

// rpcOutput passes ggml-rpc-server's output on, keeps its last non-empty
// line, and calls client when a client connects or leaves.
type rpcOutput struct {
	w      io.Writer
	client func(connected bool)

	mu      sync.Mutex
	partial string
	line    string
}

func (o *rpcOutput) Write(b []byte) (int, error) {
	o.mu.Lock()
	lines := strings.Split(o.partial+string(b), "\n")
	o.partial = lines[len(lines)-1]
	if len(o.partial) > maxRPCLine {
		o.partial = o.partial[len(o.partial)-maxRPCLine:]
	}
	for _, s := range lines[:len(lines)-1] {
		s = strings.TrimSpace(s)
		switch s {
		case "":
			continue
		case "Accepted client connection":
			o.client(true)
		case "Client connection closed":
			o.client(false)
		}
		o.line = s
	}
	o.mu.Unlock()
	return o.w.Write(b)
}

func (o *rpcOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return cmp.Or(strings.TrimSpace(o.partial), o.line)
}

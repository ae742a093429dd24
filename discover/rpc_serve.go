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
// that no rule denies for any model, since this side cannot know the model.
// A GPU whose every library a rule denies is left out, with the reason.
func rpcExposure(d Discovery) ([]ml.DeviceInfo, []string) {
	rules := d.Rules
	choices, _ := chooseLibraries(d.Devices, d.Preference)
	var exposed []ml.DeviceInfo
	var left []string
	for _, c := range choices {
		var denied []string
		found := false
		for _, dev := range append([]ml.DeviceInfo{c.Chosen}, c.Alternates...) {
			if r, ok := deniesSomeUse(rules, dev.Library, dev.Compute()); ok {
				denied = append(denied, fmt.Sprintf("%s (rule %s, %s)", dev.Library, r.String(), r.Source))
				continue
			}
			exposed, found = append(exposed, dev), true
			break
		}
		if !found {
			left = append(left, fmt.Sprintf("%s %s: every library it has is denied for some model: %s; OLLAMA_BACKEND_DENYLIST=none drops the built-in rules",
				c.Chosen.Description, c.Chosen.PCIID, strings.Join(denied, ", ")))
		}
	}
	return exposed, left
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

// ServeRPC runs ggml-rpc-server on endpoint until ctx ends, exposing the
// devices of d that rpcExposure allows.
func ServeRPC(ctx context.Context, d Discovery, endpoint string) error {
	exe, err := findRPCServer()
	if err != nil {
		return err
	}
	exposed, left := rpcExposure(d)
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
	last := &lastLine{w: os.Stderr}
	cmd.Stdout, cmd.Stderr = last, last
	err = cmd.Run()
	if ctx.Err() != nil {
		return nil
	}
	// It returns 0 when it cannot listen: any end before ours is a failure.
	why := last.String()
	if err != nil {
		why = cmp.Or(why+" ("+err.Error()+")", err.Error())
	}
	return fmt.Errorf("%s on %s stopped: %s", filepath.Base(exe), endpoint, cmp.Or(why, "no reason given"))
}

// lastLine passes output on and keeps its last non-empty line.
type lastLine struct {
	w    io.Writer
	mu   sync.Mutex
	line string
}

func (l *lastLine) Write(b []byte) (int, error) {
	l.mu.Lock()
	for _, s := range strings.Split(string(b), "\n") {
		if s = strings.TrimSpace(s); s != "" {
			l.line = s
		}
	}
	l.mu.Unlock()
	return l.w.Write(b)
}

func (l *lastLine) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

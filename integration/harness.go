//go:build integration

package integration

// Harness for running `ollama serve` in tests: a private port, models dir and
// HOME, an optional wrapper prefix (OBS_RUN_PREFIX, e.g. a chroot helper), a
// captured log, a /proc watcher that records the runner processes the server
// spawns (their environment and the libggml-*.so files they map), API helpers,
// and a cleanup that kills the whole process group.

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ollama/ollama/api"
)

// RepoRoot is the root of this repository (derived from this file's path).
func RepoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		wd, _ := os.Getwd()
		return filepath.Dir(wd)
	}
	return filepath.Dir(filepath.Dir(file))
}

// OllamaBin is the binary under test: $OBS_OLLAMA_BIN or <repo>/dist/bin/ollama.
func OllamaBin() string {
	if b := os.Getenv("OBS_OLLAMA_BIN"); b != "" {
		return b
	}
	return filepath.Join(RepoRoot(), "dist", "bin", "ollama")
}

// UpstreamBin is the pristine upstream binary: $OBS_UPSTREAM_BIN or
// <repo>/dist/upstream/bin/ollama.
func UpstreamBin() string {
	if b := os.Getenv("OBS_UPSTREAM_BIN"); b != "" {
		return b
	}
	return filepath.Join(RepoRoot(), "dist", "upstream", "bin", "ollama")
}

// RequireBinary skips the test when bin is not an executable file.
func RequireBinary(t testing.TB, bin, what string) {
	t.Helper()
	st, err := os.Stat(bin)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Skipf("%s binary %s not available (build it first, or set the env var): %v", what, bin, err)
	}
}

// RunPrefix is the wrapper command from $OBS_RUN_PREFIX (split on
// whitespace; relative first word resolved against the repo root), or nil.
func RunPrefix() []string {
	p := strings.Fields(os.Getenv("OBS_RUN_PREFIX"))
	if len(p) > 0 && !filepath.IsAbs(p[0]) && strings.Contains(p[0], "/") {
		p[0] = filepath.Join(RepoRoot(), p[0])
	}
	return p
}

// ServerOptions configure StartServer.
type ServerOptions struct {
	// Bin is the ollama binary (default OllamaBin()).
	Bin string
	// Env is added to the server's environment ("K=V"); it wins over the
	// harness defaults.
	Env []string
	// Prefix wraps the command (default RunPrefix()); use []string{} to
	// force none.
	Prefix []string
	// Binds are extra paths a prefix must make visible (appended to
	// OBS_BIND); the server's temp dir and Bin's directory are added
	// automatically.
	Binds []string
	// RootBin is the binary's path inside the prefix's root when the server
	// runs one installed there (a package's /usr/bin/ollama): the prefix
	// runs RootBin, Bin is the same file seen from outside and stays
	// unbound, so the root's own folders around RootBin are what it finds.
	RootBin string
	// NoWait skips WaitReady (for servers expected to refuse to start).
	NoWait bool
	// ReadyTimeout bounds WaitReady (default 90s: discovery of a hanging
	// backend takes 30s per pass).
	ReadyTimeout time.Duration
	// Debug sets OLLAMA_DEBUG (default "1"; "2" = trace, which also
	// forwards discovery runners' output into the log).
	Debug string
}

// Server is a running `ollama serve`.
type Server struct {
	t       testing.TB
	Bin     string
	Dir     string // private temp dir (HOME, models, cwd, log)
	Home    string
	Models  string
	Host    string // 127.0.0.1:PORT
	URL     *url.URL
	Client  *api.Client
	LogPath string
	Args    []string
	Env     []string

	cmd     *exec.Cmd
	done    chan struct{}
	state   *os.ProcessState
	waitErr error
	watch   *procWatcher
	stopped bool
}

// FreePort returns a currently free TCP port on 127.0.0.1.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// passthrough lists environment variables handed from the test process to
// the server (everything else is dropped to keep runs reproducible).
var passthrough = regexp.MustCompile(`^(PATH|LANG|LC_[A-Z]+|TZ|TMPDIR|OBS_[A-Z0-9_]+|GOCOVERDIR|MESA_SHADER_CACHE_DIR)$`)

// StartServer starts `ollama serve` and registers its cleanup. Unless
// opts.NoWait it waits until the API answers (which in v0.18.2 is after GPU
// discovery has finished and the "inference compute" lines are logged).
func StartServer(t testing.TB, opts ServerOptions) *Server {
	t.Helper()
	bin := opts.Bin
	if bin == "" {
		bin = OllamaBin()
	}
	RequireBinary(t, bin, "ollama")
	if abs, err := filepath.Abs(bin); err == nil {
		bin = abs
	}
	dir := t.TempDir()
	s := &Server{
		t:       t,
		Bin:     bin,
		Dir:     dir,
		Home:    filepath.Join(dir, "home"),
		Models:  filepath.Join(dir, "models"),
		LogPath: filepath.Join(dir, "server.log"),
		done:    make(chan struct{}),
	}
	for _, d := range []string{s.Home, s.Models} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	port := FreePort(t)
	s.Host = fmt.Sprintf("127.0.0.1:%d", port)
	s.URL = &url.URL{Scheme: "http", Host: s.Host}
	s.Client = api.NewClient(s.URL, &http.Client{})

	debug := opts.Debug
	if debug == "" {
		debug = "1"
	}
	env := map[string]string{}
	for _, kv := range os.Environ() {
		if k, v, ok := strings.Cut(kv, "="); ok && passthrough.MatchString(k) {
			env[k] = v
		}
	}
	env["HOME"] = s.Home
	env["OLLAMA_HOST"] = s.Host
	env["OLLAMA_MODELS"] = s.Models
	env["OLLAMA_DEBUG"] = debug
	env["OLLAMA_NOPRUNE"] = "1"
	prefix := opts.Prefix
	if prefix == nil {
		prefix = RunPrefix()
	}
	if len(prefix) > 0 {
		binds := append([]string{dir}, opts.Binds...)
		if opts.RootBin == "" {
			binds = append(binds, filepath.Dir(bin))
		}
		if old := env["OBS_BIND"]; old != "" {
			binds = append(strings.Fields(old), binds...)
		}
		env["OBS_BIND"] = strings.Join(binds, " ")
	}
	for _, kv := range opts.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	if h := env["OLLAMA_HOST"]; h != s.Host {
		// the caller chose the address
		s.Host = strings.TrimPrefix(strings.TrimPrefix(h, "http://"), "https://")
		s.URL = &url.URL{Scheme: "http", Host: s.Host}
		s.Client = api.NewClient(s.URL, &http.Client{})
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s.Env = append(s.Env, k+"="+env[k])
	}

	s.Args = append(append([]string{}, prefix...), cmp.Or(opts.RootBin, bin), "serve")
	// The server writes straight into the log file (no pipe and copying
	// goroutine), so a line logged before an API response is always
	// readable once the response has arrived.
	f, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command(s.Args[0], s.Args[1:]...)
	s.cmd.Env = s.Env
	s.cmd.Dir = dir // keep upstream's cwd-relative build/lib/ollama lookup inside the temp dir
	s.cmd.Stdout = f
	s.cmd.Stderr = f
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %v: %v", s.Args, err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.done)
	}()
	s.watch = newProcWatcher(s.cmd.Process.Pid)
	t.Cleanup(func() {
		s.Stop()
		f.Close()
		if t.Failed() {
			t.Logf("server log (%s), last 60 lines:\n%s", s.LogPath, tail(s.Log(), 60))
		}
		if d := os.Getenv("OBS_LOG_DIR"); d != "" {
			name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
			_ = os.MkdirAll(d, 0o755)
			_ = os.WriteFile(filepath.Join(d, name+".server.log"), []byte(s.Log()), 0o644)
		}
	})
	t.Logf("started %s (pid %d) on %s", strings.Join(s.Args, " "), s.cmd.Process.Pid, s.Host)

	if !opts.NoWait {
		timeout := opts.ReadyTimeout
		if timeout == 0 {
			timeout = 90 * time.Second
		}
		if err := s.WaitReady(timeout); err != nil {
			t.Fatalf("server not ready: %v\nlog tail:\n%s", err, tail(s.Log(), 40))
		}
	}
	return s
}

// PID of the started process (the prefix wrapper's PID, which inroot.sh
// replaces with the server via exec).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Log returns everything the server (and its runners) wrote so far.
func (s *Server) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// Exited reports whether the server process has exited.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// WaitReady polls GET /api/version until it answers 200, the process exits,
// or timeout passes.
func (s *Server) WaitReady(timeout time.Duration) error {
	start := time.Now()
	deadline := start.Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if s.Exited() {
			return fmt.Errorf("server exited before it was ready: %s", s.ExitDescription())
		}
		resp, err := hc.Get(s.URL.String() + "/api/version")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.t.Logf("server ready after %s", time.Since(start).Round(time.Millisecond))
				return nil
			}
		}
		select {
		case <-s.done:
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("not ready after %s", timeout)
}

// WaitExit waits for the process to exit and returns its exit code (-1 if
// killed by a signal).
func (s *Server) WaitExit(timeout time.Duration) (int, error) {
	select {
	case <-s.done:
		return s.state.ExitCode(), nil
	case <-time.After(timeout):
		return 0, fmt.Errorf("server still running after %s", timeout)
	}
}

// ExitCode is the exit code, or -2 while running.
func (s *Server) ExitCode() int {
	if !s.Exited() {
		return -2
	}
	return s.state.ExitCode()
}

// ExitDescription describes how the process ended.
func (s *Server) ExitDescription() string {
	if !s.Exited() {
		return "running"
	}
	return fmt.Sprintf("%v (exit code %d)", s.waitErr, s.state.ExitCode())
}

// Stop kills the server's process group (SIGTERM, then SIGKILL after 5s)
// and any straggler that left the group but descends from the server.
func (s *Server) Stop() {
	if s.stopped {
		return
	}
	s.stopped = true
	pgid := s.cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-s.done
	s.watch.stop()
	// Runners are spawned in the server's group; SIGKILL the group again in
	// case one was still starting, then verify nothing is left.
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := processesInGroup(pgid)
		for _, p := range s.watch.all() {
			if processAlive(p.PID, p.Start) {
				left = append(left, p.PID)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if time.Now().After(deadline) {
			s.t.Errorf("processes left after stopping the server: %v", left)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// log parsing

// LogRecord is one slog text line split into key/value pairs.
type LogRecord map[string]string

// ParseLogLine parses slog's text format (key=value, values optionally
// Go-quoted). It returns nil for lines without msg=.
func ParseLogLine(line string) LogRecord {
	rec := LogRecord{}
	i := 0
	for i < len(line) {
		for i < len(line) && line[i] == ' ' {
			i++
		}
		eq := strings.IndexByte(line[i:], '=')
		if eq <= 0 {
			break
		}
		key := line[i : i+eq]
		if strings.ContainsAny(key, " \"") {
			// not a key=value token: skip to the next space
			sp := strings.IndexByte(line[i:], ' ')
			if sp < 0 {
				break
			}
			i += sp + 1
			continue
		}
		i += eq + 1
		var val string
		if i < len(line) && line[i] == '"' {
			j := i + 1
			for j < len(line) && line[j] != '"' {
				if line[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(line) {
				j = len(line) - 1
			}
			raw := line[i : j+1]
			if u, err := strconv.Unquote(raw); err == nil {
				val = u
			} else {
				val = strings.Trim(raw, `"`)
			}
			i = j + 1
		} else {
			sp := strings.IndexByte(line[i:], ' ')
			if sp < 0 {
				val = line[i:]
				i = len(line)
			} else {
				val = line[i : i+sp]
				i += sp
			}
		}
		rec[key] = val
	}
	if _, ok := rec["msg"]; !ok {
		return nil
	}
	return rec
}

// LogRecords returns the parsed log lines whose msg equals msg ("" = all).
func (s *Server) LogRecords(msg string) []LogRecord {
	var out []LogRecord
	sc := bufio.NewScanner(strings.NewReader(s.Log()))
	sc.Buffer(make([]byte, 0, 64*1024), 4<<20)
	for sc.Scan() {
		if rec := ParseLogLine(sc.Text()); rec != nil && (msg == "" || rec["msg"] == msg) {
			out = append(out, rec)
		}
	}
	return out
}

// InferenceCompute returns the "inference compute" records (one per device
// the server will schedule on, or one library=cpu record).
func (s *Server) InferenceCompute() []LogRecord { return s.LogRecords("inference compute") }

// WaitForLog waits until a log line matches re.
func (s *Server) WaitForLog(re *regexp.Regexp, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(s.Log(), "\n") {
			if re.MatchString(line) {
				return line, nil
			}
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("no log line matching %q after %s", re, timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ---------------------------------------------------------------------------
// API helpers

// PS is GET /api/ps.
func (s *Server) PS(ctx context.Context) (*api.ProcessResponse, error) {
	return s.Client.ListRunning(ctx)
}

// CreateModel uploads a GGUF file as a blob and creates model name from it
// (the API equivalent of `ollama create name` with "FROM ./file.gguf").
func (s *Server) CreateModel(ctx context.Context, name, gguf string) error {
	return s.CreateModelFiles(ctx, name, []string{gguf}, nil)
}

// CreateModelFiles uploads GGUF files as blobs (a model, and a vision
// projector as a second file) and creates model name from them with the
// parameters (a Modelfile's PARAMETER lines).
func (s *Server) CreateModelFiles(ctx context.Context, name string, ggufs []string, params map[string]any) error {
	files := make(map[string]string, len(ggufs))
	for _, gguf := range ggufs {
		digest, err := s.uploadBlob(ctx, gguf)
		if err != nil {
			return err
		}
		files[filepath.Base(gguf)] = digest
	}
	stream := false
	var last api.ProgressResponse
	err := s.Client.Create(ctx, &api.CreateRequest{
		Model:      name,
		Files:      files,
		Parameters: params,
		Stream:     &stream,
	}, func(p api.ProgressResponse) error { last = p; return nil })
	if err != nil {
		return fmt.Errorf("create %s: %w", name, err)
	}
	if last.Status != "success" {
		return fmt.Errorf("create %s: final status %q", name, last.Status)
	}
	return nil
}

// uploadBlob uploads a file as a blob and returns its digest.
func (s *Server) uploadBlob(ctx context.Context, file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if err := s.Client.CreateBlob(ctx, digest, f); err != nil {
		return "", fmt.Errorf("create blob %s: %w", file, err)
	}
	return digest, nil
}

// GenerateResult is the outcome of Generate.
type GenerateResult struct {
	Response string
	api.GenerateResponse
	Wall time.Duration
}

// Generate runs a raw, non-streaming, greedy generation of numPredict tokens.
// options are merged over {num_predict, temperature: 0, seed: 1}.
func (s *Server) Generate(ctx context.Context, model, prompt string, numPredict int, options map[string]any) (*GenerateResult, error) {
	opts := map[string]any{"num_predict": numPredict, "temperature": 0, "seed": 1}
	for k, v := range options {
		opts[k] = v
	}
	stream := false
	req := &api.GenerateRequest{Model: model, Prompt: prompt, Raw: true, Stream: &stream, Options: opts}
	start := time.Now()
	var res GenerateResult
	err := s.Client.Generate(ctx, req, func(r api.GenerateResponse) error {
		res.Response += r.Response
		if r.Done {
			res.GenerateResponse = r
		}
		return nil
	})
	res.Wall = time.Since(start)
	if err != nil {
		return &res, err
	}
	res.GenerateResponse.Response = res.Response
	return &res, nil
}

// ---------------------------------------------------------------------------
// runner processes

// Proc is a process that descends from the server, as seen by the watcher.
type Proc struct {
	PID     int
	PPID    int
	Start   uint64 // start time in clock ticks (identifies the PID instance)
	Args    []string
	Env     map[string]string
	Libs    []string // libggml-*.so files mapped at any time it was observed
	Maps    []string // all mapped .so files observed
	Alive   bool
	First   time.Time
	LastMap time.Time
}

// IsRunner reports whether the process is a runner: llama-server (from
// Ollama v0.30) or `ollama runner` (the cgo runner, and the native probe).
func (p Proc) IsRunner() bool {
	return (len(p.Args) > 0 && filepath.Base(p.Args[0]) == "llama-server") || (len(p.Args) > 1 && p.Args[1] == "runner")
}

// IsDiscovery reports whether it is a runner without --model (a discovery
// run).
func (p Proc) IsDiscovery() bool { return p.IsRunner() && !slices.Contains(p.Args, "--model") }

// MapsLib reports whether a mapped libggml file has the given base name.
func (p Proc) MapsLib(base string) bool {
	for _, l := range p.Libs {
		if filepath.Base(l) == base {
			return true
		}
	}
	return false
}

// Runners returns every runner process observed so far (alive or not).
func (s *Server) Runners() []Proc {
	var out []Proc
	for _, p := range s.watch.all() {
		if p.IsRunner() {
			out = append(out, p)
		}
	}
	return out
}

// LiveRunners returns the runners alive now, with freshly read maps.
func (s *Server) LiveRunners() []Proc {
	s.watch.scan()
	var out []Proc
	for _, p := range s.Runners() {
		if p.Alive {
			out = append(out, p)
		}
	}
	return out
}

// procWatcher polls /proc for descendants of root.
type procWatcher struct {
	root  int
	mu    sync.Mutex
	procs map[string]*Proc // key pid/start
	quit  chan struct{}
	wg    sync.WaitGroup
}

const watchInterval = 10 * time.Millisecond

func newProcWatcher(root int) *procWatcher {
	w := &procWatcher{root: root, procs: map[string]*Proc{}, quit: make(chan struct{})}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		for {
			w.scan()
			select {
			case <-w.quit:
				return
			case <-t.C:
			}
		}
	}()
	return w
}

func (w *procWatcher) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
	w.scan()
}

func (w *procWatcher) all() []Proc {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]Proc, 0, len(w.procs))
	for _, p := range w.procs {
		c := *p
		c.Libs = slices.Clone(p.Libs)
		c.Maps = slices.Clone(p.Maps)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].First.Before(out[j].First) })
	return out
}

type procStat struct {
	pid, ppid, pgrp int
	start           uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm may contain spaces: fields start after the last ')'
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("bad stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, errors.New("short stat")
	}
	st := procStat{pid: pid}
	st.ppid, _ = strconv.Atoi(f[1])
	st.pgrp, _ = strconv.Atoi(f[2])
	st.start, _ = strconv.ParseUint(f[19], 10, 64)
	return st, nil
}

func listPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

func processesInGroup(pgid int) []int {
	var out []int
	for _, pid := range listPIDs() {
		if st, err := readStat(pid); err == nil && st.pgrp == pgid {
			out = append(out, pid)
		}
	}
	return out
}

func processAlive(pid int, start uint64) bool {
	st, err := readStat(pid)
	return err == nil && st.start == start
}

func readNul(path string) []string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

func readMaps(pid int) (libs, sos []string) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return nil, nil
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		path := strings.Join(f[5:], " ")
		if seen[path] || !strings.Contains(filepath.Base(path), ".so") {
			continue
		}
		seen[path] = true
		sos = append(sos, path)
		if strings.HasPrefix(filepath.Base(path), "libggml-") {
			libs = append(libs, path)
		}
	}
	return libs, sos
}

func addUnique(dst []string, src ...string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return dst
}

// scan records descendants of root; it is safe to call concurrently.
func (w *procWatcher) scan() {
	stats := map[int]procStat{}
	children := map[int][]int{}
	for _, pid := range listPIDs() {
		st, err := readStat(pid)
		if err != nil {
			continue
		}
		stats[pid] = st
		children[st.ppid] = append(children[st.ppid], pid)
	}
	var desc []procStat
	queue := []int{w.root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			desc = append(desc, stats[c])
			queue = append(queue, c)
		}
	}
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	live := map[string]bool{}
	for _, st := range desc {
		key := fmt.Sprintf("%d/%d", st.pid, st.start)
		live[key] = true
		p, ok := w.procs[key]
		if !ok {
			p = &Proc{PID: st.pid, PPID: st.ppid, Start: st.start, First: now, Env: map[string]string{}}
			w.procs[key] = p
		}
		// re-read argv/env until populated (a forked child has not exec'd yet)
		if args := readNul(fmt.Sprintf("/proc/%d/cmdline", st.pid)); len(args) > 0 && !slices.Equal(args, p.Args) {
			p.Args = args
			p.Env = map[string]string{}
			for _, kv := range readNul(fmt.Sprintf("/proc/%d/environ", st.pid)) {
				if k, v, ok := strings.Cut(kv, "="); ok {
					p.Env[k] = v
				}
			}
		}
		if libs, sos := readMaps(st.pid); len(sos) > 0 {
			p.Libs = addUnique(p.Libs, libs...)
			p.Maps = addUnique(p.Maps, sos...)
			p.LastMap = now
		}
	}
	for key, p := range w.procs {
		p.Alive = live[key]
	}
}

// StopGracefully asks the server alone (not its process group) to stop with
// SIGTERM, waits up to timeout for it to exit, then gives its runners two
// seconds to follow and returns the processes of its group still alive:
// what the server left behind. Stop then kills whatever remains.
func (s *Server) StopGracefully(timeout time.Duration) ([]Proc, error) {
	if s.stopped {
		return nil, errors.New("server already stopped")
	}
	pgid := s.cmd.Process.Pid
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(timeout):
		s.Stop()
		return nil, fmt.Errorf("server still running %s after SIGTERM", timeout)
	}
	var left []Proc
	for deadline := time.Now().Add(2 * time.Second); ; {
		s.watch.scan()
		left = left[:0]
		alive := map[int]bool{}
		for _, pid := range processesInGroup(pgid) {
			alive[pid] = true
		}
		for _, p := range s.watch.all() {
			if alive[p.PID] || processAlive(p.PID, p.Start) {
				left = append(left, p)
				delete(alive, p.PID)
			}
		}
		for pid := range alive {
			left = append(left, Proc{PID: pid})
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	return left, nil
}

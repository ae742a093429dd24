//go:build integration

package integration

// BenchmarkRPC: the tiny qwen3 on the local CPU against the same model with
// every layer on two remote hosts (network namespaces running `ollama rpc`,
// the CPU in each), whose links are limited to 1 Gbit/s (tbf) and delayed
// by a proxy on the host, since this kernel has no netem. One invocation
// measures every row, so compare the rows' ratios:
//
//	make build runtime
//	go test -tags integration -run '^$' -bench RPC -benchtime 5x ./integration/
//
// rpc-msgs/token counts the proxied reads in both directions per token
// (prompt and generated): the messages a link's delay multiplies;
// held-ms/msg is the one-way delay the proxy achieved.

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/costa-os/ollama-backend-select/integration/internal/fakegpu"
)

func BenchmarkRPC(b *testing.B) {
	bed := newLSBed(b, forkBin(b))
	var endpoints []string
	for i := range 2 {
		h := newRPCHost(b, i)
		limitLink(b, h)
		r := startRPC(b, []string{"ip", "netns", "exec", h.NS, filepath.Join(RepoRoot(), "scripts", "inroot.sh"), fakegpu.RootName}, bed.bin,
			rpcEnv(b, "OBS_BIND="+os.Getenv("OBS_BIND")+" "+filepath.Dir(bed.dir)), h.IP+":50052", "--host", h.IP)
		endpoints = append(endpoints, r.Endpoint)
	}
	rows := []struct {
		name  string
		delay time.Duration // one way; -1: the local CPU, no remote
	}{{"local-cpu", -1}, {"remote-2x-cpu/0ms", 0}, {"remote-2x-cpu/0.2ms", 200 * time.Microsecond}, {"remote-2x-cpu/1ms", time.Millisecond}}
	for _, row := range rows {
		b.Run(row.name, func(b *testing.B) {
			env := []string{"OLLAMA_LLM_LIBRARY=cpu"}
			var proxies []*delayProxy
			if row.delay >= 0 {
				var addrs []string
				for _, e := range endpoints {
					p := startDelayProxy(b, e, row.delay)
					proxies = append(proxies, p)
					addrs = append(addrs, p.Addr)
				}
				env = []string{"OLLAMA_RPC_SERVERS=" + strings.Join(addrs, ","), "OLLAMA_LLM_LIBRARY=rpc"}
			}
			s := bed.start(b, env...)
			m := forkCreateTiny(b, s, "qwen3")
			forkGenerate(b, s, m) // load
			var evalCount, promptCount int
			var evalDur, promptDur time.Duration
			var msgs int64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				before := proxyReads(proxies)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				res, err := s.Generate(ctx, m.Name, "The quick brown fox jumps over the lazy dog", 64, nil)
				cancel()
				if err != nil {
					b.Fatal(err)
				}
				msgs += proxyReads(proxies) - before
				evalCount += res.EvalCount
				evalDur += res.EvalDuration
				promptCount += res.PromptEvalCount
				promptDur += res.PromptEvalDuration
			}
			b.StopTimer()
			b.ReportMetric(float64(evalCount)/evalDur.Seconds(), "decode-tok/s")
			b.ReportMetric(float64(promptCount)/promptDur.Seconds(), "prefill-tok/s")
			if len(proxies) > 0 {
				b.ReportMetric(float64(msgs)/float64(evalCount+promptCount), "rpc-msgs/token")
				var held, reads int64
				for _, p := range proxies {
					held, reads = held+p.held.Load(), reads+p.reads.Load()
				}
				b.ReportMetric(float64(held)/float64(reads)/1e6, "held-ms/msg")
			}
			s.Stop() // an RPC server serves one runner at a time
		})
	}
}

// limitLink caps both directions of the host's link to h at 1 Gbit/s.
func limitLink(tb testing.TB, h rpcHost) {
	tb.Helper()
	tbf := []string{"root", "tbf", "rate", "1gbit", "burst", "128kb", "latency", "50ms"}
	for _, args := range [][]string{
		append([]string{"qdisc", "add", "dev", h.HostIf}, tbf...),
		append([]string{"-n", h.NS, "qdisc", "add", "dev", h.NSIf}, tbf...),
	} {
		if out, err := exec.Command("tc", args...).CombinedOutput(); err != nil {
			tb.Fatalf("tc %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// delayProxy forwards 127.0.0.1:port to an endpoint, holding every read
// for a one-way delay before writing it on, in order.
type delayProxy struct {
	Addr  string
	reads atomic.Int64
	// held is the total time reads waited in the proxy, in ns: the delay
	// achieved, which timer granularity makes longer than asked.
	held atomic.Int64
}

func startDelayProxy(tb testing.TB, target string, delay time.Duration) *delayProxy {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { l.Close() })
	p := &delayProxy{Addr: l.Addr().String()}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.DialTimeout("tcp", target, 5*time.Second)
				if err != nil {
					return
				}
				defer up.Close()
				done := make(chan struct{}, 2)
				go func() { p.pump(up, c, delay); done <- struct{}{} }()
				go func() { p.pump(c, up, delay); done <- struct{}{} }()
				<-done
			}()
		}
	}()
	return p
}

type delayedChunk struct {
	at   time.Time // read
	data []byte
}

func (p *delayProxy) pump(dst io.WriteCloser, src io.Reader, delay time.Duration) {
	defer dst.Close()
	queue := make(chan delayedChunk, 1024)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				p.reads.Add(1)
				queue <- delayedChunk{time.Now(), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		if d := time.Until(c.at.Add(delay)); d > 0 {
			time.Sleep(d)
		}
		p.held.Add(int64(time.Since(c.at)))
		if _, err := dst.Write(c.data); err != nil {
			return
		}
	}
}

func proxyReads(ps []*delayProxy) int64 {
	var n int64
	for _, p := range ps {
		n += p.reads.Load()
	}
	return n
}

#!/usr/bin/env python3
"""Measurements of issue 9, run on the GPU machine by bench/remote.sh.

    python3 bench/bench.py PHASE...     (check perf startup idle vkdiag bandwidth baseline report)

Every phase starts its own `ollama serve` processes from the install trees
that remote.sh assembled under $BENCH_WORK/t, stops them (and only them)
again, prints PASS/FAIL lines and tables, and writes
$BENCH_WORK/results/<phase>.json. `report` turns whatever results exist into
summary.md (the tables of docs/benchmarks.md), results.json, idle.csv and
idle.png (matplotlib, when it imports) in $BENCH_OUT; it also runs on a
machine without a GPU: `python3 bench/bench.py report --results DIR`.

Standard library only, except the plot (matplotlib) and the bandwidth probe
(a torch subprocess).
"""

import argparse
import datetime as dt
import json
import math
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

W = Path(os.environ.get("BENCH_WORK", "build/bench-work"))
RES = Path(os.environ.get("BENCH_RESULTS", W / "results"))
LOGS = W / "logs"
OUTDIR = Path(os.environ.get("BENCH_OUT", W / "out"))
DEADLINE = float(os.environ.get("BENCH_DEADLINE", "inf"))

TREES = {  # name -> install prefix (bin/ollama, lib/ollama)
    "fork-flat": W / "t" / "fork-flat",
    "fork-sub": W / "t" / "fork-sub",
    "up-sub": W / "t" / "up-sub",
    "up-flat": W / "t" / "up-flat",
}
Q3 = "obs-qwen3-4b"
Q2 = "obs-qwen2-4b"
PROMPT_TOKENS = 512
NUM_PREDICT = 128
RUNS = int(os.environ.get("BENCH_RUNS", "8"))
CTX = "4096"
SMI_FIELDS = "timestamp,utilization.gpu,power.draw,clocks.sm,memory.used"

_lines = []  # everything printed, for summary files


def say(msg=""):
    print(msg, flush=True)
    _lines.append(msg)


def left():
    return DEADLINE - time.time()


results = {}  # PASS/FAIL records of this process


def verdict(phase, name, ok, detail=""):
    word = "PASS" if ok else "FAIL"
    say(f"{word} {phase}: {name}" + (f" ({detail})" if detail else ""))
    results.setdefault(phase, []).append({"phase": phase, "name": name, "ok": bool(ok), "detail": detail})
    return ok


def save(phase, data):
    RES.mkdir(parents=True, exist_ok=True)
    data = dict(data)
    data["verdicts"] = results.get(phase, [])
    data["time"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    (RES / f"{phase}.json").write_text(json.dumps(data, indent=1, default=str))


def load(phase):
    p = RES / f"{phase}.json"
    return json.loads(p.read_text()) if p.exists() else None


# ---------------------------------------------------------------------------
# prompts

_WORDS = ("the of and to in is was for on that with as by at from his her an were are which this be or "
          "had not but first one their its new after who they have has been two she when there all during "
          "into school time may years more most only over city some world would where later up such used "
          "many can state about national out known university united then made").split()


def prompt(i, n=PROMPT_TOKENS):
    """n ASCII bytes (= n tokens: the byte-level vocabulary has no merges).
    The body is the same for every run; the first 5 bytes carry the run
    number so that no run reuses the runner's prompt cache."""
    rnd = random.Random(9)
    body = ""
    while len(body) < n:
        body += rnd.choice(_WORDS) + " "
    return (f"{i:04d} " + body)[:n]


# ---------------------------------------------------------------------------
# servers

_used_ports = set()


def free_port(base):
    p = base
    while p in _used_ports:
        p += 1
    _used_ports.add(p)
    return p


def parse_bytes(s):
    m = re.match(r"\s*([\d.]+)\s*(GiB|MiB|KiB|B)", s or "")
    if not m:
        return None
    mult = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "B": 1}[m.group(2)]
    return float(m.group(1)) * mult


def logfields(line):
    """key=value / key="value" pairs of a slog text line."""
    return {k: (v1 if v1 else v2) for k, v1, v2 in re.findall(r'(\w+)=(?:"([^"]*)"|(\S+))', line)}


class Server:
    def __init__(self, label, tree, env=None, port=11500, ctx=CTX, debug=False):
        self.label = label
        self.tree = TREES[tree]
        self.tree_name = tree
        self.port = free_port(port)
        self.env = dict(env or {})
        self.ctx = ctx
        self.debug = debug
        self.proc = None
        self.log_path = None
        self.t0 = None
        self.known_children = set()

    def environ(self):
        e = {k: v for k, v in os.environ.items()
             if not (k.startswith("OLLAMA_") or k.startswith("GGML_") or k.startswith("BENCH_"))}
        e.update({
            "OLLAMA_HOST": f"127.0.0.1:{self.port}",
            "OLLAMA_MODELS": str(W / "models"),
            "OLLAMA_KEEP_ALIVE": "30m",
            "OLLAMA_NOPRUNE": "1",
            "HOME": str(W / "home"),
        })
        if self.ctx:
            e["OLLAMA_CONTEXT_LENGTH"] = self.ctx
        if self.debug:
            e["OLLAMA_DEBUG"] = "1"
        e.update(self.env)
        return e

    def start(self):
        LOGS.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:
            p = LOGS / f"{self.label}{'' if n == 0 else '-' + str(n)}.log"
            if not p.exists():
                break
            n += 1
        self.log_path = p
        f = open(p, "w")
        f.write(f"# {self.label}: {self.tree / 'bin/ollama'} serve  env: "
                + " ".join(f"{k}={v}" for k, v in sorted(self.env.items())) + "\n")
        f.flush()
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen([str(self.tree / "bin" / "ollama"), "serve"], env=self.environ(),
                                     stdout=f, stderr=subprocess.STDOUT)
        f.close()
        return self

    def wait_up(self, timeout=60):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.label}: ollama serve exited ({self.proc.returncode}): {self.tail(15)}")
            try:
                self.get("/api/version", timeout=2)
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError(f"{self.label}: not answering after {timeout}s")

    def log(self):
        try:
            return self.log_path.read_text(errors="replace")
        except Exception:
            return ""

    def tail(self, n=30):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, pattern, timeout=60, poll=0.005):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for line in self.log().splitlines():
                if rx.search(line):
                    return time.monotonic() - self.t0, line
            if self.proc.poll() is not None:
                return None, None
            time.sleep(poll)
        return None, None

    def lines(self, pattern):
        rx = re.compile(pattern)
        return [l for l in self.log().splitlines() if rx.search(l)]

    # HTTP
    def request(self, path, body=None, timeout=30):
        url = f"http://127.0.0.1:{self.port}{path}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method="GET" if data is None else "POST",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                msg = json.loads(raw).get("error", raw.decode(errors="replace"))
            except Exception:
                msg = raw.decode(errors="replace")
            raise RuntimeError(f"HTTP {e.code}: {msg}") from None
        return json.loads(raw) if raw.strip() else {}

    def get(self, path, timeout=30):
        return self.request(path, None, timeout)

    def generate(self, model, text, n, timeout=120, keep_alive="30m"):
        body = {"model": model, "prompt": text, "raw": True, "stream": False, "keep_alive": keep_alive,
                "options": {"num_predict": n, "temperature": 0, "top_k": 1, "seed": 1}}
        t = time.monotonic()
        r = self.request("/api/generate", body, timeout)
        r["wall_s"] = time.monotonic() - t
        r.pop("context", None)
        r.pop("response", None)
        return r

    def unload(self, model, timeout=60):
        return self.request("/api/generate", {"model": model, "keep_alive": 0}, timeout)

    def ps(self):
        return self.get("/api/ps").get("models", [])

    # processes
    def children(self):
        """(pid, cmdline) of every descendant of the server."""
        if not self.proc:
            return []
        kids = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            except Exception:
                continue
            kids.setdefault(ppid, []).append((int(d.name), cmd))
        out, todo = [], [self.proc.pid]
        while todo:
            p = todo.pop()
            for c in kids.get(p, []):
                out.append(c)
                todo.append(c[0])
        self.known_children.update(p for p, _ in out)
        return out

    def runners(self):
        """model runner pid -> model blob path"""
        r = {}
        for pid, cmd in self.children():
            m = re.search(r"--model (\S+)", cmd)
            if " runner" in cmd and m:
                r[pid] = m.group(1)
        return r

    def stop(self, timeout=20):
        if not self.proc:
            return
        self.children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for pid in sorted(self.known_children):  # runners we started, if any outlived the server
            try:
                os.kill(pid, 0)
            except OSError:
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"ollama" in cmd:
                os.kill(pid, signal.SIGKILL)
        _used_ports.discard(self.port)
        self.proc = None


def ggml_maps(pid):
    try:
        text = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None
    return sorted({Path(l.split()[-1]).name for l in text.splitlines() if "libggml-" in l})


def model_blob(name):
    m = W / "models" / "manifests" / "registry.ollama.ai" / "library" / name / "latest"
    man = json.loads(m.read_text())
    for layer in man["layers"]:
        if layer["mediaType"] == "application/vnd.ollama.image.model":
            return layer["digest"].replace(":", "-"), layer["size"]
    raise RuntimeError(f"no model layer in {m}")


def runner_of(server, model):
    blob, _ = model_blob(model)
    for pid, path in server.runners().items():
        if blob in path:
            return pid
    return None


def ps_entry(server, model):
    for m in server.ps():
        if m.get("name", "").split(":")[0] == model or m.get("model", "").split(":")[0] == model:
            return m
    return None


def smi(query):
    out = subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, timeout=30).stdout.strip().splitlines()
    return [x.strip() for x in out[0].split(",")] if out else []


def gpu_info():
    f = "name,driver_version,memory.total,pci.bus_id,compute_cap,power.limit,clocks.max.sm,vbios_version"
    v = smi(f)
    return dict(zip(f.split(","), v))


def tps(r, which):
    cnt, dur = (r.get("prompt_eval_count"), r.get("prompt_eval_duration")) if which == "prompt" else \
        (r.get("eval_count"), r.get("eval_duration"))
    return cnt / (dur / 1e9) if cnt and dur else None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"


def brief(e, n=300):
    s = str(e).replace("\n", " ")
    return s if len(s) <= n else s[:n] + "..."


# ---------------------------------------------------------------------------
# check: correctness on real hardware (the fork, flat layout)

def phase_check():
    P = "check"
    data = {"gpu": gpu_info()}
    short = prompt(1, 64)
    N = 16

    # 1. default -> CUDA
    s = Server("check-default", "fork-flat").start()
    try:
        s.wait_up()
        ic = s.lines("inference compute")
        r = s.generate(Q3, short, N, timeout=240)
        e = ps_entry(s, Q3) or {}
        pid = runner_of(s, Q3)
        maps = ggml_maps(pid) if pid else None
        data["default"] = {"inference_compute": ic, "ps": e, "gen": r, "runner_maps": maps}
        verdict(P, "default: qwen3 model on CUDA", e.get("library") == "CUDA" and e.get("size_vram", 0) > 0,
                f"/api/ps library={e.get('library')} size_vram={e.get('size_vram')} of {e.get('size')}")
        verdict(P, f"default: qwen3 generates {N} tokens", r.get("eval_count") == N,
                f"eval_count={r.get('eval_count')}")
        verdict(P, "default: runner maps libggml-cuda and no libggml-vulkan",
                maps is not None and "libggml-cuda.so" in maps and "libggml-vulkan.so" not in maps,
                f"runner pid {pid} maps {maps}")
    except Exception as ex:
        verdict(P, "default: qwen3 model on CUDA", False, brief(ex))
        data["default_error"] = brief(ex, 2000) + "\n" + s.tail(40)
    finally:
        s.stop()

    # 2. OLLAMA_LLM_LIBRARY=vulkan -> Vulkan, no libggml-cuda in the runner
    s = Server("check-vulkan", "fork-flat", {"OLLAMA_LLM_LIBRARY": "vulkan"}).start()
    try:
        s.wait_up()
        ic = s.lines("inference compute")
        libs = sorted({logfields(l).get("library") for l in ic})
        verdict(P, "OLLAMA_LLM_LIBRARY=vulkan: discovery reports Vulkan only", libs == ["Vulkan"],
                f"inference compute libraries {libs}")
        if "Vulkan" not in libs:
            data["vulkan_discovery_log"] = s.lines(r"level=(WARN|ERROR)|vulkan|Vulkan")[:20]
            raise RuntimeError("no Vulkan device: " + " | ".join(data["vulkan_discovery_log"][:3]))
        r = s.generate(Q3, short, N, timeout=240)
        e = ps_entry(s, Q3) or {}
        pid = runner_of(s, Q3)
        maps = ggml_maps(pid) if pid else None
        smaps = ggml_maps(s.proc.pid)
        data["vulkan"] = {"inference_compute": ic, "ps": e, "gen": r, "runner_maps": maps, "server_maps": smaps}
        verdict(P, "OLLAMA_LLM_LIBRARY=vulkan: qwen3 model on Vulkan", e.get("library") == "Vulkan" and e.get("size_vram", 0) > 0,
                f"/api/ps library={e.get('library')} size_vram={e.get('size_vram')} of {e.get('size')}")
        verdict(P, f"OLLAMA_LLM_LIBRARY=vulkan: qwen3 generates {N} tokens", r.get("eval_count") == N,
                f"eval_count={r.get('eval_count')}")
        verdict(P, "OLLAMA_LLM_LIBRARY=vulkan: runner maps libggml-vulkan and no libggml-cuda (/proc/PID/maps)",
                maps is not None and "libggml-vulkan.so" in maps and not any("cuda" in m for m in maps),
                f"runner pid {pid} maps {maps}; server maps {smaps}")
    except Exception as ex:
        verdict(P, "OLLAMA_LLM_LIBRARY=vulkan: qwen3 model on Vulkan", False, brief(ex))
        data["vulkan_error"] = brief(ex, 2000) + "\n" + s.tail(40)
    finally:
        s.stop()

    if "vulkan_discovery_log" in data:
        verdict(P, "denylist cuda:9.0:qwen3: qwen3 on Vulkan, qwen2 on CUDA", False, "not run: no Vulkan device")
        save(P, data)
        return
    # 3. OLLAMA_BACKEND_DENYLIST=cuda:9.0:qwen3 -> qwen3 on Vulkan, qwen2 on CUDA, same GPU
    s = Server("check-denylist", "fork-flat",
               {"OLLAMA_BACKEND_DENYLIST": "cuda:9.0:qwen3", "OLLAMA_MAX_LOADED_MODELS": "2"}).start()
    d = {}
    try:
        s.wait_up()
        d["inference_compute"] = s.lines("inference compute")
        d["library_chosen"] = s.lines("backend library chosen")
        r2 = s.generate(Q2, short, N, timeout=240)
        e2 = ps_entry(s, Q2) or {}
        n_before = len(s.lines(r'msg="gpu memory"'))
        r3 = s.generate(Q3, short, N, timeout=240)
        d["quirk_lines"] = s.lines("backend quirk")
        gm = s.lines(r'msg="gpu memory"')[n_before:]
        d["gpu_memory_lines_at_qwen3_load"] = gm
        d["updated_vram_lines"] = s.lines("updated VRAM based on existing loaded models")
        # both models generate at the same time
        outs = {}

        def gen(m, i):
            try:
                outs[m] = s.generate(m, prompt(i, 64), 64, timeout=240)
            except Exception as ex:
                outs[m] = {"error": brief(ex)}
        th = [threading.Thread(target=gen, args=(m, i)) for i, m in ((2, Q2), (3, Q3))]
        t = time.monotonic()
        [x.start() for x in th]
        [x.join() for x in th]
        d["concurrent_wall_s"] = time.monotonic() - t
        d["concurrent"] = outs
        ps = s.ps()
        d["ps"] = ps
        e3 = ps_entry(s, Q3) or {}
        e2 = ps_entry(s, Q2) or e2
        p3, p2 = runner_of(s, Q3), runner_of(s, Q2)
        m3, m2 = ggml_maps(p3) if p3 else None, ggml_maps(p2) if p2 else None
        d["runner_maps"] = {"qwen3": m3, "qwen2": m2}
        try:
            d["backends"] = s.get("/api/backends")
        except Exception as ex:
            d["backends"] = brief(ex)
        used, total = (float(x) for x in smi("memory.used,memory.total"))
        d["nvidia_smi_memory_mib"] = {"used": used, "total": total}
        verdict(P, "denylist cuda:9.0:qwen3: qwen3 model on Vulkan", e3.get("library") == "Vulkan" and e3.get("size_vram", 0) > 0,
                f"/api/ps library={e3.get('library')} size_vram={e3.get('size_vram')}; runner maps {m3}")
        verdict(P, "denylist cuda:9.0:qwen3: qwen2 model on CUDA", e2.get("library") == "CUDA" and e2.get("size_vram", 0) > 0,
                f"/api/ps library={e2.get('library')} size_vram={e2.get('size_vram')}; runner maps {m2}")
        verdict(P, "denylist: qwen3 runner maps no libggml-cuda, qwen2 runner no libggml-vulkan",
                m3 is not None and m2 is not None and not any("cuda" in x for x in m3) and "libggml-vulkan.so" not in m2,
                f"qwen3 {m3}, qwen2 {m2}")
        ok_gen = all(outs.get(m, {}).get("eval_count") == 64 for m in (Q2, Q3))
        verdict(P, "denylist: both models generate at the same time on the one GPU", ok_gen and r2.get("eval_count") == N and r3.get("eval_count") == N,
                "; ".join(f"{m}: {outs.get(m, {}).get('eval_count', outs.get(m, {}).get('error'))} tokens at "
                          f"{fmt(tps(outs.get(m, {}), 'gen'))} t/s" for m in (Q2, Q3))
                + f"; wall {d['concurrent_wall_s']:.2f}s")
        libs = sorted({m.get("library") or "CPU" for m in ps})
        verdict(P, "/api/ps shows both libraries", libs == ["CUDA", "Vulkan"], f"libraries {libs}")
        # VRAM of the one GPU is not double-counted
        total_b = total * (1 << 20)
        vk_free = None
        for l in gm:
            f = logfields(l)
            if f.get("library") == "Vulkan":
                vk_free = parse_bytes(f.get("free"))
        v2 = e2.get("size_vram", 0)
        v3 = e3.get("size_vram", 0)
        d["vram"] = {"total_b": total_b, "qwen2_size_vram": v2, "qwen3_size_vram": v3,
                     "vulkan_free_at_qwen3_load_b": vk_free, "nvidia_smi_used_b": used * (1 << 20)}
        verdict(P, "VRAM: at the qwen3 load the Vulkan twin's free memory already excludes the qwen2 model on CUDA",
                vk_free is not None and vk_free <= total_b - 0.9 * v2,
                f"Vulkan free {fmt((vk_free or 0) / 2**30, 2)} GiB <= total {total_b / 2**30:.2f} GiB - qwen2 {v2 / 2**30:.2f} GiB")
        verdict(P, "VRAM: both models fit the one GPU once, and nvidia-smi sees both resident",
                v2 + v3 <= total_b and used * (1 << 20) >= 0.9 * (v2 + v3),
                f"size_vram qwen2 {v2 / 2**30:.2f} + qwen3 {v3 / 2**30:.2f} = {(v2 + v3) / 2**30:.2f} GiB; "
                f"nvidia-smi used {used / 1024:.2f} of {total / 1024:.2f} GiB")
    except Exception as ex:
        verdict(P, "denylist cuda:9.0:qwen3: both models load and generate", False, brief(ex))
        d["error"] = brief(ex, 2000) + "\n" + s.tail(60)
    finally:
        s.stop()
    data["denylist"] = d
    save(P, data)


# ---------------------------------------------------------------------------
# bandwidth: device-to-device copy, bytes read + written

BW_CODE = r"""
import json, torch
n = 1 << 30                      # 4 GiB of float32 per buffer
a = torch.empty(n, dtype=torch.float32, device="cuda").uniform_()
b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize()
ts = []
for _ in range(20):
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    s.record(); b.copy_(a); e.record(); e.synchronize()
    ts.append(s.elapsed_time(e) / 1e3)
ts.sort()
t = ts[len(ts) // 2]
print(json.dumps({"bytes_moved": 2 * a.nbytes, "median_s": t, "bw_Bps": 2 * a.nbytes / t,
                  "best_bw_Bps": 2 * a.nbytes / ts[0], "torch": torch.__version__,
                  "device": torch.cuda.get_device_name()}))
"""


def phase_bandwidth():
    r = subprocess.run([sys.executable, "-c", BW_CODE], capture_output=True, text=True, timeout=180)
    try:
        data = json.loads(r.stdout.strip().splitlines()[-1])
    except Exception:
        data = {"error": (r.stdout + r.stderr)[-2000:]}
    if "bw_Bps" in data:
        say(f"bandwidth: device-to-device copy {data['bw_Bps'] / 1e12:.2f} TB/s (median of 20 copies of 4 GiB, "
            f"bytes read + written; best {data['best_bw_Bps'] / 1e12:.2f})")
    else:
        say(f"bandwidth: failed: {data['error'][-400:]}")
    save("bandwidth", data)


# ---------------------------------------------------------------------------
# baseline: the GPU at rest, before any server

def sample_smi(seconds):
    p = subprocess.Popen(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits", "-lms", "200"],
                         stdout=subprocess.PIPE, text=True)
    time.sleep(seconds)
    p.terminate()
    out = p.communicate(timeout=10)[0]
    return parse_smi(out)


def parse_smi(text):
    rows = []
    for line in text.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) < 5:
            continue
        try:
            ts = dt.datetime.strptime(parts[0], "%Y/%m/%d %H:%M:%S.%f").timestamp()
            rows.append({"t": ts, "util": float(parts[1]), "power": float(parts[2]),
                         "clock": float(parts[3]), "mem": float(parts[4])})
        except ValueError:
            continue
    return rows


def phase_baseline():
    rows = sample_smi(3)
    data = {"samples": rows,
            "util": med([r["util"] for r in rows]), "power": med([r["power"] for r in rows]),
            "clock": med([r["clock"] for r in rows]), "mem": med([r["mem"] for r in rows]),
            "gpu": gpu_info()}
    say(f"baseline: GPU at rest: util {fmt(data['util'], 0)} %, power {fmt(data['power'])} W, "
        f"SM clock {fmt(data['clock'], 0)} MHz, memory used {fmt(data['mem'], 0)} MiB")
    save("baseline", data)


# ---------------------------------------------------------------------------
# perf: prompt and generation tokens/s, fork vs upstream, in pairs of servers

def evidence(s, model):
    e = ps_entry(s, model) or {}
    pid = runner_of(s, model)
    dev = [l for l in s.lines(r"model weights|offloaded \d+/\d+ layers|ggml_vulkan: 0 =|using device|flash_attn|flash attention")][-8:]
    return {"ps_library": e.get("library"), "size_vram": e.get("size_vram"), "size": e.get("size"),
            "runner_maps": ggml_maps(pid) if pid else None, "log": dev}


def perf_solo(backend, variant, configs, runs=RUNS, blocks=2):
    """The default (BENCH_PERF_SOLO=1): one server on the GPU at a time, in
    blocks (A B, then B A, ...), each block a fresh server with its own
    warm-up; the runs are split over the blocks. With BENCH_PERF_SOLO=0 both
    servers stay loaded and take turns request by request: on Vulkan that
    made whichever runner was loaded first slower (docs/benchmarks.md)."""
    out = {"backend": backend, "variant": variant, "configs": {}, "ok": False, "mode": "solo"}
    per = max(1, runs // blocks)
    for blk in range(blocks):
        for label, tree, env in (configs if blk % 2 == 0 else list(reversed(configs))):
            if left() < 45:
                say(f"  {backend}: solo blocks stopped (time budget)")
                out["ok"] = all(c["runs"] for c in out["configs"].values())
                return out
            e = dict(env)
            e.update(variant)
            c = out["configs"].setdefault(label, {"runs": [], "errors": [], "blocks": []})
            s = Server(f"perf-solo-{backend}-{label}-b{blk}", tree, e).start()
            try:
                s.wait_up()
                w = s.generate(Q3, prompt(0), NUM_PREDICT, timeout=180)
                c.setdefault("warmup", w)
                c.setdefault("evidence", evidence(s, Q3))
                rs = [s.generate(Q3, prompt(blk * 100 + i), NUM_PREDICT, timeout=90) for i in range(1, per + 1)]
                c["runs"] += rs
                c["blocks"].append(med([tps(r, "gen") for r in rs]))
            except Exception as ex:
                c["errors"].append({"run": blk, "error": brief(ex), "log": s.tail(40)})
                say(f"  {backend} {label}: block {blk} failed: {brief(ex, 200)}")
                return out
            finally:
                s.stop()
    out["ok"] = True
    return out


def perf_pair(backend, variant, configs, runs=RUNS):
    """configs: [(label, tree, env)]; one server each, run alternately."""
    if os.environ.get("BENCH_PERF_SOLO", "1") == "1":
        return perf_solo(backend, variant, configs, runs, int(os.environ.get("BENCH_PERF_BLOCKS", "2")))
    servers = []
    out = {"backend": backend, "variant": variant, "configs": {}, "ok": False, "mode": "concurrent"}
    try:
        for label, tree, env in configs:
            e = dict(env)
            e.update(variant)
            tag = re.sub(r"[^A-Za-z0-9]+", "-", "-".join(f"{k}-{v}" for k, v in variant.items()))
            servers.append((label, Server(f"perf-{backend}-{label}" + (f"-{tag}" if tag else ""), tree, e).start()))
        for label, s in servers:
            s.wait_up()
        for label, s in servers:
            c = out["configs"].setdefault(label, {"runs": [], "errors": []})
            t, line = s.wait_log("inference compute", timeout=60)
            libs = sorted({logfields(l).get("library") for l in s.lines("inference compute")})
            c["discovered"] = libs
            if backend not in libs:
                c["errors"].append({"run": 0, "error": f"no {backend} device: discovery reported {libs}",
                                    "log": "\n".join(s.lines(r"level=(WARN|ERROR)"))[-2000:]})
                say(f"  {backend} {label}: no {backend} device (discovery reported {libs})")
                return out
            try:
                c["warmup"] = s.generate(Q3, prompt(0), NUM_PREDICT, timeout=180)
            except Exception as ex:
                c["errors"].append({"run": 0, "error": brief(ex), "log": s.tail(40)})
                say(f"  {backend} {label}: warm-up failed: {brief(ex, 200)}")
                return out
            c["evidence"] = evidence(s, Q3)
        for i in range(1, runs + 1):
            k = (i - 1) % len(servers)  # rotate who goes first
            order = servers[k:] + servers[:k]
            for label, s in order:
                c = out["configs"][label]
                try:
                    r = s.generate(Q3, prompt(i), NUM_PREDICT, timeout=90)
                    c["runs"].append(r)
                except Exception as ex:
                    c["errors"].append({"run": i, "error": brief(ex), "log": s.tail(40)})
                    say(f"  {backend} {label}: run {i} failed: {brief(ex, 200)}")
                    return out
            if left() < 30:
                say(f"  {backend}: stopping after {i} runs (time budget)")
                break
        out["ok"] = True
        return out
    finally:
        for label, s in servers:
            s.stop()


def summarize_pair(p):
    for label, c in p["configs"].items():
        # a run that ollama stopped early (its token-repeat guard; random
        # weights) has no timings: counted, left out of the statistics
        c["incomplete"] = sum(1 for r in c["runs"] if not (tps(r, "prompt") and tps(r, "gen")))
        runs = c["runs"] = [r for r in c["runs"] if tps(r, "prompt") and tps(r, "gen")]
        c["n"] = len(runs)
        c["prompt_tps"] = med([tps(r, "prompt") for r in runs])
        c["gen_tps"] = med([tps(r, "gen") for r in runs])
        c["prompt_tps_range"] = [min([tps(r, "prompt") for r in runs] or [0]), max([tps(r, "prompt") for r in runs] or [0])]
        c["gen_tps_range"] = [min([tps(r, "gen") for r in runs] or [0]), max([tps(r, "gen") for r in runs] or [0])]
        c["prompt_counts"] = sorted({r.get("prompt_eval_count") for r in runs})
        c["eval_counts"] = sorted({r.get("eval_count") for r in runs})


VK_VARIANTS = [{}, {"GGML_VK_DISABLE_COOPMAT2": "1"}, {"OLLAMA_FLASH_ATTENTION": "0"},
               {"GGML_VK_DISABLE_COOPMAT2": "1", "OLLAMA_FLASH_ATTENTION": "0"}]


def phase_perf():
    P = "perf"
    data = {"gpu": gpu_info(), "prompt_tokens": PROMPT_TOKENS, "num_predict": NUM_PREDICT, "runs": RUNS,
            "num_ctx": CTX, "pairs": []}
    blob, size = model_blob(Q3)
    data["model_bytes"] = size
    cuda = [("fork", "fork-flat", {}), ("upstream", "up-sub", {})]
    vk = [("fork", "fork-flat", {"OLLAMA_LLM_LIBRARY": "vulkan"}),
          ("upstream", "up-sub", {"OLLAMA_LLM_LIBRARY": "vulkan", "OLLAMA_VULKAN": "1"})]
    backends = os.environ.get("BENCH_PERF_BACKENDS", "CUDA,Vulkan").split(",")
    if os.environ.get("BENCH_PERF_FORK_SUBDIR") == "1":  # the fork in upstream's layout too
        cuda.append(("fork-subdir", "fork-sub", {}))
        vk.append(("fork-subdir", "fork-sub", {"OLLAMA_LLM_LIBRARY": "vulkan"}))
    if "CUDA" in backends:
        p = perf_pair("CUDA", {}, cuda)
        summarize_pair(p)
        data["pairs"].append(p)
        save(P, data)
    for v in (VK_VARIANTS if "Vulkan" in backends else []):
        if left() < 90:
            say("perf: Vulkan variants left out (time budget)")
            break
        p = perf_pair("Vulkan", v, vk)
        summarize_pair(p)
        data["pairs"].append(p)
        save(P, data)
        if p["ok"]:
            break
    perf_verdicts(data)
    save(P, data)


def perf_verdicts(data):
    P = "perf"
    ok = {p["backend"]: p for p in data["pairs"] if p["ok"]}
    for b in [x for x in ("CUDA", "Vulkan") if any(q["backend"] == x for q in data["pairs"])]:
        p = ok.get(b)
        if not p:
            tried = [q for q in data["pairs"] if q["backend"] == b]
            errs = "; ".join(f"{q['variant'] or 'default'}: " + "; ".join(
                f"{lab} run {e['run']}: {e['error'][:160]}" for lab, c in q["configs"].items() for e in c["errors"])
                for q in tried)
            verdict(P, f"{b}: fork vs upstream measured", False, errs or "not run")
            continue
        f, u = p["configs"]["fork"], p["configs"]["upstream"]
        for k, name in (("prompt_tps", "prompt"), ("gen_tps", "generation")):
            if f[k] and u[k]:
                ratio = f[k] / u[k]
                verdict(P, f"{b}: fork/upstream {name} tokens/s >= 0.98",
                        ratio >= 0.98, f"{ratio:.3f} = {f[k]:,.1f} / {u[k]:,.1f} t/s, median of {f['n']}/{u['n']} runs"
                        + (f", variant {p['variant']}" if p["variant"] else ""))
        full = f["prompt_counts"] == [PROMPT_TOKENS] and u["prompt_counts"] == [PROMPT_TOKENS] and \
            f["eval_counts"] == [NUM_PREDICT] and u["eval_counts"] == [NUM_PREDICT]
        verdict(P, f"{b}: every run evaluated {PROMPT_TOKENS} prompt tokens and generated {NUM_PREDICT}", full,
                f"fork {f['prompt_counts']}/{f['eval_counts']}, upstream {u['prompt_counts']}/{u['eval_counts']}")


# ---------------------------------------------------------------------------
# startup: `ollama serve` start -> first "inference compute" line

STARTUP = [
    ("fork, flat, OLLAMA_LLM_LIBRARY=vulkan", "fork-flat", {"OLLAMA_LLM_LIBRARY": "vulkan"}),
    ("fork, subdir, OLLAMA_LLM_LIBRARY=vulkan", "fork-sub", {"OLLAMA_LLM_LIBRARY": "vulkan"}),
    ("upstream, subdir, OLLAMA_LLM_LIBRARY=vulkan OLLAMA_VULKAN=1", "up-sub", {"OLLAMA_LLM_LIBRARY": "vulkan", "OLLAMA_VULKAN": "1"}),
    ("upstream, flat, OLLAMA_LLM_LIBRARY=vulkan OLLAMA_VULKAN=1 (ignored: upstream loads every library and picks CUDA)", "up-flat",
     {"OLLAMA_LLM_LIBRARY": "vulkan", "OLLAMA_VULKAN": "1"}),
    ("fork, flat, default", "fork-flat", {}),
    ("upstream, subdir, default", "up-sub", {}),
]


def phase_startup(runs=5):
    P = "startup"
    data = {"configs": {c[0]: {"tree": c[1], "env": c[2], "runs": []} for c in STARTUP}}
    for rnd in range(runs + 1):  # round 0 is the warm-up
        for label, tree, env in STARTUP:
            if left() < 20:
                break
            s = Server(f"startup-r{rnd}-{tree}-{'-'.join(env.values()) or 'default'}", tree, env).start()
            try:
                t, line = s.wait_log("inference compute", timeout=60)
                time.sleep(0.3)
                ic = s.lines("inference compute")
                took = [logfields(l).get("duration") for l in s.lines("overall device VRAM discovery took")]
            finally:
                s.stop()
            rec = {"round": rnd, "ready_s": t, "libraries": sorted({logfields(l).get("library") for l in ic}),
                   "discovery_took": took}
            if rnd > 0:
                data["configs"][label]["runs"].append(rec)
            else:
                data["configs"][label]["warmup"] = rec
    for label, c in data["configs"].items():
        c["median_s"] = med([r["ready_s"] for r in c["runs"]])
        c["libraries"] = sorted({x for r in c["runs"] for x in r["libraries"] if x})
    f = data["configs"][STARTUP[0][0]]
    fs = data["configs"][STARTUP[1][0]]
    u = data["configs"][STARTUP[2][0]]
    for lab, c in ((STARTUP[0][0], f), (STARTUP[1][0], fs)):
        if c["median_s"] and u["median_s"]:
            r = c["median_s"] / u["median_s"]
            verdict(P, f"time to ready with Vulkan, {lab.split(',')[1].strip()} fork / upstream <= 0.6", r <= 0.6,
                    f"{r:.2f} = {c['median_s']:.3f} s / {u['median_s']:.3f} s, median of {len(c['runs'])}/{len(u['runs'])}")
    verdict(P, "OLLAMA_LLM_LIBRARY=vulkan: every server reported Vulkan only",
            all(data["configs"][x[0]]["libraries"] == ["Vulkan"] for x in STARTUP[:3]),
            "; ".join(f"{x[0]}: {data['configs'][x[0]]['libraries']}" for x in STARTUP[:3]))
    save(P, data)


# ---------------------------------------------------------------------------
# idle: nvidia-smi from 5 s before to 10 s after unload

def phase_idle():
    P = "idle"
    base = load("baseline") or {}
    data = {"baseline": {k: base.get(k) for k in ("util", "power", "clock", "mem")}, "traces": {}}
    for backend, env, npred in (("CUDA", {}, 64), ("Vulkan", {"OLLAMA_LLM_LIBRARY": "vulkan"}, 32)):
        if left() < 40:
            say(f"idle: {backend} left out (time budget)")
            continue
        s = Server(f"idle-{backend}", "fork-flat", env).start()
        tr = {}
        try:
            s.wait_up()
            s.generate(Q3, prompt(0, 64), 8, timeout=180)
            time.sleep(1.0)
            smi_p = subprocess.Popen(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits",
                                      "-lms", "200"], stdout=subprocess.PIPE, text=True)
            ts = time.time()
            k = 0
            while time.time() < ts + 4.2:
                k += 1
                s.generate(Q3, prompt(k, 64), npred, timeout=60)
            busy_end = time.time()
            while time.time() < ts + 5.0:
                time.sleep(0.01)
            pid = runner_of(s, Q3)
            tu = time.time()
            s.unload(Q3)
            tu_ret = time.time()
            t_exit = None
            while time.time() < tu + 10.5:
                if t_exit is None and pid and not Path(f"/proc/{pid}").exists():
                    t_exit = time.time()
                time.sleep(0.02)
            smi_p.terminate()
            rows = parse_smi(smi_p.communicate(timeout=10)[0])
            tr = {"t_start": ts, "t_busy_end": busy_end, "t_unload": tu, "unload_returned_s": tu_ret - tu,
                  "runner_exit_s": (t_exit - tu) if t_exit else None, "requests": k,
                  "samples": [dict(r, rel=r["t"] - tu) for r in rows], "ps_after": s.ps()}
        except Exception as ex:
            tr["error"] = brief(ex, 1000) + "\n" + s.tail(30)
            say(f"idle: {backend} failed: {brief(ex, 200)}")
        finally:
            s.stop()
        data["traces"][backend] = tr
    idle_verdicts(data)
    save(P, data)


def idle_times(tr, base):
    """Seconds after the unload request from which every later sample is at rest."""
    rows = [r for r in tr.get("samples", []) if r["rel"] >= 0]
    if not rows or not base.get("power"):
        return {}
    pw_lim = base["power"] + max(10.0, 0.15 * base["power"])
    ck_lim = (base.get("clock") or 0) + 100
    tests = {"util": lambda r: r["util"] == 0, "power": lambda r: r["power"] <= pw_lim,
             "clock": lambda r: r["clock"] <= ck_lim}
    tests["all"] = lambda r: all(f(r) for k, f in tests.items() if k != "all")
    out = {"power_limit_W": pw_lim, "clock_limit_MHz": ck_lim}
    for k, f in tests.items():
        t = None
        for i in range(len(rows)):
            if all(f(r) for r in rows[i:]):
                t = rows[i]["rel"]
                break
        out[k] = t
    return out


def idle_verdicts(data):
    base = data["baseline"]
    for b, tr in data["traces"].items():
        it = idle_times(tr, base)
        tr["idle"] = it
        if not it:
            verdict("idle", f"{b}: GPU back to rest within 10 s of unload", False, tr.get("error", "no samples")[:300])
            continue
        verdict("idle", f"{b}: GPU back to rest within 10 s of unload", it.get("all") is not None,
                f"all at rest after {fmt(it.get('all'), 1)} s (util 0 after {fmt(it.get('util'), 1)} s, power <= "
                f"{it['power_limit_W']:.0f} W after {fmt(it.get('power'), 1)} s, SM clock <= {it['clock_limit_MHz']:.0f} MHz "
                f"after {fmt(it.get('clock'), 1)} s); runner exited {fmt(tr.get('runner_exit_s'), 2)} s after the unload request")


# ---------------------------------------------------------------------------
# vkdiag: the Vulkan runner on 512-token prompts, as in the earlier finding

VKDIAG = [
    ("upstream, default context (as the earlier finding)", "up-sub", {}, None, Q3),
    ("upstream, GGML_VK_DISABLE_COOPMAT2=1, default context", "up-sub", {"GGML_VK_DISABLE_COOPMAT2": "1"}, None, Q3),
    ("fork, flat, default context", "fork-flat", {}, None, Q3),
    ("upstream, OLLAMA_FLASH_ATTENTION=0, default context", "up-sub", {"OLLAMA_FLASH_ATTENTION": "0"}, None, Q3),
    ("upstream, qwen2 (llama.cpp runner), default context", "up-sub", {}, None, Q2),
]


def phase_vkdiag(requests=3):
    data = {"variants": []}
    smi_p = subprocess.Popen(["nvidia-smi", f"--query-gpu={SMI_FIELDS}", "--format=csv,noheader,nounits", "-lms", "500"],
                             stdout=subprocess.PIPE, text=True)
    try:
        for label, tree, env, ctx, model in VKDIAG:
            if left() < 75:
                say(f"vkdiag: '{label}' left out (time budget)")
                continue
            e = {"OLLAMA_LLM_LIBRARY": "vulkan", "OLLAMA_VULKAN": "1"}
            e.update(env)
            s = Server("vkdiag-" + re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-"), tree, e, ctx=ctx, debug=True).start()
            v = {"label": label, "env": e, "model": model, "requests": []}
            try:
                s.wait_up()
                for i in range(requests):
                    t = time.time()
                    try:
                        r = s.generate(model, prompt(100 + i), NUM_PREDICT,
                                       timeout=max(10, min(75 if i == 0 else 60, left() - 15)))
                        v["requests"].append({"ok": True, "wall_s": r["wall_s"], "prompt_tps": tps(r, "prompt"),
                                              "gen_tps": tps(r, "gen"), "prompt_eval_count": r.get("prompt_eval_count"),
                                              "eval_count": r.get("eval_count"), "load_s": r.get("load_duration", 0) / 1e9})
                    except Exception as ex:
                        v["requests"].append({"ok": False, "wall_s": time.time() - t, "error": brief(ex, 400),
                                              "t": t})
                        break
                v["ps"] = s.ps() if s.proc.poll() is None else None
            except Exception as ex:
                v["error"] = brief(ex, 400)
            finally:
                time.sleep(0.5)
                log = s.log()
                s.stop()
            v["log_device"] = [l for l in log.splitlines() if re.search(
                r"ggml_vulkan: \d+ =|ggml_vulkan: Found|flash_attn|flash attention|n_ctx|num_ctx|KvSize|kv_size|matrix cores", l)][:12]
            v["log_errors"] = [l for l in log.splitlines() if re.search(
                r"(?i)error|panic|SIGSEGV|SIGABRT|GGML_ASSERT|DeviceLost|vk::|terminate|signal|exit status|abort|timed out|EOF|fault", l)][:40]
            v["log_tail"] = log.splitlines()[-25:]
            v["repeat_limit_aborts"] = log.count("token repeat limit reached")
            cache = W / "home" / ".cache" / "nvidia"
            v["nvidia_shader_cache_bytes"] = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) if cache.exists() else None
            data["variants"].append(v)
            res = ", ".join(("ok %.0f/%.0f t/s" % (q["prompt_tps"] or 0, q["gen_tps"] or 0)) if q["ok"]
                            else f"FAILED after {q['wall_s']:.1f}s: {q['error'][:120]}" for q in v["requests"])
            say(f"vkdiag: {label}: {res or v.get('error')}")
            save("vkdiag", data)
    finally:
        smi_p.terminate()
        data["smi"] = parse_smi(smi_p.communicate(timeout=10)[0])
    save("vkdiag", data)


# ---------------------------------------------------------------------------
# report

def table(rows, head):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return out


def phase_report(results_dirs=None):
    global RES
    dirs = [Path(d) for d in (results_dirs or [RES])]

    def get(phase):
        for d in reversed(dirs):
            p = d / f"{phase}.json"
            if p.exists():
                return json.loads(p.read_text())
        return None
    md = []
    allv = []
    base, bw, chk, perf, st, idle, vkd = (get(x) for x in ("baseline", "bandwidth", "check", "perf", "startup", "idle", "vkdiag"))
    gpu = (chk or perf or base or {}).get("gpu") or {}
    md.append(f"Card: {gpu.get('name', '?')} (PCI {gpu.get('pci.bus_id', '?')}, compute {gpu.get('compute_cap', '?')}, "
              f"{gpu.get('memory.total', '?')} MiB, power limit {gpu.get('power.limit', '?')} W, max SM clock "
              f"{gpu.get('clocks.max.sm', '?')} MHz), driver {gpu.get('driver_version', '?')}.")
    md.append("")
    for ph in (chk, perf, st, idle):
        if ph:
            allv += ph.get("verdicts", [])
    if allv:
        md += ["```text"] + [f"{'PASS' if v['ok'] else 'FAIL'} {v.get('phase', '?')}: {v['name']}" + (f" ({v['detail']})" if v['detail'] else "")
                            for v in allv] + ["```", ""]
    if perf:
        modes = {p.get("mode", "concurrent") for p in perf["pairs"]}
        how = ("one server on the GPU at a time, in blocks of fresh servers (A B, B A, ...)" if modes == {"solo"} else
               "both servers loaded, taking turns request by request" if modes == {"concurrent"} else "mixed modes")
        md.append(f"Speed: {perf['prompt_tokens']}-token prompt, num_predict {perf['num_predict']}, num_ctx {perf['num_ctx']}, "
                  f"greedy; median of the measured runs (each server's first request excluded); {how}:")
        md.append("")
        rows = []
        ok = {}
        for p in perf["pairs"]:
            var = ", ".join(f"{k}={v}" for k, v in p["variant"].items()) or "default"
            for lab in p["configs"]:
                c = p["configs"].get(lab)
                if not c:
                    continue
                if c.get("runs"):
                    w = c.get("warmup") or {}
                    rows.append([p["backend"], var, lab, c["n"], f"{fmt(w.get('wall_s'), 1)} s ({fmt(tps(w, 'prompt'), 0)} t/s)",
                                 f"{fmt(c['prompt_tps'])} ({fmt(c['prompt_tps_range'][0])}-{fmt(c['prompt_tps_range'][1])})",
                                 f"{fmt(c['gen_tps'])} ({fmt(c['gen_tps_range'][0])}-{fmt(c['gen_tps_range'][1])})",
                                 (c.get("evidence") or {}).get("ps_library") or "-",
                                 ",".join(m.replace("libggml-", "").replace(".so", "").replace(".0", "") for m in ((c.get("evidence") or {}).get("runner_maps") or []))])
                else:
                    err = (c.get("errors") or [{}])[0]
                    rows.append([p["backend"], var, lab, 0, "", "failed: " + err.get("error", "?")[:80].replace("|", "/"), "", "", ""])
            if p["ok"]:
                ok[p["backend"]] = p
        md += table(rows, ["backend", "variant", "binary", "runs", "first request (warm-up, incl. load)", "prompt t/s (min-max)", "generation t/s (min-max)",
                           "/api/ps library", "libggml in runner"])
        md.append("")
        rrows = []
        for b, p in ok.items():
            f, u = p["configs"]["fork"], p["configs"]["upstream"]
            rrows.append([f"fork / upstream, {b}", f"{f['prompt_tps'] / u['prompt_tps']:.3f}", f"{f['gen_tps'] / u['gen_tps']:.3f}", ">= 0.98"])
            fs = p["configs"].get("fork-subdir")
            if fs and fs.get("gen_tps"):
                rrows.append([f"fork (subdir layout) / upstream, {b}", f"{fs['prompt_tps'] / u['prompt_tps']:.3f}",
                              f"{fs['gen_tps'] / u['gen_tps']:.3f}", ">= 0.98"])
        if "CUDA" in ok and "Vulkan" in ok:
            f, c = ok["Vulkan"]["configs"]["fork"], ok["CUDA"]["configs"]["fork"]
            rrows.append(["Vulkan / CUDA, fork", f"{f['prompt_tps'] / c['prompt_tps']:.3f}", f"{f['gen_tps'] / c['gen_tps']:.3f}", ""])
        if rrows:
            md += table(rrows, ["ratio", "prompt", "generation", "target"])
            md.append("")
        if bw and bw.get("bw_Bps"):
            mb = perf["model_bytes"]
            floor = bw["bw_Bps"] / mb
            md.append(f"Decode floor: the qwen3 model is {mb / 1e9:.2f} GB (q4_K_M blob, every weight read once per token); "
                      f"measured copy bandwidth {bw['bw_Bps'] / 1e12:.2f} TB/s (read + write, torch device-to-device copy of 4 GiB) "
                      f"gives at most {floor:,.0f} tokens/s ({1000 / floor:.2f} ms/token).")
            md.append("")
            frows = [[b, lab, fmt(p["configs"][lab]["gen_tps"]), f"{100 * p['configs'][lab]['gen_tps'] / floor:.0f} %",
                      f"{1000 / p['configs'][lab]['gen_tps']:.2f}"] for b, p in ok.items() for lab in ("fork", "upstream")]
            md += table(frows, ["backend", "binary", "generation t/s", "of the floor", "ms/token"])
            md.append("")
    if st:
        md.append("Time from `ollama serve` start to the first `inference compute` line (median; one warm-up round excluded):")
        md.append("")
        rows = []
        for lab, c in st["configs"].items():
            rows.append([lab, len(c["runs"]), fmt(c["median_s"], 3) if c["median_s"] else "n/a",
                         " / ".join(fmt(r["ready_s"], 2) if r["ready_s"] else "-" for r in c["runs"]),
                         ",".join(c["libraries"])])
        md += table(rows, ["server", "runs", "median s", "each run s", "libraries reported"])
        md.append("")
    if idle:
        md.append(f"GPU at rest before any server: {fmt(idle['baseline'].get('power'))} W, SM clock {fmt(idle['baseline'].get('clock'), 0)} MHz, "
                  f"util {fmt(idle['baseline'].get('util'), 0)} %. After `keep_alive: 0` (fork, flat layout):")
        md.append("")
        rows = []
        for b, tr in idle["traces"].items():
            it = tr.get("idle") or {}
            pre = [r for r in tr.get("samples", []) if -4.5 <= r["rel"] < -0.6]
            rows.append([b, f"{fmt(med([r['util'] for r in pre]), 0)} % / {fmt(med([r['power'] for r in pre]))} W / {fmt(med([r['clock'] for r in pre]), 0)} MHz",
                         fmt(tr.get("runner_exit_s"), 2), fmt(it.get("util"), 1), fmt(it.get("power"), 1), fmt(it.get("clock"), 1),
                         fmt(it.get("all"), 1)])
        md += table(rows, ["backend", "while generating (median util / power / SM clock)", "runner exit s",
                           "util 0 after s", "power at rest after s", "clock at rest after s", "all at rest after s"])
        md.append("")
    if vkd:
        md.append("Vulkan runner on 512-token prompts, as in the earlier finding: default context (40960 here), "
                  "3 requests on one fresh server each (75/60 s timeouts); wall time, prompt/generation t/s:")
        md.append("")
        rows = []
        for v in vkd["variants"]:
            res = "; ".join((("ok in %.1f s, %s/%s t/s" % (q["wall_s"], fmt(q.get("prompt_tps"), 0), fmt(q.get("gen_tps"), 0)))
                             if q.get("prompt_tps") else "ok in %.1f s (no timings: ollama stopped it at its token-repeat limit)" % q["wall_s"])
                            if q["ok"] else f"failed after {q['wall_s']:.1f} s: {q['error'][:90]}" for q in v["requests"])
            rows.append([v["label"], (res or v.get("error", "")).replace("|", "/")])
        md += table(rows, ["variant", "requests"])
        md.append("")
    text = "\n".join(md)
    OUTDIR.mkdir(parents=True, exist_ok=True)
    (OUTDIR / "summary.md").write_text(text + "\n")
    merged = {p: get(p) for p in ("baseline", "bandwidth", "check", "perf", "startup", "idle", "vkdiag")}
    (OUTDIR / "results.json").write_text(json.dumps(merged, indent=1, default=str))
    if idle:
        with open(OUTDIR / "idle.csv", "w") as f:
            f.write("backend,t_rel_s,utilization_gpu_pct,power_draw_w,clocks_sm_mhz,memory_used_mib\n")
            for b, tr in idle["traces"].items():
                for r in tr.get("samples", []):
                    f.write(f"{b},{r['rel']:.3f},{r['util']:.0f},{r['power']:.2f},{r['clock']:.0f},{r['mem']:.0f}\n")
        plot_idle(idle, gpu, OUTDIR / "idle.png")
    print(text)


def plot_idle(idle, gpu, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as ex:
        print(f"report: no plot ({ex})")
        return
    fig, axs = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    colors = {"CUDA": "tab:green", "Vulkan": "tab:red"}
    for b, tr in idle["traces"].items():
        rows = tr.get("samples", [])
        if not rows:
            continue
        x = [r["rel"] for r in rows]
        axs[0].plot(x, [r["util"] for r in rows], label=b, color=colors.get(b))
        axs[1].plot(x, [r["power"] for r in rows], label=b, color=colors.get(b))
        axs[2].plot(x, [r["clock"] for r in rows], label=b, color=colors.get(b))
        if tr.get("runner_exit_s") is not None:
            for a in axs:
                a.axvline(tr["runner_exit_s"], color=colors.get(b), ls=":", lw=1)
    base = idle.get("baseline") or {}
    for a, key, lab in ((axs[0], "util", "GPU utilization %"), (axs[1], "power", "power draw W"), (axs[2], "clock", "SM clock MHz")):
        a.axvline(0, color="k", lw=1)
        if base.get(key) is not None:
            a.axhline(base[key], color="gray", ls="--", lw=0.8)
        a.set_ylabel(lab)
        a.grid(alpha=0.3)
    axs[0].legend(loc="upper right")
    axs[0].set_title(f"{gpu.get('name', 'GPU')}, driver {gpu.get('driver_version', '?')}: fork, qwen3 4B-class q4_K_M, "
                     f"unload (keep_alive 0) at t=0", fontsize=9)
    axs[2].set_xlabel("seconds from the unload request (dotted: runner exit; dashed: at rest before any server)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"report: wrote {path}")


# ---------------------------------------------------------------------------

PHASES = {"baseline": phase_baseline, "bandwidth": phase_bandwidth, "check": phase_check, "perf": phase_perf,
          "startup": phase_startup, "idle": phase_idle, "vkdiag": phase_vkdiag}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("phases", nargs="+", choices=list(PHASES) + ["report"])
    ap.add_argument("--results", action="append", help="report: results directories, later ones win")
    a = ap.parse_args()
    rc = 0
    for ph in a.phases:
        say(f"=== {ph} ({left():.0f} s left)" if left() != math.inf else f"=== {ph}")
        try:
            if ph == "report":
                phase_report(a.results)
            else:
                PHASES[ph]()
        except Exception as ex:
            import traceback
            traceback.print_exc()
            say(f"FAIL {ph}: phase crashed: {brief(ex)}")
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())

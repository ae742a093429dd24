// fakegpu.c - a fake GGML GPU backend library for the integration tests.
//
// Built (by integration/internal/fakegpu, with the runtime root's gcc) as a
// shared object named like a real GGML GPU backend (libggml-hip.so,
// libggml-vulkan.so, ...). llama-server (llama.cpp, the runner of Ollama
// v0.34 and later) loads it through ggml_backend_load_all(): dlopen(),
// ggml_backend_score(), ggml_backend_init(); it then sees ONE GPU device
// whose properties come from environment variables read at init time.
// Ollama's native probe (`ollama gpu-discover`) loads it the same way with
// ggml_backend_load() and reads the device props.
//
// ABI: ggml 0.27.0, GGML_BACKEND_API_VERSION 3 (see ggml-abi.h: ggml's own
// ggml-backend-impl.h from build/ggml-src/<version> when scripts/ggml-src.sh
// could fetch it, else the fake's declarations checked against the 0.27.0
// binaries). The public headers are the root's (libggml-dev). The library
// links libggml-base.so.0 (buffers are made by ggml_backend_buffer_init, so
// ggml_backend_buffer_free can delete them) and libggml.so.0 (the CPU device
// for the delegate compute mode); both are the ones llama-server has loaded.
//
// What a device reports. ggml 0.27's device props carry only name,
// description, memory, type, PCI bus id (device_id) and caps; there is no
// library, id, compute capability, driver version or "integrated" field any
// more (those were Ollama v0.18's patches to ggml). Ollama v0.34 reads them
// elsewhere, and the fake supplies them the same way the real backends do:
//   - the library from the device/registry name: "ROCm0" (registry "ROCm"),
//     "Vulkan0", "CUDA0", which `llama-server --list-devices` prints as
//       ROCm0: Fake ROCm GPU (16384 MiB, 16384 MiB free)
//   - the compute capability from a line on stderr at init, worded like the
//     real backend's, e.g. for ROCm
//       ggml_cuda_init: found 1 ROCm devices:
//         Device 0: Fake ROCm GPU, gfx1200 (0x1200), VMM: no, Wave Size: 32
//     for CUDA "  Device 0: NAME, compute capability 8.9, VMM: yes", for
//     Vulkan "ggml_vulkan: 0 = NAME (fakegpu) | uma: 0 | fp16: 1 | ...";
//   - the PCI id from props.device_id (the twin's match key).
//
// Compute: buffers are plain host memory (the buffer type reports is_host).
// COMPUTE_MODE=delegate (the default) claims every op the CPU device
// supports and runs the graph splits the scheduler gives the fake on a CPU
// backend of its own (ggml_backend_dev_by_type(CPU) + ggml_backend_dev_init,
// thread count forwarded from ggml_backend_set_n_threads): llama.cpp puts
// the weights and KV cache of offloaded layers into the fake "VRAM" only
// when the device supports the ops, so this is the mode in which a model
// really runs "on" the fake GPU. COMPUTE_MODE=host claims no op: llama.cpp
// still reports "offloaded N/N layers" but keeps every weight in CPU
// buffers; only the KV cache lands in the fake's memory, and the CPU
// backend computes everything (reading the KV cache there, since the buffer
// is host memory). A graph that still reaches the fake fails
// (graph_compute returns FAILED).
//
// Configuration: every setting KEY is looked up as
//   1. getenv(FAKEGPU_PREFIX KEY)   (per built copy, e.g. FAKEHIP_PCI_ID)
//   2. getenv("FAKEGPU_" KEY)       (shared by all copies)
//   3. the compile-time FAKEGPU_DEFAULTS string "KEY=VAL;KEY=VAL"
//   4. a built-in default (which may depend on LIBRARY)
//
// Keys:
//   LIBRARY       ROCm | Vulkan | CUDA | anything: registry name and device
//                 name prefix ("ROCm0"), and which *_VISIBLE_DEVICES and
//                 init lines apply
//   NAME          device description          (default "Fake <LIBRARY> GPU")
//   INDEX         number in the device name     (default 0: "ROCm0"); lets
//                 a fake Vulkan copy sit beside the real Vulkan backend
//                 (lavapipe is "Vulkan0") without a name clash
//   ID            the device's id, matched by *_VISIBLE_DEVICES besides "0"
//                 (ROCm "GPU-fa4e000000000001", Vulkan
//                 "fa4e0000-0000-0000-0000-000000000001", CUDA
//                 "GPU-fa4e0000-0000-0000-0000-000000000001")
//   PCI_ID        props.device_id               (default "0000:03:00.0";
//                 "none" -> NULL)
//   COMPUTE       "gfx1200" (ROCm) or "8.9" (CUDA), printed in the init
//                 line (default ROCm gfx1200, CUDA 8.9; Vulkan prints none)
//   TOTAL_MIB     total memory                  (default 16384)
//   FREE_MIB      free memory before allocations (default TOTAL_MIB)
//   INTEGRATED    0/1: Vulkan "uma: 1" in the init line, and the default
//                 DEVICE_TYPE igpu                (default 0)
//   DEVICE_TYPE   gpu | igpu                    (default: igpu for an
//                 integrated Vulkan device, gpu otherwise)
//   SCORE         ggml_backend_score() result   (default 1)
//   FAULT         comma separated fault modes:
//                   crash          abort() in ggml_backend_init
//                   segv           SIGSEGV in ggml_backend_init
//                   hang           sleep forever in ggml_backend_init
//                   nodevices      register zero devices
//                   nullreg        ggml_backend_init returns NULL
//                   badapi         wrong GGML_BACKEND_API_VERSION (ggml
//                                  refuses the library)
//                   score0         ggml_backend_score returns 0 (ggml then
//                                  loads a libggml-NAME-*.so variant only
//                                  if nothing better is found)
//                   crash-validate abort() in init when GGML_CUDA_INIT=1
//                                  (Ollama's deep validation environment)
//                   hang-validate  hang in init when GGML_CUDA_INIT=1
//                   crash-alloc    abort() on the first non-empty allocation
//                   oom            every non-empty allocation fails
//                   dup-pci        register a second device with its own id
//                                  (ID with the last character changed) and
//                                  name (INDEX+1) but the same PCI id: one
//                                  GPU reported twice
//   INIT_DELAY_MS sleep this long in ggml_backend_init
//   COMPUTE_MODE  delegate (default) | host
//   TRACE         path of a file to append one line per event to
//   IGNORE_VISIBLE 1: do not honour *_VISIBLE_DEVICES
// Dropped with the move from Ollama v0.18.2's ggml: DRIVER (no driver field
// in the props; Ollama v0.34 asks libcuda), FAULT=nolibname (no library
// field), the device reset hook (not in upstream ggml).
//
// Visibility: a ROCm copy honours ROCR_VISIBLE_DEVICES, HIP_VISIBLE_DEVICES
// and GPU_DEVICE_ORDINAL (every one that is set must admit the device, as
// the HIP runtime filters by each in turn), a CUDA copy CUDA_VISIBLE_DEVICES,
// a Vulkan copy GGML_VK_VISIBLE_DEVICES. A variable admits the device when
// one of its comma separated entries is "0" or equals ID. A hidden device is
// not registered (0 devices), and no init line is printed.
//
// Trace lines: "fakegpu event=E pid=N ppid=N prefix=P library=L so=PATH
// [key=value...]"; init adds exe= (the process's executable), model=1 when
// the command line has --model/-m, list=1 for --list-devices, and
// cuda_init= (GGML_CUDA_INIT). Events: score, init, visible, registered,
// fault, init-backend, alloc, delegate (first delegated graph), graph-compute
// (a graph the fake cannot run).
//
// Memory accounting: allocations are real allocations; they are counted
// against FREE_MIB (an allocation that would exceed it fails like a real
// out-of-memory), and get_memory() reports FREE_MIB minus the live bytes.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ggml-abi.h"

#ifndef FAKEGPU_PREFIX
#define FAKEGPU_PREFIX "FAKEGPU_"
#endif

#ifndef FAKEGPU_DEFAULTS
#define FAKEGPU_DEFAULTS ""
#endif

#define FG_EXPORT __attribute__((visibility("default")))
#define FG_ALIGN 64

// ---------------------------------------------------------------------------
// configuration

static char fg_defaults_buf[1024];

static const char *fg_compiled_default(const char *key) {
    // FAKEGPU_DEFAULTS is "KEY=VAL;KEY=VAL"; values live in fg_defaults_buf.
    static int parsed = 0;
    static const char *keys[32];
    static const char *vals[32];
    static int n = 0;
    if (!parsed) {
        parsed = 1;
        snprintf(fg_defaults_buf, sizeof(fg_defaults_buf), "%s", FAKEGPU_DEFAULTS);
        char *save = NULL;
        for (char *tok = strtok_r(fg_defaults_buf, ";", &save); tok && n < 32; tok = strtok_r(NULL, ";", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq) {
                continue;
            }
            *eq = '\0';
            keys[n] = tok;
            vals[n] = eq + 1;
            n++;
        }
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i], key) == 0) {
            return vals[i];
        }
    }
    return NULL;
}

static const char *fg_lookup(const char *key) {
    char name[128];
    snprintf(name, sizeof(name), "%s%s", FAKEGPU_PREFIX, key);
    const char *v = getenv(name);
    if (v && *v) {
        return v;
    }
    snprintf(name, sizeof(name), "FAKEGPU_%s", key);
    v = getenv(name);
    if (v && *v) {
        return v;
    }
    return fg_compiled_default(key);
}

static const char *fg_get(const char *key, const char *def) {
    const char *v = fg_lookup(key);
    return v ? v : def;
}

static long long fg_get_ll(const char *key, long long def) {
    const char *v = fg_lookup(key);
    if (!v) {
        return def;
    }
    char *end = NULL;
    long long r = strtoll(v, &end, 0);
    if (end == v) {
        return def;
    }
    return r;
}

static int fg_fault(const char *mode) {
    const char *v = fg_lookup("FAULT");
    if (!v) {
        return 0;
    }
    size_t n = strlen(mode);
    const char *p = v;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t) (e - p) : strlen(p);
        if (len == n && strncmp(p, mode, n) == 0) {
            return 1;
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    return 0;
}

// ---------------------------------------------------------------------------
// tracing

static char fg_so_path[4096] = "?";

static void fg_find_self(void) {
    Dl_info info;
    if (dladdr((void *) &fg_find_self, &info) && info.dli_fname) {
        snprintf(fg_so_path, sizeof(fg_so_path), "%s", info.dli_fname);
    }
}

static const char *fg_library(void);

static void fg_trace(const char *event, const char *fmt, ...) {
    const char *path = fg_lookup("TRACE");
    if (!path) {
        return;
    }
    char line[8192];
    int off = snprintf(line, sizeof(line), "fakegpu event=%s pid=%d ppid=%d prefix=%s library=%s so=%s",
                       event, (int) getpid(), (int) getppid(), FAKEGPU_PREFIX, fg_library(), fg_so_path);
    if (fmt && off > 0 && off < (int) sizeof(line)) {
        line[off++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        int m = vsnprintf(line + off, sizeof(line) - off, fmt, ap);
        va_end(ap);
        if (m > 0) {
            off += m;
        }
    }
    if (off >= (int) sizeof(line) - 1) {
        off = sizeof(line) - 2;
    }
    line[off++] = '\n';
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return;
    }
    ssize_t w = write(fd, line, off);
    (void) w;
    close(fd);
}

static void fg_sleep_ms(long ms) {
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

// ---------------------------------------------------------------------------
// device state

struct fg_device_ctx {
    char library[64];
    char name[80];      // "ROCm0"
    char description[256];
    char id[128];
    char pci_id[64];
    int has_pci_id;
    char compute[32];   // as configured: "gfx1200", "8.9"
    int compute_major, compute_minor;
    int index;
    int integrated;
    enum ggml_backend_dev_type type;
    size_t total, free;
    size_t used; // live bytes, updated atomically
    int delegate;
};

static struct fg_device_ctx fg_dev_ctx;

// fg_device2 is the second device of FAULT=dup-pci: same context (memory,
// PCI id, buffer type), its own name and id.
static struct ggml_backend_device fg_device;
static struct ggml_backend_device fg_device2;
static char fg_dup_id[128];
static char fg_dup_name[80];

static char fg_lib_name[64] = "";

static const char *fg_library(void) {
    if (!fg_lib_name[0]) {
        snprintf(fg_lib_name, sizeof(fg_lib_name), "%s", fg_get("LIBRARY", "ROCm"));
    }
    return fg_lib_name;
}

static int fg_is(const char *lib) {
    return strcasecmp(fg_library(), lib) == 0;
}

static void fg_parse_version(const char *s, int *major, int *minor) {
    *major = 0;
    *minor = 0;
    if (!s) {
        return;
    }
    if (strncasecmp(s, "gfx", 3) == 0) {
        // gfx%x%02x: the last two hex digits are the minor, the rest the
        // major (gfx1200 -> 0x12/0x00, gfx90a -> 0x9/0x0a), as Ollama reads it.
        const char *hex = s + 3;
        size_t n = strlen(hex);
        if (n < 3) {
            *major = (int) strtol(hex, NULL, 16);
            return;
        }
        char maj[16] = { 0 };
        size_t ml = n - 2 < sizeof(maj) - 1 ? n - 2 : sizeof(maj) - 1;
        memcpy(maj, hex, ml);
        *major = (int) strtol(maj, NULL, 16);
        *minor = (int) strtol(hex + n - 2, NULL, 16);
        return;
    }
    char *end = NULL;
    *major = (int) strtol(s, &end, 10);
    if (end && *end == '.') {
        *minor = (int) strtol(end + 1, NULL, 10);
    }
}

static void fg_setup_device(void) {
    struct fg_device_ctx *c = &fg_dev_ctx;
    memset(c, 0, sizeof(*c));
    snprintf(c->library, sizeof(c->library), "%s", fg_library());
    c->index = (int) fg_get_ll("INDEX", 0);
    snprintf(c->name, sizeof(c->name), "%.60s%d", c->library, c->index);

    char defname[128];
    snprintf(defname, sizeof(defname), "Fake %.60s GPU", c->library);
    snprintf(c->description, sizeof(c->description), "%s", fg_get("NAME", defname));

    const char *defid = "GPU-fa4e000000000001";
    if (fg_is("Vulkan")) {
        defid = "fa4e0000-0000-0000-0000-000000000001";
    } else if (fg_is("CUDA")) {
        defid = "GPU-fa4e0000-0000-0000-0000-000000000001";
    }
    snprintf(c->id, sizeof(c->id), "%s", fg_get("ID", defid));

    const char *pci = fg_get("PCI_ID", "0000:03:00.0");
    c->has_pci_id = strcasecmp(pci, "none") != 0 && pci[0] != '\0';
    snprintf(c->pci_id, sizeof(c->pci_id), "%s", pci);

    const char *defcompute = fg_is("ROCm") ? "gfx1200" : fg_is("CUDA") ? "8.9" : "";
    snprintf(c->compute, sizeof(c->compute), "%s", fg_get("COMPUTE", defcompute));
    fg_parse_version(c->compute, &c->compute_major, &c->compute_minor);

    c->integrated = fg_get_ll("INTEGRATED", 0) != 0;
    const char *t = fg_lookup("DEVICE_TYPE");
    if (t) {
        c->type = strcasecmp(t, "igpu") == 0 ? GGML_BACKEND_DEVICE_TYPE_IGPU : GGML_BACKEND_DEVICE_TYPE_GPU;
    } else {
        c->type = (c->integrated && fg_is("Vulkan")) ? GGML_BACKEND_DEVICE_TYPE_IGPU : GGML_BACKEND_DEVICE_TYPE_GPU;
    }

    long long total = fg_get_ll("TOTAL_MIB", 16384);
    long long freem = fg_get_ll("FREE_MIB", total);
    c->total = (size_t) total * 1024 * 1024;
    c->free = (size_t) freem * 1024 * 1024;
    c->delegate = strcasecmp(fg_get("COMPUTE_MODE", "delegate"), "host") != 0;
}

// fg_admits reports whether the *_VISIBLE_DEVICES style value v lists this
// device ("0" or its id; with dup-pci also the second id).
static int fg_admits(const char *v) {
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ') {
            tok++;
        }
        if (strcmp(tok, "0") == 0 || strcmp(tok, fg_dev_ctx.id) == 0 || (fg_fault("dup-pci") && strcmp(tok, fg_dup_id) == 0)) {
            return 1;
        }
    }
    return 0;
}

static int fg_visible(void) {
    if (fg_get_ll("IGNORE_VISIBLE", 0)) {
        return 1;
    }
    const char *vars[4] = { NULL, NULL, NULL, NULL };
    if (fg_is("ROCm")) {
        vars[0] = "ROCR_VISIBLE_DEVICES";
        vars[1] = "HIP_VISIBLE_DEVICES";
        vars[2] = "GPU_DEVICE_ORDINAL";
    } else if (fg_is("CUDA")) {
        vars[0] = "CUDA_VISIBLE_DEVICES";
    } else if (fg_is("Vulkan")) {
        vars[0] = "GGML_VK_VISIBLE_DEVICES";
    }
    int visible = 1;
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (!v) {
            continue;
        }
        int found = fg_admits(v);
        fg_trace("visible", "var=%s value=%s visible=%d", vars[i], v, found);
        visible = visible && found;
    }
    return visible;
}

// ---------------------------------------------------------------------------
// CPU delegation (COMPUTE_MODE=delegate)
//
// The CPU device comes from ggml's registry (libggml.so, already loaded by
// the host process). It is looked up on first use, not in
// ggml_backend_init: the loader registers the CPU backend after the GPU ones.

static ggml_backend_dev_t fg_cpu_dev;
static pthread_once_t fg_cpu_once = PTHREAD_ONCE_INIT;
static int fg_n_threads; // from ggml_backend_set_n_threads, 0 = CPU default

static void fg_find_cpu(void) {
    fg_cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    fg_trace("cpu-device", "found=%d", fg_cpu_dev != NULL);
}

static ggml_backend_dev_t fg_cpu(void) {
    pthread_once(&fg_cpu_once, fg_find_cpu);
    return fg_cpu_dev;
}

typedef void (*fg_set_n_threads_fn)(ggml_backend_t backend, int n_threads);

static void fg_cpu_set_threads(ggml_backend_t cpu, int n) {
    if (!cpu || n <= 0) {
        return;
    }
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(ggml_backend_get_device(cpu));
    fg_set_n_threads_fn fn = reg ? (fg_set_n_threads_fn) ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads") : NULL;
    if (fn) {
        fn(cpu, n);
    }
}

// ---------------------------------------------------------------------------
// buffers

struct fg_buffer_ctx {
    void *data;
    size_t size;
};

static void fg_buffer_free(ggml_backend_buffer_t buffer) {
    // ggml_backend_buffer_free deletes the buffer object itself afterwards.
    struct fg_buffer_ctx *ctx = buffer->context;
    if (ctx) {
        __atomic_sub_fetch(&fg_dev_ctx.used, ctx->size, __ATOMIC_RELAXED);
        free(ctx->data);
        free(ctx);
        buffer->context = NULL;
    }
}

static void *fg_buffer_get_base(ggml_backend_buffer_t buffer) {
    struct fg_buffer_ctx *ctx = buffer->context;
    return ctx->data;
}

static void fg_buffer_memset_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value, size_t offset, size_t size) {
    (void) buffer;
    memset((char *) tensor->data + offset, value, size);
}

static void fg_buffer_set_tensor(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data, size_t offset, size_t size) {
    (void) buffer;
    memcpy((char *) tensor->data + offset, data, size);
}

static void fg_buffer_get_tensor(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data, size_t offset, size_t size) {
    (void) buffer;
    memcpy(data, (const char *) tensor->data + offset, size);
}

static void fg_buffer_clear(ggml_backend_buffer_t buffer, uint8_t value) {
    struct fg_buffer_ctx *ctx = buffer->context;
    memset(ctx->data, value, ctx->size);
}

static const struct ggml_backend_buffer_i fg_buffer_iface = {
    .free_buffer = fg_buffer_free,
    .get_base = fg_buffer_get_base,
    .memset_tensor = fg_buffer_memset_tensor,
    .set_tensor = fg_buffer_set_tensor,
    .get_tensor = fg_buffer_get_tensor,
    .clear = fg_buffer_clear,
};

static const char *fg_buft_get_name(ggml_backend_buffer_type_t buft) {
    (void) buft;
    return fg_dev_ctx.name;
}

static ggml_backend_buffer_t fg_buft_alloc_buffer(ggml_backend_buffer_type_t buft, size_t size) {
    if (size > 0 && fg_fault("crash-alloc")) {
        fg_trace("alloc", "size=%zu fault=crash-alloc", size);
        fprintf(stderr, "fakegpu: %s: injected crash on allocation of %zu bytes\n", fg_library(), size);
        abort();
    }
    if (size > 0 && fg_fault("oom")) {
        fg_trace("alloc", "size=%zu ok=0 fault=oom", size);
        return NULL;
    }
    size_t used = __atomic_add_fetch(&fg_dev_ctx.used, size, __ATOMIC_RELAXED);
    if (used > fg_dev_ctx.free) {
        __atomic_sub_fetch(&fg_dev_ctx.used, size, __ATOMIC_RELAXED);
        fg_trace("alloc", "size=%zu ok=0 reason=out-of-memory used=%zu free=%zu", size, used - size, fg_dev_ctx.free);
        fprintf(stderr, "fakegpu: %s: out of memory allocating %zu bytes\n", fg_library(), size);
        return NULL;
    }
    struct fg_buffer_ctx *ctx = calloc(1, sizeof(*ctx));
    void *data = NULL;
    if (!ctx || posix_memalign(&data, FG_ALIGN, size > 0 ? size : FG_ALIGN) != 0) {
        __atomic_sub_fetch(&fg_dev_ctx.used, size, __ATOMIC_RELAXED);
        free(ctx);
        return NULL;
    }
    ctx->data = data;
    ctx->size = size;
    ggml_backend_buffer_t buf = ggml_backend_buffer_init(buft, fg_buffer_iface, ctx, size);
    if (!buf) {
        fg_buffer_free(&(struct ggml_backend_buffer){ .context = ctx });
        return NULL;
    }
    fg_trace("alloc", "size=%zu ok=1 used=%zu", size, used);
    return buf;
}

static size_t fg_buft_get_alignment(ggml_backend_buffer_type_t buft) {
    (void) buft;
    return FG_ALIGN;
}

static bool fg_buft_is_host(ggml_backend_buffer_type_t buft) {
    (void) buft;
    return true;
}

static struct ggml_backend_buffer_type fg_buft = {
    .iface = {
        .get_name = fg_buft_get_name,
        .alloc_buffer = fg_buft_alloc_buffer,
        .get_alignment = fg_buft_get_alignment,
        .is_host = fg_buft_is_host,
    },
    .device = NULL, // set in init
    .context = NULL,
};

// ---------------------------------------------------------------------------
// backend (stream)

struct fg_backend_ctx {
    ggml_backend_t cpu; // delegate mode, made on the first graph
    int n_threads;
};

static const char *fg_backend_get_name(ggml_backend_t backend) {
    return ggml_backend_dev_name(backend->device);
}

static void fg_backend_free(ggml_backend_t backend) {
    struct fg_backend_ctx *ctx = backend->context;
    if (ctx) {
        if (ctx->cpu) {
            ggml_backend_free(ctx->cpu);
        }
        free(ctx);
    }
    free(backend);
}

static int fg_delegated;

static enum ggml_status fg_backend_graph_compute(ggml_backend_t backend, struct ggml_cgraph *cgraph) {
    struct fg_backend_ctx *ctx = backend->context;
    if (fg_dev_ctx.delegate && !ctx->cpu && fg_cpu()) {
        ctx->cpu = ggml_backend_dev_init(fg_cpu(), NULL);
        int n = ctx->n_threads ? ctx->n_threads : __atomic_load_n(&fg_n_threads, __ATOMIC_RELAXED);
        fg_cpu_set_threads(ctx->cpu, n);
    }
    if (fg_dev_ctx.delegate && ctx->cpu) {
        if (!__atomic_exchange_n(&fg_delegated, 1, __ATOMIC_RELAXED)) {
            fg_trace("delegate", "first=1 nodes=%d", ggml_graph_n_nodes(cgraph));
        }
        return ggml_backend_graph_compute(ctx->cpu, cgraph);
    }
    fg_trace("graph-compute", "ok=0");
    fprintf(stderr, "fakegpu: %s: graph_compute called but this fake device cannot compute (COMPUTE_MODE=host)\n", fg_library());
    return GGML_STATUS_FAILED;
}

static const struct ggml_backend_i fg_backend_iface = {
    .get_name = fg_backend_get_name,
    .free = fg_backend_free,
    .graph_compute = fg_backend_graph_compute,
};

static ggml_guid fg_guid = { 0xfa, 0x4e, 0x69, 0x70, 0x75, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 };

// ggml_backend_set_n_threads, offered through get_proc_address: llama.cpp
// sets its thread count on every backend whose registry has it.
static void fg_set_n_threads(ggml_backend_t backend, int n_threads) {
    __atomic_store_n(&fg_n_threads, n_threads, __ATOMIC_RELAXED);
    if (!backend || backend->guid != &fg_guid) {
        return;
    }
    struct fg_backend_ctx *ctx = backend->context;
    ctx->n_threads = n_threads;
    fg_cpu_set_threads(ctx->cpu, n_threads);
}

// ---------------------------------------------------------------------------
// device

static const char *fg_dev_get_name(ggml_backend_dev_t dev) {
    return dev == &fg_device2 ? fg_dup_name : fg_dev_ctx.name;
}

static const char *fg_dev_get_description(ggml_backend_dev_t dev) {
    (void) dev;
    return fg_dev_ctx.description;
}

static void fg_dev_get_memory(ggml_backend_dev_t dev, size_t *free_mem, size_t *total) {
    (void) dev;
    size_t used = __atomic_load_n(&fg_dev_ctx.used, __ATOMIC_RELAXED);
    *total = fg_dev_ctx.total;
    *free_mem = used < fg_dev_ctx.free ? fg_dev_ctx.free - used : 0;
}

static enum ggml_backend_dev_type fg_dev_get_type(ggml_backend_dev_t dev) {
    (void) dev;
    return fg_dev_ctx.type;
}

static void fg_dev_get_props(ggml_backend_dev_t dev, struct ggml_backend_dev_props *props) {
    memset(props, 0, sizeof(*props));
    props->name = fg_dev_get_name(dev);
    props->description = fg_dev_get_description(dev);
    props->type = fg_dev_get_type(dev);
    props->device_id = fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : NULL;
    fg_dev_get_memory(dev, &props->memory_free, &props->memory_total);
}

static ggml_backend_t fg_dev_init_backend(ggml_backend_dev_t dev, const char *params) {
    (void) params;
    struct ggml_backend *b = calloc(1, sizeof(*b));
    struct fg_backend_ctx *ctx = calloc(1, sizeof(*ctx));
    if (!b || !ctx) {
        free(b);
        free(ctx);
        return NULL;
    }
    b->guid = &fg_guid;
    b->iface = fg_backend_iface;
    b->device = dev;
    b->context = ctx;
    fg_trace("init-backend", "device=%s", fg_dev_get_name(dev));
    return b;
}

static ggml_backend_buffer_type_t fg_dev_get_buffer_type(ggml_backend_dev_t dev) {
    (void) dev;
    return &fg_buft;
}

static bool fg_dev_supports_op(ggml_backend_dev_t dev, const struct ggml_tensor *op) {
    (void) dev;
    if (!fg_dev_ctx.delegate) {
        return false;
    }
    ggml_backend_dev_t cpu = fg_cpu();
    return cpu && ggml_backend_dev_supports_op(cpu, op);
}

static bool fg_dev_supports_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft) {
    (void) dev;
    return buft == &fg_buft;
}

static const struct ggml_backend_device_i fg_device_iface = {
    .get_name = fg_dev_get_name,
    .get_description = fg_dev_get_description,
    .get_memory = fg_dev_get_memory,
    .get_type = fg_dev_get_type,
    .get_props = fg_dev_get_props,
    .init_backend = fg_dev_init_backend,
    .get_buffer_type = fg_dev_get_buffer_type,
    .supports_op = fg_dev_supports_op,
    .supports_buft = fg_dev_supports_buft,
};

// ---------------------------------------------------------------------------
// registry

static size_t fg_dev_count;

static const char *fg_reg_get_name(ggml_backend_reg_t reg) {
    (void) reg;
    return fg_dev_ctx.library;
}

static size_t fg_reg_get_device_count(ggml_backend_reg_t reg) {
    (void) reg;
    return fg_dev_count;
}

static ggml_backend_dev_t fg_reg_get_device(ggml_backend_reg_t reg, size_t index) {
    (void) reg;
    if (index >= fg_dev_count) {
        fprintf(stderr, "fakegpu: invalid device index %zu\n", index);
        abort();
    }
    return index == 1 ? &fg_device2 : &fg_device;
}

static struct ggml_backend_feature fg_features[] = {
    { "FAKEGPU", "1" },
    { NULL, NULL },
};

static struct ggml_backend_feature *fg_get_features(ggml_backend_reg_t reg) {
    (void) reg;
    return fg_features;
}

static void *fg_reg_get_proc_address(ggml_backend_reg_t reg, const char *name) {
    (void) reg;
    if (strcmp(name, "ggml_backend_get_features") == 0) {
        return (void *) fg_get_features;
    }
    if (strcmp(name, "ggml_backend_set_n_threads") == 0) {
        return (void *) fg_set_n_threads;
    }
    return NULL;
}

static struct ggml_backend_reg fg_reg = {
    .api_version = GGML_BACKEND_API_VERSION,
    .iface = {
        .get_name = fg_reg_get_name,
        .get_device_count = fg_reg_get_device_count,
        .get_device = fg_reg_get_device,
        .get_proc_address = fg_reg_get_proc_address,
    },
    .context = NULL,
};

// ---------------------------------------------------------------------------
// exported entry points (the GGML_BACKEND_DL interface)

static int fg_initialized;

// fg_cmdline_has reports whether the process's command line has one of the
// given arguments (NULL terminated).
static int fg_cmdline_has(const char *const *args) {
    char buf[16384];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    for (ssize_t i = 0; i < n;) {
        for (const char *const *a = args; *a; a++) {
            if (strcmp(buf + i, *a) == 0) {
                return 1;
            }
        }
        i += (ssize_t) strlen(buf + i) + 1;
    }
    return 0;
}

static void fg_exe(char *out, size_t n) {
    ssize_t len = readlink("/proc/self/exe", out, n - 1);
    if (len < 0) {
        len = 0;
        snprintf(out, n, "?");
        return;
    }
    out[len] = '\0';
}

// fg_print_init_lines writes what the real backend prints when it
// initialises, which Ollama v0.34 parses for the compute capability and UMA.
// Device numbers start at INDEX, like the device names.
static void fg_print_init_lines(void) {
    const struct fg_device_ctx *c = &fg_dev_ctx;
    if (fg_dev_count == 0) {
        return;
    }
    for (size_t i = 0; i < fg_dev_count; i++) {
        if (fg_is("ROCm")) {
            if (i == 0) {
                fprintf(stderr, "ggml_cuda_init: found %zu ROCm devices:\n", fg_dev_count);
            }
            fprintf(stderr, "  Device %zu: %s, %s (0x%x), VMM: no, Wave Size: 32\n", c->index + i, c->description, c->compute,
                    (unsigned) (c->compute_major << 8 | c->compute_minor));
        } else if (fg_is("CUDA")) {
            if (i == 0) {
                fprintf(stderr, "ggml_cuda_init: found %zu CUDA devices:\n", fg_dev_count);
            }
            fprintf(stderr, "  Device %zu: %s, compute capability %d.%d, VMM: yes\n", c->index + i, c->description, c->compute_major,
                    c->compute_minor);
        } else if (fg_is("Vulkan")) {
            if (i == 0) {
                fprintf(stderr, "ggml_vulkan: Found %zu Vulkan devices:\n", fg_dev_count);
            }
            fprintf(stderr,
                    "ggml_vulkan: %zu = %s (fakegpu) | uma: %d | fp16: 1 | bf16: 0 | warp size: 32 | shared memory: 32768 | "
                    "int dot: 0 | matrix cores: none\n",
                    c->index + i, c->description, c->integrated);
        }
    }
    fflush(stderr);
}

FG_EXPORT int ggml_backend_score(void) {
    if (fg_so_path[0] == '?') {
        fg_find_self();
    }
    int score = fg_fault("score0") ? 0 : (int) fg_get_ll("SCORE", 1);
    fg_trace("score", "score=%d", score);
    return score;
}

FG_EXPORT ggml_backend_reg_t ggml_backend_init(void) {
    if (fg_initialized) {
        return &fg_reg;
    }
    fg_find_self();
    char exe[4096];
    fg_exe(exe, sizeof(exe));
    static const char *const model_args[] = { "--model", "-m", NULL };
    static const char *const list_args[] = { "--list-devices", NULL };
    fg_trace("init", "exe=%s model=%d list=%d cuda_init=%s", exe, fg_cmdline_has(model_args), fg_cmdline_has(list_args),
             getenv("GGML_CUDA_INIT") ? getenv("GGML_CUDA_INIT") : "");

    long delay = (long) fg_get_ll("INIT_DELAY_MS", 0);
    if (delay > 0) {
        fg_sleep_ms(delay);
    }

    const char *deep = getenv("GGML_CUDA_INIT");
    int validating = deep && strcmp(deep, "1") == 0;
    if (fg_fault("crash") || (validating && fg_fault("crash-validate"))) {
        fg_trace("fault", "mode=crash");
        fprintf(stderr, "fakegpu: %s: injected crash in ggml_backend_init\n", fg_library());
        fflush(stderr);
        abort();
    }
    if (fg_fault("segv")) {
        fg_trace("fault", "mode=segv");
        fprintf(stderr, "fakegpu: %s: injected SIGSEGV in ggml_backend_init\n", fg_library());
        fflush(stderr);
        raise(SIGSEGV);
    }
    if (fg_fault("hang") || (validating && fg_fault("hang-validate"))) {
        fg_trace("fault", "mode=hang");
        fprintf(stderr, "fakegpu: %s: injected hang in ggml_backend_init\n", fg_library());
        fflush(stderr);
        for (;;) {
            pause();
        }
    }
    if (fg_fault("nullreg")) {
        fg_trace("fault", "mode=nullreg");
        return NULL;
    }

    fg_setup_device();
    fg_device.iface = fg_device_iface;
    fg_device.reg = &fg_reg;
    fg_device.context = &fg_dev_ctx;
    fg_buft.device = &fg_device;

    snprintf(fg_dup_id, sizeof(fg_dup_id), "%s", fg_dev_ctx.id);
    size_t idlen = strlen(fg_dup_id);
    if (idlen > 0) {
        fg_dup_id[idlen - 1] = fg_dup_id[idlen - 1] == '2' ? '3' : '2';
    }
    snprintf(fg_dup_name, sizeof(fg_dup_name), "%.60s%d", fg_dev_ctx.library, fg_dev_ctx.index + 1);
    fg_dev_count = (fg_fault("nodevices") || !fg_visible()) ? 0 : 1;
    if (fg_dev_count == 1 && fg_fault("dup-pci")) {
        fg_device2 = fg_device;
        fg_dev_count = 2;
    }
    if (fg_fault("badapi")) {
        fg_reg.api_version = GGML_BACKEND_API_VERSION + 100;
    }
    fg_initialized = 1;

    fprintf(stderr, "fakegpu: %s backend from %s: %zu device(s), name=%s id=%s pci_id=%s compute=%s\n", fg_dev_ctx.library,
            fg_so_path, fg_dev_count, fg_dev_ctx.name, fg_dev_ctx.id, fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : "none",
            fg_dev_ctx.compute[0] ? fg_dev_ctx.compute : "-");
    fg_print_init_lines();
    fg_trace("registered", "devices=%zu name=%s id=%s pci_id=%s total=%zu free=%zu mode=%s", fg_dev_count, fg_dev_ctx.name,
             fg_dev_ctx.id, fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : "none", fg_dev_ctx.total, fg_dev_ctx.free,
             fg_dev_ctx.delegate ? "delegate" : "host");
    return &fg_reg;
}

// fakegpu.c - a fake GGML backend library for Ollama integration tests.
//
// Built (by integration/internal/fakegpu) as a shared object named like a
// real GGML GPU backend (libggml-hip.so, libggml-vulkan.so, ...). Ollama's
// runner dlopen()s it through ggml_backend_load_all_from_path(), calls
// ggml_backend_score() and ggml_backend_init(), and then sees ONE GPU device
// whose properties come from environment variables read at init time.
//
// It is written only against the public registry/device/buffer interfaces
// declared in upstream's ggml-backend.h and ggml-backend-impl.h. It calls NO
// ggml function: every object it hands out (registry, device, backend, buffer
// type, buffers) is allocated and filled in here, so the library has no
// undefined ggml symbols and loads whether or not a libggml-base.so is
// present (the Go ollama binary does not export its cgo-compiled ggml
// symbols dynamically).
//
// Compute: buffers are plain host memory and the buffer type reports
// is_host, while supports_op() is false by default. The ggml scheduler
// therefore runs every operation on the CPU backend, which reads the weights
// and KV cache straight out of the fake "VRAM". Models offloaded to the fake
// GPU really generate tokens; the work is done by the CPU backend.
// FAKEGPU_COMPUTE_MODE=delegate instead claims the ops and forwards its
// graph splits to the scheduler's CPU backend (see "CPU delegation").
//
// Configuration: every setting KEY is looked up as
//   1. getenv(FAKEGPU_PREFIX KEY)   (per built copy, e.g. FAKEHIP_PCI_ID)
//   2. getenv("FAKEGPU_" KEY)       (shared by all copies)
//   3. the compile-time FAKEGPU_DEFAULTS string "KEY=VAL;KEY=VAL"
//   4. a built-in default (which may depend on LIBRARY)
//
// Keys:
//   LIBRARY       ROCm | Vulkan | CUDA | anything (props.library, reg name)
//   NAME          device description          (default "Fake <LIBRARY> GPU")
//   ID            props.id                      (ROCm "GPU-fa4e000000000001",
//                 Vulkan "fa4e0000-0000-0000-0000-000000000001",
//                 CUDA "GPU-fa4e0000-0000-0000-0000-000000000001")
//   PCI_ID        props.device_id               (default "0000:03:00.0";
//                 "none" -> NULL)
//   COMPUTE       "gfx1200" (hex major/minor, ROCm style) or "8.9"
//                 (default ROCm gfx1200, CUDA 8.9, others 0.0)
//   DRIVER        "6.4"                         (default ROCm 6.4, CUDA 12.8,
//                 others 0.0)
//   TOTAL_MIB     total memory                  (default 16384)
//   FREE_MIB      free memory before allocations (default TOTAL_MIB)
//   INTEGRATED    0/1                           (default 0)
//   DEVICE_TYPE   gpu | igpu                    (default: igpu for an
//                 integrated Vulkan device, gpu otherwise, like upstream)
//   SCORE         ggml_backend_score() result   (default 1)
//   FAULT         comma separated fault modes:
//                   crash          abort() in ggml_backend_init
//                   segv           SIGSEGV in ggml_backend_init
//                   hang           sleep forever in ggml_backend_init
//                   nodevices      register zero devices
//                   nullreg        ggml_backend_init returns NULL
//                   badapi         wrong GGML_BACKEND_API_VERSION
//                   score0         ggml_backend_score returns 0
//                   crash-validate abort() in init when GGML_CUDA_INIT=1
//                                  (Ollama's 2nd-pass deep validation)
//                   hang-validate  hang in init when GGML_CUDA_INIT=1
//                   crash-alloc    abort() on the first non-empty allocation
//                   oom            every non-empty allocation fails
//                   nolibname      props.library is "" (the registry keeps
//                                  its name)
//                   dup-pci        register a second device with its own id
//                                  (ID with the last character changed) but
//                                  the same PCI id: one GPU reported twice
//   INIT_DELAY_MS sleep this long in ggml_backend_init
//   COMPUTE_MODE  host (default) | delegate
//   TRACE         path of a file to append one line per event to
//   IGNORE_VISIBLE 1: do not honour *_VISIBLE_DEVICES
//
// Visibility: a ROCm copy honours ROCR_VISIBLE_DEVICES then
// HIP_VISIBLE_DEVICES, a CUDA copy CUDA_VISIBLE_DEVICES, a Vulkan copy
// GGML_VK_VISIBLE_DEVICES. The device is visible when the variable is unset,
// or one of its comma separated entries is "0" or equals ID.
//
// Memory accounting: allocations are real malloc()s; they are counted
// against FREE_MIB (an allocation that would exceed it fails like a real
// out-of-memory), and get_memory() reports FREE_MIB minus the live bytes.

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>

#include "ggml-backend-impl.h"

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
    char name[80];         // "ROCm0"
    char buft_name[80];    // "ROCm0"
    char description[256];
    char id[128];
    char pci_id[64];
    int has_pci_id;
    int compute_major, compute_minor;
    int driver_major, driver_minor;
    int integrated;
    enum ggml_backend_dev_type type;
    size_t total, free;
    size_t used; // live bytes, updated atomically
    int delegate;
};

static struct fg_device_ctx fg_dev_ctx;

// fg_device2 is the second device of FAULT=dup-pci: same context (memory,
// PCI id, buffer type), its own name and id.
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
        // Ollama prints ROCm compute as gfx%x%02x: the last two hex digits
        // are the minor, the rest the major (gfx1200 -> 0x12/0x00,
        // gfx90a -> 0x9/0x0a).
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
    snprintf(c->name, sizeof(c->name), "%.60s0", c->library);
    snprintf(c->buft_name, sizeof(c->buft_name), "%.60s0", c->library);

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

    const char *defcompute = fg_is("ROCm") ? "gfx1200" : fg_is("CUDA") ? "8.9" : "0.0";
    fg_parse_version(fg_get("COMPUTE", defcompute), &c->compute_major, &c->compute_minor);
    const char *defdriver = fg_is("ROCm") ? "6.4" : fg_is("CUDA") ? "12.8" : "0.0";
    fg_parse_version(fg_get("DRIVER", defdriver), &c->driver_major, &c->driver_minor);

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
    c->delegate = strcasecmp(fg_get("COMPUTE_MODE", "host"), "delegate") == 0;
}

static int fg_visible(void) {
    if (fg_get_ll("IGNORE_VISIBLE", 0)) {
        return 1;
    }
    const char *vars[3] = { NULL, NULL, NULL };
    if (fg_is("ROCm")) {
        vars[0] = "ROCR_VISIBLE_DEVICES";
        vars[1] = "HIP_VISIBLE_DEVICES";
    } else if (fg_is("CUDA")) {
        vars[0] = "CUDA_VISIBLE_DEVICES";
    } else if (fg_is("Vulkan")) {
        vars[0] = "GGML_VK_VISIBLE_DEVICES";
    }
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (!v) {
            continue;
        }
        char buf[1024];
        snprintf(buf, sizeof(buf), "%s", v);
        char *save = NULL;
        int found = 0;
        for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (*tok == ' ') {
                tok++;
            }
            if (strcmp(tok, "0") == 0 || strcmp(tok, fg_dev_ctx.id) == 0 || (fg_fault("dup-pci") && strcmp(tok, fg_dup_id) == 0)) {
                found = 1;
            }
        }
        fg_trace("visible", "var=%s value=%s visible=%d", vars[i], v, found);
        return found;
    }
    return 1;
}

// ---------------------------------------------------------------------------
// CPU delegation (COMPUTE_MODE=delegate)
//
// The fake library cannot call the CPU backend's functions by name (the
// ollama binary does not export them), and the CPU buffer type carries no
// device pointer. But when the scheduler copies an intermediate tensor from
// the CPU backend into one of our splits it calls our cpy_tensor_async with
// the CPU backend object itself; we remember it (and decline the copy, so
// the scheduler falls back to a synchronous copy) and later run our splits
// through its graph_compute. Until it has been seen, supports_op is
// optimistic (true); afterwards it asks the CPU device.

static ggml_backend_t fg_cpu_backend; // the scheduler's CPU backend, once seen

static void fg_capture_cpu(ggml_backend_t b) {
    if (!b || __atomic_load_n(&fg_cpu_backend, __ATOMIC_ACQUIRE) || !b->device || !b->device->iface.get_type) {
        return;
    }
    if (b->device->iface.get_type(b->device) == GGML_BACKEND_DEVICE_TYPE_CPU) {
        __atomic_store_n(&fg_cpu_backend, b, __ATOMIC_RELEASE);
        fg_trace("capture-cpu", "backend=%s", b->iface.get_name ? b->iface.get_name(b) : "?");
    }
}

// ---------------------------------------------------------------------------
// buffers

struct fg_buffer_ctx {
    void *data;
    size_t size;
};

static void fg_buffer_free(ggml_backend_buffer_t buffer) {
    struct fg_buffer_ctx *ctx = buffer->context;
    if (ctx) {
        __atomic_sub_fetch(&fg_dev_ctx.used, ctx->size, __ATOMIC_RELAXED);
        free(ctx->data);
        free(ctx);
    }
    free(buffer);
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
    /* .free_buffer   = */ fg_buffer_free,
    /* .get_base      = */ fg_buffer_get_base,
    /* .init_tensor   = */ NULL,
    /* .memset_tensor = */ fg_buffer_memset_tensor,
    /* .set_tensor    = */ fg_buffer_set_tensor,
    /* .get_tensor    = */ fg_buffer_get_tensor,
    /* .cpy_tensor    = */ NULL,
    /* .clear         = */ fg_buffer_clear,
    /* .reset         = */ NULL,
};

static const char *fg_buft_get_name(ggml_backend_buffer_type_t buft) {
    (void) buft;
    return fg_dev_ctx.buft_name;
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
    struct ggml_backend_buffer *buf = calloc(1, sizeof(*buf));
    void *data = NULL;
    if (!ctx || !buf || posix_memalign(&data, FG_ALIGN, size > 0 ? size : FG_ALIGN) != 0) {
        __atomic_sub_fetch(&fg_dev_ctx.used, size, __ATOMIC_RELAXED);
        free(ctx);
        free(buf);
        return NULL;
    }
    ctx->data = data;
    ctx->size = size;
    buf->iface = fg_buffer_iface;
    buf->buft = buft;
    buf->context = ctx;
    buf->size = size;
    buf->usage = GGML_BACKEND_BUFFER_USAGE_ANY;
    buf->no_alloc = false;
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
    /* .iface = */ {
        /* .get_name       = */ fg_buft_get_name,
        /* .alloc_buffer   = */ fg_buft_alloc_buffer,
        /* .get_alignment  = */ fg_buft_get_alignment,
        /* .get_max_size   = */ NULL,
        /* .get_alloc_size = */ NULL,
        /* .is_host        = */ fg_buft_is_host,
        /* .noalloc_buffer = */ NULL,
    },
    /* .device   = */ NULL, // set in init
    /* .context  = */ NULL,
    /* .no_alloc = */ false,
};

// ---------------------------------------------------------------------------
// backend (stream)

static const char *fg_backend_get_name(ggml_backend_t backend) {
    (void) backend;
    return fg_dev_ctx.name;
}

static void fg_backend_free(ggml_backend_t backend) {
    free(backend);
}

static int fg_delegated;

static enum ggml_status fg_backend_graph_compute(ggml_backend_t backend, struct ggml_cgraph *cgraph, int batch_size) {
    (void) backend;
    ggml_backend_t cpu = __atomic_load_n(&fg_cpu_backend, __ATOMIC_ACQUIRE);
    if (fg_dev_ctx.delegate && cpu) {
        if (!__atomic_exchange_n(&fg_delegated, 1, __ATOMIC_RELAXED)) {
            fg_trace("delegate", "first=1");
        }
        return cpu->iface.graph_compute(cpu, cgraph, batch_size);
    }
    fg_trace("graph-compute", "ok=0");
    fprintf(stderr, "fakegpu: %s: graph_compute called but this fake device cannot compute\n", fg_library());
    return GGML_STATUS_FAILED;
}

static bool fg_backend_cpy_tensor_async(ggml_backend_t backend_src, ggml_backend_t backend_dst, const struct ggml_tensor *src, struct ggml_tensor *dst) {
    (void) backend_dst;
    (void) src;
    (void) dst;
    fg_capture_cpu(backend_src);
    return false; // let the scheduler copy synchronously
}

static const struct ggml_backend_i fg_backend_iface = {
    /* .get_name           = */ fg_backend_get_name,
    /* .free               = */ fg_backend_free,
    /* .set_tensor_async   = */ NULL,
    /* .get_tensor_async   = */ NULL,
    /* .cpy_tensor_async   = */ fg_backend_cpy_tensor_async,
    /* .synchronize        = */ NULL,
    /* .graph_plan_create  = */ NULL,
    /* .graph_plan_free    = */ NULL,
    /* .graph_plan_update  = */ NULL,
    /* .graph_plan_compute = */ NULL,
    /* .graph_compute      = */ fg_backend_graph_compute,
    /* .event_record       = */ NULL,
    /* .event_wait         = */ NULL,
    /* .graph_optimize     = */ NULL,
    /* .graph_reserve      = */ NULL,
    /* .buffer_size        = */ NULL,
    /* .reset              = */ NULL,
};

static ggml_guid fg_guid = { 0xfa, 0x4e, 0x69, 0x70, 0x75, 0x00, 0x00, 0x00,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 };

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
    props->name = fg_dev_get_name(dev);
    props->description = fg_dev_get_description(dev);
    props->id = fg_dev_ctx.id;
    props->type = fg_dev_get_type(dev);
    props->device_id = fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : NULL;
    fg_dev_get_memory(dev, &props->memory_free, &props->memory_total);
    props->caps.async = false;
    props->caps.host_buffer = false;
    props->caps.buffer_from_host_ptr = false;
    props->caps.events = false;
    props->driver_major = fg_dev_ctx.driver_major;
    props->driver_minor = fg_dev_ctx.driver_minor;
    props->compute_major = fg_dev_ctx.compute_major;
    props->compute_minor = fg_dev_ctx.compute_minor;
    props->integrated = fg_dev_ctx.integrated;
    props->library = fg_fault("nolibname") ? "" : fg_dev_ctx.library;
    if (dev == &fg_device2) {
        props->name = fg_dup_name;
        props->id = fg_dup_id;
    }
}

static ggml_backend_t fg_dev_init_backend(ggml_backend_dev_t dev, const char *params) {
    (void) params;
    struct ggml_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        return NULL;
    }
    b->guid = &fg_guid;
    b->iface = fg_backend_iface;
    b->device = dev;
    b->context = NULL;
    fg_trace("init-backend", NULL);
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
    ggml_backend_t cpu = __atomic_load_n(&fg_cpu_backend, __ATOMIC_ACQUIRE);
    if (!cpu || !cpu->device->iface.supports_op) {
        return true;
    }
    return cpu->device->iface.supports_op(cpu->device, op);
}

static bool fg_dev_supports_buft(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft) {
    (void) dev;
    return buft == &fg_buft;
}

static void fg_dev_reset(ggml_backend_dev_t dev) {
    (void) dev;
    fg_trace("reset", NULL);
}

static const struct ggml_backend_device_i fg_device_iface = {
    /* .get_name             = */ fg_dev_get_name,
    /* .get_description      = */ fg_dev_get_description,
    /* .get_memory           = */ fg_dev_get_memory,
    /* .get_type             = */ fg_dev_get_type,
    /* .get_props            = */ fg_dev_get_props,
    /* .init_backend         = */ fg_dev_init_backend,
    /* .get_buffer_type      = */ fg_dev_get_buffer_type,
    /* .get_host_buffer_type = */ NULL,
    /* .buffer_from_host_ptr = */ NULL,
    /* .supports_op          = */ fg_dev_supports_op,
    /* .supports_buft        = */ fg_dev_supports_buft,
    /* .offload_op           = */ NULL,
    /* .event_new            = */ NULL,
    /* .event_free           = */ NULL,
    /* .event_synchronize    = */ NULL,
    /* .reset                = */ fg_dev_reset,
};

static struct ggml_backend_device fg_device;
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
    return NULL;
}

static struct ggml_backend_reg fg_reg = {
    /* .api_version = */ GGML_BACKEND_API_VERSION,
    /* .iface = */ {
        /* .get_name         = */ fg_reg_get_name,
        /* .get_device_count = */ fg_reg_get_device_count,
        /* .get_device       = */ fg_reg_get_device,
        /* .get_proc_address = */ fg_reg_get_proc_address,
    },
    /* .context = */ NULL,
};

// ---------------------------------------------------------------------------
// exported entry points (the GGML_BACKEND_DL interface)

static int fg_initialized;

static int fg_cmdline_has_model(void) {
    char buf[8192];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return 0;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return 0;
    }
    for (ssize_t i = 0; i < n;) {
        if (strcmp(buf + i, "--model") == 0) {
            return 1;
        }
        i += (ssize_t) strlen(buf + i) + 1;
    }
    return 0;
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
    fg_trace("init", "model_runner=%d cuda_init=%s", fg_cmdline_has_model(), getenv("GGML_CUDA_INIT") ? getenv("GGML_CUDA_INIT") : "");

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
    snprintf(fg_dup_name, sizeof(fg_dup_name), "%.60s1", fg_dev_ctx.library);
    fg_dev_count = (fg_fault("nodevices") || !fg_visible()) ? 0 : 1;
    if (fg_dev_count == 1 && fg_fault("dup-pci")) {
        fg_device2 = fg_device;
        fg_dev_count = 2;
    }
    if (fg_fault("badapi")) {
        fg_reg.api_version = GGML_BACKEND_API_VERSION + 100;
    }
    fg_initialized = 1;

    fprintf(stderr, "fakegpu: %s backend from %s: %zu device(s), id=%s pci_id=%s compute=%d.%d\n",
            fg_dev_ctx.library, fg_so_path, fg_dev_count, fg_dev_ctx.id,
            fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : "none", fg_dev_ctx.compute_major, fg_dev_ctx.compute_minor);
    fg_trace("registered", "devices=%zu id=%s pci_id=%s total=%zu free=%zu", fg_dev_count, fg_dev_ctx.id,
             fg_dev_ctx.has_pci_id ? fg_dev_ctx.pci_id : "none", fg_dev_ctx.total, fg_dev_ctx.free);
    return &fg_reg;
}

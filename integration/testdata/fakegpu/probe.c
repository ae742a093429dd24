// probe.c - a minimal host for the fake backend library, used by the unit
// tests of integration/internal/fakegpu (built and run in the runtime root).
// It does what ggml's loader and Ollama's native probe do with a backend
// library (dlopen, ggml_backend_score, ggml_backend_init, walk the registry,
// read device props, create a backend, allocate a buffer) without ggml's
// loader, so that the registry a faulty library returns can be inspected
// (ggml_backend_load refuses a wrong API version, for instance), and prints
// the results as key=value lines. The library's own stderr (init lines)
// passes through.
//
// usage: probe LIB.so [alloc-bytes]

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-abi.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s LIB.so [alloc-bytes]\n", argv[0]);
        return 2;
    }
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        printf("dlopen_error=%s\n", dlerror());
        return 3;
    }
    ggml_backend_score_t score = (ggml_backend_score_t) dlsym(h, "ggml_backend_score");
    ggml_backend_init_t init = (ggml_backend_init_t) dlsym(h, "ggml_backend_init");
    if (!init) {
        printf("error=no ggml_backend_init\n");
        return 4;
    }
    if (score) {
        printf("score=%d\n", score());
    }
    fflush(stdout);
    ggml_backend_reg_t reg = init();
    if (!reg) {
        printf("reg=null\n");
        return 0;
    }
    printf("api_version=%d\n", reg->api_version);
    if (reg->api_version != GGML_BACKEND_API_VERSION) {
        return 0; // ggml would not look any further
    }
    printf("reg_name=%s\n", ggml_backend_reg_name(reg));
    size_t n = ggml_backend_reg_dev_count(reg);
    printf("devices=%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
        struct ggml_backend_dev_props p;
        ggml_backend_dev_get_props(dev, &p);
        printf("dev%zu.name=%s\n", i, p.name);
        printf("dev%zu.description=%s\n", i, p.description);
        printf("dev%zu.device_id=%s\n", i, p.device_id ? p.device_id : "(null)");
        printf("dev%zu.type=%d\n", i, (int) p.type);
        printf("dev%zu.total=%zu\n", i, p.memory_total);
        printf("dev%zu.free=%zu\n", i, p.memory_free);
        printf("dev%zu.reg=%s\n", i, ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));

        ggml_backend_t be = ggml_backend_dev_init(dev, NULL);
        printf("dev%zu.backend=%s\n", i, be ? ggml_backend_name(be) : "(null)");
        ggml_backend_buffer_type_t bt = ggml_backend_dev_buffer_type(dev);
        printf("dev%zu.buft=%s\n", i, ggml_backend_buft_name(bt));
        printf("dev%zu.buft_is_host=%d\n", i, (int) ggml_backend_buft_is_host(bt));
        if (argc > 2) {
            size_t sz = strtoull(argv[2], NULL, 0);
            ggml_backend_buffer_t buf = ggml_backend_buft_alloc_buffer(bt, sz);
            printf("dev%zu.alloc_ok=%d\n", i, buf != NULL);
            if (buf) {
                size_t fr = 0, tot = 0;
                ggml_backend_dev_memory(dev, &fr, &tot);
                printf("dev%zu.free_after_alloc=%zu\n", i, fr);
                printf("dev%zu.buffer_size=%zu\n", i, ggml_backend_buffer_get_size(buf));
                struct ggml_tensor t;
                memset(&t, 0, sizeof(t));
                t.buffer = buf;
                t.data = ggml_backend_buffer_get_base(buf);
                const char msg[] = "fakegpu";
                buf->iface.set_tensor(buf, &t, msg, 0, sizeof(msg));
                char out[sizeof(msg)] = { 0 };
                buf->iface.get_tensor(buf, &t, out, 0, sizeof(msg));
                printf("dev%zu.roundtrip=%s\n", i, out);
                ggml_backend_buffer_free(buf);
                ggml_backend_dev_memory(dev, &fr, &tot);
                printf("dev%zu.free_after_free=%zu\n", i, fr);
            }
        }
        if (be) {
            ggml_backend_free(be);
        }
    }
    ggml_backend_get_features_t f = (ggml_backend_get_features_t) ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
    if (f) {
        for (struct ggml_backend_feature *ft = f(reg); ft->name; ft++) {
            printf("feature.%s=%s\n", ft->name, ft->value);
        }
    }
    printf("set_n_threads=%d\n", ggml_backend_reg_get_proc_address(reg, "ggml_backend_set_n_threads") != NULL);
    return 0;
}

// probe.c - a minimal host for fakegpu.so used by the unit tests of
// integration/internal/fakegpu. It does what Ollama's runner does with a
// backend library (dlopen, ggml_backend_score, ggml_backend_init, walk the
// registry, read device props, create a backend, allocate a buffer) through
// the interface structs only, and prints the results as key=value lines.
//
// usage: probe LIB.so [alloc-bytes]

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-backend-impl.h"

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
    printf("reg_name=%s\n", reg->iface.get_name(reg));
    size_t n = reg->iface.get_device_count(reg);
    printf("devices=%zu\n", n);
    for (size_t i = 0; i < n; i++) {
        ggml_backend_dev_t dev = reg->iface.get_device(reg, i);
        struct ggml_backend_dev_props p;
        memset(&p, 0, sizeof(p));
        dev->iface.get_props(dev, &p);
        printf("dev%zu.name=%s\n", i, p.name);
        printf("dev%zu.description=%s\n", i, p.description);
        printf("dev%zu.id=%s\n", i, p.id);
        printf("dev%zu.library=%s\n", i, p.library ? p.library : "(null)");
        printf("dev%zu.device_id=%s\n", i, p.device_id ? p.device_id : "(null)");
        printf("dev%zu.type=%d\n", i, (int) p.type);
        printf("dev%zu.compute=%d.%d\n", i, p.compute_major, p.compute_minor);
        printf("dev%zu.driver=%d.%d\n", i, p.driver_major, p.driver_minor);
        printf("dev%zu.integrated=%d\n", i, p.integrated);
        printf("dev%zu.total=%zu\n", i, p.memory_total);
        printf("dev%zu.free=%zu\n", i, p.memory_free);

        ggml_backend_t be = dev->iface.init_backend(dev, NULL);
        printf("dev%zu.backend=%s\n", i, be ? be->iface.get_name(be) : "(null)");
        ggml_backend_buffer_type_t bt = dev->iface.get_buffer_type(dev);
        printf("dev%zu.buft=%s\n", i, bt->iface.get_name(bt));
        printf("dev%zu.buft_is_host=%d\n", i, bt->iface.is_host ? (int) bt->iface.is_host(bt) : 0);
        if (argc > 2) {
            size_t sz = strtoull(argv[2], NULL, 0);
            ggml_backend_buffer_t buf = bt->iface.alloc_buffer(bt, sz);
            printf("dev%zu.alloc_ok=%d\n", i, buf != NULL);
            if (buf) {
                size_t fr = 0, tot = 0;
                dev->iface.get_memory(dev, &fr, &tot);
                printf("dev%zu.free_after_alloc=%zu\n", i, fr);
                struct ggml_tensor t;
                memset(&t, 0, sizeof(t));
                t.buffer = buf;
                t.data = buf->iface.get_base(buf);
                const char msg[] = "fakegpu";
                buf->iface.set_tensor(buf, &t, msg, 0, sizeof(msg));
                char out[sizeof(msg)] = { 0 };
                buf->iface.get_tensor(buf, &t, out, 0, sizeof(msg));
                printf("dev%zu.roundtrip=%s\n", i, out);
                buf->iface.free_buffer(buf);
                dev->iface.get_memory(dev, &fr, &tot);
                printf("dev%zu.free_after_free=%zu\n", i, fr);
            }
        }
        if (be) {
            be->iface.free(be);
        }
    }
    void *(*gpa)(ggml_backend_reg_t, const char *) = reg->iface.get_proc_address;
    if (gpa) {
        ggml_backend_get_features_t f = (ggml_backend_get_features_t) gpa(reg, "ggml_backend_get_features");
        if (f) {
            for (struct ggml_backend_feature *ft = f(reg); ft->name; ft++) {
                printf("feature.%s=%s\n", ft->name, ft->value);
            }
        }
    }
    return 0;
}

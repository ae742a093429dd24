// obs-loadcheck: prove that a GGML backend module can be loaded.
//
//   obs-loadcheck [--init] MODULE.so...
//
// dlopen()s each module with RTLD_NOW, so any undefined symbol (for example a
// shader blob a broken glslc never produced) fails here instead of inside
// ollama's runner, and looks up the GGML_BACKEND_DL entry points.  With
// --init it also calls ggml_backend_init() and lists the devices the backend
// registers (Vulkan: set GGML_VK_VISIBLE_DEVICES=0 to get lavapipe, which ggml
// skips by default because it is a CPU device).
//
// Links libggml-base like the ollama binary (which has ggml-base compiled in),
// so the module's ggml_* references resolve the same way they do there.
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "ggml-backend.h"

typedef ggml_backend_reg_t (*init_fn)(void);
typedef int (*score_fn)(void);

static int check(const char *path, int init) {
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, "loadcheck: FAIL %s: %s\n", path, dlerror());
		return 1;
	}
	init_fn fn = (init_fn)dlsym(h, "ggml_backend_init");
	if (!fn) {
		fprintf(stderr, "loadcheck: FAIL %s: no ggml_backend_init: %s\n", path, dlerror());
		return 1;
	}
	score_fn score = (score_fn)dlsym(h, "ggml_backend_score");
	printf("loadcheck: ok %s (score %s)\n", path,
	       score ? (score() ? "supported" : "0: not usable on this CPU") : "n/a");
	if (!init)
		return 0;

	ggml_backend_reg_t reg = fn();
	if (!reg) {
		fprintf(stderr, "loadcheck: FAIL %s: ggml_backend_init returned NULL\n", path);
		return 1;
	}
	size_t n = ggml_backend_reg_dev_count(reg);
	printf("loadcheck: backend %s, %zu device(s)\n", ggml_backend_reg_name(reg), n);
	for (size_t i = 0; i < n; i++) {
		ggml_backend_dev_t dev = ggml_backend_reg_dev_get(reg, i);
		size_t free = 0, total = 0;
		ggml_backend_dev_memory(dev, &free, &total);
		printf("loadcheck:   %zu: %s (%s) %zu MiB\n", i, ggml_backend_dev_name(dev),
		       ggml_backend_dev_description(dev), total >> 20);
	}
	return 0;
}

int main(int argc, char **argv) {
	int init = 0, rc = 0, n = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--init")) {
			init = 1;
			continue;
		}
		rc |= check(argv[i], init);
		n++;
	}
	if (!n) {
		fprintf(stderr, "usage: %s [--init] MODULE.so...\n", argv[0]);
		return 2;
	}
	return rc;
}

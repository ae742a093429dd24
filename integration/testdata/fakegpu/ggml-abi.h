// ggml-abi.h - the ggml backend interface (GGML_BACKEND_API_VERSION 3) as the
// fake GPU backend needs it, for ggml 0.27.0 (Debian libggml0 0.27.0-1, the
// ggml that the runtime root's llama-server 0.7.0 loads).
//
// ggml installs only its public headers (ggml.h, ggml-backend.h: tensors,
// device properties, enums); the structs a backend library fills in live in
// ggml's private src/ggml-backend-impl.h, which no binary package ships.
// scripts/ggml-src.sh fetches that header from Debian's source package where
// the mirror serves it; fakegpu then compiles against it (FAKEGPU_IMPL_HEADER)
// and the offset checks at the end of this file verify the declarations
// below against it. Where the source is not served, these declarations are
// used. They were written from the 0.27.0 binaries, not copied: every slot
// offset below was read from the machine code of libggml-base.so.0.27.0's
// public accessors (ggml_backend_buft_get_alignment jumps through 0x18 of
// the buffer type, ggml_backend_buffer_clear through 0x48 of the buffer,
// ggml_backend_graph_compute_async through 0x68 of the backend,
// ggml_backend_dev_supports_op through 0x48 of the device,
// ggml_backend_reg_dev_get through 0x18 of the registry, ...), and the API
// version from the compare in libggml.so's loader ("incompatible API
// version (backend: %d, current: 3)").
//
// Slots the fake never fills are declared with a generic function pointer
// type: only their position matters.

#pragma once

#include <stddef.h>

#include "ggml-backend.h"

#ifdef FAKEGPU_IMPL_HEADER

#include "ggml-backend-impl.h"

#else

#define GGML_BACKEND_API_VERSION 3

typedef void (*fg_unused_slot)(void);

// buffer type (libggml-base: get_name 0x00 ... is_host 0x38, device 0x40)
struct ggml_backend_buffer_type_i {
    const char *(*get_name)(ggml_backend_buffer_type_t buft);
    ggml_backend_buffer_t (*alloc_buffer)(ggml_backend_buffer_type_t buft, size_t size);
    fg_unused_slot alloc_buffer_n; // (buft, tensors, n_tensors), optional
    size_t (*get_alignment)(ggml_backend_buffer_type_t buft);
    size_t (*get_max_size)(ggml_backend_buffer_type_t buft);
    size_t (*get_alloc_size)(ggml_backend_buffer_type_t buft, const struct ggml_tensor *tensor);
    fg_unused_slot get_alloc_size_n; // (buft, tensors, n_tensors), optional
    bool (*is_host)(ggml_backend_buffer_type_t buft);
};

struct ggml_backend_buffer_type {
    struct ggml_backend_buffer_type_i iface;
    ggml_backend_dev_t device;
    void *context;
};

// buffer (free_buffer 0x00 ... reset 0x50, buft 0x58, context 0x60,
// size 0x68, usage 0x70; 0x78 bytes, allocated by ggml_backend_buffer_init
// and deleted by ggml_backend_buffer_free after iface.free_buffer)
struct ggml_backend_buffer_i {
    void (*free_buffer)(ggml_backend_buffer_t buffer);
    void *(*get_base)(ggml_backend_buffer_t buffer);
    enum ggml_status (*init_tensor)(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor);
    void (*memset_tensor)(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, uint8_t value, size_t offset, size_t size);
    void (*set_tensor)(ggml_backend_buffer_t buffer, struct ggml_tensor *tensor, const void *data, size_t offset, size_t size);
    void (*get_tensor)(ggml_backend_buffer_t buffer, const struct ggml_tensor *tensor, void *data, size_t offset, size_t size);
    fg_unused_slot set_tensor_2d; // optional strided copies
    fg_unused_slot get_tensor_2d;
    bool (*cpy_tensor)(ggml_backend_buffer_t buffer, const struct ggml_tensor *src, struct ggml_tensor *dst);
    void (*clear)(ggml_backend_buffer_t buffer, uint8_t value);
    void (*reset)(ggml_backend_buffer_t buffer);
};

struct ggml_backend_buffer {
    struct ggml_backend_buffer_i iface;
    ggml_backend_buffer_type_t buft;
    void *context;
    size_t size;
    enum ggml_backend_buffer_usage usage;
};

// backend (stream): guid 0x00, iface 0x08 (get_name) ... 0x80
// (graph_optimize), device 0x88, context 0x90
struct ggml_backend_i {
    const char *(*get_name)(ggml_backend_t backend);
    void (*free)(ggml_backend_t backend);
    fg_unused_slot set_tensor_async;
    fg_unused_slot get_tensor_async;
    fg_unused_slot set_tensor_2d_async;
    fg_unused_slot get_tensor_2d_async;
    bool (*cpy_tensor_async)(ggml_backend_t backend_src, ggml_backend_t backend_dst, const struct ggml_tensor *src, struct ggml_tensor *dst);
    void (*synchronize)(ggml_backend_t backend);
    fg_unused_slot graph_plan_create;
    fg_unused_slot graph_plan_free;
    fg_unused_slot graph_plan_update;
    fg_unused_slot graph_plan_compute;
    enum ggml_status (*graph_compute)(ggml_backend_t backend, struct ggml_cgraph *cgraph);
    fg_unused_slot event_record;
    fg_unused_slot event_wait;
    fg_unused_slot graph_optimize;
};

struct ggml_backend {
    ggml_guid_t guid;
    struct ggml_backend_i iface;
    ggml_backend_dev_t device;
    void *context;
};

// device: get_name 0x00 ... event_synchronize 0x70, reg 0x78, context 0x80
struct ggml_backend_device_i {
    const char *(*get_name)(ggml_backend_dev_t dev);
    const char *(*get_description)(ggml_backend_dev_t dev);
    void (*get_memory)(ggml_backend_dev_t dev, size_t *free, size_t *total);
    enum ggml_backend_dev_type (*get_type)(ggml_backend_dev_t dev);
    void (*get_props)(ggml_backend_dev_t dev, struct ggml_backend_dev_props *props);
    ggml_backend_t (*init_backend)(ggml_backend_dev_t dev, const char *params);
    ggml_backend_buffer_type_t (*get_buffer_type)(ggml_backend_dev_t dev);
    ggml_backend_buffer_type_t (*get_host_buffer_type)(ggml_backend_dev_t dev);
    fg_unused_slot buffer_from_host_ptr;
    bool (*supports_op)(ggml_backend_dev_t dev, const struct ggml_tensor *op);
    bool (*supports_buft)(ggml_backend_dev_t dev, ggml_backend_buffer_type_t buft);
    bool (*offload_op)(ggml_backend_dev_t dev, const struct ggml_tensor *op);
    fg_unused_slot event_new;
    fg_unused_slot event_free;
    fg_unused_slot event_synchronize;
};

struct ggml_backend_device {
    struct ggml_backend_device_i iface;
    ggml_backend_reg_t reg;
    void *context;
};

// registry: api_version 0x00, iface 0x08 (get_name) ... 0x20
// (get_proc_address), context 0x28
struct ggml_backend_reg_i {
    const char *(*get_name)(ggml_backend_reg_t reg);
    size_t (*get_device_count)(ggml_backend_reg_t reg);
    ggml_backend_dev_t (*get_device)(ggml_backend_reg_t reg, size_t index);
    void *(*get_proc_address)(ggml_backend_reg_t reg, const char *name);
};

struct ggml_backend_reg {
    int api_version;
    struct ggml_backend_reg_i iface;
    void *context;
};

// the two entry points of a dynamically loaded backend library
typedef ggml_backend_reg_t (*ggml_backend_init_t)(void);
typedef int (*ggml_backend_score_t)(void);

// ggml-base (not declared in the public headers)
GGML_API ggml_backend_buffer_t ggml_backend_buffer_init(ggml_backend_buffer_type_t buft, struct ggml_backend_buffer_i iface,
                                                        void *context, size_t size);

#endif // FAKEGPU_IMPL_HEADER

// The offsets read from the 0.27.0 binaries: with FAKEGPU_IMPL_HEADER these
// check ggml's own header against them.
#define FG_AT(type, member, off) _Static_assert(offsetof(struct type, member) == (off), #type "." #member " is not at " #off)
FG_AT(ggml_backend_buffer_type, iface.get_alignment, 0x18);
FG_AT(ggml_backend_buffer_type, iface.is_host, 0x38);
FG_AT(ggml_backend_buffer_type, device, 0x40);
FG_AT(ggml_backend_buffer, iface.set_tensor, 0x20);
FG_AT(ggml_backend_buffer, iface.cpy_tensor, 0x40);
FG_AT(ggml_backend_buffer, iface.clear, 0x48);
FG_AT(ggml_backend_buffer, buft, 0x58);
FG_AT(ggml_backend_buffer, context, 0x60);
FG_AT(ggml_backend_buffer, size, 0x68);
FG_AT(ggml_backend_buffer, usage, 0x70);
FG_AT(ggml_backend, iface.get_name, 0x08);
FG_AT(ggml_backend, iface.cpy_tensor_async, 0x38);
FG_AT(ggml_backend, iface.synchronize, 0x40);
FG_AT(ggml_backend, iface.graph_compute, 0x68);
FG_AT(ggml_backend, device, 0x88);
FG_AT(ggml_backend_device, iface.supports_op, 0x48);
FG_AT(ggml_backend_device, iface.event_synchronize, 0x70);
FG_AT(ggml_backend_device, reg, 0x78);
FG_AT(ggml_backend_reg, iface.get_name, 0x08);
FG_AT(ggml_backend_reg, iface.get_proc_address, 0x20);
FG_AT(ggml_backend_dev_props, device_id, 0x28);
FG_AT(ggml_backend_dev_props, caps, 0x30);
_Static_assert(sizeof(struct ggml_backend_buffer) == 0x78, "ggml_backend_buffer is not 0x78 bytes");
_Static_assert(GGML_BACKEND_API_VERSION == 3, "fakegpu was written for GGML_BACKEND_API_VERSION 3");
#undef FG_AT

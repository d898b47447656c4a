/* The three passes of a 2-D convolution (f32, no bias, groups 1, dilation 1) through oneDNN's C API,
 * for zoo/src/ops/onednn/mod.rs. It builds against either API: 2.x (Debian's libdnnl-dev), where
 * memory descriptors are structs and operation descriptors are initialised before their primitive
 * descriptor, or 3.x (PyPI's onednn-devel-cpu-gomp), where both are opaque handles made by one
 * call; `DNNL_VERSION_MAJOR` of the headers picks, and `zoo_dnnl_soname` names the library.
 *
 * The library is opened at run time (`zoo_dnnl_load`), not linked: the Rust side first sets
 * OpenMP's environment (libgomp reads it once, when it is loaded), and a binary built with the
 * feature still runs where oneDNN is not installed.
 *
 * One `zoo_dnnl_conv` is one primitive of one geometry: the library picks its own (blocked)
 * layouts, and the plain NCHW / OIHW tensors of the caller are reordered into and out of buffers
 * shared by all objects (three, grown to the largest operand seen, so the blocked copies do not
 * stay allocated per layer). Objects are made once per geometry and pass and reused; runs must not
 * overlap (the Rust side holds one lock around every run). */

#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)

/* The file name of the library these headers describe. */
const char *zoo_dnnl_soname(void) { return "libdnnl.so." STR(DNNL_VERSION_MAJOR); }

/* Every oneDNN function used, called through a pointer of its own type found by dlsym. */
#define DNNL_COMMON(X)                                                                                \
    X(dnnl_engine_create)                                                                             \
    X(dnnl_stream_create)                                                                             \
    X(dnnl_stream_wait)                                                                               \
    X(dnnl_memory_desc_equal)                                                                         \
    X(dnnl_memory_desc_get_size)                                                                      \
    X(dnnl_memory_create)                                                                             \
    X(dnnl_memory_set_data_handle)                                                                    \
    X(dnnl_memory_destroy)                                                                            \
    X(dnnl_reorder_primitive_desc_create)                                                             \
    X(dnnl_primitive_desc_query_md)                                                                   \
    X(dnnl_primitive_desc_destroy)                                                                    \
    X(dnnl_primitive_create)                                                                          \
    X(dnnl_primitive_execute)                                                                         \
    X(dnnl_primitive_destroy)                                                                         \
    X(dnnl_primitive_attr_create)                                                                     \
    X(dnnl_primitive_attr_destroy)                                                                    \
    X(dnnl_primitive_attr_set_scratchpad_mode)                                                        \
    X(dnnl_sgemm)
#if DNNL_VERSION_MAJOR >= 3
#define DNNL_FUNCTIONS(X)                                                                             \
    DNNL_COMMON(X)                                                                                    \
    X(dnnl_memory_desc_create_with_tag)                                                               \
    X(dnnl_memory_desc_clone)                                                                         \
    X(dnnl_memory_desc_destroy)                                                                       \
    X(dnnl_convolution_forward_primitive_desc_create)                                                 \
    X(dnnl_convolution_backward_data_primitive_desc_create)                                           \
    X(dnnl_convolution_backward_weights_primitive_desc_create)
/* A memory descriptor as the functions take it, and its release. */
#define MD(m) (m)
#define MD_FREE(m)                                                                                    \
    if (m) p_dnnl_memory_desc_destroy(m)
#else
#define DNNL_FUNCTIONS(X)                                                                             \
    DNNL_COMMON(X)                                                                                    \
    X(dnnl_memory_desc_init_by_tag)                                                                   \
    X(dnnl_convolution_forward_desc_init)                                                             \
    X(dnnl_convolution_backward_data_desc_init)                                                       \
    X(dnnl_convolution_backward_weights_desc_init)                                                    \
    X(dnnl_primitive_desc_create)
/* 3.x's name for a descriptor the callee only reads. */
typedef const dnnl_memory_desc_t *const_dnnl_memory_desc_t;
#define MD(m) (&(m))
#define MD_FREE(m) (void)(m)
#endif

#define DECLARE(f) static __typeof__(&f) p_##f;
DNNL_FUNCTIONS(DECLARE)
#undef DECLARE

static int (*p_omp_get_max_threads)(void);
static void (*p_omp_set_num_threads)(int);

/* Opens oneDNN (`path`, e.g. "libdnnl.so.2") and finds its functions; 0 on success. */
int zoo_dnnl_load(const char *path, char *err, size_t err_len) {
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        snprintf(err, err_len, "%s", dlerror());
        return -1;
    }
    /* OpenMP's per-thread team size, from the libgomp oneDNN brought in (see zoo_dnnl_sgemm). */
    p_omp_get_max_threads = (int (*)(void))dlsym(lib, "omp_get_max_threads");
    p_omp_set_num_threads = (void (*)(int))dlsym(lib, "omp_set_num_threads");
#define FIND(f)                                                                                       \
    if (!(p_##f = (__typeof__(&f))dlsym(lib, #f))) {                                                  \
        snprintf(err, err_len, "%s: no symbol %s", path, #f);                                         \
        return -1;                                                                                    \
    }
    DNNL_FUNCTIONS(FIND)
#undef FIND
    return 0;
}

enum { ZOO_FORWARD = 0, ZOO_BACKWARD_DATA = 1, ZOO_BACKWARD_WEIGHTS = 2 };

/* One operand of the primitive: the caller's plain memory, and the primitive's own layout when it
 * differs (then `reorder` copies between them). */
typedef struct {
    int arg;
    int output;
    dnnl_memory_t user;
    dnnl_memory_t inner;
    dnnl_memory_desc_t inner_md;
    size_t inner_bytes;
    dnnl_primitive_t reorder;
} operand;

/* The buffers of the blocked copies, one per operand slot, and the primitives' scratchpad (slot
 * SCRATCHPAD), shared by every object. */
enum { SCRATCHPAD = 3 };
static void *scratch[4];
static size_t scratch_bytes[4];

static int scratch_for(int slot, size_t bytes) {
    if (scratch_bytes[slot] >= bytes) return 0;
    free(scratch[slot]);
    scratch_bytes[slot] = 0;
    if (posix_memalign(&scratch[slot], 64, bytes) != 0) {
        scratch[slot] = NULL;
        return -1;
    }
    scratch_bytes[slot] = bytes;
    return 0;
}

typedef struct {
    dnnl_primitive_t conv;
    operand ops[3];
    /* The primitive's scratchpad (its working memory: Winograd's transformed tiles, the weight
     * gradient's per-thread partial sums), in slot SCRATCHPAD; NULL when it needs none. */
    dnnl_memory_t scratchpad;
    size_t scratchpad_bytes;
    /* Whether the primitive computes with Winograd's algorithm. */
    int winograd;
} zoo_dnnl_conv;

static dnnl_engine_t engine;
static dnnl_stream_t stream;
static dnnl_status_t engine_status = dnnl_success;
static pthread_once_t engine_once = PTHREAD_ONCE_INIT;

static void make_engine(void) {
    engine_status = p_dnnl_engine_create(&engine, dnnl_cpu, 0);
    if (engine_status == dnnl_success) engine_status = p_dnnl_stream_create(&stream, engine, dnnl_stream_default_flags);
}

#define TRY(call)                                                                   \
    do {                                                                            \
        dnnl_status_t s_ = (call);                                                  \
        if (s_ != dnnl_success) {                                                   \
            snprintf(err, err_len, "%s: oneDNN status %d", #call, (int)s_);         \
            goto fail;                                                              \
        }                                                                           \
    } while (0)

void zoo_dnnl_conv_free(zoo_dnnl_conv *c) {
    if (!c) return;
    if (c->conv) p_dnnl_primitive_destroy(c->conv);
    if (c->scratchpad) p_dnnl_memory_destroy(c->scratchpad);
    for (int i = 0; i < 3; i++) {
        operand *o = &c->ops[i];
        if (o->reorder) p_dnnl_primitive_destroy(o->reorder);
        if (o->inner) p_dnnl_memory_destroy(o->inner);
        if (o->user) p_dnnl_memory_destroy(o->user);
        MD_FREE(o->inner_md);
    }
    free(c);
}

/* The operand `arg` of `pd`, whose plain descriptor is `plain`. */
static dnnl_status_t make_operand(operand *o, const_dnnl_primitive_desc_t pd, dnnl_query_t what, int arg,
                                  int output, const_dnnl_memory_desc_t plain) {
    o->arg = arg;
    o->output = output;
    const_dnnl_memory_desc_t want = p_dnnl_primitive_desc_query_md(pd, what, 0);
    dnnl_status_t s = p_dnnl_memory_create(&o->user, plain, engine, DNNL_MEMORY_NONE);
    if (s != dnnl_success || p_dnnl_memory_desc_equal(want, plain)) return s;
#if DNNL_VERSION_MAJOR >= 3
    s = p_dnnl_memory_desc_clone(&o->inner_md, want);
    if (s != dnnl_success) return s;
#else
    o->inner_md = *want;
#endif
    o->inner_bytes = p_dnnl_memory_desc_get_size(want);
    s = p_dnnl_memory_create(&o->inner, want, engine, DNNL_MEMORY_NONE);
    if (s != dnnl_success) return s;
    dnnl_primitive_desc_t rpd;
    s = output ? p_dnnl_reorder_primitive_desc_create(&rpd, want, engine, plain, engine, NULL)
               : p_dnnl_reorder_primitive_desc_create(&rpd, plain, engine, want, engine, NULL);
    if (s != dnnl_success) return s;
    s = p_dnnl_primitive_create(&o->reorder, rpd);
    p_dnnl_primitive_desc_destroy(rpd);
    return s;
}

/* A 4-D memory descriptor of `dims` in type `dt` and layout `tag`. */
static dnnl_status_t make_md(dnnl_memory_desc_t *md, const dnnl_dims_t dims, dnnl_data_type_t dt,
                             dnnl_format_tag_t tag) {
#if DNNL_VERSION_MAJOR >= 3
    return p_dnnl_memory_desc_create_with_tag(md, 4, dims, dt, tag);
#else
    return p_dnnl_memory_desc_init_by_tag(md, 4, dims, dt, tag);
#endif
}

/* The primitive descriptor of `pass` with algorithm `alg` on operands `x`, `w`, `y` (layouts `any`);
 * the backward passes take the forward's as their hint. */
static dnnl_status_t make_pd(dnnl_primitive_desc_t *pd, int pass, dnnl_alg_kind_t alg, const_dnnl_memory_desc_t x,
                             const_dnnl_memory_desc_t w, const_dnnl_memory_desc_t y, const dnnl_dims_t strides,
                             const dnnl_dims_t pad_l, const dnnl_dims_t pad_r, const_dnnl_primitive_attr_t attr,
                             const_dnnl_primitive_desc_t hint) {
#if DNNL_VERSION_MAJOR >= 3
    const dnnl_dims_t dilates = {0, 0};
    switch (pass) {
    case ZOO_FORWARD:
        return p_dnnl_convolution_forward_primitive_desc_create(pd, engine, dnnl_forward_training, alg, x, w, NULL, y,
                                                                strides, dilates, pad_l, pad_r, attr);
    case ZOO_BACKWARD_DATA:
        return p_dnnl_convolution_backward_data_primitive_desc_create(pd, engine, alg, x, w, y, strides, dilates, pad_l,
                                                                      pad_r, hint, attr);
    default:
        return p_dnnl_convolution_backward_weights_primitive_desc_create(pd, engine, alg, x, w, NULL, y, strides,
                                                                         dilates, pad_l, pad_r, hint, attr);
    }
#else
    dnnl_convolution_desc_t desc;
    dnnl_status_t s;
    switch (pass) {
    case ZOO_FORWARD:
        s = p_dnnl_convolution_forward_desc_init(&desc, dnnl_forward_training, alg, x, w, NULL, y, strides, pad_l, pad_r);
        break;
    case ZOO_BACKWARD_DATA:
        s = p_dnnl_convolution_backward_data_desc_init(&desc, alg, x, w, y, strides, pad_l, pad_r);
        break;
    default:
        s = p_dnnl_convolution_backward_weights_desc_init(&desc, alg, x, w, NULL, y, strides, pad_l, pad_r);
    }
    return s != dnnl_success ? s : p_dnnl_primitive_desc_create(pd, &desc, attr, engine, hint);
#endif
}

/* The forward primitive descriptor (the backward passes' hint) and that of `pass` (the same one for
 * the forward pass) with algorithm `alg`; on failure neither is left allocated. */
static dnnl_status_t make_pds(dnnl_primitive_desc_t *fwd_pd, dnnl_primitive_desc_t *pd, int pass, dnnl_alg_kind_t alg,
                              const_dnnl_memory_desc_t hint_md[3], const_dnnl_memory_desc_t any_md[3],
                              const dnnl_dims_t strides, const dnnl_dims_t pad_l, const dnnl_dims_t pad_r,
                              const_dnnl_primitive_attr_t attr) {
    *fwd_pd = *pd = NULL;
    dnnl_status_t s = make_pd(fwd_pd, ZOO_FORWARD, alg, hint_md[0], hint_md[1], hint_md[2], strides, pad_l, pad_r, attr,
                              NULL);
    if (s != dnnl_success) return s;
    if (pass == ZOO_FORWARD) {
        *pd = *fwd_pd;
        *fwd_pd = NULL;
        return s;
    }
    s = make_pd(pd, pass, alg, any_md[0], any_md[1], any_md[2], strides, pad_l, pad_r, attr, *fwd_pd);
    if (s != dnnl_success) {
        p_dnnl_primitive_desc_destroy(*fwd_pd);
        *fwd_pd = *pd = NULL;
    }
    return s;
}

/* Geometry `g`: n, c, h, w, o, kh, kw, oh, ow, stride, padding. With `bf16`, the pass computes in
 * bfloat16: its two inputs are converted by the reorders into the primitive's layout (which they
 * go through anyway), its output stays f32 (the caller's tensors are f32 throughout). With
 * `winograd` (asked for f32 3x3 stride-1 layers only; the Rust side chooses which), the pass
 * computes with Winograd's algorithm where the library has it (oneDNN 2.x on AVX-512: F(4x4, 3x3)),
 * and directly where it has not. Every convolution's
 * scratchpad is ours (`dnnl_scratchpad_mode_user`, one buffer shared by all, as PyTorch does):
 * oneDNN's own is kept per calling thread, and Winograd primitives run from two threads in turn
 * corrupted memory with it (oneDNN 2.6, reproduced in a two-thread test). */
zoo_dnnl_conv *zoo_dnnl_conv_new(int pass, const long long g[11], int bf16, int winograd, char *err, size_t err_len) {
    dnnl_primitive_desc_t fwd_pd = NULL, pd = NULL;
    dnnl_primitive_attr_t attr = NULL;
    /* Plain, then `any` (the primitive's choice), then the forward hint's: x, w, y. */
    dnnl_memory_desc_t md[9] = {0};
    zoo_dnnl_conv *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    if (pass < ZOO_FORWARD || pass > ZOO_BACKWARD_WEIGHTS) {
        snprintf(err, err_len, "unknown pass %d", pass);
        goto fail;
    }
    pthread_once(&engine_once, make_engine);
    TRY(engine_status);
    const dnnl_dims_t x_dims = {g[0], g[1], g[2], g[3]}, w_dims = {g[4], g[1], g[5], g[6]},
                      y_dims = {g[0], g[4], g[7], g[8]};
    const dnnl_dims_t strides = {g[9], g[9]}, pad_l = {g[10], g[10]};
    /* PyTorch's output size floors; oneDNN wants the right padding that makes it exact. */
    const dnnl_dims_t pad_r = {(g[7] - 1) * g[9] + g[5] - g[2] - g[10], (g[8] - 1) * g[9] + g[6] - g[3] - g[10]};
    /* The computing type of x, w, y in this pass: the output of the pass is f32. */
    const dnnl_data_type_t half = bf16 ? dnnl_bf16 : dnnl_f32;
    const dnnl_data_type_t x_t = pass == ZOO_BACKWARD_DATA ? dnnl_f32 : half,
                           w_t = pass == ZOO_BACKWARD_WEIGHTS ? dnnl_f32 : half,
                           y_t = pass == ZOO_FORWARD ? dnnl_f32 : half;
    TRY(make_md(&md[0], x_dims, dnnl_f32, dnnl_nchw));
    TRY(make_md(&md[1], w_dims, dnnl_f32, dnnl_oihw));
    TRY(make_md(&md[2], y_dims, dnnl_f32, dnnl_nchw));
    TRY(make_md(&md[3], x_dims, x_t, dnnl_format_tag_any));
    TRY(make_md(&md[4], w_dims, w_t, dnnl_format_tag_any));
    TRY(make_md(&md[5], y_dims, y_t, dnnl_format_tag_any));
    /* The backward passes' forward hint: bf16 inputs and an f32 output, as the forward's. */
    TRY(make_md(&md[6], x_dims, half, dnnl_format_tag_any));
    TRY(make_md(&md[7], w_dims, half, dnnl_format_tag_any));
    TRY(make_md(&md[8], y_dims, dnnl_f32, dnnl_format_tag_any));
    const_dnnl_memory_desc_t x_plain = MD(md[0]), w_plain = MD(md[1]), y_plain = MD(md[2]);
    const_dnnl_memory_desc_t any_md[3] = {MD(md[3]), MD(md[4]), MD(md[5])};
    const_dnnl_memory_desc_t hint_md[3] = {MD(md[6]), MD(md[7]), MD(md[8])};
    TRY(p_dnnl_primitive_attr_create(&attr));
    TRY(p_dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));

    c->winograd = winograd && !bf16;
    if (c->winograd &&
        make_pds(&fwd_pd, &pd, pass, dnnl_convolution_winograd, hint_md, any_md, strides, pad_l, pad_r, attr) != dnnl_success)
        c->winograd = 0;
    if (!c->winograd)
        TRY(make_pds(&fwd_pd, &pd, pass, dnnl_convolution_direct, hint_md, any_md, strides, pad_l, pad_r, attr));
    switch (pass) {
    case ZOO_FORWARD:
        TRY(make_operand(&c->ops[0], pd, dnnl_query_src_md, DNNL_ARG_SRC, 0, x_plain));
        TRY(make_operand(&c->ops[1], pd, dnnl_query_weights_md, DNNL_ARG_WEIGHTS, 0, w_plain));
        TRY(make_operand(&c->ops[2], pd, dnnl_query_dst_md, DNNL_ARG_DST, 1, y_plain));
        break;
    case ZOO_BACKWARD_DATA:
        TRY(make_operand(&c->ops[0], pd, dnnl_query_diff_dst_md, DNNL_ARG_DIFF_DST, 0, y_plain));
        TRY(make_operand(&c->ops[1], pd, dnnl_query_weights_md, DNNL_ARG_WEIGHTS, 0, w_plain));
        TRY(make_operand(&c->ops[2], pd, dnnl_query_diff_src_md, DNNL_ARG_DIFF_SRC, 1, x_plain));
        break;
    default:
        TRY(make_operand(&c->ops[0], pd, dnnl_query_src_md, DNNL_ARG_SRC, 0, x_plain));
        TRY(make_operand(&c->ops[1], pd, dnnl_query_diff_dst_md, DNNL_ARG_DIFF_DST, 0, y_plain));
        TRY(make_operand(&c->ops[2], pd, dnnl_query_diff_weights_md, DNNL_ARG_DIFF_WEIGHTS, 1, w_plain));
    }
    const_dnnl_memory_desc_t pad_md = p_dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    c->scratchpad_bytes = pad_md ? p_dnnl_memory_desc_get_size(pad_md) : 0;
    if (c->scratchpad_bytes > 0) TRY(p_dnnl_memory_create(&c->scratchpad, pad_md, engine, DNNL_MEMORY_NONE));
    TRY(p_dnnl_primitive_create(&c->conv, pd));
    p_dnnl_primitive_desc_destroy(pd);
    if (fwd_pd) p_dnnl_primitive_desc_destroy(fwd_pd);
    p_dnnl_primitive_attr_destroy(attr);
    for (int i = 0; i < 9; i++) MD_FREE(md[i]);
    return c;
fail:
    if (pd) p_dnnl_primitive_desc_destroy(pd);
    if (fwd_pd) p_dnnl_primitive_desc_destroy(fwd_pd);
    if (attr) p_dnnl_primitive_attr_destroy(attr);
    for (int i = 0; i < 9; i++) MD_FREE(md[i]);
    zoo_dnnl_conv_free(c);
    return NULL;
}

/* Runs `c` on plain `ptrs` (two inputs, then the output), operand i's blocked copy in scratch
 * buffer `slots[i]`; with `ready0`, operand 0's copy is already in its slot (not reordered). */
static int run_slots(zoo_dnnl_conv *c, void *ptrs[3], const int slots[3], int ready0, char *err, size_t err_len) {
    dnnl_exec_arg_t args[4];
    int nargs = 3;
    if (c->scratchpad) {
        if (scratch_for(SCRATCHPAD, c->scratchpad_bytes) != 0) {
            snprintf(err, err_len, "out of memory for a %zu-byte scratchpad", c->scratchpad_bytes);
            return -1;
        }
        TRY(p_dnnl_memory_set_data_handle(c->scratchpad, scratch[SCRATCHPAD]));
        args[nargs].arg = DNNL_ARG_SCRATCHPAD;
        args[nargs++].memory = c->scratchpad;
    }
    for (int i = 0; i < 3; i++) {
        operand *o = &c->ops[i];
        TRY(p_dnnl_memory_set_data_handle(o->user, ptrs[i]));
        if (o->reorder) {
            if (scratch_for(slots[i], o->inner_bytes) != 0) {
                snprintf(err, err_len, "out of memory for a %zu-byte blocked copy", o->inner_bytes);
                return -1;
            }
            TRY(p_dnnl_memory_set_data_handle(o->inner, scratch[slots[i]]));
        }
        args[i].arg = o->arg;
        args[i].memory = o->reorder ? o->inner : o->user;
        if (o->reorder && !o->output && !(i == 0 && ready0)) {
            dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, o->user}, {DNNL_ARG_TO, o->inner}};
            TRY(p_dnnl_primitive_execute(o->reorder, stream, 2, r));
        }
    }
    TRY(p_dnnl_primitive_execute(c->conv, stream, nargs, args));
    operand *o = &c->ops[2];
    if (o->reorder) {
        dnnl_exec_arg_t r[2] = {{DNNL_ARG_FROM, o->inner}, {DNNL_ARG_TO, o->user}};
        TRY(p_dnnl_primitive_execute(o->reorder, stream, 2, r));
    }
    TRY(p_dnnl_stream_wait(stream));
    return 0;
fail:
    return -1;
}

/* Whether `c` computes with Winograd's algorithm. */
int zoo_dnnl_conv_winograd(const zoo_dnnl_conv *c) { return c->winograd; }

/* Runs the pass: `a` and `b` are its inputs and `out` its output, all plain (forward: x, w -> y;
 * backward data: dy, w -> dx; backward weights: x, dy -> dw). */
int zoo_dnnl_conv_run(zoo_dnnl_conv *c, const float *a, const float *b, float *out, char *err, size_t err_len) {
    void *ptrs[3] = {(void *)a, (void *)b, out};
    const int slots[3] = {0, 1, 2};
    return run_slots(c, ptrs, slots, 0, err, err_len);
}

/* Both gradients of one convolution: `bw` (backward weights: x, dy -> dw), then `bd` (backward
 * data: dy, w -> dx). When the two want `dy` in the same blocked layout, it is reordered once:
 * `bd` reads the copy `bw` left in slot 1 (and puts `w` in slot 0, which `x` no longer needs). */
int zoo_dnnl_conv_backward(zoo_dnnl_conv *bw, zoo_dnnl_conv *bd, const float *x, const float *dy, const float *w,
                           float *dw, float *dx, char *err, size_t err_len) {
    void *pw[3] = {(void *)x, (void *)dy, dw}, *pd[3] = {(void *)dy, (void *)w, dx};
    const int slots_w[3] = {0, 1, 2}, slots_d[3] = {1, 0, 2};
    if (run_slots(bw, pw, slots_w, 0, err, err_len) != 0) return -1;
    const operand *a = &bw->ops[1], *b = &bd->ops[0];
    int shared = a->reorder && b->reorder && p_dnnl_memory_desc_equal(MD(a->inner_md), MD(b->inner_md));
    return run_slots(bd, pd, slots_d, shared, err, err_len);
}

/* Row-major `c = a b + beta c` with `a` (`m x k`) and `b` (`k x n`) each stored plainly ('N') or
 * as its transpose ('T'); 0 on success. `single`: on the calling thread only (OpenMP's team size
 * for this thread set to 1 for the call, then restored), for products that already run side by
 * side on several threads; otherwise on OpenMP's team. */
int zoo_dnnl_sgemm(char ta, char tb, long long m, long long n, long long k, const float *a, long long lda,
                   const float *b, long long ldb, float beta, float *c, int single) {
    int team = 0;
    if (single && p_omp_get_max_threads && p_omp_set_num_threads) {
        team = p_omp_get_max_threads();
        p_omp_set_num_threads(1);
    }
    dnnl_status_t s = p_dnnl_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, n);
    if (team > 0) p_omp_set_num_threads(team);
    return s == dnnl_success ? 0 : -1;
}

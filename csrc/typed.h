/*
 * typed.h -- makes one typed source file a float or a double translation unit.
 *
 * How float and double come from one source
 *   The typed files (gemm.c, act_loss.c, dense.c, sparse.c, optim.c, net.c, train.c) are
 *   each compiled twice by CMakeLists.txt: once into the object library
 *   pynn_typed_f32 with -DPYNN_TYPE_F32, once into pynn_typed_f64 with
 *   -DPYNN_TYPE_F64.  Each includes this header, which
 *     - defines T (float or double), the matching libm functions and constants;
 *     - renames every symbol that leaves a translation unit: the definition is
 *       written with its plain name,
 *           pynn_status pynn_dense_forward(T *out, const T *x, ...)
 *       and a line below turns that into pynn_dense_forward_f32 or _f64, the
 *       name pynn.h declares (so the compiler checks the definition against
 *       the public prototype).  `grep -n "pynn_dense_forward(" csrc/` and ctags
 *       find the definition under the plain name.
 *   Static helpers need no renaming: each type is its own translation unit.
 *
 * A new typed function that another file calls gets a rename line here and a
 * declaration below; a new public one gets a rename line and its prototype in
 * pynn.h's PYNN_DECLARE.
 */
#ifndef PYNN_TYPED_H
#define PYNN_TYPED_H

#include <float.h>
#include <stdint.h>
#include "pynn.h"
#include "internal.h"

#if defined(PYNN_TYPE_F32) == defined(PYNN_TYPE_F64)
#error "compile a typed source with exactly one of -DPYNN_TYPE_F32 or -DPYNN_TYPE_F64"
#endif

#ifdef PYNN_TYPE_F32
#define T float
#define T_IS_FLOAT 1
#define PYNN_SFX f32
#define T_EXP expf
#define T_LOG logf
#define T_TANH tanhf
#define T_SQRT sqrtf
#define T_EPS FLT_EPSILON
#define T_UINT uint32_t                            /* same width as T, for bit tests */
#define T_EXP_BITS ((uint32_t)0x7f800000u)         /* IEEE binary32 exponent field */
#else
#define T double
#define PYNN_SFX f64
#define T_EXP exp
#define T_LOG log
#define T_TANH tanh
#define T_SQRT sqrt
#define T_EPS DBL_EPSILON
#define T_UINT uint64_t
#define T_EXP_BITS ((uint64_t)0x7ff0000000000000ull) /* IEEE binary64 exponent field */
#endif

/* PYNN_TYPED(name) is name_f32 or name_f64 (the extra levels expand PYNN_SFX). */
#define PYNN_TYPED(name) PYNN_TYPED_(name, PYNN_SFX)
#define PYNN_TYPED_(name, sfx) PYNN_TYPED__(name, sfx)
#define PYNN_TYPED__(name, sfx) name##_##sfx

/* ---- the public API (pynn.h) ---------------------------------------------- */
#define pynn_activate PYNN_TYPED(pynn_activate)
#define pynn_activation_backward PYNN_TYPED(pynn_activation_backward)
/* function-like: pynn_loss is also the name of the loss enum type */
#define pynn_loss(...) PYNN_TYPED(pynn_loss)(__VA_ARGS__)
#define pynn_output_delta PYNN_TYPED(pynn_output_delta)
#define pynn_dense_forward PYNN_TYPED(pynn_dense_forward)
#define pynn_dense_backward PYNN_TYPED(pynn_dense_backward)
#define pynn_sgd_update PYNN_TYPED(pynn_sgd_update)
#define pynn_adam_update PYNN_TYPED(pynn_adam_update)
#define pynn_net_predict PYNN_TYPED(pynn_net_predict)
#define pynn_any_nonfinite PYNN_TYPED(pynn_any_nonfinite)
#define pynn_finite_bound PYNN_TYPED(pynn_finite_bound)
#define pynn_any_nonfinite_threads PYNN_TYPED(pynn_any_nonfinite_threads)
#define pynn_copy_threads PYNN_TYPED(pynn_copy_threads)
#define pynn_net_loss_grad PYNN_TYPED(pynn_net_loss_grad)
#define pynn_train PYNN_TYPED(pynn_train)
#define pynn_train_data PYNN_TYPED(pynn_train_data)
#define pynn_sparse_forward PYNN_TYPED(pynn_sparse_forward)
#define pynn_sparse_backward PYNN_TYPED(pynn_sparse_backward)
#define pynn_net_predict_csr PYNN_TYPED(pynn_net_predict_csr)
#define pynn_net_loss_grad_csr PYNN_TYPED(pynn_net_loss_grad_csr)

/* ---- shared with the SIMD kernel files (internal.h) ------------------------ */
#define pynn_gemm_args PYNN_TYPED(pynn_gemm_args)
#define pynn_sgd_bg PYNN_TYPED(pynn_sgd_bg)
#define pynn__sgd_bg_finish PYNN_TYPED(pynn__sgd_bg_finish)
#define pynn_gemm_generic PYNN_TYPED(pynn_gemm_generic)
#define pynn_gemm_avx2 PYNN_TYPED(pynn_gemm_avx2)
#define pynn_gemm_avx512 PYNN_TYPED(pynn_gemm_avx512)
#define pynn_gemm_pack_avx2 PYNN_TYPED(pynn_gemm_pack_avx2)
#define pynn_gemm_pack_avx512 PYNN_TYPED(pynn_gemm_pack_avx512)
#define pynn_gemm_run_avx2 PYNN_TYPED(pynn_gemm_run_avx2)
#define pynn_gemm_run_avx512 PYNN_TYPED(pynn_gemm_run_avx512)
#define pynn_gemm_bpack_len_avx2 PYNN_TYPED(pynn_gemm_bpack_len_avx2)
#define pynn_gemm_bpack_len_avx512 PYNN_TYPED(pynn_gemm_bpack_len_avx512)
#define pynn_gemm_prepack_b_avx2 PYNN_TYPED(pynn_gemm_prepack_b_avx2)
#define pynn_gemm_prepack_b_avx512 PYNN_TYPED(pynn_gemm_prepack_b_avx512)
#define pynn_gemm_tiled_avx2 PYNN_TYPED(pynn_gemm_tiled_avx2)
#define pynn_gemm_tiled_avx512 PYNN_TYPED(pynn_gemm_tiled_avx512)
#define pynn__gemm_tiled PYNN_TYPED(pynn__gemm_tiled)
#define pynn__gemm_bpack_len PYNN_TYPED(pynn__gemm_bpack_len)
#define pynn__gemm_prepack_b PYNN_TYPED(pynn__gemm_prepack_b)
#define pynn__gemm_pack PYNN_TYPED(pynn__gemm_pack)
#define pynn__gemm_run PYNN_TYPED(pynn__gemm_run)
#define pynn__gemm_team PYNN_TYPED(pynn__gemm_team)
#define pynn_apack PYNN_TYPED(pynn_apack)

/* ---- internal: called across the typed files ------------------------------- */
#define pynn__gemm PYNN_TYPED(pynn__gemm)
#define pynn__activate_rows PYNN_TYPED(pynn__activate_rows)
#define pynn__backward_rows PYNN_TYPED(pynn__backward_rows)
#define pynn__loss_sum PYNN_TYPED(pynn__loss_sum)
#define pynn__output_delta_rows PYNN_TYPED(pynn__output_delta_rows)
#define pynn__dense_fwd PYNN_TYPED(pynn__dense_fwd)
#define pynn__dense_bwd PYNN_TYPED(pynn__dense_bwd)
#define pynn_sgd_fused PYNN_TYPED(pynn_sgd_fused)
#define pynn__dense_wgrad_pack PYNN_TYPED(pynn__dense_wgrad_pack)
#define pynn__dense_wgrad_tiled PYNN_TYPED(pynn__dense_wgrad_tiled)
#define pynn__dense_wgrad_pack_ahead PYNN_TYPED(pynn__dense_wgrad_pack_ahead)
#define pynn__dense_wgrad_packs_x PYNN_TYPED(pynn__dense_wgrad_packs_x)
#define pynn__dense_fwd_packs_w PYNN_TYPED(pynn__dense_fwd_packs_w)
#define pynn__dense_igrad PYNN_TYPED(pynn__dense_igrad)
#define pynn__dense_igrad_rows PYNN_TYPED(pynn__dense_igrad_rows)
#define pynn__bias_grad PYNN_TYPED(pynn__bias_grad)
#define pynn__weight_sq PYNN_TYPED(pynn__weight_sq)
#define pynn__optim_step PYNN_TYPED(pynn__optim_step)
#define pynn__net_forward PYNN_TYPED(pynn__net_forward)
#define pynn__net_backward PYNN_TYPED(pynn__net_backward)
#define pynn__apack_of PYNN_TYPED(pynn__apack_of)
#define pynn__forward_product PYNN_TYPED(pynn__forward_product)
#define pynn__sparse_fwd PYNN_TYPED(pynn__sparse_fwd)
#define pynn__sparse_wgrad PYNN_TYPED(pynn__sparse_wgrad)
#define pynn__sparse_marks_done PYNN_TYPED(pynn__sparse_marks_done)
#define pynn__optim_wsq PYNN_TYPED(pynn__optim_wsq)
#define pynn_csr PYNN_TYPED(pynn_csr)

/* gemm.c: C = epilogue(A B) on the instruction set chosen at run time: on
 * g->n_threads threads (a region of its own), or by the calling team. */
void pynn__gemm(const pynn_gemm_args *g);
int pynn__gemm_pack(const pynn_gemm_args *g, const pynn_team *tm);
void pynn__gemm_run(const pynn_gemm_args *g, const pynn_team *tm, int amode);
void pynn__gemm_team(const pynn_gemm_args *g, const pynn_team *tm);
/* B packed once for many products with the same B (prediction's blocks): the
 * room it takes on this path (0: the path reads B in place; bf16 products
 * always pack their own), and the packing of B's rows [p0, p1) (a thread's
 * share; all of them: 0, k), into bp, 64-byte aligned, with room scalars
 * there, which returns the panels' width (the products' bpack_nr; 0: nothing
 * packed, as when the room is too small; p0 == p1 asks the width alone). */
size_t pynn__gemm_bpack_len(const pynn_gemm_args *g);
/* How the product runs on this path (gemm_tile.h: gemm_tiled; 0 on the
 * portable and the bf16 kernels, which read no prepacked B). */
int pynn__gemm_tiled(const pynn_gemm_args *g);
size_t pynn__gemm_prepack_b(const pynn_gemm_args *g, T *bp, size_t room, size_t p0, size_t p1);

/* Room in the workspace for the products to pack A (layout.c): t for A = x^T
 * (weight gradients), r for A a batch of rows (forward and input gradients),
 * apart so one phase can pack for a weight and an input gradient together. */
typedef struct {
    T *t[2], *r;          /* t: two, so a phase can pack the next layer's ahead */
    size_t t_len, r_len;
    T *bw;                /* room to pack a weight gradient's B (delta) whole */
    size_t bw_len;
    T *bw2;               /* ... and a forward's or input gradient's (W, W^T): apart, */
    size_t bw2_len;       /* as one phase runs a weight and an input gradient */
    int bf16;             /* the net's bf16: round A and B to bfloat16 as they are packed */
    const T *wpack;       /* NULL, or the weights packed for the forward products, */
    T *wpack_w;           /* ... the same room, for the training steps' fused SGD to
                           * keep current (NULL: not; train.c) */
    const size_t *wpack_off; /* layer l's from wpack + wpack_off[l] (SIZE_MAX: none) */
    size_t wpack_nr;      /* ... in panels this wide (pynn_gemm_args.bpack_nr) */
    T *z0;                /* NULL, or room for the first layer's z0 (pynn_gemm_args) */
    const T *x_next;      /* NULL, or the next batch's rows (the first layer's a_next) */
    const int64_t *x_next_idx; /* NULL, or x_next's rows, to be gathered (a_next_idx) */
    int xt0_mode;         /* >= 0: the first layer's x^T is already packed into its
                           * room (train.c: xt0_ahead), the mode its weight gradient
                           * runs in; -1: not */
} pynn_apack;

/* The network's precision is one this core runs: bf16 products only on the
 * float core. */
static inline pynn_status pynn__precision_ok(const pynn_net *net)
{
#ifdef T_IS_FLOAT
    (void)net;
    return PYNN_OK;
#else
    return net != NULL && net->bf16 ? PYNN_ERR_UNSUPPORTED : PYNN_OK;
#endif
}

/* act_loss.c (shapes: n rows of m; no argument checks, callers made them) */
void pynn__activate_rows(T *a, size_t n, size_t m, pynn_activation act);
void pynn__backward_rows(T *delta, const T *a, size_t n, size_t m, pynn_activation act);
double pynn__loss_sum(const T *y_hat, const T *y, size_t nm, pynn_loss kind);
void pynn__output_delta_rows(T *delta, const T *y_hat, const T *y, size_t n, size_t m,
                             pynn_activation act, pynn_loss kind);

/* dense.c: one layer, forward and backward (see there for the math) */
void pynn__dense_fwd(T *out, const T *x, const T *W, const T *b, size_t n, size_t n_in,
                     size_t n_out, pynn_activation act, const pynn_apack *ap,
                     const T *wpack, T *z0, const T *x_next, const int64_t *x_next_idx,
                     const pynn_team *tm);
/* Plain gradient descent fused into a layer's backward pass: its W and b,
 * updated in place, and NULL or where the velocity -(lr g) goes. */
typedef struct {
    T *w, *b, *vw, *vb;
    T lr;
    T *wpack; /* NULL, or W's packed copy to keep current (pynn_gemm_args.wpack;
               * only where pynn__dense_wgrad_tiled) */
} pynn_sgd_fused;
void pynn__dense_bwd(T *dx, T *dW, T *db, const T *delta, const T *x, const T *W,
                     const T *da, size_t n, size_t n_in, size_t n_out, double alpha,
                     pynn_activation dact, const pynn_apack *ap, T *wroom, int wmode,
                     const pynn_sgd_fused *sgd, pynn_sgd_bg *bg, const pynn_team *tm);
void pynn__sgd_bg_finish(pynn_sgd_bg *bg);
void pynn__bias_grad(T *db, const T *delta, size_t n, size_t n_out, size_t j0, size_t j1,
                     T scale);
/* Whether the weight gradient of n rows with its fused SGD runs on the tiles
 * (so it can keep a packed copy of W current), and whether the forward product
 * of n rows runs on them packing W (so it gains from a prepacked one). */
int pynn__dense_wgrad_tiled(size_t n, size_t n_in, size_t n_out);
/* Layer l's forward product's B (W) as pynn__gemm_prepack_b reads it (net.c). */
pynn_gemm_args pynn__forward_product(const pynn_net *net, const T *params,
                                     const size_t *w_off, size_t l);
int pynn__dense_fwd_packs_w(size_t n, size_t n_in, size_t n_out);
int pynn__dense_wgrad_pack(const T *x, size_t n, size_t n_in, size_t n_out, T *room,
                           size_t room_len, int bf16, const pynn_team *tm);
int pynn__dense_wgrad_pack_ahead(const T *x, size_t n, size_t n_in, size_t n_out, T *room,
                                 size_t room_len);
/* Whether a weight gradient of n rows packs x^T (a thread alone, room_len
 * scalars of room; float products) -- the shapes alone decide. */
int pynn__dense_wgrad_packs_x(size_t n, size_t n_in, size_t n_out, size_t room_len);
void pynn__dense_igrad(T *dx, const T *delta, const T *W, const T *da, size_t n, size_t n_in,
                       size_t n_out, pynn_activation dact, const pynn_apack *ap,
                       const pynn_team *tm);
void pynn__dense_igrad_rows(T *dx, const T *delta, const T *W, const T *da, size_t r0,
                            size_t r1, size_t n_in, size_t n_out, pynn_activation dact,
                            int bf16);

/* sparse.c: the first layer on CSR input (see there for the math); a batch's
 * rows as a list of CSR rows. */
typedef struct {
    const int64_t *indptr, *indices;
    const T *data;
    const int64_t *rows;        /* batch row r is CSR row rows[r]; NULL: row r */
} pynn_csr;
void pynn__sparse_fwd(T *out, const pynn_csr *x, const T *W, const T *b, size_t n,
                      size_t n_out, pynn_activation act, const pynn_team *tm);
void pynn__sparse_wgrad(T *dW, T *db, const T *delta, const pynn_csr *x, const T *W, size_t n,
                        size_t n_in, size_t n_out, double alpha, unsigned char *marks,
                        const pynn_team *tm);
void pynn__sparse_marks_done(unsigned char *marks, size_t n_in, size_t n, double alpha);

/* The optimizer's partial sums of squares in the workspace ws (layout.c). */
static inline double *pynn__sq_parts(T *ws, const pynn__ws_layout *lay)
{
    uintptr_t p = (uintptr_t)(ws + lay->sq);
    return (double *)((p + 7) & ~(uintptr_t)7);
}

/* The rows' losses in the workspace ws (layout.c; net.c: pynn__net_backward). */
static inline double *pynn__row_loss(T *ws, const pynn__ws_layout *lay)
{
    uintptr_t p = (uintptr_t)(ws + lay->rowloss);
    return (double *)((p + 7) & ~(uintptr_t)7);
}

/* optim.c: sum of squared weights (the L2 term), one optimizer step over the
 * arena by a team (leaving the chunks' sums of squares for pynn__optim_wsq
 * when opt->alpha > 0); returns 0 when it had nothing to do (every layer's
 * update fused into the backward pass, no sums of squares wanted), so no sync
 * need follow it. */
double pynn__weight_sq(const pynn_net *net, const T *params, const size_t *w_off);
int pynn__optim_step(T *params, T *opt_a, T *opt_b, const T *grads, const pynn_net *net,
                      const pynn_optim *opt, uint64_t t, const size_t *w_off,
                      const size_t *b_off, double *sq_parts, size_t fused_from, T *vel,
                      const pynn_team *tm);
double pynn__optim_wsq(const pynn_net *net, const double *sq_parts);

/* net.c: forward n rows into acts; loss and gradients from the cached forward.
 * The input is x, or the CSR rows sx when sx is not NULL (marks: the sparse
 * gradient's bytes kept across a step loop, or NULL; sparse.c). */
void pynn__net_forward(T *acts, const pynn_net *net, const T *params, const size_t *w_off,
                       const size_t *b_off, const T *x, const pynn_csr *sx, size_t n,
                       int defer_out, const pynn_apack *ap, const pynn_team *tm);
double pynn__net_backward(T *grads, T *d0, T *d1, T *d2, const pynn_apack *ap, T *acts,
                          const pynn_net *net, const T *params, const size_t *w_off,
                          const size_t *b_off, const T *x, const pynn_csr *sx,
                          unsigned char *marks, const T *y, const T *sw,
                          const int64_t *sw_idx, size_t n, double alpha, double wsq,
                          double *rowloss, double *shared, T *upd, T *vel, T lr,
                          const pynn_team *tm);
/* The packing room of a workspace (net.c). */
pynn_apack pynn__apack_of(T *ws, const pynn__ws_layout *lay);

#endif /* PYNN_TYPED_H */

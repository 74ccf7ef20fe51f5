/*
 * pynn.h -- the whole C API of the pynn numeric core.
 *
 * The core is plain C11 with no Python headers.  It never allocates, never
 * exits and never prints: callers own every buffer (NumPy does, in practice)
 * and every function returns a pynn_status.
 *
 * Conventions
 *   - Matrices are dense, row-major and C-contiguous.  A weight matrix W of a
 *     layer is (n_in, n_out), so a layer computes  Z = A W + b  for a batch A
 *     of shape (n, n_in), exactly as scikit-learn stores coefs_[i].
 *   - Outputs come first, then const inputs, then sizes, then options.
 *   - One source serves float and double: every typed symbol exists twice,
 *     suffixed _f32 and _f64 (the typed files are compiled twice; typed.h).
 *   - Parameters of a network live in one flat "arena":
 *         [W_0 (u0 x u1), b_0 (u1), W_1 (u1 x u2), b_1 (u2), ...]
 *     Gradients and optimizer moments use the very same layout, so the
 *     optimizer is one flat loop over the arena.
 */
#ifndef PYNN_H
#define PYNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Most weight layers a network may have (their offsets live on the stack);
 * the whole-network entry points return PYNN_ERR_UNSUPPORTED beyond it. */
#define PYNN_MAX_LAYERS 256

typedef enum {
    PYNN_OK = 0,
    PYNN_ERR_ARG = 1,        /* an argument is out of its domain (bad enum, zero size, NULL) */
    PYNN_ERR_OVERFLOW = 2,   /* a size computation would overflow size_t */
    PYNN_ERR_WORKSPACE = 3,  /* the workspace passed in is smaller than required */
    PYNN_ERR_NONFINITE = 4,  /* training produced a NaN or infinite loss (divergence) */
    PYNN_ERR_UNSUPPORTED = 5, /* a valid but unsupported combination (e.g. step as hidden unit) */
    PYNN_ERR_NONFINITE_INPUT = 6 /* pynn_train with check_x: a batch's x rows hold a NaN or infinity */
} pynn_status;

typedef enum {
    PYNN_ACT_IDENTITY = 0,
    PYNN_ACT_LOGISTIC = 1,
    PYNN_ACT_TANH = 2,
    PYNN_ACT_RELU = 3,
    PYNN_ACT_SOFTMAX = 4,   /* row-wise */
    PYNN_ACT_STEP = 5,      /* Heaviside: 1 if z >= 0 else 0 (Rosenblatt's perceptron) */
    PYNN_ACT_EXP = 6        /* exp: the log link of Poisson regression (output layer only) */
} pynn_activation;

typedef enum {
    /* L = 1/n sum_k 1/2 sum_j (yhat_kj - y_kj)^2   (scikit-learn's squared_error) */
    PYNN_LOSS_HALF_SQUARED = 0,
    /* L = 1/n sum_k sum_j (yhat_kj - y_kj)^2       (the textbook perceptron cost) */
    PYNN_LOSS_SQUARED = 1,
    /* L = -1/n sum_k sum_j [y log p + (1-y) log(1-p)] */
    PYNN_LOSS_BINARY_CE = 2,
    /* L = -1/n sum_k sum_j y log p */
    PYNN_LOSS_CATEGORICAL_CE = 3,
    /* L = 1/n sum_k sum_j [y log(y / yhat) - y + yhat]  (half the Poisson deviance,
     * scikit-learn's 'poisson' loss; y log(y / yhat) is 0 where y = 0) */
    PYNN_LOSS_HALF_POISSON = 4
} pynn_loss;

typedef enum {
    PYNN_SOLVER_SGD = 0,     /* plain gradient descent, or momentum / Nesterov momentum */
    PYNN_SOLVER_ADAM = 1
} pynn_solver;

/* A network: n_layers weight layers joining n_layers + 1 unit counts. */
typedef struct {
    size_t n_layers;
    const ptrdiff_t *units;     /* n_layers + 1 entries: n_features, hidden..., n_outputs */
    pynn_activation hidden;     /* activation of every hidden layer */
    pynn_activation output;     /* activation of the output layer */
    pynn_loss loss;
    /* 1: mixed precision, bfloat16 products (float32 core only; the double core
     * refuses it with PYNN_ERR_UNSUPPORTED).  The operands of every layer's
     * three products (x W, x^T delta, delta W^T) are rounded to bfloat16
     * (nearest, ties to even) as the product packs them; the products
     * accumulate in float32; parameters, epilogues (bias, activations and
     * their derivatives), losses and the optimizer stay float32.  The first
     * layer on CSR input, whose products are not matrix products, stays
     * float32.  0: every value in the core's type. */
    int bf16;
} pynn_net;

/* Hyper-parameters of one optimizer step. */
typedef struct {
    pynn_solver solver;
    double learning_rate;       /* for Adam: learning_rate_init; bias correction is applied inside */
    double momentum;            /* SGD only; 0 gives plain gradient descent */
    int nesterov;               /* SGD only */
    double beta1, beta2, epsilon; /* Adam only */
    double alpha;               /* L2 penalty: adds alpha/2 * ||W||^2 / n to the loss */
} pynn_optim;

/* Resumable state of a training run (everything the step loop carries). */
typedef struct {
    uint64_t rng[4];            /* xoshiro256** state, seeded by pynn_rng_seed */
    uint64_t t;                 /* optimizer steps taken so far (Adam's t) */
    size_t pos;                 /* next position in the current epoch's order; 0 = new epoch */
    double loss_acc;            /* sum over finished batches of batch_loss * batch_rows */
} pynn_train_state;

/* What one pynn_train_* call did. */
typedef struct {
    size_t steps_done;          /* minibatch steps taken (each one updated the weights) */
    int epoch_done;             /* 1 if the call ended an epoch */
    double epoch_loss;          /* that epoch's mean loss (when epoch_done; else 0) */
} pynn_train_result;

/* The buffers and the data of a training run (pynn_train_*): T is float for
 * pynn_train_data_f32, double for pynn_train_data_f64.  Every array is
 * C-contiguous; the arena-shaped ones hold pynn_param_count scalars. */
#define PYNN_TRAIN_DATA_OF(T)                                                    \
    struct {                                                                     \
        T *params;          /* the parameter arena, updated in place        */   \
        T *grads;           /* gradient arena (scratch)                     */   \
        T *opt_a;           /* SGD velocity or Adam's first moments (arena) */   \
        T *opt_b;           /* Adam's second moments (arena); NULL for SGD  */   \
        const T *x;         /* (n, n_features) inputs                       */   \
        const T *y;         /* (n, n_outputs) targets, or NULL: labels      */   \
        const int64_t *labels; /* (n) class of each row, when y is NULL: its */  \
                            /* target row is one-hot (1 in column labels[r],  */ \
                            /* 0 elsewhere), or labels[r] itself (0 or 1) for */ \
                            /* one output; another value gives a zero row.   */ \
                            /* Built per batch: no n x n_outputs matrix.     */ \
        const T *sw;        /* (n) sample weights; NULL: all 1              */   \
        size_t n;           /* rows                                         */   \
        int64_t *order;     /* (n) permutation of 0..n-1; NULL if !shuffle  */   \
        int shuffle;        /* reshuffle order whenever an epoch starts     */   \
        size_t batch_size;  /* rows per step, 1 <= batch_size <= n          */   \
        T *ws;              /* pynn_workspace_size(net, batch_size) scalars */   \
        size_t ws_len;      /* its length in scalars                        */   \
        /* sparse inputs, used when x is NULL: X in CSR form (n rows of      */ \
        /* n_features); ws then holds pynn_workspace_size_csr scalars        */ \
        const int64_t *x_indptr;  /* (n + 1) offsets into x_indices, x_data */  \
        const int64_t *x_indices; /* column of each stored value            */  \
        const T *x_data;          /* the stored values                      */  \
        int check_x;        /* dense x: 1 checks each batch's rows for NaN  */   \
                            /* and infinity as the step reads them, and stops */ \
                            /* before that step's update with             */   \
                            /* PYNN_ERR_NONFINITE_INPUT (0: the caller       */ \
                            /* checked x)                                    */ \
        int velocity_at_epoch_end; /* plain gradient descent (SGD, momentum */ \
                            /* 0) keeps no velocity from step to step and    */ \
                            /* writes the one it leaves, -lr g, in opt_a at  */ \
                            /* the last step of each call (0) or only at an  */ \
                            /* epoch's last step (1: for a caller that runs  */ \
                            /* whole epochs in several calls)                */ \
    }
typedef PYNN_TRAIN_DATA_OF(float) pynn_train_data_f32;
typedef PYNN_TRAIN_DATA_OF(double) pynn_train_data_f64;

/* ---- untyped helpers ------------------------------------------------------ */

/* Number of scalars in the parameter arena; 0 with PYNN_ERR_* on bad input. */
pynn_status pynn_param_count(size_t *count, const pynn_net *net);

/* Offsets (in scalars) of W_l and b_l inside the arena, for l < n_layers. */
pynn_status pynn_param_offsets(size_t *w_off, size_t *b_off, const pynn_net *net);

/* Scalars of workspace needed by pynn_net_* and pynn_train_* for batches of
 * at most `batch` rows. */
pynn_status pynn_workspace_size(size_t *count, const pynn_net *net, size_t batch);

/* The same for the whole-network entry points on CSR input (*_csr, and
 * pynn_train with x NULL): no room to gather input rows, a byte per input
 * feature for the sparse weight gradient instead. */
pynn_status pynn_workspace_size_csr(size_t *count, const pynn_net *net, size_t batch);

/* Scalars of workspace per block that pynn_net_predict (and _csr) needs for
 * blocks of at most `batch` rows: a forward pass's part of pynn_workspace_size
 * (_csr), a fraction of it (a workspace sized for training does as well). */
pynn_status pynn_predict_workspace_size(size_t *count, const pynn_net *net, size_t batch);
pynn_status pynn_predict_workspace_size_csr(size_t *count, const pynn_net *net, size_t batch);

/* Scalars that pynn_net_predict (and _csr) may take at the end of its
 * workspace, after the k workspaces of its blocks, to pack the weights for the
 * products once per call instead of once per block (the same bits). */
pynn_status pynn_predict_pack_size(size_t *count, const pynn_net *net);

/* Seed the generator from one 64-bit value (splitmix64 expansion). */
void pynn_rng_seed(uint64_t state[4], uint64_t seed);
uint64_t pynn_rng_next(uint64_t state[4]);

/* Uniform integer in [0, bound) without modulo bias (Lemire's method). */
uint64_t pynn_rng_bounded(uint64_t state[4], uint64_t bound);

/* In-place Fisher-Yates shuffle of idx[0..n). */
void pynn_shuffle(int64_t *idx, size_t n, uint64_t state[4]);

/* SIMD paths: 0 generic (portable C), 1 AVX2+FMA, 2 AVX-512F, 3 AVX-512F with
 * the bfloat16 mode's products on AVX512_BF16 (vdpbf16ps), 4 AVX-512F with
 * them on AMX tiles (Linux: the process asks for the tile state the first
 * time path 4 is looked at).  The core picks the best of 0-2 the CPU and the
 * OS support (cpuid and XCR0) at first use; the environment variable
 * PYNN_SIMD=generic|avx2|avx512|avx512_bf16|amx picks another (if they can run
 * it): paths 3 and 4 are chosen only so, until measured on such CPUs.  Builds
 * for other processors, and x86-64 builds with CMake option
 * PYNN_PORTABLE_ONLY, have the generic path alone. */
int pynn_simd_supported(int isa);
int pynn_simd_get(void);
pynn_status pynn_simd_set(int isa);   /* PYNN_ERR_UNSUPPORTED if the CPU lacks it */
const char *pynn_simd_name(int isa);
/* For tests: runs the bfloat16 mode's products on the pair kernels with
 * their instructions emulated in plain C (any CPU, any path; slow): on = 1 the
 * avx512_bf16 path's (vdpbf16ps), 2 the amx path's (tiles), 0 neither (the
 * default).  Returns the previous setting, or -1 (nothing changed) if on is
 * out of range. */
int pynn_bf16_emulation(int on);
/* The size of the L1 data cache (KiB) the matrix products choose their K
 * blocks by (pynn_gemm_kc_max below); read from the CPU at first use
 * (0 where unknown).  kib >= 0 sets it (tests: the other blocking, whose
 * results are the same bits); returns the value before. */
int pynn_gemm_l1d_kib(int kib);
/* For tests: the size (KiB) of the largest W whose plain gradient descent is
 * fused into its weight gradient (internal.h: PYNN_SGD_FUSE_MAX_BYTES);
 * larger ones are updated apart, with the same bits.  kib >= 0 sets it, only
 * while no training call runs (one that read both values in a step could
 * update a layer twice, or not at all); returns the value before. */
int pynn_sgd_fuse_max_kib(int kib);
/* The deepest K block a float product takes (internal.h: the rules, by the L1
 * size above) with B panels of panel_row_bytes and tiles of tile_row_bytes per
 * step of K (a kernel's NR and MR times the element's size); for tests. */
size_t pynn_gemm_kc_max(size_t panel_row_bytes, size_t tile_row_bytes);

/* The names the Python layer uses for each enum value (NULL past the last one):
 * the one place those names are defined. */
const char *pynn_activation_name(int act);
const char *pynn_loss_name(int loss);
const char *pynn_solver_name(int solver);

/* Threads the core uses at most when asked for n_threads (0 = OpenMP's default):
 * never more than the processors this process may run on, and 1 in a child
 * forked after a team of threads ran (libgomp is not fork-safe). */
int pynn_threads(int n_threads);
/* pynn_threads(0) */
int pynn_max_threads(void);
/* 1 once this process is a child forked after a team of threads ran. */
int pynn_forked(void);
/* Run on one thread from now on, as a forked child does. */
void pynn_mark_forked(void);
int pynn_has_openmp(void);
/* Barriers the core's own team barrier has passed in this process (counted
 * once per barrier, by each team's first thread), for bench/syncs.py: the
 * syncs a step makes that libgomp does not see.  0 where the core uses the
 * OpenMP barrier (not Linux, or not GCC/Clang). */
uint64_t pynn_team_barriers(void);

/* ---- typed API: declared for float (_f32) and double (_f64) --------------- */

#define PYNN_DECLARE(T, SFX)                                                      \
/* a = act(z), in place on an (n, m) block; softmax is row-wise. */              \
pynn_status pynn_activate_##SFX(T *a, size_t n, size_t m, pynn_activation act);   \
                                                                                  \
/* delta *= act'(z) in place, with act' taken from the cached output a.          \
 * Softmax uses its Jacobian: delta_j <- a_j (delta_j - sum_i delta_i a_i).    */ \
pynn_status pynn_activation_backward_##SFX(T *delta, const T *a, size_t n,        \
                                           size_t m, pynn_activation act);        \
                                                                                  \
/* Mean loss over the n rows of (n, m) predictions y_hat against targets y.    */ \
pynn_status pynn_loss_##SFX(double *loss, const T *y_hat, const T *y, size_t n,   \
                            size_t m, pynn_loss loss_kind);                       \
                                                                                  \
/* delta = d loss_k / d z_k for every row k (not divided by n).                 \
 * Fused to y_hat - y for softmax+CE, logistic+BCE, identity+half squared,     \
 * exp+half Poisson deviance;                                                  \
 * step output uses Rosenblatt's rule delta = y_hat - y.                      */ \
pynn_status pynn_output_delta_##SFX(T *delta, const T *y_hat, const T *y,         \
                                    size_t n, size_t m, pynn_activation act,      \
                                    pynn_loss loss_kind);                         \
                                                                                  \
/* out = act(x W + b); x is (n, n_in), W (n_in, n_out), b (n_out), out (n, n_out). */ \
pynn_status pynn_dense_forward_##SFX(T *out, const T *x, const T *W, const T *b,  \
                                     size_t n, size_t n_in, size_t n_out,         \
                                     pynn_activation act, int n_threads);         \
                                                                                  \
/* Inverts  z = x W + b  for the mean loss over n rows:                         \
 *   dW = x^T delta / n + alpha W / n,   db = sum_k delta_k / n,                  \
 *   dx = delta W^T   (NULL dx: not computed; the caller applies act' of x). */ \
pynn_status pynn_dense_backward_##SFX(T *dx, T *dW, T *db, const T *delta,        \
                                      const T *x, const T *W, size_t n,           \
                                      size_t n_in, size_t n_out, double alpha,    \
                                      int n_threads);                             \
                                                                                  \
/* The first layer on sparse input.  x is CSR: row i's values are               \
 * data[indptr[i] .. indptr[i+1]) in the columns indices[same]; the batch's row \
 * r is CSR row rows[r] (rows NULL: row r).  Indices are trusted (checked by    \
 * the caller).  out = act(x W + b), out (n, n_out), W (n_in, n_out).          */ \
pynn_status pynn_sparse_forward_##SFX(T *out, const int64_t *indptr,             \
                                      const int64_t *indices, const T *data,      \
                                      const int64_t *rows, const T *W, const T *b, \
                                      size_t n, size_t n_in, size_t n_out,        \
                                      pynn_activation act, int n_threads);        \
                                                                                  \
/* Inverts  z = x W + b  on CSR x (no dx):                                        \
 *   dW = x^T delta / n + alpha W / n,   db = sum_k delta_k / n.                */ \
pynn_status pynn_sparse_backward_##SFX(T *dW, T *db, const T *delta,             \
                                       const int64_t *indptr,                     \
                                       const int64_t *indices, const T *data,     \
                                       const int64_t *rows, const T *W, size_t n, \
                                       size_t n_in, size_t n_out, double alpha,   \
                                       int n_threads);                            \
                                                                                  \
/* One SGD step over a flat arena:                                               \
 *   v <- momentum v - lr g;  p <- p + v   (Nesterov: p <- p + momentum v - lr g) */ \
pynn_status pynn_sgd_update_##SFX(T *params, T *velocity, const T *grads,         \
                                  size_t size, double lr, double momentum,        \
                                  int nesterov);                                  \
                                                                                  \
/* One Adam step (t >= 1 counts this step):                                       \
 *   m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;                               \
 *   p <- p - lr sqrt(1-b2^t)/(1-b1^t) m / (sqrt(v) + eps)                       */ \
pynn_status pynn_adam_update_##SFX(T *params, T *m, T *v, const T *grads,         \
                                   size_t size, double lr, double beta1,          \
                                   double beta2, double eps, uint64_t t);         \
                                                                                  \
/* 1 if any of the count values of x is NaN or infinite, else 0.                \
 * (Vectorised, one pass at memory speed.)                                     */ \
int pynn_any_nonfinite_##SFX(const T *x, size_t count);                          \
/* The same on up to n_threads threads (0: OpenMP's default), each a           \
 * contiguous share: more memory bandwidth for a large array.                  */ \
int pynn_any_nonfinite_threads_##SFX(const T *x, size_t count, int n_threads);   \
/* dst = src (count values, not overlapping), on up to n_threads threads       \
 * (0: OpenMP's default) where the copy is large.                              */ \
void pynn_copy_threads_##SFX(T *dst, const T *src, size_t count, int n_threads);  \
                                                                                  \
/* Forward pass of n rows through the whole network into out (n, n_outputs).    \
 * Rows are processed in blocks of `batch`; ws holds k times                    \
 * pynn_predict_workspace_size(net, batch) scalars, and up to k blocks run in   \
 * parallel; pynn_predict_pack_size(net) more, after them, pack the weights     \
 * once.                                                                        \
 * PYNN_ERR_NONFINITE if x holds a NaN or infinity (out is then unspecified).  */ \
pynn_status pynn_net_predict_##SFX(T *out, const pynn_net *net, const T *params,  \
                                   const T *x, size_t n, T *ws, size_t ws_len,    \
                                   size_t batch, int n_threads);                  \
                                                                                  \
/* Loss (data term + alpha/2 ||W||^2 / n) and gradient of every parameter on     \
 * the n rows (x, y).  sw (NULL: all 1) weights the rows: the mean over rows and \
 * the L2 term's n become sums weighted by sw and divided by sum(sw).         */ \
pynn_status pynn_net_loss_grad_##SFX(double *loss, T *grads, const pynn_net *net, \
                                     const T *params, const T *x, const T *y,     \
                                     const T *sw, size_t n, double alpha, T *ws,  \
                                     size_t ws_len, int n_threads);               \
                                                                                  \
/* Whether pynn_net_loss_grad at params (sw NULL) is finite on any n rows whose  \
 * inputs lie within +-xmax and targets within +-ymax, proven by bounds: 1 if   \
 * proven, 0 if not (run it to tell), -1 if params holds a NaN or infinity.     \
 * Its pass over params runs on up to n_threads threads (0: OpenMP's default). */ \
int pynn_finite_bound_##SFX(const pynn_net *net, const T *params, double xmax,   \
                            double ymax, double alpha, size_t n, int n_threads); \
                                                                                  \
/* The step loop.  Runs minibatch steps over the data's n rows until the        \
 * current epoch ends or max_steps steps were taken; sw (NULL: all 1) holds the   \
 * rows' sample weights, applied per batch.  order is reshuffled (shuffle != 0)  \
 * whenever an epoch starts.  result tells the steps taken and, when an epoch    \
 * ended, its mean loss; state carries the RNG, Adam's t and the epoch position  \
 * from call to call.  PYNN_ERR_ARG if batch_size is 0 or larger than n (the     \
 * caller clamps it), PYNN_ERR_NONFINITE if a step's loss was NaN or infinite    \
 * (that step made no update; result->steps_done counts the ones before), and   \
 * PYNN_ERR_NONFINITE_INPUT likewise for a batch with a NaN or infinity in x   \
 * (data->check_x).                                                           */ \
pynn_status pynn_train_##SFX(pynn_train_result *result, pynn_train_state *state,  \
                             const pynn_net *net, const pynn_optim *opt,          \
                             const pynn_train_data_##SFX *data, size_t max_steps, \
                             int n_threads);                                      \
                                                                                  \
/* pynn_net_predict and pynn_net_loss_grad on n rows of CSR input (see          \
 * pynn_sparse_forward; ws sized by pynn_predict_workspace_size_csr and by       \
 * pynn_workspace_size_csr).                                                    */ \
pynn_status pynn_net_predict_csr_##SFX(T *out, const pynn_net *net,              \
                                       const T *params, const int64_t *indptr,    \
                                       const int64_t *indices, const T *data,     \
                                       size_t n, T *ws, size_t ws_len,            \
                                       size_t batch, int n_threads);              \
pynn_status pynn_net_loss_grad_csr_##SFX(double *loss, T *grads,                 \
                                         const pynn_net *net, const T *params,    \
                                         const int64_t *indptr,                   \
                                         const int64_t *indices, const T *data,   \
                                         const T *y, const T *sw, size_t n,       \
                                         double alpha, T *ws, size_t ws_len,      \
                                         int n_threads);

PYNN_DECLARE(float, f32)
PYNN_DECLARE(double, f64)

#undef PYNN_DECLARE

#ifdef __cplusplus
}
#endif

#endif /* PYNN_H */

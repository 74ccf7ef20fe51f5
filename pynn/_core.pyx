# cython: language_level=3
"""Bindings to the C core (csrc/pynn.h).  Bindings only: shapes are checked
here because the core trusts its pointers; everything else lives in Python.

Every heavy call runs with the GIL released.  Status codes become exceptions.
"""
from libc.stdint cimport uint64_t, int64_t

import numpy as np


cdef extern from "pynn.h" nogil:
    enum: PYNN_MAX_LAYERS
    ctypedef enum pynn_status:
        PYNN_OK
        PYNN_ERR_ARG
        PYNN_ERR_OVERFLOW
        PYNN_ERR_WORKSPACE
        PYNN_ERR_NONFINITE
        PYNN_ERR_UNSUPPORTED
        PYNN_ERR_NONFINITE_INPUT
    ctypedef enum pynn_activation:
        pass
    ctypedef enum pynn_loss:
        pass
    ctypedef enum pynn_solver:
        pass
    ctypedef struct pynn_net:
        size_t n_layers
        const Py_ssize_t *units
        pynn_activation hidden
        pynn_activation output
        pynn_loss loss
        int bf16
    ctypedef struct pynn_optim:
        pynn_solver solver
        double learning_rate
        double momentum
        int nesterov
        double beta1, beta2, epsilon
        double alpha
    ctypedef struct pynn_train_state:
        uint64_t rng[4]
        uint64_t t
        size_t pos
        double loss_acc
    ctypedef struct pynn_train_result:
        size_t steps_done
        int epoch_done
        double epoch_loss
    ctypedef struct pynn_train_data_f32:
        float *params
        float *grads
        float *opt_a
        float *opt_b
        const float *x
        const float *y
        const int64_t *labels
        const float *sw
        size_t n
        int64_t *order
        int shuffle
        size_t batch_size
        float *ws
        size_t ws_len
        const int64_t *x_indptr
        const int64_t *x_indices
        const float *x_data
        int check_x
        int velocity_at_epoch_end
    ctypedef struct pynn_train_data_f64:
        double *params
        double *grads
        double *opt_a
        double *opt_b
        const double *x
        const double *y
        const int64_t *labels
        const double *sw
        size_t n
        int64_t *order
        int shuffle
        size_t batch_size
        double *ws
        size_t ws_len
        const int64_t *x_indptr
        const int64_t *x_indices
        const double *x_data
        int check_x
        int velocity_at_epoch_end

    pynn_status pynn_param_count(size_t *count, const pynn_net *net) noexcept
    pynn_status pynn_param_offsets(size_t *w_off, size_t *b_off, const pynn_net *net) noexcept
    pynn_status pynn_workspace_size(size_t *count, const pynn_net *net, size_t batch) noexcept
    pynn_status pynn_workspace_size_csr(size_t *count, const pynn_net *net, size_t batch) noexcept
    pynn_status pynn_predict_workspace_size(size_t *count, const pynn_net *net,
                                            size_t batch) noexcept
    pynn_status pynn_predict_workspace_size_csr(size_t *count, const pynn_net *net,
                                                size_t batch) noexcept
    pynn_status pynn_predict_pack_size(size_t *count, const pynn_net *net) noexcept
    void pynn_rng_seed(uint64_t *state, uint64_t seed) noexcept
    void pynn_shuffle(int64_t *idx, size_t n, uint64_t *state) noexcept
    int pynn_max_threads() noexcept
    int pynn_threads(int n_threads) noexcept
    int pynn_forked() noexcept
    void pynn_mark_forked() noexcept
    int pynn_simd_supported(int isa) noexcept
    int pynn_simd_get() noexcept
    pynn_status pynn_simd_set(int isa) noexcept
    const char *pynn_simd_name(int isa) noexcept
    int pynn_bf16_emulation(int on) noexcept
    int pynn_gemm_l1d_kib(int kib) noexcept
    int pynn_sgd_fuse_max_kib(int kib) noexcept
    size_t pynn_gemm_kc_max(size_t panel_row_bytes, size_t tile_row_bytes) noexcept
    const char *pynn_activation_name(int act) noexcept
    const char *pynn_loss_name(int loss) noexcept
    const char *pynn_solver_name(int solver) noexcept
    int pynn_has_openmp() noexcept

    pynn_status pynn_activate_f32(float *a, size_t n, size_t m, pynn_activation act) noexcept
    pynn_status pynn_activate_f64(double *a, size_t n, size_t m, pynn_activation act) noexcept
    pynn_status pynn_activation_backward_f32(float *d, const float *a, size_t n, size_t m, pynn_activation act) noexcept
    pynn_status pynn_activation_backward_f64(double *d, const double *a, size_t n, size_t m, pynn_activation act) noexcept
    pynn_status pynn_loss_f32(double *loss, const float *yh, const float *y, size_t n, size_t m, pynn_loss k) noexcept
    pynn_status pynn_loss_f64(double *loss, const double *yh, const double *y, size_t n, size_t m, pynn_loss k) noexcept
    pynn_status pynn_output_delta_f32(float *d, const float *yh, const float *y, size_t n, size_t m, pynn_activation act, pynn_loss k) noexcept
    pynn_status pynn_output_delta_f64(double *d, const double *yh, const double *y, size_t n, size_t m, pynn_activation act, pynn_loss k) noexcept
    pynn_status pynn_dense_forward_f32(float *out, const float *x, const float *W, const float *b, size_t n, size_t n_in, size_t n_out, pynn_activation act, int nt) noexcept
    pynn_status pynn_dense_forward_f64(double *out, const double *x, const double *W, const double *b, size_t n, size_t n_in, size_t n_out, pynn_activation act, int nt) noexcept
    pynn_status pynn_dense_backward_f32(float *dx, float *dW, float *db, const float *d, const float *x, const float *W, size_t n, size_t n_in, size_t n_out, double alpha, int nt) noexcept
    pynn_status pynn_dense_backward_f64(double *dx, double *dW, double *db, const double *d, const double *x, const double *W, size_t n, size_t n_in, size_t n_out, double alpha, int nt) noexcept
    pynn_status pynn_sgd_update_f32(float *p, float *v, const float *g, size_t size, double lr, double mom, int nesterov) noexcept
    pynn_status pynn_sgd_update_f64(double *p, double *v, const double *g, size_t size, double lr, double mom, int nesterov) noexcept
    pynn_status pynn_adam_update_f32(float *p, float *m, float *v, const float *g, size_t size, double lr, double b1, double b2, double eps, uint64_t t) noexcept
    pynn_status pynn_adam_update_f64(double *p, double *m, double *v, const double *g, size_t size, double lr, double b1, double b2, double eps, uint64_t t) noexcept
    int pynn_any_nonfinite_f32(const float *x, size_t count) noexcept
    int pynn_any_nonfinite_f64(const double *x, size_t count) noexcept
    int pynn_any_nonfinite_threads_f32(const float *x, size_t count, int n_threads) noexcept
    int pynn_any_nonfinite_threads_f64(const double *x, size_t count, int n_threads) noexcept
    int pynn_finite_bound_f32(const pynn_net *net, const float *params, double xmax, double ymax, double alpha, size_t n, int n_threads) noexcept
    int pynn_finite_bound_f64(const pynn_net *net, const double *params, double xmax, double ymax, double alpha, size_t n, int n_threads) noexcept
    void pynn_copy_threads_f32(float *dst, const float *src, size_t count, int n_threads) noexcept
    void pynn_copy_threads_f64(double *dst, const double *src, size_t count, int n_threads) noexcept
    pynn_status pynn_net_predict_f32(float *out, const pynn_net *net, const float *params, const float *x, size_t n, float *ws, size_t ws_len, size_t batch, int nt) noexcept
    pynn_status pynn_net_predict_f64(double *out, const pynn_net *net, const double *params, const double *x, size_t n, double *ws, size_t ws_len, size_t batch, int nt) noexcept
    pynn_status pynn_net_loss_grad_f32(double *loss, float *grads, const pynn_net *net, const float *params, const float *x, const float *y, const float *sw, size_t n, double alpha, float *ws, size_t ws_len, int nt) noexcept
    pynn_status pynn_net_loss_grad_f64(double *loss, double *grads, const pynn_net *net, const double *params, const double *x, const double *y, const double *sw, size_t n, double alpha, double *ws, size_t ws_len, int nt) noexcept
    pynn_status pynn_train_f32(pynn_train_result *result, pynn_train_state *state, const pynn_net *net, const pynn_optim *opt, const pynn_train_data_f32 *data, size_t max_steps, int nt) noexcept
    pynn_status pynn_train_f64(pynn_train_result *result, pynn_train_state *state, const pynn_net *net, const pynn_optim *opt, const pynn_train_data_f64 *data, size_t max_steps, int nt) noexcept
    pynn_status pynn_sparse_forward_f32(float *out, const int64_t *indptr, const int64_t *indices, const float *data, const int64_t *rows, const float *W, const float *b, size_t n, size_t n_in, size_t n_out, pynn_activation act, int nt) noexcept
    pynn_status pynn_sparse_forward_f64(double *out, const int64_t *indptr, const int64_t *indices, const double *data, const int64_t *rows, const double *W, const double *b, size_t n, size_t n_in, size_t n_out, pynn_activation act, int nt) noexcept
    pynn_status pynn_sparse_backward_f32(float *dW, float *db, const float *delta, const int64_t *indptr, const int64_t *indices, const float *data, const int64_t *rows, const float *W, size_t n, size_t n_in, size_t n_out, double alpha, int nt) noexcept
    pynn_status pynn_sparse_backward_f64(double *dW, double *db, const double *delta, const int64_t *indptr, const int64_t *indices, const double *data, const int64_t *rows, const double *W, size_t n, size_t n_in, size_t n_out, double alpha, int nt) noexcept
    pynn_status pynn_net_predict_csr_f32(float *out, const pynn_net *net, const float *params, const int64_t *indptr, const int64_t *indices, const float *data, size_t n, float *ws, size_t ws_len, size_t batch, int nt) noexcept
    pynn_status pynn_net_predict_csr_f64(double *out, const pynn_net *net, const double *params, const int64_t *indptr, const int64_t *indices, const double *data, size_t n, double *ws, size_t ws_len, size_t batch, int nt) noexcept
    pynn_status pynn_net_loss_grad_csr_f32(double *loss, float *grads, const pynn_net *net, const float *params, const int64_t *indptr, const int64_t *indices, const float *data, const float *y, const float *sw, size_t n, double alpha, float *ws, size_t ws_len, int nt) noexcept
    pynn_status pynn_net_loss_grad_csr_f64(double *loss, double *grads, const pynn_net *net, const double *params, const int64_t *indptr, const int64_t *indices, const double *data, const double *y, const double *sw, size_t n, double alpha, double *ws, size_t ws_len, int nt) noexcept


ctypedef fused real:
    float
    double

ctypedef const char *(*_name_fn)(int) noexcept nogil


cdef dict _names(_name_fn name_of):
    """{name: enum value} for an enum whose names the core defines (pynn.h)."""
    cdef dict out = {}
    cdef int i = 0
    cdef const char *s = name_of(0)
    while s != NULL:
        out[s.decode("ascii")] = i
        i += 1
        s = name_of(i)
    return out


# The names the Python layer uses and their enum values, read from the core.
ACTIVATIONS = _names(pynn_activation_name)
LOSSES = _names(pynn_loss_name)
SOLVERS = _names(pynn_solver_name)


class NonFiniteError(FloatingPointError):
    """The loss became NaN or infinite during training."""


class NonFiniteInputError(ValueError):
    """A batch of the data being trained on holds a NaN or infinity (a
    Trainer with check_x): the step loop stopped before that batch's step."""


cdef int _check(pynn_status st, str what) except -1:
    if st == PYNN_OK:
        return 0
    if st == PYNN_ERR_ARG:
        raise ValueError(f"{what}: invalid argument (empty array, unknown option or value out of range)")
    if st == PYNN_ERR_OVERFLOW:
        raise MemoryError(f"{what}: the requested sizes overflow the address space")
    if st == PYNN_ERR_WORKSPACE:
        raise RuntimeError(f"{what}: workspace too small (internal error)")
    if st == PYNN_ERR_NONFINITE:
        raise NonFiniteError(f"{what}: the training loss became NaN or infinite")
    if st == PYNN_ERR_UNSUPPORTED:
        raise ValueError(f"{what}: unsupported combination of options")
    if st == PYNN_ERR_NONFINITE_INPUT:
        raise NonFiniteInputError(f"{what}: X contains NaN or infinity")
    raise RuntimeError(f"{what}: unknown status {<int>st}")


cdef inline void _same(tuple got, tuple want, str name) except *:
    if got != want:
        raise ValueError(f"{name} has shape {got}, expected {want}")


def max_threads():
    """Threads the core uses when n_threads is not given: OpenMP's default, at
    most the processors this process may run on (1 in a child forked after the
    core ran threads)."""
    return pynn_max_threads()


def threads(int n_threads):
    """Threads the core uses at most when asked for n_threads (0: OpenMP's
    default): never more than the processors this process may run on, and 1 in
    a child forked after the core ran threads."""
    return pynn_threads(n_threads)


def forked():
    """Whether this process is a child forked after the core ran threads (it
    then runs on one thread: libgomp cannot start threads there)."""
    return bool(pynn_forked())


def mark_forked():
    """Run on one thread from now on, as a child forked after threads ran does."""
    pynn_mark_forked()


#: The SIMD paths the core has, by number (names from the core).
SIMD_PATHS = tuple(_names(pynn_simd_name))


def simd_path():
    """The SIMD path the core runs: 'generic', 'avx2', 'avx512', 'avx512_bf16'
    or 'amx' (the last two: AVX-512 kernels with the bfloat16 mode's products
    on AVX512_BF16 or on AMX tiles; the default is the best the CPU has, amx
    where it has the tiles, else avx512_bf16 where it has that)."""
    return SIMD_PATHS[pynn_simd_get()]


def simd_supported():
    """The SIMD paths this CPU can run, slowest first."""
    return tuple(name for i, name in enumerate(SIMD_PATHS) if pynn_simd_supported(i))


def set_simd_path(name):
    """Force a SIMD path for the whole process (for tests and benchmarks)."""
    if name not in SIMD_PATHS:
        raise ValueError(f"SIMD path must be one of {SIMD_PATHS}, got {name!r}")
    if pynn_simd_set(SIMD_PATHS.index(name)) != PYNN_OK:
        raise ValueError(f"this CPU cannot run the {name!r} path; it supports "
                         f"{simd_supported()}")


#: set_bf16_emulation's kinds, by the core's number.
_BF16_EMULATIONS = (None, "vdpbf16ps", "amx")


def set_bf16_emulation(kind):
    """For tests: run the bfloat16 mode's products on the pair kernels of the
    avx512_bf16 path ("vdpbf16ps") or of the amx path ("amx") with their
    instructions emulated in plain C, on any CPU; None: the normal kernels.
    Returns the previous kind."""
    if kind not in _BF16_EMULATIONS:
        raise ValueError(f"kind must be one of {_BF16_EMULATIONS}, got {kind!r}")
    return _BF16_EMULATIONS[pynn_bf16_emulation(_BF16_EMULATIONS.index(kind))]


def gemm_l1d_kib(kib=None):
    """The L1 data cache size (KiB) the matrix products choose their K blocks
    by, as read from the CPU (0: unknown).  For tests, ``kib`` sets another
    (the results are the same bits either way); returns the value before."""
    if kib is not None and (not isinstance(kib, int) or kib < 0):
        raise ValueError(f"kib must be a whole number >= 0, got {kib!r}")
    return pynn_gemm_l1d_kib(-1 if kib is None else kib)


def sgd_fuse_max_kib(kib=None):
    """The size (KiB) of the largest W whose plain gradient descent the core
    fuses into its weight gradient (larger ones are updated apart, with the
    same bits).  For tests, ``kib`` sets another, while no training runs;
    returns the value before."""
    if kib is not None and (not isinstance(kib, int) or kib < 0 or kib >= 2 ** 31):
        raise ValueError(f"kib must be a whole number in [0, 2**31), got {kib!r}")
    return pynn_sgd_fuse_max_kib(-1 if kib is None else kib)


def gemm_kc_max(size_t panel_row_bytes, size_t tile_row_bytes):
    """The deepest K block the float products take, for the L1 size above,
    with B panels of ``panel_row_bytes`` and tiles of ``tile_row_bytes`` per
    step of K (a kernel's NR and MR values times the element size; tests)."""
    if panel_row_bytes == 0 or tile_row_bytes == 0:
        raise ValueError("panel_row_bytes and tile_row_bytes must be positive")
    return pynn_gemm_kc_max(panel_row_bytes, tile_row_bytes)


def has_openmp():
    """True when the core was compiled with OpenMP."""
    return bool(pynn_has_openmp())


# ---- single kernels ----------------------------------------------------------

def all_finite(const real[::1] a not None, int n_threads=1):
    """True if the contiguous vector a holds no NaN or infinity (one pass,
    without the GIL; a large one on up to n_threads threads, 0: OpenMP's
    default)."""
    cdef int bad = 0
    cdef size_t n = a.shape[0]
    if n == 0:
        return True
    with nogil:
        if real is float:
            bad = pynn_any_nonfinite_threads_f32(&a[0], n, n_threads)
        else:
            bad = pynn_any_nonfinite_threads_f64(&a[0], n, n_threads)
    return not bad


def copy_into(real[::1] dst not None, const real[::1] src not None, int n_threads=1):
    """dst[:] = src (contiguous vectors of one length and dtype, not
    overlapping), without the GIL, a large one on up to n_threads threads
    (0: OpenMP's default)."""
    cdef size_t n = src.shape[0]
    if <size_t>dst.shape[0] != n:
        raise ValueError(f"copy_into: lengths differ ({dst.shape[0]} and {n})")
    if n == 0:
        return
    if <const char *>&dst[0] < <const char *>(&src[0] + n) and <const char *>&src[0] < <const char *>(&dst[0] + n):
        raise ValueError("copy_into: dst and src overlap")
    with nogil:
        if real is float:
            pynn_copy_threads_f32(&dst[0], &src[0], n, n_threads)
        else:
            pynn_copy_threads_f64(&dst[0], &src[0], n, n_threads)


def activate(real[:, ::1] a not None, int act):
    """a = act(a) in place."""
    cdef pynn_status st
    cdef size_t n = a.shape[0], m = a.shape[1]
    if n == 0 or m == 0:
        return
    with nogil:
        if real is float:
            st = pynn_activate_f32(&a[0, 0], n, m, <pynn_activation>act)
        else:
            st = pynn_activate_f64(&a[0, 0], n, m, <pynn_activation>act)
    _check(st, "activation")


def activation_backward(real[:, ::1] delta not None, const real[:, ::1] a not None, int act):
    """delta *= act'(z) in place, from the cached output a."""
    cdef pynn_status st
    cdef size_t n = delta.shape[0], m = delta.shape[1]
    _same((a.shape[0], a.shape[1]), (delta.shape[0], delta.shape[1]), "a")
    if n == 0 or m == 0:
        return
    with nogil:
        if real is float:
            st = pynn_activation_backward_f32(&delta[0, 0], &a[0, 0], n, m, <pynn_activation>act)
        else:
            st = pynn_activation_backward_f64(&delta[0, 0], &a[0, 0], n, m, <pynn_activation>act)
    _check(st, "activation_backward")


def loss(const real[:, ::1] y_hat not None, const real[:, ::1] y not None, int kind):
    """Mean over rows of the per-row loss."""
    cdef pynn_status st
    cdef double out = 0
    cdef size_t n = y_hat.shape[0], m = y_hat.shape[1]
    _same((y.shape[0], y.shape[1]), (y_hat.shape[0], y_hat.shape[1]), "y")
    with nogil:
        if real is float:
            st = pynn_loss_f32(&out, &y_hat[0, 0], &y[0, 0], n, m, <pynn_loss>kind)
        else:
            st = pynn_loss_f64(&out, &y_hat[0, 0], &y[0, 0], n, m, <pynn_loss>kind)
    _check(st, "loss")
    return out


def output_delta(real[:, ::1] delta not None, const real[:, ::1] y_hat not None,
                 const real[:, ::1] y not None, int act, int kind):
    cdef pynn_status st
    cdef size_t n = y_hat.shape[0], m = y_hat.shape[1]
    _same((y.shape[0], y.shape[1]), (n, m), "y")
    _same((delta.shape[0], delta.shape[1]), (n, m), "delta")
    with nogil:
        if real is float:
            st = pynn_output_delta_f32(&delta[0, 0], &y_hat[0, 0], &y[0, 0], n, m,
                                       <pynn_activation>act, <pynn_loss>kind)
        else:
            st = pynn_output_delta_f64(&delta[0, 0], &y_hat[0, 0], &y[0, 0], n, m,
                                       <pynn_activation>act, <pynn_loss>kind)
    _check(st, "output_delta")


def dense_forward(real[:, ::1] out not None, const real[:, ::1] x not None,
                  const real[:, ::1] W not None, const real[::1] b not None,
                  int act, int n_threads):
    cdef pynn_status st
    cdef size_t n = x.shape[0], n_in = x.shape[1], n_out = W.shape[1]
    _same((W.shape[0], W.shape[1]), (n_in, n_out), "W")
    _same((b.shape[0],), (n_out,), "b")
    _same((out.shape[0], out.shape[1]), (n, n_out), "out")
    with nogil:
        if real is float:
            st = pynn_dense_forward_f32(&out[0, 0], &x[0, 0], &W[0, 0], &b[0], n, n_in, n_out,
                                        <pynn_activation>act, n_threads)
        else:
            st = pynn_dense_forward_f64(&out[0, 0], &x[0, 0], &W[0, 0], &b[0], n, n_in, n_out,
                                        <pynn_activation>act, n_threads)
    _check(st, "dense_forward")


def dense_backward(real[:, ::1] dW not None, real[::1] db not None,
                   const real[:, ::1] delta not None, const real[:, ::1] x not None,
                   const real[:, ::1] W not None, real[:, ::1] dx, double alpha,
                   int n_threads):
    """dW, db and (unless dx is None) dx of a dense layer, in place.
    (dx comes after the fused arguments: a None first would pick the float32 version.)"""
    cdef pynn_status st
    cdef size_t n = x.shape[0], n_in = x.shape[1], n_out = W.shape[1]
    cdef real *dxp = NULL
    _same((W.shape[0], W.shape[1]), (n_in, n_out), "W")
    _same((delta.shape[0], delta.shape[1]), (n, n_out), "delta")
    _same((dW.shape[0], dW.shape[1]), (n_in, n_out), "dW")
    _same((db.shape[0],), (n_out,), "db")
    if dx is not None:
        _same((dx.shape[0], dx.shape[1]), (n, n_in), "dx")
        dxp = &dx[0, 0]
    with nogil:
        if real is float:
            st = pynn_dense_backward_f32(dxp, &dW[0, 0], &db[0], &delta[0, 0], &x[0, 0],
                                         &W[0, 0], n, n_in, n_out, alpha, n_threads)
        else:
            st = pynn_dense_backward_f64(dxp, &dW[0, 0], &db[0], &delta[0, 0], &x[0, 0],
                                         &W[0, 0], n, n_in, n_out, alpha, n_threads)
    _check(st, "dense_backward")


def sgd_update(real[::1] params not None, real[::1] velocity not None,
               const real[::1] grads not None, double lr, double momentum, bint nesterov):
    cdef pynn_status st
    cdef size_t size = params.shape[0]
    _same((velocity.shape[0],), (size,), "velocity")
    _same((grads.shape[0],), (size,), "grads")
    with nogil:
        if real is float:
            st = pynn_sgd_update_f32(&params[0], &velocity[0], &grads[0], size, lr, momentum, nesterov)
        else:
            st = pynn_sgd_update_f64(&params[0], &velocity[0], &grads[0], size, lr, momentum, nesterov)
    _check(st, "sgd_update")


def adam_update(real[::1] params not None, real[::1] m not None, real[::1] v not None,
                const real[::1] grads not None, double lr, double beta1, double beta2,
                double epsilon, uint64_t t):
    cdef pynn_status st
    cdef size_t size = params.shape[0]
    _same((m.shape[0],), (size,), "m")
    _same((v.shape[0],), (size,), "v")
    _same((grads.shape[0],), (size,), "grads")
    with nogil:
        if real is float:
            st = pynn_adam_update_f32(&params[0], &m[0], &v[0], &grads[0], size, lr, beta1,
                                      beta2, epsilon, t)
        else:
            st = pynn_adam_update_f64(&params[0], &m[0], &v[0], &grads[0], size, lr, beta1,
                                      beta2, epsilon, t)
    _check(st, "adam_update")


# ---- sparse input ----------------------------------------------------------------

cdef class CSR:
    """A CSR matrix as the core reads it: int64 indptr and indices, float32 or
    float64 data.  The constructor checks what the core trusts (offsets in
    order and in range, every column index below n_cols), copying an array
    only when its dtype or layout differs."""
    cdef readonly object indptr, indices, data
    cdef readonly Py_ssize_t n_rows, n_cols

    def __init__(self, indptr, indices, data, Py_ssize_t n_cols):
        indptr = np.require(indptr, dtype=np.int64, requirements=["C", "A"])
        indices = np.require(indices, dtype=np.int64, requirements=["C", "A"])
        if not (isinstance(data, np.ndarray) and data.dtype in (np.float32, np.float64)
                and data.ndim == 1 and data.flags.c_contiguous):
            raise TypeError("CSR data must be a C-contiguous 1-D float32 or float64 array")
        # (values at an odd byte offset, as a deserialised buffer can hold them:
        # copied, like indptr and indices above, so the core reads whole values)
        data = np.require(data, requirements=["A"])
        if indptr.ndim != 1 or indptr.shape[0] < 1 or indices.ndim != 1:
            raise ValueError("CSR indptr and indices must be 1-D, indptr non-empty")
        if indptr[0] != 0 or (indptr.shape[0] > 1 and (np.diff(indptr) < 0).any()):
            raise ValueError("CSR indptr must start at 0 and never decrease")
        nnz = int(indptr[indptr.shape[0] - 1])
        if nnz > indices.shape[0] or nnz > data.shape[0]:
            raise ValueError(f"CSR indptr ends at {nnz}, past the {indices.shape[0]} indices "
                             f"and {data.shape[0]} values")
        if nnz and (indices[:nnz].min() < 0 or indices[:nnz].max() >= n_cols):
            raise ValueError(f"CSR column indices must lie in [0, {n_cols})")
        if n_cols < 1:
            raise ValueError("a CSR matrix needs at least one column")
        self.indptr, self.indices, self.data = indptr, indices, data
        self.n_rows = indptr.shape[0] - 1
        self.n_cols = n_cols

    @property
    def shape(self):
        return (self.n_rows, self.n_cols)

    @property
    def dtype(self):
        return self.data.dtype


cdef const int64_t *_i64(object a) except? NULL:
    return <const int64_t*><size_t>a.ctypes.data


cdef const int64_t *_rows_ptr(object rows, Py_ssize_t n_rows, Py_ssize_t n) except? NULL:
    """Pointer to n row indices into a CSR of n_rows rows (None: NULL)."""
    if rows is None:
        return NULL
    if not (isinstance(rows, np.ndarray) and rows.dtype == np.int64 and rows.ndim == 1
            and rows.flags.c_contiguous and rows.shape[0] == n):
        raise TypeError(f"rows must be a C-contiguous int64 array of {n} row indices")
    if n and (rows.min() < 0 or rows.max() >= n_rows):
        raise ValueError(f"rows must lie in [0, {n_rows})")
    return _i64(rows)


def sparse_forward(real[:, ::1] out not None, CSR x not None, const real[:, ::1] W not None,
                   const real[::1] b not None, int act, int n_threads, rows=None):
    """out = act(x[rows] W + b) for the CSR x (rows None: every row)."""
    cdef pynn_status st
    cdef size_t n = out.shape[0], n_in = W.shape[0], n_out = W.shape[1]
    cdef const int64_t *rp
    _same((x.n_cols,), (n_in,), "x columns")
    _same((b.shape[0],), (n_out,), "b")
    _same((out.shape[1],), (n_out,), "out columns")
    if rows is None:
        _same((x.n_rows,), (n,), "x rows")
    rp = _rows_ptr(rows, x.n_rows, n)
    if x.data.itemsize != sizeof(real):
        raise TypeError("x.data must have the dtype of W")
    cdef const int64_t *ip = _i64(x.indptr)
    cdef const int64_t *ix = _i64(x.indices)
    cdef const void *xd = <const void*><size_t>x.data.ctypes.data
    with nogil:
        if real is float:
            st = pynn_sparse_forward_f32(&out[0, 0], ip, ix, <const float*>xd, rp, &W[0, 0],
                                         &b[0], n, n_in, n_out, <pynn_activation>act, n_threads)
        else:
            st = pynn_sparse_forward_f64(&out[0, 0], ip, ix, <const double*>xd, rp, &W[0, 0],
                                         &b[0], n, n_in, n_out, <pynn_activation>act, n_threads)
    _check(st, "sparse_forward")


def sparse_backward(real[:, ::1] dW not None, real[::1] db not None,
                    const real[:, ::1] delta not None, CSR x not None,
                    const real[:, ::1] W not None, double alpha, int n_threads, rows=None):
    """dW = x[rows]^T delta / n + alpha W / n and db = mean of delta's rows, in place."""
    cdef pynn_status st
    cdef size_t n = delta.shape[0], n_in = W.shape[0], n_out = W.shape[1]
    cdef const int64_t *rp
    _same((x.n_cols,), (n_in,), "x columns")
    _same((dW.shape[0], dW.shape[1]), (n_in, n_out), "dW")
    _same((db.shape[0],), (n_out,), "db")
    _same((delta.shape[1],), (n_out,), "delta columns")
    if rows is None:
        _same((x.n_rows,), (n,), "x rows")
    rp = _rows_ptr(rows, x.n_rows, n)
    if x.data.itemsize != sizeof(real):
        raise TypeError("x.data must have the dtype of W")
    cdef const int64_t *ip = _i64(x.indptr)
    cdef const int64_t *ix = _i64(x.indices)
    cdef const void *xd = <const void*><size_t>x.data.ctypes.data
    with nogil:
        if real is float:
            st = pynn_sparse_backward_f32(&dW[0, 0], &db[0], &delta[0, 0], ip, ix,
                                          <const float*>xd, rp, &W[0, 0], n, n_in, n_out,
                                          alpha, n_threads)
        else:
            st = pynn_sparse_backward_f64(&dW[0, 0], &db[0], &delta[0, 0], ip, ix,
                                          <const double*>xd, rp, &W[0, 0], n, n_in, n_out,
                                          alpha, n_threads)
    _check(st, "sparse_backward")


# ---- whole networks ------------------------------------------------------------

cdef class Net:
    """A network description (unit counts, activations, loss) for the core."""
    cdef pynn_net net
    cdef readonly object units      # np.intp array kept alive for net.units
    cdef readonly size_t n_params
    # (no negative indexing in this module: it is compiled with wraparound off)
    cdef readonly Py_ssize_t n_outputs

    def __init__(self, units, hidden, output, loss, bf16=False):
        cdef Py_ssize_t[::1] u
        self.units = np.ascontiguousarray(units, dtype=np.intp)
        if self.units.ndim != 1 or self.units.shape[0] < 2:
            raise ValueError("units must list at least an input and an output size")
        u = self.units
        self.net.n_layers = self.units.shape[0] - 1
        self.n_outputs = u[self.net.n_layers]
        self.net.units = &u[0]
        self.net.hidden = <pynn_activation><int>hidden
        self.net.output = <pynn_activation><int>output
        self.net.loss = <pynn_loss><int>loss
        self.net.bf16 = 1 if bf16 else 0
        _check(pynn_param_count(&self.n_params, &self.net), "network")

    def workspace_size(self, size_t batch):
        cdef size_t count
        _check(pynn_workspace_size(&count, &self.net, batch), "workspace")
        return count

    def workspace_size_csr(self, size_t batch):
        """Workspace of the entry points on CSR input, for batches of `batch` rows."""
        cdef size_t count
        _check(pynn_workspace_size_csr(&count, &self.net, batch), "workspace")
        return count

    def predict_workspace_size(self, size_t batch, bint csr=False):
        """Workspace per block of `batch` rows of predict (predict_csr with csr):
        a forward pass's part of workspace_size (workspace_size_csr)."""
        cdef size_t count
        if csr:
            _check(pynn_predict_workspace_size_csr(&count, &self.net, batch), "workspace")
        else:
            _check(pynn_predict_workspace_size(&count, &self.net, batch), "workspace")
        return count

    def predict_pack_size(self):
        """Scalars that predict and predict_csr may take past their blocks'
        workspaces to pack the weights once per call (the same bits)."""
        cdef size_t count
        _check(pynn_predict_pack_size(&count, &self.net), "workspace")
        return count

    def param_offsets(self):
        """(w_off, b_off): offsets, in scalars, of each W_l and b_l in the arena."""
        cdef size_t L = self.net.n_layers
        cdef size_t[::1] w = np.empty(L, dtype=np.uintp)
        cdef size_t[::1] b = np.empty(L, dtype=np.uintp)
        _check(pynn_param_offsets(&w[0], &b[0], &self.net), "network")
        return [int(v) for v in w], [int(v) for v in b]

    def _check_params(self, params):
        _same(tuple(params.shape), (self.n_params,), "params")

    def predict(self, real[:, ::1] out not None, const real[::1] params not None,
                const real[:, ::1] x not None, real[::1] ws not None, size_t batch,
                int n_threads):
        """out = network(x), computed in blocks of `batch` rows."""
        cdef pynn_status st
        cdef size_t n = x.shape[0]
        cdef size_t need = self.predict_workspace_size(batch)
        self._check_params(params)
        _same((x.shape[1],), (self.units[0],), "x columns")
        _same((out.shape[0], out.shape[1]), (n, self.n_outputs), "out")
        if <size_t>ws.shape[0] < need:
            raise ValueError("workspace too small")
        with nogil:
            if real is float:
                st = pynn_net_predict_f32(&out[0, 0], &self.net, &params[0], &x[0, 0], n,
                                          &ws[0], ws.shape[0], batch, n_threads)
            else:
                st = pynn_net_predict_f64(&out[0, 0], &self.net, &params[0], &x[0, 0], n,
                                          &ws[0], ws.shape[0], batch, n_threads)
        _check(st, "predict")

    def finite_bound(self, const real[::1] params not None, double xmax, double ymax,
                     double alpha, size_t n, int n_threads=1):
        """1 if loss_grad at params (no sample weights) is finite on any n rows
        whose inputs lie within +-xmax and targets within +-ymax, as bounds
        prove; 0 if they do not (run it to tell); -1 if params holds a NaN or
        infinity (one pass over params, a large W's on up to n_threads threads)."""
        cdef int r
        self._check_params(params)
        with nogil:
            if real is float:
                r = pynn_finite_bound_f32(&self.net, &params[0], xmax, ymax, alpha, n, n_threads)
            else:
                r = pynn_finite_bound_f64(&self.net, &params[0], xmax, ymax, alpha, n, n_threads)
        return r

    def loss_grad(self, real[::1] grads not None, const real[::1] params not None,
                  const real[:, ::1] x not None, const real[:, ::1] y not None,
                  double alpha, real[::1] ws not None, int n_threads,
                  const real[::1] sw=None):
        """Loss of (x, y) at params (rows weighted by sw unless None); writes the
        gradient of every parameter."""
        cdef pynn_status st
        cdef double out = 0
        cdef size_t n = x.shape[0]
        cdef const real *swp = NULL
        if sw is not None:
            _same((sw.shape[0],), (n,), "sample weights")
            swp = &sw[0]
        self._check_params(params)
        self._check_params(grads)
        _same((x.shape[1],), (self.units[0],), "x columns")
        _same((y.shape[0], y.shape[1]), (n, self.n_outputs), "y")
        if <size_t>ws.shape[0] < self.workspace_size(n):
            raise ValueError("workspace too small")
        with nogil:
            if real is float:
                st = pynn_net_loss_grad_f32(&out, &grads[0], &self.net, &params[0], &x[0, 0],
                                            &y[0, 0], swp, n, alpha, &ws[0], ws.shape[0],
                                            n_threads)
            else:
                st = pynn_net_loss_grad_f64(&out, &grads[0], &self.net, &params[0], &x[0, 0],
                                            &y[0, 0], swp, n, alpha, &ws[0], ws.shape[0],
                                            n_threads)
        _check(st, "loss_grad")
        return out

    def predict_csr(self, real[:, ::1] out not None, const real[::1] params not None,
                    CSR x not None, real[::1] ws not None, size_t batch, int n_threads):
        """out = network(x) for the CSR x, in blocks of `batch` rows."""
        cdef pynn_status st
        cdef size_t n = x.n_rows
        self._check_params(params)
        _same((x.n_cols,), (self.units[0],), "x columns")
        _same((out.shape[0], out.shape[1]), (n, self.n_outputs), "out")
        if x.data.itemsize != sizeof(real):
            raise TypeError("x.data must have the dtype of params")
        if <size_t>ws.shape[0] < self.predict_workspace_size(batch, True):
            raise ValueError("workspace too small")
        cdef const int64_t *ip = _i64(x.indptr)
        cdef const int64_t *ix = _i64(x.indices)
        cdef const void *xd = <const void*><size_t>x.data.ctypes.data
        with nogil:
            if real is float:
                st = pynn_net_predict_csr_f32(&out[0, 0], &self.net, &params[0], ip, ix,
                                              <const float*>xd, n, &ws[0], ws.shape[0], batch,
                                              n_threads)
            else:
                st = pynn_net_predict_csr_f64(&out[0, 0], &self.net, &params[0], ip, ix,
                                              <const double*>xd, n, &ws[0], ws.shape[0], batch,
                                              n_threads)
        _check(st, "predict")

    def loss_grad_csr(self, real[::1] grads not None, const real[::1] params not None,
                      CSR x not None, const real[:, ::1] y not None, double alpha,
                      real[::1] ws not None, int n_threads, const real[::1] sw=None):
        """loss_grad for the CSR x."""
        cdef pynn_status st
        cdef double out = 0
        cdef size_t n = x.n_rows
        cdef const real *swp = NULL
        if sw is not None:
            _same((sw.shape[0],), (n,), "sample weights")
            swp = &sw[0]
        self._check_params(params)
        self._check_params(grads)
        _same((x.n_cols,), (self.units[0],), "x columns")
        _same((y.shape[0], y.shape[1]), (n, self.n_outputs), "y")
        if x.data.itemsize != sizeof(real):
            raise TypeError("x.data must have the dtype of params")
        if <size_t>ws.shape[0] < self.workspace_size_csr(n):
            raise ValueError("workspace too small")
        cdef const int64_t *ip = _i64(x.indptr)
        cdef const int64_t *ix = _i64(x.indices)
        cdef const void *xd = <const void*><size_t>x.data.ctypes.data
        with nogil:
            if real is float:
                st = pynn_net_loss_grad_csr_f32(&out, &grads[0], &self.net, &params[0], ip, ix,
                                                <const float*>xd, &y[0, 0], swp, n, alpha,
                                                &ws[0], ws.shape[0], n_threads)
            else:
                st = pynn_net_loss_grad_csr_f64(&out, &grads[0], &self.net, &params[0], ip, ix,
                                                <const double*>xd, &y[0, 0], swp, n, alpha,
                                                &ws[0], ws.shape[0], n_threads)
        _check(st, "loss_grad")
        return out


cdef class Trainer:
    """The resumable step loop of one fit: holds the optimizer settings, the
    RNG/epoch state and references to every buffer the core writes into."""
    cdef Net net
    cdef pynn_optim opt
    cdef pynn_train_state state
    cdef object params, grads, opt_a, opt_b, x, y, sw, order, ws
    cdef bint f32
    cdef readonly size_t batch_size
    cdef public bint shuffle
    cdef public bint check_x
    cdef public bint velocity_at_epoch_end

    def __init__(self, Net net, params, grads, opt_a, opt_b, x, y, order, ws,
                 size_t batch_size, bint shuffle, uint64_t seed, sw=None):
        """x: a dense array, or a CSR (then ws is sized by workspace_size_csr).
        y: the (n, n_outputs) targets, or a 1-D int64 array of class labels
        (the core builds one-hot rows from them batch by batch; pynn.h)."""
        dtype = params.dtype
        if dtype not in (np.float32, np.float64):
            raise TypeError("params must be float32 or float64")
        self.f32 = dtype == np.float32
        n = x.shape[0]
        csr = isinstance(x, CSR)
        labels = isinstance(y, np.ndarray) and y.ndim == 1
        # opt_b (Adam's second moments) is None for SGD
        arrays = {"params": params, "grads": grads, "opt_a": opt_a, "opt_b": opt_b,
                  "x": x.data if csr else x, "ws": ws}
        if not labels:
            arrays["y"] = y
        for name, arr in arrays.items():
            if arr is None and name == "opt_b":
                continue
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or not arr.flags.c_contiguous:
                raise TypeError(f"{name} must be a C-contiguous {dtype} array")
        for name in ("params", "grads", "opt_a", "opt_b"):
            if arrays[name] is not None:
                net._check_params(arrays[name])
        _same(tuple(x.shape), (n, net.units[0]), "x")
        if labels:
            if y.dtype != np.int64 or not y.flags.c_contiguous or not y.flags.aligned:
                raise TypeError("labels must be a C-contiguous, aligned int64 array")
            _same(tuple(y.shape), (n,), "labels")
            top = net.n_outputs if net.n_outputs > 1 else 2
            if n and (y.min() < 0 or y.max() >= top):
                raise ValueError(f"labels must lie in [0, {top})")
        else:
            _same(tuple(y.shape), (n, net.n_outputs), "y")
        if sw is not None:
            if not (isinstance(sw, np.ndarray) and sw.dtype == dtype and sw.flags.c_contiguous):
                raise TypeError(f"sample weights must be a C-contiguous {dtype} array")
            _same(tuple(sw.shape), (n,), "sample weights")
        # (None: made by run() if shuffle is on, a fit in order needing none)
        if order is not None and not (isinstance(order, np.ndarray) and order.dtype == np.int64
                                      and order.flags.c_contiguous and order.shape == (n,)):
            raise TypeError("order must be None or a C-contiguous int64 array of one index "
                            "per row")
        if n == 0 or batch_size == 0:
            raise ValueError("need at least one row and a positive batch size")
        # no clamping here: the estimators clamp batch_size to n (with a warning)
        # and the core refuses batch_size > n
        self.batch_size = batch_size
        if ws.shape[0] < (net.workspace_size_csr if csr else net.workspace_size)(self.batch_size):
            raise ValueError("workspace too small")
        self.net = net
        self.params, self.grads, self.opt_a, self.opt_b = params, grads, opt_a, opt_b
        self.x, self.y, self.sw, self.order, self.ws = x, y, sw, order, ws
        self.shuffle = shuffle
        # True: dense x is checked for NaN and infinity batch by batch, as the
        # steps read it (run raises NonFiniteInputError, the batch's step not
        # taken, the steps before it taken); False: the caller checked x
        self.check_x = False
        self.velocity_at_epoch_end = False
        pynn_rng_seed(self.state.rng, seed)
        self.state.t = 0
        self.state.pos = 0
        self.state.loss_acc = 0

    def set_optimizer(self, solver, double learning_rate, double momentum, bint nesterov,
                      double beta1, double beta2, double epsilon, double alpha):
        self.opt.solver = <pynn_solver><int>solver
        self.opt.learning_rate = learning_rate
        self.opt.momentum = momentum
        self.opt.nesterov = nesterov
        self.opt.beta1 = beta1
        self.opt.beta2 = beta2
        self.opt.epsilon = epsilon
        self.opt.alpha = alpha

    @property
    def t(self):
        """Optimizer steps taken (Adam's time step)."""
        return self.state.t

    @t.setter
    def t(self, uint64_t value):
        self.state.t = value

    def run(self, size_t max_steps, int n_threads):
        """Run up to max_steps minibatch steps, stopping at the end of an epoch.
        Returns (steps_done, epoch_loss or None, diverged): diverged is True when
        a step's loss was NaN or infinite (that step made no update)."""
        cdef pynn_status st
        cdef pynn_train_result res
        cdef pynn_train_data_f32 d32
        cdef pynn_train_data_f64 d64
        cdef size_t n = self.x.shape[0]
        cdef size_t ws_len = self.ws.shape[0]
        cdef void *p = <void*><size_t>self.params.ctypes.data
        cdef void *g = <void*><size_t>self.grads.ctypes.data
        cdef void *a = <void*><size_t>self.opt_a.ctypes.data
        cdef void *b = NULL if self.opt_b is None else <void*><size_t>self.opt_b.ctypes.data
        cdef bint csr = isinstance(self.x, CSR)
        cdef void *x = NULL if csr else <void*><size_t>self.x.ctypes.data
        cdef const int64_t *xp = _i64(self.x.indptr) if csr else NULL
        cdef const int64_t *xi = _i64(self.x.indices) if csr else NULL
        cdef void *xd = <void*><size_t>self.x.data.ctypes.data if csr else NULL
        cdef bint labels = self.y.ndim == 1
        cdef void *y = NULL if labels else <void*><size_t>self.y.ctypes.data
        cdef const int64_t *lab = <const int64_t*><size_t>self.y.ctypes.data if labels else NULL
        cdef void *sw = NULL if self.sw is None else <void*><size_t>self.sw.ctypes.data
        cdef void *w = <void*><size_t>self.ws.ctypes.data
        if self.shuffle and self.order is None:
            self.order = np.arange(n, dtype=np.int64)
        cdef int64_t *o = NULL if self.order is None else <int64_t*><size_t>self.order.ctypes.data
        if self.f32:
            d32.params, d32.grads, d32.opt_a, d32.opt_b = <float*>p, <float*>g, <float*>a, <float*>b
            d32.x, d32.y, d32.sw = <const float*>x, <const float*>y, <const float*>sw
            d32.labels = lab
            d32.n, d32.order, d32.shuffle, d32.batch_size = n, o, self.shuffle, self.batch_size
            d32.ws, d32.ws_len = <float*>w, ws_len
            d32.x_indptr, d32.x_indices, d32.x_data = xp, xi, <const float*>xd
            d32.check_x = self.check_x
            d32.velocity_at_epoch_end = self.velocity_at_epoch_end
        else:
            d64.params, d64.grads, d64.opt_a, d64.opt_b = <double*>p, <double*>g, <double*>a, <double*>b
            d64.x, d64.y, d64.sw = <const double*>x, <const double*>y, <const double*>sw
            d64.labels = lab
            d64.n, d64.order, d64.shuffle, d64.batch_size = n, o, self.shuffle, self.batch_size
            d64.ws, d64.ws_len = <double*>w, ws_len
            d64.x_indptr, d64.x_indices, d64.x_data = xp, xi, <const double*>xd
            d64.check_x = self.check_x
            d64.velocity_at_epoch_end = self.velocity_at_epoch_end
        with nogil:
            if self.f32:
                st = pynn_train_f32(&res, &self.state, &self.net.net, &self.opt, &d32, max_steps,
                                    n_threads)
            else:
                st = pynn_train_f64(&res, &self.state, &self.net.net, &self.opt, &d64, max_steps,
                                    n_threads)
        steps = res.steps_done
        if st == PYNN_ERR_NONFINITE:
            # the step loop stopped before updating with a NaN/inf loss
            return steps, None, True
        _check(st, "training")
        return steps, (res.epoch_loss if res.epoch_done else None), False


#: Most weight layers a network may have (hidden layers + 1).
MAX_LAYERS = PYNN_MAX_LAYERS


# ---- private: product-level timing hook for bench/products.py ----------------
# One matrix product of a training step exactly as dense.c sets it up (same
# strides, epilogue and packing room), run `number` times per timing, best of
# `repeat` timings; returns the best seconds per call.  Not part of the API.
from libc.string cimport memset

cdef extern from "internal.h" nogil:
    ctypedef struct pynn_gemm_args_f32:
        size_t m, n, k
        const float *a
        Py_ssize_t a_rs, a_cs
        const float *b
        Py_ssize_t ldb
        int b_trans
        float *c
        Py_ssize_t ldc
        int epi, act
        const float *bias
        float scale, wscale
        const float *w
        Py_ssize_t ldw
        const float *da
        Py_ssize_t ldda
        float *apack
        size_t apack_len
        float *bwhole
        size_t bwhole_len
        int n_threads
        int bf16
    ctypedef struct pynn_gemm_args_f64:
        size_t m, n, k
        const double *a
        Py_ssize_t a_rs, a_cs
        const double *b
        Py_ssize_t ldb
        int b_trans
        double *c
        Py_ssize_t ldc
        int epi, act
        const double *bias
        double scale, wscale
        const double *w
        Py_ssize_t ldw
        const double *da
        Py_ssize_t ldda
        double *apack
        size_t apack_len
        double *bwhole
        size_t bwhole_len
        int n_threads
        int bf16
    void pynn__gemm_f32(const pynn_gemm_args_f32 *g)
    void pynn__gemm_f64(const pynn_gemm_args_f64 *g)
    int pynn__net_threads(const pynn_net *net, size_t rows, int n_threads)


def _net_threads(Net net, size_t rows, int n_threads):
    """The threads a training step of `rows` rows runs on when n_threads are
    asked for (1: the network is too small for a team).  Not part of the API."""
    return pynn__net_threads(&net.net, rows, n_threads)


def _product_time(int kind, real[:, ::1] c not None, const real[:, ::1] a not None,
                  const real[:, ::1] b not None, const real[::1] aux, real[::1] apack,
                  int act, double alpha, int number, int repeat, int n_threads,
                  bint cpu_time=False, bint bf16=False, real[::1] bwhole=None):
    """kind 0: c = act(a @ b + aux)              forward, a = x (n, n_in), b = W
       kind 1: c = a^T @ b / n + alpha/n * aux  weight gradient, a = x, b = delta,
                                                 aux = W (flattened)
       kind 2: c = (a @ b^T) * act'(aux)         input gradient, a = delta, b = W,
                                                 aux = the layer input (flattened)
                                                 or None (plain product)
    apack: packing room (None: none), as the training workspace gives;
    bwhole: room to pack B whole (None: none), as the workspace gives the
    weight gradients.
    cpu_time: time with this thread's CPU clock (one thread only: not counting
    the time the thread waited for the core), else with the monotonic clock.
    bf16: the bfloat16 mode's product (float only)."""
    cdef pynn_gemm_args_f32 g32
    cdef pynn_gemm_args_f64 g64
    cdef size_t m, n, k
    cdef Py_ssize_t a_rs, a_cs, ldb
    cdef int b_trans = 0, epi
    cdef double scale = 0, wscale = 0
    cdef size_t apl = 0 if apack is None else <size_t>apack.shape[0]
    cdef const real *auxp = NULL
    if aux is not None:
        auxp = &aux[0]
    cdef real *app = NULL if apack is None else &apack[0]
    cdef size_t bwl = 0 if bwhole is None else <size_t>bwhole.shape[0]
    cdef real *bwp = NULL if bwhole is None else &bwhole[0]
    cdef double best = 1e300, dt, t0
    cdef int i, r
    import time
    clock = time.thread_time if cpu_time else time.perf_counter  # (every platform)
    if kind == 0:
        m, k, n = a.shape[0], a.shape[1], b.shape[1]
        _same((b.shape[0],), (k,), "b")
        a_rs, a_cs, ldb, epi = <Py_ssize_t>k, 1, <Py_ssize_t>n, 1
        if aux is None or <size_t>aux.shape[0] != n:
            raise ValueError("bias")
    elif kind == 1:
        k, m, n = a.shape[0], a.shape[1], b.shape[1]
        _same((b.shape[0],), (k,), "b")
        a_rs, a_cs, ldb, epi = 1, <Py_ssize_t>m, <Py_ssize_t>n, 2
        scale, wscale = 1.0 / <double>k, alpha / <double>k
        if aux is None or <size_t>aux.shape[0] != m * n:
            raise ValueError("W")
    elif kind == 2:
        m, k, n = a.shape[0], a.shape[1], b.shape[0]
        _same((b.shape[1],), (k,), "b")
        a_rs, a_cs, ldb, b_trans = <Py_ssize_t>k, 1, <Py_ssize_t>k, 1
        epi = 0 if aux is None else 3
        if aux is not None and <size_t>aux.shape[0] != m * n:
            raise ValueError("da")
    else:
        raise ValueError("kind")
    _same((c.shape[0], c.shape[1]), (m, n), "c")
    if number < 1 or repeat < 1:
        raise ValueError("number, repeat")
    if bf16 and real is not float:
        raise ValueError("bf16 needs float32 operands")
    # every field zero first (a field this declaration does not list included)
    memset(&g32, 0, sizeof(g32))
    memset(&g64, 0, sizeof(g64))
    if real is float:
        g32.m, g32.n, g32.k = m, n, k
        g32.a, g32.a_rs, g32.a_cs = &a[0, 0], a_rs, a_cs
        g32.b, g32.ldb, g32.b_trans = &b[0, 0], ldb, b_trans
        g32.c, g32.ldc = &c[0, 0], <Py_ssize_t>n
        g32.epi, g32.act = epi, act
        g32.bias = auxp if kind == 0 else NULL
        g32.scale, g32.wscale = <float>scale, <float>wscale
        g32.w, g32.ldw = (auxp if kind == 1 else NULL), <Py_ssize_t>n
        g32.da, g32.ldda = (auxp if kind == 2 else NULL), <Py_ssize_t>n
        g32.apack, g32.apack_len = app, apl
        g32.bwhole, g32.bwhole_len = bwp, bwl
        g32.n_threads = n_threads
        g32.bf16 = 1 if bf16 else 0
    else:
        g64.m, g64.n, g64.k = m, n, k
        g64.a, g64.a_rs, g64.a_cs = &a[0, 0], a_rs, a_cs
        g64.b, g64.ldb, g64.b_trans = &b[0, 0], ldb, b_trans
        g64.c, g64.ldc = &c[0, 0], <Py_ssize_t>n
        g64.epi, g64.act = epi, act
        g64.bias = auxp if kind == 0 else NULL
        g64.scale, g64.wscale = scale, wscale
        g64.w, g64.ldw = (auxp if kind == 1 else NULL), <Py_ssize_t>n
        g64.da, g64.ldda = (auxp if kind == 2 else NULL), <Py_ssize_t>n
        g64.apack, g64.apack_len = app, apl
        g64.bwhole, g64.bwhole_len = bwp, bwl
        g64.n_threads = n_threads
    for r in range(repeat):
        t0 = clock()
        with nogil:
            for i in range(number):
                if real is float:
                    pynn__gemm_f32(&g32)
                else:
                    pynn__gemm_f64(&g64)
        dt = (clock() - t0) / number
        if dt < best:
            best = dt
    return best

/*
 * vexp_rows.h -- the softmax and logistic row kernels of vexp_avx2.c, written
 * once and included once per type with its vocabulary: ST (scalar), VT
 * (vector of VL lanes), VEXP_NAME(name) (name_f32, name_f64), the V_* vector
 * operations, V_LANES(count) (a mask of the first count lanes),
 * V_STORE_LANES(p, v, count), V_HMAX / V_HSUM (v's largest lane / pairwise
 * sum), V_EXP (exp lane by lane), V_EXPU(v, U) (exp of the U vectors v[0..U)
 * side by side; the softmax takes EXP_U), S_EXP and S_FABS (one value).
 */

/* a = softmax(a) row by row, max-subtracted: exp never sees a positive argument.
 * In three passes over the n rows, so that the exponentials of many rows are in
 * flight at once (row by row, each row waited on its maximum before its exp
 * and on its sum before its scaling: a chain of over a hundred cycles a row):
 * (1) each row minus its maximum, in place; (2) exp of the n m values as one
 * array, in full vectors (lanes are independent: the bits do not depend on
 * where a value falls in a vector); (3) each row's sum, the full vectors' lanes
 * added pairwise, then the tail's (m % VL) one by one, and the row times its
 * inverse.  The same operations on the same values as row by row. */
void VEXP_NAME(pynn_softmax_avx2)(ST *a, size_t n, size_t m)
{
    const size_t full = m / VL * VL, tail = m - full;
    const __m256i tmask = V_LANES(tail);
    const VT ninf = V_SET1(-INFINITY);
    for (size_t r = 0; r < n; r++) {
        ST *row = a + r * m;
        /* the maximum: exact whatever the order (a NaN makes the row NaN below) */
        VT vmx = ninf, t = ninf;
        for (size_t j = 0; j < full; j += VL)
            vmx = V_MAX(vmx, V_LOADU(row + j));
        if (tail) {
            t = V_MASKLOAD(row + full, tmask);
            vmx = V_MAX(vmx, V_BLENDV(ninf, t, V_CASTMASK(tmask)));
        }
        vmx = V_SET1(V_HMAX(vmx));
        for (size_t j = 0; j < full; j += VL)
            V_STOREU(row + j, V_SUB(V_LOADU(row + j), vmx));
        if (tail)
            V_STORE_LANES(row + full, V_SUB(t, vmx), tail);
    }
    const size_t nm = n * m, nfull = nm / VL * VL;
    size_t i = 0;
    for (; i + EXP_U * VL <= nfull; i += EXP_U * VL) {
        VT v[EXP_U];
PYNN_UNROLL16
        for (int u = 0; u < EXP_U; u++)
            v[u] = V_LOADU(a + i + (size_t)u * VL);
        V_EXPU(v, EXP_U);
PYNN_UNROLL16
        for (int u = 0; u < EXP_U; u++)
            V_STOREU(a + i + (size_t)u * VL, v[u]);
    }
    for (; i < nfull; i += VL)
        V_STOREU(a + i, V_EXP(V_LOADU(a + i)));
    if (nm > nfull)
        V_STORE_LANES(a + nfull, V_EXP(V_MASKLOAD(a + nfull, V_LANES(nm - nfull))),
                      nm - nfull);
    for (size_t r = 0; r < n; r++) {
        ST *row = a + r * m;
        VT vs = V_ZERO();
        for (size_t j = 0; j < full; j += VL)
            vs = V_ADD(vs, V_LOADU(row + j));
        ST s = V_HSUM(vs);
        for (size_t k = 0; k < tail; k++)
            s += row[full + k];
        VT inv = V_SET1((ST)1 / s);
        for (size_t j = 0; j < full; j += VL)
            V_STOREU(row + j, V_MUL(V_LOADU(row + j), inv));
        if (tail)
            V_STORE_LANES(row + full, V_MUL(V_MASKLOAD(row + full, tmask), inv), tail);
    }
}

/* a = 1 / (1 + exp(-a)), written so exp only sees non-positive arguments. */
void VEXP_NAME(pynn_logistic_avx2)(ST *a, size_t count)
{
    const VT one = V_SET1((ST)1), zero = V_ZERO(), sign = V_SET1((ST)-0.0);
    size_t i = 0;
    for (; i + VL <= count; i += VL) {
        VT z = V_LOADU(a + i);
        VT e = V_EXP(V_OR(z, sign)); /* exp(-|z|) */
        VT pos = V_DIV(one, V_ADD(one, e));
        VT neg = V_DIV(e, V_ADD(one, e));
        V_STOREU(a + i, V_BLENDV(neg, pos, V_CMPGE(z, zero)));
    }
    for (; i < count; i++) {
        ST e = S_EXP(-S_FABS(a[i]));
        a[i] = a[i] >= 0 ? (ST)1 / ((ST)1 + e) : e / ((ST)1 + e);
    }
}

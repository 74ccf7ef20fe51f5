/* driver_typed.h -- driver.c's cases for one element type (T, SFX(name) and
 * TNAME are set by driver.c, which includes this once per type). */

static void SFX(fill)(T *a, size_t n, uint64_t rng[4], double scale)
{
    for (size_t i = 0; i < n; i++)
        a[i] = (T)(uniform(rng) * scale);
}

static void SFX(print)(const char *kind, const char *name, const T *a, size_t n,
                       const double *extra, size_t n_extra)
{
    printf("%s %s_%s", kind, name, TNAME);
    print_values(extra, n_extra);
    for (size_t i = 0; i < n; i++)
        printf(" %a", (double)a[i]);
    printf("\n");
}

/* A training run: `epochs` epochs of minibatch steps on n random rows (CSR
 * rows with about 30% non-zeros when sparse), then a prediction of every row;
 * prints the epoch losses, the parameters and the predictions.  Training twice,
 * on 1 and on n_threads threads, must give the same bits. */
static void SFX(train_case)(const char *kind, const char *name, const pynn_net *net,
                            const pynn_optim *opt, size_t n, size_t batch, int shuffle,
                            int sparse, int weighted, int epochs, int n_threads)
{
    size_t np, ws_len;
    const size_t nin = (size_t)net->units[0], nout = (size_t)net->units[net->n_layers];
    CHECK(pynn_param_count(&np, net));
    if (sparse)
        CHECK(pynn_workspace_size_csr(&ws_len, net, batch));
    else
        CHECK(pynn_workspace_size(&ws_len, net, batch));
    uint64_t rng[4];
    pynn_rng_seed(rng, 2024);
    T *x = xcalloc(n * nin, sizeof(T)), *y = xcalloc(n * nout, sizeof(T));
    T *sw = xcalloc(n, sizeof(T)), *init = xcalloc(np, sizeof(T));
    SFX(fill)(x, n * nin, rng, 1.0);
    if (net->output == PYNN_ACT_SOFTMAX || net->output == PYNN_ACT_LOGISTIC) {
        for (size_t i = 0; i < n; i++)
            y[i * nout + pynn_rng_bounded(rng, nout)] = 1;
    } else {
        SFX(fill)(y, n * nout, rng, 1.0);
    }
    for (size_t i = 0; i < n; i++)
        sw[i] = (T)(1 + pynn_rng_bounded(rng, 3)); /* 1, 2 or 3 */
    SFX(fill)(init, np, rng, 0.5);
    /* CSR form of x with about 70% of its entries dropped */
    int64_t *indptr = xcalloc(n + 1, sizeof(int64_t)), *indices = xcalloc(n * nin, sizeof(int64_t));
    T *data = xcalloc(n * nin, sizeof(T));
    size_t nnz = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < nin; j++)
            if (pynn_rng_bounded(rng, 10) < 3) {
                indices[nnz] = (int64_t)j;
                data[nnz++] = x[i * nin + j];
            }
        indptr[i + 1] = (int64_t)nnz;
    }

    T *params[2], *out[2];
    double losses[2][16];
    for (int run = 0; run < 2; run++) {
        int nt = run ? n_threads : 1;
        T *p = params[run] = xcalloc(np, sizeof(T));
        memcpy(p, init, np * sizeof(T));
        T *grads = xcalloc(np, sizeof(T)), *opt_a = xcalloc(np, sizeof(T));
        T *opt_b = xcalloc(np, sizeof(T)), *ws = xcalloc(ws_len, sizeof(T));
        int64_t *order = xcalloc(n, sizeof(int64_t));
        for (size_t i = 0; i < n; i++)
            order[i] = (int64_t)i;
        SFX(pynn_train_data) d;
        memset(&d, 0, sizeof d);
        d.params = p; d.grads = grads; d.opt_a = opt_a;
        d.opt_b = opt->solver == PYNN_SOLVER_ADAM ? opt_b : NULL;
        d.x = sparse ? NULL : x; d.y = y; d.sw = weighted ? sw : NULL; d.n = n;
        d.order = order; d.shuffle = shuffle; d.batch_size = batch; d.ws = ws;
        d.ws_len = ws_len;
        d.x_indptr = sparse ? indptr : NULL;
        d.x_indices = sparse ? indices : NULL;
        d.x_data = sparse ? data : NULL;
        pynn_train_state state;
        memset(&state, 0, sizeof state);
        pynn_rng_seed(state.rng, 7);
        for (int e = 0; e < epochs && e < 16; e++) {
            pynn_train_result res;
            do
                CHECK(SFX(pynn_train)(&res, &state, net, opt, &d, (size_t)-1, nt));
            while (!res.epoch_done);
            losses[run][e] = res.epoch_loss;
        }
        /* predict in blocks of 7 rows, two blocks at a time */
        size_t pws;
        if (sparse)
            CHECK(pynn_workspace_size_csr(&pws, net, 7));
        else
            CHECK(pynn_workspace_size(&pws, net, 7));
        T *pw = xcalloc(2 * pws, sizeof(T));
        out[run] = xcalloc(n * nout, sizeof(T));
        if (sparse)
            CHECK(SFX(pynn_net_predict_csr)(out[run], net, p, indptr, indices, data, n, pw,
                                            2 * pws, 7, nt));
        else
            CHECK(SFX(pynn_net_predict)(out[run], net, p, x, n, pw, 2 * pws, 7, nt));
        free(grads); free(opt_a); free(opt_b); free(ws); free(order); free(pw);
    }
    EXPECT(memcmp(params[0], params[1], np * sizeof(T)) == 0);
    EXPECT(memcmp(out[0], out[1], n * nout * sizeof(T)) == 0);
    EXPECT(memcmp(losses[0], losses[1], (size_t)epochs * sizeof(double)) == 0);
    SFX(print)(kind, name, params[0], np, losses[0], (size_t)epochs);
    char pname[64];
    snprintf(pname, sizeof pname, "%s_predict", name);
    SFX(print)(kind, pname, out[0], n * nout, NULL, 0);
    free(params[0]); free(params[1]); free(out[0]); free(out[1]);
    free(x); free(y); free(sw); free(init); free(indptr); free(indices); free(data);
}

/* The kernels on their own, at sizes where the product is split among threads
 * (and where it is not): dense forward and backward, odd shapes. */
static void SFX(kernel_case)(void)
{
    const size_t m = 64, k = 600, nn = 129; /* 5M multiply-adds: threaded */
    uint64_t rng[4];
    pynn_rng_seed(rng, 99);
    T *x = xcalloc(m * k, sizeof(T)), *W = xcalloc(k * nn, sizeof(T)), *b = xcalloc(nn, sizeof(T));
    T *out1 = xcalloc(m * nn, sizeof(T)), *out2 = xcalloc(m * nn, sizeof(T));
    T *dx = xcalloc(m * k, sizeof(T)), *dW = xcalloc(k * nn, sizeof(T)), *db = xcalloc(nn, sizeof(T));
    T *dx2 = xcalloc(m * k, sizeof(T)), *dW2 = xcalloc(k * nn, sizeof(T)), *db2 = xcalloc(nn, sizeof(T));
    SFX(fill)(x, m * k, rng, 1.0);
    SFX(fill)(W, k * nn, rng, 0.05);
    SFX(fill)(b, nn, rng, 1.0);
    CHECK(SFX(pynn_dense_forward)(out1, x, W, b, m, k, nn, PYNN_ACT_RELU, 1));
    CHECK(SFX(pynn_dense_forward)(out2, x, W, b, m, k, nn, PYNN_ACT_RELU, 2));
    EXPECT(memcmp(out1, out2, m * nn * sizeof(T)) == 0);
    CHECK(SFX(pynn_dense_backward)(dx, dW, db, out1, x, W, m, k, nn, 0.3, 1));
    CHECK(SFX(pynn_dense_backward)(dx2, dW2, db2, out1, x, W, m, k, nn, 0.3, 2));
    EXPECT(memcmp(dx, dx2, m * k * sizeof(T)) == 0);
    EXPECT(memcmp(dW, dW2, k * nn * sizeof(T)) == 0);
    /* a row alone gives the bits it gets inside the batch */
    CHECK(SFX(pynn_dense_forward)(out2, x + 5 * k, W, b, 1, k, nn, PYNN_ACT_RELU, 1));
    EXPECT(memcmp(out1 + 5 * nn, out2, nn * sizeof(T)) == 0);
    SFX(print)("exact", "dense_forward", out1, m * nn, NULL, 0);
    SFX(print)("exact", "dense_backward_dx", dx, m * k, NULL, 0);
    SFX(print)("exact", "dense_backward_dW", dW, k * nn, NULL, 0);
    SFX(print)("exact", "dense_backward_db", db, nn, NULL, 0);
    /* the activations through libm */
    const pynn_activation acts[] = {PYNN_ACT_LOGISTIC, PYNN_ACT_TANH, PYNN_ACT_SOFTMAX,
                                    PYNN_ACT_EXP};
    const char *names[] = {"logistic", "tanh", "softmax", "exp"};
    for (int a = 0; a < 4; a++) {
        memcpy(out2, out1, m * nn * sizeof(T));
        for (size_t i = 0; i < m * nn; i++)
            out2[i] = out2[i] * (T)0.25 - (T)1; /* some negative, none huge */
        CHECK(SFX(pynn_activate)(out2, m, nn, acts[a]));
        SFX(print)("libm", names[a], out2, 40, NULL, 0);
    }
    free(x); free(W); free(b); free(out1); free(out2); free(dx); free(dW); free(db);
    free(dx2); free(dW2); free(db2);
}

static void SFX(cases)(void)
{
    ptrdiff_t reg[] = {9, 13, 6, 2};
    ptrdiff_t clf[] = {9, 11, 4};
    ptrdiff_t wide[] = {300, 128, 3};
    pynn_net relu = {3, reg, PYNN_ACT_RELU, PYNN_ACT_IDENTITY, PYNN_LOSS_HALF_SQUARED, 0};
    pynn_net tanh_net = {3, reg, PYNN_ACT_TANH, PYNN_ACT_IDENTITY, PYNN_LOSS_HALF_SQUARED, 0};
    pynn_net soft = {2, clf, PYNN_ACT_LOGISTIC, PYNN_ACT_SOFTMAX, PYNN_LOSS_CATEGORICAL_CE, 0};
    pynn_net bce = {2, clf, PYNN_ACT_RELU, PYNN_ACT_LOGISTIC, PYNN_LOSS_BINARY_CE, 0};
    pynn_net big = {2, wide, PYNN_ACT_RELU, PYNN_ACT_IDENTITY, PYNN_LOSS_HALF_SQUARED, 0};
    pynn_optim sgd = {PYNN_SOLVER_SGD, 0.01, 0.9, 1, 0.9, 0.999, 1e-8, 1e-3};
    pynn_optim plain = {PYNN_SOLVER_SGD, 0.05, 0.0, 0, 0.9, 0.999, 1e-8, 0.0};
    pynn_optim adam = {PYNN_SOLVER_ADAM, 0.01, 0.9, 0, 0.9, 0.999, 1e-8, 1e-4};
    SFX(train_case)("exact", "relu_nesterov", &relu, &sgd, 50, 8, 1, 0, 0, 3, 2);
    SFX(train_case)("exact", "relu_plain_sgd_weighted", &relu, &plain, 50, 16, 0, 0, 1, 2, 2);
    SFX(train_case)("exact", "relu_sparse_nesterov", &relu, &sgd, 50, 8, 1, 1, 0, 3, 2);
    SFX(train_case)("exact", "relu_big_nesterov", &big, &sgd, 128, 64, 1, 0, 0, 2, 2);
    SFX(train_case)("libm", "relu_adam", &relu, &adam, 50, 8, 1, 0, 1, 3, 2);
    SFX(train_case)("libm", "tanh_nesterov", &tanh_net, &sgd, 50, 8, 1, 0, 0, 3, 2);
    SFX(train_case)("libm", "softmax_adam", &soft, &adam, 50, 10, 1, 0, 0, 3, 2);
    SFX(train_case)("libm", "bce_sparse_adam", &bce, &adam, 50, 10, 1, 1, 1, 3, 2);
    SFX(kernel_case)();
}

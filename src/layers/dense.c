/* dense: fully connected layer on a flat input, with an optional fused activation.
 *   spec:   dense UNITS [relu|sigmoid|tanh|softmax|linear]
 *   kernel: (IN, UNITS), the Keras layout. */
#include "layers/layer.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

typedef struct dense_cfg {
    int units;
} dense_cfg;
DN_LAYER_CFG_FITS(dense_cfg);

static dn_status dense_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    dense_cfg *cfg = DN_LAYER_CFG(L, dense_cfg);
    if (a->argc < 1 || dn_parse_int(a->argv[0], &cfg->units))
        return dn_fail(err, DN_EFORMAT, "%s: dense needs a positive number of units, e.g. 'dense 128 relu'", a->where);
    for (int i = 1; i < a->argc; i++) {
        int act = dn_activation_lookup(a->argv[i]);
        if (act < 0)
            return dn_fail(err, DN_EFORMAT, "%s: dense: unknown option '%s' (expected an activation: relu, sigmoid, tanh, softmax, linear)",
                           a->where, a->argv[i]);
        L->act = (dn_activation)act;
    }
    return DN_OK;
}

static void dense_print(const dn_layer *L, char *buf, size_t size)
{
    const dense_cfg *cfg = (const dense_cfg *)(const void *)L->cfg.bytes;
    if (L->act != DN_ACT_NONE)
        snprintf(buf, size, "dense %d %s", cfg->units, dn_activation_name(L->act));
    else
        snprintf(buf, size, "dense %d", cfg->units);
}

static dn_status dense_shape(dn_layer *L, const char *where, dn_error *err)
{
    const dense_cfg *cfg = DN_LAYER_CFG(L, dense_cfg);
    if (L->in.h != 1 || L->in.w != 1)
        return dn_fail(err, DN_ESHAPE, "%s: dense needs a flat input but gets %dx%dx%d; add a 'flatten' line before it",
                       where, L->in.h, L->in.w, L->in.c);
    L->out = (dn_shape){1, 1, cfg->units};
    L->n_params = (size_t)L->in.c * cfg->units + cfg->units;
    L->scratch_fixed = (size_t)L->in.c * cfg->units; /* the transposed kernel (begin_backward) */
    return DN_OK;
}

static void dense_init(dn_layer *L, dn_rng *rng)
{
    const dense_cfg *cfg = DN_LAYER_CFG(L, dense_cfg);
    size_t nw = (size_t)L->in.c * cfg->units;
    dn_glorot_uniform(L->params, nw, L->in.c, cfg->units, rng);
    memset(L->params + nw, 0, sizeof(float) * (size_t)cfg->units);
}

/* The forward pass is a matrix product whose rows are computed one by one (kernels.h): the same
 * bits for any number of rows, so the layer can run row by row (dn_rows) and on any threads. */
#define FORWARD_ROWS 16            /* rows per thread's share: the product and then its activation */
#define FORWARD_PARALLEL 250000.0 /* multiply-adds below which one thread does it all */

static void dense_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first, (void)training;
    const int I = L->in.c, O = DN_LAYER_CFG(L, dense_cfg)->units;
    const float *bias = L->params + (size_t)I * O;
    const int fused_relu = L->act == DN_ACT_RELU, act = !fused_relu && L->act != DN_ACT_NONE;
    const int blocks = (n + FORWARD_ROWS - 1) / FORWARD_ROWS;
    /* Each thread applies the activation (sigmoid: an exponential per element) to its own rows while they
     * are in cache, instead of one thread for the whole batch after the product. Inside the team
     * dn_matmul runs on the calling thread (DN_PARALLEL_FOR). out (n, O) */
    DN_PARALLEL_FOR(blocks > 1 && (double)n * I * O > FORWARD_PARALLEL, for (int blk = 0; blk < blocks; blk++) {
        const int r0 = blk * FORWARD_ROWS, rows = n - r0 < FORWARD_ROWS ? n - r0 : FORWARD_ROWS;
        dn_matmul(rows, I, O, in + (size_t)r0 * I, L->params, bias, fused_relu, out + (size_t)r0 * O);
        if (act)
            dn_activation_forward(L->act, out + (size_t)r0 * O, (size_t)rows, (size_t)O);
    });
}

/* The kernel transposed, (O, I): d(input) = dout kernel^T is then a plain product. */
static void dense_begin_backward(dn_layer *L)
{
    dn_transpose(L->in.c, DN_LAYER_CFG(L, dense_cfg)->units, L->params, L->scratch);
}

static void dense_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)first;
    const int I = L->in.c, O = DN_LAYER_CFG(L, dense_cfg)->units;
    float *dbias = grads + (size_t)I * O;
    dn_activation_backward_bias(L->act, L->fused_loss, out, dout, (size_t)n, (size_t)O, dbias);
    dn_matmul_tn_add(n, I, O, in, dout, grads); /* dW (I, O) += in^T dout */
    if (din)
        dn_matmul(n, O, I, dout, L->scratch, NULL, 0, din); /* din (n, I) = dout kernel^T */
}

static int dense_tensors(const dn_layer *L, const char **names, int dims[][4], int *ndim, int max)
{
    if (max < 2)
        return 2;
    names[0] = "kernel";
    ndim[0] = 2;
    dims[0][0] = L->in.c, dims[0][1] = L->out.c;
    names[1] = "bias";
    ndim[1] = 1;
    dims[1][0] = L->out.c;
    return 2;
}

const dn_layer_ops dn_dense_ops = {
    .name = "dense",
    .flat_output = 1,
    .rows = DN_ROWS_EACH_INFERENCE, /* training: its gradients are matrix products, faster on the whole batch */
    .parse = dense_parse,
    .print = dense_print,
    .shape = dense_shape,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .begin_backward = dense_begin_backward,
    .tensors = dense_tensors,
};

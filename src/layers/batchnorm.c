/* batchnorm: batch normalisation over the channel (last) axis, Keras BatchNormalization defaults:
 * momentum 0.99, epsilon 1e-3, gamma = 1, beta = 0, moving mean 0, moving variance 1.
 * Training normalises with the batch statistics and updates the moving ones; inference uses the
 * moving statistics. gamma and beta are trained; the moving statistics are non-trainable buffers.
 *   spec: batchnorm [momentum=M] [epsilon=E] */
#include "layers/layer.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct batchnorm_cfg {
    float momentum, epsilon;
} batchnorm_cfg;
DN_LAYER_CFG_FITS(batchnorm_cfg);

static dn_status batchnorm_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    batchnorm_cfg *cfg = DN_LAYER_CFG(L, batchnorm_cfg);
    cfg->momentum = 0.99f;
    cfg->epsilon = 1e-3f;
    for (int i = 0; i < a->argc; i++) {
        const char *t = a->argv[i];
        if (strncmp(t, "momentum=", 9) == 0 && !dn_parse_float(t + 9, &cfg->momentum) && cfg->momentum >= 0.0f &&
            cfg->momentum < 1.0f)
            continue;
        if (strncmp(t, "epsilon=", 8) == 0 && !dn_parse_float(t + 8, &cfg->epsilon) && cfg->epsilon > 0.0f)
            continue;
        return dn_fail(err, DN_EFORMAT, "%s: batchnorm: bad option '%s' (expected momentum=M in [0,1) or epsilon=E > 0)",
                       a->where, t);
    }
    return DN_OK;
}

static void batchnorm_print(const dn_layer *L, char *buf, size_t size)
{
    const batchnorm_cfg *cfg = (const batchnorm_cfg *)(const void *)L->cfg.bytes;
    snprintf(buf, size, "batchnorm momentum=%g epsilon=%g", (double)cfg->momentum, (double)cfg->epsilon);
}

static dn_status batchnorm_shape(dn_layer *L, const char *where, dn_error *err)
{
    (void)where, (void)err;
    L->out = L->in;
    L->n_params = 2 * (size_t)L->in.c;  /* gamma, beta */
    L->n_buffers = 2 * (size_t)L->in.c; /* moving mean, moving variance */
    L->scratch_per_item = dn_shape_size(L->in); /* normalised input x_hat */
    L->scratch_fixed = (size_t)L->in.c;         /* 1 / sqrt(batch variance + epsilon) */
    return DN_OK;
}

static void batchnorm_init(dn_layer *L, dn_rng *rng)
{
    (void)rng;
    const int C = L->in.c;
    for (int c = 0; c < C; c++) {
        L->params[c] = 1.0f;     /* gamma */
        L->params[C + c] = 0.0f; /* beta */
        L->buffers[c] = 0.0f;    /* moving mean */
        L->buffers[C + c] = 1.0f; /* moving variance */
    }
}

static void batchnorm_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first; /* rows are split only in inference, which keeps nothing per row */
    const batchnorm_cfg *cfg = DN_LAYER_CFG(L, batchnorm_cfg);
    const int C = L->in.c;
    const size_t rows = (size_t)n * L->in.h * L->in.w;
    const float *gamma = L->params, *beta = L->params + C;
    float *mmean = L->buffers, *mvar = L->buffers + C;
    if (!training) {
        for (size_t r = 0; r < rows; r++)
            for (int c = 0; c < C; c++)
                out[r * C + c] = gamma[c] * (in[r * C + c] - mmean[c]) / sqrtf(mvar[c] + cfg->epsilon) + beta[c];
        return;
    }
    float *xhat = L->scratch, *inv_std = L->scratch + rows * C;
    for (int c = 0; c < C; c++) {
        double sum = 0.0, sq = 0.0; /* double: batches of thousands of rows lose digits in float */
        for (size_t r = 0; r < rows; r++)
            sum += in[r * C + c];
        double mean = sum / (double)rows;
        for (size_t r = 0; r < rows; r++) {
            double d = in[r * C + c] - mean;
            sq += d * d;
        }
        double var = sq / (double)rows;
        inv_std[c] = (float)(1.0 / sqrt(var + cfg->epsilon));
        for (size_t r = 0; r < rows; r++) {
            xhat[r * C + c] = (float)((in[r * C + c] - mean) * inv_std[c]);
            out[r * C + c] = gamma[c] * xhat[r * C + c] + beta[c];
        }
        /* Keras updates the moving variance with the (biased) batch variance. */
        mmean[c] = cfg->momentum * mmean[c] + (1.0f - cfg->momentum) * (float)mean;
        mvar[c] = cfg->momentum * mvar[c] + (1.0f - cfg->momentum) * (float)var;
    }
}

static void batchnorm_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)in, (void)out, (void)first; /* the batch statistics couple the rows: always the whole batch */
    const int C = L->in.c;
    const size_t rows = (size_t)n * L->in.h * L->in.w;
    const float *gamma = L->params;
    const float *xhat = L->scratch, *inv_std = L->scratch + rows * C;
    float *dgamma = grads, *dbeta = grads + C;
    for (int c = 0; c < C; c++) {
        double sum_dy = 0.0, sum_dy_xhat = 0.0;
        for (size_t r = 0; r < rows; r++) {
            sum_dy += dout[r * C + c];
            sum_dy_xhat += (double)dout[r * C + c] * xhat[r * C + c];
        }
        dgamma[c] += (float)sum_dy_xhat;
        dbeta[c] += (float)sum_dy;
        if (!din)
            continue;
        /* dx = gamma * inv_std / N * (N dy - sum(dy) - x_hat sum(dy x_hat)) */
        double k = gamma[c] * inv_std[c] / (double)rows;
        for (size_t r = 0; r < rows; r++)
            din[r * C + c] = (float)(k * ((double)rows * dout[r * C + c] - sum_dy - xhat[r * C + c] * sum_dy_xhat));
    }
}

static int batchnorm_tensors(const dn_layer *L, const char **names, int dims[][4], int *ndim, int max)
{
    static const char *const tensor_names[4] = {"gamma", "beta", "moving_mean", "moving_variance"};
    if (max < 4)
        return 4;
    for (int i = 0; i < 4; i++) {
        names[i] = tensor_names[i];
        ndim[i] = 1;
        dims[i][0] = L->in.c;
    }
    return 4;
}

const dn_layer_ops dn_batchnorm_ops = {
    .name = "batchnorm",
    .parse = batchnorm_parse,
    .print = batchnorm_print,
    .shape = batchnorm_shape,
    .init = batchnorm_init,
    .rows = DN_ROWS_EACH_INFERENCE,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .tensors = batchnorm_tensors,
};

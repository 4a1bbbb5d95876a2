/* batchnorm: batch normalisation over the channel (last) axis, Keras BatchNormalization defaults:
 * momentum 0.99, epsilon 1e-3, gamma = 1, beta = 0, moving mean 0, moving variance 1.
 * Training normalises with the batch statistics and updates the moving ones; inference uses the
 * moving statistics. gamma and beta are trained; the moving statistics are non-trainable buffers.
 *   spec: batchnorm [momentum=M] [epsilon=E] */
#include "layers/layer.h"
#include "kernels/kernels.h"
#include "internal.h" /* DN_MULTIVERSION */

#include <math.h>
#include <stdint.h>
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

/* The batch statistics are sums over every pixel of every row. They are cut into a fixed number
 * of row chunks (from the sizes alone, never the thread count), summed in double, chunk partial
 * sums added in chunk order: any thread count gives the same bits. */
#define MAX_CHUNKS 16

static int stat_chunks(size_t rows)
{
    size_t chunks = rows / 256;
    return chunks < 1 ? 1 : chunks > MAX_CHUNKS ? MAX_CHUNKS : (int)chunks;
}

static dn_status batchnorm_shape(dn_layer *L, const char *where, dn_error *err)
{
    (void)where, (void)err;
    L->out = L->in;
    L->n_params = 2 * (size_t)L->in.c;  /* gamma, beta */
    L->n_buffers = 2 * (size_t)L->in.c; /* moving mean, moving variance */
    /* Nothing per row: backward computes x_hat again from the input, which the network keeps
     * anyway. Per batch: inv_std and mean (C each), alignment, doubles partial (MAX_CHUNKS, 2, C)
     * and two sums (C each), then three float arrays (C each): see train_scratch. */
    L->scratch_per_item = 0;
    L->scratch_fixed = (size_t)L->in.c * (2 + 2 * (2 * MAX_CHUNKS + 2) + 3) + 2;
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

/* The hot loops below run over the channels of rows [r0, r1), each channel on its own: compiled
 * for AVX-512 and AVX2 too (DN_MULTIVERSION), they compute the same bits as the plain build, and
 * the doubles of the statistics go eight to a vector instead of two.
 *
 * Training keeps no x_hat: the loops that need it compute x_hat = (x - mean) * inv_std from the
 * input again, the same float operations as the forward pass, so the same bits. With a relu
 * after this layer (L->relu_after, set by the network), the training pass writes the relu's
 * output itself and the backward pass applies the relu's gradient (zero where gamma * x_hat +
 * beta <= 0) before its own: each batch-sized array is read twice fewer times in each direction. */

/* What the training loops read per channel; dy NULL: the forward statistics. */
typedef struct bn_pass {
    const float *x, *dy;                    /* (rows, C) */
    const float *shift;                     /* forward statistics: subtracted before summing */
    const float *mean, *inv_std, *gamma, *beta;
    int relu;
    int C;
} bn_pass;

/* Channels [c0, c0 + width) of one chunk's rows [r0, r1). Forward: the sums of x - shift and of
 * its square. Backward: of dy (after the relu's gradient) and of dy * x_hat. Called with width a
 * constant GROUP, the sums stay in registers across the rows; a loop over all C channels in each
 * row stored and reloaded them every row, and was a tenth of a batchnorm network's step. Each
 * channel still adds its rows in order: the same bits. */
enum { GROUP = 16 };

static inline __attribute__((always_inline)) void group_sums(const bn_pass *restrict p, size_t r0, size_t r1, int c0,
                                                             int width, double *restrict pa, double *restrict pab)
{
    const int C = p->C;
    double a[GROUP] = {0}, ab[GROUP] = {0};
    if (!p->dy) {
        const float *restrict shift = p->shift;
        for (size_t r = r0; r < r1; r++) {
            const float *restrict x = p->x + r * C + c0;
#pragma omp simd
            for (int c = 0; c < width; c++) {
                double d = (double)x[c] - shift[c0 + c];
                a[c] += d;
                ab[c] += d * d;
            }
        }
    } else {
        const float *restrict mean = p->mean, *restrict inv_std = p->inv_std;
        const float *restrict gamma = p->gamma, *restrict beta = p->beta;
        const int relu = p->relu;
        for (size_t r = r0; r < r1; r++) {
            const float *restrict x = p->x + r * C + c0, *restrict dy = p->dy + r * C + c0;
#pragma omp simd
            for (int c = 0; c < width; c++) {
                const int k = c0 + c;
                float h = (x[c] - mean[k]) * inv_std[k];
                float g = !relu || gamma[k] * h + beta[k] > 0.0f ? dy[c] : 0.0f;
                a[c] += g;
                ab[c] += (double)g * h;
            }
        }
    }
    for (int c = 0; c < width; c++) {
        pa[c0 + c] = a[c];
        pab[c0 + c] = ab[c];
    }
}

/* One chunk's per-channel sums into pa and pab (C each), GROUP channels at a time. */
DN_MULTIVERSION
static void chunk_sums(const bn_pass *restrict p, size_t r0, size_t r1, double *restrict pa, double *restrict pab)
{
    int c0 = 0;
    for (; c0 + GROUP <= p->C; c0 += GROUP)
        group_sums(p, r0, r1, c0, GROUP, pa, pab);
    if (c0 < p->C)
        group_sums(p, r0, r1, c0, p->C - c0, pa, pab);
}

/* Per channel, chunk_sums over all rows, chunk by chunk into partial (chunks, 2, C), then added in
 * chunk order into sum_a and sum_ab. */
static void channel_sums(const bn_pass *p, size_t rows, double *partial, double *sum_a, double *sum_ab)
{
    const int C = p->C, chunks = stat_chunks(rows);
    DN_PARALLEL_FOR(rows * (size_t)C > 1 << 15, for (int k = 0; k < chunks; k++) {
        double *pa = partial + (size_t)k * 2 * C;
        chunk_sums(p, rows * k / chunks, rows * (k + 1) / chunks, pa, pa + C);
    });
    for (int c = 0; c < C; c++)
        sum_a[c] = sum_ab[c] = 0.0;
    for (int k = 0; k < chunks; k++)
        for (int c = 0; c < C; c++) {
            sum_a[c] += partial[(size_t)k * 2 * C + c];
            sum_ab[c] += partial[(size_t)k * 2 * C + C + c];
        }
}

/* Rows per call of the row loops below (one call per block keeps the dispatch out of the rows). */
#define ROW_BLOCK 64

/* out = x * scale + offset per channel (inference, scale and offset from the moving statistics). */
DN_MULTIVERSION
static void scale_rows(const float *restrict in, float *restrict out, const float *restrict scale,
                       const float *restrict offset, size_t r0, size_t r1, int C, int c0, int g)
{
    for (size_t r = r0; r < r1; r++) {
        const float *x = in + r * C + c0;
        float *o = out + r * C + c0;
#pragma omp simd
        for (int c = 0; c < g; c++)
            o[c] = x[c] * scale[c] + offset[c];
    }
}

/* Training: out = gamma * x_hat + beta per channel, then the relu's max(0, .) when it is fused (the
 * comparison relu_rows makes: NaN stays NaN). */
DN_MULTIVERSION
static void normalise_block(const bn_pass *restrict p, float *restrict out, size_t r0, size_t r1)
{
    const int C = p->C;
    const float *restrict mean = p->mean, *restrict inv_std = p->inv_std;
    const float *restrict gamma = p->gamma, *restrict beta = p->beta;
    for (size_t r = r0; r < r1; r++) {
        const float *restrict x = p->x + r * C;
        float *restrict o = out + r * C;
        if (p->relu) {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float y = gamma[c] * ((x[c] - mean[c]) * inv_std[c]) + beta[c];
                o[c] = y < 0.0f ? 0.0f : y;
            }
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++)
                o[c] = gamma[c] * ((x[c] - mean[c]) * inv_std[c]) + beta[c];
        }
    }
}

/* dx = k * (dy - mean(dy) - x_hat mean(dy x_hat)) per channel, dy after the fused relu's gradient. */
DN_MULTIVERSION
static void input_grad_block(const bn_pass *restrict p, float *restrict din, const float *restrict k,
                             const float *restrict mean_dy, const float *restrict mean_dyx, size_t r0, size_t r1)
{
    const int C = p->C;
    const float *restrict mean = p->mean, *restrict inv_std = p->inv_std;
    const float *restrict gamma = p->gamma, *restrict beta = p->beta;
    for (size_t r = r0; r < r1; r++) {
        const float *restrict x = p->x + r * C, *restrict dy = p->dy + r * C;
        float *restrict dx = din + r * C;
        if (p->relu) {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * inv_std[c];
                float g = gamma[c] * h + beta[c] > 0.0f ? dy[c] : 0.0f;
                dx[c] = k[c] * (g - mean_dy[c] - h * mean_dyx[c]);
            }
        } else {
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float h = (x[c] - mean[c]) * inv_std[c];
                dx[c] = k[c] * (dy[c] - mean_dy[c] - h * mean_dyx[c]);
            }
        }
    }
}

/* The training pass's per-channel work space after inv_std and mean (C floats each): 8-byte
 * aligned doubles, partial (MAX_CHUNKS, 2, C), then three more arrays of C. */
static double *train_scratch(const dn_layer *L)
{
    uintptr_t p = (uintptr_t)(L->scratch + 2 * (size_t)L->in.c);
    return (double *)(void *)((p + 7) & ~(uintptr_t)7);
}

/* Row blocks of a (rows, C) pass on all threads. */
#define FOR_ROW_BLOCKS(rows, C, body)                                                                       \
    do {                                                                                                   \
        const size_t blocks_ = ((rows) + ROW_BLOCK - 1) / ROW_BLOCK;                                        \
        DN_PARALLEL_FOR((rows) * (size_t)(C) > 1 << 15, for (size_t b_ = 0; b_ < blocks_; b_++) {         \
            const size_t r0 = b_ * ROW_BLOCK, r1 = r0 + ROW_BLOCK < (rows) ? r0 + ROW_BLOCK : (rows);       \
            body;                                                                                          \
        });                                                                                                \
    } while (0)

static void batchnorm_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first; /* rows are split only in inference, which keeps nothing per row */
    const batchnorm_cfg *cfg = DN_LAYER_CFG(L, batchnorm_cfg);
    const int C = L->in.c;
    const size_t rows = (size_t)n * L->in.h * L->in.w;
    const float *gamma = L->params, *beta = L->params + C;
    float *mmean = L->buffers, *mvar = L->buffers + C;
    if (!training) {
        /* Row blocks may run this at once on several threads: only the stack is written. */
        enum { SCALE_GROUP = 128 };
        for (int c0 = 0; c0 < C; c0 += SCALE_GROUP) {
            const int g = C - c0 < SCALE_GROUP ? C - c0 : SCALE_GROUP;
            float scale[SCALE_GROUP], offset[SCALE_GROUP];
            for (int c = 0; c < g; c++) {
                scale[c] = gamma[c0 + c] / sqrtf(mvar[c0 + c] + cfg->epsilon);
                offset[c] = beta[c0 + c] - mmean[c0 + c] * scale[c];
            }
            scale_rows(in, out, scale, offset, 0, rows, C, c0, g);
        }
        return;
    }
    float *inv_std = L->scratch, *mean_f = L->scratch + C;
    double *partial = train_scratch(L);
    double *sum = partial + (size_t)2 * MAX_CHUNKS * C, *sq = sum + C;
    float *shift = (float *)(sq + C);
    for (int c = 0; c < C; c++) /* shifting by one sample keeps the sum of squares from cancelling */
        shift[c] = in[c];
    const bn_pass stats = {.x = in, .shift = shift, .C = C};
    channel_sums(&stats, rows, partial, sum, sq);
    for (int c = 0; c < C; c++) {
        double m = sum[c] / (double)rows;
        double var = sq[c] / (double)rows - m * m;
        var = var < 0.0 ? 0.0 : var;
        double mean = (double)shift[c] + m;
        inv_std[c] = (float)(1.0 / sqrt(var + cfg->epsilon));
        mean_f[c] = (float)mean;
        /* Keras updates the moving variance with the (biased) batch variance. */
        mmean[c] = cfg->momentum * mmean[c] + (1.0f - cfg->momentum) * (float)mean;
        mvar[c] = cfg->momentum * mvar[c] + (1.0f - cfg->momentum) * (float)var;
    }
    const bn_pass norm = {.x = in, .mean = mean_f, .inv_std = inv_std, .gamma = gamma, .beta = beta,
                          .relu = L->relu_after, .C = C};
    FOR_ROW_BLOCKS(rows, C, normalise_block(&norm, out, r0, r1));
}

/* out is the relu's output when the relu is fused (unused: the relu's gradient is recomputed). */
static void batchnorm_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)out, (void)first; /* the batch statistics couple the rows: always the whole batch */
    const int C = L->in.c;
    const size_t rows = (size_t)n * L->in.h * L->in.w;
    const float *gamma = L->params, *beta = L->params + C;
    const float *inv_std = L->scratch, *mean_f = L->scratch + C;
    double *partial = train_scratch(L);
    double *sum_dy = partial + (size_t)2 * MAX_CHUNKS * C, *sum_dy_xhat = sum_dy + C;
    float *k = (float *)(sum_dy_xhat + C), *mean_dy = k + C, *mean_dyx = mean_dy + C;
    float *dgamma = grads, *dbeta = grads + C;
    const bn_pass p = {.x = in, .dy = dout, .mean = mean_f, .inv_std = inv_std, .gamma = gamma, .beta = beta,
                       .relu = L->relu_after, .C = C};
    channel_sums(&p, rows, partial, sum_dy, sum_dy_xhat);
    for (int c = 0; c < C; c++) {
        dgamma[c] += (float)sum_dy_xhat[c];
        dbeta[c] += (float)sum_dy[c];
        k[c] = gamma[c] * inv_std[c];
        mean_dy[c] = (float)(sum_dy[c] / (double)rows);
        mean_dyx[c] = (float)(sum_dy_xhat[c] / (double)rows);
    }
    if (!din)
        return;
    /* dx = gamma * inv_std * (dy - mean(dy) - x_hat mean(dy x_hat)) */
    FOR_ROW_BLOCKS(rows, C, input_grad_block(&p, din, k, mean_dy, mean_dyx, r0, r1));
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

/* dropout: inverted dropout. In training each value is kept with probability 1 - rate and scaled
 * by 1 / (1 - rate), so inference is the identity. The mask is kept for the backward pass.
 *   spec: dropout RATE          (0 <= RATE < 1) */
#include "layers/layer.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

#define MASK_BLOCK 4096 /* random draws per block of the mask */

typedef struct dropout_cfg {
    float rate;
    dn_rng start; /* the generator where this pass's mask begins (begin_forward) */
} dropout_cfg;
DN_LAYER_CFG_FITS(dropout_cfg);

static dn_status dropout_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    dropout_cfg *cfg = DN_LAYER_CFG(L, dropout_cfg);
    if (a->argc != 1 || dn_parse_float(a->argv[0], &cfg->rate) || cfg->rate < 0.0f || cfg->rate >= 1.0f)
        return dn_fail(err, DN_EFORMAT, "%s: dropout needs one rate in [0, 1), e.g. 'dropout 0.25'", a->where);
    return DN_OK;
}

static void dropout_print(const dn_layer *L, char *buf, size_t size)
{
    snprintf(buf, size, "dropout %g", (double)((const dropout_cfg *)(const void *)L->cfg.bytes)->rate);
}

static dn_status dropout_shape(dn_layer *L, const char *where, dn_error *err)
{
    (void)where, (void)err;
    L->out = L->in;
    L->scratch_per_item = dn_shape_size(L->in); /* the scaled keep-mask */
    return DN_OK;
}

/* Elements [i0, i1): draw i + 1 after state s0 decides element i, exactly as dn_rng_uniform would
 * in order; each draw stands alone (dn_rng_draw_at), so the loop vectorises. */
DN_MULTIVERSION
static void apply_mask(uint64_t s0, size_t i0, size_t i1, float rate, float scale, const float *restrict in,
                       float *restrict out, float *restrict mask)
{
    /* simd: gcc's -O2 cost model would leave this loop scalar (64-bit multiplies, an epilogue) */
#pragma omp simd
    for (size_t i = i0; i < i1; i++) {
        mask[i] = dn_rng_to_unit(dn_rng_draw_at(s0, (uint64_t)i + 1)) >= rate ? scale : 0.0f;
        out[i] = in[i] * mask[i];
    }
}

static void dropout_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    const float rate = DN_LAYER_CFG(L, dropout_cfg)->rate;
    const size_t total = dn_shape_size(L->in) * (size_t)n;
    if (!training || rate == 0.0f) {
        memcpy(out, in, sizeof(float) * total);
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    float *mask = L->scratch + (size_t)first * dn_shape_size(L->in);
    /* Blocks of MASK_BLOCK draws on any thread, each block's generator moved to where a single
     * thread drawing the whole batch's mask in order would be: the same masks on 1 thread or 16,
     * and for any split of the batch into row blocks. */
    dn_rng start = DN_LAYER_CFG(L, dropout_cfg)->start;
    dn_rng_skip(&start, (uint64_t)first * dn_shape_size(L->in));
    const size_t blocks = (total + MASK_BLOCK - 1) / MASK_BLOCK;
    DN_PARALLEL_FOR(total > 1 << 14, for (size_t b = 0; b < blocks; b++) {
        const size_t end = (b + 1) * MASK_BLOCK < total ? (b + 1) * MASK_BLOCK : total;
        apply_mask(start.state, b * MASK_BLOCK, end, rate, scale, in, out, mask);
    });
}

/* The whole batch's mask takes n * size draws from the net's generator, whichever rows each
 * forward call then covers. */
static void dropout_begin_forward(dn_layer *L, int n, int training)
{
    dropout_cfg *cfg = DN_LAYER_CFG(L, dropout_cfg);
    if (!training || cfg->rate == 0.0f)
        return;
    cfg->start = *L->rng;
    dn_rng_skip(L->rng, (uint64_t)n * dn_shape_size(L->in));
}

static void dropout_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)in, (void)out, (void)grads;
    if (!din)
        return;
    const float rate = DN_LAYER_CFG(L, dropout_cfg)->rate;
    const size_t total = dn_shape_size(L->in) * (size_t)n;
    if (rate == 0.0f) {
        memcpy(din, dout, sizeof(float) * total);
        return;
    }
    const float *mask = L->scratch + (size_t)first * dn_shape_size(L->in);
    DN_PARALLEL_FOR_SIMD(total > 1 << 15, for (size_t i = 0; i < total; i++) din[i] = dout[i] * mask[i];);
}

const dn_layer_ops dn_dropout_ops = {
    .name = "dropout",
    .parse = dropout_parse,
    .print = dropout_print,
    .shape = dropout_shape,
    .rows = DN_ROWS_EACH,
    .begin_forward = dropout_begin_forward,
    .forward = dropout_forward,
    .backward = dropout_backward,
};

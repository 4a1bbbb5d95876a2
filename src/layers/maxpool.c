/* maxpool: max over PHxPW windows, stride defaulting to the window (Keras MaxPooling2D), "valid"
 * by default or "same". On ties the first element in row-major order takes the gradient, as in
 * TensorFlow.
 *   spec: maxpool PHxPW [stride=S|SHxSW] [valid|same] */
#include "layers/layer.h"
#include "kernels/kernels.h"

#include <stdio.h>
#include <string.h>

typedef struct maxpool_cfg {
    int ph, pw, sh, sw, same; /* window and strides (rows, columns) */
    int pad_top, pad_left;
} maxpool_cfg;
DN_LAYER_CFG_FITS(maxpool_cfg);

static dn_status maxpool_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    maxpool_cfg *cfg = DN_LAYER_CFG(L, maxpool_cfg);
    if (a->argc < 1 || dn_parse_size2(a->argv[0], &cfg->ph, &cfg->pw))
        return dn_fail(err, DN_EFORMAT, "%s: maxpool needs a window size, e.g. 'maxpool 2x2'", a->where);
    cfg->sh = cfg->sw = 0;
    for (int i = 1; i < a->argc; i++) {
        const char *t = a->argv[i];
        if (strcmp(t, "same") == 0)
            cfg->same = 1;
        else if (strcmp(t, "valid") == 0)
            cfg->same = 0;
        else if (strncmp(t, "stride=", 7) == 0) {
            if (dn_parse_size2(t + 7, &cfg->sh, &cfg->sw))
                return dn_fail(err, DN_EFORMAT, "%s: maxpool stride '%s' is not like 2 or 2x2", a->where, t + 7);
        } else
            return dn_fail(err, DN_EFORMAT, "%s: maxpool: unknown option '%s' (expected stride=N, valid or same)", a->where, t);
    }
    if (cfg->sh == 0) { /* Keras: strides default to pool_size */
        cfg->sh = cfg->ph;
        cfg->sw = cfg->pw;
    }
    return DN_OK;
}

static void maxpool_print(const dn_layer *L, char *buf, size_t size)
{
    const maxpool_cfg *cfg = (const maxpool_cfg *)(const void *)L->cfg.bytes;
    if (cfg->sh == cfg->sw)
        snprintf(buf, size, "maxpool %dx%d stride=%d %s", cfg->ph, cfg->pw, cfg->sh, cfg->same ? "same" : "valid");
    else
        snprintf(buf, size, "maxpool %dx%d stride=%dx%d %s", cfg->ph, cfg->pw, cfg->sh, cfg->sw, cfg->same ? "same" : "valid");
}

static dn_status maxpool_shape(dn_layer *L, const char *where, dn_error *err)
{
    maxpool_cfg *cfg = DN_LAYER_CFG(L, maxpool_cfg);
    int oh = dn_axis_out(L->in.h, cfg->ph, cfg->sh, cfg->same, &cfg->pad_top);
    int ow = dn_axis_out(L->in.w, cfg->pw, cfg->sw, cfg->same, &cfg->pad_left);
    if (oh <= 0 || ow <= 0)
        return dn_fail(err, DN_ESHAPE, "%s: maxpool %dx%d does not fit its %dx%dx%d input", where, cfg->ph, cfg->pw,
                       L->in.h, L->in.w, L->in.c);
    if ((double)cfg->ph * cfg->pw > 1 << 30)
        return dn_fail(err, DN_ELIMIT, "%s: maxpool window %dx%d is too large", where, cfg->ph, cfg->pw);
    L->out = (dn_shape){oh, ow, L->in.c};
    L->scratch_per_item = dn_shape_size(L->out); /* (out) each maximum's place in its window, int32 */
    return DN_OK;
}

/* "valid" windows with strides: the rows and columns past the last window are never read. */
static void maxpool_reads(const dn_layer *L, int *rows, int *cols)
{
    const maxpool_cfg *cfg = (const maxpool_cfg *)(const void *)L->cfg.bytes;
    *rows = L->in.h;
    *cols = L->in.w;
    if (cfg->same)
        return;
    *rows = (L->out.h - 1) * cfg->sh + cfg->ph;
    *cols = (L->out.w - 1) * cfg->sw + cfg->pw;
}

static dn_pool_geom geom(const dn_layer *L)
{
    const maxpool_cfg *cfg = (const maxpool_cfg *)(const void *)L->cfg.bytes;
    return (dn_pool_geom){.in_h = L->in.h, .in_w = L->in.w, .c = L->in.c, .out_h = L->out.h, .out_w = L->out.w,
                          .ph = cfg->ph, .pw = cfg->pw, .sh = cfg->sh, .sw = cfg->sw,
                          .pad_top = cfg->pad_top, .pad_left = cfg->pad_left};
}

/* Training passes record where each maximum is, for the backward pass; inference does not. */
static void maxpool_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    const dn_pool_geom g = geom(L);
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    int32_t *codes = training ? (int32_t *)(void *)L->scratch + (size_t)first * out_size : NULL;
    DN_PARALLEL_FOR(n > 1, for (int b = 0; b < n; b++) dn_maxpool_forward(&g, in + (size_t)b * in_size,
                                                                          out + (size_t)b * out_size,
                                                                          codes ? codes + (size_t)b * out_size : NULL););
}

static void maxpool_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)in, (void)out, (void)grads;
    if (!din)
        return;
    const dn_pool_geom g = geom(L);
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    const int32_t *codes = (const int32_t *)(const void *)L->scratch + (size_t)first * out_size;
    DN_PARALLEL_FOR(n > 1, for (int b = 0; b < n; b++) dn_maxpool_backward(&g, codes + (size_t)b * out_size,
                                                                           dout + (size_t)b * out_size,
                                                                           din + (size_t)b * in_size););
}

const dn_layer_ops dn_maxpool_ops = {
    .name = "maxpool",
    .parse = maxpool_parse,
    .print = maxpool_print,
    .shape = maxpool_shape,
    .rows = DN_ROWS_EACH,
    .forward = maxpool_forward,
    .reads = maxpool_reads,
    .backward = maxpool_backward,
};

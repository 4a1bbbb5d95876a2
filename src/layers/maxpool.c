/* maxpool: max over PHxPW windows, stride defaulting to the window (Keras MaxPooling2D), "valid"
 * by default or "same". The position of each maximum is kept for the backward pass; on ties the
 * first one in row-major order takes the gradient, as in TensorFlow.
 *   spec: maxpool PHxPW [stride=S|SHxSW] [valid|same] */
#include "layers/layer.h"

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
    L->out = (dn_shape){oh, ow, L->in.c};
    L->scratch_per_item = dn_shape_size(L->out); /* index of each maximum in the input */
    return DN_OK;
}

/* One image. Channels are contiguous (channels-last), so the inner loops run over C and vectorise;
 * the first window element seeds the maximum, later ones replace it only when strictly greater. */
DN_MULTIVERSION
static void maxpool_image(const maxpool_cfg *cfg, dn_shape in, dn_shape out, const float *restrict img,
                          float *restrict dst, int32_t *restrict argmax)
{
    const int W = in.w, C = in.c;
    for (int oy = 0; oy < out.h; oy++)
        for (int ox = 0; ox < out.w; ox++) {
            float *restrict o = dst + ((size_t)oy * out.w + ox) * C;
            int32_t *restrict am = argmax + ((size_t)oy * out.w + ox) * C;
            int first = 1;
            for (int ky = 0; ky < cfg->ph; ky++) {
                int y = oy * cfg->sh + ky - cfg->pad_top;
                if (y < 0 || y >= in.h)
                    continue;
                for (int kx = 0; kx < cfg->pw; kx++) {
                    int x = ox * cfg->sw + kx - cfg->pad_left;
                    if (x < 0 || x >= W)
                        continue;
                    const int32_t base = (int32_t)(((size_t)y * W + x) * C);
                    const float *restrict src = img + base;
                    if (first) {
                        for (int c = 0; c < C; c++) {
                            o[c] = src[c];
                            am[c] = base + c;
                        }
                        first = 0;
                        continue;
                    }
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        int better = src[c] > o[c];
                        o[c] = better ? src[c] : o[c];
                        am[c] = better ? base + c : am[c];
                    }
                }
            }
        }
}

static void maxpool_forward(dn_layer *L, const float *in, float *out, int n, int training)
{
    (void)training;
    const maxpool_cfg *cfg = DN_LAYER_CFG(L, maxpool_cfg);
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    int32_t *argmax = (int32_t *)(void *)L->scratch;
#pragma omp parallel for schedule(static) if (n * in_size > 1 << 15)
    for (int b = 0; b < n; b++)
        maxpool_image(cfg, L->in, L->out, in + (size_t)b * in_size, out + (size_t)b * out_size,
                      argmax + (size_t)b * out_size);
}

static void maxpool_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int n)
{
    (void)in, (void)out;
    if (!din)
        return;
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    const int32_t *argmax = (const int32_t *)(const void *)L->scratch;
    memset(din, 0, sizeof(float) * in_size * (size_t)n);
    for (int b = 0; b < n; b++)
        for (size_t o = 0; o < out_size; o++)
            din[(size_t)b * in_size + (size_t)argmax[(size_t)b * out_size + o]] += dout[(size_t)b * out_size + o];
}

const dn_layer_ops dn_maxpool_ops = {
    .name = "maxpool",
    .parse = maxpool_parse,
    .print = maxpool_print,
    .shape = maxpool_shape,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};

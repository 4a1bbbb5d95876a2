/* conv2d: KxK convolution, any stride, "same" (Keras/TensorFlow padding) or "valid", with an
 * optional fused activation.
 *   spec:   conv2d FILTERS KHxKW [same|valid] [stride=S] [relu|sigmoid|tanh|softmax|linear]
 *   kernel: (KH, KW, C, F), the Keras layout.
 * Stride 1 (every reference network) runs the direct kernels of kernels/conv_direct.c image by
 * image: no im2col matrix, so no copy of every window and a tenth of the memory. The input gradient
 * is the same kernel run on the zero-padded d(output) with the kernel flipped and transposed.
 * Other strides use im2col and the matrix-product kernels (kernels.h). */
#include "layers/layer.h"
#include "kernels/kernels.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

typedef struct conv2d_cfg {
    int filters, kh, kw, stride, same;
    int pad_top, pad_left; /* derived in shape() */
    int direct;            /* stride 1: direct kernels instead of im2col */
    int pad_h, pad_w;      /* the input with its zero border (direct, "same") */
    int dpad_h, dpad_w;    /* d(output) with a kh-1 / kw-1 zero border (direct) */
    int all_outputs;       /* this pass computes the outputs no later layer reads too (begin_forward) */
} conv2d_cfg;
DN_LAYER_CFG_FITS(conv2d_cfg);

static dn_status conv2d_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    cfg->stride = 1;
    if (a->argc < 2)
        return dn_fail(err, DN_EFORMAT, "%s: conv2d needs FILTERS and a kernel size, e.g. 'conv2d 16 3x3 same relu'", a->where);
    if (dn_parse_int(a->argv[0], &cfg->filters))
        return dn_fail(err, DN_EFORMAT, "%s: conv2d filters '%s' is not a positive integer", a->where, a->argv[0]);
    if (dn_parse_size2(a->argv[1], &cfg->kh, &cfg->kw))
        return dn_fail(err, DN_EFORMAT, "%s: conv2d kernel size '%s' is not like 3x3", a->where, a->argv[1]);
    for (int i = 2; i < a->argc; i++) {
        const char *t = a->argv[i];
        int act = dn_activation_lookup(t);
        if (strcmp(t, "same") == 0)
            cfg->same = 1;
        else if (strcmp(t, "valid") == 0)
            cfg->same = 0;
        else if (strncmp(t, "stride=", 7) == 0) {
            if (dn_parse_int(t + 7, &cfg->stride))
                return dn_fail(err, DN_EFORMAT, "%s: conv2d stride '%s' is not a positive integer", a->where, t + 7);
        } else if (act >= 0)
            L->act = (dn_activation)act;
        else
            return dn_fail(err, DN_EFORMAT, "%s: conv2d: unknown option '%s' (expected same, valid, stride=N or an activation)", a->where, t);
    }
    return DN_OK;
}

static void conv2d_print(const dn_layer *L, char *buf, size_t size)
{
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    int n = snprintf(buf, size, "conv2d %d %dx%d %s", cfg->filters, cfg->kh, cfg->kw, cfg->same ? "same" : "valid");
    if (cfg->stride != 1 && n > 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, " stride=%d", cfg->stride);
    if (L->act != DN_ACT_NONE && n > 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, " %s", dn_activation_name(L->act));
}

static dn_status conv2d_shape(dn_layer *L, const char *where, dn_error *err)
{
    conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    int oh = dn_axis_out(L->in.h, cfg->kh, cfg->stride, cfg->same, &cfg->pad_top);
    int ow = dn_axis_out(L->in.w, cfg->kw, cfg->stride, cfg->same, &cfg->pad_left);
    if (oh <= 0 || ow <= 0)
        return dn_fail(err, DN_ESHAPE, "%s: conv2d %dx%d 'valid' does not fit its %dx%dx%d input (use 'same' or a smaller kernel)",
                       where, cfg->kh, cfg->kw, L->in.h, L->in.w, L->in.c);
    /* Counted in double first: kh * kw * C * F can pass 2^64 and wrap a size_t to a small number. */
    double weights = (double)cfg->kh * cfg->kw * L->in.c * cfg->filters;
    if (weights > INT_MAX)
        return dn_fail(err, DN_ELIMIT, "%s: conv2d %d %dx%d on a %dx%dx%d input would have %.0f weights, over the limit of %d",
                       where, cfg->filters, cfg->kh, cfg->kw, L->in.h, L->in.w, L->in.c, weights, INT_MAX);
    L->out = (dn_shape){oh, ow, cfg->filters};
    size_t k = (size_t)cfg->kh * cfg->kw * L->in.c;
    L->n_params = k * cfg->filters + cfg->filters;
    cfg->direct = cfg->stride == 1;
    if (!cfg->direct) {
        L->scratch_per_item = (size_t)oh * ow * k; /* the im2col matrix, kept for the weight gradient */
        L->scratch_fixed = k * cfg->filters;       /* the kernel transposed, (F, K) (begin_backward) */
        return DN_OK;
    }
    cfg->pad_h = oh + cfg->kh - 1;
    cfg->pad_w = ow + cfg->kw - 1;
    cfg->dpad_h = oh + 2 * (cfg->kh - 1);
    cfg->dpad_w = ow + 2 * (cfg->kw - 1);
    /* Per image: the padded input (kept for the weight gradient; "same" only) and the padded
     * d(output); fixed: the flipped kernel. See direct_scratch. */
    L->scratch_per_item = (cfg->same ? (size_t)cfg->pad_h * cfg->pad_w * L->in.c : 0) +
                          (size_t)cfg->dpad_h * cfg->dpad_w * cfg->filters;
    L->scratch_fixed = k * cfg->filters;
    return DN_OK;
}

static void conv2d_init(dn_layer *L, dn_rng *rng)
{
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    int fan_in = cfg->kh * cfg->kw * L->in.c, fan_out = cfg->kh * cfg->kw * cfg->filters;
    size_t nw = (size_t)fan_in * cfg->filters;
    dn_glorot_uniform(L->params, nw, fan_in, fan_out, rng);
    memset(L->params + nw, 0, sizeof(float) * (size_t)cfg->filters);
}

/* col (n*OH*OW, KH*KW*C) from in (n, H, W, C); zero where the window hangs over the padding. */
static void im2col(const dn_layer *L, const float *in, float *col, int n)
{
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    const int H = L->in.h, W = L->in.w, C = L->in.c, OH = L->out.h, OW = L->out.w;
    const size_t K = (size_t)cfg->kh * cfg->kw * C;
    DN_PARALLEL_FOR((size_t)n * OH * OW * K > 1 << 15, for (int b = 0; b < n; b++) {
        const float *img = in + (size_t)b * H * W * C;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                float *row = col + (((size_t)b * OH + oy) * OW + ox) * K;
                for (int ky = 0; ky < cfg->kh; ky++) {
                    int y = oy * cfg->stride + ky - cfg->pad_top;
                    float *dst = row + (size_t)ky * cfg->kw * C;
                    if (y < 0 || y >= H) {
                        memset(dst, 0, sizeof(float) * (size_t)cfg->kw * C);
                        continue;
                    }
                    int x0 = ox * cfg->stride - cfg->pad_left;
                    if (x0 >= 0 && x0 + cfg->kw <= W) { /* the whole row of the window is inside */
                        memcpy(dst, img + ((size_t)y * W + x0) * C, sizeof(float) * (size_t)cfg->kw * C);
                        continue;
                    }
                    for (int kx = 0; kx < cfg->kw; kx++) {
                        int x = x0 + kx;
                        if (x < 0 || x >= W)
                            memset(dst + (size_t)kx * C, 0, sizeof(float) * C);
                        else
                            memcpy(dst + (size_t)kx * C, img + ((size_t)y * W + x) * C, sizeof(float) * C);
                    }
                }
            }
    });
}

/* din (n, H, W, C) = sum of dcol's window entries over the positions they came from. */
static void col2im(const dn_layer *L, const float *dcol, float *din, int n)
{
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    const int H = L->in.h, W = L->in.w, C = L->in.c, OH = L->out.h, OW = L->out.w;
    const size_t K = (size_t)cfg->kh * cfg->kw * C;
    DN_PARALLEL_FOR((size_t)n * OH * OW * K > 1 << 15, for (int b = 0; b < n; b++) {
        float *img = din + (size_t)b * H * W * C;
        memset(img, 0, sizeof(float) * (size_t)H * W * C);
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                const float *row = dcol + (((size_t)b * OH + oy) * OW + ox) * K;
                for (int ky = 0; ky < cfg->kh; ky++) {
                    int y = oy * cfg->stride + ky - cfg->pad_top;
                    if (y < 0 || y >= H)
                        continue;
                    for (int kx = 0; kx < cfg->kw; kx++) {
                        int x = ox * cfg->stride + kx - cfg->pad_left;
                        if (x < 0 || x >= W)
                            continue;
                        const float *src = row + ((size_t)ky * cfg->kw + kx) * C;
                        float *dst = img + ((size_t)y * W + x) * C;
                        for (int c = 0; c < C; c++)
                            dst[c] += src[c];
                    }
                }
            }
    });
}

/* The direct path's scratch, carved the same way by forward and backward. */
typedef struct direct_scratch {
    float *padded;  /* (n, pad_h, pad_w, C) the input with its zero border, "same" only */
    float *dpadded; /* (n, dpad_h, dpad_w, F) d(output) with its zero border */
    float *flipped; /* (kh, kw, F, C) the kernel turned by 180 degrees, in and out swapped */
} direct_scratch;

static direct_scratch carve(const dn_layer *L)
{
    const size_t n = (size_t)L->rows_cap;
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    direct_scratch s;
    size_t padded = cfg->same ? (size_t)cfg->pad_h * cfg->pad_w * L->in.c : 0;
    s.padded = L->scratch;
    s.dpadded = s.padded + padded * n;
    s.flipped = s.dpadded + (size_t)cfg->dpad_h * cfg->dpad_w * cfg->filters * n;
    return s;
}

/* dst (rows + top + bottom, cols + left + right, C) = src (rows, cols, C) inside a zero border. */
static void pad_image(const float *src, int rows, int cols, int C, int top, int left, int out_rows, int out_cols,
                      float *dst)
{
    /* Only the border is zeroed: the whole buffer was a tenth of a batchnorm network's memory traffic. */
    const size_t row = (size_t)out_cols * C, right = (size_t)(out_cols - left - cols) * C;
    memset(dst, 0, sizeof(float) * (size_t)top * row);
    for (int y = 0; y < rows; y++) {
        float *d = dst + (size_t)(y + top) * row;
        memset(d, 0, sizeof(float) * (size_t)left * C);
        memcpy(d + (size_t)left * C, src + (size_t)y * cols * C, sizeof(float) * (size_t)cols * C);
        memset(d + (size_t)(left + cols) * C, 0, sizeof(float) * right);
    }
    memset(dst + (size_t)(top + rows) * row, 0, sizeof(float) * (size_t)(out_rows - top - rows) * row);
}

/* The geometry of the forward convolution over the (padded) input. */
static dn_conv_geom forward_geom(const dn_layer *L)
{
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    const int W = cfg->same ? cfg->pad_w : L->in.w;
    return (dn_conv_geom){.in_c = L->in.c,
                          .in_row = (size_t)W * L->in.c,
                          .kh = cfg->kh,
                          .kw = cfg->kw,
                          .out_h = L->out.h,
                          .out_w = L->out.w,
                          .out_c = cfg->filters,
                          .out_row = (size_t)L->out.w * cfg->filters};
}

/* Only the outputs the next layer reads (used_h x used_w) are computed; the rest is set to zero
 * (backward reads it as a ReLU mask, under a zero gradient). A single image in inference gets
 * every output (all_outputs), so that dn_workspace_layer_output shows whole feature maps. */
static void zero_unused(const dn_layer *L, float *out)
{
    const int F = L->out.c;
    for (int y = 0; y < L->out.h; y++) {
        int from = y < L->used_h ? L->used_w : 0;
        memset(out + ((size_t)y * L->out.w + from) * F, 0, sizeof(float) * (size_t)(L->out.w - from) * F);
    }
}

static void direct_forward(dn_layer *L, const float *in, float *out, int first, int n)
{
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    const size_t padded_size = (size_t)cfg->pad_h * cfg->pad_w * L->in.c;
    const float *bias = L->params + (size_t)cfg->kh * cfg->kw * L->in.c * cfg->filters;
    dn_conv_geom g = forward_geom(L);
    const int partial = (L->used_h < L->out.h || L->used_w < L->out.w) && !cfg->all_outputs;
    if (partial) {
        g.out_h = L->used_h;
        g.out_w = L->used_w;
    }
    const direct_scratch s = carve(L);
    const int fused_relu = L->act == DN_ACT_RELU;
    DN_PARALLEL_FOR(n > 1, for (int b = 0; b < n; b++) {
        const float *img = in + (size_t)b * in_size;
        if (cfg->same) {
            float *p = s.padded + (size_t)(first + b) * padded_size;
            pad_image(img, L->in.h, L->in.w, L->in.c, cfg->pad_top, cfg->pad_left, cfg->pad_h, cfg->pad_w, p);
            img = p;
        }
        float *o = out + (size_t)b * out_size;
        dn_conv_forward(&g, img, L->params, bias, fused_relu, o);
        if (partial)
            zero_unused(L, o);
        if (!fused_relu && L->act != DN_ACT_NONE)
            dn_activation_forward(L->act, o, (size_t)L->out.h * L->out.w, (size_t)cfg->filters);
    });
}

/* A single image in inference: every output, for dn_workspace_layer_output's feature maps. */
static void conv2d_begin_forward(dn_layer *L, int n, int training)
{
    DN_LAYER_CFG(L, conv2d_cfg)->all_outputs = !training && n == 1;
}

/* Direct: flipped[a][b][f][c] = kernel[kh-1-a][kw-1-b][c][f], the kernel of the input gradient.
 * im2col: the kernel (K, F) transposed to (F, K), for d(col) = dout kernel^T. */
static void conv2d_begin_backward(dn_layer *L)
{
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    if (!cfg->direct) {
        const int K = cfg->kh * cfg->kw * L->in.c;
        dn_transpose(K, cfg->filters, L->params, L->scratch + (size_t)L->rows_cap * L->scratch_per_item);
        return;
    }
    const int C = L->in.c, F = cfg->filters, kh = cfg->kh, kw = cfg->kw;
    float *flipped = carve(L).flipped;
    for (int a = 0; a < kh; a++)
        for (int bx = 0; bx < kw; bx++)
            for (int c = 0; c < C; c++)
                for (int f = 0; f < F; f++)
                    flipped[(((size_t)a * kw + bx) * F + f) * C + c] =
                        L->params[((((size_t)(kh - 1 - a)) * kw + (kw - 1 - bx)) * C + c) * F + f];
}

static void direct_backward(dn_layer *L, const float *in, float *dout, float *din, int first, int n, float *grads)
{
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    const int C = L->in.c, F = cfg->filters, kh = cfg->kh, kw = cfg->kw;
    const size_t in_size = dn_shape_size(L->in), out_size = dn_shape_size(L->out);
    const size_t padded_size = (size_t)cfg->pad_h * cfg->pad_w * C;
    dn_conv_geom g = forward_geom(L);
    g.out_h = L->used_h; /* d(output) is zero where the next layer does not read */
    g.out_w = L->used_w;
    const direct_scratch s = carve(L);
    /* The input as the forward pass saw it: kept padded for "same". */
    const float *src = cfg->same ? s.padded + (size_t)first * padded_size : in;
    const size_t src_size = cfg->same ? padded_size : in_size;
    dn_conv_weight_grad(&g, src, src_size, dout, out_size, n, grads);
    if (!din)
        return;
    /* d(input) = the "full" correlation of d(output) with the flipped kernel (begin_backward), read
     * at the positions of the unpadded input. */
    const size_t dpad_size = (size_t)cfg->dpad_h * cfg->dpad_w * F;
    const dn_conv_geom gi = {.in_c = F,
                             .in_row = (size_t)cfg->dpad_w * F,
                             .kh = kh,
                             .kw = kw,
                             .out_h = L->in.h,
                             .out_w = L->in.w,
                             .out_c = C,
                             .out_row = (size_t)L->in.w * C};
    const size_t corner = ((size_t)cfg->pad_top * cfg->dpad_w + cfg->pad_left) * F;
    DN_PARALLEL_FOR(n > 1, for (int b = 0; b < n; b++) {
        float *dp = s.dpadded + (size_t)(first + b) * dpad_size;
        pad_image(dout + (size_t)b * out_size, L->out.h, L->out.w, F, kh - 1, kw - 1, cfg->dpad_h, cfg->dpad_w, dp);
        dn_conv_forward(&gi, dp + corner, s.flipped, NULL, 0, din + (size_t)b * in_size);
    });
}

static void conv2d_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)training;
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    if (cfg->direct) {
        direct_forward(L, in, out, first, n);
        return;
    }
    const int F = cfg->filters;
    const int K = cfg->kh * cfg->kw * L->in.c;
    const int rows = n * L->out.h * L->out.w;
    const float *bias = L->params + (size_t)K * F;
    float *col = L->scratch + (size_t)first * L->out.h * L->out.w * K; /* (rows, K) */
    im2col(L, in, col, n);
    const int fused_relu = L->act == DN_ACT_RELU;
    dn_matmul(rows, K, F, col, L->params, bias, fused_relu, out); /* out (rows, F) */
    if (!fused_relu && L->act != DN_ACT_NONE)
        dn_activation_forward(L->act, out, (size_t)rows, (size_t)F);
}

static void conv2d_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    const conv2d_cfg *cfg = DN_LAYER_CFG(L, conv2d_cfg);
    const int F = cfg->filters;
    const int K = cfg->kh * cfg->kw * L->in.c;
    const int rows = n * L->out.h * L->out.w;
    float *dbias = grads + (size_t)K * F;
    dn_activation_backward_bias(L->act, L->fused_loss, out, dout, (size_t)rows, (size_t)F, dbias);
    if (cfg->direct) {
        direct_backward(L, in, dout, din, first, n, grads);
        return;
    }
    float *col = L->scratch + (size_t)first * L->out.h * L->out.w * K;
    dn_matmul_tn_add(rows, K, F, col, dout, grads); /* dW (K, F) += col^T dout */
    if (!din)
        return;
    /* col is no longer needed: reuse it for d(col) = dout W^T, then scatter back. */
    const float *kernel_t = L->scratch + (size_t)L->rows_cap * L->scratch_per_item; /* (F, K) */
    dn_matmul(rows, F, K, dout, kernel_t, NULL, 0, col);
    col2im(L, col, din, n);
}

static int conv2d_tensors(const dn_layer *L, const char **names, int dims[][4], int *ndim, int max)
{
    const conv2d_cfg *cfg = (const conv2d_cfg *)(const void *)L->cfg.bytes;
    if (max < 2)
        return 2;
    names[0] = "kernel";
    ndim[0] = 4;
    dims[0][0] = cfg->kh, dims[0][1] = cfg->kw, dims[0][2] = L->in.c, dims[0][3] = cfg->filters;
    names[1] = "bias";
    ndim[1] = 1;
    dims[1][0] = cfg->filters;
    return 2;
}

const dn_layer_ops dn_conv2d_ops = {
    .name = "conv2d",
    .parse = conv2d_parse,
    .print = conv2d_print,
    .shape = conv2d_shape,
    .init = conv2d_init,
    .rows = DN_ROWS_EACH,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .begin_forward = conv2d_begin_forward,
    .begin_backward = conv2d_begin_backward,
    .tensors = conv2d_tensors,
};

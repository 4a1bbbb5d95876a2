/* int8 post-training quantisation, TFLite's scheme: weights int8 symmetric per output channel,
 * biases int32 (scale = input scale x weight scale), activations int8 per tensor with a zero point
 * from the ranges observed on calibration rows, requantisation by a 32-bit multiplier and a shift.
 *
 * A dn_net is first lowered to a short list of operations: conv2d, and dense as a convolution
 * whose window is its whole input (flatten is then nothing: channels-last order is flatten's
 * order); maxpool; sigmoid / tanh as a 256-entry lookup table; ReLU fused into the convolution
 * before it, or a clamp of its own; dropout and flatten vanish; batchnorm is folded into the
 * convolution or dense layer before it; the final softmax is dropped (the int8 logits decide the
 * class). The float version of that list runs the calibration rows; the integer version is
 * int8_kernels.h, which the C export copies. */
#include "quant/quant.h"
#include "layers/layer.h"
#include "net.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ the host's dot product */

int32_t dn_quant_dot_portable(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc)
{
    return dnq_dot(x, w, n, zp, acc);
}

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
#include <immintrin.h>
/* sum (x - zp) w = sum (x + 128) w - (zp + 128) sum w: vpdpbusd multiplies unsigned bytes (x + 128)
 * by signed ones (w) and adds groups of four into 32-bit sums. Every partial sum is an integer the
 * portable loop also reaches, and int32 arithmetic wraps the same way in both, so the result is
 * the portable one bit for bit. */
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int32_t dot_vnni(const int8_t *x, const int8_t *w,
                                                                                int32_t n, int16_t zp, int32_t acc)
{
    const __m512i flip = _mm512_set1_epi8((char)0x80), ones = _mm512_set1_epi8(1);
    __m512i sum_xw = _mm512_setzero_si512(), sum_w = _mm512_setzero_si512();
    int32_t i = 0;
    for (; i + 64 <= n; i += 64) {
        __m512i xv = _mm512_xor_si512(_mm512_loadu_si512(x + i), flip), wv = _mm512_loadu_si512(w + i);
        sum_xw = _mm512_dpbusd_epi32(sum_xw, xv, wv);
        sum_w = _mm512_dpbusd_epi32(sum_w, ones, wv);
    }
    if (i < n) { /* the tail, masked: zero bytes add nothing */
        __mmask64 m = (1ull << (n - i)) - 1; /* n - i < 64 */
        __m512i xv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, x + i), _mm512_maskz_mov_epi8(m, flip));
        __m512i wv = _mm512_maskz_loadu_epi8(m, w + i);
        sum_xw = _mm512_dpbusd_epi32(sum_xw, xv, wv);
        sum_w = _mm512_dpbusd_epi32(sum_w, ones, wv);
    }
    uint32_t total = (uint32_t)_mm512_reduce_add_epi32(sum_xw) - (uint32_t)(zp + 128) * (uint32_t)_mm512_reduce_add_epi32(sum_w);
    return (int32_t)((uint32_t)acc + total);
}

static int use_vnni = -1;

int dn_quant_vnni(void)
{
    if (use_vnni < 0) { /* the same answer whichever thread asks first */
        const char *force = getenv("DIGITNET_SIMD");
        /* DIGITNET_SIMD=generic or avx2 (no AVX-512 kernels) turns the 512-bit dot product off too */
        use_vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                   !(force && (strcmp(force, "generic") == 0 || strcmp(force, "avx2") == 0));
    }
    return use_vnni;
}

int32_t dn_quant_dot(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc)
{
    return n >= 32 && dn_quant_vnni() ? dot_vnni(x, w, n, zp, acc) : dnq_dot(x, w, n, zp, acc);
}
#else
int dn_quant_vnni(void)
{
    return 0;
}

int32_t dn_quant_dot(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc)
{
    return dnq_dot(x, w, n, zp, acc);
}
#endif

/* ------------------------------------------------------------------ lowering */

typedef struct lowering {
    dn_qnet *q;
    const dn_net *net;
    int layer;        /* the dn_net layer being lowered */
    dn_shape shape;   /* the current op output's shape (flatten leaves it spatial) */
    int softmax_seen; /* a softmax: only no-op layers may follow */
    char label[96];
} lowering;

static dn_status new_op(lowering *lw, int kind, dn_qop **out, dn_error *err)
{
    dn_qnet *q = lw->q;
    if (lw->softmax_seen)
        return dn_fail(err, DN_EARG, "layer %d (%s): cannot be quantised after a softmax (softmax must end the network)",
                       lw->layer + 1, lw->label);
    if (q->n_ops == DN_QUANT_MAX_OPS)
        return dn_fail(err, DN_ELIMIT, "layer %d (%s): more than %d quantised operations", lw->layer + 1, lw->label,
                       DN_QUANT_MAX_OPS);
    dn_qop *op = &q->ops[q->n_ops++];
    memset(op, 0, sizeof *op);
    op->q.kind = kind;
    op->q.act_min = -128;
    op->source = lw->layer;
    op->q.in_h = lw->shape.h, op->q.in_w = lw->shape.w, op->q.in_c = lw->shape.c;
    op->q.out_h = lw->shape.h, op->q.out_w = lw->shape.w, op->q.out_c = lw->shape.c;
    *out = op;
    return DN_OK;
}

static dn_status add_activation(lowering *lw, dn_activation act, dn_qop *conv, dn_error *err)
{
    dn_qop *op;
    dn_status st;
    switch (act) {
    case DN_ACT_NONE:
        return DN_OK;
    case DN_ACT_SOFTMAX: /* the logits decide the class: the int8 network stops before softmax */
        lw->softmax_seen = 1;
        return DN_OK;
    case DN_ACT_RELU:
        if (conv) {
            conv->act = DN_QACT_RELU;
            return DN_OK;
        }
        if ((st = new_op(lw, DNQ_CLAMP, &op, err)) != DN_OK)
            return st;
        op->act = DN_QACT_RELU;
        return DN_OK;
    case DN_ACT_SIGMOID:
    case DN_ACT_TANH:
        if ((st = new_op(lw, DNQ_LOOKUP, &op, err)) != DN_OK)
            return st;
        op->act = act == DN_ACT_SIGMOID ? DN_QACT_SIGMOID : DN_QACT_TANH;
        return DN_OK;
    }
    return DN_OK;
}

/* A convolution op from float weights already in (out_c, kh, kw, in_c) order. */
static dn_status conv_op(lowering *lw, int out_h, int out_w, int filters, int kh, int kw, int sh, int sw, int pad_top,
                         int pad_left, dn_qop **out, dn_error *err)
{
    dn_qop *op;
    dn_status st = new_op(lw, DNQ_CONV, &op, err);
    if (st != DN_OK)
        return st;
    op->q.out_h = out_h, op->q.out_w = out_w, op->q.out_c = filters;
    op->q.kh = kh, op->q.kw = kw, op->q.stride_h = sh, op->q.stride_w = sw;
    op->q.pad_top = pad_top, op->q.pad_left = pad_left;
    size_t n = (size_t)filters * kh * kw * lw->shape.c;
    op->weight_f = malloc(sizeof(float) * n);
    op->bias_f = calloc((size_t)filters, sizeof(float));
    op->weight_scale = calloc((size_t)filters, sizeof(float));
    if (!op->weight_f || !op->bias_f || !op->weight_scale)
        return dn_fail(err, DN_ENOMEM, "out of memory for the weights of layer %d", lw->layer + 1);
    lw->shape = (dn_shape){out_h, out_w, filters};
    *out = op;
    return DN_OK;
}

static dn_status lower_conv2d(lowering *lw, const dn_layer *L, dn_error *err)
{
    int filters, kh, kw, stride = 1;
    char pad[8] = "";
    if (sscanf(lw->label, "conv2d %d %dx%d %7s stride=%d", &filters, &kh, &kw, pad, &stride) < 4)
        return dn_fail(err, DN_EFORMAT, "layer %d: cannot read '%s'", lw->layer + 1, lw->label);
    int pad_top = 0, pad_left = 0;
    dn_axis_out(L->in.h, kh, stride, strcmp(pad, "same") == 0, &pad_top);
    dn_axis_out(L->in.w, kw, stride, strcmp(pad, "same") == 0, &pad_left);
    const int C = L->in.c;
    dn_qop *op;
    dn_status st = conv_op(lw, L->out.h, L->out.w, filters, kh, kw, stride, stride, pad_top, pad_left, &op, err);
    if (st != DN_OK)
        return st;
    for (int f = 0; f < filters; f++) /* Keras (KH, KW, C, F) -> (F, KH, KW, C) */
        for (int t = 0; t < kh * kw; t++)
            for (int c = 0; c < C; c++)
                op->weight_f[((size_t)f * kh * kw + t) * C + c] = L->params[((size_t)t * C + c) * filters + f];
    memcpy(op->bias_f, L->params + (size_t)kh * kw * C * filters, sizeof(float) * (size_t)filters);
    return add_activation(lw, L->act, op, err);
}

static dn_status lower_dense(lowering *lw, const dn_layer *L, dn_error *err)
{
    const int units = L->out.c * L->out.h * L->out.w;
    const dn_shape in = lw->shape; /* spatial when a flatten came before: the window is all of it */
    const size_t n_in = dn_shape_size(in);
    /* After a globalavgpool the window is the whole map and each of its positions gets the channel's
     * weight over the map's area: dense(mean of the map) as one convolution. */
    const size_t n_weights = (size_t)L->in.c, area = n_in / n_weights;
    const float share = 1.0f / (float)area;
    dn_qop *op;
    dn_status st = conv_op(lw, 1, 1, units, in.h, in.w, 1, 1, 0, 0, &op, err);
    if (st != DN_OK)
        return st;
    for (int u = 0; u < units; u++) /* Keras (IN, UNITS) -> (UNITS, IN) */
        for (size_t i = 0; i < n_in; i++)
            op->weight_f[(size_t)u * n_in + i] =
                area == 1 ? L->params[i * units + u] : L->params[(i % n_weights) * units + u] * share;
    memcpy(op->bias_f, L->params + n_weights * units, sizeof(float) * (size_t)units);
    return add_activation(lw, L->act, op, err);
}

static dn_status lower_maxpool(lowering *lw, const dn_layer *L, dn_error *err)
{
    int ph, pw, sh, sw;
    char pad[8] = "";
    if (sscanf(lw->label, "maxpool %dx%d stride=%dx%d %7s", &ph, &pw, &sh, &sw, pad) != 5) {
        if (sscanf(lw->label, "maxpool %dx%d stride=%d %7s", &ph, &pw, &sh, pad) != 4)
            return dn_fail(err, DN_EFORMAT, "layer %d: cannot read '%s'", lw->layer + 1, lw->label);
        sw = sh;
    }
    dn_qop *op;
    dn_status st = new_op(lw, DNQ_MAXPOOL, &op, err);
    if (st != DN_OK)
        return st;
    int same = strcmp(pad, "same") == 0, pad_top = 0, pad_left = 0;
    dn_axis_out(L->in.h, ph, sh, same, &pad_top);
    dn_axis_out(L->in.w, pw, sw, same, &pad_left);
    op->q.kh = ph, op->q.kw = pw, op->q.stride_h = sh, op->q.stride_w = sw;
    op->q.pad_top = pad_top, op->q.pad_left = pad_left;
    op->q.out_h = L->out.h, op->q.out_w = L->out.w;
    lw->shape = L->out;
    return DN_OK;
}

/* y = gamma (x - mean) / sqrt(var + eps) + beta, folded into the weights and bias of the
 * convolution or dense layer just before, when nothing stands between them. */
static dn_status lower_batchnorm(lowering *lw, const dn_layer *L, dn_error *err)
{
    float momentum, eps;
    if (sscanf(lw->label, "batchnorm momentum=%f epsilon=%f", &momentum, &eps) != 2)
        return dn_fail(err, DN_EFORMAT, "layer %d: cannot read '%s'", lw->layer + 1, lw->label);
    dn_qnet *q = lw->q;
    dn_qop *prev = q->n_ops ? &q->ops[q->n_ops - 1] : NULL;
    const dn_layer *before = lw->layer ? &lw->net->layers[lw->layer - 1] : NULL;
    if (!prev || prev->q.kind != DNQ_CONV || prev->act != DN_QACT_NONE || !before ||
        (before->kind != DN_LAYER_CONV2D && before->kind != DN_LAYER_DENSE))
        return dn_fail(err, DN_EARG,
                       "layer %d (%s): cannot be quantised: batchnorm is folded into a conv2d or dense layer without "
                       "activation directly before it",
                       lw->layer + 1, lw->label);
    const int C = L->in.c;
    const size_t taps = (size_t)prev->q.kh * prev->q.kw * prev->q.in_c;
    for (int c = 0; c < C; c++) {
        float k = L->params[c] / sqrtf(L->buffers[C + c] + eps);
        for (size_t t = 0; t < taps; t++)
            prev->weight_f[(size_t)c * taps + t] *= k;
        prev->bias_f[c] = (prev->bias_f[c] - L->buffers[c]) * k + L->params[C + c];
    }
    return DN_OK;
}

/* Folded into the dense layer that follows (lower_dense); anything else after it is refused. */
static dn_status lower_globalavgpool(lowering *lw, const dn_layer *L, dn_error *err)
{
    (void)L;
    int next = lw->layer + 1;
    while (next < lw->net->n_layers &&
           (lw->net->layers[next].kind == DN_LAYER_DROPOUT || lw->net->layers[next].kind == DN_LAYER_FLATTEN))
        next++;
    if (next == lw->net->n_layers || lw->net->layers[next].kind != DN_LAYER_DENSE)
        return dn_fail(err, DN_EARG, "layer %d (%s): cannot be quantised: globalavgpool is folded into a dense layer "
                       "directly after it", lw->layer + 1, lw->label);
    return DN_OK;
}

static dn_status lower_nothing(lowering *lw, const dn_layer *L, dn_error *err)
{
    (void)lw, (void)L, (void)err;
    return DN_OK;
}

static dn_status lower_activation(lowering *lw, const dn_layer *L, dn_error *err)
{
    return add_activation(lw, L->act, NULL, err);
}

typedef dn_status (*lower_fn)(lowering *lw, const dn_layer *L, dn_error *err);

/* How each layer kind is lowered. A new kind in layers.def fails this assertion until it gets a line. */
static const lower_fn lowerers[] = {
    [DN_LAYER_CONV2D] = lower_conv2d,   [DN_LAYER_MAXPOOL] = lower_maxpool,    [DN_LAYER_DENSE] = lower_dense,
    [DN_LAYER_DROPOUT] = lower_nothing, [DN_LAYER_FLATTEN] = lower_nothing,    [DN_LAYER_BATCHNORM] = lower_batchnorm,
    [DN_LAYER_RELU] = lower_activation, [DN_LAYER_SIGMOID] = lower_activation, [DN_LAYER_TANH] = lower_activation,
    [DN_LAYER_SOFTMAX] = lower_activation, [DN_LAYER_GLOBALAVGPOOL] = lower_globalavgpool,
};
_Static_assert(sizeof lowerers / sizeof lowerers[0] == DN_LAYER_COUNT, "every layer kind needs a lowering");

/* ------------------------------------------------------------------ float forward */

size_t dn_qop_out_size(const dn_qnet *q, int op)
{
    const dnq_layer *L = &q->ops[op].q;
    return (size_t)L->out_h * L->out_w * L->out_c;
}

static float activate(dn_qact act, float x)
{
    switch (act) {
    case DN_QACT_RELU:
        return x > 0.0f ? x : 0.0f;
    case DN_QACT_SIGMOID:
        return 1.0f / (1.0f + expf(-x));
    case DN_QACT_TANH:
        return tanhf(x);
    default:
        return x;
    }
}

void dn_qop_forward_float(const dn_qnet *q, int index, const float *in, float *out)
{
    const dn_qop *op = &q->ops[index];
    const dnq_layer *L = &op->q;
    const size_t n_out = dn_qop_out_size(q, index);
    if (L->kind == DNQ_LOOKUP || L->kind == DNQ_CLAMP) {
        for (size_t i = 0; i < n_out; i++)
            out[i] = activate(op->act, in[i]);
        return;
    }
    const int taps = L->kh * L->kw * L->in_c;
    for (int oy = 0; oy < L->out_h; oy++)
        for (int ox = 0; ox < L->out_w; ox++)
            for (int f = 0; f < L->out_c; f++) {
                float acc = L->kind == DNQ_CONV ? op->bias_f[f] : -INFINITY;
                for (int ky = 0; ky < L->kh; ky++) {
                    int iy = oy * L->stride_h + ky - L->pad_top;
                    if (iy < 0 || iy >= L->in_h)
                        continue;
                    for (int kx = 0; kx < L->kw; kx++) {
                        int ix = ox * L->stride_w + kx - L->pad_left;
                        if (ix < 0 || ix >= L->in_w)
                            continue;
                        const float *x = in + ((size_t)iy * L->in_w + ix) * L->in_c;
                        if (L->kind == DNQ_MAXPOOL) {
                            acc = x[f] > acc ? x[f] : acc;
                            continue;
                        }
                        const float *w = op->weight_f + (size_t)f * taps + (size_t)(ky * L->kw + kx) * L->in_c;
                        for (int c = 0; c < L->in_c; c++)
                            acc += x[c] * w[c];
                    }
                }
                out[((size_t)oy * L->out_w + ox) * L->out_c + f] = L->kind == DNQ_CONV ? activate(op->act, acc) : acc;
            }
}

/* ------------------------------------------------------------------ quantisation */

dn_status dn_quant_multiplier(double r, int32_t *mult, int32_t *shift, dn_error *err)
{
    *mult = 0;
    *shift = 0;
    if (!(r >= 0.0) || r >= 1073741824.0)
        return dn_fail(err, DN_ELIMIT, "requantisation factor %g is out of range", r);
    if (r == 0.0)
        return DN_OK;
    int e;
    double m = frexp(r, &e); /* r = m 2^e, 0.5 <= m < 1 */
    int64_t M = (int64_t)llround(m * 2147483648.0);
    if (M == 2147483648LL) { /* m rounded up to 1 */
        M /= 2;
        e++;
    }
    if (e < -30) /* below 2^-31: every int32 accumulator maps to 0 or 1 ulp: treat as 0 */
        return DN_OK;
    *mult = (int32_t)M;
    *shift = e;
    return DN_OK;
}

/* scale and zero point covering [lo, hi] (widened to hold 0, so that 0 is exact). */
static void range_params(float lo, float hi, float *scale, int32_t *zp)
{
    lo = lo < 0.0f ? lo : 0.0f;
    hi = hi > 0.0f ? hi : 0.0f;
    if (hi - lo < 1e-6f)
        hi = lo + 1e-6f;
    *scale = (hi - lo) / 255.0f;
    long z = lround(-128.0 - (double)lo / *scale);
    *zp = (int32_t)(z < -128 ? -128 : z > 127 ? 127 : z);
}

static int8_t saturate8(double v)
{
    long r = lround(v);
    return (int8_t)(r < -128 ? -128 : r > 127 ? 127 : r);
}

static dn_status quantize_conv(dn_qop *op, float in_scale, dn_error *err)
{
    dnq_layer *L = &op->q;
    const size_t taps = (size_t)L->kh * L->kw * L->in_c, F = (size_t)L->out_c;
    range_params(op->act == DN_QACT_RELU ? 0.0f : op->lo, op->hi, &op->out_scale, &L->out_zp);
    if (op->act == DN_QACT_RELU)
        L->act_min = L->out_zp;
    op->weight = malloc(taps * F);
    op->bias = malloc(sizeof(int32_t) * F);
    op->mult = malloc(sizeof(int32_t) * F);
    op->shift = malloc(F);
    if (!op->weight || !op->bias || !op->mult || !op->shift)
        return dn_fail(err, DN_ENOMEM, "out of memory quantising layer %d", op->source + 1);
    for (size_t f = 0; f < F; f++) {
        const float *w = op->weight_f + f * taps;
        float max = 0.0f;
        for (size_t t = 0; t < taps; t++)
            max = fabsf(w[t]) > max ? fabsf(w[t]) : max;
        float ws = max > 0.0f ? max / 127.0f : 1.0f;
        op->weight_scale[f] = ws;
        double worst = 0.0; /* the largest |accumulator| any input can produce */
        for (size_t t = 0; t < taps; t++) {
            op->weight[f * taps + t] = saturate8((double)w[t] / ws);
            worst += 255.0 * abs(op->weight[f * taps + t]);
        }
        double b = round((double)op->bias_f[f] / ((double)in_scale * ws));
        worst += fabs(b);
        if (worst > INT32_MAX)
            return dn_fail(err, DN_ELIMIT, "layer %d: channel %zu can overflow a 32-bit accumulator", op->source + 1, f);
        op->bias[f] = (int32_t)b;
        int32_t shift;
        double factor = (double)in_scale * ws / op->out_scale;
        if (dn_quant_multiplier(factor, &op->mult[f], &shift, NULL) != DN_OK)
            return dn_fail(err, DN_ELIMIT, "layer %d: channel %zu needs a requantisation factor of %g, out of range",
                           op->source + 1, f, factor);
        op->shift[f] = (int8_t)shift;
    }
    L->weight = op->weight, L->bias = op->bias, L->mult = op->mult, L->shift = op->shift;
    return DN_OK;
}

static dn_status quantize_lookup(dn_qop *op, float in_scale, dn_error *err)
{
    dnq_layer *L = &op->q;
    /* TFLite's fixed output ranges: sigmoid (0, 1), tanh (-1, 1) */
    op->out_scale = op->act == DN_QACT_SIGMOID ? 1.0f / 256.0f : 1.0f / 128.0f;
    L->out_zp = op->act == DN_QACT_SIGMOID ? -128 : 0;
    if (!(op->table = malloc(256)))
        return dn_fail(err, DN_ENOMEM, "out of memory quantising layer %d", op->source + 1);
    for (int x = -128; x < 128; x++)
        op->table[x + 128] = saturate8(activate(op->act, in_scale * (float)(x - L->in_zp)) / op->out_scale + L->out_zp);
    L->table = op->table;
    return DN_OK;
}

/* Observed range of every op's output over the calibration rows (evenly spaced through data). */
static dn_status calibrate(dn_qnet *q, const dn_dataset *data, int n_calib, dn_error *err)
{
    size_t largest = dn_shape_size(q->input);
    for (int i = 0; i < q->n_ops; i++)
        largest = dn_qop_out_size(q, i) > largest ? dn_qop_out_size(q, i) : largest;
    float *a = malloc(sizeof(float) * largest), *b = malloc(sizeof(float) * largest);
    if (!a || !b) {
        free(a), free(b);
        return dn_fail(err, DN_ENOMEM, "out of memory for calibration");
    }
    for (int i = 0; i < q->n_ops; i++)
        q->ops[i].lo = INFINITY, q->ops[i].hi = -INFINITY;
    const int n = n_calib < data->n ? n_calib : data->n;
    for (int k = 0; k < n; k++) {
        int row = (int)((long long)k * data->n / n);
        dn_dataset_rows(data, row, 1, a);
        float *x = a, *y = b;
        for (int i = 0; i < q->n_ops; i++) {
            dn_qop_forward_float(q, i, x, y);
            for (size_t j = 0, m = dn_qop_out_size(q, i); j < m; j++) {
                q->ops[i].lo = y[j] < q->ops[i].lo ? y[j] : q->ops[i].lo;
                q->ops[i].hi = y[j] > q->ops[i].hi ? y[j] : q->ops[i].hi;
            }
            float *t = x;
            x = y, y = t;
        }
    }
    free(a), free(b);
    for (int i = 0; i < q->n_ops; i++)
        if (!isfinite(q->ops[i].lo) || !isfinite(q->ops[i].hi))
            return dn_fail(err, DN_ENAN, "layer %d: calibration saw values that are not finite numbers", q->ops[i].source + 1);
    return DN_OK;
}

void dn_qnet_free(dn_qnet *q)
{
    if (!q)
        return;
    for (int i = 0; i < q->n_ops; i++) {
        dn_qop *op = &q->ops[i];
        free(op->weight_f), free(op->bias_f), free(op->weight_scale);
        free(op->weight), free(op->bias), free(op->mult), free(op->shift), free(op->table);
    }
    free(q);
}

dn_status dn_quantize(const dn_net *net, const dn_dataset *calibration, int n_calibration, dn_qnet **out,
                      dn_error *err)
{
    *out = NULL;
    if (!net || !calibration || n_calibration < 1 || calibration->n < 1)
        return dn_fail(err, DN_EARG, "quantisation needs a network and at least one calibration row");
    if (net->n_members > 0)
        return dn_fail(err, DN_EARG, "ensembles cannot be quantised yet (an ensemble of %d)", net->n_members + 1);
    if (calibration->h != net->input.h || calibration->w != net->input.w || calibration->c != net->input.c)
        return dn_fail(err, DN_ESHAPE, "the network takes %dx%dx%d images but the calibration rows are %dx%dx%d",
                       net->input.h, net->input.w, net->input.c, calibration->h, calibration->w, calibration->c);
    if (net->raw_max < 1 || net->raw_max > 255 || calibration->raw_max != net->raw_max)
        return dn_fail(err, DN_ESHAPE, "the network was trained on pixels 0..%d but the calibration rows are 0..%d",
                       net->raw_max, calibration->raw_max);
    dn_qnet *q = calloc(1, sizeof *q);
    if (!q)
        return dn_fail(err, DN_ENOMEM, "out of memory");
    q->input = net->input;
    q->raw_max = net->raw_max;
    q->n_classes = dn_net_n_classes(net);
    lowering lw = {.q = q, .net = net, .shape = net->input};
    dn_status st = DN_OK;
    for (int i = 0; i < net->n_layers && st == DN_OK; i++) {
        const dn_layer *L = &net->layers[i];
        lw.layer = i;
        L->ops->print(L, lw.label, sizeof lw.label);
        st = lowerers[L->kind](&lw, L, err);
    }
    if (st == DN_OK && (dn_shape_size(lw.shape) != (size_t)q->n_classes || q->n_ops == 0))
        st = dn_fail(err, DN_ESHAPE, "the quantised network does not end in %d logits", q->n_classes);
    if (st == DN_OK)
        st = calibrate(q, calibration, n_calibration, err);
    float scale = 1.0f / (float)q->raw_max;
    int32_t zp = -128;
    size_t live = dn_shape_size(q->input);
    q->arena_bytes = live;
    for (int i = 0; i < q->n_ops && st == DN_OK; i++) {
        dn_qop *op = &q->ops[i];
        op->q.in_zp = zp;
        switch (op->q.kind) {
        case DNQ_CONV:
            st = quantize_conv(op, scale, err);
            break;
        case DNQ_LOOKUP:
            st = quantize_lookup(op, scale, err);
            break;
        default: /* max-pooling and a clamp keep their input's scale */
            op->out_scale = scale;
            op->q.out_zp = zp;
            if (op->q.kind == DNQ_CLAMP)
                op->q.act_min = zp;
        }
        scale = op->out_scale;
        zp = op->q.out_zp;
        q->layers[i] = op->q;
        if (op->q.kind == DNQ_CONV || op->q.kind == DNQ_MAXPOOL) {
            size_t n_out = dn_qop_out_size(q, i);
            q->arena_bytes = live + n_out > q->arena_bytes ? live + n_out : q->arena_bytes;
            live = n_out;
        }
    }
    if (st == DN_OK && q->arena_bytes > INT32_MAX)
        st = dn_fail(err, DN_ELIMIT, "the activations need %zu bytes, over 2 GB", q->arena_bytes);
    if (st != DN_OK) {
        dn_qnet_free(q);
        return st;
    }
    *out = q;
    return DN_OK;
}

/* ------------------------------------------------------------------ inference */

dn_shape dn_qnet_input_shape(const dn_qnet *q)
{
    return q->input;
}

int dn_qnet_raw_max(const dn_qnet *q)
{
    return q->raw_max;
}

int dn_qnet_n_classes(const dn_qnet *q)
{
    return q->n_classes;
}

dn_status dn_qnet_predict(const dn_qnet *q, const uint8_t *pixels, int n, int8_t *logits, int *classes, dn_error *err)
{
    const size_t n_pixels = dn_shape_size(q->input);
    int failed = 0;
#pragma omp parallel if (n > 8)
    {
        int8_t *arena = malloc(q->arena_bytes); /* one per thread: the net is only read */
        if (!arena) {
#pragma omp atomic write
            failed = 1;
        }
#pragma omp for schedule(static)
        for (int i = 0; i < n; i++) {
            if (!arena)
                continue;
            const int8_t *y = dnq_run(q->layers, q->n_ops, pixels + (size_t)i * n_pixels, (int32_t)n_pixels, arena,
                                      (int32_t)q->arena_bytes);
            if (logits)
                memcpy(logits + (size_t)i * q->n_classes, y, (size_t)q->n_classes);
            if (classes)
                classes[i] = dnq_argmax(y, q->n_classes);
        }
        free(arena);
    }
    return failed ? dn_fail(err, DN_ENOMEM, "out of memory for the int8 activations") : DN_OK;
}

void dn_qnet_logits_float(const dn_qnet *q, const int8_t *logits, float *out)
{
    const dn_qop *last = &q->ops[q->n_ops - 1];
    for (int k = 0; k < q->n_classes; k++)
        out[k] = last->out_scale * (float)(logits[k] - last->q.out_zp);
}

void dn_qnet_probabilities(const dn_qnet *q, const int8_t *logits, int n, float *probs)
{
    for (int i = 0; i < n; i++) {
        float *p = probs + (size_t)i * q->n_classes;
        dn_qnet_logits_float(q, logits + (size_t)i * q->n_classes, p);
        float max = p[0], sum = 0.0f;
        for (int k = 1; k < q->n_classes; k++)
            max = p[k] > max ? p[k] : max;
        for (int k = 0; k < q->n_classes; k++)
            sum += p[k] = expf(p[k] - max);
        for (int k = 0; k < q->n_classes; k++)
            p[k] /= sum;
    }
}

dn_status dn_qnet_evaluate(const dn_qnet *q, const dn_dataset *data, dn_metrics *m, float *probs_out, dn_error *err)
{
    if (data->h != q->input.h || data->w != q->input.w || data->c != q->input.c || data->raw_max != q->raw_max)
        return dn_fail(err, DN_ESHAPE, "the int8 network takes %dx%dx%d images of 0..%d but the data has %dx%dx%d of 0..%d",
                       q->input.h, q->input.w, q->input.c, q->raw_max, data->h, data->w, data->c, data->raw_max);
    if (q->n_classes != DN_N_CLASSES)
        return dn_fail(err, DN_ESHAPE, "metrics need %d classes, the network has %d", DN_N_CLASSES, q->n_classes);
    int8_t *logits = malloc((size_t)(data->n ? data->n : 1) * q->n_classes);
    float *probs = probs_out ? probs_out : malloc(sizeof(float) * (size_t)(data->n ? data->n : 1) * q->n_classes);
    dn_status st = DN_OK;
    if (!logits || !probs)
        st = dn_fail(err, DN_ENOMEM, "out of memory");
    if (st == DN_OK)
        st = dn_qnet_predict(q, data->pixels, data->n, logits, NULL, err);
    if (st == DN_OK) {
        dn_qnet_probabilities(q, logits, data->n, probs);
        st = dn_metrics_compute(probs, data->labels, data->n, m, err);
    }
    free(logits);
    if (probs != probs_out)
        free(probs);
    return st;
}

void dn_qnet_sizes(const dn_qnet *q, size_t *weight_bytes, size_t *arena_bytes)
{
    size_t w = sizeof q->layers[0] * (size_t)q->n_ops;
    for (int i = 0; i < q->n_ops; i++) {
        const dnq_layer *L = &q->ops[i].q;
        if (L->kind == DNQ_CONV)
            w += (size_t)L->out_c * ((size_t)L->kh * L->kw * L->in_c + 2 * sizeof(int32_t) + 1);
        if (L->kind == DNQ_LOOKUP)
            w += 256;
    }
    if (weight_bytes)
        *weight_bytes = w;
    if (arena_bytes)
        *arena_bytes = q->arena_bytes;
}

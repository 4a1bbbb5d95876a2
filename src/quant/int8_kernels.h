/* digitnet int8 kernels: the integer arithmetic of a quantised network (TFLite's int8 scheme).
 *
 * This text is compiled twice and must stay plain C99 on <stdint.h> alone, with no float, no
 * allocation and no library call: digitnet's host `--int8` path includes it (src/quant/quant.c),
 * and `digitnet export --format c` copies it byte for byte into the generated NAME.c
 * (src/quant/kernels_text.c embeds this file). One text, so the host and the device cannot
 * compute differently.
 *
 * Tensors are int8, channels-last (h, w, c), each with a scale and a zero point:
 * real = scale * (q - zero_point). Weights are int8, symmetric, one scale per output channel;
 * biases int32 in units of input scale x weight scale. A layer's int32 accumulator goes back to
 * int8 through a 32-bit fixed-point multiplier and a shift: y = zp + x * mult / 2^(31 - shift),
 * rounded once, half up, then clamped. Right shifts of negative numbers are arithmetic on every
 * compiler digitnet is built with (gcc, clang, arm-none-eabi-gcc). */
#include <stdint.h>

/* Kernels may go unused in a given network; convolution and pooling stay out of line, so that
 * their loops get the registers to themselves (inlined into one function they spill on Cortex-M). */
#if defined(__GNUC__)
#define DNQ_MAYBE_UNUSED __attribute__((unused))
#define DNQ_OUT_OF_LINE __attribute__((unused, noinline))
#else
#define DNQ_MAYBE_UNUSED
#define DNQ_OUT_OF_LINE
#endif

enum {
    DNQ_CONV = 1,    /* convolution; dense is a "valid" convolution whose window is the whole input */
    DNQ_MAXPOOL = 2, /* max over windows; same scale in and out */
    DNQ_LOOKUP = 3,  /* in place: y = table[x + 128] (sigmoid, tanh) */
    DNQ_CLAMP = 4    /* in place: y = max(x, act_min) (a ReLU layer of its own) */
};

/* One layer. Sizes are int32_t so that one description serves an 8-bit and a 64-bit machine. */
typedef struct dnq_layer {
    int32_t kind;
    int32_t in_h, in_w, in_c, out_h, out_w, out_c;
    int32_t kh, kw, stride_h, stride_w, pad_top, pad_left; /* window (CONV, MAXPOOL) */
    int32_t in_zp, out_zp, act_min;                        /* act_min: -128, or the zero point after a ReLU */
    const int8_t *weight;  /* CONV: (out_c, kh, kw, in_c) */
    const int32_t *bias;   /* CONV: (out_c) */
    const int32_t *mult;   /* CONV: (out_c) fixed-point multipliers, 2^30 <= mult < 2^31 (or 0) */
    const int8_t *shift;   /* CONV: (out_c) */
    const int8_t *table;   /* LOOKUP: (256) */
} dnq_layer;

/* round(x * mult / 2^(31 - shift)), halves rounded up, saturated to int32 (1 <= 31 - shift <= 62). */
static DNQ_MAYBE_UNUSED int32_t dnq_requantize(int32_t x, int32_t mult, int32_t shift)
{
    const int32_t total = 31 - shift;
    int64_t r = (int64_t)x * (int64_t)mult + ((int64_t)1 << (total - 1));
    r >>= total;
    if (r > INT32_MAX)
        return INT32_MAX;
    if (r < INT32_MIN)
        return INT32_MIN;
    return (int32_t)r;
}

/* acc + sum over i < n of (x[i] - zp) w[i]. |x - zp| <= 255, so the operands fit 16 bits and the
 * products 32 (x86 multiplies 16-bit pairs at once). A function of its own: its loop then has the
 * registers to itself. */
static DNQ_OUT_OF_LINE int32_t dnq_dot(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc)
{
    const int8_t *const end = x + n;
    while (x != end)
        acc += (int16_t)(*x++ - zp) * (int16_t)*w++;
    return acc;
}

/* A host may put an equal, faster dot product in its place (digitnet's: AVX-512 VNNI, tested equal). */
#ifndef DNQ_DOT
#define DNQ_DOT dnq_dot
#endif

/* Channels-last, one row of a window (kw pixels x in_c channels) is one contiguous run in the input
 * and in the weights: the inner loop runs over it, clipped once per output pixel to the columns
 * inside the image (the "same" padding adds nothing: its real value is 0). The layer's fields are
 * copied to locals: out is int8_t, which may alias anything, so the compiler would otherwise reload
 * every field after each store. */
static DNQ_OUT_OF_LINE void dnq_conv(const dnq_layer *L, const int8_t *in, int8_t *out)
{
    const int32_t in_h = L->in_h, in_w = L->in_w, in_c = L->in_c, out_h = L->out_h, out_w = L->out_w;
    const int32_t out_c = L->out_c, kh = L->kh, kw = L->kw, stride_h = L->stride_h, stride_w = L->stride_w;
    const int32_t pad_top = L->pad_top, pad_left = L->pad_left, in_zp = L->in_zp, out_zp = L->out_zp;
    const int32_t act_min = L->act_min, taps = kh * kw * in_c;
    const int16_t zp16 = (int16_t)in_zp;
    const int8_t *const weight = L->weight, *const shift = L->shift;
    const int32_t *const bias = L->bias, *const mult = L->mult;
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t y0 = oy * stride_h - pad_top; /* input row of window row 0 */
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = in_h - y0 < kh ? in_h - y0 : kh;
        for (int32_t ox = 0; ox < out_w; ox++) {
            const int32_t x0 = ox * stride_w - pad_left;
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = in_w - x0 < kw ? in_w - x0 : kw;
            const int32_t run = (kx1 - kx0) * in_c;
            int8_t *o = out + (oy * out_w + ox) * out_c;
            for (int32_t f = 0; f < out_c; f++) {
                int32_t acc = bias[f];
                for (int32_t ky = ky0; ky < ky1; ky++) {
                    const int8_t *x = in + ((y0 + ky) * in_w + x0 + kx0) * in_c;
                    const int8_t *w = weight + f * taps + (ky * kw + kx0) * in_c;
                    acc = DNQ_DOT(x, w, run, zp16, acc);
                }
                const int32_t y = dnq_requantize(acc, mult[f], shift[f]) + out_zp;
                o[f] = (int8_t)(y < act_min ? act_min : y > 127 ? 127 : y);
            }
        }
    }
}

static DNQ_OUT_OF_LINE void dnq_maxpool(const dnq_layer *L, const int8_t *in, int8_t *out)
{
    for (int32_t oy = 0; oy < L->out_h; oy++)
        for (int32_t ox = 0; ox < L->out_w; ox++)
            for (int32_t c = 0; c < L->out_c; c++) {
                int32_t best = -128;
                for (int32_t ky = 0; ky < L->kh; ky++) {
                    const int32_t iy = oy * L->stride_h + ky - L->pad_top;
                    if (iy < 0 || iy >= L->in_h)
                        continue; /* "same" padding never wins */
                    for (int32_t kx = 0; kx < L->kw; kx++) {
                        const int32_t ix = ox * L->stride_w + kx - L->pad_left;
                        if (ix >= 0 && ix < L->in_w && in[(iy * L->in_w + ix) * L->in_c + c] > best)
                            best = in[(iy * L->in_w + ix) * L->in_c + c];
                    }
                }
                out[(oy * L->out_w + ox) * L->out_c + c] = (int8_t)best;
            }
}

/* Runs layers[0..n_layers) on one image of raw pixels (h, w, c) and returns the last output, which
 * lies inside arena. The input scale is 1 / raw_max with zero point -128, so q = pixel - 128
 * exactly. Each layer reads from one end of the arena and writes at the other, so arena_bytes =
 * the largest input + output pair of any layer is all the memory it needs; LOOKUP and CLAMP work in
 * place. */
static DNQ_MAYBE_UNUSED const int8_t *dnq_run(const dnq_layer *layers, int32_t n_layers, const uint8_t *pixels,
                                              int32_t n_pixels, int8_t *arena, int32_t arena_bytes)
{
    int8_t *x = arena;
    int32_t at_start = 1;
    for (int32_t i = 0; i < n_pixels; i++)
        x[i] = (int8_t)((int32_t)pixels[i] - 128);
    for (int32_t l = 0; l < n_layers; l++) {
        const dnq_layer *L = &layers[l];
        const int32_t n_out = L->out_h * L->out_w * L->out_c;
        if (L->kind == DNQ_LOOKUP || L->kind == DNQ_CLAMP) {
            for (int32_t i = 0; i < n_out; i++)
                x[i] = L->kind == DNQ_LOOKUP ? L->table[(int32_t)x[i] + 128]
                                             : (int8_t)(x[i] < L->act_min ? L->act_min : x[i]);
            continue;
        }
        int8_t *y = at_start ? arena + arena_bytes - n_out : arena;
        if (L->kind == DNQ_CONV)
            dnq_conv(L, x, y);
        else
            dnq_maxpool(L, x, y);
        x = y;
        at_start = !at_start;
    }
    return x;
}

/* The first index of the largest value. */
static DNQ_MAYBE_UNUSED int dnq_argmax(const int8_t *x, int32_t n)
{
    int best = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[best])
            best = (int)i;
    return best;
}

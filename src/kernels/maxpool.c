/* Max pooling, channels-last. The training forward pass records where each maximum is as its
 * place in the window (one int per output), so that the backward pass writes d(input) from
 * d(output) without reading the pooled layer's input again: that input is the largest activation
 * of a network, and reading it back from memory was the slowest part of the backward pass. */
#include "kernels/kernels.h"

#include "internal.h" /* DN_MULTIVERSION */

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX512_KERNELS 1
#include <immintrin.h>
#endif

/* Output (oy, ox)'s window starts at input row y, column x (negative inside the padding); its part
 * inside the input is rows [y0, y1), columns [x0, x1). */
typedef struct window {
    int y, x, y0, y1, x0, x1;
} window;

static window window_at(const dn_pool_geom *g, int oy, int ox)
{
    window w;
    w.y = oy * g->sh - g->pad_top;
    w.x = ox * g->sw - g->pad_left;
    w.y0 = w.y < 0 ? 0 : w.y;
    w.y1 = w.y + g->ph < g->in_h ? w.y + g->ph : g->in_h;
    w.x0 = w.x < 0 ? 0 : w.x;
    w.x1 = w.x + g->pw < g->in_w ? w.x + g->pw : g->in_w;
    return w;
}

/* Windows that neither overlap nor leave input out: every d(input) is written exactly once, so it
 * needs no clearing first and no adding. */
static int tiles_exactly(const dn_pool_geom *g)
{
    return g->sh == g->ph && g->sw == g->pw && g->pad_top == 0 && g->pad_left == 0 && g->out_h * g->ph == g->in_h &&
           g->out_w * g->pw == g->in_w;
}

/* 2x2 windows moved by 2, every window inside the input (the usual pooling): no window loops. */
static int windows_2x2_inside(const dn_pool_geom *g)
{
    return g->ph == 2 && g->pw == 2 && g->sh == 2 && g->sw == 2 && g->pad_top == 0 && g->pad_left == 0 &&
           2 * g->out_h <= g->in_h && 2 * g->out_w <= g->in_w;
}

/* ---- portable: the channels of a pixel in the inner loop ---- */

/* The usual 2x2 windows: the general loop below unrolled, comparing in the same window order (0 1 /
 * 2 3) with the same strict >, so ties and NaNs give the same maxima and places; written as selects
 * so that the compiler vectorises the channels (the AVX2 clone runs 8 at a time). */
DN_MULTIVERSION
static void forward_2x2_generic(const dn_pool_geom *g, const float *in, float *out, int32_t *codes)
{
    const int C = g->c;
    const size_t row = (size_t)g->in_w * C;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const float *restrict p0 = in + (size_t)2 * oy * row + (size_t)2 * ox * C, *restrict p1 = p0 + C;
            const float *restrict p2 = p0 + row, *restrict p3 = p2 + C;
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            float *restrict o = out + at;
            if (!codes) {
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    float m = p0[c];
                    m = p1[c] > m ? p1[c] : m;
                    m = p2[c] > m ? p2[c] : m;
                    o[c] = p3[c] > m ? p3[c] : m;
                }
                continue;
            }
            int32_t *restrict k = codes + at;
#pragma omp simd
            for (int c = 0; c < C; c++) {
                float m = p0[c];
                int32_t code = 0;
                int gt = p1[c] > m;
                code = gt ? 1 : code, m = gt ? p1[c] : m;
                gt = p2[c] > m;
                code = gt ? 2 : code, m = gt ? p2[c] : m;
                gt = p3[c] > m;
                o[c] = gt ? p3[c] : m;
                k[c] = gt ? 3 : code;
            }
        }
}

/* Each d(output) to the place its code names: written where the windows tile the input exactly,
 * else added to the cleared d(input), as backward_generic does. */
DN_MULTIVERSION
static void backward_2x2_generic(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din, int exact)
{
    const int C = g->c;
    const size_t row = (size_t)g->in_w * C;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            float *restrict p0 = din + (size_t)2 * oy * row + (size_t)2 * ox * C, *restrict p1 = p0 + C;
            float *restrict p2 = p0 + row, *restrict p3 = p2 + C;
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            const int32_t *restrict k = codes + at;
            const float *restrict d = dout + at;
            if (exact) { /* written, as the AVX-512 path does: a -0 gradient stays -0 (the general
                          * loop's clear-and-add makes it +0; a zero's sign changes no other value) */
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    p0[c] = k[c] == 0 ? d[c] : 0.0f;
                    p1[c] = k[c] == 1 ? d[c] : 0.0f;
                    p2[c] = k[c] == 2 ? d[c] : 0.0f;
                    p3[c] = k[c] == 3 ? d[c] : 0.0f;
                }
            } else { /* the windows do not overlap: each place gets its d or +0 once, on +0 */
#pragma omp simd
                for (int c = 0; c < C; c++) {
                    p0[c] += k[c] == 0 ? d[c] : 0.0f;
                    p1[c] += k[c] == 1 ? d[c] : 0.0f;
                    p2[c] += k[c] == 2 ? d[c] : 0.0f;
                    p3[c] += k[c] == 3 ? d[c] : 0.0f;
                }
            }
        }
}

DN_MULTIVERSION
static void forward_generic(const dn_pool_geom *g, const float *in, float *out, int32_t *codes)
{
    const int C = g->c;
    if (windows_2x2_inside(g)) {
        forward_2x2_generic(g, in, out, codes);
        return;
    }
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const window w = window_at(g, oy, ox);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c = 0; c < C; c++) {
                float m = in[((size_t)w.y0 * g->in_w + w.x0) * C + c];
                int32_t code = (w.y0 - w.y) * g->pw + (w.x0 - w.x);
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) {
                        float v = in[((size_t)y * g->in_w + x) * C + c];
                        if (v > m) {
                            m = v;
                            code = (y - w.y) * g->pw + (x - w.x);
                        }
                    }
                out[at + c] = m;
                if (codes)
                    codes[at + c] = code;
            }
        }
}

DN_MULTIVERSION
static void backward_generic(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din)
{
    const int C = g->c;
    const int exact = tiles_exactly(g);
    if (windows_2x2_inside(g)) {
        if (!exact)
            memset(din, 0, sizeof(float) * (size_t)g->in_h * g->in_w * C);
        backward_2x2_generic(g, codes, dout, din, exact);
        return;
    }
    memset(din, 0, sizeof(float) * (size_t)g->in_h * g->in_w * C);
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const window w = window_at(g, oy, ox);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c = 0; c < C; c++) {
                int32_t code = codes[at + c];
                int y = w.y + code / g->pw, x = w.x + code % g->pw;
                din[((size_t)y * g->in_w + x) * C + c] += dout[at + c];
            }
        }
}

#ifdef HAVE_AVX512_KERNELS
/* ---- AVX-512: sixteen channels at a time, the last group masked (the CPUs without it run the
 * portable code above, whose 2x2 paths the compiler vectorises for AVX2) ---- */
#define AVX512 __attribute__((target("avx512f")))
#define INLINE_AVX512 static inline __attribute__((always_inline, target("avx512f")))

static __mmask16 lanes_from(int C, int c0)
{
    return C - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c0)) - 1u);
}

/* The common case in inference, 2x2 windows moved by 2 inside the input: no loops over the
 * window, and the four loads reduced as a tree rather than a chain. */
/* Stores of whole vectors are plain stores: masked stores are slow on some cores (AMD Zen 4), and
 * most channel counts are multiples of 16. */
INLINE_AVX512 void store_lanes(float *p, __mmask16 lanes, __m512 v)
{
    if (lanes == (__mmask16)0xFFFF)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, lanes, v);
}

INLINE_AVX512 void store_lanes_epi32(int32_t *p, __mmask16 lanes, __m512i v)
{
    if (lanes == (__mmask16)0xFFFF)
        _mm512_storeu_si512(p, v);
    else
        _mm512_mask_storeu_epi32(p, lanes, v);
}

AVX512 static void forward_2x2_avx512(const dn_pool_geom *g, const float *in, float *out)
{
    const int C = g->c;
    const size_t row = (size_t)g->in_w * C;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const float *a = in + (size_t)2 * oy * row + (size_t)2 * ox * C;
            float *o = out + ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const __mmask16 lanes = lanes_from(C, c0);
                /* max(v, m) = v > m ? v : m, in window order as the general loop does, so ties
                 * and NaNs come out the same (a tree of maxima would not: a NaN at the bottom
                 * left would hide the bottom right) */
                __m512 m = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, a + c0 + C), _mm512_maskz_loadu_ps(lanes, a + c0));
                m = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, a + row + c0), m);
                m = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, a + row + c0 + C), m);
                store_lanes(o + c0, lanes, m);
            }
        }
}

/* Training's 2x2 pass, with the places (0 1 / 2 3): the general loop below unrolled, comparing in
 * the same window order with the same strict >, so ties and NaNs give the same maxima and places. */
AVX512 static void forward_2x2_codes_avx512(const dn_pool_geom *g, const float *in, float *out, int32_t *codes)
{
    const int C = g->c;
    const size_t row = (size_t)g->in_w * C;
    const size_t offset[4] = {0, (size_t)C, row, row + (size_t)C};
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const float *a = in + (size_t)2 * oy * row + (size_t)2 * ox * C;
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const __mmask16 lanes = lanes_from(C, c0);
                __m512 m = _mm512_maskz_loadu_ps(lanes, a + c0);
                __m512i code = _mm512_setzero_si512();
                for (int k = 1; k < 4; k++) {
                    __m512 v = _mm512_maskz_loadu_ps(lanes, a + offset[k] + c0);
                    __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ); /* false for NaN */
                    m = _mm512_mask_mov_ps(m, gt, v);
                    code = _mm512_mask_mov_epi32(code, gt, _mm512_set1_epi32(k));
                }
                store_lanes(out + at + c0, lanes, m);
                store_lanes_epi32(codes + at + c0, lanes, code);
            }
        }
}

AVX512 static void forward_avx512(const dn_pool_geom *g, const float *in, float *out, int32_t *codes)
{
    const int C = g->c;
    if (windows_2x2_inside(g)) {
        if (codes)
            forward_2x2_codes_avx512(g, in, out, codes);
        else
            forward_2x2_avx512(g, in, out);
        return;
    }
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const window w = window_at(g, oy, ox);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const __mmask16 lanes = lanes_from(C, c0);
                __m512 m = _mm512_maskz_loadu_ps(lanes, in + ((size_t)w.y0 * g->in_w + w.x0) * C + c0);
                __m512i code = _mm512_set1_epi32((w.y0 - w.y) * g->pw + (w.x0 - w.x));
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) {
                        __m512 v = _mm512_maskz_loadu_ps(lanes, in + ((size_t)y * g->in_w + x) * C + c0);
                        __mmask16 gt = _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ); /* false for NaN */
                        m = _mm512_mask_mov_ps(m, gt, v);
                        code = _mm512_mask_mov_epi32(code, gt, _mm512_set1_epi32((y - w.y) * g->pw + (x - w.x)));
                    }
                store_lanes(out + at + c0, lanes, m);
                if (codes)
                    store_lanes_epi32(codes + at + c0, lanes, code);
            }
        }
}

/* 2x2 windows moved by 2 inside the input: each d(output) goes to the one place its code names,
 * written (the windows tile the input exactly) or added to the cleared d(input) (a last row or
 * column no window reads), as the general loop below does. */
AVX512 static void backward_2x2_avx512(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din,
                                       int exact)
{
    const int C = g->c;
    const size_t row = (size_t)g->in_w * C;
    const size_t offset[4] = {0, (size_t)C, row, row + (size_t)C};
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            float *a = din + (size_t)2 * oy * row + (size_t)2 * ox * C;
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const __mmask16 lanes = lanes_from(C, c0);
                const __m512i code = _mm512_maskz_loadu_epi32(lanes, codes + at + c0);
                const __m512 d = _mm512_maskz_loadu_ps(lanes, dout + at + c0);
                for (int k = 0; k < 4; k++) {
                    float *p = a + offset[k] + c0;
                    __mmask16 hit = _mm512_mask_cmpeq_epi32_mask(lanes, code, _mm512_set1_epi32(k));
                    if (exact)
                        store_lanes(p, lanes, _mm512_maskz_mov_ps(hit, d));
                    else
                        _mm512_mask_storeu_ps(p, hit, _mm512_add_ps(_mm512_maskz_loadu_ps(hit, p), d));
                }
            }
        }
}

AVX512 static void backward_avx512(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din)
{
    const int C = g->c;
    const int exact = tiles_exactly(g);
    if (!exact)
        memset(din, 0, sizeof(float) * (size_t)g->in_h * g->in_w * C);
    if (windows_2x2_inside(g)) {
        backward_2x2_avx512(g, codes, dout, din, exact);
        return;
    }
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            const window w = window_at(g, oy, ox);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const __mmask16 lanes = lanes_from(C, c0);
                const __m512i code = _mm512_maskz_loadu_epi32(lanes, codes + at + c0);
                const __m512 d = _mm512_maskz_loadu_ps(lanes, dout + at + c0);
                for (int y = w.y0; y < w.y1; y++)
                    for (int x = w.x0; x < w.x1; x++) {
                        float *p = din + ((size_t)y * g->in_w + x) * C + c0;
                        __mmask16 hit = _mm512_mask_cmpeq_epi32_mask(
                            lanes, code, _mm512_set1_epi32((y - w.y) * g->pw + (x - w.x)));
                        if (exact) /* written once: the gradient or zero */
                            store_lanes(p, lanes, _mm512_maskz_mov_ps(hit, d));
                        else
                            _mm512_mask_storeu_ps(p, hit, _mm512_add_ps(_mm512_maskz_loadu_ps(hit, p), d));
                    }
            }
        }
}
#endif

void dn_maxpool_forward(const dn_pool_geom *g, const float *in, float *out, int32_t *codes)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        forward_avx512(g, in, out, codes);
        return;
    }
#endif
    forward_generic(g, in, out, codes);
}

void dn_maxpool_backward(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        backward_avx512(g, codes, dout, din);
        return;
    }
#endif
    backward_generic(g, codes, dout, din);
}

/* Max pooling, channels-last. The maximum's position is not stored by the forward pass: the
 * backward pass finds it again as the first window element equal to the pooled output, which is
 * the one the forward pass kept (it replaces a maximum only with a strictly greater value). */
#include "kernels/kernels.h"

#include "layers/layer.h" /* DN_MULTIVERSION */

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX512_KERNELS 1
#include <immintrin.h>
#endif

/* The part of output (oy, ox)'s window inside the input: rows [y0, y1), columns [x0, x1). */
static void window(const dn_pool_geom *g, int oy, int ox, int *y0, int *y1, int *x0, int *x1)
{
    int y = oy * g->sh - g->pad_top, x = ox * g->sw - g->pad_left;
    *y0 = y < 0 ? 0 : y;
    *y1 = y + g->ph < g->in_h ? y + g->ph : g->in_h;
    *x0 = x < 0 ? 0 : x;
    *x1 = x + g->pw < g->in_w ? x + g->pw : g->in_w;
}

/* ---- portable: one channel at a time, the running value in a register ---- */

DN_MULTIVERSION
static void forward_generic(const dn_pool_geom *g, const float *in, float *out)
{
    const int C = g->c;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            int y0, y1, x0, x1;
            window(g, oy, ox, &y0, &y1, &x0, &x1);
            float *o = out + ((size_t)oy * g->out_w + ox) * C;
            for (int c = 0; c < C; c++) {
                float m = in[((size_t)y0 * g->in_w + x0) * C + c];
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        float v = in[((size_t)y * g->in_w + x) * C + c];
                        m = v > m ? v : m;
                    }
                o[c] = m;
            }
        }
}

DN_MULTIVERSION
static void backward_generic(const dn_pool_geom *g, const float *in, const float *out, const float *dout, float *din)
{
    const int C = g->c;
    memset(din, 0, sizeof(float) * (size_t)g->in_h * g->in_w * C);
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            int y0, y1, x0, x1;
            window(g, oy, ox, &y0, &y1, &x0, &x1);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c = 0; c < C; c++) {
                float left = dout[at + c]; /* the gradient no element has taken yet */
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) {
                        size_t p = ((size_t)y * g->in_w + x) * C + c;
                        if (in[p] == out[at + c]) {
                            din[p] += left;
                            left = 0.0f;
                        }
                    }
            }
        }
}

#ifdef HAVE_AVX512_KERNELS
/* ---- AVX-512: sixteen channels at a time, the last group masked ---- */
#define AVX512 __attribute__((target("avx512f")))

AVX512 static void forward_avx512(const dn_pool_geom *g, const float *in, float *out)
{
    const int C = g->c;
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            int y0, y1, x0, x1;
            window(g, oy, ox, &y0, &y1, &x0, &x1);
            float *o = out + ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                __mmask16 lanes = C - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c0)) - 1u);
                __m512 m = _mm512_maskz_loadu_ps(lanes, in + ((size_t)y0 * g->in_w + x0) * C + c0);
                for (int y = y0; y < y1; y++)
                    for (int x = x0; x < x1; x++) /* (v > m) ? v : m, m kept when either is NaN */
                        m = _mm512_max_ps(_mm512_maskz_loadu_ps(lanes, in + ((size_t)y * g->in_w + x) * C + c0), m);
                _mm512_mask_storeu_ps(o + c0, lanes, m);
            }
        }
}

AVX512 static void backward_avx512(const dn_pool_geom *g, const float *in, const float *out, const float *dout,
                                   float *din)
{
    const int C = g->c;
    memset(din, 0, sizeof(float) * (size_t)g->in_h * g->in_w * C);
    for (int oy = 0; oy < g->out_h; oy++)
        for (int ox = 0; ox < g->out_w; ox++) {
            int y0, y1, x0, x1;
            window(g, oy, ox, &y0, &y1, &x0, &x1);
            const size_t at = ((size_t)oy * g->out_w + ox) * C;
            for (int c0 = 0; c0 < C; c0 += 16) {
                __mmask16 lanes = C - c0 >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (C - c0)) - 1u);
                __m512 o = _mm512_maskz_loadu_ps(lanes, out + at + c0);
                __mmask16 open = lanes; /* lanes whose gradient no element has taken yet */
                __m512 left = _mm512_maskz_loadu_ps(lanes, dout + at + c0);
                for (int y = y0; y < y1 && open; y++)
                    for (int x = x0; x < x1 && open; x++) {
                        float *p = din + ((size_t)y * g->in_w + x) * C + c0;
                        __mmask16 hit =
                            _mm512_mask_cmp_ps_mask(open, _mm512_maskz_loadu_ps(lanes, in + (p - din)), o, _CMP_EQ_OQ);
                        if (hit)
                            _mm512_mask_storeu_ps(p, hit, _mm512_add_ps(_mm512_maskz_loadu_ps(hit, p), left));
                        open &= (__mmask16)~hit;
                    }
            }
        }
}
#endif

void dn_maxpool_forward(const dn_pool_geom *g, const float *in, float *out)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        forward_avx512(g, in, out);
        return;
    }
#endif
    forward_generic(g, in, out);
}

void dn_maxpool_backward(const dn_pool_geom *g, const float *in, const float *out, const float *dout, float *din)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        backward_avx512(g, in, out, dout, din);
        return;
    }
#endif
    backward_generic(g, in, out, dout, din);
}

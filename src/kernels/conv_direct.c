/* Direct convolution, stride 1, channels-last: the forward pass, and through it the input
 * gradient (conv2d runs it on the padded d(output) with the flipped kernel), and the weight
 * gradient. No im2col matrix: windows are read in place, because a window row (kw pixels of in_c
 * channels) is one contiguous run of kw * in_c floats, and so is the matching block of kernel rows.
 *
 * The AVX-512 kernels keep a tile of results in registers: R output pixels x NV vectors of 16
 * output channels (forward), or TB kernel rows x NV vectors (weight gradient); each step loads NV
 * kernel (or gradient) vectors once and reuses them R (TB) times. Tiles are instantiated for every
 * size a row can leave over, so no pixel is computed twice and no tail runs one lane at a time. */
#include "kernels/kernels.h"

#include "internal.h" /* DN_MULTIVERSION */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_AVX512_KERNELS 1
#include <immintrin.h>
#endif

/* A matrix as a "1x1 convolution": one row of `rows` pixels with `in_c` channels in and `out_c` out. */
static dn_conv_geom rows_geom(int rows, int in_c, int out_c)
{
    return (dn_conv_geom){.in_c = in_c,
                          .in_row = (size_t)rows * in_c,
                          .kh = 1,
                          .kw = 1,
                          .out_h = 1,
                          .out_w = rows,
                          .out_c = out_c,
                          .out_row = (size_t)rows * out_c};
}

/* ---- portable kernels (auto-vectorised over output channels) ---- */

DN_MULTIVERSION
static void forward_generic(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu,
                            float *out)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int y = 0; y < g->out_h; y++)
        for (int x = 0; x < g->out_w; x++) {
            float *restrict o = out + (size_t)y * g->out_row + (size_t)x * F;
            for (int f = 0; f < F; f++)
                o[f] = bias ? bias[f] : 0.0f;
            for (int ky = 0; ky < g->kh; ky++) {
                const float *s = in + (size_t)(y + ky) * g->in_row + (size_t)x * g->in_c;
                const float *wk = w + (size_t)ky * kwc * F;
                for (int t = 0; t < kwc; t++) {
                    const float v = s[t];
                    const float *restrict wr = wk + (size_t)t * F;
#pragma omp simd
                    for (int f = 0; f < F; f++)
                        o[f] += v * wr[f];
                }
            }
            if (relu)
                for (int f = 0; f < F; f++)
                    o[f] = o[f] < 0.0f ? 0.0f : o[f]; /* NaN stays NaN */
        }
}

DN_MULTIVERSION
static void weight_grad_generic(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                                size_t dout_stride, int n, float *dw)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int i = 0; i < n; i++)
        for (int y = 0; y < g->out_h; y++)
            for (int x = 0; x < g->out_w; x++) {
                const float *restrict d = dout + (size_t)i * dout_stride + (size_t)y * g->out_row + (size_t)x * F;
                for (int ky = 0; ky < g->kh; ky++) {
                    const float *s = in + (size_t)i * in_stride + (size_t)(y + ky) * g->in_row + (size_t)x * g->in_c;
                    float *dwk = dw + (size_t)ky * kwc * F;
                    for (int t = 0; t < kwc; t++) {
                        const float v = s[t];
                        float *restrict dwr = dwk + (size_t)t * F;
#pragma omp simd
                        for (int f = 0; f < F; f++)
                            dwr[f] += v * d[f];
                    }
                }
            }
}

/* c (m, n) += a^T b for a (k, m), b (k, n), columns [m0, m1) of a and [n0, n1) of b only (that
 * block of c): each element sums its k products in row order. */
DN_MULTIVERSION
static void matmul_tn_add_generic(int k, int m0, int m1, int m, int n0, int n1, int n, const float *a, const float *b,
                                  float *c)
{
    for (int r = 0; r < k; r++) {
        const float *restrict br = b + (size_t)r * n;
        for (int i = m0; i < m1; i++) {
            const float v = a[(size_t)r * m + i];
            float *restrict ci = c + (size_t)i * n;
#pragma omp simd
            for (int j = n0; j < n1; j++)
                ci[j] += v * br[j];
        }
    }
}

#ifdef HAVE_AVX512_KERNELS
#define AVX512 __attribute__((target("avx512f")))
#define INLINE static inline __attribute__((always_inline))

/* Lane mask of vector v of NV, the last one holding only the channels that exist. */
#define LANES(v, NV, tail) ((v) == (NV)-1 ? (tail) : (__mmask16)0xFFFF)

/* R output pixels x NV vectors of output channels starting at channel f0 (w, bias and out already
 * point there; ldf = out_c is the row length of w). Pixel j reads its window at src + src_at[j] and
 * writes out + out_at[j]; with NULL tables (the usual case: R pixels along one row) at src + j * C
 * and out + j * ldf. Images whose rows are shorter than a tile (4x4, 2x2) are cut into tiles
 * across row ends with the tables; every pixel sums the same terms in the same order either way, so
 * the bits are the same. Always inlined with constant tables, so the NULL tests fold away. */
INLINE AVX512 void forward_tile_px(const int NV, const int R, const float *src, const int *src_at, int C,
                                   size_t in_row, int kh, int kwc, const float *w, size_t ldf, const float *bias,
                                   __mmask16 tail, int relu, float *out, const int *out_at)
{
    __m512 acc[12][4];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        __m512 b = bias ? _mm512_maskz_loadu_ps(LANES(v, NV, tail), bias + 16 * v) : _mm512_setzero_ps();
#pragma GCC unroll 12
        for (int j = 0; j < R; j++)
            acc[j][v] = b;
    }
    for (int ky = 0; ky < kh; ky++) {
        const float *s = src + (size_t)ky * in_row;
        const float *wk = w + (size_t)ky * kwc * ldf;
        for (int t = 0; t < kwc; t++) {
            __m512 wv[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                wv[v] = _mm512_maskz_loadu_ps(LANES(v, NV, tail), wk + (size_t)t * ldf + 16 * v);
#pragma GCC unroll 12
            for (int j = 0; j < R; j++) {
                __m512 x = _mm512_set1_ps(s[(src_at ? (size_t)src_at[j] : (size_t)j * C) + t]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[j][v] = _mm512_fmadd_ps(x, wv[v], acc[j][v]);
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 12
    for (int j = 0; j < R; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            __m512 r = relu ? _mm512_max_ps(zero, acc[j][v]) : acc[j][v]; /* max(0, NaN) is NaN */
            float *o = out + (out_at ? (size_t)out_at[j] : (size_t)j * ldf);
            _mm512_mask_storeu_ps(o + 16 * v, LANES(v, NV, tail), r);
        }
}

/* R output pixels along one row: the tile without offset tables. */
INLINE AVX512 void forward_tile(const int NV, const int R, const float *src, int C, size_t in_row, int kh, int kwc,
                                const float *w, size_t ldf, const float *bias, __mmask16 tail, int relu, float *out)
{
    forward_tile_px(NV, R, src, NULL, C, in_row, kh, kwc, w, ldf, bias, tail, relu, out, NULL);
}

/* TB kernel rows (window offsets t0 .. t0+TB of row ky) x NV vectors of output channels, summed over
 * n images and every output pixel, added to dw (pointing at row t0, channel f0). */
INLINE AVX512 void weight_grad_tile(const int NV, const int TB, const dn_conv_geom *g, const float *in,
                                    size_t in_stride, const float *dout, size_t dout_stride, int n, __mmask16 tail,
                                    float *dw)
{
    const size_t ldf = (size_t)g->out_c;
    __m512 acc[12][4];
#pragma GCC unroll 12
    for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[i][v] = _mm512_setzero_ps();
    for (int img = 0; img < n; img++)
        for (int y = 0; y < g->out_h; y++) {
            const float *s = in + (size_t)img * in_stride + (size_t)y * g->in_row;
            const float *d = dout + (size_t)img * dout_stride + (size_t)y * g->out_row;
            for (int x = 0; x < g->out_w; x++, s += g->in_c, d += ldf) {
                __m512 dv[4];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    dv[v] = _mm512_maskz_loadu_ps(LANES(v, NV, tail), d + 16 * v);
#pragma GCC unroll 12
                for (int i = 0; i < TB; i++) {
                    __m512 x_ = _mm512_set1_ps(s[i]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[i][v] = _mm512_fmadd_ps(x_, dv[v], acc[i][v]);
                }
            }
        }
#pragma GCC unroll 12
    for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *p = dw + (size_t)i * ldf + 16 * v;
            __mmask16 m = LANES(v, NV, tail);
            _mm512_mask_storeu_ps(p, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, p), acc[i][v]));
        }
}

/* Tiles per vector count: 12 pixels (rows) for 1 or 2 vectors, 8 for 3, 6 for 4, so that the
 * accumulators fill at most 24 of the 32 registers. */
static const int tile_max[5] = {0, 12, 12, 8, 6};

typedef void (*forward_fn)(const float *, int, size_t, int, int, const float *, size_t, const float *, __mmask16,
                           int, float *);
typedef void (*forward_px_fn)(const float *, const int *, size_t, int, int, const float *, size_t, const float *,
                              __mmask16, int, float *, const int *);
typedef void (*weight_grad_fn)(const dn_conv_geom *, const float *, size_t, const float *, size_t, int, __mmask16,
                               float *);

#define TILE_FNS(NV, R)                                                                                          \
    AVX512 static void forward_##NV##_##R(const float *src, int C, size_t in_row, int kh, int kwc, const float *w, \
                                          size_t ldf, const float *bias, __mmask16 tail, int relu, float *out)    \
    {                                                                                                            \
        forward_tile(NV, R, src, C, in_row, kh, kwc, w, ldf, bias, tail, relu, out);                             \
    }                                                                                                            \
    AVX512 static void forward_px_##NV##_##R(const float *src, const int *src_at, size_t in_row, int kh, int kwc,  \
                                             const float *w, size_t ldf, const float *bias, __mmask16 tail,      \
                                             int relu, float *out, const int *out_at)                            \
    {                                                                                                            \
        forward_tile_px(NV, R, src, src_at, 0, in_row, kh, kwc, w, ldf, bias, tail, relu, out, out_at);             \
    }                                                                                                            \
    AVX512 static void weight_grad_##NV##_##R(const dn_conv_geom *g, const float *in, size_t in_stride,          \
                                              const float *dout, size_t dout_stride, int n, __mmask16 tail,     \
                                              float *dw)                                                         \
    {                                                                                                            \
        weight_grad_tile(NV, R, g, in, in_stride, dout, dout_stride, n, tail, dw);                               \
    }
#define TILES_6(NV) TILE_FNS(NV, 1) TILE_FNS(NV, 2) TILE_FNS(NV, 3) TILE_FNS(NV, 4) TILE_FNS(NV, 5) TILE_FNS(NV, 6)
#define TILES_8(NV) TILES_6(NV) TILE_FNS(NV, 7) TILE_FNS(NV, 8)
#define TILES_12(NV) TILES_8(NV) TILE_FNS(NV, 9) TILE_FNS(NV, 10) TILE_FNS(NV, 11) TILE_FNS(NV, 12)
TILES_12(1)
TILES_12(2)
TILES_8(3)
TILES_6(4)

#define ROW_6(P, NV) P##NV##_1, P##NV##_2, P##NV##_3, P##NV##_4, P##NV##_5, P##NV##_6
#define ROW_8(P, NV) ROW_6(P, NV), P##NV##_7, P##NV##_8
#define ROW_12(P, NV) ROW_8(P, NV), P##NV##_9, P##NV##_10, P##NV##_11, P##NV##_12
static const forward_fn forward_tiles[5][13] = {
    {NULL},
    {NULL, ROW_12(forward_, 1)},
    {NULL, ROW_12(forward_, 2)},
    {NULL, ROW_8(forward_, 3)},
    {NULL, ROW_6(forward_, 4)},
};
static const forward_px_fn forward_px_tiles[5][13] = {
    {NULL},
    {NULL, ROW_12(forward_px_, 1)},
    {NULL, ROW_12(forward_px_, 2)},
    {NULL, ROW_8(forward_px_, 3)},
    {NULL, ROW_6(forward_px_, 4)},
};
static const weight_grad_fn weight_grad_tiles[5][13] = {
    {NULL},
    {NULL, ROW_12(weight_grad_, 1)},
    {NULL, ROW_12(weight_grad_, 2)},
    {NULL, ROW_8(weight_grad_, 3)},
    {NULL, ROW_6(weight_grad_, 4)},
};

/* Output channels are taken 64 at a time (four vectors); the last group may be narrower. */
static int channel_group(int F, int f0, __mmask16 *tail)
{
    int nf = F - f0 < 64 ? F - f0 : 64;
    int nv = (nf + 15) / 16;
    int last = nf - 16 * (nv - 1);
    *tail = (__mmask16)(last == 16 ? 0xFFFF : (1u << last) - 1u);
    return nv;
}

/* Output rows shorter than a tile: tiles of rmax pixels taken in row order across row ends. */
static void forward_avx512_px(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu,
                              float *out, int f0, int nv, __mmask16 tail)
{
    const int F = g->out_c, kwc = g->kw * g->in_c, rmax = tile_max[nv], pixels = g->out_h * g->out_w;
    int src_at[12], out_at[12];
    for (int p = 0; p < pixels; p += rmax) {
        const int r = pixels - p < rmax ? pixels - p : rmax;
        for (int j = 0; j < r; j++) {
            const int y = (p + j) / g->out_w, x = (p + j) % g->out_w;
            src_at[j] = (int)((size_t)y * g->in_row + (size_t)x * g->in_c);
            out_at[j] = (int)((size_t)y * g->out_row + (size_t)x * F);
        }
        forward_px_tiles[nv][r](in, src_at, g->in_row, g->kh, kwc, w + f0, (size_t)F, bias ? bias + f0 : NULL, tail,
                                relu, out + f0, out_at);
    }
}

static void forward_avx512(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu,
                           float *out)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int f0 = 0; f0 < F; f0 += 64) {
        __mmask16 tail;
        const int nv = channel_group(F, f0, &tail), rmax = tile_max[nv];
        /* Offsets as int: an image's window reads stay far below 2^31 floats. */
        if (g->out_w < rmax && g->out_h > 1 && (size_t)g->out_h * g->in_row + (size_t)g->out_h * g->out_row < (1u << 30)) {
            forward_avx512_px(g, in, w, bias, relu, out, f0, nv, tail);
            continue;
        }
        for (int y = 0; y < g->out_h; y++)
            for (int x = 0; x < g->out_w; x += rmax) {
                int r = g->out_w - x < rmax ? g->out_w - x : rmax;
                forward_tiles[nv][r](in + (size_t)y * g->in_row + (size_t)x * g->in_c, g->in_c, g->in_row, g->kh, kwc,
                                     w + f0, (size_t)F, bias ? bias + f0 : NULL, tail, relu,
                                     out + (size_t)y * g->out_row + (size_t)x * F + f0);
            }
    }
}

static void weight_grad_avx512(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                               size_t dout_stride, int n, float *dw)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int f0 = 0; f0 < F; f0 += 64) {
        __mmask16 tail;
        const int nv = channel_group(F, f0, &tail), tmax = tile_max[nv];
        for (int ky = 0; ky < g->kh; ky++)
            for (int t = 0; t < kwc; t += tmax) {
                int tb = kwc - t < tmax ? kwc - t : tmax;
                weight_grad_tiles[nv][tb](g, in + (size_t)ky * g->in_row + t, in_stride, dout + f0, dout_stride, n, tail,
                                          dw + ((size_t)ky * kwc + t) * F + f0);
            }
    }
}
/* c rows [m0, m1), columns [n0, n1) += a^T b on the weight-gradient tiles: a "1x1 convolution"
 * whose pixels are the k rows, whose input channels are the m columns of a and whose output
 * channels are the n of b. n0 is a multiple of 64. */
static void matmul_tn_add_avx512(int k, int m0, int m1, int m, int n0, int n1, int n, const float *a, const float *b,
                                 float *c)
{
    const dn_conv_geom g = rows_geom(k, m, n);
    for (int f0 = n0; f0 < n1; f0 += 64) {
        __mmask16 tail;
        const int nv = channel_group(n1, f0, &tail), tmax = tile_max[nv];
        for (int t = m0; t < m1; t += tmax) {
            int tb = m1 - t < tmax ? m1 - t : tmax;
            weight_grad_tiles[nv][tb](&g, a + t, 0, b + f0, 0, 1, tail, c + (size_t)t * n + f0);
        }
    }
}
#endif /* HAVE_AVX512_KERNELS */

/* ---- choosing the kernels once ---- */

static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static int simd_width; /* written once under choose_once, read-only after */

static void choose(void)
{
    const char *force = getenv("DIGITNET_SIMD");
    simd_width = 0;
#ifdef HAVE_AVX512_KERNELS
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && !(force && strcmp(force, "generic") == 0))
        simd_width = 512;
#else
    (void)force;
#endif
}

int dn_kernels_simd_width(void)
{
    pthread_once(&choose_once, choose);
    return simd_width;
}

int dn_kernels_select(int width)
{
    pthread_once(&choose_once, choose);
    simd_width = 0;
#ifdef HAVE_AVX512_KERNELS
    if (width == 512 && __builtin_cpu_supports("avx512f"))
        simd_width = 512;
#else
    (void)width;
#endif
    return simd_width;
}

void dn_conv_forward(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu, float *out)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        forward_avx512(g, in, w, bias, relu, out);
        return;
    }
#endif
    forward_generic(g, in, w, bias, relu, out);
}

void dn_conv_weight_grad(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                         size_t dout_stride, int n, float *dw)
{
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        weight_grad_avx512(g, in, in_stride, dout, dout_stride, n, dw);
        return;
    }
#endif
    weight_grad_generic(g, in, in_stride, dout, dout_stride, n, dw);
}

/* ---- matrix products (dense layers, im2col convolutions) on the same tiles ---- */

/* Below this many multiply-adds a product stays on one thread: waking the other costs more. */
#define PARALLEL_WORK 250000.0
#define MATMUL_ROWS 16 /* rows of c per thread's share in dn_matmul */
#define MATMUL_TN_COLS 48 /* rows of c (columns of a) per share in dn_matmul_tn_add: 8 tiles of 6 */
#define MATMUL_TN_N 64    /* columns of c per share in dn_matmul_tn_add: one group of four vectors */

void dn_matmul(int m, int k, int n, const float *a, const float *b, const float *bias, int relu, float *c)
{
    const int blocks = (m + MATMUL_ROWS - 1) / MATMUL_ROWS;
    /* Every row of c is computed alone, so any cut into blocks (and any thread count) gives the same bits. */
    DN_PARALLEL_FOR(blocks > 1 && (double)m * k * n > PARALLEL_WORK, for (int blk = 0; blk < blocks; blk++) {
        const int r0 = blk * MATMUL_ROWS, rows = m - r0 < MATMUL_ROWS ? m - r0 : MATMUL_ROWS;
        const dn_conv_geom g = rows_geom(rows, k, n);
        dn_conv_forward(&g, a + (size_t)r0 * k, b, bias, relu, c + (size_t)r0 * n);
    });
}

/* Block blk of dn_matmul_tn_add's c (numbered below). */
static void tn_add_block(int blk, int m_blocks, int k, int m, int n, const float *a, const float *b, float *c)
{
    const int mb = blk % m_blocks, nb = blk / m_blocks;
    const int m0 = mb * MATMUL_TN_COLS, m1 = m - m0 < MATMUL_TN_COLS ? m : m0 + MATMUL_TN_COLS;
    const int n0 = nb * MATMUL_TN_N, n1 = n - n0 < MATMUL_TN_N ? n : n0 + MATMUL_TN_N;
#ifdef HAVE_AVX512_KERNELS
    if (dn_kernels_simd_width() == 512) {
        matmul_tn_add_avx512(k, m0, m1, m, n0, n1, n, a, b, c);
        return;
    }
#endif
    matmul_tn_add_generic(k, m0, m1, m, n0, n1, n, a, b, c);
}

void dn_matmul_tn_add(int k, int m, int n, const float *a, const float *b, float *c)
{
    const int m_blocks = (m + MATMUL_TN_COLS - 1) / MATMUL_TN_COLS, n_blocks = (n + MATMUL_TN_N - 1) / MATMUL_TN_N;
    const int blocks = m_blocks * n_blocks;
    /* Threads take whole blocks of c; each element's sum over the k rows runs in order in one
     * thread, so the result does not depend on the thread count. Blocks are numbered column group
     * first: the static schedule then gives each thread whole column groups, every one holding the
     * same work, instead of a short last row block to one thread (c of 128 rows is 48 + 48 + 32). */
    DN_PARALLEL_FOR(blocks > 1 && (double)m * k * n > PARALLEL_WORK,
                    for (int blk = 0; blk < blocks; blk++) tn_add_block(blk, m_blocks, k, m, n, a, b, c););
}

/* In 16 x 16 blocks, so that both the rows read and the columns written stay in cache. */
void dn_transpose(int rows, int cols, const float *src, float *dst)
{
    enum { B = 16 };
    for (int r0 = 0; r0 < rows; r0 += B)
        for (int c0 = 0; c0 < cols; c0 += B) {
            const int r1 = rows - r0 < B ? rows : r0 + B, c1 = cols - c0 < B ? cols : c0 + B;
            for (int r = r0; r < r1; r++)
                for (int j = c0; j < c1; j++)
                    dst[(size_t)j * rows + r] = src[(size_t)r * cols + j];
        }
}

/* Direct convolution, stride 1, channels-last: the forward pass, and through it the input
 * gradient (conv2d runs it on the padded d(output) with the flipped kernel), and the weight
 * gradient. No im2col matrix: windows are read in place, because a window row (kw pixels of in_c
 * channels) is one contiguous run of kw * in_c floats, and so is the matching block of kernel rows.
 *
 * The AVX-512 and AVX2 kernels (one template, conv_tiles.h) keep a tile of results in registers: R
 * output pixels x NV vectors of output channels (forward), or TB kernel rows x NV vectors (weight
 * gradient); each step loads NV kernel (or gradient) vectors once and reuses them R (TB) times.
 * Tiles are instantiated for every size a row can leave over, so no pixel is computed twice and no
 * tail runs one lane at a time. Both widths give the same bits. */
#include "kernels/kernels.h"

#include "internal.h" /* DN_MULTIVERSION */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define HAVE_X86_KERNELS 1 /* the AVX-512 and AVX2 tiles, chosen at run time */
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

#ifdef HAVE_X86_KERNELS
/* AVX-512: 32 registers, tiles of up to 24 accumulators (12 pixels x 2 vectors ... 6 x 4). */
#define T_ISA __attribute__((target("avx512f")))
#define T_SUFFIX avx512
#define T_VEC __m512
#define T_LANES 16
#define T_MASK __mmask16
#define T_MAX_NV 4
#define T_TILE_MAX {0, 12, 12, 8, 6}
#define T_ZERO() _mm512_setzero_ps()
#define T_SET1(x) _mm512_set1_ps(x)
#define T_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define T_ADD(a, b) _mm512_add_ps(a, b)
#define T_MAX(a, b) _mm512_max_ps(a, b)
#define T_MASK_OF(v, NV, tail) ((v) == (NV)-1 ? (tail) : (__mmask16)0xFFFF)
#define T_LOAD(v, NV, tail, p) _mm512_maskz_loadu_ps(T_MASK_OF(v, NV, tail), p)
#define T_STORE(v, NV, tail, p, x) _mm512_mask_storeu_ps(p, T_MASK_OF(v, NV, tail), x)
#define T_TAIL(lanes) ((__mmask16)((lanes) == 16 ? 0xFFFF : (1u << (lanes)) - 1u))
#include "kernels/conv_tiles.h"
#undef T_ISA
#undef T_SUFFIX
#undef T_VEC
#undef T_LANES
#undef T_MASK
#undef T_MAX_NV
#undef T_TILE_MAX
#undef T_ZERO
#undef T_SET1
#undef T_FMA
#undef T_ADD
#undef T_MAX
#undef T_LOAD
#undef T_STORE
#undef T_TAIL

/* AVX2 with FMA (CPUs without AVX-512: most laptops): 16 registers, tiles of up to 12
 * accumulators (12 pixels x 1 vector, 6 x 2), the last vector of a group masked by a lane count. */
__attribute__((target("avx2"))) static inline __m256i avx2_lanes(int n) /* lanes 0 .. n-1 all ones */
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
#define T_ISA __attribute__((target("avx2,fma")))
#define T_SUFFIX avx2
#define T_VEC __m256
#define T_LANES 8
#define T_MASK int
#define T_MAX_NV 2
#define T_TILE_MAX {0, 12, 6}
#define T_ZERO() _mm256_setzero_ps()
#define T_SET1(x) _mm256_set1_ps(x)
#define T_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define T_ADD(a, b) _mm256_add_ps(a, b)
#define T_MAX(a, b) _mm256_max_ps(a, b) /* like _mm512_max_ps: the second operand when either is NaN */
#define T_PART(v, NV, tail) ((v) == (NV)-1 && (tail) < 8)
#define T_LOAD(v, NV, tail, p) (T_PART(v, NV, tail) ? _mm256_maskload_ps(p, avx2_lanes(tail)) : _mm256_loadu_ps(p))
#define T_STORE(v, NV, tail, p, x)                                                                      \
    do {                                                                                                \
        if (T_PART(v, NV, tail))                                                                        \
            _mm256_maskstore_ps(p, avx2_lanes(tail), x);                                                \
        else                                                                                            \
            _mm256_storeu_ps(p, x);                                                                     \
    } while (0)
#define T_TAIL(lanes) (lanes)
#include "kernels/conv_tiles.h"
#endif /* HAVE_X86_KERNELS */

/* ---- choosing the kernels once ---- */

static pthread_once_t choose_once = PTHREAD_ONCE_INIT;
static int simd_width; /* written once under choose_once, read-only after */

/* The widest kernels this CPU runs, at most `width` (512, 256 or 0 for the portable ones). */
static int supported(int width)
{
#ifdef HAVE_X86_KERNELS
    __builtin_cpu_init();
    if (width >= 512 && __builtin_cpu_supports("avx512f"))
        return 512;
    if (width >= 256 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return 256;
#else
    (void)width;
#endif
    return 0;
}

/* DIGITNET_SIMD=generic or avx2 caps the width (the tests and a user comparing paths). */
static void choose(void)
{
    const char *force = getenv("DIGITNET_SIMD");
    const int cap = force && strcmp(force, "generic") == 0 ? 0 : force && strcmp(force, "avx2") == 0 ? 256 : 512;
    simd_width = supported(cap);
}

int dn_kernels_simd_width(void)
{
    pthread_once(&choose_once, choose);
    return simd_width;
}

int dn_kernels_select(int width)
{
    pthread_once(&choose_once, choose);
    simd_width = supported(width);
    return simd_width;
}

/* The chosen width's kernel, else the portable one. */
#ifdef HAVE_X86_KERNELS
#define DISPATCH(name, ...)                                                                             \
    do {                                                                                                \
        const int width_ = dn_kernels_simd_width();                                                     \
        if (width_ == 512)                                                                              \
            name##_avx512(__VA_ARGS__);                                                                 \
        else if (width_ == 256)                                                                         \
            name##_avx2(__VA_ARGS__);                                                                   \
        else                                                                                            \
            name##_generic(__VA_ARGS__);                                                                \
    } while (0)
#else
#define DISPATCH(name, ...) name##_generic(__VA_ARGS__)
#endif

void dn_conv_forward(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu, float *out)
{
    DISPATCH(forward, g, in, w, bias, relu, out);
}

void dn_conv_weight_grad(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                         size_t dout_stride, int n, float *dw)
{
    DISPATCH(weight_grad, g, in, in_stride, dout, dout_stride, n, dw);
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
    DISPATCH(matmul_tn_add, k, m0, m1, m, n0, n1, n, a, b, c);
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

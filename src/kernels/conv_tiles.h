/* The register-tiled convolution kernels, written once for every vector width: conv_direct.c
 * includes this file once per instruction set, after defining
 *   T_ISA             the function attribute (target("avx512f"), target("avx2,fma"))
 *   T_SUFFIX          the name suffix (avx512, avx2)
 *   T_VEC, T_LANES    the vector type and its floats
 *   T_MASK            the last vector's lane selection (a mask register, or a lane count)
 *   T_MAX_NV          vectors of output channels per group
 *   T_TILE_MAX        {0, tile rows for 1 .. T_MAX_NV vectors}: the accumulators, rows x vectors,
 *                     fill at most three quarters of the registers
 *   T_ZERO(), T_SET1(x), T_FMA(a, b, c), T_ADD(a, b), T_MAX(a, b)
 *   T_LOAD(v, NV, tail, p), T_STORE(v, NV, tail, p, x)  vector v of NV, the last one masked
 *   T_TAIL(lanes)     the T_MASK of a last vector holding `lanes` channels (1 .. T_LANES)
 * Every output sums the same terms in the same order with one fused multiply-add each, whatever the
 * width: the kernels of every width give the same bits (tests/test_kernels.c compares them). */

#define T_CAT2(a, b) a##_##b
#define T_CAT(a, b) T_CAT2(a, b)
#define T_NAME(name) T_CAT(name, T_SUFFIX)
#define T_INLINE static inline __attribute__((always_inline))

/* R output pixels x NV vectors of output channels starting at channel f0 (w, bias and out already
 * point there; ldf = out_c is the row length of w). Pixel j reads its window at src + src_at[j] and
 * writes out + out_at[j]; with NULL tables (the usual case: R pixels along one row) at src + j * C
 * and out + j * ldf. Images whose rows are shorter than a tile (4x4, 2x2) are cut into tiles
 * across row ends with the tables; every pixel sums the same terms in the same order either way, so
 * the bits are the same. Always inlined with constant tables, so the NULL tests fold away. */
T_INLINE T_ISA void T_NAME(forward_tile_px)(const int NV, const int R, const float *src, const int *src_at, int C,
                                            size_t in_row, int kh, int kwc, const float *w, size_t ldf,
                                            const float *bias, T_MASK tail, int relu, float *out, const int *out_at)
{
    T_VEC acc[12][T_MAX_NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        T_VEC b = bias ? T_LOAD(v, NV, tail, bias + T_LANES * v) : T_ZERO();
#pragma GCC unroll 12
        for (int j = 0; j < R; j++)
            acc[j][v] = b;
    }
    for (int ky = 0; ky < kh; ky++) {
        const float *s = src + (size_t)ky * in_row;
        const float *wk = w + (size_t)ky * kwc * ldf;
        for (int t = 0; t < kwc; t++) {
            T_VEC wv[T_MAX_NV];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++)
                wv[v] = T_LOAD(v, NV, tail, wk + (size_t)t * ldf + T_LANES * v);
#pragma GCC unroll 12
            for (int j = 0; j < R; j++) {
                T_VEC x = T_SET1(s[(src_at ? (size_t)src_at[j] : (size_t)j * C) + t]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    acc[j][v] = T_FMA(x, wv[v], acc[j][v]);
            }
        }
    }
    const T_VEC zero = T_ZERO();
#pragma GCC unroll 12
    for (int j = 0; j < R; j++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            T_VEC r = relu ? T_MAX(zero, acc[j][v]) : acc[j][v]; /* max(0, NaN) is NaN */
            float *o = out + (out_at ? (size_t)out_at[j] : (size_t)j * ldf);
            T_STORE(v, NV, tail, o + T_LANES * v, r);
        }
}

/* TB kernel rows (window offsets t0 .. t0+TB of row ky) x NV vectors of output channels, summed over
 * n images and every output pixel, added to dw (pointing at row t0, channel f0). */
T_INLINE T_ISA void T_NAME(weight_grad_tile)(const int NV, const int TB, const dn_conv_geom *g, const float *in,
                                             size_t in_stride, const float *dout, size_t dout_stride, int n,
                                             T_MASK tail, float *dw)
{
    const size_t ldf = (size_t)g->out_c;
    T_VEC acc[12][T_MAX_NV];
#pragma GCC unroll 12
    for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++)
            acc[i][v] = T_ZERO();
    for (int img = 0; img < n; img++)
        for (int y = 0; y < g->out_h; y++) {
            const float *s = in + (size_t)img * in_stride + (size_t)y * g->in_row;
            const float *d = dout + (size_t)img * dout_stride + (size_t)y * g->out_row;
            for (int x = 0; x < g->out_w; x++, s += g->in_c, d += ldf) {
                T_VEC dv[T_MAX_NV];
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++)
                    dv[v] = T_LOAD(v, NV, tail, d + T_LANES * v);
#pragma GCC unroll 12
                for (int i = 0; i < TB; i++) {
                    T_VEC x_ = T_SET1(s[i]);
#pragma GCC unroll 4
                    for (int v = 0; v < NV; v++)
                        acc[i][v] = T_FMA(x_, dv[v], acc[i][v]);
                }
            }
        }
#pragma GCC unroll 12
    for (int i = 0; i < TB; i++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            float *p = dw + (size_t)i * ldf + T_LANES * v;
            T_STORE(v, NV, tail, p, T_ADD(T_LOAD(v, NV, tail, p), acc[i][v]));
        }
}

/* One function per tile shape, so that each is compiled with constant NV and R. */
#define T_TILE_FNS(NV, R)                                                                                       \
    T_ISA static void T_NAME(forward_##NV##_##R)(const float *src, int C, size_t in_row, int kh, int kwc,      \
                                                 const float *w, size_t ldf, const float *bias, T_MASK tail,   \
                                                 int relu, float *out)                                         \
    {                                                                                                           \
        T_NAME(forward_tile_px)(NV, R, src, NULL, C, in_row, kh, kwc, w, ldf, bias, tail, relu, out, NULL);     \
    }                                                                                                           \
    T_ISA static void T_NAME(forward_px_##NV##_##R)(const float *src, const int *src_at, size_t in_row, int kh, \
                                                    int kwc, const float *w, size_t ldf, const float *bias,    \
                                                    T_MASK tail, int relu, float *out, const int *out_at)      \
    {                                                                                                           \
        T_NAME(forward_tile_px)(NV, R, src, src_at, 0, in_row, kh, kwc, w, ldf, bias, tail, relu, out, out_at); \
    }                                                                                                           \
    T_ISA static void T_NAME(weight_grad_##NV##_##R)(const dn_conv_geom *g, const float *in, size_t in_stride,  \
                                                     const float *dout, size_t dout_stride, int n, T_MASK tail, \
                                                     float *dw)                                                 \
    {                                                                                                           \
        T_NAME(weight_grad_tile)(NV, R, g, in, in_stride, dout, dout_stride, n, tail, dw);                     \
    }
#define T_TILES_6(NV) T_TILE_FNS(NV, 1) T_TILE_FNS(NV, 2) T_TILE_FNS(NV, 3) T_TILE_FNS(NV, 4) T_TILE_FNS(NV, 5) \
    T_TILE_FNS(NV, 6)
#define T_TILES_8(NV) T_TILES_6(NV) T_TILE_FNS(NV, 7) T_TILE_FNS(NV, 8)
#define T_TILES_12(NV) T_TILES_8(NV) T_TILE_FNS(NV, 9) T_TILE_FNS(NV, 10) T_TILE_FNS(NV, 11) T_TILE_FNS(NV, 12)
#define T_ROW_6(P, NV) T_NAME(P##NV##_1), T_NAME(P##NV##_2), T_NAME(P##NV##_3), T_NAME(P##NV##_4), \
    T_NAME(P##NV##_5), T_NAME(P##NV##_6)
#define T_ROW_8(P, NV) T_ROW_6(P, NV), T_NAME(P##NV##_7), T_NAME(P##NV##_8)
#define T_ROW_12(P, NV) T_ROW_8(P, NV), T_NAME(P##NV##_9), T_NAME(P##NV##_10), T_NAME(P##NV##_11), T_NAME(P##NV##_12)

T_TILES_12(1)
#if T_MAX_NV == 4
T_TILES_12(2)
T_TILES_8(3)
T_TILES_6(4)
#define T_TABLE(P) {{NULL}, {NULL, T_ROW_12(P, 1)}, {NULL, T_ROW_12(P, 2)}, {NULL, T_ROW_8(P, 3)}, {NULL, T_ROW_6(P, 4)}}
#elif T_MAX_NV == 2
T_TILES_6(2)
#define T_TABLE(P) {{NULL}, {NULL, T_ROW_12(P, 1)}, {NULL, T_ROW_6(P, 2)}}
#else
#error "T_MAX_NV: 2 or 4"
#endif

static const int T_NAME(tile_max)[T_MAX_NV + 1] = T_TILE_MAX;
static void (*const T_NAME(forward_tiles)[T_MAX_NV + 1][13])(const float *, int, size_t, int, int, const float *,
                                                             size_t, const float *, T_MASK, int,
                                                             float *) = T_TABLE(forward_);
static void (*const T_NAME(forward_px_tiles)[T_MAX_NV + 1][13])(const float *, const int *, size_t, int, int,
                                                                const float *, size_t, const float *, T_MASK, int,
                                                                float *, const int *) = T_TABLE(forward_px_);
static void (*const T_NAME(weight_grad_tiles)[T_MAX_NV + 1][13])(const dn_conv_geom *, const float *, size_t,
                                                                 const float *, size_t, int, T_MASK,
                                                                 float *) = T_TABLE(weight_grad_);

/* Output channels are taken T_MAX_NV vectors at a time; the last group may be narrower. */
static int T_NAME(channel_group)(int F, int f0, T_MASK *tail)
{
    const int group = T_MAX_NV * T_LANES;
    int nf = F - f0 < group ? F - f0 : group;
    int nv = (nf + T_LANES - 1) / T_LANES;
    *tail = T_TAIL(nf - T_LANES * (nv - 1));
    return nv;
}

/* Output rows shorter than a tile: tiles of rmax pixels taken in row order across row ends. */
static void T_NAME(forward_rows_px)(const dn_conv_geom *g, const float *in, const float *w, const float *bias,
                                    int relu, float *out, int f0, int nv, T_MASK tail)
{
    const int F = g->out_c, kwc = g->kw * g->in_c, rmax = T_NAME(tile_max)[nv], pixels = g->out_h * g->out_w;
    int src_at[12], out_at[12];
    for (int p = 0; p < pixels; p += rmax) {
        const int r = pixels - p < rmax ? pixels - p : rmax;
        for (int j = 0; j < r; j++) {
            const int y = (p + j) / g->out_w, x = (p + j) % g->out_w;
            src_at[j] = (int)((size_t)y * g->in_row + (size_t)x * g->in_c);
            out_at[j] = (int)((size_t)y * g->out_row + (size_t)x * F);
        }
        T_NAME(forward_px_tiles)[nv][r](in, src_at, g->in_row, g->kh, kwc, w + f0, (size_t)F, bias ? bias + f0 : NULL,
                                        tail, relu, out + f0, out_at);
    }
}

static void T_NAME(forward)(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu,
                            float *out)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int f0 = 0; f0 < F; f0 += T_MAX_NV * T_LANES) {
        T_MASK tail;
        const int nv = T_NAME(channel_group)(F, f0, &tail), rmax = T_NAME(tile_max)[nv];
        /* Offsets as int: an image's window reads stay far below 2^31 floats. */
        if (g->out_w < rmax && g->out_h > 1 && (size_t)g->out_h * g->in_row + (size_t)g->out_h * g->out_row < (1u << 30)) {
            T_NAME(forward_rows_px)(g, in, w, bias, relu, out, f0, nv, tail);
            continue;
        }
        for (int y = 0; y < g->out_h; y++)
            for (int x = 0; x < g->out_w; x += rmax) {
                int r = g->out_w - x < rmax ? g->out_w - x : rmax;
                T_NAME(forward_tiles)[nv][r](in + (size_t)y * g->in_row + (size_t)x * g->in_c, g->in_c, g->in_row, g->kh,
                                             kwc, w + f0, (size_t)F, bias ? bias + f0 : NULL, tail, relu,
                                             out + (size_t)y * g->out_row + (size_t)x * F + f0);
            }
    }
}

static void T_NAME(weight_grad)(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                                size_t dout_stride, int n, float *dw)
{
    const int F = g->out_c, kwc = g->kw * g->in_c;
    for (int f0 = 0; f0 < F; f0 += T_MAX_NV * T_LANES) {
        T_MASK tail;
        const int nv = T_NAME(channel_group)(F, f0, &tail), tmax = T_NAME(tile_max)[nv];
        for (int ky = 0; ky < g->kh; ky++)
            for (int t = 0; t < kwc; t += tmax) {
                int tb = kwc - t < tmax ? kwc - t : tmax;
                T_NAME(weight_grad_tiles)[nv][tb](g, in + (size_t)ky * g->in_row + t, in_stride, dout + f0, dout_stride, n,
                                                  tail, dw + ((size_t)ky * kwc + t) * F + f0);
            }
    }
}

/* c rows [m0, m1), columns [n0, n1) += a^T b on the weight-gradient tiles: a "1x1 convolution"
 * whose pixels are the k rows, whose input channels are the m columns of a and whose output
 * channels are the n of b. */
static void T_NAME(matmul_tn_add)(int k, int m0, int m1, int m, int n0, int n1, int n, const float *a,
                                  const float *b, float *c)
{
    const dn_conv_geom g = rows_geom(k, m, n);
    for (int f0 = n0; f0 < n1; f0 += T_MAX_NV * T_LANES) {
        T_MASK tail;
        const int nv = T_NAME(channel_group)(n1, f0, &tail), tmax = T_NAME(tile_max)[nv];
        for (int t = m0; t < m1; t += tmax) {
            int tb = m1 - t < tmax ? m1 - t : tmax;
            T_NAME(weight_grad_tiles)[nv][tb](&g, a + t, 0, b + f0, 0, 1, tail, c + (size_t)t * n + f0);
        }
    }
}

#undef T_TILE_FNS
#undef T_TILES_6
#undef T_TILES_8
#undef T_TILES_12
#undef T_ROW_6
#undef T_ROW_8
#undef T_ROW_12
#undef T_TABLE
#undef T_INLINE
#undef T_NAME
#undef T_CAT
#undef T_CAT2

/* Hot loops of the layers, on raw float arrays with shapes as arguments: the direct convolution
 * (stride 1, channels-last) used by conv2d for its forward pass and both gradients, and max pooling.
 * The convolution and the matrix products exist three times: register-tiled AVX-512 and AVX2 (one
 * template, conv_tiles.h, with the same bits) and portable C; max pooling as AVX-512 and portable C.
 * The portable code is compiled for AVX2 and plain x86-64 as well. The widest the CPU has is chosen
 * once at run time, so one binary runs on any x86-64; DIGITNET_SIMD=avx2 or generic caps it (the
 * tests run every path the CPU has). */
#ifndef DN_KERNELS_H
#define DN_KERNELS_H

#include <stddef.h>
#include <stdint.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* Whether a loop should start an OpenMP team: cond, more than one thread allowed, and not inside
 * any region. Inside an active team a nested region runs on one thread anyway; inside an inactive
 * one (a `parallel if (0)`) libgomp would build a fresh nested team for every call, which cost R1's
 * dense layers over a millisecond each. A region that runs on one
 * thread still costs libgomp a team and a closing barrier whose wake-up is a system call, about a
 * microsecond on this machine: a single-image prediction passed through eight of them. So callers
 * that get 0 run the loop with no OpenMP construct at all (DN_PARALLEL_FOR). */
static inline int dn_parallel_worth(int cond)
{
#ifdef _OPENMP
    return cond && omp_get_max_threads() > 1 && omp_get_level() == 0;
#else
    (void)cond;
    return 0;
#endif
}

/* DN_PARALLEL_FOR(cond, for (...) statement;): the loop on a static OpenMP schedule when
 * dn_parallel_worth(cond), else the same loop on the calling thread. Iterations must be
 * independent; each computes the same bits either way. */
#define DN_PARALLEL_FOR(cond, ...)                                                                 \
    do {                                                                                           \
        if (dn_parallel_worth(cond)) {                                                             \
            _Pragma("omp parallel for schedule(static)") __VA_ARGS__                               \
        } else {                                                                                   \
            __VA_ARGS__                                                                            \
        }                                                                                          \
    } while (0)

/* The same for a loop the compiler should also vectorise (omp parallel for simd). */
#define DN_PARALLEL_FOR_SIMD(cond, ...)                                                            \
    do {                                                                                           \
        if (dn_parallel_worth(cond)) {                                                             \
            _Pragma("omp parallel for simd schedule(static)") __VA_ARGS__                          \
        } else {                                                                                   \
            _Pragma("omp simd") __VA_ARGS__                                                        \
        }                                                                                          \
    } while (0)

/* One convolution over one image, channels-last, stride 1:
 *   out[y][x][f] = bias[f] + sum over ky < kh, kx < kw, c < in_c of in[y + ky][x + kx][c] * w[ky][kx][c][f]
 * for y < out_h, x < out_w. Pixels are in_c floats apart in the input, out_c in the output. */
typedef struct dn_conv_geom {
    int in_c;      /* input channels: floats from one input pixel to the next */
    size_t in_row; /* floats from one input row to the next */
    int kh, kw;    /* window */
    int out_h, out_w, out_c;
    size_t out_row; /* floats from one output row to the next */
} dn_conv_geom;

/* out (out_h, out_w, out_c) = the convolution above, then max(0, .) when relu is set (NaN stays
 * NaN). in points at the input pixel under output (0, 0)'s window corner; w is (kh, kw, in_c,
 * out_c); bias (out_c) may be NULL for zero. */
void dn_conv_forward(const dn_conv_geom *g, const float *in, const float *w, const float *bias, int relu, float *out);

/* dw (kh, kw, in_c, out_c) += sum over n images and every output pixel of in x dout: the weight
 * gradient. Image i's input starts at in + i * in_stride, its d(output) at dout + i * dout_stride.
 * The sum runs in a fixed order, whatever the CPU's thread count. */
void dn_conv_weight_grad(const dn_conv_geom *g, const float *in, size_t in_stride, const float *dout,
                         size_t dout_stride, int n, float *dw);

/* Matrix products for the dense layers and the strided (im2col) convolutions, row-major and
 * contiguous, on the same register tiles as the convolution (BLAS is not used: its speed would
 * depend on its own CPU detection). Both split work over OpenMP threads by shapes only, and every
 * output element sums its terms in the same order whatever the thread count.
 *   dn_matmul:        c (m, n) = a (m, k) b (k, n) [+ bias (n)] [then max(0, .) when relu]
 *   dn_matmul_tn_add: c (m, n) += a^T b for a (k, m), b (k, n): a weight gradient summed over k rows */
void dn_matmul(int m, int k, int n, const float *a, const float *b, const float *bias, int relu, float *c);
void dn_matmul_tn_add(int k, int m, int n, const float *a, const float *b, float *c);
/* dst (cols, rows) = src (rows, cols) transposed. */
void dn_transpose(int rows, int cols, const float *src, float *dst);

/* Max pooling over one channels-last image: window ph x pw moved by sh, sw, with pad_top / pad_left
 * rows / columns of padding before the input (never chosen as a maximum). */
typedef struct dn_pool_geom {
    int in_h, in_w, c;
    int out_h, out_w;
    int ph, pw, sh, sw, pad_top, pad_left;
} dn_pool_geom;

/* out (out_h, out_w, c) = the maximum of each window of in (in_h, in_w, c): the first element in
 * row-major order holding it (NaN never replaces a maximum). When codes is not NULL, codes (out_h,
 * out_w, c) receives that element's place in its window, ky * pw + kx, for the backward pass. */
void dn_maxpool_forward(const dn_pool_geom *g, const float *in, float *out, int32_t *codes);
/* din (in_h, in_w, c) = dout (out_h, out_w, c) routed to the elements codes names; zero elsewhere. */
void dn_maxpool_backward(const dn_pool_geom *g, const int32_t *codes, const float *dout, float *din);

/* Flush-to-zero and denormals-are-zero in every thread of the OpenMP team (kernels/fp_mode.c):
 * dn_fp_fast_begin saves each thread's MXCSR and sets both bits; dn_fp_fast_end restores them. No
 * effect off x86. Calls nest. */
#define DN_FP_MAX_THREADS 256
typedef struct dn_fp_saved {
    unsigned int csr[DN_FP_MAX_THREADS];
} dn_fp_saved;
void dn_fp_fast_begin(dn_fp_saved *saved);
void dn_fp_fast_end(const dn_fp_saved *saved);
/* The same for the calling thread alone: for work that runs on it only (one image in inference),
 * where waking the team twice would cost more than the prediction. */
void dn_fp_fast_begin_here(dn_fp_saved *saved);
void dn_fp_fast_end_here(const dn_fp_saved *saved);
/* 1 when the calling thread has both bits set (tests). */
int dn_fp_fast_active(void);

/* 512 when the AVX-512 kernels are in use, 256 for AVX2, 0 for the portable ones. */
int dn_kernels_simd_width(void);
/* Tests only: selects the widest kernels the CPU has up to simd_width (512, 256, 0 for the portable
 * ones). Returns the width now in use. Not for use while other threads run kernels. */
int dn_kernels_select(int simd_width);

#endif

/* Helpers shared by the layer files: activations, spec-token parsing, initialisation, GEMM. */
#include "layers/layer.h"
#include "kernels/kernels.h"
#include "internal.h" /* DN_MULTIVERSION */

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const activation_names[] = {"linear", "relu", "sigmoid", "tanh", "softmax"};

int dn_activation_lookup(const char *name)
{
    for (int i = 0; i < (int)(sizeof activation_names / sizeof activation_names[0]); i++)
        if (strcmp(name, activation_names[i]) == 0)
            return i;
    return -1;
}

const char *dn_activation_name(dn_activation act)
{
    return activation_names[act];
}

static void softmax_rows(float *x, size_t rows, size_t cols)
{
    for (size_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        float max = row[0];
        for (size_t j = 1; j < cols; j++)
            if (row[j] > max)
                max = row[j];
        float sum = 0.0f;
        for (size_t j = 0; j < cols; j++) {
            row[j] = expf(row[j] - max); /* shifted by the max: never overflows */
            sum += row[j];
        }
        for (size_t j = 0; j < cols; j++)
            row[j] /= sum;
    }
}

/* 1 / (1 + e^-x) with e^v computed here: v = k ln2 + r (k rounded to nearest by the 1.5 * 2^23
 * trick, ln2 in two parts), e^r by a degree-6 polynomial, 2^k put straight into the exponent bits.
 * Within 3e-7 relative of the exact value (tests/test_kernels.c), NaN stays NaN. glibc's expf is a
 * call per element that never vectorises, and its table lookups ran 1.7 times slower on one of
 * this machine's two cores; this loop is ten times faster with AVX-512. Every clone does the same
 * IEEE operations (no contraction in C11 mode): the same bits on any CPU. */
DN_MULTIVERSION
static void sigmoid_in_place(float *restrict x, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        const float in = x[i];
        float v = -in;
        v = v > -87.0f ? v : -87.0f; /* e^v stays a normal float */
        v = v < 88.0f ? v : 88.0f;
        const float k = (v * 1.44269504f + 12582912.0f) - 12582912.0f;
        const float r = (v - k * 0.693145752f) - k * 1.42860677e-6f;
        const float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666567f +
                                                 r * (0.00833338592f + r * 0.00138878066f)))));
        union {
            int32_t bits;
            float value;
        } two_k = {.bits = ((int32_t)k + 127) << 23};
        const float y = 1.0f / (1.0f + p * two_k.value);
        x[i] = in == in ? y : in;
    }
}

void dn_activation_forward(dn_activation act, float *x, size_t rows, size_t cols)
{
    size_t n = rows * cols;
    switch (act) {
    case DN_ACT_NONE:
        break;
    case DN_ACT_RELU:
        /* NaN stays NaN (as tf.nn.relu), so divergence shows in the loss */
        DN_PARALLEL_FOR_SIMD(n > 1 << 16, for (size_t i = 0; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i];);
        break;
    case DN_ACT_SIGMOID:
        sigmoid_in_place(x, n);
        break;
    case DN_ACT_TANH:
        for (size_t i = 0; i < n; i++)
            x[i] = tanhf(x[i]);
        break;
    case DN_ACT_SOFTMAX:
        softmax_rows(x, rows, cols);
        break;
    }
}

void dn_activation_backward(dn_activation act, const float *y, float *dy, size_t rows, size_t cols)
{
    size_t n = rows * cols;
    switch (act) {
    case DN_ACT_NONE:
        break;
    case DN_ACT_RELU:
        DN_PARALLEL_FOR_SIMD(n > 1 << 16, for (size_t i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;);
        break;
    case DN_ACT_SIGMOID:
#pragma omp simd /* gcc's -O2 cost model would leave it scalar */
        for (size_t i = 0; i < n; i++)
            dy[i] *= y[i] * (1.0f - y[i]);
        break;
    case DN_ACT_TANH:
#pragma omp simd /* gcc's -O2 cost model would leave it scalar */
        for (size_t i = 0; i < n; i++)
            dy[i] *= 1.0f - y[i] * y[i];
        break;
    case DN_ACT_SOFTMAX:
        /* Jacobian-vector product: dx = y * (dy - sum(dy * y)). */
        for (size_t r = 0; r < rows; r++) {
            const float *yr = y + r * cols;
            float *dr = dy + r * cols;
            float dot = 0.0f;
            for (size_t j = 0; j < cols; j++)
                dot += dr[j] * yr[j];
            for (size_t j = 0; j < cols; j++)
                dr[j] = yr[j] * (dr[j] - dot);
        }
        break;
    }
}

/* Rows [r0, r1): dy = dy * act'(y) unless the loss already gave d(pre-activation), and column sums
 * of the result into dbias. */
DN_MULTIVERSION
static void act_backward_bias_rows(dn_activation act, int fused, const float *restrict y, float *restrict dy,
                                   size_t r0, size_t r1, size_t cols, float *restrict dbias)
{
    for (size_t r = r0; r < r1; r++) {
        const float *restrict yr = y + r * cols;
        float *restrict dr = dy + r * cols;
        if (!fused && act == DN_ACT_RELU) {
#pragma omp simd
            for (size_t j = 0; j < cols; j++) {
                dr[j] = yr[j] > 0.0f ? dr[j] : 0.0f;
                dbias[j] += dr[j];
            }
            continue;
        }
        if (!fused && act == DN_ACT_SIGMOID) { /* as dn_activation_backward, fused with the sum */
#pragma omp simd
            for (size_t j = 0; j < cols; j++) {
                dr[j] *= yr[j] * (1.0f - yr[j]);
                dbias[j] += dr[j];
            }
            continue;
        }
        if (!fused)
            dn_activation_backward(act, yr, dr, 1, cols);
#pragma omp simd
        for (size_t j = 0; j < cols; j++)
            dbias[j] += dr[j];
    }
}

/* The bias gradient is summed in blocks of BIAS_BLOCK rows whatever the thread count: each block's
 * partial sum, then the partials in block order. The arithmetic is the same on 1 or 16 threads, so
 * a seed gives the same model on any machine. GROUP blocks are summed in parallel at a time. */
#define BIAS_BLOCK 256
#define PARTIAL_FLOATS 8192 /* 32 KB of stack */

void dn_activation_backward_bias(dn_activation act, int fused, const float *y, float *dy, size_t rows, size_t cols,
                                 float *dbias)
{
    float partial[PARTIAL_FLOATS];
    const size_t n_blocks = (rows + BIAS_BLOCK - 1) / BIAS_BLOCK;
    size_t group = cols <= PARTIAL_FLOATS ? PARTIAL_FLOATS / cols : 0;
    if (group == 0) { /* a layer wider than the stack buffer: one block at a time, in place */
        for (size_t blk = 0; blk < n_blocks; blk++) {
            size_t r0 = blk * BIAS_BLOCK, r1 = r0 + BIAS_BLOCK < rows ? r0 + BIAS_BLOCK : rows;
            act_backward_bias_rows(act, fused, y, dy, r0, r1, cols, dbias);
        }
        return;
    }
    for (size_t first = 0; first < n_blocks; first += group) {
        size_t count = n_blocks - first < group ? n_blocks - first : group;
        memset(partial, 0, sizeof(float) * count * cols);
        DN_PARALLEL_FOR(rows * cols > (1u << 16) && count > 1, for (size_t k = 0; k < count; k++) {
            size_t r0 = (first + k) * BIAS_BLOCK, r1 = r0 + BIAS_BLOCK < rows ? r0 + BIAS_BLOCK : rows;
            act_backward_bias_rows(act, fused, y, dy, r0, r1, cols, partial + k * cols);
        });
        for (size_t k = 0; k < count; k++)
            for (size_t j = 0; j < cols; j++)
                dbias[j] += partial[k * cols + j];
    }
}

int dn_parse_int(const char *s, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0 || v > 1 << 20)
        return -1;
    *out = (int)v;
    return 0;
}

int dn_parse_float(const char *s, float *out)
{
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

int dn_parse_size2(const char *s, int *h, int *w)
{
    char buf[32];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *x = strchr(buf, 'x');
    if (!x)
        return dn_parse_int(buf, h) == 0 ? (*w = *h, 0) : -1;
    *x = '\0';
    return dn_parse_int(buf, h) == 0 && dn_parse_int(x + 1, w) == 0 ? 0 : -1;
}

int dn_axis_out(int in, int k, int stride, int same, int *pad_before)
{
    if (same) {
        int out = (in + stride - 1) / stride;
        int total = (out - 1) * stride + k - in;
        *pad_before = total > 0 ? total / 2 : 0;
        return out;
    }
    *pad_before = 0;
    return in >= k ? (in - k) / stride + 1 : 0;
}

void dn_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, dn_rng *rng)
{
    float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * dn_rng_uniform(rng) - 1.0f) * limit;
}

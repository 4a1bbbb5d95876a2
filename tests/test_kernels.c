/* The matrix-product kernels (src/kernels/kernels.h) against OpenBLAS's sgemm and against sums in
 * double precision, on shapes that leave every kind of tile tail, with the AVX-512, AVX2 and portable
 * kernels, and the same bits on 1 and 2 threads; the convolution on images smaller than its register
 * tiles; and the AVX-512 and AVX2 kernels giving the same bits. */
#include "testutil.h"

#include "internal.h"
#include "kernels/kernels.h"
#include "layers/layer.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void fill(float *x, size_t n, dn_rng *rng)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 2.0f * dn_rng_uniform(rng) - 1.0f;
}

/* Shapes (m, k, n): tails of 16-lane vectors, of 6/8/12-wide tiles and of the 64-channel groups. */
static const int shapes[][3] = {{1, 1, 1},   {7, 5, 3},     {16, 64, 64}, {33, 17, 70},
                                {64, 1600, 64}, {100, 64, 10}, {5, 130, 129}, {129, 37, 200}};

/* |got - want| within a float sum's rounding: k terms of size |a||b| <= 1. */
static void assert_close(const float *got, const double *want, size_t n, int k, const char *what)
{
    const double tol = 1e-6 * (k + 8);
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol))
            fail_msg("%s: element %zu is %.9g, expected %.9g (tolerance %.3g)", what, i, got[i], want[i], tol);
}

static const char *width_name(int width)
{
    return width == 512 ? "AVX-512" : width == 256 ? "AVX2" : "portable";
}

static void check_matmul(int width)
{
    char what[64], what_tn[64];
    snprintf(what, sizeof what, "dn_matmul (%s)", width_name(width));
    snprintf(what_tn, sizeof what_tn, "dn_matmul_tn_add (%s)", width_name(width));
    dn_rng rng;
    dn_rng_seed(&rng, 7);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const int m = shapes[s][0], k = shapes[s][1], n = shapes[s][2];
        float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n), *bias = malloc(sizeof(float) * n);
        float *c = malloc(sizeof(float) * m * n), *c2 = malloc(sizeof(float) * m * n), *blas = malloc(sizeof(float) * m * n);
        double *want = malloc(sizeof(double) * m * n);
        assert_non_null(a), assert_non_null(b), assert_non_null(bias), assert_non_null(c), assert_non_null(c2),
            assert_non_null(blas), assert_non_null(want);
        fill(a, (size_t)m * k, &rng), fill(b, (size_t)k * n, &rng), fill(bias, (size_t)n, &rng);

        /* c = a b + bias, and with ReLU */
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++) {
                double sum = bias[j];
                for (int t = 0; t < k; t++)
                    sum += (double)a[(size_t)i * k + t] * b[(size_t)t * n + j];
                want[(size_t)i * n + j] = sum;
            }
        dn_set_threads(1);
        dn_matmul(m, k, n, a, b, bias, 0, c);
        assert_close(c, want, (size_t)m * n, k, what);
        for (int i = 0; i < m; i++)
            memcpy(blas + (size_t)i * n, bias, sizeof(float) * n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 1.0f, blas, n);
        for (size_t i = 0; i < (size_t)m * n; i++)
            assert_true(fabsf(c[i] - blas[i]) <= 2e-6f * (k + 8));
        dn_set_threads(2);
        dn_matmul(m, k, n, a, b, bias, 0, c2);
        assert_memory_equal(c, c2, sizeof(float) * m * n);
        dn_matmul(m, k, n, a, b, bias, 1, c2);
        for (size_t i = 0; i < (size_t)m * n; i++)
            assert_true(c2[i] == (c[i] < 0.0f ? 0.0f : c[i]));

        /* c (m, n) += a'^T b' with a' = a read as (k2, m), b' as (k2, n): the weight gradient */
        const int k2 = k;
        float *at = malloc(sizeof(float) * k2 * m), *bt = malloc(sizeof(float) * k2 * n);
        assert_non_null(at), assert_non_null(bt);
        fill(at, (size_t)k2 * m, &rng), fill(bt, (size_t)k2 * n, &rng);
        for (size_t i = 0; i < (size_t)m * n; i++)
            c[i] = c2[i] = blas[i] = (float)(want[i] = 0.25 * (double)(i % 7));
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
                for (int t = 0; t < k2; t++)
                    want[(size_t)i * n + j] += (double)at[(size_t)t * m + i] * bt[(size_t)t * n + j];
        dn_set_threads(1);
        dn_matmul_tn_add(k2, m, n, at, bt, c);
        assert_close(c, want, (size_t)m * n, k2, what_tn);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, k2, 1.0f, at, m, bt, n, 1.0f, blas, n);
        for (size_t i = 0; i < (size_t)m * n; i++)
            assert_true(fabsf(c[i] - blas[i]) <= 2e-6f * (k2 + 8));
        dn_set_threads(2);
        dn_matmul_tn_add(k2, m, n, at, bt, c2);
        assert_memory_equal(c, c2, sizeof(float) * m * n);

        free(a), free(b), free(bias), free(c), free(c2), free(blas), free(want), free(at), free(bt);
    }
}

static void test_matmul_portable(void **state)
{
    (void)state;
    int saved = dn_kernels_simd_width();
    assert_int_equal(dn_kernels_select(0), 0);
    check_matmul(0);
    dn_kernels_select(saved);
}

static void check_matmul_width(int width)
{
    int saved = dn_kernels_simd_width();
    if (dn_kernels_select(width) != width) {
        dn_kernels_select(saved);
        skip(); /* this CPU has no such vectors: the narrower tests cover it */
    }
    check_matmul(width);
    dn_kernels_select(saved);
}

static void test_matmul_avx512(void **state)
{
    (void)state;
    check_matmul_width(512);
}

static void test_matmul_avx2(void **state)
{
    (void)state;
    check_matmul_width(256);
}

/* Convolutions whose output rows are shorter than a register tile (2x2, 4x4, 3x5 outputs; one, two,
 * three and four vectors of channels with tails): the whole image at once (cut into tiles across
 * row ends) must equal, bit for bit, the same rows computed one by one (tiles within a row), and a
 * double sum within rounding. The output rows are wider than the computed part (out_row), as in a
 * partial convolution. */
static void check_small_images(const char *what)
{
    static const int cases[][5] = {/* out_h, out_w, in_c, k, out_c */
                                   {2, 2, 32, 3, 64}, {4, 4, 16, 3, 32}, {3, 5, 3, 2, 10},  {2, 3, 7, 1, 48},
                                   {5, 2, 1, 3, 16},  {4, 4, 5, 2, 80},  {6, 7, 2, 3, 129}, {2, 2, 64, 2, 33}};
    dn_rng rng;
    dn_rng_seed(&rng, 11);
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const int OH = cases[s][0], OW = cases[s][1], C = cases[s][2], K = cases[s][3], F = cases[s][4];
        const int IH = OH + K - 1, IW = OW + K - 1, OWR = OW + 1; /* one unused pixel per output row */
        const dn_conv_geom g = {.in_c = C, .in_row = (size_t)IW * C, .kh = K, .kw = K, .out_h = OH, .out_w = OW,
                                .out_c = F, .out_row = (size_t)OWR * F};
        float *in = malloc(sizeof(float) * IH * IW * C), *w = malloc(sizeof(float) * K * K * C * F);
        float *bias = malloc(sizeof(float) * F), *whole = calloc((size_t)OH * OWR * F, sizeof(float));
        float *rows = calloc((size_t)OH * OWR * F, sizeof(float));
        double *want = malloc(sizeof(double) * OH * OW * F);
        assert_non_null(in), assert_non_null(w), assert_non_null(bias), assert_non_null(whole), assert_non_null(rows),
            assert_non_null(want);
        fill(in, (size_t)IH * IW * C, &rng), fill(w, (size_t)K * K * C * F, &rng), fill(bias, (size_t)F, &rng);
        dn_conv_forward(&g, in, w, bias, 0, whole); /* (OH, OWR, F), columns OW.. untouched */
        dn_conv_geom one = g;
        one.out_h = 1;
        for (int y = 0; y < OH; y++)
            dn_conv_forward(&one, in + (size_t)y * g.in_row, w, bias, 0, rows + (size_t)y * g.out_row);
        assert_memory_equal(whole, rows, sizeof(float) * OH * OWR * F);
        for (int y = 0; y < OH; y++)
            for (int x = 0; x < OW; x++)
                for (int f = 0; f < F; f++) {
                    double sum = bias[f];
                    for (int ky = 0; ky < K; ky++)
                        for (int kx = 0; kx < K; kx++)
                            for (int c = 0; c < C; c++)
                                sum += (double)in[((size_t)(y + ky) * IW + x + kx) * C + c] *
                                       w[(((size_t)ky * K + kx) * C + c) * F + f];
                    want[((size_t)y * OW + x) * F + f] = sum;
                    assert_true(whole[(size_t)y * g.out_row + (size_t)x * F + f] ==
                                whole[(size_t)y * g.out_row + (size_t)x * F + f]); /* written, not NaN */
                }
        for (int y = 0; y < OH; y++) {
            assert_close(whole + (size_t)y * g.out_row, want + (size_t)y * OW * F, (size_t)OW * F, K * K * C, what);
            for (int f = 0; f < F; f++) /* the unused pixel of each row stays untouched */
                assert_true(whole[(size_t)y * g.out_row + (size_t)OW * F + f] == 0.0f);
        }
        free(in), free(w), free(bias), free(whole), free(rows), free(want);
    }
}

static void test_conv_small_images(void **state)
{
    (void)state;
    int saved = dn_kernels_simd_width();
    dn_kernels_select(0);
    check_small_images("dn_conv_forward (portable)");
    for (int width = 256; width <= 512; width *= 2) {
        char what[64];
        snprintf(what, sizeof what, "dn_conv_forward (%s)", width_name(width));
        if (dn_kernels_select(width) == width)
            check_small_images(what);
        else
            print_message("%s convolution: skipped (this CPU has no %s)\n", width_name(width), width_name(width));
    }
    dn_kernels_select(saved);
}

/* One convolution's forward pass (with bias and ReLU) and weight gradient, and a weight-gradient
 * product, on the kernels of one width. */
typedef struct conv_case {
    dn_conv_geom g;
    float *in, *w, *bias, *dout, *out, *dw, *c;
    int n, m, k, cols;
    const float *a, *b;
} conv_case;

static void run_width(conv_case *t, int relu)
{
    memset(t->out, 0, sizeof(float) * t->g.out_h * t->g.out_row);
    memset(t->dw, 0, sizeof(float) * t->g.kh * t->g.kw * t->g.in_c * t->g.out_c);
    dn_conv_forward(&t->g, t->in, t->w, t->bias, relu, t->out);
    dn_conv_weight_grad(&t->g, t->in, (size_t)(t->g.out_h + t->g.kh - 1) * t->g.in_row, t->dout,
                        (size_t)t->g.out_h * t->g.out_row, t->n, t->dw);
    for (int i = 0; i < t->m * t->cols; i++)
        t->c[i] = 0.5f;
    dn_matmul_tn_add(t->k, t->m, t->cols, t->a, t->b, t->c);
}

/* The AVX-512 and AVX2 kernels sum every output's terms in the same order with one fused
 * multiply-add each: a model trains to the same bits on a CPU with AVX-512 and on one with only
 * AVX2. Shapes with channel counts that leave tails of 8 and 16 lanes, of 16- and 64-channel groups,
 * and rows shorter and longer than every tile. */
static void test_widths_same_bits(void **state)
{
    (void)state;
    int saved = dn_kernels_simd_width();
    if (dn_kernels_select(512) != 512 || dn_kernels_select(256) != 256) {
        dn_kernels_select(saved);
        skip(); /* needs both: a CPU with AVX-512 */
    }
    static const int cases[][6] = {/* out_h, out_w, in_c, k, out_c, images */
                                   {28, 28, 1, 5, 32, 2}, {14, 14, 32, 3, 64, 2}, {3, 5, 3, 2, 10, 3},
                                   {2, 2, 64, 3, 33, 1},  {6, 13, 7, 3, 129, 2}, {1, 17, 5, 1, 80, 1},
                                   {4, 4, 16, 3, 24, 3},  {7, 9, 2, 2, 7, 2}};
    dn_rng rng;
    dn_rng_seed(&rng, 23);
    for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) {
        const int OH = cases[s][0], OW = cases[s][1], C = cases[s][2], K = cases[s][3], F = cases[s][4];
        const int N = cases[s][5], IH = OH + K - 1, IW = OW + K - 1;
        conv_case t = {.g = {.in_c = C, .in_row = (size_t)IW * C, .kh = K, .kw = K, .out_h = OH, .out_w = OW,
                             .out_c = F, .out_row = (size_t)OW * F},
                       .n = N, .m = C * K, .k = OH * OW, .cols = F};
        const size_t n_in = (size_t)N * IH * IW * C, n_w = (size_t)K * K * C * F, n_out = (size_t)N * OH * OW * F;
        float *in = malloc(sizeof(float) * n_in), *w = malloc(sizeof(float) * n_w), *bias = malloc(sizeof(float) * F);
        float *dout = malloc(sizeof(float) * n_out), *a = malloc(sizeof(float) * t.k * t.m);
        float *b = malloc(sizeof(float) * t.k * F);
        float *out[2], *dw[2], *c[2];
        for (int i = 0; i < 2; i++) {
            out[i] = malloc(sizeof(float) * OH * OW * F), dw[i] = malloc(sizeof(float) * n_w);
            c[i] = malloc(sizeof(float) * t.m * F);
            assert_non_null(out[i]), assert_non_null(dw[i]), assert_non_null(c[i]);
        }
        assert_non_null(in), assert_non_null(w), assert_non_null(bias), assert_non_null(dout), assert_non_null(a),
            assert_non_null(b);
        fill(in, n_in, &rng), fill(w, n_w, &rng), fill(bias, (size_t)F, &rng), fill(dout, n_out, &rng);
        fill(a, (size_t)t.k * t.m, &rng), fill(b, (size_t)t.k * F, &rng);
        t.in = in, t.w = w, t.bias = bias, t.dout = dout, t.a = a, t.b = b;
        for (int relu = 0; relu < 2; relu++) {
            for (int i = 0; i < 2; i++) {
                dn_kernels_select(i ? 256 : 512);
                t.out = out[i], t.dw = dw[i], t.c = c[i];
                run_width(&t, relu);
            }
            if (memcmp(out[0], out[1], sizeof(float) * OH * OW * F) || memcmp(dw[0], dw[1], sizeof(float) * n_w) ||
                memcmp(c[0], c[1], sizeof(float) * t.m * F))
                fail_msg("case %zu (%dx%d, %d channels, %dx%d kernel, %d filters): AVX2 and AVX-512 differ", s, OH, OW,
                         C, K, K, F);
        }
        free(in), free(w), free(bias), free(dout), free(a), free(b);
        for (int i = 0; i < 2; i++)
            free(out[i]), free(dw[i]), free(c[i]);
    }
    dn_kernels_select(saved);
}

static void test_transpose(void **state)
{
    (void)state;
    float src[6] = {1, 2, 3, 4, 5, 6}, dst[6];
    dn_transpose(2, 3, src, dst); /* (2, 3) -> (3, 2) */
    const float want[6] = {1, 4, 2, 5, 3, 6};
    assert_memory_equal(dst, want, sizeof want);
    /* shapes that cross the 16 x 16 blocks */
    const int shapes2[][2] = {{17, 33}, {64, 128}, {5, 100}};
    for (int s = 0; s < 3; s++) {
        const int r = shapes2[s][0], c = shapes2[s][1];
        float *a = malloc(sizeof(float) * r * c), *t = malloc(sizeof(float) * r * c);
        assert_non_null(a), assert_non_null(t);
        for (int i = 0; i < r * c; i++)
            a[i] = (float)i;
        dn_transpose(r, c, a, t);
        for (int i = 0; i < r; i++)
            for (int j = 0; j < c; j++)
                assert_true(t[(size_t)j * r + i] == a[(size_t)i * c + j]);
        free(a), free(t);
    }
}

/* The sigmoid's own exponential: within 3e-7 relative of the exact value from -100 to 100 (where
 * the value is a normal float), NaN and infinities handled, and the vector body and the scalar
 * tail of the loop give the same bits. */
static void test_sigmoid(void **state)
{
    (void)state;
    const size_t n = 200001;
    float *x = malloc(sizeof(float) * n), *one = malloc(sizeof(float) * n);
    assert_non_null(x), assert_non_null(one);
    for (size_t i = 0; i < n; i++)
        x[i] = one[i] = -100.0f + 0.001f * (float)i;
    dn_activation_forward(DN_ACT_SIGMOID, x, 1, n);
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        const double exact = 1.0 / (1.0 + exp(-(double)one[i]));
        if (exact > 1e-37) {
            const double rel = fabs((double)x[i] - exact) / exact;
            worst = rel > worst ? rel : worst;
        }
        assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
    }
    print_message("sigmoid: worst relative error %.3g\n", worst);
    assert_true(worst < 3e-7);
    for (size_t i = 0; i < n; i += 997) { /* one at a time: the scalar path */
        float v = one[i];
        dn_activation_forward(DN_ACT_SIGMOID, &v, 1, 1);
        assert_memory_equal(&v, &x[i], sizeof v);
    }
    float special[3] = {NAN, INFINITY, -INFINITY};
    dn_activation_forward(DN_ACT_SIGMOID, special, 1, 3);
    assert_true(isnan(special[0]));
    assert_true(special[1] == 1.0f);
    assert_true(special[2] >= 0.0f && special[2] < 1e-37f); /* e^88 at most: 6e-39, or 0 with flush-to-zero */
    free(x), free(one);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_portable),
        cmocka_unit_test(test_matmul_avx512),
        cmocka_unit_test(test_matmul_avx2),
        cmocka_unit_test(test_widths_same_bits),
        cmocka_unit_test(test_transpose),
        cmocka_unit_test(test_conv_small_images),
        cmocka_unit_test(test_sigmoid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * int8 quantisation (src/quant/): the fixed-point multiplier and shift against exact rational
 * arithmetic, per-channel weight scales, every layer of real trained networks against its float
 * version within the quantisation error, the lowering against dn_net_predict, the kernel text the
 * export embeds, and the export's errors (bad name, unwritable directory, a layer that cannot be
 * quantised: nothing written).
 */
#include "testutil.h"
#include "net.h"
#include "quant/quant.h"

#include <dirent.h>

static dn_dataset tra, tes;

static int load_data(void **state)
{
    (void)state;
    dn_error err = {0};
    if (dn_data_open("optdigits", DN_TEST_DATA, &tra, &tes, &err) == DN_OK)
        return 0;
    print_error("cannot load optdigits: %s\n", err.msg);
    return -1;
}

static int free_data(void **state)
{
    (void)state;
    dn_dataset_free(&tra);
    dn_dataset_free(&tes);
    return 0;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* dnq_requantize(x, M, s) must be the integer r with r - 1/2 <= x M / 2^(31-s) < r + 1/2, checked
 * in 128-bit integers: -2^(t-1) <= x M - r 2^t < 2^(t-1), t = 31 - s (unless saturated). */
static void check_requantize(int32_t x, int32_t mult, int32_t shift)
{
    const int t = 31 - shift;
    const int32_t r = dnq_requantize(x, mult, shift);
    const __int128 prod = (__int128)x * mult, half = (__int128)1 << (t - 1);
    const __int128 rest = prod - (__int128)r * ((__int128)1 << t);
    if (r == INT32_MAX && rest >= half)
        return; /* saturated above */
    if (r == INT32_MIN && rest < -half)
        return;
    if (!(rest >= -half && rest < half))
        fail_msg("dnq_requantize(%d, %d, %d) = %d is not x*M/2^%d rounded", x, mult, shift, r, t);
}

static void test_requantize_exact(void **state)
{
    (void)state;
    const int32_t edge_x[] = {0, 1, -1, 2, -2, 3, -3, 127, -128, 1 << 20, -(1 << 20), INT32_MAX, INT32_MIN};
    const int32_t edge_m[] = {0, 1 << 30, (1 << 30) + 1, INT32_MAX, 1518500250};
    for (int s = -31; s <= 30; s++)
        for (size_t i = 0; i < sizeof edge_x / sizeof edge_x[0]; i++)
            for (size_t j = 0; j < sizeof edge_m / sizeof edge_m[0]; j++)
                check_requantize(edge_x[i], edge_m[j], s);
    /* exact halves round up: 3 * 2^30 / 2^31 = 1.5 -> 2, -3 * 2^30 / 2^31 = -1.5 -> -1 */
    assert_int_equal(dnq_requantize(3, 1 << 30, 0), 2);
    assert_int_equal(dnq_requantize(-3, 1 << 30, 0), -1);
    for (int i = 0; i < 200000; i++) {
        int32_t x = (int32_t)next_random();
        if (i % 3 == 0)
            x >>= next_random() % 31; /* accumulators of every size */
        int32_t m = (int32_t)((1u << 30) + (uint32_t)(next_random() % (1u << 30)));
        int32_t s = (int32_t)(next_random() % 62) - 31;
        check_requantize(x, m, s);
    }
}

/* r ~ M 2^(s - 31) within half a unit of M's last place, 2^30 <= M < 2^31. */
static void test_multiplier(void **state)
{
    (void)state;
    const double values[] = {1.0, 0.5, 0.75, 1.0 / 3.0, 0.999999999, 1e-3, 2.0e-7, 3.7, 1000.5, 0x1p-29, 0.0019387};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        int32_t m, s;
        assert_int_equal(dn_quant_multiplier(values[i], &m, &s, NULL), DN_OK);
        assert_true(m >= (1 << 30));
        long double got = ldexpl((long double)m, s - 31), ulp = ldexpl(1.0L, s - 31);
        if (!(fabsl(got - values[i]) <= ulp / 2))
            fail_msg("multiplier of %.17g: %d * 2^(%d - 31) = %.20Lg", values[i], m, s, got);
        /* through dnq_requantize: x r rounded, within half a unit plus M's own error */
        for (int32_t x = -100000; x <= 100000; x += 997) {
            double want = x * values[i];
            int32_t r = dnq_requantize(x, m, s);
            assert_true(fabs(r - want) <= 0.5 + fabs((double)x) * (double)ulp / 2 + 1e-9);
        }
    }
    int32_t m = 1, s = 1;
    assert_int_equal(dn_quant_multiplier(0.0, &m, &s, NULL), DN_OK);
    assert_int_equal(m, 0);
    assert_int_equal(dnq_requantize(123456, m, s), 0);
    assert_int_equal(dn_quant_multiplier(0x1p30, &m, &s, NULL), DN_ELIMIT);
    assert_int_equal(dn_quant_multiplier(-1.0, &m, &s, NULL), DN_ELIMIT);
}

static dn_net *parse(const char *spec, uint64_t seed)
{
    dn_net *net = NULL;
    dn_error err = {0};
    if (dn_net_parse(spec, "test", seed, &net, &err) != DN_OK)
        fail_msg("%s", err.msg);
    dn_net_set_raw_max(net, 16);
    return net;
}

static dn_net *train(const char *spec, int epochs, uint64_t seed)
{
    dn_net *net = parse(spec, seed);
    dn_train_params p = dn_train_default_params();
    p.epochs = epochs;
    p.batch_size = 64;
    p.seed = seed;
    dn_error err = {0};
    if (dn_train(net, &tra, NULL, &p, &err) != DN_OK)
        fail_msg("%s", err.msg);
    return net;
}

static dn_qnet *quantize(const dn_net *net, int n)
{
    dn_qnet *q = NULL;
    dn_error err = {0};
    if (dn_quantize(net, &tra, n, &q, &err) != DN_OK)
        fail_msg("%s", err.msg);
    return q;
}

/* Each output channel gets its own scale: max |w| / 127, so a channel of small weights keeps all
 * 8 bits and a zero channel stays zero. */
static void test_per_channel_scales(void **state)
{
    (void)state;
    dn_net *net = parse("input 8x8x1\nconv2d 3 3x3 same\nflatten\ndense 10 softmax\n", 1);
    float *w = net->layers[0].params; /* (3, 3, 1, 3) */
    const float v[9] = {-1.0f, 0.37f, 0.11f, -0.52f, 0.9f, 0.05f, -0.3f, 0.6f, 0.21f};
    const int expect[9] = {-127, 47, 14, -66, 114, 6, -38, 76, 27}; /* round(v * 127) */
    for (int t = 0; t < 9; t++) {
        w[t * 3 + 0] = v[t];         /* max |w| 1.0 */
        w[t * 3 + 1] = v[t] * 0.01f; /* max |w| 0.01 */
        w[t * 3 + 2] = 0.0f;
    }
    dn_qnet *q = quantize(net, 100);
    const dn_qop *op = &q->ops[0];
    assert_int_equal(op->q.kind, DNQ_CONV);
    assert_near(op->weight_scale[0], 1.0 / 127, 1e-9);
    assert_near(op->weight_scale[1], 0.01 / 127, 1e-11);
    for (int t = 0; t < 9; t++) { /* weights (F, 3, 3, 1) */
        assert_int_equal(op->weight[0 * 9 + t], expect[t]);
        assert_int_equal(op->weight[1 * 9 + t], expect[t]);
        assert_int_equal(op->weight[2 * 9 + t], 0);
    }
    /* bias in units of input scale x weight scale: (1/16) (0.01/127) for channel 1 */
    net->layers[0].params[27 + 1] = 0.5f;
    dn_qnet_free(q);
    q = quantize(net, 100);
    assert_int_equal(q->ops[0].bias[1], (int32_t)lround(0.5 / ((1.0 / 16) * (0.01 / 127))));
    dn_qnet_free(q);
    dn_net_free(net);
}

/* Sum of |x| over the window of conv output element (oy, ox) (all input channels). */
static double window_abs_sum(const dnq_layer *L, const float *x, int oy, int ox)
{
    double sum = 0.0;
    for (int ky = 0; ky < L->kh; ky++)
        for (int kx = 0; kx < L->kw; kx++) {
            int iy = oy * L->stride_h + ky - L->pad_top, ix = ox * L->stride_w + kx - L->pad_left;
            if (iy >= 0 && iy < L->in_h && ix >= 0 && ix < L->in_w)
                for (int c = 0; c < L->in_c; c++)
                    sum += fabs(x[((size_t)iy * L->in_w + ix) * L->in_c + c]);
        }
    return sum;
}

/* Every op of q on one image: its int8 output (dnq_run stopped after it) against its float version
 * run on the dequantised int8 input, within the error quantisation allows: half an output step,
 * plus weight rounding (half a weight step times the window's |x|) and bias rounding for a
 * convolution; max-pooling and clamps exactly. Returns the largest error / bound seen. */
static double check_layers(const dn_qnet *q, const uint8_t *pixels)
{
    const size_t n_px = dn_shape_size(q->input);
    size_t largest = n_px;
    for (int k = 0; k < q->n_ops; k++)
        largest = dn_qop_out_size(q, k) > largest ? dn_qop_out_size(q, k) : largest;
    int8_t *arena = malloc(q->arena_bytes), *prev = malloc(largest), *got = malloc(largest);
    float *in = malloc(sizeof(float) * largest), *want = malloc(sizeof(float) * largest);
    assert_non_null(arena), assert_non_null(prev), assert_non_null(got), assert_non_null(in), assert_non_null(want);
    for (size_t i = 0; i < n_px; i++)
        prev[i] = (int8_t)(pixels[i] - 128);
    float in_scale = 1.0f / (float)q->raw_max;
    int32_t in_zp = -128;
    double worst = 0.0;
    for (int k = 0; k < q->n_ops; k++) {
        const dn_qop *op = &q->ops[k];
        const dnq_layer *L = &op->q;
        const size_t n_in = (size_t)L->in_h * L->in_w * L->in_c, n_out = dn_qop_out_size(q, k);
        memcpy(got, dnq_run(q->layers, k + 1, pixels, (int32_t)n_px, arena, (int32_t)q->arena_bytes), n_out);
        for (size_t i = 0; i < n_in; i++)
            in[i] = in_scale * (float)(prev[i] - in_zp);
        dn_qop_forward_float(q, k, in, want);
        const double lo = op->out_scale * (L->act_min - L->out_zp), hi = op->out_scale * (127 - L->out_zp);
        for (size_t j = 0; j < n_out; j++) {
            double w = want[j] < lo ? lo : want[j] > hi ? hi : want[j]; /* saturation is not an error */
            double g = op->out_scale * (got[j] - L->out_zp);
            double bound = 1e-6;
            if (L->kind == DNQ_CONV) {
                int f = (int)(j % (size_t)L->out_c), pos = (int)(j / (size_t)L->out_c);
                double ws = op->weight_scale[f];
                bound += 0.5 * op->out_scale + 0.5 * in_scale * ws +
                         0.5 * ws * window_abs_sum(L, in, pos / L->out_w, pos % L->out_w) + 1e-5 * fabs(w);
            } else if (L->kind == DNQ_LOOKUP)
                bound += 0.5 * op->out_scale;
            if (!(fabs(g - w) <= bound))
                fail_msg("op %d (layer %d, kind %d) element %zu: int8 gives %.6g, float %.6g, bound %.3g", k, op->source + 1,
                         (int)L->kind, j, g, w, bound);
            worst = fmax(worst, fabs(g - w) / bound);
        }
        memcpy(prev, got, n_out);
        in_scale = op->out_scale;
        in_zp = L->out_zp;
    }
    free(arena), free(prev), free(got), free(in), free(want);
    return worst;
}

/* The float ops (the lowering: transposed kernels, batchnorm folded, dense over flatten) give the
 * logits of dn_net_predict; the int8 classes agree with the float ones on most test rows. */
static void check_network(dn_net *net, const dn_qnet *q, double min_agreement)
{
    const int n = 300;
    float *x = malloc(sizeof(float) * 64 * n), *probs = malloc(sizeof(float) * 10 * n), a[1024], b[1024];
    int8_t *logits = malloc((size_t)10 * n);
    int *classes = malloc(sizeof(int) * n);
    dn_error err = {0};
    dn_dataset_rows(&tes, 0, n, x);
    assert_int_equal(dn_net_predict(net, x, n, probs, &err), DN_OK);
    assert_int_equal(dn_qnet_predict(q, tes.pixels, n, logits, classes, &err), DN_OK);
    int agree = 0;
    for (int i = 0; i < n; i++) {
        float *cur = a, *next = b;
        memcpy(cur, x + (size_t)i * 64, sizeof(float) * 64);
        for (int k = 0; k < q->n_ops; k++) {
            dn_qop_forward_float(q, k, cur, next);
            float *t = cur;
            cur = next, next = t;
        }
        float max = cur[0], sum = 0.0f;
        for (int c = 1; c < 10; c++)
            max = fmaxf(max, cur[c]);
        for (int c = 0; c < 10; c++)
            sum += expf(cur[c] - max);
        int best = 0;
        for (int c = 0; c < 10; c++) {
            assert_near(expf(cur[c] - max) / sum, probs[(size_t)i * 10 + c], 2e-4);
            best = probs[(size_t)i * 10 + c] > probs[(size_t)i * 10 + best] ? c : best;
        }
        agree += best == classes[i];
    }
    if (agree < min_agreement * n)
        fail_msg("int8 and float agree on %d of %d rows", agree, n);
    free(x), free(probs), free(logits), free(classes);
}

static void check_all_layers(const char *spec, int epochs)
{
    dn_net *net = train(spec, epochs, 7);
    dn_qnet *q = quantize(net, 500);
    double worst = 0.0;
    for (int i = 0; i < 40; i++)
        worst = fmax(worst, check_layers(q, tes.pixels + (size_t)i * 64));
    assert_true(worst > 0.01); /* the bound is not vacuous: errors come close to it */
    check_network(net, q, 0.95);
    dn_qnet_free(q);
    dn_net_free(net);
}

/* R1 itself: conv2d same + fused ReLU, maxpool, dropout, flatten, dense + sigmoid (lookup table). */
static void test_layers_r1(void **state)
{
    (void)state;
    FILE *f = fopen("models/optdigits.cnn", "r");
    assert_non_null(f);
    char spec[4096];
    size_t len = fread(spec, 1, sizeof spec - 1, f);
    fclose(f);
    spec[len] = '\0';
    check_all_layers(spec, 3);
}

/* The other kinds: conv2d valid with batchnorm folded, ReLU and tanh as layers of their own,
 * maxpool same, strided conv2d, a dense with tanh. */
static void test_layers_other_kinds(void **state)
{
    (void)state;
    check_all_layers("input 8x8x1\nconv2d 8 3x3 valid\nbatchnorm\nrelu\nmaxpool 2x2 same\n"
                     "conv2d 12 2x2 same stride=2 tanh\nflatten\ndense 32\nbatchnorm\ntanh\ndense 10\nsoftmax\n",
                     3);
}

/* globalavgpool folded into the dense after it: the lowered float ops still give dn_net_predict's
 * probabilities. A globalavgpool followed by anything but a dense, and an ensemble, are refused. */
static void test_layers_globalavgpool(void **state)
{
    (void)state;
    check_all_layers("input 8x8x1\nconv2d 8 3x3 same relu\nconv2d 12 3x3 same relu\nglobalavgpool\ndropout 0.1\n"
                     "dense 10 softmax\n",
                     3);
    dn_net *net = parse("input 8x8x1\nconv2d 8 3x3 same relu\nglobalavgpool\nrelu\ndense 10 softmax\n", 3);
    dn_qnet *q = NULL;
    dn_error err = {0};
    assert_int_equal(dn_quantize(net, &tra, 100, &q, &err), DN_EARG);
    assert_null(q);
    assert_non_null(strstr(err.msg, "layer 2 (globalavgpool): cannot be quantised"));
    dn_net *other = parse("input 8x8x1\nconv2d 8 3x3 same relu\nglobalavgpool\nrelu\ndense 10 softmax\n", 4);
    assert_int_equal(dn_net_ensemble_add(net, other, &err), DN_OK);
    assert_int_equal(dn_quantize(net, &tra, 100, &q, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "ensembles cannot be quantised yet"));
    dn_net_free(net);
}

/* The export embeds exactly the kernel source the host path was compiled from. */
static void test_kernel_text(void **state)
{
    (void)state;
    FILE *f = fopen("src/quant/int8_kernels.h", "rb");
    assert_non_null(f);
    static char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    assert_true(len > 1000);
    assert_string_equal(dn_int8_kernels_text, text);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_export_errors(void **state)
{
    (void)state;
    dn_net *net = parse("input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n", 3);
    dn_qnet *q = quantize(net, 50);
    dn_error err = {0};
    char dir[256], sub[300];
    snprintf(dir, sizeof dir, "%s/export", dn_test_dir());
    mkdir(dir, 0700);
    const char *bad_names[] = {"9lives", "my-net", "", "a b", "net.h",
                               "a_name_far_too_long_for_anyone_to_want_in_a_header_file_0123456789"};
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++) {
        assert_int_equal(dn_qnet_export_c(q, bad_names[i], dir, &err), DN_EARG);
        assert_non_null(strstr(err.msg, "not a C identifier"));
        assert_null(strchr(err.msg, '\n'));
    }
    assert_int_equal(count_files(dir), 0);
    snprintf(sub, sizeof sub, "%s/missing", dir); /* a directory that does not exist */
    assert_int_equal(dn_qnet_export_c(q, "net", sub, &err), DN_EIO);
    const char *file = dn_test_write_file("plain-file", "x", 1); /* a "directory" that is a file */
    assert_int_equal(dn_qnet_export_c(q, "net", file, &err), DN_EIO);
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(count_files(dir), 0);
    assert_int_equal(dn_qnet_export_c(q, "net_1", dir, &err), DN_OK);
    assert_int_equal(count_files(dir), 2);
    dn_qnet_free(q);
    dn_net_free(net);

    /* layers that cannot be quantised: the message names the layer, nothing is allocated out */
    const char *bad_specs[][2] = {
        {"input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nbatchnorm\nflatten\ndense 10 softmax\n", "layer 3 (batchnorm"},
        {"input 8x8x1\nconv2d 4 3x3 same relu\nbatchnorm\nflatten\ndense 10 softmax\n", "layer 2 (batchnorm"},
        {"input 8x8x1\nflatten\ndense 16 softmax\ndense 10 softmax\n", "layer 3 (dense 10 softmax): cannot be quantised after a softmax"},
    };
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        net = parse(bad_specs[i][0], 1);
        q = (dn_qnet *)&err; /* must be reset */
        assert_int_equal(dn_quantize(net, &tra, 10, &q, &err), DN_EARG);
        assert_null(q);
        if (!strstr(err.msg, bad_specs[i][1]))
            fail_msg("message '%s' does not contain '%s'", err.msg, bad_specs[i][1]);
        dn_net_free(net);
    }
}

/* The host's dot product (AVX-512 VNNI where the CPU has it) equals int8_kernels.h's loop bit for
 * bit: every length 0..300, every zero point's extremes, random and extreme bytes. */
static void test_vnni_equals_portable(void **state)
{
    (void)state;
    if (!dn_quant_vnni()) {
        print_message("skipped: this CPU has no AVX-512 VNNI (or DIGITNET_SIMD=generic or avx2)\n");
        skip();
    }
    int8_t x[300], w[300];
    const int16_t zps[] = {-128, 127, 0, -3, 41};
    for (int round = 0; round < 40; round++)
        for (int n = 0; n <= 300; n++) {
            for (int i = 0; i < n; i++) {
                uint64_t r = next_random();
                x[i] = round % 4 == 0 ? (int8_t)(r & 1 ? 127 : -128) : (int8_t)r;
                w[i] = round % 4 == 1 ? (int8_t)(r & 2 ? 127 : -127) : (int8_t)(r >> 8);
            }
            int16_t zp = zps[round % 5];
            int32_t acc = (int32_t)next_random() >> 8;
            if (dn_quant_dot(x, w, n, zp, acc) != dn_quant_dot_portable(x, w, n, zp, acc))
                fail_msg("n %d zp %d: VNNI %d, portable %d", n, zp, dn_quant_dot(x, w, n, zp, acc),
                         dn_quant_dot_portable(x, w, n, zp, acc));
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requantize_exact),   cmocka_unit_test(test_multiplier),
        cmocka_unit_test(test_per_channel_scales), cmocka_unit_test(test_layers_r1),
        cmocka_unit_test(test_layers_other_kinds), cmocka_unit_test(test_layers_globalavgpool),
        cmocka_unit_test(test_kernel_text),
        cmocka_unit_test(test_export_errors),       cmocka_unit_test(test_vnni_equals_portable),
    };
    return cmocka_run_group_tests(tests, load_data, free_data);
}

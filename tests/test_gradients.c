/*
 * Finite-difference gradient checks for every layer kind in the registry and for the fused
 * softmax + cross-entropy loss.
 *
 * Method. Each case is a small network built from a spec string. The scalar checked is the mean
 * cross-entropy of the net's output against fixed labels,
 *     L = -(1/n) sum_r ln p[r][label_r],
 * computed in double from the float32 forward pass in training mode. The analytic gradient comes
 * from dn_net_backward fed with d L / d logits = (p - onehot) / n, which is what the training loop
 * hands over for a last layer with a fused softmax. The numeric one is the central difference
 *     (L(w + eps) - L(w - eps)) / (w_+ - w_-)
 * where w_+ and w_- are the float32 values actually stored, so rounding of w +- eps does not
 * bias the quotient. Every trainable parameter of the net is checked (the nets are kept small
 * enough for that), and so is every input value.
 *
 * Input gradients. The network hands NULL as din to its first layer, so every case starts with
 * 'dropout 0', which is the identity in training and inference and draws no random numbers. The
 * layer under test is then layer 1, and d L / d x is the din that layer 1 wrote into the net's
 * gradient buffers; layer1_din() asks the net where its backward pass left each row (dn_net_din_row) to
 * find it.
 *
 * Comparing. The float32 forward pass gives the loss to about 1e-7, so a central difference with
 * step eps resolves a gradient only to about atol = LOSS_RESOLUTION / eps (1e-5 at eps = 1e-2; a
 * conv bias in front of batchnorm, whose gradient is zero in theory, comes out as ~5e-6). With
 * analytic a, numeric d and g = max(|a|, |d|), every point must satisfy
 *     |a - d| <= max(LOOSE_TOL * g, atol)     (relative error below 1e-2, or within rounding)
 * and at least TIGHT_SHARE of them
 *     |a - d| <= max(TIGHT_TOL * g, atol)     (relative error below 1e-3, or within rounding).
 * The gradients checked are mostly 1e-3..0.5, so for them this is a relative test; atol only
 * excuses gradients that float32 cannot resolve. The worst case printed and reported is
 * |a - d| / max(g, atol / LOOSE_TOL), which must stay <= LOOSE_TOL.
 *
 * Kinks and ties. ReLU (fused or stand-alone) has a kink at 0 and max-pool switches its arg max
 * where two window values tie; a central difference whose two points straddle such a switch
 * measures a mix of two slopes and is meaningless there. Rather than guessing a distance, each
 * forward pass records a signature: a hash of the sign pattern (out > 0) of every ReLU output, the
 * arg max index of every max-pool window and the zero pattern of every dropout output. When the
 * signature at w + eps or at w - eps differs from the one at w, the perturbation crossed a kink or
 * changed a tie's winner; the difference is then retried with eps / 4 and eps / 16 (a conv weight
 * moves every pre-activation of its filter, so some unit of a few hundred lies within 1e-2 of its
 * kink more often than not), and the point is skipped only when all three cross. Inputs are
 * distinct random floats from a seeded dn_rng, so exact ties (other than ReLU zeros, which the
 * ReLU bits cover) do not occur. At most MAX_SKIP_SHARE of the points may be skipped, so a broken
 * signature cannot silently skip everything.
 *
 * Dropout. The mask comes from net->rng, which is reseeded before every forward pass, so the
 * analytic pass and both perturbed passes use the same mask (the dropout zero pattern in the
 * signature would flag it otherwise).
 *
 * Threads. The checks run on one thread (dn_set_threads(1) in main): they make thousands of
 * forward passes of a few rows, and each of them opening OpenMP regions (conv2d's im2col has no
 * size threshold) made the suite 30 to 200 times slower on two cores shared with other work.
 * test_threads_same_gradients then compares one and two threads on a batch big enough for the
 * threaded GEMM, im2col and max-pool paths.
 *
 * Set DN_TEST_VERBOSE=1 to print the error distribution of every case.
 */
#include "testutil.h"
#include "net.h"
#include "kernels/kernels.h"

#include <math.h>

#define LOOSE_TOL 1e-2
#define TIGHT_TOL 1e-3
#define TIGHT_SHARE 0.90
#define LOSS_RESOLUTION 1e-7
#define RETRIES 3 /* eps, eps / 4, eps / 16 */
#define MAX_SKIP_SHARE 0.10
#define MASK_SEED 0x5eedULL
#define MAX_ROWS 8

static const uint8_t LABELS[MAX_ROWS] = {3, 7, 1, 0, 9, 4, 2, 8};

static int verbose(void)
{
    const char *v = getenv("DN_TEST_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

/* One network with its batch, labels and gradient buffer. */
typedef struct fixture {
    const char *name;
    dn_net *net;
    int n;          /* rows */
    size_t in_size; /* floats per input row */
    float *x;       /* (n, h, w, c) */
    float *din;     /* (n, h, w, c) d L / d x of the last analytic pass */
    float dlogits[MAX_ROWS * DN_N_CLASSES]; /* (n, DN_N_CLASSES) */
} fixture;

/* Builds the net, jitters its parameters (so biases are non-zero and batchnorm's gamma is not
 * exactly 1) and fills the input with distinct values in [lo, hi). */
static void fixture_init(fixture *f, const char *name, const char *spec, int n, float lo, float hi, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    assert_true(n >= 1 && n <= MAX_ROWS);
    f->name = name;
    f->n = n;
    dn_error err = {0};
    dn_status st = dn_net_parse(spec, name, seed, &f->net, &err);
    if (st != DN_OK)
        fail_msg("%s: %s", name, err.msg);
    assert_int_equal(dn_net_reserve(f->net, n, &err), DN_OK);
    dn_rng rng;
    dn_rng_seed(&rng, seed * 7919 + 1);
    for (size_t i = 0; i < f->net->n_params; i++)
        f->net->params[i] += 0.2f * (2.0f * dn_rng_uniform(&rng) - 1.0f);
    f->in_size = dn_shape_size(f->net->input);
    f->x = malloc(sizeof(float) * f->in_size * (size_t)n);
    f->din = malloc(sizeof(float) * f->in_size * (size_t)n);
    assert_non_null(f->x);
    assert_non_null(f->din);
    for (size_t i = 0; i < f->in_size * (size_t)n; i++)
        f->x[i] = lo + (hi - lo) * dn_rng_uniform(&rng);
}

static void fixture_free(fixture *f)
{
    dn_net_free(f->net);
    free(f->x);
    free(f->din);
}

static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* The kink / tie signature of the last forward pass (see the top of the file). */
static uint64_t signature(const dn_net *net, int n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        size_t count = dn_shape_size(L->out) * (size_t)n;
        const float *out = net->acts[i + 1];
        if (L->act == DN_ACT_RELU) {
            for (size_t k = 0; k < count; k++) {
                unsigned char on = out[k] > 0.0f;
                h = fnv(h, &on, 1);
            }
        } else if (L->kind == DN_LAYER_MAXPOOL) {
            /* Where each maximum was taken: output k's code k + 1 routed back through the layer. */
            size_t in_count = dn_shape_size(L->in) * (size_t)n;
            float *codes = malloc(sizeof(float) * count), *routed = malloc(sizeof(float) * in_count);
            assert_non_null(codes);
            assert_non_null(routed);
            for (size_t k = 0; k < count; k++)
                codes[k] = (float)(k + 1);
            L->ops->backward((dn_layer *)(uintptr_t)L, net->acts[i], out, codes, routed, 0, n, L->grads);
            h = fnv(h, routed, in_count * sizeof(float));
            free(codes);
            free(routed);
        } else if (L->kind == DN_LAYER_DROPOUT) {
            for (size_t k = 0; k < count; k++) {
                unsigned char kept = out[k] != 0.0f;
                h = fnv(h, &kept, 1);
            }
        }
    }
    return h;
}

/* Mean cross-entropy of a training-mode forward pass; *sig receives its signature. */
static double loss_at(fixture *f, uint64_t *sig)
{
    dn_rng_seed(&f->net->rng, MASK_SEED);
    const float *p = dn_net_forward(f->net, f->x, f->n, 1); /* (n, DN_N_CLASSES) */
    double loss = 0.0;
    for (int r = 0; r < f->n; r++)
        loss -= log((double)p[r * DN_N_CLASSES + LABELS[r]]);
    if (sig)
        *sig = signature(f->net, f->n);
    return loss / f->n;
}

/* d L / d (input of layer 1), n rows, copied into out: the din layer 1 wrote, row by row from
 * wherever dn_net_backward put it (dn_net_din_row). Returns out. */
static float *layer1_din(const dn_net *net, const float *dlogits, int n, float *out)
{
    const size_t row = dn_shape_size(net->layers[1].in);
    for (int r = 0; r < n; r++)
        memcpy(out + (size_t)r * row, dn_net_din_row(net, dlogits, n, 1, r), sizeof(float) * row);
    return out;
}

/* Analytic pass: net->grads := d L / d params; returns d L / d x (n, in) (borrowed from the net),
 * and the base signature in *sig. */
static const float *analytic(fixture *f, uint64_t *sig)
{
    dn_rng_seed(&f->net->rng, MASK_SEED);
    const float *p = dn_net_forward(f->net, f->x, f->n, 1);
    *sig = signature(f->net, f->n);
    const float inv_n = 1.0f / (float)f->n;
    for (int r = 0; r < f->n; r++)
        for (int j = 0; j < DN_N_CLASSES; j++)
            f->dlogits[r * DN_N_CLASSES + j] = (p[r * DN_N_CLASSES + j] - (j == LABELS[r] ? 1.0f : 0.0f)) * inv_n;
    memset(f->net->grads, 0, sizeof(float) * f->net->n_params);
    dn_net_backward(f->net, f->dlogits, f->n);
    return layer1_din(f->net, f->dlogits, f->n, f->din);
}

typedef struct check_stats {
    int checked, skipped, retried, over_tight;
    double worst;
    size_t worst_at;
    double worst_analytic, worst_numeric;
    double max_abs; /* largest |analytic| seen: a gradient that is all zero checks nothing */
} check_stats;

static double central_difference(fixture *f, float *value, double eps, uint64_t base_sig, int *kinked)
{
    const float saved = *value;
    uint64_t sig_plus, sig_minus;
    *value = (float)(saved + eps);
    const double w_plus = *value;
    const double l_plus = loss_at(f, &sig_plus);
    *value = (float)(saved - eps);
    const double w_minus = *value;
    const double l_minus = loss_at(f, &sig_minus);
    *value = saved;
    *kinked = sig_plus != base_sig || sig_minus != base_sig;
    return (l_plus - l_minus) / (w_plus - w_minus);
}

/* The central difference at eps, or at eps / 4 or eps / 16 when that one crosses a kink; returns 0
 * when all of them do, else 1 with the difference in *d and the step used in *eps_used. */
static int numeric_gradient(fixture *f, float *value, double eps, uint64_t base_sig, double *d, double *eps_used)
{
    for (int t = 0; t < RETRIES; t++, eps /= 4) {
        int kinked;
        *d = central_difference(f, value, eps, base_sig, &kinked);
        *eps_used = eps;
        if (!kinked)
            return 1;
    }
    return 0;
}

static void compare(check_stats *s, size_t at, double a, double d, double eps)
{
    const double atol = LOSS_RESOLUTION / eps, g = fmax(fabs(a), fabs(d)), diff = fabs(a - d);
    double e = diff / fmax(g, atol / LOOSE_TOL);
    s->checked++;
    if (!(diff <= fmax(TIGHT_TOL * g, atol)))
        s->over_tight++;
    if (!(e <= s->worst)) { /* also records a NaN */
        s->worst = e;
        s->worst_at = at;
        s->worst_analytic = a;
        s->worst_numeric = d;
    }
    if (fabs(a) > s->max_abs)
        s->max_abs = fabs(a);
}

static void report(const fixture *f, const char *what, const check_stats *s)
{
    int total = s->checked + s->skipped;
    if (verbose())
        print_message("  %-34s %-24s checked %4d (%3d at a smaller eps) skipped %2d  worst %.2e (at %zu: analytic "
                      "%.6g numeric %.6g)  over %.0e: %d  max|g| %.3g\n",
                      f->name, what, s->checked, s->retried, s->skipped, s->worst, s->worst_at, s->worst_analytic,
                      s->worst_numeric, TIGHT_TOL, s->over_tight, s->max_abs);
    if (total == 0)
        return;
    if (s->skipped > MAX_SKIP_SHARE * total)
        fail_msg("%s, %s: %d of %d points straddle a kink or tie; the signature or the mask is unstable", f->name,
                 what, s->skipped, total);
    if (!(s->worst <= LOOSE_TOL))
        fail_msg("%s, %s: gradient %zu: analytic %.9g, numeric %.9g (relative error %.3g > %g)", f->name, what,
                 s->worst_at, s->worst_analytic, s->worst_numeric, s->worst, LOOSE_TOL);
    if (s->over_tight > (1.0 - TIGHT_SHARE) * s->checked)
        fail_msg("%s, %s: %d of %d gradients have a relative error above %g (beyond float32 rounding)", f->name, what,
                 s->over_tight, s->checked, TIGHT_TOL);
}

/* Checks d L / d params for every layer with parameters and, when check_input, d L / d x. */
static void check_fixture(fixture *f, double eps, int check_input)
{
    dn_net *net = f->net;
    const size_t total_in = f->in_size * (size_t)f->n;
    uint64_t base_sig, again_sig;

    /* Run the analytic pass twice and keep the second: the gradient buffers then hold the first
     * pass's values, so a layer that added into din instead of writing it would show. */
    float *din_first = malloc(sizeof(float) * total_in), *din = malloc(sizeof(float) * total_in);
    float *grads = malloc(sizeof(float) * (net->n_params ? net->n_params : 1));
    assert_non_null(din_first);
    assert_non_null(din);
    assert_non_null(grads);
    memcpy(din_first, analytic(f, &base_sig), sizeof(float) * total_in);
    memcpy(din, analytic(f, &again_sig), sizeof(float) * total_in);
    memcpy(grads, net->grads, sizeof(float) * net->n_params);
    assert_int_equal(base_sig, again_sig);
    if (check_input)
        assert_memory_equal(din_first, din, sizeof(float) * total_in);

    for (int i = 0; i < net->n_layers; i++) {
        dn_layer *L = &net->layers[i];
        if (!L->n_params)
            continue;
        check_stats s = {0};
        for (size_t k = 0; k < L->n_params; k++) {
            double d, used;
            if (numeric_gradient(f, &L->params[k], eps, base_sig, &d, &used)) {
                compare(&s, k, grads[L->params - net->params + k], d, used);
                s.retried += used < eps;
            } else
                s.skipped++;
        }
        char what[64];
        snprintf(what, sizeof what, "layer %d %s params", i, L->ops->name);
        report(f, what, &s);
        if (!(s.max_abs > 1e-3))
            fail_msg("%s, %s: every gradient is (nearly) zero", f->name, what);
    }
    if (check_input) {
        check_stats s = {0};
        for (size_t k = 0; k < total_in; k++) {
            double d, used;
            if (numeric_gradient(f, &f->x[k], eps, base_sig, &d, &used)) {
                compare(&s, k, din[k], d, used);
                s.retried += used < eps;
            } else
                s.skipped++;
        }
        report(f, "input", &s);
        if (!(s.max_abs > 1e-3))
            fail_msg("%s, input: every gradient is (nearly) zero", f->name);
    }
    free(din_first);
    free(din);
    free(grads);
}

/* Builds spec "input SHAPE / dropout 0 / BODY / TAIL" and checks it. */
typedef struct grad_case {
    const char *name;
    const char *input;  /* "HxWxC" */
    const char *body;   /* the layers under test, one per line */
    const char *tail;   /* what turns the output into 10 classes */
    int n;
    double eps;
    float lo, hi;       /* input range */
} grad_case;

#define FLAT_TAIL "flatten\ndense 10 softmax\n"

static void run_case(const grad_case *c, uint64_t seed)
{
    char spec[1024];
    snprintf(spec, sizeof spec, "input %s\ndropout 0\n%s%s", c->input, c->body, c->tail ? c->tail : FLAT_TAIL);
    fixture f;
    fixture_init(&f, c->name, spec, c->n ? c->n : 3, c->lo || c->hi ? c->lo : -1.0f, c->lo || c->hi ? c->hi : 1.0f,
                 seed);
    check_fixture(&f, c->eps > 0 ? c->eps : 1e-2, 1);
    fixture_free(&f);
}

static void run_cases(const grad_case *cases, int count)
{
    for (int i = 0; i < count; i++)
        run_case(&cases[i], 100 + (uint64_t)i);
}

/* ---------------------------------------------------------------- conv2d */

static void test_conv2d(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        /* 3x3 "same", stride 1, three input channels: one pixel of zero padding all round. */
        {"conv2d 3x3 same relu, 3 channels", "5x5x3", "conv2d 4 3x3 same relu\n", NULL, 3, 0, 0, 0},
        {"conv2d 3x3 valid sigmoid", "6x6x2", "conv2d 3 3x3 valid sigmoid\n", NULL, 3, 0, 0, 0},
        /* 5x5 input, 2x2 stride 2 "same": 3x3 output, the padding row / column at the end. */
        {"conv2d 2x2 stride 2 same tanh", "5x5x2", "conv2d 3 2x2 same stride=2 tanh\n", NULL, 3, 0, 0, 0},
        {"conv2d 5x5 valid linear", "7x7x1", "conv2d 2 5x5 valid\n", NULL, 3, 0, 0, 0},
        /* 3x3 stride 2 "same" on 5x5: total padding 2, one before and one after. */
        {"conv2d 3x3 stride 2 same relu", "5x5x2", "conv2d 3 3x3 same stride=2 relu\n", NULL, 3, 0, 0, 0},
        /* Non-square kernel with a stride on a non-square input: 7x6 -> 3x3. */
        {"conv2d 3x2 valid stride 2 tanh", "7x6x2", "conv2d 3 3x2 valid stride=2 tanh\n", NULL, 3, 0, 0, 0},
        /* Softmax over the filters at every pixel. */
        {"conv2d 1x1 softmax", "3x3x3", "conv2d 4 1x1 valid softmax\n", NULL, 3, 0, 0, 0},
        /* Two convolutions: the first one's din is produced and consumed inside the net. */
        {"conv2d -> conv2d", "6x6x2", "conv2d 3 3x3 same tanh\nconv2d 4 3x3 valid relu\n", NULL, 2, 0, 0, 0},
    };
    run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* ---------------------------------------------------------------- maxpool */

static void test_maxpool(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        {"maxpool 2x2", "6x6x2", "maxpool 2x2\n", NULL, 3, 0, 0, 0},
        /* 7x7 -> 4x4 with one row / column of padding on each side (never chosen). */
        {"maxpool 3x3 stride 2 same, 7x7", "7x7x2", "maxpool 3x3 stride=2 same\n", NULL, 3, 0, 0, 0},
        /* 6x6 -> 3x3: no padding before, one after. */
        {"maxpool 3x3 stride 2 same, 6x6", "6x6x3", "maxpool 3x3 stride=2 same\n", NULL, 3, 0, 0, 0},
        /* Odd input, "valid": the last row and column are never looked at (zero gradient). */
        {"maxpool 2x2 valid on 5x5", "5x5x2", "maxpool 2x2\n", NULL, 3, 0, 0, 0},
        /* Overlapping windows: one input can be the maximum of several, its gradients add up. */
        {"maxpool 2x2 stride 1", "5x5x2", "maxpool 2x2 stride=1\n", NULL, 3, 0, 0, 0},
        /* After a ReLU convolution, as in the shipped models: windows of zeros tie. */
        {"conv2d relu -> maxpool", "6x6x1", "conv2d 3 3x3 same relu\nmaxpool 2x2\n", NULL, 3, 0, 0, 0},
        /* 5x5 convolution output under a "valid" 2x2 pool: the last row and column are never read,
         * so the convolution leaves them out (as conv2 of the MNIST network). */
        {"conv2d 2x2 -> maxpool, unread edge", "6x6x2", "conv2d 3 2x2 valid relu\nmaxpool 2x2\n", NULL, 3, 0, 0, 0},
    };
    run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* The conventions a finite difference cannot see: on an exact tie the first maximum in row-major
 * order takes the whole gradient (as TensorFlow does), and "same" padding never wins a window, so a
 * window of negative values pools to its largest value, not to 0. */
static void test_maxpool_ties_and_padding(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "maxpool ties", "input 2x2x2\ndropout 0\nmaxpool 2x2\nflatten\ndense 10 softmax\n", 1, 0, 1, 13);
    static const float tied[8] = {0.5f, -1.0f, 0.5f, -2.0f, 0.5f, -1.0f, 0.25f, -1.0f}; /* (2, 2, 2) */
    memcpy(f.x, tied, sizeof tied);
    uint64_t sig;
    const float *din = analytic(&f, &sig);
    const float *dout = f.net->acts[2]; /* pooled (1, 1, 2): 0.5 and -1 */
    assert_near(dout[0], 0.5, 0.0);
    assert_near(dout[1], -1.0, 0.0);
    /* channel 0: ties at (0,0), (0,1), (1,0) -> all to (0,0); channel 1: ties at (0,0), (1,0), (1,1) */
    assert_true(din[0] != 0.0f);
    assert_near(din[2], 0.0, 0.0);
    assert_near(din[4], 0.0, 0.0);
    assert_near(din[6], 0.0, 0.0);
    assert_true(din[1] != 0.0f);
    assert_near(din[3], 0.0, 0.0);
    assert_near(din[5], 0.0, 0.0);
    assert_near(din[7], 0.0, 0.0);
    fixture_free(&f);

    /* 3x3 input, 3x3 window, stride 2, "same": 2x2 output, every window hangs over the padding. */
    fixture_init(&f, "maxpool padding", "input 3x3x1\ndropout 0\nmaxpool 3x3 stride=2 same\nflatten\ndense 10 softmax\n",
                 1, -3.0f, -1.0f, 14);
    dn_net_forward(f.net, f.x, 1, 0);
    const float *pooled = f.net->acts[2]; /* (1, 2, 2, 1) */
    /* Total padding (2 - 1) * 2 + 3 - 3 = 2, one before: output row 0 looks at input rows -1..1,
     * i.e. 0..1, and output row 1 at rows 1..3, i.e. 1..2; the same for columns. */
    static const int rows[4][2] = {{0, 1}, {0, 1}, {1, 2}, {1, 2}}, cols[4][2] = {{0, 1}, {1, 2}, {0, 1}, {1, 2}};
    for (int o = 0; o < 4; o++) {
        float best = -INFINITY;
        for (int y = rows[o][0]; y <= rows[o][1]; y++)
            for (int x = cols[o][0]; x <= cols[o][1]; x++)
                best = fmaxf(best, f.x[y * 3 + x]);
        assert_near(pooled[o], best, 0.0);
        assert_true(pooled[o] < 0.0f);
    }
    fixture_free(&f);
}

/* ---------------------------------------------------------------- dense */

static void test_dense(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        {"dense linear", "1x1x12", "dense 8\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"dense relu", "1x1x12", "dense 8 relu\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"dense sigmoid", "1x1x12", "dense 8 sigmoid\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"dense tanh", "1x1x12", "dense 8 tanh\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"dense softmax (hidden)", "1x1x12", "dense 8 softmax\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"dense on a flattened image", "3x3x2", "flatten\ndense 6 tanh\n", "dense 10 softmax\n", 3, 0, 0, 0},
    };
    run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* ---------------------------------------------------------------- dropout, flatten */

static void test_dropout(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "dropout 0.5", "input 4x4x2\ndropout 0\ndropout 0.5\nflatten\ndense 10 softmax\n", 3, -1.0f,
                 1.0f, 7);
    /* The mask really drops about half and scales the rest by 1 / (1 - 0.5) = 2. */
    loss_at(&f, NULL);
    const float *out = f.net->acts[2]; /* (3, 4, 4, 2) */
    int dropped = 0;
    for (int k = 0; k < 3 * 32; k++) {
        if (out[k] == 0.0f)
            dropped++;
        else
            assert_near(out[k], 2.0f * f.x[k], 0.0);
    }
    assert_in_range(dropped, 30, 66); /* of 96 at p = 0.5 */
    check_fixture(&f, 1e-2, 1);

    /* Dropped inputs get exactly zero gradient, kept ones twice the gradient at the output. */
    uint64_t sig;
    const float *din = analytic(&f, &sig);
    for (int k = 0; k < 3 * 32; k++)
        if (f.net->acts[2][k] == 0.0f)
            assert_near(din[k], 0.0, 0.0);
    fixture_free(&f);

    /* In inference the layer is the identity. */
    fixture_init(&f, "dropout inference", "input 1x1x10\ndropout 0.5\ndense 10 softmax\n", 2, -1.0f, 1.0f, 8);
    dn_net_forward(f.net, f.x, 2, 0);
    assert_memory_equal(f.net->acts[1], f.x, sizeof(float) * 20);
    fixture_free(&f);
}

static void test_flatten(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        {"flatten", "3x3x2", "flatten\n", "dense 10 softmax\n", 3, 0, 0, 0},
    };
    run_cases(cases, 1);
}

/* globalavgpool: each input position gets 1/(H*W) of its channel's gradient. */
static void test_globalavgpool(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        {"globalavgpool", "4x3x5", "globalavgpool\n", "dense 10 softmax\n", 3, 0, 0, 0},
        {"conv2d relu -> globalavgpool", "5x5x2", "conv2d 6 3x3 same relu\nglobalavgpool\n", "dense 10 softmax\n", 3, 0,
         0, 0},
        {"globalavgpool -> flatten", "2x2x3", "globalavgpool\nflatten\n", "dense 10 softmax\n", 2, 0, 0, 0},
    };
    run_cases(cases, 3);
}

/* ---------------------------------------------------------------- batchnorm */

static void test_batchnorm(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        /* Statistics over n * h * w = 27 rows per channel. */
        {"batchnorm on 3x3x3", "3x3x3", "batchnorm\n", NULL, 3, 0, 0, 0},
        /* Flat input: statistics over the 4 rows of the batch; a large epsilon matters. */
        {"batchnorm flat, momentum/epsilon", "1x1x6", "batchnorm momentum=0.9 epsilon=0.01\n", "dense 10 softmax\n", 4, 0, 0,
         0},
        /* Inputs far from zero mean and unit variance. */
        {"batchnorm shifted inputs", "2x2x3", "batchnorm\n", NULL, 3, 0, 2.0f, 5.0f},
        /* conv -> batchnorm -> relu, the usual arrangement. */
        {"conv2d -> batchnorm -> relu", "5x5x2", "conv2d 3 3x3 same\nbatchnorm\nrelu\n", NULL, 3, 0, 0, 0},
        /* Convolution and pooling after batchnorm run batch-wide in row blocks, each block's
         * weight gradients summed on its own (src/net.c backward_layer). */
        {"batchnorm -> conv2d -> maxpool", "6x6x2", "conv2d 3 3x3 same\nbatchnorm\nrelu\nconv2d 4 3x3 same tanh\nmaxpool 2x2\n",
         NULL, 4, 0, 0, 0},
    };
    run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* In training, batchnorm's output per channel has mean beta and variance gamma^2 var/(var+eps). */
static void test_batchnorm_forward_statistics(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "batchnorm statistics", "input 2x2x3\nbatchnorm\nflatten\ndense 10 softmax\n", 4, 1.0f, 3.0f, 9);
    dn_layer *L = &f.net->layers[0];
    const float *gamma = L->params, *beta = L->params + 3;
    dn_net_forward(f.net, f.x, 4, 1);
    const float *out = f.net->acts[1]; /* (4, 2, 2, 3) */
    for (int c = 0; c < 3; c++) {
        double in_mean = 0, in_var = 0, out_mean = 0, out_var = 0;
        for (int r = 0; r < 16; r++)
            in_mean += f.x[r * 3 + c], out_mean += out[r * 3 + c];
        in_mean /= 16, out_mean /= 16;
        for (int r = 0; r < 16; r++) {
            in_var += (f.x[r * 3 + c] - in_mean) * (f.x[r * 3 + c] - in_mean);
            out_var += (out[r * 3 + c] - out_mean) * (out[r * 3 + c] - out_mean);
        }
        in_var /= 16, out_var /= 16;
        assert_near(out_mean, beta[c], 1e-5);
        assert_near(out_var, gamma[c] * gamma[c] * in_var / (in_var + 1e-3), 1e-5);
        /* Moving statistics after one step from (0, 1), momentum 0.99: 0.01 of the batch's. */
        assert_near(L->buffers[c], 0.01 * in_mean, 1e-6);
        assert_near(L->buffers[3 + c], 0.99 + 0.01 * in_var, 1e-6);
    }
    fixture_free(&f);
}

/* ---------------------------------------------------------------- stand-alone activations */

static void test_activation_layers(void **state)
{
    (void)state;
    static const grad_case cases[] = {
        {"relu layer", "3x3x2", "relu\n", NULL, 3, 0, 0, 0},
        {"sigmoid layer", "3x3x2", "sigmoid\n", NULL, 3, 0, -3.0f, 3.0f},
        {"tanh layer", "3x3x2", "tanh\n", NULL, 3, 0, -2.0f, 2.0f},
        /* Softmax over the channel axis at every pixel, then more layers. */
        {"softmax layer (hidden, 2x2x5)", "2x2x5", "softmax\n", NULL, 3, 0, -2.0f, 2.0f},
        /* dense linear + a stand-alone softmax as the last layer: the loss is fused into it. */
        {"dense linear + softmax layer", "1x1x6", "dense 10\n", "softmax\n", 3, 0, 0, 0},
    };
    run_cases(cases, (int)(sizeof cases / sizeof cases[0]));
}

/* ---------------------------------------------------------------- the loss */

/*
 * Softmax + cross-entropy. The net is input 1x1x10 -> dropout 0 -> softmax, so its input are the
 * logits z and its output p = softmax(z). Finite differences of L(z) = -(1/n) sum_r ln p[r][y_r]
 * must give (p - onehot(y)) / n, and the fused last layer must pass that through unchanged (had it
 * applied the softmax Jacobian again, d L / d z would come out as J (p - y) / n instead).
 */
static void test_softmax_cross_entropy(void **state)
{
    (void)state;
    enum { N = 4 };
    fixture f;
    fixture_init(&f, "softmax + cross-entropy", "input 1x1x10\ndropout 0\nsoftmax\n", N, -3.0f, 3.0f, 11);
    assert_true(f.net->layers[1].fused_loss);
    uint64_t sig;
    float dz[N * DN_N_CLASSES], p[N * DN_N_CLASSES]; /* (N, 10), copied: the passes below overwrite them */
    memcpy(dz, analytic(&f, &sig), sizeof dz);
    memcpy(p, f.net->acts[2], sizeof p);
    check_stats s = {0};
    for (int k = 0; k < N * DN_N_CLASSES; k++) {
        int r = k / DN_N_CLASSES, j = k % DN_N_CLASSES;
        double expected = ((double)p[k] - (j == LABELS[r])) / N;
        assert_near(dz[k], expected, 1e-7);
        int kinked;
        double d = central_difference(&f, &f.x[k], 1e-2, sig, &kinked);
        assert_false(kinked);
        compare(&s, (size_t)k, expected, d, 1e-2);
    }
    report(&f, "d loss / d logits", &s);

    /* The loss here is the one dn_metrics_compute reports (no clipping is involved at these p). */
    double loss = loss_at(&f, NULL);
    dn_metrics m;
    assert_int_equal(dn_metrics_compute(f.net->acts[2], LABELS, N, &m, NULL), DN_OK);
    assert_near(m.loss, loss, 1e-6);
    fixture_free(&f);
}

/* ---------------------------------------------------------------- accumulation */

/* Parameter gradients accumulate (+=) across backward passes: two forward + backward pairs without
 * zeroing give twice one pair's gradients (up to rounding: BLAS may add the product into the
 * existing gradient block by block), where a layer that overwrote them would give once. */
static void test_gradients_accumulate(void **state)
{
    (void)state;
    fixture f;
    fixture_init(&f, "accumulate",
                 "input 6x6x2\ndropout 0\nconv2d 3 3x3 same relu\nbatchnorm\nmaxpool 2x2\nflatten\ndense 8 tanh\n"
                 "dense 10 softmax\n",
                 3, -1.0f, 1.0f, 12);
    dn_net *net = f.net;
    uint64_t sig;
    analytic(&f, &sig);
    float *once = malloc(sizeof(float) * net->n_params);
    assert_non_null(once);
    memcpy(once, net->grads, sizeof(float) * net->n_params);
    /* A second pair on top, without the memset analytic() does. */
    dn_rng_seed(&net->rng, MASK_SEED);
    const float *p = dn_net_forward(net, f.x, f.n, 1);
    for (int r = 0; r < f.n; r++)
        for (int j = 0; j < DN_N_CLASSES; j++)
            f.dlogits[r * DN_N_CLASSES + j] = (p[r * DN_N_CLASSES + j] - (j == LABELS[r])) / (float)f.n;
    dn_net_backward(net, f.dlogits, f.n);
    int nonzero = 0;
    for (size_t k = 0; k < net->n_params; k++) {
        if (!(fabs((double)net->grads[k] - 2.0 * once[k]) <= 1e-5 * fabs(2.0 * once[k]) + 1e-9))
            fail_msg("gradient %zu: %.9g after two passes, %.9g after one", k, (double)net->grads[k], (double)once[k]);
        nonzero += once[k] != 0.0f;
    }
    assert_true(nonzero > (int)net->n_params / 2);
    free(once);
    fixture_free(&f);
}

/* ---------------------------------------------------------------- threads, row blocks, kernels */

/* x (n) = uniform values in [0, 1) from a generator seeded with seed. */
static void fill_uniform(float *x, size_t n, uint64_t seed)
{
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = dn_rng_uniform(&rng);
}

/* One forward + backward pass of spec on `rows` seeded inputs with `threads` threads. Returns the
 * parameter gradients (*n_params floats) and, when din is not NULL, layer 1's d(input) (*n_din
 * floats; only for nets that start with 'dropout 0', so that layer 1 has one); the caller frees
 * both. */
static float *gradients_of(const char *spec, int rows, int threads, size_t *n_params, float **din, size_t *n_din)
{
    dn_set_threads(threads);
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(spec, "gradients", 3, &net, NULL), DN_OK);
    assert_int_equal(dn_net_reserve(net, rows, NULL), DN_OK);
    const size_t n_in = dn_shape_size(net->input) * (size_t)rows;
    float *x = malloc(sizeof(float) * n_in), *dlogits = malloc(sizeof(float) * DN_N_CLASSES * (size_t)rows);
    assert_non_null(x);
    assert_non_null(dlogits);
    fill_uniform(x, n_in, 77);
    const float *p = dn_net_forward(net, x, rows, 1);
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < DN_N_CLASSES; j++)
            dlogits[r * DN_N_CLASSES + j] = (p[r * DN_N_CLASSES + j] - (j == r % DN_N_CLASSES)) / (float)rows;
    memset(net->grads, 0, sizeof(float) * net->n_params);
    dn_net_backward(net, dlogits, rows);
    *n_params = net->n_params;
    float *grads = malloc(sizeof(float) * net->n_params);
    assert_non_null(grads);
    memcpy(grads, net->grads, sizeof(float) * net->n_params);
    if (din) {
        *n_din = dn_shape_size(net->layers[0].out) * (size_t)rows; /* layer 1's input is layer 0's output */
        *din = malloc(sizeof(float) * *n_din);
        assert_non_null(*din);
        layer1_din(net, dlogits, rows, *din);
    }
    free(x);
    free(dlogits);
    dn_net_free(net);
    dn_set_threads(1);
    return grads;
}

/* Training runs a relu right after batchnorm inside batchnorm's passes (layer.h, relu_after).
 * 'dropout 0' between the two keeps them apart and passes values and gradients through unchanged:
 * both nets must give the same gradients bit for bit, on one thread and on two. */
static void test_batchnorm_relu_fused(void **state)
{
    (void)state;
    static const char fused[] = "input 6x6x2\nconv2d 4 3x3 same\nbatchnorm\nrelu\nconv2d 3 3x3 same\nbatchnorm "
                                "momentum=0.9\nrelu\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    static const char apart[] = "input 6x6x2\nconv2d 4 3x3 same\nbatchnorm\ndropout 0\nrelu\nconv2d 3 3x3 same\n"
                                "batchnorm momentum=0.9\ndropout 0\nrelu\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(fused, "fused", 3, &net, NULL), DN_OK);
    assert_true(net->layers[1].relu_after && net->layers[4].relu_after);
    dn_net_free(net);
    assert_int_equal(dn_net_parse(apart, "apart", 3, &net, NULL), DN_OK);
    assert_false(net->layers[1].relu_after || net->layers[5].relu_after);
    dn_net_free(net);
    for (int threads = 1; threads <= 2; threads++) {
        size_t n_fused, n_apart;
        float *g_fused = gradients_of(fused, 5, threads, &n_fused, NULL, NULL);
        float *g_apart = gradients_of(apart, 5, threads, &n_apart, NULL, NULL);
        assert_int_equal(n_fused, n_apart);
        int nonzero = 0;
        for (size_t k = 0; k < n_fused; k++) {
            if (memcmp(&g_fused[k], &g_apart[k], sizeof(float)) != 0)
                fail_msg("gradient %zu (%d threads): %.9g fused, %.9g apart", k, threads, (double)g_fused[k],
                         (double)g_apart[k]);
            nonzero += g_fused[k] != 0.0f;
        }
        assert_true(nonzero > (int)n_fused / 2);
        free(g_fused);
        free(g_apart);
    }
}

/* |a - b| <= tol * (largest |a|) everywhere, and the values are not all zero. */
static void assert_close(const char *what, const float *a, const float *b, size_t n, double tol)
{
    double max_abs = 0.0;
    for (size_t i = 0; i < n; i++)
        max_abs = fmax(max_abs, fabs((double)a[i]));
    assert_true(max_abs > 1e-4);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)a[i] - b[i]) <= tol * max_abs))
            fail_msg("%s %zu: %.9g against %.9g (largest %.3g)", what, i, (double)a[i], (double)b[i], max_abs);
}

/* The reference network's shape, small, as it is and behind 'dropout 0' (which gives layer 1, the
 * first convolution, a d(input) to check).
 * 70 filters: a full group of 64 output channels and a masked one of 6; 21 rows: blocks of 8, 8
 * and 5. */
static const char BLOCKED_SPEC[] = "input 9x9x3\nconv2d 20 3x3 same relu\nmaxpool 2x2\nconv2d 70 2x2 valid relu\n"
                                   "maxpool 2x2 stride=1\nflatten\ndense 16 relu\ndense 10 softmax\n";
static const char WHOLE_SPEC[] = "input 9x9x3\ndropout 0\nconv2d 20 3x3 same relu\nmaxpool 2x2\nconv2d 70 2x2 valid relu\n"
                                 "maxpool 2x2 stride=1\nflatten\ndense 16 relu\ndense 10 softmax\n";
/* A strided convolution: im2col + GEMM instead of the direct kernels. */
static const char STRIDED_SPEC[] = "input 9x9x3\nconv2d 12 3x3 same stride=2 relu\nconv2d 16 2x2 valid stride=2 relu\n"
                                   "flatten\ndense 16 relu\ndense 10 softmax\n";
enum { CHECK_ROWS = 21 };

/* One and two threads give the same bits: every sum is cut by row count or shape, never by
 * thread, and the row blocks' partial gradients are added in block order. The direct and the
 * strided (im2col) convolution both. */
static void test_threads_same_gradients(void **state)
{
    (void)state;
    const char *specs[3] = {BLOCKED_SPEC, WHOLE_SPEC, STRIDED_SPEC};
    for (int s = 0; s < 3; s++) {
        size_t np, nd = 0;
        float *din1 = NULL, *din2 = NULL;
        float *g1 = gradients_of(specs[s], CHECK_ROWS, 1, &np, s == 1 ? &din1 : NULL, &nd);
        float *g2 = gradients_of(specs[s], CHECK_ROWS, 2, &np, s == 1 ? &din2 : NULL, &nd);
        assert_memory_equal(g1, g2, sizeof(float) * np);
        if (s == 1)
            assert_memory_equal(din1, din2, sizeof(float) * nd);
        assert_close("gradient", g1, g2, np, 0.0); /* and they are not all zero */
        free(g1), free(g2), free(din1), free(din2);
    }
}

/* Row blocks give the gradients of the whole batch, to rounding: the 21-row pass (blocks of 8, 8
 * and 5) against the mean of 21 one-row passes (every sum in another order). */
static void test_row_blocks_match_whole_batch(void **state)
{
    (void)state;
    dn_set_threads(2);
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(BLOCKED_SPEC, "blocks", 3, &net, NULL), DN_OK);
    assert_int_equal(dn_net_reserve(net, CHECK_ROWS, NULL), DN_OK);
    const size_t in_size = dn_shape_size(net->input), np = net->n_params;
    float *x = malloc(sizeof(float) * in_size * CHECK_ROWS), *batch = malloc(sizeof(float) * np);
    float dlogits[CHECK_ROWS * DN_N_CLASSES];
    assert_non_null(x);
    assert_non_null(batch);
    fill_uniform(x, in_size * CHECK_ROWS, 77);
    const float *p = dn_net_forward(net, x, CHECK_ROWS, 1);
    for (int r = 0; r < CHECK_ROWS; r++)
        for (int j = 0; j < DN_N_CLASSES; j++)
            dlogits[r * DN_N_CLASSES + j] = (p[r * DN_N_CLASSES + j] - (j == r % DN_N_CLASSES)) / (float)CHECK_ROWS;
    memset(net->grads, 0, sizeof(float) * np);
    dn_net_backward(net, dlogits, CHECK_ROWS);
    memcpy(batch, net->grads, sizeof(float) * np);
    memset(net->grads, 0, sizeof(float) * np);
    for (int r = 0; r < CHECK_ROWS; r++) { /* gradients add up over the one-row passes */
        p = dn_net_forward(net, x + (size_t)r * in_size, 1, 1);
        for (int j = 0; j < DN_N_CLASSES; j++)
            dlogits[j] = (p[j] - (j == r % DN_N_CLASSES)) / (float)CHECK_ROWS;
        dn_net_backward(net, dlogits, 1);
    }
    assert_close("gradient", batch, net->grads, np, 1e-5);
    free(x);
    free(batch);
    dn_net_free(net);
    dn_set_threads(1);
}

/* Inference and training forward passes give the same outputs when nothing random is on: the
 * inference-only paths (max-pool's 2x2 loop without window places, row blocks of 4 in both) change
 * nothing. 33 rows: one more than an inference chunk. */
static void test_inference_matches_training_forward(void **state)
{
    (void)state;
    enum { ROWS = 33 };
    static const char spec[] = "input 12x12x3\nconv2d 20 3x3 valid relu\nmaxpool 2x2\nconv2d 36 2x2 same relu\n"
                               "maxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(spec, "forward", 5, &net, NULL), DN_OK);
    const size_t n_in = dn_shape_size(net->input) * ROWS;
    float *x = malloc(sizeof(float) * n_in), *inferred = malloc(sizeof(float) * DN_N_CLASSES * ROWS);
    assert_non_null(x);
    assert_non_null(inferred);
    fill_uniform(x, n_in, 21);
    assert_int_equal(dn_net_predict(net, x, ROWS, inferred, NULL), DN_OK);
    assert_int_equal(dn_net_reserve(net, ROWS, NULL), DN_OK);
    const float *trained = dn_net_forward(net, x, ROWS, 1);
    /* dn_net_predict runs its 33 rows as chunks of 32 and 1; the dense layer's GEMM then has other
     * shapes than on 33 rows at once, so compare to rounding */
    assert_close("probability", trained, inferred, (size_t)DN_N_CLASSES * ROWS, 1e-6);
    free(x);
    free(inferred);
    dn_net_free(net);
}

/* A convolution whose last output row and column no pooling window reads computes them only for a
 * single image in inference (for dn_workspace_layer_output): the same bits as a convolution whose
 * outputs are all read, and zeros there in batches. */
static void test_unread_outputs(void **state)
{
    (void)state;
    dn_net *pooled = NULL, *flat = NULL; /* the same convolution weights: same seed, same layer order */
    assert_int_equal(dn_net_parse("input 12x12x3\nconv2d 20 2x2 valid relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n",
                                  "pooled", 4, &pooled, NULL), DN_OK);
    assert_int_equal(dn_net_parse("input 12x12x3\nconv2d 20 2x2 valid relu\nflatten\ndense 10 softmax\n", "flat", 4,
                                  &flat, NULL), DN_OK);
    assert_int_equal(pooled->layers[0].used_h, 10);
    assert_int_equal(flat->layers[0].used_h, 11);
    float x[2 * 12 * 12 * 3], probs[2 * DN_N_CLASSES];
    fill_uniform(x, sizeof x / sizeof x[0], 8);
    const size_t map = 11 * 11 * 20;
    dn_workspace *ws_flat = NULL, *ws_pooled = NULL;
    assert_int_equal(dn_workspace_init(flat, &ws_flat, NULL), DN_OK);
    assert_int_equal(dn_workspace_init(pooled, &ws_pooled, NULL), DN_OK);
    assert_int_equal(dn_net_predict_ws(flat, ws_flat, x, 1, probs, NULL), DN_OK);
    assert_int_equal(dn_net_predict_ws(pooled, ws_pooled, x, 1, probs, NULL), DN_OK);
    dn_shape shape;
    assert_memory_equal(dn_workspace_layer_output(ws_pooled, 0, &shape), dn_workspace_layer_output(ws_flat, 0, &shape),
                        sizeof(float) * map);
    assert_int_equal(dn_net_reserve(pooled, 2, NULL), DN_OK);
    const float *full = dn_workspace_layer_output(ws_flat, 0, &shape);
    float *kept = malloc(sizeof(float) * map);
    assert_non_null(kept);
    memcpy(kept, full, sizeof(float) * map);
    dn_net_forward(pooled, x, 2, 0);
    const float *batch = pooled->acts[1]; /* (2, 11, 11, 20): the first image */
    int nonzero_edge = 0;
    for (int y = 0; y < 11; y++)
        for (int xx = 0; xx < 11; xx++)
            for (int f = 0; f < 20; f++) {
                size_t i = ((size_t)y * 11 + xx) * 20 + f;
                if (y < 10 && xx < 10)
                    assert_true(batch[i] == kept[i]);
                else {
                    assert_true(batch[i] == 0.0f);
                    nonzero_edge += kept[i] != 0.0f;
                }
            }
    assert_true(nonzero_edge > 0); /* the single-image map has real values there */
    dn_workspace_free(ws_flat);
    dn_workspace_free(ws_pooled);
    free(kept);
    dn_net_free(pooled);
    dn_net_free(flat);
}

/* Max pooling keeps the first window element unless a later one is strictly greater, so NaN only
 * survives in first place; the inference-only 2x2 path must follow the same order as the training
 * path (windows [[1, 2], [NaN, 5]] -> 5, [[NaN, 2], [3, 4]] -> NaN). 16 channels: one vector. */
static void test_maxpool_nan_order(void **state)
{
    (void)state;
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse("input 2x2x16\nmaxpool 2x2\nflatten\ndense 10 softmax\n", "nan", 1, &net, NULL), DN_OK);
    assert_int_equal(dn_net_reserve(net, 2, NULL), DN_OK);
    float x[2 * 2 * 2 * 16];
    const float first[4] = {1.0f, 2.0f, NAN, 5.0f}, second[4] = {NAN, 2.0f, 3.0f, 4.0f};
    for (int p = 0; p < 4; p++)
        for (int c = 0; c < 16; c++) {
            x[p * 16 + c] = first[p];
            x[64 + p * 16 + c] = second[p];
        }
    for (int training = 0; training <= 1; training++) {
        dn_net_forward(net, x, 2, training);
        const float *pooled = net->acts[1]; /* (2, 1, 1, 16) */
        for (int c = 0; c < 16; c++) {
            if (pooled[c] != 5.0f)
                fail_msg("%s: window [[1, 2], [NaN, 5]] pooled to %g", training ? "training" : "inference", (double)pooled[c]);
            if (!isnan(pooled[16 + c]))
                fail_msg("%s: window [[NaN, 2], [3, 4]] pooled to %g", training ? "training" : "inference",
                         (double)pooled[16 + c]);
        }
    }
    dn_net_free(net);
}

/* Dropout draws its mask in blocks on several threads; every value must be the one a single
 * generator drawing in order gives (dn_rng_skip), on 1 thread and on 2. 8 rows of 64x64x8: 32,768
 * draws each, 64 blocks in all. */
static void test_dropout_mask_in_blocks(void **state)
{
    (void)state;
    enum { ROWS = 8 };
    for (int threads = 1; threads <= 2; threads++) {
        dn_set_threads(threads);
        dn_net *net = NULL;
        assert_int_equal(dn_net_parse("input 64x64x8\ndropout 0.5\nflatten\ndense 10 softmax\n", "mask", 9, &net, NULL),
                         DN_OK);
        assert_int_equal(dn_net_reserve(net, ROWS, NULL), DN_OK);
        const size_t n = dn_shape_size(net->input) * ROWS;
        float *x = malloc(sizeof(float) * n);
        assert_non_null(x);
        for (size_t i = 0; i < n; i++)
            x[i] = 1.0f;
        dn_rng_seed(&net->rng, 1234);
        dn_rng sequential;
        dn_rng_seed(&sequential, 1234);
        dn_net_forward(net, x, ROWS, 1);
        const float *kept = net->acts[1]; /* (ROWS, 64, 64, 8) the dropout layer's output */
        size_t zeros = 0;
        for (size_t i = 0; i < n; i++) {
            float expected = dn_rng_uniform(&sequential) >= 0.5f ? 2.0f : 0.0f;
            if (kept[i] != expected)
                fail_msg("%d threads: value %zu is %g, the sequential mask gives %g", threads, i, (double)kept[i],
                         (double)expected);
            zeros += kept[i] == 0.0f;
        }
        assert_true(zeros > n / 3 && zeros < 2 * n / 3);
        /* the net's generator ends where the sequential one does */
        assert_true(dn_rng_next(&net->rng) == dn_rng_next(&sequential));
        free(x);
        dn_net_free(net);
    }
    dn_set_threads(1);
}

/* The AVX-512 and AVX2 kernels (each where the CPU has it) and the portable ones agree to rounding
 * on every gradient and d(input). */
static void test_kernels_agree(void **state)
{
    (void)state;
    const int width = dn_kernels_simd_width(); /* the suite's own choice (DIGITNET_SIMD), restored below */
    size_t np, nd;
    float *din_p;
    dn_kernels_select(0);
    float *port = gradients_of(WHOLE_SPEC, CHECK_ROWS, 1, &np, &din_p, &nd);
    int compared = 0;
    for (int w = 512; w >= 256; w /= 2) {
        if (dn_kernels_select(w) != w)
            continue;
        float *din_v;
        float *vec = gradients_of(WHOLE_SPEC, CHECK_ROWS, 1, &np, &din_v, &nd);
        assert_close("gradient", vec, port, np, 1e-5);
        assert_close("d(input)", din_v, din_p, nd, 1e-5);
        free(vec), free(din_v);
        compared++;
    }
    dn_kernels_select(width);
    free(port), free(din_p);
    if (!compared) {
        print_message("no AVX-512 or AVX2 on this CPU: only the portable kernels run (checked by the other tests)\n");
        skip();
    }
}

int main(void)
{
    dn_set_threads(1);
    /* DIGITNET_TEST_FTZ=1: the checks once more with flush-to-zero and denormals-are-zero, as
     * dn_train and dn_net_predict compute (kernels/fp_mode.c). */
    dn_fp_saved fp;
    if (getenv("DIGITNET_TEST_FTZ")) {
        dn_fp_fast_begin(&fp);
        if (!dn_fp_fast_active())
            fprintf(stderr, "test_gradients: flush-to-zero is not available on this CPU; the checks run without it\n");
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_maxpool_ties_and_padding),
        cmocka_unit_test(test_dense),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_flatten),
        cmocka_unit_test(test_globalavgpool),
        cmocka_unit_test(test_batchnorm),
        cmocka_unit_test(test_batchnorm_forward_statistics),
        cmocka_unit_test(test_batchnorm_relu_fused),
        cmocka_unit_test(test_activation_layers),
        cmocka_unit_test(test_softmax_cross_entropy),
        cmocka_unit_test(test_gradients_accumulate),
        cmocka_unit_test(test_threads_same_gradients),
        cmocka_unit_test(test_row_blocks_match_whole_batch),
        cmocka_unit_test(test_kernels_agree),
        cmocka_unit_test(test_dropout_mask_in_blocks),
        cmocka_unit_test(test_maxpool_nan_order),
        cmocka_unit_test(test_unread_outputs),
        cmocka_unit_test(test_inference_matches_training_forward),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Metrics against values worked out by hand: confusion, precision / recall / F1 and their macro
 * means, ROC AUC with tied scores, the clipped cross-entropy, mean / std, and argument errors.
 */
#include "testutil.h"
#include "internal.h"

#include <math.h>

#define EPS 1e-12

/* Fills row i of probs (n, DN_N_CLASSES) so that `top` is the argmax: 0.8 there and the remaining
 * 0.2 spread evenly, so rows sum to 1 like softmax output. */
static void one_row(float *probs, int i, int top)
{
    for (int k = 0; k < DN_N_CLASSES; k++)
        probs[i * DN_N_CLASSES + k] = (k == top) ? 0.8f : 0.2f / (DN_N_CLASSES - 1);
}

/*
 * Six examples (true -> predicted):
 *   0 -> 0,  0 -> 0,  0 -> 1,  1 -> 1,  1 -> 3,  2 -> 1
 *
 * Confusion (rows true, columns predicted), classes 0..3 shown, the rest all zero:
 *        p0 p1 p2 p3
 *   t0 [  2  1  0  0 ]   support 3
 *   t1 [  0  1  0  1 ]   support 2
 *   t2 [  0  1  0  0 ]   support 1
 *   t3 [  0  0  0  0 ]   support 0
 *   predicted counts:  2  3  0  1
 *
 *   class 0: tp 2, fp 0, fn 1 -> P = 2/2 = 1,   R = 2/3,  F1 = 2*2/(4+0+1) = 4/5 = 0.8
 *   class 1: tp 1, fp 2, fn 1 -> P = 1/3,       R = 1/2,  F1 = 2*1/(2+2+1) = 2/5 = 0.4
 *   class 2: tp 0, fp 0, fn 1 -> P = 0/0 -> 0,  R = 0/1 = 0, F1 = 0/(0+0+1) = 0
 *   class 3: tp 0, fp 1, fn 0 -> P = 0/1 = 0,   R = 0/0 -> 0, F1 = 0/(0+1+0) = 0
 *   classes 4..9: in neither truth nor predictions -> 0, and left out of the macro means.
 *
 *   macro over the 4 labels present {0,1,2,3}:
 *     P  = (1 + 1/3 + 0 + 0) / 4 = (4/3) / 4 = 1/3
 *     R  = (2/3 + 1/2 + 0 + 0) / 4 = (7/6) / 4 = 7/24
 *     F1 = (0.8 + 0.4 + 0 + 0) / 4 = 0.3
 *   (averaging over all ten classes would give 2/15, 7/60 and 0.12 instead.)
 *   accuracy = (2 + 1 + 0) / 6 = 0.5
 *   loss: the 3 correct rows have p(true) = 0.8, the 3 wrong ones 0.2/9, so
 *     loss = (-3 ln 0.8 - 3 ln(0.2/9)) / 6 = -(ln 0.8 + ln(0.2/9)) / 2
 */
static void test_six_examples(void **state)
{
    (void)state;
    static const uint8_t labels[6] = {0, 0, 0, 1, 1, 2};
    static const int predicted[6] = {0, 0, 1, 1, 3, 1};
    float probs[6 * DN_N_CLASSES]; /* (6, DN_N_CLASSES) */
    for (int i = 0; i < 6; i++)
        one_row(probs, i, predicted[i]);

    dn_metrics m;
    dn_error err = {0};
    assert_int_equal(dn_metrics_compute(probs, labels, 6, &m, &err), DN_OK);

    assert_int_equal(m.n, 6);
    static const long expected_confusion[4][4] = {
        {2, 1, 0, 0}, {0, 1, 0, 1}, {0, 1, 0, 0}, {0, 0, 0, 0}};
    for (int t = 0; t < DN_N_CLASSES; t++)
        for (int p = 0; p < DN_N_CLASSES; p++)
            assert_int_equal(m.confusion[t][p], (t < 4 && p < 4) ? expected_confusion[t][p] : 0);
    static const long expected_support[DN_N_CLASSES] = {3, 2, 1, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < DN_N_CLASSES; k++)
        assert_int_equal(m.support[k], expected_support[k]);

    assert_near(m.accuracy, 0.5, EPS);

    static const double expected_p[4] = {1.0, 1.0 / 3.0, 0.0, 0.0};
    static const double expected_r[4] = {2.0 / 3.0, 0.5, 0.0, 0.0};
    static const double expected_f1[4] = {0.8, 0.4, 0.0, 0.0};
    for (int k = 0; k < DN_N_CLASSES; k++) {
        assert_near(m.precision[k], k < 4 ? expected_p[k] : 0.0, EPS);
        assert_near(m.recall[k], k < 4 ? expected_r[k] : 0.0, EPS);
        assert_near(m.f1[k], k < 4 ? expected_f1[k] : 0.0, EPS);
    }
    assert_near(m.precision_macro, 1.0 / 3.0, EPS);
    assert_near(m.recall_macro, 7.0 / 24.0, EPS);
    assert_near(m.f1_macro, 0.3, EPS);

    /* Probabilities are stored as float, so the expected loss uses the same rounded values. */
    double expected_loss = -(log((double)0.8f) + log((double)(0.2f / 9))) / 2.0;
    assert_near(m.loss, expected_loss, 1e-9);
}

/*
 * Ties in the arg max go to the first maximum: a row (0.4, 0.4, 0.2, 0...) predicts class 0, and
 * a row whose maximum appears at 3 and 7 predicts 3.
 */
static void test_argmax_first_on_ties(void **state)
{
    (void)state;
    float probs[2 * DN_N_CLASSES] = {0}; /* (2, DN_N_CLASSES) */
    probs[0] = 0.4f;
    probs[1] = 0.4f;
    probs[2] = 0.2f;
    probs[DN_N_CLASSES + 3] = 0.5f;
    probs[DN_N_CLASSES + 7] = 0.5f;
    const uint8_t labels[2] = {1, 7};

    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, 2, &m, NULL), DN_OK);
    assert_int_equal(m.confusion[1][0], 1); /* true 1, predicted 0 (first of the tie) */
    assert_int_equal(m.confusion[1][1], 0);
    assert_int_equal(m.confusion[7][3], 1); /* true 7, predicted 3 */
    assert_int_equal(m.confusion[7][7], 0);
    assert_near(m.accuracy, 0.0, EPS);
}

/*
 * Four examples, labels 0, 1, 0, 1 ("pos, neg, pos, neg" for class 0).
 *
 * Class 0 scores {0.9, 0.8, 0.8, 0.3}: sorted ascending 0.3(neg) rank 1; 0.8(neg), 0.8(pos) share
 * ranks 2 and 3 -> 2.5 each; 0.9(pos) rank 4. Positive rank sum R = 4 + 2.5 = 6.5,
 * U = R - P(P+1)/2 = 6.5 - 3 = 3.5, AUC = U / (P N) = 3.5 / 4 = 0.875.
 * Check by pairs (pos, neg): (0.9,0.8)=1 (0.9,0.3)=1 (0.8,0.8)=1/2 (0.8,0.3)=1 -> 3.5/4.
 *
 * Class 1 scores {0.1, 0.1, 0.05, 0.05} (positives are examples 1 and 3): 0.05(neg), 0.05(pos)
 * share ranks 1, 2 -> 1.5; 0.1(neg), 0.1(pos) share 3, 4 -> 3.5. R = 3.5 + 1.5 = 5, U = 5 - 3 = 2,
 * AUC = 2/4 = 0.5. Pairs: (0.1,0.1)=1/2 (0.1,0.05)=1 (0.05,0.1)=0 (0.05,0.05)=1/2 -> 2/4.
 *
 * Classes 2..9 have no positives -> NaN. Macro over the defined ones = (0.875 + 0.5) / 2 = 0.6875.
 */
static void test_roc_auc_ties(void **state)
{
    (void)state;
    float probs[4 * DN_N_CLASSES] = {0}; /* (4, DN_N_CLASSES) */
    static const float class0[4] = {0.9f, 0.8f, 0.8f, 0.3f};
    static const float class1[4] = {0.1f, 0.1f, 0.05f, 0.05f};
    for (int i = 0; i < 4; i++) {
        probs[i * DN_N_CLASSES + 0] = class0[i];
        probs[i * DN_N_CLASSES + 1] = class1[i];
    }
    const uint8_t labels[4] = {0, 1, 0, 1};

    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, 4, &m, NULL), DN_OK);
    assert_near(m.roc_auc[0], 0.875, EPS);
    assert_near(m.roc_auc[1], 0.5, EPS);
    for (int k = 2; k < DN_N_CLASSES; k++)
        assert_true(isnan(m.roc_auc[k]));
    assert_near(m.roc_auc_macro, 0.6875, EPS);
}

/* Positives all scoring above negatives give 1; the reverse gives 0. */
static void test_roc_auc_separated(void **state)
{
    (void)state;
    enum { N = 6 };
    float probs[N * DN_N_CLASSES] = {0}; /* (N, DN_N_CLASSES) */
    const uint8_t labels[N] = {2, 5, 2, 5, 2, 5};
    for (int i = 0; i < N; i++) {
        /* class 2 scores: 0.6..0.8 on its positives, 0.1..0.3 on the rest */
        float s = (labels[i] == 2) ? 0.6f + 0.1f * (float)i / 2 : 0.1f + 0.1f * (float)(i / 2);
        probs[i * DN_N_CLASSES + 2] = s;
        probs[i * DN_N_CLASSES + 5] = 1.0f - s; /* class 5 positives score high too */
        probs[i * DN_N_CLASSES + 8] = 0.5f;     /* constant, and class 8 has no positives */
        probs[i * DN_N_CLASSES + 9] = s;        /* no positives either, but ranked like 2 */
    }
    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, N, &m, NULL), DN_OK);
    assert_near(m.roc_auc[2], 1.0, EPS);
    assert_near(m.roc_auc[5], 1.0, EPS);
    assert_true(isnan(m.roc_auc[8]));
    assert_true(isnan(m.roc_auc[9]));
    assert_near(m.roc_auc_macro, 1.0, EPS);

    /* Scoring class 2 by 1 - s puts every negative above every positive. */
    for (int i = 0; i < N; i++)
        probs[i * DN_N_CLASSES + 2] = 1.0f - probs[i * DN_N_CLASSES + 2];
    assert_int_equal(dn_metrics_compute(probs, labels, N, &m, NULL), DN_OK);
    assert_near(m.roc_auc[2], 0.0, EPS);
    assert_near(m.roc_auc_macro, 0.5, EPS); /* (0 + 1) / 2 */
}

/* One class only: no negatives anywhere, so every AUC and the macro are NaN. */
static void test_roc_auc_undefined(void **state)
{
    (void)state;
    float probs[3 * DN_N_CLASSES];
    for (int i = 0; i < 3; i++)
        one_row(probs, i, i);
    const uint8_t labels[3] = {4, 4, 4};
    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, 3, &m, NULL), DN_OK);
    for (int k = 0; k < DN_N_CLASSES; k++)
        assert_true(isnan(m.roc_auc[k]));
    assert_true(isnan(m.roc_auc_macro));
}

/* Brute-force AUC: count (positive, negative) pairs, ties as 1/2. */
static double auc_by_pairs(const float *probs, const uint8_t *labels, int n, int k)
{
    double wins = 0.0;
    long pairs = 0;
    for (int i = 0; i < n; i++) {
        if (labels[i] != k)
            continue;
        for (int j = 0; j < n; j++) {
            if (labels[j] == k)
                continue;
            float sp = probs[i * DN_N_CLASSES + k], sn = probs[j * DN_N_CLASSES + k];
            wins += sp > sn ? 1.0 : sp == sn ? 0.5 : 0.0;
            pairs++;
        }
    }
    return pairs ? wins / (double)pairs : NAN;
}

/* The rank-sum AUC equals the pair count on random data with many ties (scores in steps of 1/8). */
static void test_roc_auc_matches_pairs(void **state)
{
    (void)state;
    enum { N = 300 };
    float *probs = malloc(N * DN_N_CLASSES * sizeof *probs); /* (N, DN_N_CLASSES) */
    uint8_t labels[N];
    assert_non_null(probs);
    dn_rng rng;
    dn_rng_seed(&rng, 42);
    for (int i = 0; i < N; i++) {
        labels[i] = (uint8_t)dn_rng_below(&rng, 9); /* class 9 never occurs: its AUC is NaN */
        for (int k = 0; k < DN_N_CLASSES; k++)
            probs[i * DN_N_CLASSES + k] = (float)dn_rng_below(&rng, 8) / 8.0f;
    }
    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, N, &m, NULL), DN_OK);
    double sum = 0.0;
    for (int k = 0; k < 9; k++) {
        double expected = auc_by_pairs(probs, labels, N, k);
        assert_near(m.roc_auc[k], expected, 1e-12);
        sum += expected;
    }
    assert_true(isnan(m.roc_auc[9]));
    assert_near(m.roc_auc_macro, sum / 9.0, 1e-12);
    free(probs);
}

/*
 * Example 0 (label 0) has p = 0 -> clipped to 1e-7 -> -ln(1e-7) = 16.11809565095832.
 * Example 1 (label 1) has p = 0.5 -> -ln 0.5 = 0.6931471805599453.
 * Mean = (16.11809565095832 + 0.6931471805599453) / 2 = 8.405621415759132.
 * A single example with p = 1 is clipped to 1 - 1e-7 -> -ln(1 - 1e-7) = 1.0000000494736474e-07,
 * not 0.
 */
static void test_loss_clipping(void **state)
{
    (void)state;
    float probs[2 * DN_N_CLASSES] = {0}; /* (2, DN_N_CLASSES) */
    probs[0 * DN_N_CLASSES + 3] = 1.0f; /* label 0 gets p = 0 */
    probs[1 * DN_N_CLASSES + 1] = 0.5f;
    probs[1 * DN_N_CLASSES + 2] = 0.5f;
    const uint8_t labels[2] = {0, 1};
    dn_metrics m;
    assert_int_equal(dn_metrics_compute(probs, labels, 2, &m, NULL), DN_OK);
    assert_true(isfinite(m.loss));
    assert_near(m.loss, 8.405621415759132, 1e-9);

    float sure[DN_N_CLASSES] = {0};
    sure[6] = 1.0f;
    const uint8_t six = 6;
    assert_int_equal(dn_metrics_compute(sure, &six, 1, &m, NULL), DN_OK);
    assert_near(m.loss, 1.0000000494736474e-07, 1e-15);
    assert_near(m.accuracy, 1.0, EPS);
}

/*
 * mean = (0.9875 + 0.9884 + 0.9929 + 0.9902 + 0.9938) / 5 = 4.9528 / 5 = 0.99056
 * deviations: -0.00306 -0.00216 0.00234 -0.00036 0.00324
 * squares (1e-6): 9.3636 4.6656 5.4756 0.1296 10.4976, sum 30.132e-6
 * population variance 30.132e-6 / 5 = 6.0264e-6, std = sqrt = 0.0024548727...
 * (python3 statistics.pstdev: 0.002454872705457459; the sample std, ddof=1, would be 0.0027446.)
 */
static void test_mean_std(void **state)
{
    (void)state;
    static const double acc[5] = {0.9875, 0.9884, 0.9929, 0.9902, 0.9938};
    double mean = -1.0, std = -1.0;
    dn_mean_std(acc, 5, &mean, &std);
    assert_near(mean, 0.99056, 1e-12);
    assert_near(std, 0.002454872705457459, 1e-12);

    mean = std = -1.0;
    dn_mean_std(acc, 0, &mean, &std);
    assert_near(mean, 0.0, 0.0);
    assert_near(std, 0.0, 0.0);

    dn_mean_std(acc, 1, &mean, &std); /* one value: itself, no spread */
    assert_near(mean, 0.9875, 0.0);
    assert_near(std, 0.0, 0.0);
}

/* Every bad argument is DN_EARG with a message naming it, and leaves *m untouched. */
static void test_argument_errors(void **state)
{
    (void)state;
    float probs[3 * DN_N_CLASSES];
    for (int i = 0; i < 3; i++)
        one_row(probs, i, i);
    uint8_t labels[3] = {0, 1, 2};
    dn_metrics m;
    memset(&m, 0x5a, sizeof m);
    dn_metrics untouched;
    memcpy(&untouched, &m, sizeof m);
    dn_error err;

    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(NULL, labels, 3, &m, &err), DN_EARG);
    assert_int_equal(err.status, DN_EARG);
    assert_non_null(strstr(err.msg, "probs"));

    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(probs, NULL, 3, &m, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "labels"));

    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(probs, labels, 3, NULL, &err), DN_EARG);
    assert_true(err.msg[0] != '\0');

    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(probs, labels, 0, &m, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "n = 0"));
    assert_int_equal(dn_metrics_compute(probs, labels, -5, &m, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "n = -5"));

    labels[2] = 10;
    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(probs, labels, 3, &m, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "labels[2] = 10"));
    labels[2] = 2;

    probs[1 * DN_N_CLASSES + 4] = NAN;
    memset(&err, 0, sizeof err);
    assert_int_equal(dn_metrics_compute(probs, labels, 3, &m, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "probs[1][4]"));
    probs[1 * DN_N_CLASSES + 4] = 0.2f / (DN_N_CLASSES - 1);

    /* Without an error record the status alone comes back. */
    assert_int_equal(dn_metrics_compute(probs, labels, -1, &m, NULL), DN_EARG);

    assert_memory_equal(&m, &untouched, sizeof m);

    /* And the repaired arguments are accepted. */
    assert_int_equal(dn_metrics_compute(probs, labels, 3, &m, &err), DN_OK);
    assert_near(m.accuracy, 1.0, EPS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_six_examples),
        cmocka_unit_test(test_argmax_first_on_ties),
        cmocka_unit_test(test_roc_auc_ties),
        cmocka_unit_test(test_roc_auc_separated),
        cmocka_unit_test(test_roc_auc_undefined),
        cmocka_unit_test(test_roc_auc_matches_pairs),
        cmocka_unit_test(test_loss_clipping),
        cmocka_unit_test(test_mean_std),
        cmocka_unit_test(test_argument_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Classification metrics from predicted probabilities: cross-entropy loss, accuracy, confusion
 * matrix, per-class and macro precision / recall / F1, and one-vs-rest ROC AUC. Definitions follow
 * Keras (loss) and scikit-learn (everything else) so that the numbers match the reference reports.
 */
#include "internal.h"

#include <math.h>
#include <stdlib.h>

/* Keras' backend epsilon: probabilities are clipped to [EPS, 1 - EPS] before the log. */
#define LOSS_EPSILON 1e-7

/* One example's score for the class being ranked. */
typedef struct scored {
    float score;
    int index;
} scored;

/* Orders by score, then by index: a total order, so qsort's result does not depend on its
 * implementation (the index never changes the ranks, since ties get their average rank). */
static int compare_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score < y->score)
        return -1;
    if (x->score > y->score)
        return 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* First maximum on ties, as numpy's argmax (and so Keras' accuracy) does. */
static int argmax_row(const float *row)
{
    int best = 0;
    for (int k = 1; k < DN_N_CLASSES; k++)
        if (row[k] > row[best])
            best = k;
    return best;
}

static double safe_ratio(double num, double den)
{
    /* scikit-learn's zero_division=0. */
    return den > 0 ? num / den : 0.0;
}

/* One-vs-rest ROC AUC of class k via the Mann-Whitney U statistic: AUC = U / (P * N) with
 * U = R - P (P + 1) / 2, R the rank sum of the positives. Tied scores share their average rank,
 * which counts a tied (positive, negative) pair as 1/2 -- exactly the trapezoidal ROC area.
 * by_score has room for n entries. Returns NaN when the class has no positives or no negatives. */
static double roc_auc_class(const float *probs, const uint8_t *labels, int n, int k, scored *by_score)
{
    long n_pos = 0;
    for (int i = 0; i < n; i++) {
        by_score[i].score = probs[(size_t)i * DN_N_CLASSES + (size_t)k];
        by_score[i].index = i;
        n_pos += labels[i] == k;
    }
    long n_neg = (long)n - n_pos;
    if (n_pos == 0 || n_neg == 0)
        return NAN;

    qsort(by_score, (size_t)n, sizeof *by_score, compare_scored);

    /* Ranks are 1-based; a run [start, end) of equal scores all get (start + 1 + end) / 2. Sums
     * of half-integers stay exact in a double far beyond any data set this library loads. */
    double rank_sum_pos = 0.0;
    int start = 0;
    while (start < n) {
        int end = start + 1;
        while (end < n && by_score[end].score == by_score[start].score)
            end++;
        double avg_rank = 0.5 * ((double)start + 1.0 + (double)end);
        for (int j = start; j < end; j++)
            if (labels[by_score[j].index] == k)
                rank_sum_pos += avg_rank;
        start = end;
    }
    double u = rank_sum_pos - 0.5 * (double)n_pos * ((double)n_pos + 1.0);
    return u / ((double)n_pos * (double)n_neg);
}

dn_status dn_metrics_compute(const float *probs, const uint8_t *labels, int n, dn_metrics *m,
                             dn_error *err)
{
    if (!probs || !labels || !m)
        return dn_fail(err, DN_EARG, "metrics: %s is NULL",
                       !probs ? "probs" : !labels ? "labels" : "the metrics output");
    if (n <= 0)
        return dn_fail(err, DN_EARG, "metrics: need at least one example, got n = %d", n);
    for (int i = 0; i < n; i++) {
        if (labels[i] >= DN_N_CLASSES)
            return dn_fail(err, DN_EARG, "metrics: labels[%d] = %d is not a class 0..%d", i,
                           labels[i], DN_N_CLASSES - 1);
        /* A NaN would make the score order inconsistent (undefined behaviour in qsort) and
         * silently corrupt every metric, so it is refused rather than guessed around. */
        for (int k = 0; k < DN_N_CLASSES; k++) {
            float p = probs[(size_t)i * DN_N_CLASSES + (size_t)k];
            if (!isfinite(p))
                return dn_fail(err, DN_EARG, "metrics: probs[%d][%d] is not a finite number", i,
                               k);
        }
    }

    /* Allocated before touching *m so that a failure leaves the caller's struct as it was. */
    scored *by_score = malloc((size_t)n * sizeof *by_score);
    if (!by_score)
        return dn_fail(err, DN_ENOMEM, "metrics: cannot allocate %d scores for ROC AUC", n);

    dn_metrics r = {0};
    r.n = n;

    double loss_sum = 0.0;
    long predicted[DN_N_CLASSES] = {0}; /* examples predicted as each class (column sums) */
    for (int i = 0; i < n; i++) {
        const float *row = probs + (size_t)i * DN_N_CLASSES; /* (DN_N_CLASSES) */
        int truth = labels[i];
        int guess = argmax_row(row);
        r.confusion[truth][guess]++;
        r.support[truth]++;
        predicted[guess]++;

        /* Keras renormalises rows to sum 1 before clipping; softmax rows already do, so only
         * the clip is kept (it turns p = 0 into a large finite loss instead of infinity). */
        double p = row[truth];
        if (p < LOSS_EPSILON)
            p = LOSS_EPSILON;
        if (p > 1.0 - LOSS_EPSILON)
            p = 1.0 - LOSS_EPSILON;
        loss_sum -= log(p);
    }
    r.loss = loss_sum / n;

    long correct = 0;
    for (int k = 0; k < DN_N_CLASSES; k++)
        correct += r.confusion[k][k];
    r.accuracy = (double)correct / n;

    /* Macro averages follow scikit-learn's average='macro' with labels=None: the mean runs over
     * the labels that occur in the true labels or the predictions. A class absent from both has
     * no meaningful precision or recall, and counting it as 0 would make the macro scores of a
     * data set without (say) digit 7 worse for no fault of the model. n > 0 guarantees at least
     * one such label. */
    double precision_sum = 0.0, recall_sum = 0.0, f1_sum = 0.0;
    int n_present = 0;
    for (int k = 0; k < DN_N_CLASSES; k++) {
        double tp = (double)r.confusion[k][k];
        double fp = (double)(predicted[k] - r.confusion[k][k]);
        double fn = (double)(r.support[k] - r.confusion[k][k]);
        r.precision[k] = safe_ratio(tp, tp + fp);
        r.recall[k] = safe_ratio(tp, tp + fn);
        /* 2 tp / (2 tp + fp + fn) equals the harmonic mean of precision and recall and is 0
         * (not 0/0) when both are 0, as in scikit-learn >= 1.3. */
        r.f1[k] = safe_ratio(2.0 * tp, 2.0 * tp + fp + fn);
        if (r.support[k] > 0 || predicted[k] > 0) {
            precision_sum += r.precision[k];
            recall_sum += r.recall[k];
            f1_sum += r.f1[k];
            n_present++;
        }
    }
    r.precision_macro = precision_sum / n_present;
    r.recall_macro = recall_sum / n_present;
    r.f1_macro = f1_sum / n_present;

    double auc_sum = 0.0;
    int n_auc = 0;
    for (int k = 0; k < DN_N_CLASSES; k++) {
        r.roc_auc[k] = roc_auc_class(probs, labels, n, k, by_score);
        if (!isnan(r.roc_auc[k])) {
            auc_sum += r.roc_auc[k];
            n_auc++;
        }
    }
    r.roc_auc_macro = n_auc > 0 ? auc_sum / n_auc : NAN;

    free(by_score);
    *m = r;
    return DN_OK;
}

void dn_mean_std(const double *values, int n, double *mean, double *std)
{
    double mu = 0.0, sigma = 0.0;
    if (values && n > 0) {
        for (int i = 0; i < n; i++)
            mu += values[i];
        mu /= n;
        /* Two passes: summing squared deviations avoids the cancellation of E[x^2] - E[x]^2,
         * which matters for accuracies that agree to three or four digits. */
        double sq = 0.0;
        for (int i = 0; i < n; i++)
            sq += (values[i] - mu) * (values[i] - mu);
        sigma = sqrt(sq / n); /* population (ddof = 0), as numpy's default */
    }
    if (mean)
        *mean = mu;
    if (std)
        *std = sigma;
}

/* Line charts: training curves, cross-validation folds and ROC curves. */
#include "plot/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define PANEL_W 1000
#define PANEL_H 420
#define ROC_W 760
#define ROC_H 600

/* The range of the finite values among a[0..n) and b[0..n) (b may be NULL); 0 if there are none. */
static int finite_range(const double *a, const double *b, int n, double *lo, double *hi)
{
    int found = 0;
    for (int k = 0; k < 2; k++) {
        const double *v = k ? b : a;
        for (int i = 0; v && i < n; i++) {
            if (!isfinite(v[i]))
                continue;
            if (!found || v[i] < *lo)
                *lo = v[i];
            if (!found || v[i] > *hi)
                *hi = v[i];
            found = 1;
        }
    }
    return found;
}

/* Two side-by-side panels of the 1000 x 420 layout. */
static dn_axes left_panel(void)
{
    return (dn_axes){.x = 80, .y = 50, .w = 380, .h = 300};
}

static dn_axes right_panel(void)
{
    return (dn_axes){.x = 590, .y = 50, .w = 380, .h = 300};
}

/* The x range for positions 1..n with half a step of room either side. */
static void index_range(dn_axes *a, int n)
{
    a->x0 = 0.5;
    a->x1 = n + 0.5;
}

/* A y range from the data with some room; a range that starts at or above 0 (a loss) does not go
 * below 0, and accuracy does not go above 1. */
static void value_range(dn_axes *a, double lo, double hi, int unit_interval)
{
    int non_negative = lo >= 0;
    double pad = (hi - lo) * 0.08;
    if (pad < 1e-6)
        pad = fabs(hi) > 1e-6 ? fabs(hi) * 0.02 : 0.01;
    lo -= pad;
    hi += pad;
    if (non_negative && lo < 0)
        lo = 0;
    if (unit_interval && hi > 1)
        hi = 1;
    dn_nice_range(&lo, &hi, 6);
    if (non_negative && lo < 0)
        lo = 0;
    if (unit_interval && hi > 1)
        hi = 1;
    a->y0 = lo;
    a->y1 = hi;
}

dn_status dn_plot_history(const dn_epoch_stats *history, int n, const char *path, dn_error *err)
{
    if (!history || n < 1)
        return dn_fail(err, DN_EARG, "dn_plot_history: no epochs to draw");
    double *v = malloc(sizeof(double) * 5 * (size_t)n);
    if (!v)
        return dn_fail(err, DN_ENOMEM, "dn_plot_history: out of memory");
    double *epoch = v, *loss = v + n, *val_loss = v + 2 * n, *acc = v + 3 * n, *val_acc = v + 4 * n;
    int any_val = 0;
    for (int i = 0; i < n; i++) {
        epoch[i] = history[i].epoch > 0 ? history[i].epoch : i + 1;
        loss[i] = history[i].loss;
        val_loss[i] = history[i].val_loss;
        acc[i] = history[i].accuracy;
        val_acc[i] = history[i].val_accuracy;
        any_val |= isfinite(val_loss[i]) || isfinite(val_acc[i]);
    }
    dn_canvas cv;
    dn_status st = dn_canvas_open(&cv, path, PANEL_W, PANEL_H, err);
    if (st != DN_OK) {
        free(v);
        return st;
    }
    cairo_t *cr = cv.cr;
    int markers = n <= 40;
    const double *train[2] = {loss, acc}, *val[2] = {val_loss, val_acc};
    const char *titles[2] = {"Loss", "Accuracy"};
    for (int p = 0; p < 2; p++) {
        dn_axes a = p ? right_panel() : left_panel();
        double lo = 0, hi = 1;
        finite_range(train[p], any_val ? val[p] : NULL, n, &lo, &hi);
        a.x0 = epoch[0] - 0.5;
        a.x1 = epoch[n - 1] + 0.5;
        value_range(&a, lo, hi, p == 1);
        dn_axes_draw(cr, &a, titles[p], "epoch", p ? "accuracy" : "cross-entropy loss", 1);
        dn_axes_series(cr, &a, epoch, train[p], n, dn_palette(0), 2.2, 0, markers ? 3 : 0);
        if (any_val)
            dn_axes_series(cr, &a, epoch, val[p], n, dn_palette(1), 2.2, 0, markers ? 3 : 0);
        dn_legend_entry legend[2] = {{.label = "training", .colour = dn_palette(0)},
                                     {.label = "validation", .colour = dn_palette(1)}};
        /* Loss falls and accuracy rises: the empty corner is top-right for loss, bottom-right for
         * accuracy. */
        dn_legend_draw(cr, &a, legend, any_val ? 2 : 1, p ? 3 : 1);
    }
    free(v);
    return dn_canvas_close(&cv, err);
}

dn_status dn_plot_cv(const double *fold_loss, const double *fold_accuracy, int k, const char *path, dn_error *err)
{
    if (!fold_loss || !fold_accuracy || k < 1)
        return dn_fail(err, DN_EARG, "dn_plot_cv: no folds to draw");
    double *fold = malloc(sizeof(double) * 2 * (size_t)k);
    if (!fold)
        return dn_fail(err, DN_ENOMEM, "dn_plot_cv: out of memory");
    double *level = fold + k;
    for (int i = 0; i < k; i++)
        fold[i] = i + 1;
    dn_canvas cv;
    dn_status st = dn_canvas_open(&cv, path, PANEL_W, PANEL_H, err);
    if (st != DN_OK) {
        free(fold);
        return st;
    }
    cairo_t *cr = cv.cr;
    const double *values[2] = {fold_loss, fold_accuracy};
    const char *titles[2] = {"Loss per fold", "Accuracy per fold"};
    for (int p = 0; p < 2; p++) {
        dn_axes a = p ? right_panel() : left_panel();
        double mean, std, lo = 0, hi = 1;
        dn_mean_std(values[p], k, &mean, &std);
        finite_range(values[p], NULL, k, &lo, &hi);
        index_range(&a, k);
        value_range(&a, lo, hi, p == 1);
        dn_axes_draw(cr, &a, titles[p], "fold", p ? "accuracy" : "cross-entropy loss", 1);
        /* The mean across the whole width: two points at the x limits. */
        double ends[2] = {a.x0, a.x1}, mean_line[2] = {mean, mean};
        dn_axes_series(cr, &a, ends, mean_line, 2, dn_palette(3), 1.8, 1, 0);
        for (int i = 0; i < k; i++)
            level[i] = values[p][i];
        dn_axes_series(cr, &a, fold, level, k, dn_palette(p ? 2 : 0), 2.2, 0, 4.5);
        char label[64];
        snprintf(label, sizeof label, "mean %.4f (std %.4f)", mean, std);
        dn_legend_entry legend[2] = {{.label = p ? "accuracy" : "loss", .colour = dn_palette(p ? 2 : 0)},
                                     {.label = label, .colour = dn_palette(3), .dashed = 1}};
        dn_legend_draw(cr, &a, legend, 2, 3);
    }
    free(fold);
    return dn_canvas_close(&cv, err);
}

/* ---------------------------------------------------------------- ROC */

typedef struct scored {
    float score;
    uint8_t positive;
} scored;

static int by_score_desc(const void *pa, const void *pb)
{
    float a = ((const scored *)pa)->score, b = ((const scored *)pb)->score;
    return (a < b) - (a > b);
}

/* The ROC curve of class k: one point per distinct score (ties form one diagonal step, as
 * scikit-learn's roc_curve), starting at (0, 0). Returns the number of points written to fpr/tpr
 * (at most n + 1) and the trapezoidal area in *auc; 0 when the class lacks positives or negatives. */
static int roc_points(const float *probs, const uint8_t *labels, int n, int k, scored *work, double *fpr, double *tpr,
                      double *auc)
{
    long pos = 0;
    for (int i = 0; i < n; i++) {
        work[i].score = probs[(size_t)i * DN_N_CLASSES + k];
        work[i].positive = labels[i] == k;
        pos += work[i].positive;
    }
    long neg = n - pos;
    *auc = NAN;
    if (pos == 0 || neg == 0)
        return 0;
    qsort(work, (size_t)n, sizeof *work, by_score_desc);
    int m = 0;
    long tp = 0, fp = 0;
    double area = 0;
    fpr[m] = 0;
    tpr[m++] = 0;
    for (int i = 0; i < n;) {
        float s = work[i].score;
        for (; i < n && work[i].score == s; i++) {
            tp += work[i].positive;
            fp += !work[i].positive;
        }
        fpr[m] = (double)fp / neg;
        tpr[m] = (double)tp / pos;
        area += (fpr[m] - fpr[m - 1]) * (tpr[m] + tpr[m - 1]) / 2;
        m++;
    }
    *auc = area;
    return m;
}

dn_status dn_plot_roc(const float *probs, const uint8_t *labels, int n, const dn_metrics *m, const char *path,
                      dn_error *err)
{
    if (!probs || !labels || n < 1)
        return dn_fail(err, DN_EARG, "dn_plot_roc: no predictions to draw");
    for (int i = 0; i < n; i++)
        if (labels[i] >= DN_N_CLASSES)
            return dn_fail(err, DN_EARG, "dn_plot_roc: label %d of row %d is not a class", labels[i], i);
    scored *work = malloc(sizeof *work * (size_t)n);
    double *fpr = malloc(sizeof(double) * ((size_t)n + 1)), *tpr = malloc(sizeof(double) * ((size_t)n + 1));
    if (!work || !fpr || !tpr) {
        free(work);
        free(fpr);
        free(tpr);
        return dn_fail(err, DN_ENOMEM, "dn_plot_roc: out of memory for %d rows", n);
    }
    dn_canvas cv;
    dn_status st = dn_canvas_open(&cv, path, ROC_W, ROC_H, err);
    if (st == DN_OK) {
        cairo_t *cr = cv.cr;
        dn_axes a = {.x = 80, .y = 50, .w = 640, .h = 480, .x0 = 0, .x1 = 1, .y0 = 0, .y1 = 1.0};
        dn_axes_draw(cr, &a, "ROC curves (one class vs the rest)", "false positive rate", "true positive rate", 0);
        double diag[2] = {0, 1};
        dn_axes_series(cr, &a, diag, diag, 2, (dn_rgb){0.6, 0.6, 0.6}, 1.2, 1, 0);
        dn_legend_entry legend[DN_N_CLASSES];
        char labels_text[DN_N_CLASSES][48];
        for (int k = 0; k < DN_N_CLASSES; k++) {
            double area;
            int points = roc_points(probs, labels, n, k, work, fpr, tpr, &area);
            if (points)
                dn_axes_series(cr, &a, fpr, tpr, points, dn_palette(k), 1.8, 0, 0);
            double shown = m ? m->roc_auc[k] : area;
            if (points && isfinite(shown))
                snprintf(labels_text[k], sizeof labels_text[k], "class %d (AUC %.4f)", k, shown);
            else
                snprintf(labels_text[k], sizeof labels_text[k], "class %d (no positives or negatives)", k);
            legend[k] = (dn_legend_entry){.label = labels_text[k], .colour = dn_palette(k), .no_line = !points};
        }
        dn_legend_draw(cr, &a, legend, DN_N_CLASSES, 3);
        st = dn_canvas_close(&cv, err);
    }
    free(work);
    free(fpr);
    free(tpr);
    return st;
}

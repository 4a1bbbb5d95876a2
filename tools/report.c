/* --report DIR: one self-contained HTML page (inline CSS, pictures by relative path, no network) with
 * the run's settings, the model summary, the metrics and every picture that applies, plus
 * metrics.json and confusion.csv. Every file is written to a temporary name and renamed. */
#include "cli.h"
#include "util/atomic_file.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define MAX_PICTURES (8 + 64)
#define MAX_MISTAKES 20

typedef struct picture {
    char file[64];     /* relative to DIR */
    char caption[192];
    const char *group; /* pictures of one group share a heading */
} picture;

typedef struct report_state {
    const cli_report *r;
    picture pictures[MAX_PICTURES];
    int n_pictures;
    int n_wrong;       /* mistakes among the test rows, -1 when not drawn */
    char path[1024];   /* scratch: DIR/file */
} report_state;

dn_status cli_make_dirs(const char *dir, dn_error *err)
{
    char path[1024];
    size_t len = strlen(dir);
    if (len == 0 || len >= sizeof path) {
        err->status = DN_EARG;
        snprintf(err->msg, sizeof err->msg, "%.400s: bad directory name", dir);
        return DN_EARG;
    }
    memcpy(path, dir, len + 1);
    /* Create each prefix ending before a '/', then the whole path. */
    for (size_t i = 1; i <= len; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char saved = path[i];
        path[i] = '\0';
        struct stat sb;
        if (mkdir(path, 0777) != 0 && !(errno == EEXIST && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))) {
            err->status = DN_EIO;
            snprintf(err->msg, sizeof err->msg, "%.400s: cannot create directory: %s", path,
                     errno == EEXIST ? "a file of that name is in the way" : strerror(errno));
            return DN_EIO;
        }
        path[i] = saved;
    }
    return DN_OK;
}

static const char *in_dir(report_state *s, const char *file)
{
    snprintf(s->path, sizeof s->path, "%s/%s", s->r->dir, file);
    return s->path;
}

static void add_picture(report_state *s, const char *group, const char *file, const char *caption)
{
    if (s->n_pictures == MAX_PICTURES)
        return;
    picture *p = &s->pictures[s->n_pictures++];
    snprintf(p->file, sizeof p->file, "%s", file);
    snprintf(p->caption, sizeof p->caption, "%s", caption);
    p->group = group;
}

/* ---------------------------------------------------------------- data files */

static dn_status write_metrics_json(report_state *s, dn_error *err)
{
    char *text = cJSON_Print(s->r->json);
    if (!text) {
        err->status = DN_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory formatting metrics.json");
        return DN_ENOMEM;
    }
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the terminator: the file ends with a newline */
    dn_status st = dn_atomic_write(in_dir(s, "metrics.json"), text, len + 1, err);
    free(text);
    return st;
}

static dn_status write_confusion_csv(report_state *s, dn_error *err)
{
    dn_atomic_file af;
    dn_status st = dn_atomic_open(&af, in_dir(s, "confusion.csv"), err);
    if (st != DN_OK)
        return st;
    const dn_metrics *m = s->r->metrics;
    fputs("true\\predicted", af.file);
    for (int c = 0; c < DN_N_CLASSES; c++)
        fprintf(af.file, ",%d", c);
    fputc('\n', af.file);
    for (int t = 0; t < DN_N_CLASSES; t++) {
        fprintf(af.file, "%d", t);
        for (int c = 0; c < DN_N_CLASSES; c++)
            fprintf(af.file, ",%ld", m->confusion[t][c]);
        fputc('\n', af.file);
    }
    if (ferror(af.file))
        return dn_atomic_abort(&af, err, "write failed");
    return dn_atomic_commit(&af, err);
}

/* ---------------------------------------------------------------- pictures */

static int is_command(const cli_report *r, const char *name)
{
    return r->command && !strcmp(r->command, name);
}

static dn_status draw_samples(report_state *s, dn_error *err)
{
    const dn_dataset *d = s->r->test;
    int idx[DN_N_CLASSES];
    int n = dn_plot_pick_per_class(d, s->r->options->seed, idx);
    if (n == 0)
        return DN_OK;
    char text[DN_N_CLASSES][16];
    const char *titles[DN_N_CLASSES];
    for (int i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "class %d", d->labels[idx[i]]);
        titles[i] = text[i];
    }
    dn_status st = dn_plot_samples(d, idx, n, titles, "One random test image per class", in_dir(s, "samples.png"), err);
    if (st == DN_OK)
        add_picture(s, "Samples", "samples.png", "One random test image of each class (seed from --seed).");
    return st;
}

#define AUGMENT_VERSIONS 7 /* augmented versions beside each sample */

/* The model's "augment" note (its training recipe): the transforms it was trained with, drawn on
 * one training image per class. An empty or missing note draws nothing; a note that does not parse
 * is skipped too (the rest of the report stays useful). */
static dn_status draw_augmented(report_state *s, dn_error *err)
{
    const cli_report *r = s->r;
    const char *note = r->net ? dn_net_note(r->net, "augment") : NULL;
    const dn_dataset *d = r->train && r->train->n > 0 ? r->train : r->test;
    dn_augment a = {0};
    if (!note || !*note || !d || d->n < 1 || dn_augment_parse(note, &a, NULL) != DN_OK)
        return DN_OK;
    int idx[DN_N_CLASSES];
    int n = dn_plot_pick_per_class(d, r->options->seed, idx);
    if (n == 0)
        return DN_OK;
    char title[320], caption[192];
    snprintf(title, sizeof title, "Augmented %s images: %.240s", d == r->train ? "training" : "test", note);
    dn_status st = dn_plot_augmented(d, idx, n, &a, AUGMENT_VERSIONS, r->options->seed, title,
                                     in_dir(s, "augmented.png"), err);
    if (st == DN_OK) {
        snprintf(caption, sizeof caption, "What the network was fed: each image, then %d random versions (augment %.100s).",
                 AUGMENT_VERSIONS, note);
        add_picture(s, "Augmentation", "augmented.png", caption);
    }
    return st;
}

static dn_status draw_features(report_state *s, dn_error *err)
{
    const cli_report *r = s->r;
    dn_shape in = dn_net_input_shape(r->net);
    if (in.h != r->test->h || in.w != r->test->w || in.c != r->test->c)
        return DN_OK; /* nothing sensible to show; the metrics would have failed first */
    float image[4096]; /* test row 0; inputs are at most 64x64 (checked below) */
    if ((size_t)in.h * in.w * in.c > sizeof image / sizeof image[0])
        return DN_OK;
    dn_dataset_rows(r->test, 0, 1, image);
    for (int i = 0; i < dn_net_layer_count(r->net); i++) {
        dn_layer_info info;
        if (dn_net_layer_info(r->net, i, &info) != DN_OK)
            continue;
        if (strcmp(info.kind, "conv2d") != 0 && strcmp(info.kind, "maxpool") != 0)
            continue;
        char file[64], caption[192];
        snprintf(file, sizeof file, "features-%02d-%s.png", i + 1, info.kind);
        dn_status st = dn_plot_feature_map(r->net, image, i, in_dir(s, file), err);
        if (st != DN_OK)
            return st;
        snprintf(caption, sizeof caption, "Layer %d (%s) on test image 0 (label %d), one tile per channel.", i + 1,
                 info.label, r->test->labels[0]);
        add_picture(s, "Feature maps", file, caption);
    }
    return DN_OK;
}

static dn_status draw_pictures(report_state *s, dn_error *err)
{
    const cli_report *r = s->r;
    const int have_test = r->test && r->test->n > 0;
    const int have_probs = have_test && r->probs;
    dn_status st = DN_OK;
    s->n_wrong = -1;
    /* Confusion and ROC first: the two square pictures share a row on a wide screen. */
    if (r->metrics) {
        st = dn_plot_confusion(r->metrics, in_dir(s, "confusion.png"), NULL, err);
        if (st == DN_OK)
            add_picture(s, "Results", "confusion.png",
                        "Confusion matrix: rows are the true class, columns the predicted one.");
    }
    if (st == DN_OK && have_probs) {
        st = dn_plot_roc(r->probs, r->test->labels, r->test->n, r->metrics, in_dir(s, "roc.png"), err);
        if (st == DN_OK)
            add_picture(s, "Results", "roc.png", "ROC curves, one class against the rest, with the area under each.");
    }
    if (st == DN_OK && is_command(r, "train") && r->net) {
        int n_epochs;
        const dn_epoch_stats *h = dn_net_history(r->net, &n_epochs);
        if (n_epochs > 0) {
            st = dn_plot_history(h, n_epochs, in_dir(s, "curves.png"), err);
            if (st == DN_OK)
                add_picture(s, "Results", "curves.png", "Training curves: loss and accuracy per epoch.");
        }
    }
    if (st == DN_OK && r->n_folds > 0 && r->fold_loss && r->fold_accuracy) {
        st = dn_plot_cv(r->fold_loss, r->fold_accuracy, r->n_folds, in_dir(s, "cv.png"), err);
        if (st == DN_OK)
            add_picture(s, "Results", "cv.png", "Cross-validation: loss and accuracy of each fold, mean dashed.");
    }
    if (st == DN_OK && have_probs) {
        st = dn_plot_mistakes(r->test, r->probs, MAX_MISTAKES, in_dir(s, "mistakes.png"), &s->n_wrong, err);
        if (st == DN_OK)
            add_picture(s, "Results", "mistakes.png",
                        "The most confidently wrong predictions: true class, predicted class and its probability.");
    }
    if (st == DN_OK && have_test && !is_command(r, "cv"))
        st = draw_samples(s, err);
    if (st == DN_OK && have_test && r->net && !is_command(r, "cv"))
        st = draw_features(s, err);
    if (st == DN_OK)
        st = draw_augmented(s, err);
    return st;
}

/* ---------------------------------------------------------------- HTML */

static void html_text(FILE *f, const char *text)
{
    for (const char *p = text ? text : ""; *p; p++) {
        switch (*p) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*p, f);
        }
    }
}

static void row_text(FILE *f, const char *name, const char *value)
{
    fputs("<tr><th scope=\"row\">", f);
    html_text(f, name);
    fputs("</th><td>", f);
    html_text(f, value);
    fputs("</td></tr>\n", f);
}

static void row_number(FILE *f, const char *name, const char *fmt, double value)
{
    char buf[64];
    snprintf(buf, sizeof buf, fmt, value);
    row_text(f, name, buf);
}

/* A metric cell: 4 decimals, or "n/a" for an undefined value (an AUC without positives). */
static void cell(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "<td>%.4f</td>", v);
    else
        fputs("<td>n/a</td>", f);
}

static const char CSS[] =
    ":root{--ink:#1f2328;--muted:#59636e;--line:#d8dee4;--bg:#f6f8fa;--accent:#1f77b4}\n"
    "*{box-sizing:border-box}\n"
    "body{margin:0;background:var(--bg);color:var(--ink);"
    "font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif}\n"
    "main{max-width:1120px;margin:0 auto;padding:16px}\n"
    "h1{font-size:1.6em;margin:.3em 0}h2{font-size:1.25em;margin:0 0 .6em}h3{font-size:1.05em;margin:1em 0 .5em}\n"
    ".muted{color:var(--muted)}\n"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:12px;margin:16px 0}\n"
    ".card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 14px}\n"
    ".card .label{color:var(--muted);font-size:.85em}.card .value{font-size:1.6em;font-weight:600}\n"
    "section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px;margin:16px 0}\n"
    ".scroll{overflow-x:auto;-webkit-overflow-scrolling:touch}\n"
    "table{border-collapse:collapse;font-variant-numeric:tabular-nums}\n"
    "th,td{padding:4px 12px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}\n"
    "th:first-child,td:first-child{text-align:left}thead th{border-bottom:2px solid var(--ink)}\n"
    "table.kv th{font-weight:normal;color:var(--muted)}table.kv td{text-align:left;white-space:normal}\n"
    "tr.total td,tr.total th{font-weight:600;border-top:2px solid var(--ink)}\n"
    ".gallery{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,460px),1fr));gap:20px}\n"
    ".wide{grid-column:1/-1}\n"
    "figure{margin:0}figcaption{color:var(--muted);font-size:.9em;margin-top:4px}\n"
    "img{display:block;max-width:100%;height:auto;border:1px solid var(--line);border-radius:4px;background:#fff}\n"
    "a{color:var(--accent)}\n"
    "@media (max-width:600px){body{font-size:15px}main{padding:8px}section{padding:10px}"
    "table{font-size:12px}th,td{padding:3px 4px}}\n";

static void html_settings(FILE *f, const cli_report *r)
{
    const cli_options *o = r->options;
    char buf[96];
    int train = is_command(r, "train"), cv = is_command(r, "cv");
    fputs("<section id=\"settings\"><h2>Settings</h2><div class=\"scroll\"><table class=\"kv\">\n", f);
    snprintf(buf, sizeof buf, "digitnet %s", r->command);
    row_text(f, "command", buf);
    row_text(f, "model", o->model ? o->model : "(none)");
    row_text(f, "data", o->data ? o->data : "optdigits");
    if (o->data_dir)
        row_text(f, "data directory", o->data_dir);
    if (train || cv) {
        const char *opt = o->optimizer ? o->optimizer : "adam";
        row_number(f, "epochs", "%.0f", o->epochs);
        row_number(f, "batch size", "%.0f", o->batch);
        row_text(f, "optimizer", opt);
        if (o->lr > 0)
            row_number(f, "learning rate", "%g", o->lr);
        else
            row_text(f, "learning rate", strcmp(opt, "sgd") ? "0.001 (default)" : "0.01 (default)");
        if (!strcmp(opt, "sgd"))
            row_number(f, "momentum", "%g", o->momentum);
    }
    snprintf(buf, sizeof buf, "%llu", o->seed);
    row_text(f, "seed", buf);
    if (cv) {
        row_number(f, "folds", "%.0f", o->folds);
    } else {
        if (o->have_test_split)
            row_number(f, "test split", "%g", o->test_split);
        else
            row_text(f, "test split", "default (the data set's test files, or 0.2)");
        if (train)
            row_number(f, "validation split", "%g", o->val_split);
    }
    if (r->test) {
        snprintf(buf, sizeof buf, cv ? "%d (out-of-fold predictions on every row)" : "%d", r->test->n);
        row_text(f, cv ? "rows measured" : "test rows", buf);
    }
    const char *augment = r->net ? dn_net_note(r->net, "augment") : NULL;
    if (augment && *augment)
        row_text(f, "augmentation", augment);
    if (o->threads)
        row_number(f, "threads", "%.0f", o->threads);
    else
        row_text(f, "threads", "all cores");
    fputs("</table></div></section>\n", f);
}

/* The recipe the model was trained with: its "train", "augment" and "early_stopping" notes. */
static void html_recipe(FILE *f, const cli_report *r)
{
    const char *train = r->net ? dn_net_note(r->net, "train") : NULL;
    if (!train)
        return;
    const char *aug = dn_net_note(r->net, "augment"), *early = dn_net_note(r->net, "early_stopping");
    fputs("<section id=\"recipe\"><h2>Training recipe</h2><div class=\"scroll\"><table class=\"kv\">\n", f);
    row_text(f, "train", train);
    row_text(f, "augment", aug && aug[0] ? aug : "none");
    if (early)
        row_text(f, "early stopping", early);
    fputs("</table></div><p class=\"muted\">The spec's <code>train</code> / <code>augment</code> lines under the "
          "command line's flags; a spec line of this text trains the same way again.</p></section>\n", f);
}

static void html_model(FILE *f, const cli_report *r)
{
    char shape[48], num[32];
    fputs("<section id=\"model\"><h2>Model</h2>", f);
    if (is_command(r, "cv"))
        fputs("<p class=\"muted\">Each fold trains a fresh network of this spec.</p>", f);
    if (dn_net_ensemble_size(r->net) > 1)
        fprintf(f, "<p>Ensemble of %d members averaging their probabilities; the table and the pictures of "
                   "layers are member 0's.</p>", dn_net_ensemble_size(r->net));
    fputs("<div class=\"scroll\"><table>\n<thead><tr><th>Layer (type)</th><th>Output shape</th><th>Param #</th>"
          "</tr></thead><tbody>\n",
          f);
    cli_shape_text(dn_net_input_shape(r->net), 0, shape, sizeof shape);
    fprintf(f, "<tr><td>input</td><td>%s</td><td>0</td></tr>\n", shape);
    for (int i = 0; i < dn_net_layer_count(r->net); i++) {
        dn_layer_info info;
        if (dn_net_layer_info(r->net, i, &info) != DN_OK)
            continue;
        cli_shape_text(info.out, info.flat, shape, sizeof shape);
        fputs("<tr><td>", f);
        html_text(f, info.label);
        fprintf(f, "</td><td>%s</td><td>%s</td></tr>\n", shape, cli_thousands(info.n_params, num));
    }
    size_t total = dn_net_param_count(r->net), trainable = dn_net_trainable_count(r->net);
    fprintf(f, "<tr class=\"total\"><td>Total params</td><td></td><td>%s</td></tr>\n", cli_thousands(total, num));
    fprintf(f, "<tr><td>Trainable params</td><td></td><td>%s</td></tr>\n", cli_thousands(trainable, num));
    fprintf(f, "<tr><td>Non-trainable params</td><td></td><td>%s</td></tr>\n", cli_thousands(total - trainable, num));
    fputs("</tbody></table></div></section>\n", f);
}

/* The accuracy shown: metrics.json's own value, so that the page and the file cannot disagree. */
static double report_accuracy(const cli_report *r)
{
    const cJSON *a = r->json ? cJSON_GetObjectItemCaseSensitive(r->json, "accuracy") : NULL;
    return cJSON_IsNumber(a) ? a->valuedouble : r->metrics->accuracy;
}

static void html_metrics(FILE *f, const report_state *s)
{
    const cli_report *r = s->r;
    const dn_metrics *m = r->metrics;
    fputs("<section id=\"metrics\"><h2>Metrics</h2>\n", f);
    fprintf(f, "<p class=\"muted\">Measured on %d %s. Files: <a href=\"metrics.json\">metrics.json</a>, "
               "<a href=\"confusion.csv\">confusion.csv</a>.</p>\n",
            m->n, is_command(r, "cv") ? "rows (out-of-fold predictions)" : "test rows");
    fputs("<div class=\"scroll\"><table id=\"overall\"><tbody>\n", f);
    /* #accuracy holds metrics.json's "accuracy" printed with C's "%.4f": 4 decimals, rounded (so
     * 0.98754 shows as 0.9875 and 0.98756 as 0.9876). tests/browser/report.test.mjs checks it. */
    fprintf(f, "<tr><th scope=\"row\">accuracy</th><td id=\"accuracy\">%.4f</td></tr>\n", report_accuracy(r));
    fprintf(f, "<tr><th scope=\"row\">loss</th><td id=\"loss\">%.4f</td></tr>\n", m->loss);
    if (s->n_wrong >= 0)
        fprintf(f, "<tr><th scope=\"row\">wrong predictions</th><td>%d of %d</td></tr>\n", s->n_wrong, m->n);
    fputs("</tbody></table></div>\n", f);
    fputs("<h3>Per class</h3><div class=\"scroll\"><table id=\"per-class\">\n<thead><tr><th>class</th><th>precision</th>"
          "<th>recall</th><th>f1</th><th>AUC</th><th>support</th></tr></thead><tbody>\n",
          f);
    for (int c = 0; c < DN_N_CLASSES; c++) {
        fprintf(f, "<tr><td>%d</td>", c);
        cell(f, m->precision[c]);
        cell(f, m->recall[c]);
        cell(f, m->f1[c]);
        cell(f, m->roc_auc[c]);
        fprintf(f, "<td>%ld</td></tr>\n", m->support[c]);
    }
    fputs("<tr class=\"total\"><td>macro</td>", f);
    cell(f, m->precision_macro);
    cell(f, m->recall_macro);
    cell(f, m->f1_macro);
    cell(f, m->roc_auc_macro);
    fprintf(f, "<td>%d</td></tr>\n</tbody></table></div>\n", m->n);
    if (r->n_folds > 0 && r->fold_loss && r->fold_accuracy) {
        double mean_acc, std_acc, mean_loss, std_loss;
        dn_mean_std(r->fold_accuracy, r->n_folds, &mean_acc, &std_acc);
        dn_mean_std(r->fold_loss, r->n_folds, &mean_loss, &std_loss);
        fputs("<h3>Folds</h3><div class=\"scroll\"><table id=\"folds\">\n<thead><tr><th>fold</th><th>loss</th>"
              "<th>accuracy</th></tr></thead><tbody>\n",
              f);
        for (int k = 0; k < r->n_folds; k++)
            fprintf(f, "<tr><td>%d</td><td>%.4f</td><td>%.4f</td></tr>\n", k + 1, r->fold_loss[k], r->fold_accuracy[k]);
        fprintf(f, "<tr class=\"total\"><td>mean</td><td>%.4f</td><td>%.4f</td></tr>\n", mean_loss, mean_acc);
        fprintf(f, "<tr><td>std</td><td>%.4f</td><td>%.4f</td></tr>\n</tbody></table></div>\n", std_loss, std_acc);
    }
    fputs("</section>\n", f);
}

static void html_cards(FILE *f, const cli_report *r)
{
    const dn_metrics *m = r->metrics;
    fputs("<div class=\"cards\">\n", f);
    fprintf(f, "<div class=\"card\"><div class=\"label\">accuracy</div><div class=\"value\">%.4f</div></div>\n",
            report_accuracy(r));
    fprintf(f, "<div class=\"card\"><div class=\"label\">loss</div><div class=\"value\">%.4f</div></div>\n", m->loss);
    fprintf(f, "<div class=\"card\"><div class=\"label\">macro F1</div><div class=\"value\">%.4f</div></div>\n",
            m->f1_macro);
    fprintf(f, "<div class=\"card\"><div class=\"label\">images</div><div class=\"value\">%d</div></div>\n", m->n);
    fputs("</div>\n", f);
}

static void html_pictures(FILE *f, const report_state *s)
{
    const char *group = NULL;
    for (int i = 0; i < s->n_pictures; i++) {
        const picture *p = &s->pictures[i];
        if (!group || strcmp(group, p->group) != 0) {
            if (group)
                fputs("</div></section>\n", f);
            group = p->group;
            fputs("<section class=\"pictures\"><h2>", f);
            html_text(f, group);
            fputs("</h2><div class=\"gallery\">\n", f);
        }
        /* Wide pictures (feature maps, mistakes, samples) take the whole row; each links to itself
         * at full size, which matters on a phone. */
        int wide = strcmp(p->group, "Results") != 0 || !strcmp(p->file, "mistakes.png") || !strcmp(p->file, "curves.png") ||
                   !strcmp(p->file, "cv.png");
        fprintf(f, "<figure%s><a href=\"", wide ? " class=\"wide\"" : "");
        html_text(f, p->file);
        fputs("\"><img src=\"", f);
        html_text(f, p->file);
        fputs("\" alt=\"", f);
        html_text(f, p->caption);
        fputs("\" loading=\"eager\"></a><figcaption>", f);
        html_text(f, p->caption);
        fputs("</figcaption></figure>\n", f);
    }
    if (group)
        fputs("</div></section>\n", f);
}

static dn_status write_html(report_state *s, dn_error *err)
{
    const cli_report *r = s->r;
    dn_atomic_file af;
    dn_status st = dn_atomic_open(&af, in_dir(s, "index.html"), err);
    if (st != DN_OK)
        return st;
    FILE *f = af.file;
    char when[64] = "";
    time_t now = time(NULL);
    struct tm tm;
    if (localtime_r(&now, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>digitnet ",
          f);
    html_text(f, r->command);
    fputs(" report</title>\n<style>\n", f);
    fputs(CSS, f);
    fputs("</style>\n</head>\n<body>\n<main>\n<header><h1>digitnet ", f);
    html_text(f, r->command);
    fputs(" report</h1><p class=\"muted\">", f);
    html_text(f, r->options->model ? r->options->model : "");
    fputs(" on ", f);
    html_text(f, r->options->data ? r->options->data : "optdigits");
    fprintf(f, " &middot; digitnet %s &middot; %s</p></header>\n", DN_VERSION, when);
    if (r->metrics)
        html_cards(f, r);
    else
        fputs("<p>No test rows: no metrics to show.</p>\n", f);
    if (r->metrics)
        html_metrics(f, s);
    html_pictures(f, s);
    html_settings(f, r);
    html_recipe(f, r);
    if (r->net)
        html_model(f, r);
    fputs("</main>\n</body>\n</html>\n", f);
    if (ferror(f))
        return dn_atomic_abort(&af, err, "write failed");
    return dn_atomic_commit(&af, err);
}

int cli_write_report(const cli_report *r, dn_error *err)
{
    if (!r || !r->dir || !r->options || !r->command) {
        err->status = DN_EARG;
        snprintf(err->msg, sizeof err->msg, "--report: nothing to report");
        return DN_EARG;
    }
    report_state *s = calloc(1, sizeof *s);
    if (!s) {
        err->status = DN_ENOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory for the report");
        return DN_ENOMEM;
    }
    s->r = r;
    dn_status st = cli_make_dirs(r->dir, err);
    if (st == DN_OK && r->json)
        st = write_metrics_json(s, err);
    if (st == DN_OK && r->metrics)
        st = write_confusion_csv(s, err);
    if (st == DN_OK)
        st = draw_pictures(s, err);
    if (st == DN_OK)
        st = write_html(s, err);
    free(s);
    return st;
}

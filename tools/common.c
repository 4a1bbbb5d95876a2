/* Shared pieces of the commands: opening models, preparing data splits, tables, JSON, progress. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

dn_status cli_open_model(const char *path, unsigned long long seed, dn_net **net, int *is_saved, dn_error *err)
{
    if (!path) {
        err->status = DN_EARG;
        snprintf(err->msg, sizeof err->msg, "--model is required (a .cnn spec such as models/optdigits.cnn, or a saved model)");
        return DN_EARG;
    }
    dn_status st = dn_model_open(path, seed, net, is_saved, err);
    if (st == DN_EFORMAT && strstr(err->msg, "not a text spec")) /* the library's words; the flag is ours */
        snprintf(err->msg + strlen(err->msg), sizeof err->msg - strlen(err->msg), "; pass a .cnn spec or a saved model with --model");
    return st;
}

dn_status cli_load_data(const cli_options *o, cli_data *d, dn_error *err)
{
    memset(d, 0, sizeof *d);
    dn_dataset train = {0}, test = {0};
    dn_status st = cli_open_data(o, &train, &test, err);
    if (st != DN_OK)
        return st;
    const dn_split split = {.test_split = o->have_test_split ? o->test_split : 0.0, .seed = o->seed,
                            .val_split = o->val_split};
    int held_out = 0;
    st = dn_split_apply(&split, &train, &test, &d->train, &d->val, &d->test, &held_out, err);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    if (st == DN_EARG) { /* the library speaks of fractions; name the flag that set them */
        char why[sizeof err->msg];
        memcpy(why, err->msg, sizeof why);
        snprintf(err->msg, sizeof err->msg, "%.400s (--test-split %g, --val-split %g)", why, o->test_split, o->val_split);
    }
    if (st != DN_OK)
        return st;
    if (held_out)
        snprintf(d->test_desc, sizeof d->test_desc, "%d rows held out (--test-split %g, seed %llu)", d->test.n,
                 o->have_test_split ? o->test_split : DN_DEFAULT_TEST_SPLIT, o->seed);
    else
        snprintf(d->test_desc, sizeof d->test_desc, "%d rows of the data set's test files", d->test.n);
    return DN_OK;
}

void cli_data_free(cli_data *d)
{
    dn_dataset_free(&d->train);
    dn_dataset_free(&d->val);
    dn_dataset_free(&d->test);
}

/* 102794 -> "102,794"; buf holds at least 32 bytes. */
const char *cli_thousands(size_t v, char *buf)
{
    char raw[32];
    int n = snprintf(raw, sizeof raw, "%zu", v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = '\0';
    return buf;
}

void cli_shape_text(dn_shape s, int flat, char *buf, size_t size)
{
    if (flat)
        snprintf(buf, size, "(None, %d)", s.c);
    else
        snprintf(buf, size, "(None, %d, %d, %d)", s.h, s.w, s.c);
}

void cli_print_summary(FILE *f, const dn_net *net, const char *title)
{
    const char *rule = "_________________________________________________________________________";
    const char *dbl = "=========================================================================";
    char shape[48], num[32];
    dn_shape in = dn_net_input_shape(net);
    fprintf(f, "Model: \"%s\"\n%s\n %-36s %-22s %10s\n%s\n", title, rule, "Layer (type)", "Output Shape", "Param #", dbl);
    cli_shape_text(in, 0, shape, sizeof shape);
    fprintf(f, " %-36s %-22s %10s\n", "input", shape, "0");
    for (int i = 0; i < dn_net_layer_count(net); i++) {
        dn_layer_info info;
        dn_net_layer_info(net, i, &info);
        cli_shape_text(info.out, info.flat, shape, sizeof shape);
        fprintf(f, " %-36s %-22s %10s\n", info.label, shape, cli_thousands(info.n_params, num));
    }
    size_t total = dn_net_param_count(net), trainable = dn_net_trainable_count(net);
    fprintf(f, "%s\nTotal params: %s\n", dbl, cli_thousands(total, num));
    fprintf(f, "Trainable params: %s\n", cli_thousands(trainable, num));
    fprintf(f, "Non-trainable params: %s\n%s\n", cli_thousands(total - trainable, num), rule);
    if (dn_net_ensemble_size(net) > 1)
        fprintf(f, "Ensemble of %d members averaging their probabilities; the table is member 0's\n",
                dn_net_ensemble_size(net));
}

cJSON *cli_summary_json(const dn_net *net)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *layers = cJSON_AddArrayToObject(o, "layers");
    for (int i = 0; i < dn_net_layer_count(net); i++) {
        dn_layer_info info;
        dn_net_layer_info(net, i, &info);
        cJSON *l = cJSON_CreateObject();
        cJSON_AddStringToObject(l, "kind", info.kind);
        cJSON_AddStringToObject(l, "layer", info.label);
        int dims[3] = {info.out.h, info.out.w, info.out.c};
        int flat = info.flat;
        cJSON_AddItemToObject(l, "output_shape", cJSON_CreateIntArray(flat ? dims + 2 : dims, flat ? 1 : 3));
        cJSON_AddNumberToObject(l, "params", (double)info.n_params);
        cJSON_AddItemToArray(layers, l);
    }
    cJSON_AddNumberToObject(o, "total_params", (double)dn_net_param_count(net));
    cJSON_AddNumberToObject(o, "trainable_params", (double)dn_net_trainable_count(net));
    if (dn_net_ensemble_size(net) > 1)
        cJSON_AddNumberToObject(o, "ensemble", dn_net_ensemble_size(net));
    return o;
}

void cli_print_metrics(FILE *f, const dn_metrics *m, const char *title)
{
    fprintf(f, "%s: loss %.4f - accuracy %.4f (%d images)\n", title, m->loss, m->accuracy, m->n);
    fprintf(f, "\n class  precision  recall  f1-score  roc-auc  support\n");
    for (int c = 0; c < DN_N_CLASSES; c++)
        fprintf(f, " %5d  %9.4f  %6.4f  %8.4f  %7.4f  %7ld\n", c, m->precision[c], m->recall[c], m->f1[c], m->roc_auc[c],
                m->support[c]);
    fprintf(f, " macro  %9.4f  %6.4f  %8.4f  %7.4f  %7d\n", m->precision_macro, m->recall_macro, m->f1_macro,
            m->roc_auc_macro, m->n);
    fprintf(f, "\nConfusion matrix (rows = true class, columns = predicted):\n      ");
    for (int c = 0; c < DN_N_CLASSES; c++)
        fprintf(f, "%6d", c);
    fputc('\n', f);
    for (int r = 0; r < DN_N_CLASSES; r++) {
        fprintf(f, " %4d ", r);
        for (int c = 0; c < DN_N_CLASSES; c++)
            fprintf(f, "%6ld", m->confusion[r][c]);
        fputc('\n', f);
    }
}

/* JSON has no NaN: undefined values (an AUC of a class with no examples) become null. */
static void add_number(cJSON *o, const char *key, double v)
{
    if (isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *cli_metrics_json(const dn_metrics *m)
{
    cJSON *o = cJSON_CreateObject();
    add_number(o, "accuracy", m->accuracy);
    add_number(o, "loss", m->loss);
    add_number(o, "precision_macro", m->precision_macro);
    add_number(o, "recall_macro", m->recall_macro);
    add_number(o, "f1_macro", m->f1_macro);
    add_number(o, "roc_auc_macro", m->roc_auc_macro);
    cJSON_AddNumberToObject(o, "n", m->n);
    cJSON *conf = cJSON_AddArrayToObject(o, "confusion");
    for (int r = 0; r < DN_N_CLASSES; r++) {
        cJSON *row = cJSON_CreateArray();
        for (int c = 0; c < DN_N_CLASSES; c++)
            cJSON_AddItemToArray(row, cJSON_CreateNumber((double)m->confusion[r][c]));
        cJSON_AddItemToArray(conf, row);
    }
    cJSON *per = cJSON_AddArrayToObject(o, "per_class");
    for (int c = 0; c < DN_N_CLASSES; c++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "class", c);
        add_number(e, "precision", m->precision[c]);
        add_number(e, "recall", m->recall[c]);
        add_number(e, "f1", m->f1[c]);
        add_number(e, "roc_auc", m->roc_auc[c]);
        cJSON_AddNumberToObject(e, "support", (double)m->support[c]);
        cJSON_AddItemToArray(per, e);
    }
    return o;
}

cJSON *cli_history_json(const dn_net *net)
{
    int n;
    const dn_epoch_stats *h = dn_net_history(net, &n);
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "epoch", h[i].epoch);
        add_number(e, "loss", h[i].loss);
        add_number(e, "accuracy", h[i].accuracy);
        add_number(e, "val_loss", h[i].val_loss);
        add_number(e, "val_accuracy", h[i].val_accuracy);
        add_number(e, "seconds", h[i].seconds);
        add_number(e, "images_per_sec", h[i].images_per_sec);
        if (h[i].threads > 0)
            add_number(e, "threads", h[i].threads);
        cJSON_AddItemToArray(list, e);
    }
    return list;
}

int cli_finish(const cli_options *o, cli_report *r, cJSON *json)
{
    int status = 0;
    if (o->report) {
        dn_error err = {0};
        r->dir = o->report;
        r->options = o;
        r->json = json;
        if (cli_write_report(r, &err) != DN_OK)
            status = cli_fail(&err);
        else if (!o->json)
            printf("Report: %s/index.html\n", o->report);
    }
    if (o->json)
        cli_print_json(json);
    else
        cJSON_Delete(json);
    return status;
}

void cli_print_json(cJSON *obj)
{
    char *text = cJSON_Print(obj);
    if (text) {
        puts(text);
        free(text);
    }
    cJSON_Delete(obj);
}

/* ---------------------------------------------------------------- progress */

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

void cli_progress_init(cli_progress *p, FILE *out, int enabled, int epochs, int batch)
{
    memset(p, 0, sizeof *p);
    p->out = out;
    p->enabled = enabled;
    p->tty = isatty(fileno(out));
    p->epochs = epochs;
    p->batch = batch;
}

int cli_progress_batch(void *user, int epoch, int done, int total, double loss, double accuracy)
{
    cli_progress *p = user;
    if (!p->enabled)
        return 0;
    if (epoch != p->epoch) {
        p->epoch = epoch;
        p->epoch_start = cli_now();
        if (p->tty && p->members <= 1) /* an ensemble's epoch lines say which epoch they end */
            fprintf(p->out, "Epoch %d/%d\n", epoch, p->epochs);
    }
    double t = cli_now();
    if (!p->tty || (t - p->last_draw < 0.1 && done < total))
        return 0;
    p->last_draw = t;
    int steps = (total + p->batch - 1) / p->batch, step = (done + p->batch - 1) / p->batch;
    int width = 30, filled = (int)((double)done / total * width);
    char bar[32];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '=' : (i == filled ? '>' : '.');
    bar[width] = '\0';
    fprintf(p->out, "\r%d/%d [%s] - %.0fs - loss: %.4f - accuracy: %.4f", step, steps, bar, t - p->epoch_start, loss,
            accuracy);
    fflush(p->out);
    return 0;
}

int cli_progress_epoch(void *user, const dn_epoch_stats *s)
{
    cli_progress *p = user;
    if (!p->enabled)
        return 0;
    if (p->tty)
        fputc('\r', p->out);
    if (p->members > 1) /* members may train side by side: say whose epoch this is */
        fprintf(p->out, "Epoch %d/%d (member %d/%d) - ", s->epoch, p->epochs, s->member + 1, p->members);
    else if (!p->tty)
        fprintf(p->out, "Epoch %d/%d - ", s->epoch, p->epochs);
    fprintf(p->out, "%.2fs - %.0f img/s - loss: %.4f - accuracy: %.4f", s->seconds, s->images_per_sec, s->loss,
            s->accuracy);
    if (isfinite(s->val_loss))
        fprintf(p->out, " - val_loss: %.4f - val_accuracy: %.4f", s->val_loss, s->val_accuracy);
    fputs(p->tty ? "\033[K\n" : "\n", p->out);
    fflush(p->out);
    return 0;
}

int cli_first_nonfinite(const float *probs, int n_rows)
{
    for (int i = 0; i < n_rows; i++)
        for (int k = 0; k < DN_N_CLASSES; k++)
            if (!isfinite(probs[(size_t)i * DN_N_CLASSES + k]))
                return i;
    return -1;
}

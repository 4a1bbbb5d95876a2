/* digitnet eval, digitnet predict and digitnet summary. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* eval without --data / --test-split / --seed uses what the model recorded at training time, so the
 * same test rows come back and the accuracy matches the one printed after training. */
void cli_defaults_from_model(cli_options *o, const dn_net *net)
{
    const char *data = NULL;
    dn_split split = {0};
    const int noted = dn_net_noted_split(net, &data, &split);
    if (!o->data && (noted & DN_NOTED_DATA))
        o->data = data;
    if (!o->have_test_split && (noted & DN_NOTED_TEST_SPLIT)) {
        o->test_split = split.test_split;
        o->have_test_split = 1;
    }
    if (!o->have_seed && (noted & DN_NOTED_SEED))
        o->seed = split.seed;
}

dn_status cli_load_saved(cli_options *o, dn_net **net, dn_error *err)
{
    int saved = 0;
    dn_status st = cli_open_model(o->model, o->seed, net, &saved, err);
    if (st == DN_OK && !saved) {
        dn_net_free(*net);
        *net = NULL;
        err->status = st = DN_EARG;
        snprintf(err->msg, sizeof err->msg, "%s: is a spec, not a trained model; train it with 'digitnet train --out FILE' first",
                 o->model);
    }
    return st;
}

int cmd_eval(cli_options *o)
{
    dn_error err = {0};
    dn_net *net = NULL;
    cli_data data;
    if (cli_load_saved(o, &net, &err) != DN_OK)
        return cli_fail(&err);
    dn_qnet *q = NULL; /* --int8: the quantised network (tools/cmd_export.c) */
    cli_defaults_from_model(o, net);
    o->val_split = 0; /* the test rows do not depend on it */
    if ((o->int8 ? cli_quantize(o, net, &data, &q, &err) : cli_load_data(o, &data, &err)) != DN_OK) {
        dn_net_free(net);
        return cli_fail(&err);
    }
    dn_metrics m;
    int status = 0;
    float *probs = malloc(sizeof(float) * DN_N_CLASSES * (size_t)(data.test.n ? data.test.n : 1));
    if (!probs)
        status = cli_failf("out of memory");
    else if ((q ? dn_qnet_evaluate(q, &data.test, &m, probs, &err) : dn_net_evaluate(net, &data.test, &m, probs, &err)) != DN_OK)
        status = err.status == DN_ESHAPE ? cli_failf("%s: %s", o->model, err.msg) : cli_fail(&err);
    else {
        cJSON *j = cli_metrics_json(&m);
        if (q)
            cJSON_AddStringToObject(j, "arithmetic", "int8");
        if (!o->json) {
            printf("Evaluating %s%s on %s\n", o->model, q ? " (int8)" : "", data.test_desc);
            cli_print_metrics(stdout, &m, "Test");
        }
        cli_report r = {.command = "eval", .net = net, .test = &data.test, .probs = probs, .metrics = &m};
        status = cli_finish(o, &r, j);
    }
    free(probs);
    dn_qnet_free(q);
    cli_data_free(&data);
    dn_net_free(net);
    return status;
}

/* predict --int8: the int8 network's probabilities of rows [index, index + count) of d. Returns 0, or
 * the exit status after printing the error. */
static int predict_int8(const dn_qnet *q, const dn_dataset *d, int index, int count, float *probs)
{
    if (d->raw_max != dn_qnet_raw_max(q))
        return cli_failf("the int8 network takes pixels 0..%d but the data has 0..%d", dn_qnet_raw_max(q), d->raw_max);
    int8_t *logits = malloc((size_t)count * DN_N_CLASSES);
    if (!logits)
        return cli_failf("out of memory");
    const size_t n_pixels = (size_t)d->h * d->w * d->c;
    dn_error err = {0};
    int status = 0;
    if (dn_qnet_predict(q, d->pixels + (size_t)index * n_pixels, count, logits, NULL, &err) != DN_OK)
        status = cli_fail(&err);
    else
        dn_qnet_probabilities(q, logits, count, probs);
    free(logits);
    return status;
}

int cmd_predict(cli_options *o)
{
    dn_error err = {0};
    dn_net *net = NULL;
    cli_data data;
    if (cli_load_saved(o, &net, &err) != DN_OK)
        return cli_fail(&err);
    if (o->n_positional) { /* image files: tools/cmd_images.c */
        int status = cli_predict_images(o, net);
        dn_net_free(net);
        return status;
    }
    cli_defaults_from_model(o, net);
    dn_qnet *q = NULL; /* --int8: the quantised network, as eval --int8 runs it */
    if ((o->int8 ? cli_quantize(o, net, &data, &q, &err) : cli_load_data(o, &data, &err)) != DN_OK) {
        dn_net_free(net);
        return cli_fail(&err);
    }
    const dn_dataset *d = data.test.n ? &data.test : &data.train;
    int status = 0;
    float *probs = NULL;
    if (o->index >= d->n || o->index + o->count > d->n) {
        status = cli_failf("--index %d --count %d: the test set has %d images", o->index, o->count, d->n);
        goto done;
    }
    dn_shape in = dn_net_input_shape(net);
    if (in.h != d->h || in.w != d->w || in.c != d->c) {
        status = cli_failf("%s: the model expects %dx%dx%d images but %s has %dx%dx%d", o->model, in.h, in.w, in.c,
                           o->data ? o->data : "the data", d->h, d->w, d->c);
        goto done;
    }
    float *images = NULL;
    probs = malloc(sizeof(float) * DN_N_CLASSES * (size_t)o->count);
    if (!probs) {
        status = cli_failf("out of memory");
        goto done;
    }
    if (q && (status = predict_int8(q, d, o->index, o->count, probs)) != 0)
        goto done;
    if (!q && (dn_dataset_floats(d, o->index, o->count, &images, &err) != DN_OK ||
               dn_net_predict(net, images, o->count, probs, &err) != DN_OK)) {
        free(images);
        status = cli_fail(&err);
        goto done;
    }
    free(images);
    if (cli_first_nonfinite(probs, o->count) >= 0) {
        status = cli_failf("%s: %s", o->model, CLI_NOT_A_NUMBER);
        goto done;
    }
    cJSON *list = o->json ? cJSON_CreateArray() : NULL;
    for (int i = 0; i < o->count; i++) {
        const float *p = probs + (size_t)i * DN_N_CLASSES;
        int order[DN_N_CLASSES];
        dn_top_k(p, DN_N_CLASSES, DN_N_CLASSES, order);
        int index = o->index + i, truth = d->labels[index];
        if (list) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "index", index);
            cJSON_AddNumberToObject(e, "label", truth);
            cJSON_AddNumberToObject(e, "digit", order[0]);
            cJSON_AddNumberToObject(e, "probability", p[order[0]]);
            cJSON *top = cJSON_AddArrayToObject(e, "top");
            for (int t = 0; t < o->top; t++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "digit", order[t]);
                cJSON_AddNumberToObject(c, "probability", p[order[t]]);
                cJSON_AddItemToArray(top, c);
            }
            cJSON_AddItemToArray(list, e);
        } else {
            printf("image %d (label %d): %d (%.4f)", index, truth, order[0], p[order[0]]);
            for (int t = 1; t < o->top; t++)
                printf("  %d (%.4f)", order[t], p[order[t]]);
            printf("%s\n", order[0] == truth ? "" : "  <- wrong");
        }
    }
    if (list)
        cli_print_json(list);
done:
    free(probs);
    dn_qnet_free(q);
    cli_data_free(&data);
    dn_net_free(net);
    return status;
}

int cmd_summary(cli_options *o)
{
    const char *path = o->n_positional ? o->positional[0] : o->model;
    dn_error err = {0};
    dn_net *net = NULL;
    if (!path)
        return cli_failf("summary needs a spec or model: digitnet summary models/optdigits.cnn");
    if (cli_open_model(path, o->seed, &net, NULL, &err) != DN_OK)
        return cli_fail(&err);
    if (o->json)
        cli_print_json(cli_summary_json(net));
    else
        cli_print_summary(stdout, net, path);
    dn_net_free(net);
    return 0;
}

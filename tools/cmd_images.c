/* digitnet predict --model M IMAGE...: recognise digits in image files.
 *
 * Each file is decoded, put through the preprocessing the model's input expects (dn_preprocess)
 * and predicted. An image without ink is answered "no digit found" (JSON: "digit": null) and does
 * not count as a failure; a file that cannot be read or decoded is reported and makes the exit
 * status 1 after the other files have been predicted. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* DIR/<file name without extension>.png, made unique among the names written so far this run. */
static void preprocessed_path(const char *dir, const char *file, int index, char (*names)[256], int n_names,
                              char *path, size_t size)
{
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", base);
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem)
        *dot = '\0';
    for (int i = 0; i < n_names; i++)
        if (!strcmp(names[i], stem)) {
            size_t len = strlen(stem);
            snprintf(stem + len, sizeof stem - len, "-%d", index + 1);
            break;
        }
    snprintf(names[n_names], 256, "%s", stem);
    snprintf(path, size, "%s/%s.png", dir, stem);
}

int cli_predict_images(cli_options *o, dn_net *net)
{
    dn_shape in = dn_net_input_shape(net);
    if (!dn_preprocess_name(in))
        return cli_failf("%s: input %dx%dx%d: only 28x28x1 (MNIST) and 8x8x1 (optdigits) models can read image files",
                         o->model, in.h, in.w, in.c);
    dn_error err = {0};
    if (o->save_preprocessed && cli_make_dirs(o->save_preprocessed, &err) != DN_OK)
        return cli_fail(&err);
    int n = o->n_positional, n_rows = 0, status = 0;
    size_t in_size = (size_t)in.h * in.w;
    /* First every file is read and preprocessed, then the network runs once on all of them. */
    float *inputs = malloc(sizeof(float) * in_size * (size_t)n);        /* (n_rows, h, w, 1) */
    float *probs = malloc(sizeof(float) * DN_N_CLASSES * (size_t)n);    /* (n_rows, DN_N_CLASSES) */
    int *row = malloc(sizeof(int) * (size_t)n);                         /* file -> row, -1 none, -2 failed */
    char **failure = calloc((size_t)n, sizeof *failure);                /* file -> message */
    char(*names)[256] = calloc((size_t)n, sizeof *names);
    cJSON *list = o->json ? cJSON_CreateArray() : NULL;
    if (!inputs || !probs || !row || !failure || !names || (o->json && !list)) {
        status = cli_failf("out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        dn_image img;
        dn_status st = dn_image_load(o->positional[i], 0, &img, &err);
        if (st == DN_OK) {
            st = dn_preprocess(&img, in, inputs + (size_t)n_rows * in_size, &err);
            dn_image_free(&img);
        }
        row[i] = st == DN_OK ? n_rows++ : st == DN_ENOTFOUND ? -1 : -2;
        if (row[i] == -2) {
            status = cli_fail(&err);
            failure[i] = strdup(err.msg);
        }
    }
    if (n_rows && dn_net_predict(net, inputs, n_rows, probs, &err) != DN_OK) {
        status = cli_fail(&err);
        goto done;
    }
    if (cli_first_nonfinite(probs, n_rows) >= 0) {
        status = cli_failf("%s: %s", o->model, CLI_NOT_A_NUMBER);
        goto done;
    }
    int n_names = 0;
    for (int i = 0; i < n; i++) {
        const char *file = o->positional[i];
        cJSON *e = list ? cJSON_CreateObject() : NULL;
        if (list && !e) {
            status = cli_failf("out of memory");
            goto done;
        }
        if (e) {
            cJSON_AddItemToArray(list, e);
            cJSON_AddStringToObject(e, "file", file);
        }
        if (row[i] < 0) {
            const char *why = row[i] == -1 ? "no digit found" : failure[i] ? failure[i] : "cannot be read";
            if (e) {
                cJSON_AddNullToObject(e, "digit");
                cJSON_AddStringToObject(e, "error", why);
            } else if (row[i] == -1) {
                printf("%s: no digit found\n", file);
            }
            continue;
        }
        const float *p = probs + (size_t)row[i] * DN_N_CLASSES;
        int order[DN_N_CLASSES];
        dn_top_k(p, DN_N_CLASSES, DN_N_CLASSES, order);
        if (e) {
            cJSON_AddNumberToObject(e, "digit", order[0]);
            cJSON_AddNumberToObject(e, "probability", p[order[0]]);
            cJSON *top = cJSON_AddArrayToObject(e, "top");
            for (int t = 0; top && t < o->top; t++) {
                cJSON *c = cJSON_CreateObject();
                cJSON_AddNumberToObject(c, "digit", order[t]);
                cJSON_AddNumberToObject(c, "probability", p[order[t]]);
                cJSON_AddItemToArray(top, c);
            }
        } else {
            printf("%s: %d (%.4f)", file, order[0], p[order[0]]);
            for (int t = 1; t < o->top; t++)
                printf("  %d (%.4f)", order[t], p[order[t]]);
            putchar('\n');
        }
        if (o->save_preprocessed) {
            char path[1400];
            preprocessed_path(o->save_preprocessed, file, i, names, n_names++, path, sizeof path);
            dn_image seen = {.w = in.w, .h = in.h, .pixels = inputs + (size_t)row[i] * in_size}; /* borrowed */
            if (dn_image_save_png(&seen, path, &err) != DN_OK)
                status = cli_fail(&err);
            else if (e)
                cJSON_AddStringToObject(e, "preprocessed", path);
        }
    }
    if (list) {
        cli_print_json(list);
        list = NULL;
    }
done:
    cJSON_Delete(list);
    for (int i = 0; failure && i < n; i++)
        free(failure[i]);
    free(failure);
    free(names);
    free(row);
    free(probs);
    free(inputs);
    return status;
}

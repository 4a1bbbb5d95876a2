/* digitnet show and digitnet features: pictures of a data set and of what a trained network sees. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#define SHOW_VERSIONS 7 /* show --augment: augmented versions beside each image */

int cmd_show(cli_options *o)
{
    if (!o->out)
        return cli_failf("show needs --out FILE.png (or FILE.svg)");
    if (o->per_class && o->first)
        return cli_failf("show: choose one of --per-class and --first N");
    dn_error err = {0};
    dn_augment augment = {0};
    if (o->augment && dn_augment_parse(o->augment, &augment, &err) != DN_OK)
        return cli_failf("--augment: %s", err.msg);
    dn_dataset train = {0}, test = {0};
    const char *name = o->data ? o->data : "optdigits";
    if (cli_open_data(o, &train, &test, &err) != DN_OK)
        return cli_fail(&err);
    const dn_dataset *d = train.n ? &train : &test; /* the training rows, as the notebooks show */
    int status = 0, n = 0;
    int *idx = malloc(sizeof(int) * (size_t)(o->first > DN_N_CLASSES ? o->first : DN_N_CLASSES));
    char text[DN_N_CLASSES][16], title[480];
    const char *titles[DN_N_CLASSES];
    if (!idx) {
        status = cli_failf("out of memory");
        goto done;
    }
    if (o->first) {
        n = o->first < d->n ? o->first : d->n;
        for (int i = 0; i < n; i++)
            idx[i] = i;
        snprintf(title, sizeof title, "The first %d images of %s", n, name);
    } else {
        n = dn_plot_pick_per_class(d, o->seed, idx);
        for (int i = 0; i < n; i++) {
            snprintf(text[i], sizeof text[i], "class %d", d->labels[idx[i]]);
            titles[i] = text[i];
        }
        snprintf(title, sizeof title, "One random image per class of %s (seed %llu)", name, o->seed);
    }
    if (n < 1) {
        status = cli_failf("%s: no images to show", name);
        goto done;
    }
    if (o->augment) {
        char settings[256];
        dn_augment_print(&augment, settings, sizeof settings);
        if (n * (SHOW_VERSIONS + 1) > DN_PLOT_MAX_IMAGES)
            n = DN_PLOT_MAX_IMAGES / (SHOW_VERSIONS + 1);
        snprintf(title, sizeof title, "%s: each image, then %d augmented versions (%s)", name, SHOW_VERSIONS,
                 settings[0] ? settings : "no transform");
        if (dn_plot_augmented(d, idx, n, &augment, SHOW_VERSIONS, o->seed, title, o->out, &err) != DN_OK) {
            status = cli_fail(&err);
            goto done;
        }
        if (!o->quiet)
            printf("Wrote %s (%d images, %d augmented versions each)\n", o->out, n, SHOW_VERSIONS);
        goto done;
    }
    if (dn_plot_samples(d, idx, n, o->first ? NULL : titles, title, o->out, &err) != DN_OK) {
        status = cli_fail(&err);
        goto done;
    }
    if (!o->quiet)
        printf("Wrote %s (%d images)\n", o->out, n);
done:
    free(idx);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    return status;
}

int cmd_features(cli_options *o)
{
    if (!o->out)
        return cli_failf("features needs --out DIR");
    dn_error err = {0};
    dn_net *net = NULL;
    int saved = 0;
    if (cli_open_model(o->model, o->seed, &net, &saved, &err) != DN_OK)
        return cli_fail(&err);
    if (!saved) {
        dn_net_free(net);
        return cli_failf("%s: is a spec, not a trained model; train it with 'digitnet train --out FILE' first", o->model);
    }
    cli_defaults_from_model(o, net);
    o->val_split = 0;
    cli_data data;
    if (cli_load_data(o, &data, &err) != DN_OK) {
        dn_net_free(net);
        return cli_fail(&err);
    }
    /* --index counts the test rows, as in predict: the images the model did not train on. */
    const dn_dataset *d = data.test.n ? &data.test : &data.train;
    dn_shape in = dn_net_input_shape(net);
    int status = 0, written = 0;
    if (o->index >= d->n) {
        status = cli_failf("--index %d: the test set has %d images", o->index, d->n);
        goto done;
    }
    if (in.h != d->h || in.w != d->w || in.c != d->c) {
        status = cli_failf("%s takes %dx%dx%d images but the data has %dx%dx%d", o->model, in.h, in.w, in.c, d->h, d->w,
                           d->c);
        goto done;
    }
    float *image = NULL;
    if (dn_dataset_floats(d, o->index, 1, &image, &err) != DN_OK || cli_make_dirs(o->out, &err) != DN_OK ||
        dn_plot_feature_maps(net, image, o->out, &written, &err) != DN_OK) {
        free(image);
        status = cli_fail(&err);
        goto done;
    }
    free(image);
    if (written == 0) {
        status = cli_failf("%s has no conv2d or maxpool layer to draw", o->model);
        goto done;
    }
    if (!o->quiet) {
        printf("Feature maps of test image %d (label %d):\n", o->index, d->labels[o->index]);
        for (int i = 0; i < dn_net_layer_count(net); i++) {
            dn_layer_info info;
            if (dn_net_layer_info(net, i, &info) == DN_OK && (!strcmp(info.kind, "conv2d") || !strcmp(info.kind, "maxpool")))
                printf("  %s/features-%02d-%s.png  %s\n", o->out, i + 1, info.kind, info.label);
        }
    }
done:
    cli_data_free(&data);
    dn_net_free(net);
    return status;
}

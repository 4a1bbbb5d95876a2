/* The fuzz harness bodies (see targets.h). Included, not linked, by the libFuzzer entry points and by
 * tests/test_fuzz_regressions.c, so that both run exactly the same code.
 *
 * The loaders read files by path. Rather than touching the disk on every execution, the input goes
 * into an anonymous in-memory file (memfd_create) that the loader opens as /proc/self/fd/N: the
 * public functions run unchanged, with their real fopen / gzopen / getline paths. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include "targets.h"

#include "net.h" /* only to size the prediction a fuzzed network may run (fuzz_predict) */
#include "onnx/dn_onnx.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_ASSERT(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: fuzz invariant broken: %s\n", __FILE__, __LINE__, #cond);     \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* A failure must come with its status in the record and a one-line message. */
static void fuzz_check_error(dn_status st, const dn_error *err, const char *call)
{
    if (st == DN_OK)
        return;
    if (err->status != st || !err->msg[0] || strchr(err->msg, '\n') || strlen(err->msg) >= sizeof err->msg) {
        fprintf(stderr, "%s returned %d (%s) but the error record holds status %d and message '%s'\n", call,
                (int)st, dn_status_str(st), (int)err->status, err->msg);
        abort();
    }
}

/* Puts bytes into in-memory file number `slot` (0 or 1) and returns a path that opens it. */
static const char *fuzz_file(int slot, const uint8_t *data, size_t size)
{
    static int fds[2] = {-1, -1};
    static char paths[2][64];
    if (fds[slot] < 0) {
        fds[slot] = memfd_create("digitnet-fuzz", 0);
        if (fds[slot] < 0) {
            perror("memfd_create");
            abort();
        }
        snprintf(paths[slot], sizeof paths[slot], "/proc/self/fd/%d", fds[slot]);
    }
    if (ftruncate(fds[slot], 0) != 0) {
        perror("ftruncate");
        abort();
    }
    for (size_t done = 0; done < size;) {
        ssize_t n = pwrite(fds[slot], data + done, size - done, (off_t)done);
        if (n <= 0) {
            perror("pwrite");
            abort();
        }
        done += (size_t)n;
    }
    return paths[slot];
}

static void fuzz_setup(void)
{
    static int done;
    if (!done) {
        dn_set_threads(1); /* one thread: reproducible runs, and the fuzzer keeps the other core */
        done = 1;
    }
}

static void check_dataset(const dn_dataset *d, int raw_max)
{
    FUZZ_ASSERT(d->n >= 1 && d->h >= 1 && d->w >= 1 && d->c == 1);
    FUZZ_ASSERT(d->raw_max == raw_max);
    FUZZ_ASSERT(d->pixels && d->labels);
    for (int i = 0; i < d->n; i++)
        FUZZ_ASSERT(d->labels[i] <= 9);
    size_t total = (size_t)d->n * (size_t)d->h * (size_t)d->w * (size_t)d->c;
    for (size_t i = 0; i < total; i++)
        FUZZ_ASSERT(d->pixels[i] <= raw_max);
}

/* ------------------------------------------------------------------ data sets */

dn_status dn_fuzz_idx(const uint8_t *data, size_t size)
{
    size_t labels_len = size >= 2 ? (size_t)data[0] | (size_t)data[1] << 8 : 0;
    const uint8_t *rest = size >= 2 ? data + 2 : data + size;
    size_t rest_len = size >= 2 ? size - 2 : 0;
    if (labels_len > rest_len)
        labels_len = rest_len;
    const char *labels_path = fuzz_file(0, rest, labels_len);
    const char *images_path = fuzz_file(1, rest + labels_len, rest_len - labels_len);

    dn_dataset d;
    dn_error err = {0};
    dn_status st = dn_idx_load(images_path, labels_path, &d, &err);
    fuzz_check_error(st, &err, "dn_idx_load");
    if (st == DN_OK)
        check_dataset(&d, 255);
    else
        FUZZ_ASSERT(d.pixels == NULL && d.labels == NULL && d.n == 0);
    dn_dataset_free(&d);
    return st;
}

dn_status dn_fuzz_optdigits(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(0, data, size);
    dn_dataset d;
    dn_error err = {0};
    dn_status st = dn_optdigits_load(path, &d, &err);
    fuzz_check_error(st, &err, "dn_optdigits_load");
    if (st == DN_OK) {
        FUZZ_ASSERT(d.h == 8 && d.w == 8);
        check_dataset(&d, 16);
    } else {
        FUZZ_ASSERT(d.pixels == NULL && d.labels == NULL && d.n == 0);
    }
    dn_dataset_free(&d);
    return st;
}

/* ------------------------------------------------------------------ networks */

/* Work and memory of one prediction, in floats touched, from the layers' own sizes. */
static double predict_cost(const dn_net *net)
{
    double cost = (double)dn_shape_size(net->input);
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        double out = (double)dn_shape_size(L->out);
        /* conv2d and dense: about n_params / out.c multiply-adds per output value */
        cost += out * ((double)L->n_params / (L->out.c > 0 ? L->out.c : 1) + 1.0);
        cost += (double)L->scratch_per_item + (double)L->scratch_fixed;
    }
    return cost;
}

/* Checks the layer table of a network, and runs one prediction when it is cheap enough for a
 * fuzzer (every layer kind's forward pass then meets the shapes the parser allowed).
 * check_probs: the weights are the parser's own (finite, small), so the output must be a
 * probability distribution. */
static void fuzz_predict(dn_net *net, int check_probs)
{
    dn_shape in = dn_net_input_shape(net);
    FUZZ_ASSERT(in.h >= 1 && in.w >= 1 && in.c >= 1);
    int n_layers = dn_net_layer_count(net);
    FUZZ_ASSERT(n_layers >= 1 && n_layers <= DN_MAX_LAYERS);
    FUZZ_ASSERT(dn_net_n_classes(net) == DN_N_CLASSES);
    size_t params = 0;
    for (int i = 0; i < n_layers; i++) {
        dn_layer_info info;
        FUZZ_ASSERT(dn_net_layer_info(net, i, &info) == DN_OK);
        FUZZ_ASSERT(info.kind && info.label[0] && memchr(info.label, '\0', sizeof info.label));
        FUZZ_ASSERT(info.out.h >= 1 && info.out.w >= 1 && info.out.c >= 1);
        FUZZ_ASSERT(!info.flat || (info.out.h == 1 && info.out.w == 1));
        FUZZ_ASSERT(info.n_trainable <= info.n_params);
        params += info.n_params;
    }
    FUZZ_ASSERT(params == dn_net_param_count(net));
    if (dn_net_param_count(net) > (1u << 20) || predict_cost(net) > 2e7)
        return;

    size_t in_size = (size_t)in.h * in.w * in.c;
    float *image = malloc(in_size * sizeof *image), probs[DN_N_CLASSES];
    FUZZ_ASSERT(image);
    for (size_t i = 0; i < in_size; i++)
        image[i] = (float)(i % 17) / 16.0f;
    dn_error err = {0};
    dn_workspace *ws = NULL;
    dn_status st = dn_workspace_init(net, &ws, &err);
    if (st == DN_OK)
        st = dn_net_predict_ws(net, ws, image, 1, probs, &err);
    fuzz_check_error(st, &err, "dn_net_predict_ws");
    free(image);
    FUZZ_ASSERT(st == DN_OK || st == DN_ENOMEM); /* only out of memory can stop it */
    if (st != DN_OK) {
        dn_workspace_free(ws);
        return;
    }
    for (int i = 0; i < n_layers; i++) {
        dn_shape shape;
        dn_layer_info info;
        dn_net_layer_info(net, i, &info);
        FUZZ_ASSERT(dn_workspace_layer_output(ws, i, &shape) != NULL);
        FUZZ_ASSERT(shape.h == info.out.h && shape.w == info.out.w && shape.c == info.out.c);
    }
    dn_workspace_free(ws);
    if (check_probs) {
        double sum = 0;
        for (int k = 0; k < DN_N_CLASSES; k++) {
            FUZZ_ASSERT(isfinite(probs[k]) && probs[k] >= 0.0f && probs[k] <= 1.0f);
            sum += probs[k];
        }
        FUZZ_ASSERT(fabs(sum - 1.0) < 1e-3);
    }
}

/* The canonical spec of a network must build the same network, and print itself unchanged. */
static void check_canonical_spec(const dn_net *net)
{
    const char *spec = dn_net_spec(net);
    FUZZ_ASSERT(spec && spec[0]);
    dn_net *again = NULL;
    dn_error err = {0};
    dn_status st = dn_net_parse(spec, "canonical", 7, &again, &err);
    if (st != DN_OK) {
        fprintf(stderr, "the canonical spec does not parse: %s\n--- spec\n%s---\n", err.msg, spec);
        abort();
    }
    if (strcmp(dn_net_spec(again), spec) != 0) {
        fprintf(stderr, "the canonical spec changes when parsed again\n--- first\n%s--- second\n%s---\n", spec,
                dn_net_spec(again));
        abort();
    }
    FUZZ_ASSERT(dn_net_param_count(again) == dn_net_param_count(net));
    FUZZ_ASSERT(dn_net_trainable_count(again) == dn_net_trainable_count(net));
    FUZZ_ASSERT(dn_net_layer_count(again) == dn_net_layer_count(net));
    dn_net_free(again);
}

dn_status dn_fuzz_spec(const uint8_t *data, size_t size)
{
    fuzz_setup();
    char *text = malloc(size + 1);
    FUZZ_ASSERT(text);
    memcpy(text, data, size);
    text[size] = '\0';
    dn_net *net = NULL;
    dn_error err = {0};
    dn_status st = dn_net_parse(text, "fuzz.cnn", 1, &net, &err);
    fuzz_check_error(st, &err, "dn_net_parse");
    free(text);
    if (st != DN_OK) {
        FUZZ_ASSERT(net == NULL);
        return st;
    }
    check_canonical_spec(net);
    fuzz_predict(net, 1);
    dn_net_free(net);
    return st;
}

static void check_loaded_model(dn_net *net)
{
    FUZZ_ASSERT(dn_net_raw_max(net) == 16 || dn_net_raw_max(net) == 255);
    check_canonical_spec(net);
    int n_epochs = -1;
    const dn_epoch_stats *history = dn_net_history(net, &n_epochs);
    FUZZ_ASSERT(n_epochs >= 0 && (n_epochs == 0 || history));
    const char *key, *value;
    for (int i = 0; dn_net_note_at(net, i, &key, &value); i++) {
        FUZZ_ASSERT(i < 32 && key && value && key[0]);
        FUZZ_ASSERT(dn_net_note(net, key) == value);
    }
    fuzz_predict(net, 0); /* the file's weights may be any finite floats: no promise on the output */
}

dn_status dn_fuzz_model(const uint8_t *data, size_t size)
{
    fuzz_setup();
    const char *path = fuzz_file(0, data, size);
    dn_net *net = (dn_net *)(uintptr_t)1; /* must be set to NULL on failure */
    dn_error err = {0};
    dn_status st = dn_model_load(path, &net, &err);
    fuzz_check_error(st, &err, "dn_model_load");
    if (st == DN_OK) {
        check_loaded_model(net);
        dn_net_free(net);
    } else {
        FUZZ_ASSERT(net == NULL);
    }

    dn_net *ck = (dn_net *)(uintptr_t)1;
    dn_error ck_err = {0};
    dn_status ck_st = dn_checkpoint_load(path, &ck, &ck_err);
    fuzz_check_error(ck_st, &ck_err, "dn_checkpoint_load");
    if (ck_st == DN_OK) {
        FUZZ_ASSERT(st == DN_OK); /* every checkpoint is also a model */
        check_loaded_model(ck);
        dn_net_free(ck);
    } else {
        FUZZ_ASSERT(ck == NULL);
    }
    /* A file is judged as what it is: a model by dn_model_load alone (dn_checkpoint_load refuses it as
     * "not a checkpoint"), a checkpoint by both, since its training state must load too. */
    if (st == DN_OK && ck_st != DN_OK && !strstr(ck_err.msg, "not a checkpoint"))
        return ck_st;
    return st;
}

/* ------------------------------------------------------------------ images */

static void check_preprocess(const dn_image *img, dn_shape target)
{
    float out[28 * 28];
    dn_error err = {0};
    dn_status st = dn_preprocess(img, target, out, &err);
    fuzz_check_error(st, &err, "dn_preprocess");
    FUZZ_ASSERT(st == DN_OK || st == DN_ENOTFOUND || st == DN_ENOMEM);
    if (st != DN_OK)
        return;
    for (int i = 0; i < target.h * target.w; i++)
        FUZZ_ASSERT(out[i] >= 0.0f && out[i] <= 1.0f); /* false for NaN too */
}

dn_status dn_fuzz_image(const uint8_t *data, size_t size)
{
    fuzz_setup();
    dn_image img = {1, 1, (float *)(uintptr_t)1}; /* must be zeroed on failure */
    dn_error err = {0};
    dn_status st = dn_image_decode(data, size, DN_FUZZ_IMAGE_MAX_PIXELS, &img, &err);
    fuzz_check_error(st, &err, "dn_image_decode");
    if (st != DN_OK) {
        FUZZ_ASSERT(img.pixels == NULL && img.w == 0 && img.h == 0);
        FUZZ_ASSERT(st == DN_EFORMAT || st == DN_ELIMIT || st == DN_ENOMEM);
        return st;
    }
    FUZZ_ASSERT(img.w >= 1 && img.h >= 1 && img.pixels);
    size_t n = (size_t)img.w * (size_t)img.h;
    FUZZ_ASSERT(n <= DN_FUZZ_IMAGE_MAX_PIXELS && img.w <= DN_IMAGE_MAX_SIDE && img.h <= DN_IMAGE_MAX_SIDE);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(img.pixels[i] >= 0.0f && img.pixels[i] <= 1.0f);

    check_preprocess(&img, (dn_shape){28, 28, 1});
    check_preprocess(&img, (dn_shape){8, 8, 1});

    /* A small image survives a PNG round trip to within one grey level. */
    if (n <= 65536) {
        void *png = NULL;
        size_t len = 0;
        dn_error png_err = {0};
        dn_status png_st = dn_image_encode_png(&img, &png, &len, &png_err);
        fuzz_check_error(png_st, &png_err, "dn_image_encode_png");
        if (png_st == DN_OK) {
            dn_image back;
            dn_status back_st = dn_image_decode(png, len, 0, &back, &png_err);
            fuzz_check_error(back_st, &png_err, "dn_image_decode (round trip)");
            FUZZ_ASSERT(back_st == DN_OK && back.w == img.w && back.h == img.h);
            for (size_t i = 0; i < n; i++)
                FUZZ_ASSERT(fabsf(back.pixels[i] - img.pixels[i]) <= 0.5f / 255.0f + 1e-4f);
            dn_image_free(&back);
        }
        free(png);
    }
    dn_image_free(&img);
    return st;
}

dn_status dn_fuzz_onnx(const uint8_t *data, size_t size)
{
    fuzz_setup();
    dn_error err = {0};
    dn_net *net = NULL;
    dn_status st = dn_onnx_import_bytes(data, size, "fuzz.onnx", 0.0f, &net, NULL, &err);
    fuzz_check_error(st, &err, "dn_onnx_import_bytes");
    FUZZ_ASSERT((st == DN_OK) == (net != NULL));
    if (net)
        check_loaded_model(net);
    dn_net_free(net);
    return st;
}

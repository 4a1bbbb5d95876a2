/* Pictures made of images: samples of a data set, feature maps of one input, the worst mistakes. */
#include "plot/plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MARGIN 12
#define HEADER 52
#define TILE 88
#define CELL_H 124
#define SAMPLE_CELL_W 104
#define MISTAKE_CELL_W 200

#define FEATURE_COLS 16
#define FEATURE_TILE 56
#define FEATURE_STEP 60
#define INPUT_SIZE 128

static const dn_rgb INK = {0.15, 0.15, 0.15};
static const dn_rgb FRAME = {0.80, 0.80, 0.80};

/* Text no wider than max_w: the font shrinks to fit. */
static void fitted_text(cairo_t *cr, double x, double y, const char *text, double size, int bold, double max_w)
{
    double w = dn_text_width(cr, text, size, bold);
    if (w > max_w)
        size *= max_w / w;
    dn_draw_text(cr, x, y, text, size, bold, 0.5, 0, 0, INK);
}

static void frame(cairo_t *cr, double x, double y, double size)
{
    cairo_set_source_rgb(cr, FRAME.r, FRAME.g, FRAME.b);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, floor(x) - 0.5, floor(y) - 0.5, size + 1, size + 1);
    cairo_stroke(cr);
}

static dn_status check_data(const char *fn, const dn_dataset *d, dn_error *err)
{
    if (!d || d->n < 1 || !d->pixels || !d->labels || d->h < 1 || d->w < 1 || d->c < 1)
        return dn_fail(err, DN_EARG, "%s: no images", fn);
    return DN_OK;
}

/* A grid of n images (rows[i] of data) in cells of cell_w x CELL_H, cols across, each with
 * titles[i] above it; message (may be NULL) is written in the first cell when n == 0. */
static dn_status draw_grid(const dn_dataset *data, const int *rows, int n, const char *const *titles, int cols,
                           int cell_w, const char *title, const char *message, const char *path, dn_error *err)
{
    int shown_cols = n < 1 ? 1 : (n < cols ? n : cols);
    int grid_rows = n < 1 ? 1 : (n + shown_cols - 1) / shown_cols;
    int width = 2 * MARGIN + cell_w * shown_cols, height = HEADER + CELL_H * grid_rows;
    dn_canvas cv;
    dn_status st = dn_canvas_open(&cv, path, width, height, err);
    if (st != DN_OK)
        return st;
    cairo_t *cr = cv.cr;
    if (title)
        fitted_text(cr, width / 2.0, 14, title, 16, 1, width - 2 * MARGIN);
    if (n < 1 && message)
        fitted_text(cr, width / 2.0, HEADER + CELL_H / 2.0 - 8, message, 13, 0, cell_w - 8);
    const size_t pixels = (size_t)data->h * data->w * data->c;
    float *image = malloc(sizeof(float) * pixels); /* one row at a time, scaled to 0..1 */
    if (!image) {
        dn_canvas_discard(&cv);
        return dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
    }
    char label[32];
    for (int i = 0; i < n && st == DN_OK; i++) {
        int row = rows[i];
        double cx = MARGIN + (i % shown_cols) * cell_w, cy = HEADER + (i / shown_cols) * CELL_H;
        const char *t = titles ? titles[i] : NULL;
        if (!t) {
            snprintf(label, sizeof label, "label %d", data->labels[row]);
            t = label;
        }
        fitted_text(cr, cx + cell_w / 2.0, cy, t, 12, 0, cell_w - 6);
        double ix = cx + (cell_w - TILE) / 2.0, iy = cy + 20;
        dn_dataset_rows(data, row, 1, image);
        st = dn_draw_image(cr, image, data->h, data->w, data->c, 0, 0, 1, dn_colormap_gray_r, ix, iy, TILE, err);
        frame(cr, ix, iy, TILE);
    }
    free(image);
    if (st != DN_OK) {
        dn_canvas_discard(&cv);
        return st;
    }
    return dn_canvas_close(&cv, err);
}

dn_status dn_plot_samples(const dn_dataset *data, const int *indices, int n, const char *const *titles,
                          const char *title, const char *path, dn_error *err)
{
    dn_status st = check_data("dn_plot_samples", data, err);
    if (st != DN_OK)
        return st;
    if (!indices || n < 1 || n > DN_PLOT_MAX_IMAGES)
        return dn_fail(err, DN_EARG, "dn_plot_samples: %d images (1 to %d can be drawn)", n, DN_PLOT_MAX_IMAGES);
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= data->n)
            return dn_fail(err, DN_EARG, "dn_plot_samples: row %d is outside the data set's %d rows", indices[i],
                           data->n);
    return draw_grid(data, indices, n, titles, DN_PLOT_GRID_COLS, SAMPLE_CELL_W, title, NULL, path, err);
}

dn_status dn_plot_augmented(const dn_dataset *data, const int *indices, int n, const dn_augment *a, int versions,
                            uint64_t seed, const char *title, const char *path, dn_error *err)
{
    dn_status st = check_data("dn_plot_augmented", data, err);
    if (st != DN_OK)
        return st;
    const int cols = versions + 1;
    if (!a || !indices || n < 1 || versions < 1 || (long)n * cols > DN_PLOT_MAX_IMAGES)
        return dn_fail(err, DN_EARG, "dn_plot_augmented: %d images with %d versions each (1 to %d pictures can be drawn)",
                       n, versions, DN_PLOT_MAX_IMAGES);
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= data->n)
            return dn_fail(err, DN_EARG, "dn_plot_augmented: row %d is outside the data set's %d rows", indices[i],
                           data->n);
    /* The pictures as a data set of their own, 8-bit like every data set, drawn by draw_grid. */
    const int total = n * cols;
    const dn_shape shape = {data->h, data->w, data->c};
    const size_t values = (size_t)data->h * data->w * data->c;
    dn_dataset grid = {.n = total, .h = data->h, .w = data->w, .c = data->c, .raw_max = 255};
    float *images = malloc(sizeof(float) * values * (size_t)cols); /* (cols, h, w, c): the image, its versions */
    grid.pixels = malloc(values * (size_t)total);
    grid.labels = malloc((size_t)total);
    int *rows = malloc(sizeof(int) * (size_t)total);
    char(*text)[32] = malloc(sizeof *text * (size_t)total);
    const char **titles = malloc(sizeof *titles * (size_t)total);
    if (!images || !grid.pixels || !grid.labels || !rows || !text || !titles)
        st = dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
    for (int i = 0; st == DN_OK && i < n; i++) {
        for (int v = 0; v < cols; v++)
            dn_dataset_rows(data, indices[i], 1, images + (size_t)v * values);
        /* Version v: the image as training would see it at this place in epoch v */
        for (int v = 1; st == DN_OK && v < cols; v++)
            st = dn_augment_images(a, seed, v, indices[i], images + (size_t)v * values, 1, shape, err);
        for (int v = 0; v < cols; v++) {
            const int k = i * cols + v;
            const float *f = images + (size_t)v * values;
            uint8_t *px = grid.pixels + (size_t)k * values;
            for (size_t j = 0; j < values; j++)
                px[j] = (uint8_t)lrintf((f[j] < 0.0f ? 0.0f : f[j] > 1.0f ? 1.0f : f[j]) * 255.0f);
            grid.labels[k] = data->labels[indices[i]];
            rows[k] = k;
            if (v == 0)
                snprintf(text[k], sizeof text[k], "label %d", data->labels[indices[i]]);
            else
                snprintf(text[k], sizeof text[k], "augmented %d", v);
            titles[k] = text[k];
        }
    }
    if (st == DN_OK)
        st = draw_grid(&grid, rows, total, titles, cols, SAMPLE_CELL_W, title, NULL, path, err);
    free(images);
    free(grid.pixels);
    free(grid.labels);
    free(rows);
    free(text);
    free(titles);
    return st;
}

int dn_plot_pick_per_class(const dn_dataset *data, uint64_t seed, int indices[DN_N_CLASSES])
{
    /* Reservoir sampling, one pass: row i replaces the pick of its class with probability 1/seen. */
    int pick[DN_N_CLASSES], seen[DN_N_CLASSES] = {0};
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    for (int i = 0; data && data->labels && i < data->n; i++) {
        int k = data->labels[i];
        if (k >= DN_N_CLASSES)
            continue;
        seen[k]++;
        if (dn_rng_below(&rng, (uint32_t)seen[k]) == 0)
            pick[k] = i;
    }
    int found = 0;
    for (int k = 0; k < DN_N_CLASSES; k++)
        if (seen[k])
            indices[found++] = pick[k];
    return found;
}

/* ---------------------------------------------------------------- feature maps */

/* The R1 notebook's display normalisation of one channel of a (h, w, c) activation into tile
 * (h * w) values 0..255. */
static void normalise_channel(const float *act, int h, int w, int c, int channel, float *tile)
{
    const int n = h * w;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; i++)
        sum += act[(size_t)i * c + channel];
    double mean = sum / n;
    for (int i = 0; i < n; i++) {
        double d = act[(size_t)i * c + channel] - mean;
        sq += d * d;
    }
    double std = sqrt(sq / n);
    for (int i = 0; i < n; i++) {
        /* A constant channel (a ReLU that never fired) has no spread: show it as the middle grey. */
        double v = std > 1e-12 ? (act[(size_t)i * c + channel] - mean) / std * 64 + 128 : 128;
        tile[i] = (float)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
}

dn_status dn_plot_feature_map(dn_net *net, const float *image, int layer, const char *path, dn_error *err)
{
    if (!net || !image)
        return dn_fail(err, DN_EARG, "dn_plot_feature_map: no network or no image");
    dn_layer_info info;
    dn_status st = dn_net_layer_info(net, layer, &info);
    if (st != DN_OK)
        return dn_fail(err, st, "dn_plot_feature_map: the network has no layer %d", layer + 1);
    if (info.flat || info.out.h < 1 || info.out.w < 1 || info.out.c < 1)
        return dn_fail(err, DN_EARG, "dn_plot_feature_map: layer %d (%s) has no spatial output to draw", layer + 1,
                       info.label);
    const int classes = dn_net_n_classes(net);
    const dn_shape in = dn_net_input_shape(net), out = info.out;
    float *probs = malloc(sizeof(float) * (size_t)(classes > 0 ? classes : 1));
    float *tile = malloc(sizeof(float) * (size_t)out.h * out.w);
    dn_workspace *ws = NULL;
    if (!probs || !tile || dn_workspace_init(net, &ws, NULL) != DN_OK) {
        free(probs);
        free(tile);
        return dn_fail(err, DN_ENOMEM, "dn_plot_feature_map: out of memory");
    }
    st = dn_net_predict_ws(net, ws, image, 1, probs, err);
    dn_shape shape;
    const float *act = st == DN_OK ? dn_workspace_layer_output(ws, layer, &shape) : NULL; /* (h, w, c) */
    if (st == DN_OK && !act)
        st = dn_fail(err, DN_EARG, "dn_plot_feature_map: layer %d has no output", layer + 1);
    const int cols = out.c < FEATURE_COLS ? out.c : FEATURE_COLS, rows = (out.c + cols - 1) / cols;
    const int grid_h = FEATURE_STEP * rows > INPUT_SIZE + 22 ? FEATURE_STEP * rows : INPUT_SIZE + 22;
    const int width = 208 + FEATURE_STEP * cols, height = 64 + grid_h;
    dn_canvas cv;
    if (st == DN_OK)
        st = dn_canvas_open(&cv, path, width, height, err);
    if (st != DN_OK) {
        dn_workspace_free(ws);
        free(probs);
        free(tile);
        return st;
    }
    cairo_t *cr = cv.cr;
    char title[192];
    snprintf(title, sizeof title, "Layer %d: %s -> %d x %d x %d", layer + 1, info.label, out.h, out.w, out.c);
    fitted_text(cr, width / 2.0, 14, title, 15, 1, width - 2 * MARGIN);
    const double top = 48, grid_x = 24 + INPUT_SIZE + 40;
    st = dn_draw_image(cr, image, in.h, in.w, in.c, 0, 0, 1, dn_colormap_gray_r, 24, top, INPUT_SIZE, err);
    frame(cr, 24, top, INPUT_SIZE);
    dn_draw_text(cr, 24 + INPUT_SIZE / 2.0, top + INPUT_SIZE + 6, "input", 12, 0, 0.5, 0, 0, INK);
    for (int ch = 0; ch < out.c && st == DN_OK; ch++) {
        double x = grid_x + (ch % cols) * FEATURE_STEP, y = top + (ch / cols) * FEATURE_STEP;
        normalise_channel(act, out.h, out.w, out.c, ch, tile);
        st = dn_draw_image(cr, tile, out.h, out.w, 1, 0, 0, 255, dn_colormap_viridis, x, y, FEATURE_TILE, err);
    }
    dn_workspace_free(ws);
    free(probs);
    free(tile);
    if (st != DN_OK) {
        dn_canvas_discard(&cv);
        return st;
    }
    return dn_canvas_close(&cv, err);
}

dn_status dn_plot_feature_maps(dn_net *net, const float *image, const char *dir, int *n_written, dn_error *err)
{
    int written = 0;
    dn_status st = DN_OK;
    if (!net || !image || !dir)
        st = dn_fail(err, DN_EARG, "dn_plot_feature_maps: no network, image or directory");
    for (int i = 0; st == DN_OK && i < dn_net_layer_count(net); i++) {
        dn_layer_info info;
        st = dn_net_layer_info(net, i, &info);
        if (st != DN_OK)
            st = dn_fail(err, st, "dn_plot_feature_maps: cannot describe layer %d", i + 1);
        if (st != DN_OK || (strcmp(info.kind, "conv2d") != 0 && strcmp(info.kind, "maxpool") != 0))
            continue;
        char path[1024];
        if (snprintf(path, sizeof path, "%s/features-%02d-%s.png", dir, i + 1, info.kind) >= (int)sizeof path)
            st = dn_fail(err, DN_EARG, "dn_plot_feature_maps: %s: directory name too long", dir);
        if (st == DN_OK)
            st = dn_plot_feature_map(net, image, i, path, err);
        written += st == DN_OK;
    }
    if (n_written)
        *n_written = written;
    return st;
}

/* ---------------------------------------------------------------- mistakes */

typedef struct mistake {
    int row, predicted;
    float confidence;
} mistake;

static int by_confidence_desc(const void *pa, const void *pb)
{
    const mistake *a = pa, *b = pb;
    if (a->confidence != b->confidence)
        return a->confidence < b->confidence ? 1 : -1;
    return (a->row > b->row) - (a->row < b->row); /* ties: data order, so the picture is reproducible */
}

dn_status dn_plot_mistakes(const dn_dataset *data, const float *probs, int max_n, const char *path, int *n_wrong,
                           dn_error *err)
{
    dn_status st = check_data("dn_plot_mistakes", data, err);
    if (st != DN_OK)
        return st;
    if (!probs || max_n < 1 || max_n > DN_PLOT_MAX_IMAGES)
        return dn_fail(err, DN_EARG, "dn_plot_mistakes: max_n %d (1 to %d can be drawn) or no probabilities", max_n,
                       DN_PLOT_MAX_IMAGES);
    mistake *wrong = malloc(sizeof *wrong * (size_t)data->n);
    int *rows = malloc(sizeof(int) * (size_t)max_n);
    char *text = malloc(48 * (size_t)max_n);
    const char **titles = malloc(sizeof(char *) * (size_t)max_n);
    if (!wrong || !rows || !text || !titles) {
        st = dn_fail(err, DN_ENOMEM, "dn_plot_mistakes: out of memory for %d rows", data->n);
        goto done;
    }
    int n = 0;
    for (int i = 0; i < data->n; i++) {
        const float *p = probs + (size_t)i * DN_N_CLASSES;
        int best = 0;
        for (int k = 1; k < DN_N_CLASSES; k++)
            if (p[k] > p[best])
                best = k;
        if (best != data->labels[i])
            wrong[n++] = (mistake){i, best, p[best]};
    }
    qsort(wrong, (size_t)n, sizeof *wrong, by_confidence_desc);
    int shown = n < max_n ? n : max_n;
    for (int i = 0; i < shown; i++) {
        rows[i] = wrong[i].row;
        titles[i] = text + 48 * (size_t)i;
        snprintf(text + 48 * (size_t)i, 48, "true %d -> predicted %d (%.2f)", data->labels[wrong[i].row],
                 wrong[i].predicted, wrong[i].confidence);
    }
    char title[128], message[64];
    if (n == 0)
        snprintf(title, sizeof title, "No mistakes");
    else if (shown == n)
        snprintf(title, sizeof title, "All %d mistakes, most confident first", n);
    else
        snprintf(title, sizeof title, "The %d most confident of %d mistakes", shown, n);
    snprintf(message, sizeof message, "all %d images right", data->n);
    st = draw_grid(data, rows, shown, titles, DN_PLOT_MISTAKE_COLS, MISTAKE_CELL_W, title, message, path, err);
    if (n_wrong)
        *n_wrong = n;
done:
    free(wrong);
    free(rows);
    free(text);
    free(titles);
    return st;
}

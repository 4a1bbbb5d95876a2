/*
 * The pictures, read back from the files they wrote: each dn_plot_* function writes a PNG of the
 * documented size that is not blank; image tiles show the data's pixels (sampled at each source
 * pixel's centre); feature-map tiles show the R1 normalisation of the layer's output; every cell of
 * the confusion heatmap has the colour of its count on the picture's own colour bar and a number
 * written in it; curves, means and legends are drawn in their colours; bad arguments leave no file.
 *
 * Real data only: UCI optdigits, and the predictions of a small network trained on it here.
 */
#include "testutil.h"
#include "plot/plot.h" /* the colour maps, to know what colour a value must have */

#include <cairo.h>
#include <dirent.h>

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"
#define OPTDIGITS_TES DN_TEST_DATA "/optdigits/optdigits.tes"

/* Layout constants of src/plot/images.c that the pixel checks need (the sizes are in digitnet.h). */
#define GRID_MARGIN 12
#define GRID_HEADER 52
#define GRID_CELL_H 124
#define GRID_TILE 88
#define GRID_TILE_TOP 20
#define FEATURE_GRID_X 192
#define FEATURE_TOP 48
#define FEATURE_STEP 60
#define FEATURE_TILE 56

static const char *SMALL_NET = "input 8x8x1\n"
                               "conv2d 8 3x3 same relu\n"
                               "maxpool 2x2 stride=2 valid\n"
                               "flatten\n"
                               "dense 10 softmax\n";

/* Shared by all tests: the data, a small net trained on it, its predictions on optdigits.tes. */
static dn_dataset tra, tes, fit, val; /* fit + val = tra */
static dn_net *net;
static float *probs; /* (tes.n, DN_N_CLASSES) */
static dn_metrics metrics;

static int setup(void **state)
{
    (void)state;
    dn_error err = {0};
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK || dn_optdigits_load(OPTDIGITS_TES, &tes, &err) != DN_OK ||
        dn_dataset_slice(&tra, 0, tra.n - 500, &fit, &err) != DN_OK ||
        dn_dataset_slice(&tra, tra.n - 500, 500, &val, &err) != DN_OK ||
        dn_net_parse(SMALL_NET, "small", 7, &net, &err) != DN_OK) {
        print_error("setup: %s\n", err.msg);
        return -1;
    }
    dn_train_params p = dn_train_default_params();
    p.epochs = 4;
    p.batch_size = 32;
    p.seed = 7;
    probs = malloc(sizeof(float) * DN_N_CLASSES * (size_t)tes.n);
    if (!probs || dn_train(net, &fit, &val, &p, &err) != DN_OK || dn_net_evaluate(net, &tes, &metrics, probs, &err) != DN_OK) {
        print_error("setup: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(probs);
    dn_net_free(net);
    dn_dataset_free(&tra);
    dn_dataset_free(&tes);
    dn_dataset_free(&fit);
    dn_dataset_free(&val);
    /* cairo keeps font faces (and fontconfig patterns) cached for the life of the process; release
     * them so that LeakSanitizer sees only what digitnet itself allocated. */
    cairo_debug_reset_static_data();
    return 0;
}

/* ---------------------------------------------------------------- reading pictures back */

typedef struct rgb8 {
    int r, g, b;
} rgb8;

static const char *out_path(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ & 3];
    snprintf(p, sizeof paths[0], "%s/%s", dn_test_dir(), name);
    return p;
}

/* Loads a PNG and checks its size; fails the test if it is not a PNG of that size. */
static cairo_surface_t *load_png(const char *path, int width, int height)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    if (cairo_surface_status(s) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(s);
        fail_msg("%s: not a readable PNG", path);
    }
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    if (w != width || h != height) {
        cairo_surface_destroy(s);
        fail_msg("%s: %d x %d, expected %d x %d", path, w, h, width, height);
    }
    return s;
}

static rgb8 pixel(cairo_surface_t *s, int x, int y)
{
    const unsigned char *data = cairo_image_surface_get_data(s);
    uint32_t v = *(const uint32_t *)(const void *)(data + (size_t)y * cairo_image_surface_get_stride(s) + 4 * (size_t)x);
    return (rgb8){(int)(v >> 16 & 255), (int)(v >> 8 & 255), (int)(v & 255)};
}

static int distance(rgb8 a, rgb8 b)
{
    int d = abs(a.r - b.r), g = abs(a.g - b.g), c = abs(a.b - b.b);
    return d > g ? (d > c ? d : c) : (g > c ? g : c);
}

static rgb8 to8(dn_rgb c)
{
    return (rgb8){(int)lround(c.r * 255), (int)lround(c.g * 255), (int)lround(c.b * 255)};
}

/* Pixels in [x0, x1) x [y0, y1) within tolerance of colour. */
static long count_colour(cairo_surface_t *s, int x0, int y0, int x1, int y1, rgb8 colour, int tolerance)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += distance(pixel(s, x, y), colour) <= tolerance;
    return n;
}

/* Not blank: a real share of the picture is not white, in more than a few colours. */
static void assert_not_blank(cairo_surface_t *s)
{
    int w = cairo_image_surface_get_width(s), h = cairo_image_surface_get_height(s);
    long ink = 0;
    int distinct = 0;
    rgb8 seen[16];
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            rgb8 p = pixel(s, x, y);
            if (p.r == 255 && p.g == 255 && p.b == 255)
                continue;
            ink++;
            int known = 0;
            for (int i = 0; i < distinct && !known; i++)
                known = distance(seen[i], p) == 0;
            if (!known && distinct < 16)
                seen[distinct++] = p;
        }
    if (ink < (long)w * h / 100 || distinct < 3)
        fail_msg("the picture is blank: %ld inked pixels of %d, %d colours", ink, w * h, distinct);
}

/* Tile i of a grid of cell_w-wide cells shows row `row` of data: every source pixel's centre has
 * the grey that gray_r gives its value (ink dark on white). */
static void assert_tile_shows(cairo_surface_t *s, int i, int cols, int cell_w, const dn_dataset *d, int row)
{
    int scale = GRID_TILE / d->w;
    int ix = GRID_MARGIN + (i % cols) * cell_w + (cell_w - GRID_TILE) / 2;
    int iy = GRID_HEADER + (i / cols) * GRID_CELL_H + GRID_TILE_TOP;
    for (int r = 0; r < d->h; r++)
        for (int c = 0; c < d->w; c++) {
            double v = d->pixels[((size_t)row * d->h + r) * d->w + c] / (double)d->raw_max;
            int grey = (int)lround(255 * (1 - v));
            rgb8 got = pixel(s, ix + c * scale + scale / 2, iy + r * scale + scale / 2);
            if (distance(got, (rgb8){grey, grey, grey}) > 1)
                fail_msg("tile %d, pixel (%d, %d): grey %d %d %d, expected %d (value %.3f)", i, r, c, got.r, got.g, got.b,
                         grey, v);
        }
}

static int file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

/* No temporary file left in the test directory. */
static void assert_no_temporaries(void)
{
    DIR *dir = opendir(dn_test_dir());
    assert_non_null(dir);
    struct dirent *e;
    while ((e = readdir(dir)))
        if (strstr(e->d_name, ".tmp-")) {
            closedir(dir);
            fail_msg("temporary file left behind: %s", e->d_name);
        }
    closedir(dir);
}

/* ---------------------------------------------------------------- samples */

static void test_samples_per_class(void **state)
{
    (void)state;
    int idx[DN_N_CLASSES], again[DN_N_CLASSES], other[DN_N_CLASSES];
    assert_int_equal(dn_plot_pick_per_class(&tes, 3, idx), DN_N_CLASSES);
    assert_int_equal(dn_plot_pick_per_class(&tes, 3, again), DN_N_CLASSES);
    assert_int_equal(dn_plot_pick_per_class(&tes, 4, other), DN_N_CLASSES);
    int differs = 0;
    for (int k = 0; k < DN_N_CLASSES; k++) {
        assert_int_equal(tes.labels[idx[k]], k); /* class order */
        assert_int_equal(idx[k], again[k]);      /* the seed decides */
        differs |= idx[k] != other[k];
    }
    assert_true(differs); /* ~180 rows per class: another seed picks other rows */

    dn_error err = {0};
    const char *path = out_path("samples.png");
    assert_int_equal(dn_plot_samples(&tes, idx, DN_N_CLASSES, NULL, "per class", path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 24 + 104 * 10, 52 + 124 * 1);
    assert_not_blank(s);
    for (int k = 0; k < DN_N_CLASSES; k++)
        assert_tile_shows(s, k, 10, 104, &tes, idx[k]);
    cairo_surface_destroy(s);
}

static void test_samples_first_n(void **state)
{
    (void)state;
    int idx[24];
    for (int i = 0; i < 24; i++)
        idx[i] = i;
    dn_error err = {0};
    const char *path = out_path("first.png");
    assert_int_equal(dn_plot_samples(&tra, idx, 24, NULL, NULL, path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 24 + 104 * 10, 52 + 124 * 3); /* 10 + 10 + 4 */
    assert_not_blank(s);
    for (int i = 0; i < 24; i++)
        assert_tile_shows(s, i, 10, 104, &tra, i);
    cairo_surface_destroy(s);
}

/* ---------------------------------------------------------------- feature maps */

/* Checks every tile of a feature-map picture of `layer` against the R1 normalisation computed here
 * from the layer's output: (x - mean) / std * 64 + 128, clipped to 0..255, viridis. */
static void assert_feature_tiles(cairo_surface_t *s, const dn_net *from, const float *image, int layer, dn_shape out)
{
    dn_shape shape;
    dn_workspace *ws = NULL;
    float probs[DN_N_CLASSES];
    assert_int_equal(dn_workspace_init(from, &ws, NULL), DN_OK);
    assert_int_equal(dn_net_predict_ws(from, ws, image, 1, probs, NULL), DN_OK);
    const float *act = dn_workspace_layer_output(ws, layer, &shape); /* (h, w, c) */
    assert_non_null(act);
    assert_int_equal(shape.c, out.c);
    const int cols = out.c < 16 ? out.c : 16, scale = FEATURE_TILE / out.w, n = out.h * out.w;
    int varied = 0;
    for (int ch = 0; ch < out.c; ch++) {
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++)
            mean += act[(size_t)i * out.c + ch] / n;
        for (int i = 0; i < n; i++)
            var += (act[(size_t)i * out.c + ch] - mean) * (act[(size_t)i * out.c + ch] - mean) / n;
        double sd = sqrt(var);
        varied += sd > 1e-6;
        int x0 = FEATURE_GRID_X + (ch % cols) * FEATURE_STEP, y0 = FEATURE_TOP + (ch / cols) * FEATURE_STEP;
        for (int r = 0; r < out.h; r++)
            for (int c = 0; c < out.w; c++) {
                double v = sd > 1e-12 ? (act[(size_t)(r * out.w + c) * out.c + ch] - mean) / sd * 64 + 128 : 128;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                rgb8 want = to8(dn_colormap_viridis(v / 255));
                rgb8 got = pixel(s, x0 + c * scale + scale / 2, y0 + r * scale + scale / 2);
                if (distance(got, want) > 2)
                    fail_msg("layer %d channel %d pixel (%d, %d): %d %d %d, expected %d %d %d", layer, ch, r, c, got.r,
                             got.g, got.b, want.r, want.g, want.b);
            }
    }
    assert_true(varied > 0); /* some channel responds to the digit, so the check above meant something */
    dn_workspace_free(ws);
}

static void test_feature_maps(void **state)
{
    (void)state;
    dn_error err = {0};
    dn_net *r1 = NULL;
    assert_int_equal(dn_net_load_spec("models/optdigits.cnn", 1, &r1, &err), DN_OK);
    float image[64]; /* test row 5 */
    dn_dataset_rows(&tes, 5, 1, image);

    /* Layer 0: conv2d 16 -> 8x8x16, one row of 16 tiles. */
    const char *path = out_path("feature-conv.png");
    assert_int_equal(dn_plot_feature_map(r1, image, 0, path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 208 + 60 * 16, 64 + 150);
    assert_not_blank(s);
    assert_feature_tiles(s, r1, image, 0, (dn_shape){8, 8, 16});
    cairo_surface_destroy(s);

    /* Layer 6: conv2d 64 on 2x2 -> 4 rows of 16 tiles. */
    path = out_path("feature-conv64.png");
    assert_int_equal(dn_plot_feature_map(r1, image, 6, path, &err), DN_OK);
    s = load_png(path, 208 + 60 * 16, 64 + 60 * 4);
    assert_feature_tiles(s, r1, image, 6, (dn_shape){2, 2, 64});
    cairo_surface_destroy(s);

    /* A flat layer has nothing to draw, and leaves no file. */
    path = out_path("feature-flat.png");
    assert_int_equal(dn_plot_feature_map(r1, image, 9, path, &err), DN_EARG);
    assert_false(file_exists(path));
    assert_int_equal(dn_plot_feature_map(r1, image, 99, path, &err), DN_EARG);

    /* Every conv2d and maxpool layer: 1, 2, 4, 5, 7, 8 (1-based). */
    int written = -1;
    assert_int_equal(dn_plot_feature_maps(r1, image, dn_test_dir(), &written, &err), DN_OK);
    assert_int_equal(written, 6);
    static const char *names[] = {"features-01-conv2d.png", "features-02-maxpool.png", "features-04-conv2d.png",
                                  "features-05-maxpool.png", "features-07-conv2d.png", "features-08-maxpool.png"};
    for (int i = 0; i < 6; i++)
        assert_true(file_exists(out_path(names[i])));
    s = load_png(out_path("features-02-maxpool.png"), 208 + 60 * 16, 64 + 150);
    assert_feature_tiles(s, r1, image, 1, (dn_shape){4, 4, 16});
    cairo_surface_destroy(s);
    assert_false(file_exists(out_path("features-03-dropout.png")));
    dn_net_free(r1);
}

/* ---------------------------------------------------------------- curves */

static void test_history(void **state)
{
    (void)state;
    int n = 0;
    const dn_epoch_stats *h = dn_net_history(net, &n);
    assert_int_equal(n, 4);
    assert_true(isfinite(h[0].val_loss));
    dn_error err = {0};
    const char *path = out_path("curves.png");
    assert_int_equal(dn_plot_history(h, n, path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 1000, 420);
    assert_not_blank(s);
    rgb8 train = to8(dn_palette(0)), valid = to8(dn_palette(1));
    /* Both series in both panels (loss left of x = 500, accuracy right of it). */
    assert_true(count_colour(s, 0, 0, 500, 420, train, 10) > 100);
    assert_true(count_colour(s, 0, 0, 500, 420, valid, 10) > 100);
    assert_true(count_colour(s, 500, 0, 1000, 420, train, 10) > 100);
    assert_true(count_colour(s, 500, 0, 1000, 420, valid, 10) > 100);
    cairo_surface_destroy(s);

    /* Without validation figures only the training series is drawn. */
    dn_epoch_stats copy[4];
    memcpy(copy, h, sizeof copy);
    for (int i = 0; i < 4; i++)
        copy[i].val_loss = copy[i].val_accuracy = NAN;
    path = out_path("curves-train-only.png");
    assert_int_equal(dn_plot_history(copy, 4, path, &err), DN_OK);
    s = load_png(path, 1000, 420);
    assert_true(count_colour(s, 0, 0, 1000, 420, train, 10) > 200);
    assert_int_equal(count_colour(s, 0, 0, 1000, 420, valid, 10), 0);
    cairo_surface_destroy(s);
}

static void test_cv(void **state)
{
    (void)state;
    /* Five real "folds": the trained net's loss and accuracy on five slices of the test rows. */
    double loss[5], acc[5];
    dn_error err = {0};
    for (int k = 0; k < 5; k++) {
        dn_dataset part = {0};
        dn_metrics m;
        int size = tes.n / 5;
        assert_int_equal(dn_dataset_slice(&tes, k * size, size, &part, &err), DN_OK);
        assert_int_equal(dn_net_evaluate(net, &part, &m, NULL, &err), DN_OK);
        loss[k] = m.loss;
        acc[k] = m.accuracy;
        dn_dataset_free(&part);
    }
    const char *path = out_path("cv.png");
    assert_int_equal(dn_plot_cv(loss, acc, 5, path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 1000, 420);
    assert_not_blank(s);
    rgb8 mean_line = to8(dn_palette(3));
    assert_true(count_colour(s, 82, 52, 458, 348, to8(dn_palette(0)), 10) > 100);  /* loss folds */
    assert_true(count_colour(s, 592, 52, 968, 348, to8(dn_palette(2)), 10) > 100); /* accuracy folds */
    /* The means: along the row holding most of the mean colour, a dashed line across the panel,
     * so more than half the width but with gaps (a solid line would cover all 340 pixels). */
    for (int panel = 0; panel < 2; panel++) {
        int x0 = panel ? 610 : 100;
        long best = 0;
        for (int y = 52; y < 348; y++) {
            long c = count_colour(s, x0, y, x0 + 340, y + 1, mean_line, 30);
            best = c > best ? c : best;
        }
        if (!(best > 170 && best < 300))
            fail_msg("panel %d: the mean line's best row has %ld of 340 pixels", panel, best);
    }
    cairo_surface_destroy(s);
}

/* ---------------------------------------------------------------- confusion */

/* The count a colour stands for, read off the colour bar: the range of values of the bar rows
 * closest to the colour. */
static void read_bar(cairo_surface_t *s, const dn_plot_heatmap_layout *g, rgb8 colour, double *lo, double *hi)
{
    int best = 1 << 30;
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (int r = 0; r < g->bar_h; r++) {
            int d = distance(pixel(s, g->bar_x + g->bar_w / 2, g->bar_y + r), colour);
            double value = (double)(g->bar_h - 1 - r) / (g->bar_h - 1) * g->max_count;
            if (pass == 0 && d < best)
                best = d;
            if (pass == 1 && d == best) {
                *lo = value < *lo ? value : *lo;
                *hi = value > *hi ? value : *hi;
            }
        }
    assert_true(best <= 2); /* the cell's colour is on the bar */
}

static void test_confusion(void **state)
{
    (void)state;
    dn_error err = {0};
    const char *path = out_path("confusion.png");
    dn_plot_heatmap_layout g;
    assert_int_equal(dn_plot_confusion(&metrics, path, &g, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 640, 580);
    assert_not_blank(s);
    long max = 0, total = 0;
    for (int t = 0; t < DN_N_CLASSES; t++)
        for (int p = 0; p < DN_N_CLASSES; p++) {
            max = metrics.confusion[t][p] > max ? metrics.confusion[t][p] : max;
            total += metrics.confusion[t][p];
        }
    assert_int_equal(total, tes.n);
    assert_int_equal(g.max_count, max);
    assert_true(g.x > 0 && g.y > 0 && g.x + 10 * g.cell < g.bar_x && g.bar_x + g.bar_w < 640 && g.y + 10 * g.cell < 580);
    const double tolerance = 1.5 * (double)max / (g.bar_h - 1);
    int off_diagonal_nonzero = 0;
    for (int t = 0; t < DN_N_CLASSES; t++)
        for (int p = 0; p < DN_N_CLASSES; p++) {
            long count = metrics.confusion[t][p];
            off_diagonal_nonzero += t != p && count > 0;
            int x = g.x + p * g.cell, y = g.y + t * g.cell;
            rgb8 fill = pixel(s, x + 3, y + 3); /* a corner: away from the number */
            double lo, hi;
            read_bar(s, &g, fill, &lo, &hi);
            if (count < lo - tolerance || count > hi + tolerance)
                fail_msg("cell (%d, %d) holds %ld but its colour reads %.1f..%.1f on the colour bar", t, p, count, lo, hi);
            /* A number is written in every cell, zeros too: its middle has pixels far from the fill. */
            long text = 0;
            for (int yy = y + g.cell / 2 - 7; yy <= y + g.cell / 2 + 7; yy++)
                for (int xx = x + g.cell / 2 - 12; xx <= x + g.cell / 2 + 12; xx++)
                    text += distance(pixel(s, xx, yy), fill) > 80;
            if (text < 5)
                fail_msg("cell (%d, %d): no number written in it", t, p);
            /* Colour ordering: a larger count is never lighter than a smaller one (Blues). */
            for (int t2 = 0; t2 < DN_N_CLASSES; t2++)
                for (int p2 = 0; p2 < DN_N_CLASSES; p2++) {
                    if (metrics.confusion[t2][p2] <= count)
                        continue;
                    rgb8 other = pixel(s, g.x + p2 * g.cell + 3, g.y + t2 * g.cell + 3);
                    assert_true(other.r + other.g + other.b <= fill.r + fill.g + fill.b);
                }
        }
    assert_true(off_diagonal_nonzero > 0); /* the trained net makes mistakes, so the check saw several shades */
    cairo_surface_destroy(s);
}

static void test_confusion_svg(void **state)
{
    (void)state;
    dn_error err = {0};
    const char *path = out_path("confusion.svg");
    assert_int_equal(dn_plot_confusion(&metrics, path, NULL, &err), DN_OK);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char head[512] = {0};
    size_t got = fread(head, 1, sizeof head - 1, f);
    fclose(f);
    assert_true(got > 100);
    assert_memory_equal(head, "<?xml", 5);
    assert_non_null(strstr(head, "<svg"));
    assert_non_null(strstr(head, "width=\"640"));
    assert_no_temporaries();
}

/* ---------------------------------------------------------------- ROC */

static void test_roc(void **state)
{
    (void)state;
    dn_error err = {0};
    const char *path = out_path("roc.png");
    assert_int_equal(dn_plot_roc(probs, tes.labels, tes.n, &metrics, path, &err), DN_OK);
    cairo_surface_t *s = load_png(path, 760, 600);
    assert_not_blank(s);
    /* Each class's colour appears (curve and legend), and curves run in the upper-left half of the
     * plot: a useful classifier is above the diagonal. */
    for (int k = 0; k < DN_N_CLASSES; k++)
        assert_true(count_colour(s, 80, 50, 720, 530, to8(dn_palette(k)), 8) > 40);
    long above = 0, below = 0;
    for (int y = 52; y < 528; y++)
        for (int x = 82; x < 718; x++) {
            rgb8 p = pixel(s, x, y);
            int coloured = abs(p.r - p.g) > 40 || abs(p.g - p.b) > 40 || abs(p.r - p.b) > 40;
            if (!coloured)
                continue;
            /* The diagonal runs from (80, 530) to (720, 50). */
            double diag_y = 530 - (x - 80) * 480.0 / 640;
            if (y < diag_y)
                above++;
            else if (x < 520) /* the legend sits bottom-right */
                below++;
        }
    assert_true(above > 10 * below);

    /* A class with no positives is listed, not drawn; the call still succeeds. */
    uint8_t *ones = malloc((size_t)tes.n);
    assert_non_null(ones);
    for (int i = 0; i < tes.n; i++)
        ones[i] = tes.labels[i] == 0 ? 1 : tes.labels[i];
    path = out_path("roc-no-zero.png");
    assert_int_equal(dn_plot_roc(probs, ones, tes.n, NULL, path, &err), DN_OK);
    free(ones);
    cairo_surface_destroy(s);
    s = load_png(path, 760, 600);
    assert_not_blank(s);
    cairo_surface_destroy(s);
}

/* ---------------------------------------------------------------- mistakes */

static int predicted(int row)
{
    const float *p = probs + (size_t)row * DN_N_CLASSES;
    int best = 0;
    for (int k = 1; k < DN_N_CLASSES; k++)
        if (p[k] > p[best])
            best = k;
    return best;
}

static void test_mistakes(void **state)
{
    (void)state;
    int wrong = 0, most = -1;
    for (int i = 0; i < tes.n; i++)
        if (predicted(i) != tes.labels[i]) {
            wrong++;
            if (most < 0 || probs[(size_t)i * DN_N_CLASSES + predicted(i)] > probs[(size_t)most * DN_N_CLASSES + predicted(most)])
                most = i;
        }
    assert_true(wrong > 12); /* four epochs of a small net: enough mistakes to fill the grid */
    dn_error err = {0};
    int n_wrong = -1;
    const char *path = out_path("mistakes.png");
    assert_int_equal(dn_plot_mistakes(&tes, probs, 12, path, &n_wrong, &err), DN_OK);
    assert_int_equal(n_wrong, wrong);
    cairo_surface_t *s = load_png(path, 24 + 200 * 5, 52 + 124 * 3);
    assert_not_blank(s);
    assert_tile_shows(s, 0, 5, 200, &tes, most); /* the most confident mistake comes first */
    cairo_surface_destroy(s);

    /* Only rows the net gets right: no mistakes, and the picture says so in one cell. */
    int *right = malloc(sizeof(int) * (size_t)tes.n), n_right = 0;
    assert_non_null(right);
    float *right_probs = malloc(sizeof(float) * DN_N_CLASSES * (size_t)tes.n);
    assert_non_null(right_probs);
    for (int i = 0; i < tes.n; i++)
        if (predicted(i) == tes.labels[i]) {
            memcpy(right_probs + (size_t)n_right * DN_N_CLASSES, probs + (size_t)i * DN_N_CLASSES,
                   sizeof(float) * DN_N_CLASSES);
            right[n_right++] = i;
        }
    dn_dataset good = {0};
    assert_int_equal(dn_dataset_take(&tes, right, n_right, &good, &err), DN_OK);
    path = out_path("no-mistakes.png");
    assert_int_equal(dn_plot_mistakes(&good, right_probs, 12, path, &n_wrong, &err), DN_OK);
    assert_int_equal(n_wrong, 0);
    s = load_png(path, 24 + 200, 52 + 124);
    assert_not_blank(s);
    cairo_surface_destroy(s);
    dn_dataset_free(&good);
    free(right);
    free(right_probs);
}

/* ---------------------------------------------------------------- errors */

static void test_errors(void **state)
{
    (void)state;
    dn_error err = {0};
    int idx[2] = {0, tes.n}; /* the second is one past the end */
    const char *path = out_path("never.png");
    assert_int_equal(dn_plot_samples(&tes, idx, 0, NULL, NULL, path, &err), DN_EARG);
    assert_int_equal(dn_plot_samples(&tes, idx, 2, NULL, NULL, path, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "outside"));
    assert_int_equal(dn_plot_samples(&tes, idx, DN_PLOT_MAX_IMAGES + 1, NULL, NULL, path, &err), DN_EARG);
    assert_int_equal(dn_plot_history(NULL, 0, path, &err), DN_EARG);
    assert_int_equal(dn_plot_cv(NULL, NULL, 0, path, &err), DN_EARG);
    assert_int_equal(dn_plot_confusion(NULL, path, NULL, &err), DN_EARG);
    assert_int_equal(dn_plot_roc(probs, tes.labels, 0, NULL, path, &err), DN_EARG);
    assert_int_equal(dn_plot_mistakes(&tes, probs, 0, path, NULL, &err), DN_EARG);
    assert_int_equal(dn_plot_mistakes(&tes, NULL, 5, path, NULL, &err), DN_EARG);
    assert_false(file_exists(path));

    /* A directory that does not exist: an I/O error naming the path. */
    char missing[512];
    snprintf(missing, sizeof missing, "%s/no-such-dir/confusion.png", dn_test_dir());
    assert_int_equal(dn_plot_confusion(&metrics, missing, NULL, &err), DN_EIO);
    assert_int_equal(err.status, DN_EIO);
    assert_non_null(strstr(err.msg, "no-such-dir"));

    /* A failed call leaves an existing file as it was. */
    path = dn_test_write_file("keep.png", "old", 3);
    assert_non_null(path);
    assert_int_equal(dn_plot_samples(&tes, idx, 2, NULL, NULL, path, &err), DN_EARG);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[8] = {0};
    assert_int_equal(fread(buf, 1, sizeof buf, f), 3);
    fclose(f);
    assert_string_equal(buf, "old");
    assert_no_temporaries();
}

/* fontconfig, which cairo uses to find fonts, keeps its configuration until FcFini(), which
 * digitnet does not link against; LeakSanitizer (make asan-test) reads this hook and ignores
 * allocations made inside fontconfig. Anything allocated by digitnet is still reported. */
const char *__lsan_default_suppressions(void);
__attribute__((used)) const char *__lsan_default_suppressions(void)
{
    return "leak:libfontconfig.so\n";
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_samples_per_class),
        cmocka_unit_test(test_samples_first_n),
        cmocka_unit_test(test_feature_maps),
        cmocka_unit_test(test_history),
        cmocka_unit_test(test_cv),
        cmocka_unit_test(test_confusion),
        cmocka_unit_test(test_confusion_svg),
        cmocka_unit_test(test_roc),
        cmocka_unit_test(test_mistakes),
        cmocka_unit_test(test_errors),
    };
    return dn_test_finish(cmocka_run_group_tests(tests, setup, teardown));
}

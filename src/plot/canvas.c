/* The canvas (PNG or SVG, written through a temporary file), text, axes, legends, colour maps and
 * image tiles that every picture is drawn with. */
#include "plot/plot.h"

#include <cairo-svg.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define FONT "DejaVu Sans"
static const dn_rgb INK = {0.15, 0.15, 0.15};
static const dn_rgb GRID = {0.90, 0.90, 0.90};

/* ---------------------------------------------------------------- canvas */

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int length)
{
    dn_canvas *cv = closure;
    if (cv->write_failed || fwrite(data, 1, length, cv->file.file) != length) {
        cv->write_failed = 1;
        return CAIRO_STATUS_WRITE_ERROR;
    }
    return CAIRO_STATUS_SUCCESS;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

dn_status dn_canvas_open(dn_canvas *cv, const char *path, int width, int height, dn_error *err)
{
    memset(cv, 0, sizeof *cv);
    if (!path || !*path)
        return dn_fail(err, DN_EARG, "plot: no output path");
    if (width < 1 || height < 1 || width > 16384 || height > 16384)
        return dn_fail(err, DN_ELIMIT, "%s: a %d x %d picture is beyond the 16384-pixel limit", path, width, height);
    cv->width = width;
    cv->height = height;
    cv->svg = ends_with(path, ".svg") || ends_with(path, ".SVG");
    /* Both kinds go through a temporary file; for PNG it is opened now so that the path is known to be
     * writable before any drawing. */
    dn_status st = dn_atomic_open(&cv->file, path, err);
    if (st != DN_OK)
        return st;
    if (cv->svg)
        cv->surface = cairo_svg_surface_create_for_stream(write_stream, cv, width, height);
    else
        cv->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    if (cairo_surface_status(cv->surface) != CAIRO_STATUS_SUCCESS) {
        cairo_status_t cs = cairo_surface_status(cv->surface);
        dn_canvas_discard(cv);
        return dn_fail(err, cs == CAIRO_STATUS_NO_MEMORY ? DN_ENOMEM : DN_EIO, "%s: cannot create the picture: %s",
                       path, cairo_status_to_string(cs));
    }
    cv->cr = cairo_create(cv->surface);
    if (cairo_status(cv->cr) != CAIRO_STATUS_SUCCESS) {
        dn_canvas_discard(cv);
        return dn_fail(err, DN_ENOMEM, "%s: out of memory for the picture", path);
    }
    cairo_set_source_rgb(cv->cr, 1, 1, 1);
    cairo_paint(cv->cr);
    cairo_select_font_face(cv->cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return DN_OK;
}

void dn_canvas_discard(dn_canvas *cv)
{
    if (cv->cr)
        cairo_destroy(cv->cr);
    if (cv->surface) {
        /* An SVG surface writes on finish; the temporary file is about to go anyway. */
        cv->write_failed = 1;
        cairo_surface_destroy(cv->surface);
    }
    cv->cr = NULL;
    cv->surface = NULL;
    if (cv->file.file)
        dn_atomic_abort(&cv->file, NULL, "discarded");
}

dn_status dn_canvas_close(dn_canvas *cv, dn_error *err)
{
    cairo_status_t cs = cairo_status(cv->cr);
    cairo_destroy(cv->cr);
    cv->cr = NULL;
    if (cs == CAIRO_STATUS_SUCCESS) {
        if (cv->svg) {
            cairo_surface_finish(cv->surface);
            cs = cairo_surface_status(cv->surface);
        } else {
            cairo_surface_flush(cv->surface);
            cs = cairo_surface_write_to_png_stream(cv->surface, write_stream, cv);
        }
    }
    cairo_surface_destroy(cv->surface);
    cv->surface = NULL;
    if (cs != CAIRO_STATUS_SUCCESS || cv->write_failed) {
        const char *why = cv->write_failed ? "write failed" : cairo_status_to_string(cs);
        dn_atomic_abort(&cv->file, err, why);
        if (cs == CAIRO_STATUS_NO_MEMORY && err)
            err->status = DN_ENOMEM;
        return cs == CAIRO_STATUS_NO_MEMORY ? DN_ENOMEM : DN_EIO;
    }
    return dn_atomic_commit(&cv->file, err);
}

/* ---------------------------------------------------------------- text */

static void set_font(cairo_t *cr, double size, int bold)
{
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
}

double dn_text_width(cairo_t *cr, const char *text, double size, int bold)
{
    cairo_text_extents_t te;
    set_font(cr, size, bold);
    cairo_text_extents(cr, text, &te);
    return te.x_advance;
}

void dn_draw_text(cairo_t *cr, double x, double y, const char *text, double size, int bold, double ax, double ay,
                  double angle, dn_rgb colour)
{
    cairo_text_extents_t te;
    cairo_font_extents_t fe;
    set_font(cr, size, bold);
    cairo_text_extents(cr, text, &te);
    cairo_font_extents(cr, &fe);
    /* Anchor on the font's ascent and descent rather than the ink, so that a row of labels shares
     * one baseline whatever letters they hold. */
    double height = fe.ascent + fe.descent;
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, angle);
    cairo_move_to(cr, -ax * te.x_advance, -ay * height + fe.ascent);
    cairo_set_source_rgb(cr, colour.r, colour.g, colour.b);
    cairo_show_text(cr, text);
    cairo_restore(cr);
}

/* ---------------------------------------------------------------- axes */

double dn_nice_range(double *lo, double *hi, int n_ticks)
{
    if (!isfinite(*lo) || !isfinite(*hi)) {
        *lo = 0;
        *hi = 1;
    }
    if (*hi < *lo) {
        double t = *lo;
        *lo = *hi;
        *hi = t;
    }
    if (*hi - *lo < 1e-12) {
        double pad = fabs(*lo) > 1e-12 ? fabs(*lo) * 0.05 : 0.5;
        *lo -= pad;
        *hi += pad;
    }
    double raw = (*hi - *lo) / (n_ticks > 1 ? n_ticks : 1);
    double mag = pow(10, floor(log10(raw)));
    double f = raw / mag, step = f <= 1 ? mag : f <= 2 ? 2 * mag : f <= 5 ? 5 * mag : 10 * mag;
    *lo = floor(*lo / step + 1e-9) * step;
    *hi = ceil(*hi / step - 1e-9) * step;
    return step;
}

double dn_axes_px(const dn_axes *a, double x)
{
    return a->x + (x - a->x0) / (a->x1 - a->x0) * a->w;
}

double dn_axes_py(const dn_axes *a, double y)
{
    return a->y + a->h - (y - a->y0) / (a->y1 - a->y0) * a->h;
}

/* Decimals that show a tick step exactly: 0.05 -> 2, 5 -> 0. */
static int step_decimals(double step)
{
    int d = (int)ceil(-log10(step) - 1e-9);
    return d < 0 ? 0 : d > 8 ? 8 : d;
}

static double tick_step(double range, int n_ticks, int integer)
{
    double lo = 0, hi = range;
    double step = dn_nice_range(&lo, &hi, n_ticks);
    return integer && step < 1 ? 1 : step;
}

void dn_axes_draw(cairo_t *cr, dn_axes *a, const char *title, const char *x_label, const char *y_label, int integer_x)
{
    char buf[64];
    a->x_step = tick_step(a->x1 - a->x0, a->w > 300 ? 8 : 5, integer_x);
    a->y_step = tick_step(a->y1 - a->y0, 6, 0);
    int xd = step_decimals(a->x_step), yd = step_decimals(a->y_step);
    cairo_set_line_width(cr, 1);
    /* Grid and ticks. Lines sit on half pixels so that a 1-pixel line stays sharp. */
    for (double v = ceil(a->y0 / a->y_step - 1e-9) * a->y_step; v <= a->y1 + 1e-9 * a->y_step; v += a->y_step) {
        double py = floor(dn_axes_py(a, v)) + 0.5;
        cairo_set_source_rgb(cr, GRID.r, GRID.g, GRID.b);
        cairo_move_to(cr, a->x, py);
        cairo_line_to(cr, a->x + a->w, py);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, INK.r, INK.g, INK.b);
        cairo_move_to(cr, a->x - 5, py);
        cairo_line_to(cr, a->x, py);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.*f", yd, fabs(v) < 1e-12 ? 0.0 : v);
        dn_draw_text(cr, a->x - 8, py, buf, 11, 0, 1, 0.5, 0, INK);
    }
    for (double v = ceil(a->x0 / a->x_step - 1e-9) * a->x_step; v <= a->x1 + 1e-9 * a->x_step; v += a->x_step) {
        double px = floor(dn_axes_px(a, v)) + 0.5;
        cairo_set_source_rgb(cr, GRID.r, GRID.g, GRID.b);
        cairo_move_to(cr, px, a->y);
        cairo_line_to(cr, px, a->y + a->h);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, INK.r, INK.g, INK.b);
        cairo_move_to(cr, px, a->y + a->h);
        cairo_line_to(cr, px, a->y + a->h + 5);
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.*f", xd, fabs(v) < 1e-12 ? 0.0 : v);
        dn_draw_text(cr, px, a->y + a->h + 8, buf, 11, 0, 0.5, 0, 0, INK);
    }
    cairo_set_source_rgb(cr, INK.r, INK.g, INK.b);
    cairo_rectangle(cr, floor(a->x) + 0.5, floor(a->y) + 0.5, floor(a->w), floor(a->h));
    cairo_stroke(cr);
    if (title)
        dn_draw_text(cr, a->x + a->w / 2, a->y - 12, title, 15, 1, 0.5, 1, 0, INK);
    if (x_label)
        dn_draw_text(cr, a->x + a->w / 2, a->y + a->h + 28, x_label, 13, 0, 0.5, 0, 0, INK);
    if (y_label)
        dn_draw_text(cr, a->x - 52, a->y + a->h / 2, y_label, 13, 0, 0.5, 1, -M_PI / 2, INK);
}

void dn_axes_series(cairo_t *cr, const dn_axes *a, const double *xs, const double *ys, int n, dn_rgb colour,
                    double line_width, int dashed, double marker)
{
    static const double dash[] = {7, 4};
    cairo_save(cr);
    cairo_rectangle(cr, a->x, a->y, a->w, a->h);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, colour.r, colour.g, colour.b);
    cairo_set_line_width(cr, line_width);
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_dash(cr, dash, dashed ? 2 : 0, 0);
    int pen_down = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(xs[i]) || !isfinite(ys[i])) {
            pen_down = 0;
            continue;
        }
        double px = dn_axes_px(a, xs[i]), py = dn_axes_py(a, ys[i]);
        if (pen_down)
            cairo_line_to(cr, px, py);
        else
            cairo_move_to(cr, px, py);
        pen_down = 1;
    }
    cairo_stroke(cr);
    cairo_set_dash(cr, dash, 0, 0);
    for (int i = 0; marker > 0 && i < n; i++) {
        if (!isfinite(xs[i]) || !isfinite(ys[i]))
            continue;
        cairo_new_sub_path(cr);
        cairo_arc(cr, dn_axes_px(a, xs[i]), dn_axes_py(a, ys[i]), marker, 0, 2 * M_PI);
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

void dn_legend_draw(cairo_t *cr, const dn_axes *a, const dn_legend_entry *entries, int n, int corner)
{
    static const double dash[] = {7, 4};
    const double size = 12, row = 19, sample = 26, pad = 8;
    double text_w = 0;
    for (int i = 0; i < n; i++) {
        double w = dn_text_width(cr, entries[i].label, size, 0);
        text_w = w > text_w ? w : text_w;
    }
    double box_w = pad + sample + 6 + text_w + pad, box_h = pad + n * row + pad - 4;
    double bx = (corner & 1) ? a->x + a->w - box_w - 10 : a->x + 10;
    double by = (corner & 2) ? a->y + a->h - box_h - 10 : a->y + 10;
    cairo_save(cr);
    cairo_rectangle(cr, floor(bx) + 0.5, floor(by) + 0.5, floor(box_w), floor(box_h));
    cairo_set_source_rgba(cr, 1, 1, 1, 0.9);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.75, 0.75, 0.75);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    for (int i = 0; i < n; i++) {
        double cy = by + pad + row * i + row / 2 - 2;
        const dn_legend_entry *e = &entries[i];
        if (!e->no_line) {
            cairo_set_source_rgb(cr, e->colour.r, e->colour.g, e->colour.b);
            cairo_set_line_width(cr, 2.5);
            cairo_set_dash(cr, dash, e->dashed ? 2 : 0, 0);
            cairo_move_to(cr, bx + pad, cy);
            cairo_line_to(cr, bx + pad + sample, cy);
            cairo_stroke(cr);
            cairo_set_dash(cr, dash, 0, 0);
        }
        dn_draw_text(cr, bx + pad + sample + 6, cy, e->label, size, 0, 0, 0.5, 0, INK);
    }
    cairo_restore(cr);
}

/* ---------------------------------------------------------------- colours */

dn_rgb dn_palette(int i)
{
    static const unsigned tab10[10] = {0x1f77b4, 0xff7f0e, 0x2ca02c, 0xd62728, 0x9467bd,
                                       0x8c564b, 0xe377c2, 0x7f7f7f, 0xbcbd22, 0x17becf};
    unsigned c = tab10[((i % 10) + 10) % 10];
    return (dn_rgb){((c >> 16) & 255) / 255.0, ((c >> 8) & 255) / 255.0, (c & 255) / 255.0};
}

/* Piecewise-linear interpolation between n equally spaced colours. */
static dn_rgb ramp(const unsigned *stops, int n, double t)
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    double f = t * (n - 1);
    int i = (int)f;
    if (i >= n - 1)
        i = n - 2;
    double u = f - i;
    unsigned a = stops[i], b = stops[i + 1];
    double ar = (a >> 16) & 255, ag = (a >> 8) & 255, ab = a & 255;
    double br = (b >> 16) & 255, bg = (b >> 8) & 255, bb = b & 255;
    return (dn_rgb){(ar + (br - ar) * u) / 255.0, (ag + (bg - ag) * u) / 255.0, (ab + (bb - ab) * u) / 255.0};
}

dn_rgb dn_colormap_blues(double t)
{
    /* matplotlib's "Blues" (ColorBrewer), light to dark. */
    static const unsigned stops[] = {0xf7fbff, 0xdeebf7, 0xc6dbef, 0x9ecae1, 0x6baed6,
                                     0x4292c6, 0x2171b5, 0x08519c, 0x08306b};
    return ramp(stops, 9, t);
}

dn_rgb dn_colormap_viridis(double t)
{
    static const unsigned stops[] = {0x440154, 0x482878, 0x3e4989, 0x31688e, 0x26828e,
                                     0x1f9e89, 0x35b779, 0x6ece58, 0xb5de2b, 0xfde725};
    return ramp(stops, 10, t);
}

dn_rgb dn_colormap_gray_r(double t)
{
    if (!(t > 0))
        t = 0;
    if (t > 1)
        t = 1;
    return (dn_rgb){1 - t, 1 - t, 1 - t};
}

/* ---------------------------------------------------------------- images */

dn_status dn_draw_image(cairo_t *cr, const float *image, int h, int w, int c, int channel, double lo, double hi,
                        dn_rgb (*map)(double), double x, double y, double size, dn_error *err)
{
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return dn_fail(err, DN_ENOMEM, "plot: out of memory for a %dx%d image", w, h);
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    double range = hi - lo > 0 ? hi - lo : 1;
    for (int r = 0; r < h; r++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)r * stride);
        for (int col = 0; col < w; col++) {
            dn_rgb k = map((image[((size_t)r * w + col) * c + channel] - lo) / range);
            row[col] = (uint32_t)lround(k.r * 255) << 16 | (uint32_t)lround(k.g * 255) << 8 | (uint32_t)lround(k.b * 255);
        }
    }
    cairo_surface_mark_dirty(img);
    double scale = size / (h > w ? h : w);
    cairo_save(cr);
    cairo_translate(cr, x + (size - w * scale) / 2, y + (size - h * scale) / 2);
    cairo_scale(cr, scale, scale);
    cairo_set_source_surface(cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
    cairo_rectangle(cr, 0, 0, w, h);
    cairo_fill(cr);
    cairo_restore(cr);
    cairo_surface_destroy(img);
    return DN_OK;
}

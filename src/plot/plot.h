/* Shared pieces of the plotting files: a canvas that ends up as an atomically written PNG or SVG,
 * text, axes with ticks, legends, colour maps and image tiles. Everything is drawn with cairo. */
#ifndef DN_PLOT_H
#define DN_PLOT_H

#include "internal.h"
#include "util/atomic_file.h"

#include <cairo.h>

typedef struct dn_rgb {
    double r, g, b;
} dn_rgb;

/* One picture being drawn. PNG: an image surface written out at the end. SVG: a stream surface
 * writing into the temporary file as it goes. */
typedef struct dn_canvas {
    cairo_surface_t *surface;
    cairo_t *cr;
    int width, height;
    int svg;
    int write_failed;   /* set by the stream callback */
    dn_atomic_file file; /* SVG: open from the start; PNG: opened at the end */
} dn_canvas;

/* Starts a white width x height picture for path (SVG when path ends in ".svg"). On failure
 * nothing is left open. */
dn_status dn_canvas_open(dn_canvas *cv, const char *path, int width, int height, dn_error *err);
/* Finishes the picture, writes it and renames it into place; frees the canvas either way. */
dn_status dn_canvas_close(dn_canvas *cv, dn_error *err);
/* Drops the picture and the temporary file (error paths). */
void dn_canvas_discard(dn_canvas *cv);

/* Text anchored at (x, y): ax 0 = left edge, 0.5 = centre, 1 = right edge; ay 0 = top, 0.5 =
 * middle, 1 = bottom. angle in radians (counter-clockwise is negative, as cairo rotates). */
void dn_draw_text(cairo_t *cr, double x, double y, const char *text, double size, int bold, double ax,
                  double ay, double angle, dn_rgb colour);
/* Width in pixels of text at the given size. */
double dn_text_width(cairo_t *cr, const char *text, double size, int bold);

/* A plotting area in pixels and the data range it shows. */
typedef struct dn_axes {
    double x, y, w, h;     /* pixels: top-left corner and size */
    double x0, x1, y0, y1; /* data range */
    double x_step, y_step; /* tick spacing chosen by dn_axes_draw */
} dn_axes;

/* Widens [*lo, *hi] to tick multiples ("nice" steps 1, 2, 5 x 10^k, about n_ticks of them) and
 * returns the step. A zero-width range is widened around its value first. */
double dn_nice_range(double *lo, double *hi, int n_ticks);
double dn_axes_px(const dn_axes *a, double x);
double dn_axes_py(const dn_axes *a, double y);
/* Frame, grid, ticks with labels, axis labels and title. integer_x: ticks on whole numbers only. */
void dn_axes_draw(cairo_t *cr, dn_axes *a, const char *title, const char *x_label, const char *y_label,
                  int integer_x);
/* A polyline through points whose coordinates are both finite (a gap elsewhere), clipped to the
 * axes; dashed when dashed != 0; with round markers of radius marker when marker > 0. */
void dn_axes_series(cairo_t *cr, const dn_axes *a, const double *xs, const double *ys, int n, dn_rgb colour,
                    double line_width, int dashed, double marker);

typedef struct dn_legend_entry {
    const char *label;
    dn_rgb colour;
    int dashed;
    int no_line; /* listed without a sample line (e.g. "class 3: no examples") */
} dn_legend_entry;
/* A boxed legend inside the axes; corner 0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right. */
void dn_legend_draw(cairo_t *cr, const dn_axes *a, const dn_legend_entry *entries, int n, int corner);

/* The matplotlib "tab10" colours, by index modulo 10. */
dn_rgb dn_palette(int i);
/* Colour maps for t in [0, 1] (clamped). */
dn_rgb dn_colormap_blues(double t);
dn_rgb dn_colormap_viridis(double t);
dn_rgb dn_colormap_gray_r(double t); /* 0 white, 1 black: ink on paper */

/* Draws one channel of a (h, w, c) float image scaled to fit a size x size box at (x, y), each pixel a
 * sharp square (nearest-neighbour), colour = map((value - lo) / (hi - lo)). */
dn_status dn_draw_image(cairo_t *cr, const float *image, int h, int w, int c, int channel, double lo, double hi,
                        dn_rgb (*map)(double), double x, double y, double size, dn_error *err);

#endif

/* The confusion-matrix heatmap. */
#include "plot/plot.h"

#include <math.h>
#include <stdio.h>

#define WIDTH 640
#define HEIGHT 580
#define CELL 44
#define GRID_X 90
#define GRID_Y 60
#define BAR_X (GRID_X + DN_N_CLASSES * CELL + 30)
#define BAR_W 20

static const dn_rgb INK = {0.15, 0.15, 0.15};

dn_status dn_plot_confusion(const dn_metrics *m, const char *path, dn_plot_heatmap_layout *layout, dn_error *err)
{
    if (!m)
        return dn_fail(err, DN_EARG, "dn_plot_confusion: no metrics");
    long max_count = 1;
    for (int t = 0; t < DN_N_CLASSES; t++)
        for (int p = 0; p < DN_N_CLASSES; p++) {
            if (m->confusion[t][p] < 0)
                return dn_fail(err, DN_EARG, "dn_plot_confusion: negative count %ld in cell (%d, %d)",
                               m->confusion[t][p], t, p);
            if (m->confusion[t][p] > max_count)
                max_count = m->confusion[t][p];
        }
    dn_plot_heatmap_layout g = {.x = GRID_X, .y = GRID_Y, .cell = CELL, .bar_x = BAR_X, .bar_y = GRID_Y,
                                .bar_w = BAR_W, .bar_h = DN_N_CLASSES * CELL, .max_count = max_count};
    dn_canvas cv;
    dn_status st = dn_canvas_open(&cv, path, WIDTH, HEIGHT, err);
    if (st != DN_OK)
        return st;
    cairo_t *cr = cv.cr;
    char text[32];
    dn_draw_text(cr, WIDTH / 2.0, 18, "Confusion matrix", 16, 1, 0.5, 0, 0, INK);
    for (int t = 0; t < DN_N_CLASSES; t++) {
        for (int p = 0; p < DN_N_CLASSES; p++) {
            double v = (double)m->confusion[t][p] / (double)max_count;
            dn_rgb fill = dn_colormap_blues(v);
            int x = g.x + p * g.cell, y = g.y + t * g.cell;
            cairo_rectangle(cr, x, y, g.cell, g.cell);
            cairo_set_source_rgb(cr, fill.r, fill.g, fill.b);
            cairo_fill(cr);
            snprintf(text, sizeof text, "%ld", m->confusion[t][p]);
            /* Shrink long counts to fit the cell; white on the dark half of the scale. */
            double size = 14, w = dn_text_width(cr, text, size, t == p);
            if (w > g.cell - 6)
                size *= (g.cell - 6) / w;
            dn_rgb ink = v > 0.55 ? (dn_rgb){1, 1, 1} : INK;
            dn_draw_text(cr, x + g.cell / 2.0, y + g.cell / 2.0, text, size, t == p, 0.5, 0.5, 0, ink);
        }
        snprintf(text, sizeof text, "%d", t);
        dn_draw_text(cr, g.x - 8, g.y + (t + 0.5) * g.cell, text, 12, 0, 1, 0.5, 0, INK);
        dn_draw_text(cr, g.x + (t + 0.5) * g.cell, g.y + DN_N_CLASSES * g.cell + 6, text, 12, 0, 0.5, 0, 0, INK);
    }
    cairo_set_source_rgb(cr, INK.r, INK.g, INK.b);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, g.x - 0.5, g.y - 0.5, DN_N_CLASSES * g.cell + 1, DN_N_CLASSES * g.cell + 1);
    cairo_stroke(cr);
    dn_draw_text(cr, g.x + DN_N_CLASSES * g.cell / 2.0, g.y + DN_N_CLASSES * g.cell + 26, "predicted class", 13, 0,
                 0.5, 0, 0, INK);
    dn_draw_text(cr, g.x - 34, g.y + DN_N_CLASSES * g.cell / 2.0, "true class", 13, 0, 0.5, 1, -M_PI / 2, INK);

    /* Colour bar: one pixel row per step of the scale, drawn with the same colour map as the cells,
     * so that a cell's colour can be read back as a count. */
    for (int r = 0; r < g.bar_h; r++) {
        dn_rgb k = dn_colormap_blues((double)(g.bar_h - 1 - r) / (g.bar_h - 1));
        cairo_rectangle(cr, g.bar_x, g.bar_y + r, g.bar_w, 1);
        cairo_set_source_rgb(cr, k.r, k.g, k.b);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, INK.r, INK.g, INK.b);
    cairo_rectangle(cr, g.bar_x - 0.5, g.bar_y - 0.5, g.bar_w + 1, g.bar_h + 1);
    cairo_stroke(cr);
    double lo = 0, hi = (double)max_count;
    double step = dn_nice_range(&lo, &hi, 5);
    if (step < 1)
        step = 1;
    for (double v = 0; v <= (double)max_count + 1e-9; v += step) {
        double y = g.bar_y + (g.bar_h - 1) * (1 - v / (double)max_count) + 0.5;
        cairo_move_to(cr, g.bar_x + g.bar_w, floor(y) + 0.5);
        cairo_line_to(cr, g.bar_x + g.bar_w + 4, floor(y) + 0.5);
        cairo_stroke(cr);
        snprintf(text, sizeof text, "%.0f", v);
        dn_draw_text(cr, g.bar_x + g.bar_w + 7, y, text, 11, 0, 0, 0.5, 0, INK);
    }
    if (layout)
        *layout = g;
    return dn_canvas_close(&cv, err);
}

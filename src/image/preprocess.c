/* From a picture of a digit to what the network was trained on: the steps that made MNIST (and the
 * 8x8 equivalent of UCI optdigits), applied to any grey image. See dn_preprocess in digitnet.h. */
#include "internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define WORK_SIDE 1024     /* larger images are shrunk to this first */
#define HIST_BINS 4096     /* resolution of the percentile */
#define MIN_INK 0.04f      /* departures from the background below this are never ink */
#define NOISE_SIGMAS 4.0f  /* ... nor below this many standard deviations of the border's noise */
#define MIN_CONTRAST 0.1f  /* the ink must stand this far above the background */
#define SPECK_FRACTION 0.02 /* pieces with less ink than this fraction of the largest are specks */
#define MNIST_SIDE 28
#define MNIST_BOX 20       /* the longer side of the digit in an MNIST image */
#define MNIST_CENTRE 14.0  /* where MNIST's centres of mass lie (pixel index, measured on t10k) */
#define OPT_SIDE 32        /* optdigits: 32x32 bitmaps counted in 4x4 blocks */
#define OPT_STROKE 5.0     /* pen width of the optdigits bitmaps, in pixels of 32 */

const char *dn_preprocess_name(dn_shape target)
{
    if (target.h == 28 && target.w == 28 && target.c == 1)
        return "mnist-28x28";
    if (target.h == 8 && target.w == 8 && target.c == 1)
        return "optdigits-8x8";
    return NULL;
}

/* Area-averaging resampler: every output pixel is the mean of the source area it covers, so
 * shrinking anti-aliases and a factor of 1 copies. src (sh, sw) with row stride sstride, dst (dh, dw). */
static dn_status resample(const float *src, int sw, int sh, size_t sstride, float *dst, int dw, int dh, dn_error *err)
{
    float *tmp = malloc(sizeof(float) * (size_t)sh * (size_t)dw); /* (sh, dw): rows resampled */
    if (!tmp)
        return dn_fail(err, DN_ENOMEM, "out of memory resampling an image");
    double sx = (double)sw / dw, sy = (double)sh / dh;
    for (int x = 0; x < dw; x++) {
        double a = x * sx, b = (x + 1) * sx;
        int j0 = (int)floor(a), j1 = (int)ceil(b);
        if (j1 > sw)
            j1 = sw;
        for (int y = 0; y < sh; y++) {
            const float *row = src + (size_t)y * sstride;
            double sum = 0;
            for (int j = j0; j < j1; j++)
                sum += row[j] * (fmin(b, j + 1) - fmax(a, j));
            tmp[(size_t)y * dw + x] = (float)(sum / sx);
        }
    }
    for (int y = 0; y < dh; y++) {
        double a = y * sy, b = (y + 1) * sy;
        int i0 = (int)floor(a), i1 = (int)ceil(b);
        if (i1 > sh)
            i1 = sh;
        float *out = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++)
            out[x] = 0;
        for (int i = i0; i < i1; i++) {
            float wgt = (float)((fmin(b, i + 1) - fmax(a, i)) / sy);
            const float *row = tmp + (size_t)i * dw;
            for (int x = 0; x < dw; x++)
                out[x] += wgt * row[x];
        }
    }
    free(tmp);
    return DN_OK;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The background: a quadratic surface a + b u + c v + d u^2 + e uv + f v^2 (u, v in -1..1) fitted
 * to the image's border, a frame about 2% of the smaller side thick, so that paper lit unevenly
 * (brighter on one side, darker in the corners) is still background. The fit is robust: border
 * pixels more than 3 sigma off (ink touching the edge) are left out and the fit repeated. sigma is
 * the noise of the border around the surface: 1.4826 x median absolute deviation. */
typedef struct background {
    double coef[6];
    double su, sv; /* pixel -> u, v scale */
    float sigma;
} background;

static void basis(const background *b, int x, int y, double *phi)
{
    double u = x * b->su - 1, v = y * b->sv - 1;
    phi[0] = 1, phi[1] = u, phi[2] = v, phi[3] = u * u, phi[4] = u * v, phi[5] = v * v;
}

static float background_at(const background *b, int x, int y)
{
    double phi[6], s = 0;
    basis(b, x, y, phi);
    for (int k = 0; k < 6; k++)
        s += b->coef[k] * phi[k];
    return (float)s;
}

/* Solves the 6x6 system A c = r (Gaussian elimination with partial pivoting); A is made definite by
 * a tiny ridge on the non-constant terms, so a degenerate border (a 1-pixel-wide image) still fits. */
static void solve6(double a[6][6], double r[6], double c[6])
{
    for (int k = 1; k < 6; k++)
        a[k][k] += 1e-6 * (a[0][0] + 1);
    for (int col = 0; col < 6; col++) {
        int piv = col;
        for (int row = col + 1; row < 6; row++)
            if (fabs(a[row][col]) > fabs(a[piv][col]))
                piv = row;
        for (int k = 0; k < 6; k++) {
            double t = a[col][k];
            a[col][k] = a[piv][k];
            a[piv][k] = t;
        }
        double t = r[col];
        r[col] = r[piv];
        r[piv] = t;
        for (int row = col + 1; row < 6; row++) {
            double f = a[row][col] / a[col][col];
            for (int k = col; k < 6; k++)
                a[row][k] -= f * a[col][k];
            r[row] -= f * r[col];
        }
    }
    for (int row = 5; row >= 0; row--) {
        double s = r[row];
        for (int k = row + 1; k < 6; k++)
            s -= a[row][k] * c[k];
        c[row] = s / a[row][row];
    }
}

static float median_of(float *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_float);
    return v[n / 2];
}

static dn_status fit_background(const float *g, int w, int h, background *b, dn_error *err)
{
    int t = (w < h ? w : h) / 50;
    if (t < 1)
        t = 1;
    size_t cap = 2 * (size_t)t * (size_t)w + 2 * (size_t)t * (size_t)h, n = 0;
    int *px = malloc(sizeof(int) * 2 * cap);
    float *res = malloc(sizeof(float) * cap);
    if (!px || !res) {
        free(px);
        free(res);
        return dn_fail(err, DN_ENOMEM, "out of memory");
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (y < t || y >= h - t || x < t || x >= w - t) {
                px[2 * n] = x, px[2 * n + 1] = y;
                res[n++] = g[(size_t)y * w + x];
            }
    memset(b, 0, sizeof *b);
    b->su = w > 1 ? 2.0 / (w - 1) : 0;
    b->sv = h > 1 ? 2.0 / (h - 1) : 0;
    b->coef[0] = median_of(res, n); /* start flat, at the median */
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < n; i++)
            res[i] = fabsf(g[(size_t)px[2 * i + 1] * w + px[2 * i]] - background_at(b, px[2 * i], px[2 * i + 1]));
        b->sigma = 1.4826f * median_of(res, n);
        if (round == 3)
            break;
        float keep = 3 * b->sigma > 0.02f ? 3 * b->sigma : 0.02f;
        double a[6][6] = {{0}}, r[6] = {0}, phi[6];
        for (size_t i = 0; i < n; i++) {
            int x = px[2 * i], y = px[2 * i + 1];
            float v = g[(size_t)y * w + x];
            if (fabsf(v - background_at(b, x, y)) > keep)
                continue;
            basis(b, x, y, phi);
            for (int p = 0; p < 6; p++) {
                r[p] += phi[p] * v;
                for (int q = 0; q < 6; q++)
                    a[p][q] += phi[p] * phi[q];
            }
        }
        solve6(a, r, b->coef);
    }
    free(px);
    free(res);
    return DN_OK;
}

/* Keeps the 8-connected pieces of ink (> 0) holding at least SPECK_FRACTION of the ink of the
 * largest piece; zeroes the rest. */
static dn_status drop_specks(float *ink, int w, int h, dn_error *err)
{
    size_t n = (size_t)w * (size_t)h;
    int *label = calloc(n, sizeof *label);
    size_t *stack = malloc(sizeof *stack * n);
    double *mass = NULL;
    int n_pieces = 0, cap = 0;
    dn_status st = DN_OK;
    if (!label || !stack) {
        st = dn_fail(err, DN_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t start = 0; start < n; start++) {
        if (ink[start] <= 0 || label[start])
            continue;
        if (n_pieces == cap) {
            cap = cap ? 2 * cap : 64;
            double *grown = realloc(mass, sizeof *mass * (size_t)cap);
            if (!grown) {
                st = dn_fail(err, DN_ENOMEM, "out of memory");
                goto done;
            }
            mass = grown;
        }
        int id = ++n_pieces;
        double sum = 0;
        size_t top = 0;
        stack[top++] = start;
        label[start] = id;
        while (top) {
            size_t p = stack[--top];
            sum += ink[p];
            int px = (int)(p % (size_t)w), py = (int)(p / (size_t)w);
            for (int dy = -1; dy <= 1; dy++)
                for (int dx = -1; dx <= 1; dx++) {
                    int qx = px + dx, qy = py + dy;
                    if (qx < 0 || qy < 0 || qx >= w || qy >= h)
                        continue;
                    size_t q = (size_t)qy * w + qx;
                    if (ink[q] > 0 && !label[q]) {
                        label[q] = id;
                        stack[top++] = q;
                    }
                }
        }
        mass[id - 1] = sum;
    }
    double largest = 0;
    for (int i = 0; i < n_pieces; i++)
        if (mass[i] > largest)
            largest = mass[i];
    for (size_t p = 0; p < n; p++)
        if (label[p] && mass[label[p] - 1] < SPECK_FRACTION * largest)
            ink[p] = 0;
done:
    free(label);
    free(stack);
    free(mass);
    return st;
}

/* The digit made bright on dark, 0..1, on the (h, w) image g; *found = 0 when there is none. */
static dn_status extract_ink(const float *g, int w, int h, float *ink, int *found, dn_error *err)
{
    size_t n = (size_t)w * (size_t)h;
    background bg = {{0}, 0, 0, 0};
    *found = 0;
    dn_status st = fit_background(g, w, h, &bg, err);
    if (st != DN_OK)
        return st;
    /* The departure from the background, for now in ink. */
    for (int y = 0; y < h; y++) {
        /* background_at, with the terms in v worked out once per row */
        double v = y * bg.sv - 1, *c = bg.coef;
        double a = c[0] + c[2] * v + c[5] * v * v, b = c[1] + c[4] * v;
        for (int x = 0; x < w; x++) {
            double u = x * bg.su - 1;
            ink[(size_t)y * w + x] = g[(size_t)y * w + x] - (float)(a + b * u + c[3] * u * u);
        }
    }
    float sigma = bg.sigma;
    float low = NOISE_SIGMAS * sigma > MIN_INK ? NOISE_SIGMAS * sigma : MIN_INK;
    /* Dark ink on light paper or light chalk on a dark board: the side that departs more. */
    double darker = 0, lighter = 0;
    for (size_t i = 0; i < n; i++) {
        float d = ink[i];
        if (d > low)
            lighter += d - low;
        else if (-d > low)
            darker += -d - low;
    }
    if (darker == 0 && lighter == 0)
        return DN_OK;
    float sign = darker >= lighter ? -1.0f : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float d = sign * ink[i];
        ink[i] = d > low ? d : 0.0f;
    }
    if ((st = drop_specks(ink, w, h, err)) != DN_OK)
        return st;
    /* Stretch so that the strokes' core is 1: the 98th percentile of the ink pixels, which ignores
     * a few outliers but is the full value in any clean drawing. */
    static const int bins = HIST_BINS;
    size_t *hist = calloc(bins, sizeof *hist), count = 0;
    if (!hist)
        return dn_fail(err, DN_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        if (ink[i] > 0) {
            int b = (int)(ink[i] * bins);
            hist[b < bins ? b : bins - 1]++;
            count++;
        }
    float peak = 0;
    size_t above = 0;
    for (int b = bins - 1; b >= 0 && count; b--) {
        above += hist[b];
        if (above > count / 50) {
            peak = (b + 1.0f) / bins;
            break;
        }
    }
    free(hist);
    if (count == 0 || peak < MIN_CONTRAST || peak < 2 * low)
        return DN_OK;
    for (size_t i = 0; i < n; i++) {
        float v = ink[i] > 0 ? (ink[i] - low) / (peak - low) : 0.0f;
        ink[i] = v < 1.0f ? (v > 0.0f ? v : 0.0f) : 1.0f;
    }
    *found = 1;
    return DN_OK;
}

/* Bounding box of the pixels > 0; returns 0 when there are none. */
static int bounding_box(const float *v, int w, int h, int *x0, int *y0, int *bw, int *bh)
{
    int xa = w, xb = -1, ya = h, yb = -1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            if (v[(size_t)y * w + x] > 0) {
                xa = x < xa ? x : xa;
                xb = x > xb ? x : xb;
                ya = y < ya ? y : ya;
                yb = y > yb ? y : yb;
            }
    if (xb < 0)
        return 0;
    *x0 = xa, *y0 = ya, *bw = xb - xa + 1, *bh = yb - ya + 1;
    return 1;
}

/* Scales (bw, bh) so that the longer side is `side`, at least one pixel each way. */
static void fit(int bw, int bh, int side, int *ow, int *oh)
{
    int longer = bw > bh ? bw : bh;
    *ow = (int)lround((double)bw * side / longer);
    *oh = (int)lround((double)bh * side / longer);
    *ow = *ow < 1 ? 1 : *ow;
    *oh = *oh < 1 ? 1 : *oh;
}

/* MNIST: the box scaled to 20 px on its longer side, in 28x28 with its centre of mass at (14, 14). */
static dn_status to_mnist(const float *crop, int bw, int bh, size_t stride, float *out, dn_error *err)
{
    int ow, oh;
    fit(bw, bh, MNIST_BOX, &ow, &oh);
    float box[MNIST_BOX * MNIST_BOX]; /* (oh, ow) */
    dn_status st = resample(crop, bw, bh, stride, box, ow, oh, err);
    if (st != DN_OK)
        return st;
    /* Strokes thinner than a pixel of the box come out grey; MNIST's digits all reach full ink. */
    float top = 0;
    for (int i = 0; i < ow * oh; i++)
        top = box[i] > top ? box[i] : top;
    for (int i = 0; top > 0 && i < ow * oh; i++)
        box[i] /= top;
    double sum = 0, sx = 0, sy = 0;
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++) {
            double v = box[y * ow + x];
            sum += v, sx += v * x, sy += v * y;
        }
    /* Integer shifts, as MNIST's were: a sub-pixel shift would blur. */
    long ox = sum > 0 ? lround(MNIST_CENTRE - sx / sum) : (MNIST_SIDE - ow) / 2;
    long oy = sum > 0 ? lround(MNIST_CENTRE - sy / sum) : (MNIST_SIDE - oh) / 2;
    ox = ox < 0 ? 0 : (ox > MNIST_SIDE - ow ? MNIST_SIDE - ow : ox);
    oy = oy < 0 ? 0 : (oy > MNIST_SIDE - oh ? MNIST_SIDE - oh : oy);
    memset(out, 0, sizeof(float) * MNIST_SIDE * MNIST_SIDE);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            out[(oy + y) * MNIST_SIDE + ox + x] = box[y * ow + x];
    return DN_OK;
}

/* Binary (oh, ow) bitmap of the crop scaled to `side` px tall, keeping the aspect ratio up to a
 * width of 7/8 of that (wider digits are narrowed): in the UCI data every digit spans all 8 rows
 * and almost none all 8 columns. Returns the stroke width estimate 2 * area / boundary pixels (a
 * band of width s and length L has area sL and 2L boundary pixels). */
static dn_status opt_bitmap(const float *crop, int bw, int bh, size_t stride, int side, unsigned char *bits,
                            int *ow, int *oh, double *stroke, dn_error *err)
{
    float grey[OPT_SIDE * OPT_SIDE];
    long width = lround((double)bw * side / bh);
    *oh = side;
    *ow = width < 1 ? 1 : (width > side * 7 / 8 ? side * 7 / 8 : (int)width);
    dn_status st = resample(crop, bw, bh, stride, grey, *ow, *oh, err);
    if (st != DN_OK)
        return st;
    int area = 0, boundary = 0;
    for (int i = 0; i < *ow * *oh; i++)
        bits[i] = grey[i] >= 0.5f;
    for (int y = 0; y < *oh; y++)
        for (int x = 0; x < *ow; x++) {
            if (!bits[y * *ow + x])
                continue;
            area++;
            int edge = x == 0 || y == 0 || x == *ow - 1 || y == *oh - 1 || !bits[y * *ow + x - 1] ||
                       !bits[y * *ow + x + 1] || !bits[(y - 1) * *ow + x] || !bits[(y + 1) * *ow + x];
            boundary += edge;
        }
    *stroke = boundary ? 2.0 * area / boundary : 0.0;
    return DN_OK;
}

/* optdigits: the box scaled to 32 px tall, binarised, strokes thickened to the UCI pen's width,
 * centred, and counted in 4x4 blocks. The UCI bitmaps came from NIST's normalisation, which is not
 * published in detail; these choices (height 32, width at most 28, pen 5 px) were the ones that
 * recognised MNIST's test digits best with a model trained on optdigits. */
static dn_status to_optdigits(const float *crop, int bw, int bh, size_t stride, float *out, dn_error *err)
{
    unsigned char bits[OPT_SIDE * OPT_SIDE], frame[OPT_SIDE * OPT_SIDE], grown[OPT_SIDE * OPT_SIDE];
    int ow, oh;
    double stroke;
    dn_status st = opt_bitmap(crop, bw, bh, stride, OPT_SIDE, bits, &ow, &oh, &stroke, err);
    if (st != DN_OK)
        return st;
    /* Each 3x3 dilation adds 2 px of width; leave room for it so the digit still spans 32 px. */
    int grow = stroke > 0 && stroke < OPT_STROKE ? (int)lround((OPT_STROKE - stroke) / 2) : 0;
    grow = grow > 3 ? 3 : grow;
    if (grow && (st = opt_bitmap(crop, bw, bh, stride, OPT_SIDE - 2 * grow, bits, &ow, &oh, &stroke, err)) != DN_OK)
        return st;
    int ox = (OPT_SIDE - ow) / 2, oy = (OPT_SIDE - oh) / 2;
    memset(frame, 0, sizeof frame);
    for (int y = 0; y < oh; y++)
        for (int x = 0; x < ow; x++)
            frame[(oy + y) * OPT_SIDE + ox + x] = bits[y * ow + x];
    for (int g = 0; g < grow; g++) {
        for (int y = 0; y < OPT_SIDE; y++)
            for (int x = 0; x < OPT_SIDE; x++) {
                int on = 0;
                for (int dy = -1; dy <= 1 && !on; dy++)
                    for (int dx = -1; dx <= 1 && !on; dx++) {
                        int qx = x + dx, qy = y + dy;
                        on = qx >= 0 && qy >= 0 && qx < OPT_SIDE && qy < OPT_SIDE && frame[qy * OPT_SIDE + qx];
                    }
                grown[y * OPT_SIDE + x] = (unsigned char)on;
            }
        memcpy(frame, grown, sizeof frame);
    }
    for (int by = 0; by < 8; by++)
        for (int bx = 0; bx < 8; bx++) {
            int count = 0;
            for (int y = 0; y < 4; y++)
                for (int x = 0; x < 4; x++)
                    count += frame[(by * 4 + y) * OPT_SIDE + bx * 4 + x];
            out[by * 8 + bx] = count / 16.0f;
        }
    return DN_OK;
}

dn_status dn_preprocess(const dn_image *img, dn_shape target, float *out, dn_error *err)
{
    const char *kind = dn_preprocess_name(target);
    if (!kind)
        return dn_fail(err, DN_ESHAPE, "no preprocessing for a %dx%dx%d input (only 28x28x1 and 8x8x1)", target.h,
                       target.w, target.c);
    if (!img || !img->pixels || img->w < 1 || img->h < 1 || !out)
        return dn_fail(err, DN_EARG, "no image to preprocess");
    if (img->w > DN_IMAGE_MAX_SIDE || img->h > DN_IMAGE_MAX_SIDE ||
        (size_t)img->w * (size_t)img->h > DN_IMAGE_MAX_PIXELS)
        return dn_fail(err, DN_ELIMIT, "a %dx%d image is over the size limit", img->w, img->h);
    /* Work on at most WORK_SIDE px a side: more detail than 20 px needs, and bounded time. */
    int w = img->w, h = img->h;
    if (w > WORK_SIDE || h > WORK_SIDE)
        fit(img->w, img->h, WORK_SIDE, &w, &h);
    size_t n = (size_t)w * (size_t)h;
    float *grey = malloc(sizeof(float) * n), *ink = malloc(sizeof(float) * n); /* (h, w) each */
    dn_status st = DN_OK;
    if (!grey || !ink)
        st = dn_fail(err, DN_ENOMEM, "out of memory preprocessing a %dx%d image", w, h);
    else if (w != img->w || h != img->h)
        st = resample(img->pixels, img->w, img->h, (size_t)img->w, grey, w, h, err);
    else
        memcpy(grey, img->pixels, sizeof(float) * n);
    for (size_t i = 0; st == DN_OK && i < n; i++) /* NaN and out-of-range values from callers */
        grey[i] = grey[i] > 0.0f ? (grey[i] < 1.0f ? grey[i] : 1.0f) : 0.0f;
    int found = 0, x0 = 0, y0 = 0, bw = 0, bh = 0;
    if (st == DN_OK)
        st = extract_ink(grey, w, h, ink, &found, err);
    if (st == DN_OK && (!found || !bounding_box(ink, w, h, &x0, &y0, &bw, &bh)))
        st = dn_fail(err, DN_ENOTFOUND, "no digit found (no ink stands out from the background)");
    if (st == DN_OK) {
        const float *crop = ink + (size_t)y0 * w + x0;
        st = target.h == 28 ? to_mnist(crop, bw, bh, (size_t)w, out, err)
                            : to_optdigits(crop, bw, bh, (size_t)w, out, err);
    }
    free(grey);
    free(ink);
    return st;
}

/* Data-set arithmetic: free, concatenate, pick rows, slice. Every result is a fresh copy that the
 * caller frees with dn_dataset_free. Results are built aside and stored in *out only when complete;
 * on failure *out is zeroed (so dn_dataset_free on it is safe), except when out is also an input,
 * which is then left as it was. */
#include "internal.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void dn_dataset_free(dn_dataset *d)
{
    if (!d)
        return;
    free(d->pixels);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

static size_t pixels_per_image(const dn_dataset *d)
{
    return (size_t)d->h * (size_t)d->w * (size_t)d->c;
}

/* A data set a caller may pass in: consistent sizes and arrays wherever there are rows. */
static dn_status check_dataset(const char *fn, const char *name, const dn_dataset *d, dn_error *err)
{
    if (!d)
        return dn_fail(err, DN_EARG, "%s: %s is NULL", fn, name);
    if (d->n < 0)
        return dn_fail(err, DN_EARG, "%s: %s has a negative row count (%d)", fn, name, d->n);
    if (d->n > 0 && (d->h <= 0 || d->w <= 0 || d->c <= 0))
        return dn_fail(err, DN_EARG, "%s: %s has an empty image shape %dx%dx%d", fn, name, d->h,
                       d->w, d->c);
    if (d->n > 0 && (!d->pixels || !d->labels))
        return dn_fail(err, DN_EARG, "%s: %s has %d rows but no arrays", fn, name, d->n);
    return DN_OK;
}

/* Allocates a data set of n rows shaped like `like`; n == 0 gives NULL arrays. */
static dn_status alloc_like(const char *fn, const dn_dataset *like, int n, dn_dataset *d,
                            dn_error *err)
{
    memset(d, 0, sizeof *d);
    d->h = like->h;
    d->w = like->w;
    d->c = like->c;
    d->raw_max = like->raw_max;
    if (n == 0)
        return DN_OK;
    size_t per = pixels_per_image(like);
    if ((size_t)n > SIZE_MAX / sizeof(float) / per)
        return dn_fail(err, DN_ELIMIT, "%s: %d images of %zu pixels do not fit in memory", fn, n, per);
    d->pixels = malloc((size_t)n * per * sizeof *d->pixels);
    d->labels = malloc((size_t)n);
    if (!d->pixels || !d->labels) {
        dn_dataset_free(d);
        return dn_fail(err, DN_ENOMEM, "%s: out of memory for %d images", fn, n);
    }
    d->n = n;
    return DN_OK;
}

/* The failure half of the contract in the file comment. */
static dn_status fail_out(dn_dataset *out, const dn_dataset *in1, const dn_dataset *in2,
                          dn_status st)
{
    if (out && out != in1 && out != in2)
        memset(out, 0, sizeof *out);
    return st;
}

dn_status dn_dataset_concat(const dn_dataset *a, const dn_dataset *b, dn_dataset *out, dn_error *err)
{
    static const char fn[] = "dn_dataset_concat";
    if (!out)
        return dn_fail(err, DN_EARG, "%s: out is NULL", fn);
    dn_status st = check_dataset(fn, "the first data set", a, err);
    if (!st)
        st = check_dataset(fn, "the second data set", b, err);
    if (st)
        return fail_out(out, a, b, st);
    /* An empty side (such as the missing test half of a lone data.csv) joins with anything. */
    const dn_dataset *shape = a->n > 0 || b->n == 0 ? a : b;
    if (a->n > 0 && b->n > 0) {
        if (a->h != b->h || a->w != b->w || a->c != b->c)
            return fail_out(out, a, b,
                            dn_fail(err, DN_ESHAPE, "%s: image shapes differ: %dx%dx%d and %dx%dx%d",
                                    fn, a->h, a->w, a->c, b->h, b->w, b->c));
        if (a->raw_max != b->raw_max)
            return fail_out(out, a, b,
                            dn_fail(err, DN_EARG, "%s: pixel scales differ: raw_max %d and %d", fn,
                                    a->raw_max, b->raw_max));
    }
    if (a->n > INT_MAX - b->n)
        return fail_out(out, a, b,
                        dn_fail(err, DN_ELIMIT, "%s: %d + %d rows are too many", fn, a->n, b->n));

    dn_dataset joined;
    st = alloc_like(fn, shape, a->n + b->n, &joined, err);
    if (st)
        return fail_out(out, a, b, st);
    size_t per = pixels_per_image(shape);
    if (a->n > 0) {
        memcpy(joined.pixels, a->pixels, (size_t)a->n * per * sizeof *joined.pixels);
        memcpy(joined.labels, a->labels, (size_t)a->n);
    }
    if (b->n > 0) {
        memcpy(joined.pixels + (size_t)a->n * per, b->pixels, (size_t)b->n * per * sizeof *joined.pixels);
        memcpy(joined.labels + a->n, b->labels, (size_t)b->n);
    }
    *out = joined;
    return DN_OK;
}

dn_status dn_dataset_take(const dn_dataset *src, const int *indices, int n, dn_dataset *out, dn_error *err)
{
    static const char fn[] = "dn_dataset_take";
    if (!out)
        return dn_fail(err, DN_EARG, "%s: out is NULL", fn);
    dn_status st = check_dataset(fn, "the source", src, err);
    if (st)
        return fail_out(out, src, NULL, st);
    if (n < 0)
        return fail_out(out, src, NULL, dn_fail(err, DN_EARG, "%s: negative count %d", fn, n));
    if (n > 0 && !indices)
        return fail_out(out, src, NULL, dn_fail(err, DN_EARG, "%s: indices is NULL", fn));
    /* Checked before copying so that a bad index costs no allocation. */
    for (int i = 0; i < n; i++)
        if (indices[i] < 0 || indices[i] >= src->n)
            return fail_out(out, src, NULL,
                            dn_fail(err, DN_EARG, "%s: indices[%d] = %d is outside 0..%d", fn, i,
                                    indices[i], src->n - 1));

    dn_dataset picked;
    st = alloc_like(fn, src, n, &picked, err);
    if (st)
        return fail_out(out, src, NULL, st);
    size_t per = pixels_per_image(src);
    for (int i = 0; i < n; i++) {
        memcpy(picked.pixels + (size_t)i * per, src->pixels + (size_t)indices[i] * per,
               per * sizeof *picked.pixels);
        picked.labels[i] = src->labels[indices[i]];
    }
    *out = picked;
    return DN_OK;
}

dn_status dn_dataset_slice(const dn_dataset *src, int start, int n, dn_dataset *out, dn_error *err)
{
    static const char fn[] = "dn_dataset_slice";
    if (!out)
        return dn_fail(err, DN_EARG, "%s: out is NULL", fn);
    dn_status st = check_dataset(fn, "the source", src, err);
    if (st)
        return fail_out(out, src, NULL, st);
    /* Written as n > src->n - start so that start + n cannot overflow. */
    if (start < 0 || n < 0 || start > src->n || n > src->n - start)
        return fail_out(out, src, NULL,
                        dn_fail(err, DN_EARG, "%s: %d rows from row %d do not fit in %d rows", fn,
                                n, start, src->n));

    dn_dataset part;
    st = alloc_like(fn, src, n, &part, err);
    if (st)
        return fail_out(out, src, NULL, st);
    if (n > 0) {
        size_t per = pixels_per_image(src);
        memcpy(part.pixels, src->pixels + (size_t)start * per, (size_t)n * per * sizeof *part.pixels);
        memcpy(part.labels, src->labels + start, (size_t)n);
    }
    *out = part;
    return DN_OK;
}

/* The scaled value of every raw pixel value, so converting a row is one table lookup a pixel. */
static void scale_table(const dn_dataset *d, float table[256])
{
    float inv = d->raw_max > 0 ? 1.0f / (float)d->raw_max : 1.0f;
    for (int v = 0; v < 256; v++)
        table[v] = (float)v * inv;
}

void dn_dataset_rows(const dn_dataset *d, int start, int n, float *out)
{
    float table[256];
    scale_table(d, table);
    const size_t count = (size_t)n * d->h * d->w * d->c;
    const uint8_t *src = d->pixels + (size_t)start * d->h * d->w * d->c;
    for (size_t i = 0; i < count; i++)
        out[i] = table[src[i]];
}

void dn_dataset_gather(const dn_dataset *d, const int *rows, int n, float *out)
{
    float table[256];
    scale_table(d, table);
    const size_t per = (size_t)d->h * d->w * d->c;
    for (int r = 0; r < n; r++) {
        const uint8_t *src = d->pixels + (size_t)rows[r] * per;
        float *dst = out + (size_t)r * per;
        for (size_t i = 0; i < per; i++)
            dst[i] = table[src[i]];
    }
}

dn_status dn_dataset_floats(const dn_dataset *d, int start, int n, float **out, dn_error *err)
{
    if (!d || !out || start < 0 || n < 0 || start > d->n || n > d->n - start)
        return dn_fail(err, DN_EARG, "dn_dataset_floats: rows %d..%d outside the %d rows", start, start + n,
                       d ? d->n : 0);
    *out = malloc(sizeof(float) * ((size_t)n * d->h * d->w * d->c + 1));
    if (!*out)
        return dn_fail(err, DN_ENOMEM, "out of memory for %d images", n);
    dn_dataset_rows(d, start, n, *out);
    return DN_OK;
}

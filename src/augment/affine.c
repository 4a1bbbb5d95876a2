/* The per-image random draws and the affine warp (shift, rotation, zoom, shear, flip) with bilinear
 * sampling, plus Gaussian pixel noise. One image's random numbers come from the counter-based
 * generator at its key, so they are the same whichever thread or process handles the image. */
#include "augment/augment.h"
#include "kernels/kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Sub-streams of an image's key, one per kind of draw. */
enum { STREAM_PARAMS = 1, STREAM_ELASTIC = 2, STREAM_NOISE = 3 };

#define PI_F 3.14159265358979f

uint64_t dn_augment_key(uint64_t seed, int epoch, long position)
{
    uint64_t run = dn_rng_draw_at(seed ^ 0xA5A5F00DC0FFEE11ull, (uint64_t)(uint32_t)epoch + 1);
    return dn_rng_draw_at(run, (uint64_t)position + 1);
}

static uint64_t stream(uint64_t key, int which)
{
    return dn_rng_draw_at(key, (uint64_t)which);
}

/* Uniform in [-range, range]. */
static float symmetric(uint64_t state, uint64_t k, float range)
{
    return (2.0f * dn_rng_to_unit(dn_rng_draw_at(state, k)) - 1.0f) * range;
}

void dn_augment_draw_params(const dn_augment *a, uint64_t key, dn_augment_draw *d)
{
    const uint64_t s = stream(key, STREAM_PARAMS);
    const float prob = a->prob > 0.0f ? a->prob : 1.0f;
    d->apply = prob >= 1.0f || dn_rng_to_unit(dn_rng_draw_at(s, 0)) < prob;
    d->dx = symmetric(s, 1, a->shift);
    d->dy = symmetric(s, 2, a->shift);
    d->angle = symmetric(s, 3, a->rotate) * (PI_F / 180.0f);
    d->zoom = 1.0f + symmetric(s, 4, a->scale);
    d->shear = symmetric(s, 5, a->shear) * (PI_F / 180.0f);
    d->flip = a->flip > 0.0f && dn_rng_to_unit(dn_rng_draw_at(s, 6)) < a->flip;
}

void dn_augment_warp(const float *src, float *dst, dn_shape s, const dn_augment_draw *d, const float *field_x,
                     const float *field_y)
{
    const int h = s.h, w = s.w, c = s.c;
    /* Forward map of a point p (relative to the centre): M p + t with M = rotation * zoom * shear.
     * Each output pixel samples the source at M^-1 (q - t), so the inverse is what is needed. */
    const float co = cosf(d->angle), si = sinf(d->angle), sh = tanf(d->shear), z = d->zoom;
    const float m00 = co * z, m01 = (co * sh - si) * z, m10 = si * z, m11 = (si * sh + co) * z;
    const float det = m00 * m11 - m01 * m10;
    const float i00 = m11 / det, i01 = -m01 / det, i10 = -m10 / det, i11 = m00 / det;
    const float cx = 0.5f * (float)(w - 1), cy = 0.5f * (float)(h - 1);
    for (int y = 0; y < h; y++) {
        for (int x = 0; x < w; x++) {
            const float qx = (d->flip ? (float)(w - 1 - x) : (float)x) - cx - d->dx, qy = (float)y - cy - d->dy;
            float px = i00 * qx + i01 * qy + cx, py = i10 * qx + i11 * qy + cy;
            if (field_x) {
                px += field_x[y * w + x];
                py += field_y[y * w + x];
            }
            float *out = dst + ((size_t)y * w + x) * c;
            if (!(px > -1.0f && px < (float)w && py > -1.0f && py < (float)h)) { /* NaN too */
                memset(out, 0, sizeof(float) * (size_t)c);
                continue;
            }
            const float fx0 = floorf(px), fy0 = floorf(py);
            const int x0 = (int)fx0, y0 = (int)fy0;
            const float fx = px - fx0, fy = py - fy0;
            if (x0 >= 0 && x0 + 1 < w && y0 >= 0 && y0 + 1 < h) { /* inside: the four taps, no checks */
                const float *p00 = src + ((size_t)y0 * w + x0) * c, *p10 = p00 + (size_t)w * c;
                for (int k = 0; k < c; k++) {
                    float top = p00[k] + fx * (p00[c + k] - p00[k]), bottom = p10[k] + fx * (p10[c + k] - p10[k]);
                    out[k] = top + fy * (bottom - top);
                }
                continue;
            }
            const float wts[4] = {(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy};
            const int xs[4] = {x0, x0 + 1, x0, x0 + 1}, ys[4] = {y0, y0, y0 + 1, y0 + 1};
            for (int k = 0; k < c; k++)
                out[k] = 0.0f;
            for (int t = 0; t < 4; t++) {
                if (xs[t] < 0 || xs[t] >= w || ys[t] < 0 || ys[t] >= h || wts[t] == 0.0f)
                    continue; /* outside: the background, 0 */
                const float *in = src + ((size_t)ys[t] * w + xs[t]) * c;
                for (int k = 0; k < c; k++)
                    out[k] += wts[t] * in[k];
            }
        }
    }
}

void dn_augment_noise(uint64_t key, float std, float *values, size_t n)
{
    const uint64_t s = stream(key, STREAM_NOISE);
    for (size_t i = 0; i < n; i += 2) {
        /* Box-Muller: two normals from two uniforms; u1 is kept off 0 by the half step. */
        float u1 = ((float)(dn_rng_draw_at(s, i) >> 40) + 0.5f) * (1.0f / 16777216.0f);
        float u2 = dn_rng_to_unit(dn_rng_draw_at(s, i + 1));
        float r = std * sqrtf(-2.0f * logf(u1)), t = 2.0f * PI_F * u2;
        float z[2] = {r * cosf(t), r * sinf(t)};
        for (size_t j = 0; j < 2 && i + j < n; j++) {
            float v = values[i + j] + z[j];
            values[i + j] = v < 0.0f ? 0.0f : v > 1.0f ? 1.0f : v;
        }
    }
}

size_t dn_augment_scratch_floats(dn_shape s)
{
    const size_t plane = (size_t)s.h * s.w, side = (size_t)(s.h > s.w ? s.h : s.w);
    return plane * (size_t)s.c + 3 * plane + 2 * side; /* warped image, two fields, blur rows, kernel */
}

void dn_augment_one(const dn_augment *a, uint64_t key, float *image, dn_shape s, float *scratch)
{
    dn_augment_draw d;
    dn_augment_draw_params(a, key, &d);
    if (!d.apply)
        return;
    const size_t plane = (size_t)s.h * s.w, values = plane * (size_t)s.c;
    const int affine = a->shift > 0.0f || a->rotate > 0.0f || a->scale > 0.0f || a->shear > 0.0f || d.flip;
    if (affine || a->elastic > 0.0f) {
        float *warped = scratch, *fx = NULL, *fy = NULL;
        if (a->elastic > 0.0f) {
            fx = scratch + values;
            fy = fx + plane;
            float sigma = a->elastic_sigma > 0.0f ? a->elastic_sigma : dn_augment_default_sigma(s);
            dn_augment_elastic_field(stream(key, STREAM_ELASTIC), a->elastic, sigma, s.h, s.w, fx, fy, fy + plane,
                                     fy + 2 * plane);
        }
        dn_augment_warp(image, warped, s, &d, fx, fy);
        memcpy(image, warped, sizeof(float) * values);
    }
    if (a->noise > 0.0f)
        dn_augment_noise(key, a->noise, image, values);
}

void dn_augment_batch(const dn_augment *a, uint64_t seed, int epoch, long first_position, float *images, int n,
                      dn_shape s, float *scratch)
{
    const size_t values = (size_t)s.h * s.w * s.c, per = dn_augment_scratch_floats(s);
    DN_PARALLEL_FOR(n > 1, for (int i = 0; i < n; i++) {
        dn_augment_one(a, dn_augment_key(seed, epoch, first_position + i), images + (size_t)i * values, s,
                       scratch + (size_t)i * per);
    });
}

dn_status dn_augment_images(const dn_augment *a, uint64_t seed, int epoch, long first_position, float *images, int n,
                            dn_shape shape, dn_error *err)
{
    if (!a || (!images && n > 0) || n < 0 || shape.h < 1 || shape.w < 1 || shape.c < 1)
        return dn_fail(err, DN_EARG, "dn_augment_images: bad arguments");
    if (n == 0)
        return DN_OK;
    float *scratch = malloc(sizeof(float) * dn_augment_scratch_floats(shape) * (size_t)n);
    if (!scratch)
        return dn_fail(err, DN_ENOMEM, "out of memory for augmenting %d images", n);
    dn_augment_batch(a, seed, epoch, first_position, images, n, shape, scratch);
    free(scratch);
    return DN_OK;
}

/* Elastic distortion (Simard, Steinkraus and Platt, 2003): a random displacement field, uniform in
 * (-1, 1) at each pixel, smoothed by a Gaussian and scaled, moves every output pixel's sampling
 * point (applied in dn_augment_warp together with the affine part: one interpolation). */
#include "augment/augment.h"

#include <math.h>

float dn_augment_default_sigma(dn_shape s)
{
    return 4.0f * (float)(s.h + s.w) / 56.0f;
}

/* out (h, w) = in blurred along x with kernel[0..2r], zero outside the image. Tap by tap over whole
 * rows, so that the inner loops run over contiguous pixels and vectorise. */
static void blur_rows(const float *in, float *out, int h, int w, const float *kernel, int r)
{
    for (int y = 0; y < h; y++) {
        const float *src = in + (size_t)y * w;
        float *dst = out + (size_t)y * w;
        for (int x = 0; x < w; x++)
            dst[x] = 0.0f;
        for (int t = -r; t <= r; t++) {
            const float k = kernel[t + r];
            const int lo = t < 0 ? -t : 0, hi = t > 0 ? w - t : w;
#pragma omp simd
            for (int x = lo; x < hi; x++)
                dst[x] += k * src[x + t];
        }
    }
}

/* The same along y. */
static void blur_cols(const float *in, float *out, int h, int w, const float *kernel, int r)
{
    for (int y = 0; y < h; y++) {
        float *dst = out + (size_t)y * w;
        for (int x = 0; x < w; x++)
            dst[x] = 0.0f;
        const int lo = y - r < 0 ? -y : -r, hi = y + r >= h ? h - 1 - y : r;
        for (int t = lo; t <= hi; t++) {
            const float k = kernel[t + r];
            const float *src = in + (size_t)(y + t) * w;
#pragma omp simd
            for (int x = 0; x < w; x++)
                dst[x] += k * src[x];
        }
    }
}

void dn_augment_elastic_field(uint64_t key, float alpha, float sigma, int h, int w, float *field_x, float *field_y,
                              float *tmp, float *kernel)
{
    const int plane = h * w, side = h > w ? h : w;
    int r = (int)ceilf(3.0f * sigma);
    if (r > side - 1)
        r = side - 1; /* taps further away never land in the image */
    float total = 0.0f;
    for (int j = -r; j <= r; j++) {
        kernel[j + r] = sigma > 0.0f ? expf(-0.5f * (float)(j * j) / (sigma * sigma)) : (j == 0);
        total += kernel[j + r];
    }
    for (int j = 0; j <= 2 * r; j++)
        kernel[j] /= total;
    float *fields[2] = {field_x, field_y};
    for (int f = 0; f < 2; f++) {
        float *field = fields[f];
        for (int i = 0; i < plane; i++)
            field[i] = 2.0f * dn_rng_to_unit(dn_rng_draw_at(key, (uint64_t)f * plane + i)) - 1.0f;
        blur_rows(field, tmp, h, w, kernel, r);
        blur_cols(tmp, field, h, w, kernel, r);
        for (int i = 0; i < plane; i++)
            field[i] *= alpha;
    }
}

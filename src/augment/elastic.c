/* Elastic distortion (Simard, Steinkraus and Platt, 2003): a random displacement field, uniform in
 * (-1, 1) at each pixel, smoothed by a Gaussian and scaled, moves every output pixel's sampling
 * point (applied in dn_augment_warp together with the affine part: one interpolation). */
#include "augment/augment.h"

#include <math.h>

float dn_augment_default_sigma(dn_shape s)
{
    return 4.0f * (float)(s.h + s.w) / 56.0f;
}

/* out = in blurred along one axis with kernel[0..2r]: n lines of len values, stride between
 * neighbours along the axis, line_step between lines. Zero outside the image. */
static void blur(const float *in, float *out, int n, int len, int stride, int line_step, const float *kernel, int r)
{
    for (int l = 0; l < n; l++) {
        const float *src = in + (size_t)l * line_step;
        float *dst = out + (size_t)l * line_step;
        for (int i = 0; i < len; i++) {
            int lo = i - r < 0 ? 0 : i - r, hi = i + r >= len ? len - 1 : i + r;
            float sum = 0.0f;
            for (int j = lo; j <= hi; j++)
                sum += kernel[j - i + r] * src[(size_t)j * stride];
            dst[(size_t)i * stride] = sum;
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
        blur(field, tmp, h, w, 1, w, kernel, r); /* along rows */
        blur(tmp, field, w, h, w, 1, kernel, r); /* along columns */
        for (int i = 0; i < plane; i++)
            field[i] *= alpha;
    }
}

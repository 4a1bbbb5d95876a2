/* Augmentation internals (src/augment): the random draws of one image and the transforms that
 * apply them, exposed so that the tests can apply known transforms. dn_augment_images in the
 * public header and the training loop both go through dn_augment_batch. */
#ifndef DN_AUGMENT_H
#define DN_AUGMENT_H

#include "internal.h"

/* The transform of one image, drawn from its key (or set by hand in the tests). */
typedef struct dn_augment_draw {
    int apply;   /* 0: the image is left as it is (p) */
    float dx, dy; /* shift in pixels, x to the right and y down */
    float angle; /* rotation about the centre in radians; positive turns x towards y (clockwise on screen) */
    float zoom;  /* scale factor, 1 = none */
    float shear; /* horizontal shear angle in radians: x moves by tan(shear) * (y - centre) */
    int flip;    /* left-right mirror after the affine part */
} dn_augment_draw;

/* Scratch floats one image needs in dn_augment_one (and per image in dn_augment_batch). */
size_t dn_augment_scratch_floats(dn_shape s);

/* The key of one image: a function of the run's seed, the epoch and the image's position in the
 * epoch only (never of the thread or the process handling it). */
uint64_t dn_augment_key(uint64_t seed, int epoch, long position);

/* The affine, flip and gate draws of a for key. */
void dn_augment_draw_params(const dn_augment *a, uint64_t key, dn_augment_draw *d);

/* dst (h, w, c) = src (h, w, c) resampled through d with bilinear interpolation, 0 outside the
 * image; every channel moves alike. field_x / field_y (h, w): extra displacement of the sampling
 * point of each output pixel in pixels (elastic distortion), or NULL. src and dst must differ. */
void dn_augment_warp(const float *src, float *dst, dn_shape s, const dn_augment_draw *d, const float *field_x,
                     const float *field_y);

/* Simard et al.'s elastic field: uniform(-1, 1) displacements from key, smoothed by a normalised
 * Gaussian of sigma pixels (zero outside the image), times alpha. field_x, field_y, tmp: (h, w);
 * kernel: at least 2 * max(h, w) - 1 floats. */
void dn_augment_elastic_field(uint64_t key, float alpha, float sigma, int h, int w, float *field_x, float *field_y,
                              float *tmp, float *kernel);

/* The smoothing the elastic option uses when elastic_sigma is 0: 4 pixels at 28x28, in proportion
 * to the image's size elsewhere. */
float dn_augment_default_sigma(dn_shape s);

/* Adds Gaussian noise of std from key to n values and clamps them to 0..1. */
void dn_augment_noise(uint64_t key, float std, float *values, size_t n);

/* All of a's transforms (mixup aside) on one image in place; scratch: dn_augment_scratch_floats(s). */
void dn_augment_one(const dn_augment *a, uint64_t key, float *image, dn_shape s, float *scratch);

/* dn_augment_one on images (n, h, w, c) in place, image i keyed by (seed, epoch, first_position + i),
 * spread over the OpenMP threads. scratch: n * dn_augment_scratch_floats(s) floats. Allocates nothing. */
void dn_augment_batch(const dn_augment *a, uint64_t seed, int epoch, long first_position, float *images, int n,
                      dn_shape s, float *scratch);

#endif

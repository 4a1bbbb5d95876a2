/*
 * Augmentation on the fly (src/augment): the geometry of known transforms (an integer shift is an
 * exact shifted copy, a quarter turn moves known pixels to known places, zoom 1 and angle 0 is the
 * identity, a flip mirrors, half-pixel shifts interpolate), elastic distortion with a tiny strength
 * stays close to the identity and keeps the ink, noise has the requested spread and stays in 0..1;
 * and determinism: the same seed gives the same augmented images on 1 and 2 threads and however the
 * batch is cut, another epoch gives other transforms, and a short training run with augmentation
 * gives the same weights bit for bit on 1 and 2 threads (and other weights than without it).
 */
#include "testutil.h"
#include "augment/augment.h"
#include "net.h"

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"

static dn_augment_draw identity_draw(void)
{
    return (dn_augment_draw){.apply = 1, .zoom = 1.0f};
}

/* A (h, w, c) image of distinct values in (0, 1). */
static float *pattern(dn_shape s)
{
    size_t n = (size_t)s.h * s.w * s.c;
    float *img = malloc(sizeof(float) * n);
    assert_non_null(img);
    for (size_t i = 0; i < n; i++)
        img[i] = (float)((i * 37 + 11) % 251 + 1) / 256.0f;
    return img;
}

static float at(const float *img, dn_shape s, int y, int x, int k)
{
    return img[((size_t)y * s.w + x) * s.c + k];
}

static void test_integer_shift_is_exact(void **state)
{
    (void)state;
    const dn_shape s = {28, 28, 2};
    float *src = pattern(s), *dst = malloc(sizeof(float) * 28 * 28 * 2);
    dn_augment_draw d = identity_draw();
    d.dx = 2.0f;
    d.dy = -3.0f;
    dn_augment_warp(src, dst, s, &d, NULL, NULL);
    for (int y = 0; y < s.h; y++)
        for (int x = 0; x < s.w; x++)
            for (int k = 0; k < s.c; k++) {
                int sx = x - 2, sy = y + 3; /* content moves 2 right and 3 up */
                float want = sx >= 0 && sx < s.w && sy >= 0 && sy < s.h ? at(src, s, sy, sx, k) : 0.0f;
                if (at(dst, s, y, x, k) != want)
                    fail_msg("(%d, %d, %d): %g, expected %g", y, x, k, at(dst, s, y, x, k), want);
            }
    free(src);
    free(dst);
}

static void test_identity(void **state)
{
    (void)state;
    const dn_shape s = {8, 8, 3};
    float *src = pattern(s), *dst = malloc(sizeof(float) * 8 * 8 * 3);
    dn_augment_draw d = identity_draw();
    dn_augment_warp(src, dst, s, &d, NULL, NULL);
    assert_memory_equal(src, dst, sizeof(float) * 8 * 8 * 3);
    free(src);
    free(dst);
}

/* A quarter turn about the centre of a 5x5 image: (x, y) relative to the centre goes to (-y, x). */
static void test_quarter_turn(void **state)
{
    (void)state;
    const dn_shape s = {5, 5, 1};
    float src[25] = {0}, dst[25];
    src[2 * 5 + 4] = 1.0f; /* x = 4, y = 2: (2, 0) from the centre */
    src[0 * 5 + 2] = 0.5f; /* x = 2, y = 0: (0, -2) */
    dn_augment_draw d = identity_draw();
    d.angle = 3.14159265358979f / 2.0f;
    dn_augment_warp(src, dst, s, &d, NULL, NULL);
    assert_near(dst[4 * 5 + 2], 1.0, 1e-5); /* (0, 2): x = 2, y = 4 */
    assert_near(dst[2 * 5 + 4], 0.5, 1e-5); /* (2, 0): x = 4, y = 2 */
    double rest = 0.0;
    for (int i = 0; i < 25; i++)
        rest += fabs(dst[i]);
    assert_near(rest, 1.5, 1e-4);
    /* Zoom 2 about the centre: (1, 0) from the centre lands on (2, 0). */
    float one[25] = {0};
    one[2 * 5 + 3] = 1.0f;
    d = identity_draw();
    d.zoom = 2.0f;
    dn_augment_warp(one, dst, s, &d, NULL, NULL);
    assert_near(dst[2 * 5 + 4], 1.0, 1e-6);
    assert_near(dst[2 * 5 + 3], 0.5, 1e-6); /* halfway between the centre (0) and the pixel (1) */
}

static void test_flip_mirrors(void **state)
{
    (void)state;
    const dn_shape s = {6, 7, 2};
    float *src = pattern(s), *dst = malloc(sizeof(float) * 6 * 7 * 2);
    dn_augment_draw d = identity_draw();
    d.flip = 1;
    dn_augment_warp(src, dst, s, &d, NULL, NULL);
    for (int y = 0; y < s.h; y++)
        for (int x = 0; x < s.w; x++)
            for (int k = 0; k < s.c; k++)
                assert_true(at(dst, s, y, x, k) == at(src, s, y, s.w - 1 - x, k));
    free(src);
    free(dst);
}

/* optdigits is 8x8: a half-pixel shift must interpolate, not round to a whole pixel. */
static void test_subpixel_shift(void **state)
{
    (void)state;
    const dn_shape s = {8, 8, 1};
    float *src = pattern(s), dst[64];
    dn_augment_draw d = identity_draw();
    d.dx = 0.5f;
    dn_augment_warp(src, dst, s, &d, NULL, NULL);
    for (int y = 0; y < 8; y++) {
        assert_near(dst[y * 8], 0.5 * at(src, s, y, 0, 0), 1e-6);
        for (int x = 1; x < 8; x++)
            assert_near(dst[y * 8 + x], 0.5 * (at(src, s, y, x - 1, 0) + at(src, s, y, x, 0)), 1e-6);
    }
    free(src);
}

/* The drawn parameters cover the requested ranges and stay inside them. */
static void test_draw_ranges(void **state)
{
    (void)state;
    const dn_augment a = {.shift = 2.0f, .rotate = 12.0f, .scale = 0.1f, .shear = 5.0f, .flip = 0.5f};
    const float deg = 3.14159265f / 180.0f;
    float most[4] = {0};
    int flips = 0;
    for (int i = 0; i < 2000; i++) {
        dn_augment_draw d;
        dn_augment_draw_params(&a, dn_augment_key(1, 1, i), &d);
        assert_true(d.apply);
        float v[4] = {fabsf(d.dx), fabsf(d.angle) / deg, fabsf(d.zoom - 1.0f), fabsf(d.shear) / deg};
        const float range[4] = {2.0f, 12.0f, 0.1f, 5.0f};
        for (int k = 0; k < 4; k++) {
            assert_true(v[k] <= range[k] * 1.0001f);
            most[k] = fmaxf(most[k], v[k] / range[k]);
        }
        flips += d.flip;
    }
    for (int k = 0; k < 4; k++)
        assert_true(most[k] > 0.95f);
    assert_true(flips > 900 && flips < 1100);
}

/* A soft blob of ink in the middle of a 28x28 image. */
static void blob(float *img)
{
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) {
            double r2 = (x - 13.5) * (x - 13.5) + (y - 13.5) * (y - 13.5);
            img[y * 28 + x] = (float)exp(-r2 / 30.0);
        }
}

static double total(const float *v, int n)
{
    double t = 0.0;
    for (int i = 0; i < n; i++)
        t += v[i];
    return t;
}

static void test_elastic(void **state)
{
    (void)state;
    const dn_shape s = {28, 28, 1};
    float img[784], out[784], fx[784], fy[784], tmp[784], kernel[56];
    blob(img);
    assert_near(dn_augment_default_sigma(s), 4.0, 1e-6);
    assert_true(dn_augment_default_sigma((dn_shape){8, 8, 1}) < 1.2f);

    /* Tiny strength: displacements of at most alpha, an image within a few thousandths. */
    dn_augment_elastic_field(12345, 0.05f, 4.0f, 28, 28, fx, fy, tmp, kernel);
    double biggest = 0.0;
    for (int i = 0; i < 784; i++)
        biggest = fmax(biggest, fmax(fabs(fx[i]), fabs(fy[i])));
    assert_true(biggest > 0.0 && biggest <= 0.05);
    dn_augment_draw d = identity_draw();
    dn_augment_warp(img, out, s, &d, fx, fy);
    for (int i = 0; i < 784; i++)
        assert_near(out[i], img[i], 0.01);
    assert_near(total(out, 784), total(img, 784), 0.01 * total(img, 784));

    /* Simard's strength (34, sigma 4): visible, smooth, ink roughly kept. */
    dn_augment_elastic_field(777, 34.0f, 4.0f, 28, 28, fx, fy, tmp, kernel);
    biggest = 0.0;
    for (int i = 0; i < 784; i++)
        biggest = fmax(biggest, fabs(fx[i]));
    assert_true(biggest > 0.3 && biggest < 8.0);
    for (int y = 0; y < 28; y++) /* smooth: neighbours differ by much less than the largest move */
        for (int x = 1; x < 28; x++)
            assert_true(fabs(fx[y * 28 + x] - fx[y * 28 + x - 1]) < 0.5 * biggest);
    dn_augment_warp(img, out, s, &d, fx, fy);
    assert_near(total(out, 784), total(img, 784), 0.25 * total(img, 784));
    double moved = 0.0;
    for (int i = 0; i < 784; i++)
        moved += fabs(out[i] - img[i]);
    assert_true(moved > 1.0);
}

static void test_noise(void **state)
{
    (void)state;
    enum { N = 40000 };
    float *v = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        v[i] = 0.5f;
    dn_augment_noise(99, 0.1f, v, N);
    double mean = total(v, N) / N, var = 0.0;
    for (int i = 0; i < N; i++)
        var += (v[i] - mean) * (v[i] - mean);
    double std = sqrt(var / N);
    assert_near(mean, 0.5, 0.003);
    assert_near(std, 0.1, 0.003);
    /* Clamped to the input range. */
    for (int i = 0; i < N; i++)
        v[i] = (float)(i % 2);
    dn_augment_noise(7, 0.3f, v, N);
    int changed = 0;
    for (int i = 0; i < N; i++) {
        assert_true(v[i] >= 0.0f && v[i] <= 1.0f);
        changed += v[i] != (float)(i % 2);
    }
    assert_true(changed > N / 3);
    free(v);
}

/* The p gate: with p=0.25 about a quarter of the images change; the others are untouched. */
static void test_probability_gate(void **state)
{
    (void)state;
    const dn_shape s = {8, 8, 1};
    enum { N = 400 };
    float *imgs = malloc(sizeof(float) * 64 * N), *orig = malloc(sizeof(float) * 64 * N);
    for (int i = 0; i < N; i++) {
        float *p = pattern(s);
        memcpy(orig + i * 64, p, sizeof(float) * 64);
        free(p);
    }
    memcpy(imgs, orig, sizeof(float) * 64 * N);
    dn_augment a = {.shift = 1.5f, .prob = 0.25f};
    assert_int_equal(dn_augment_images(&a, 3, 1, 0, imgs, N, s, NULL), DN_OK);
    int changed = 0;
    for (int i = 0; i < N; i++)
        changed += memcmp(imgs + i * 64, orig + i * 64, sizeof(float) * 64) != 0;
    assert_true(changed > 60 && changed < 140);
    free(imgs);
    free(orig);
}

static const dn_augment everything = {.shift = 2.5f, .rotate = 12.0f, .scale = 0.1f, .shear = 8.0f, .elastic = 20.0f,
                                      .noise = 0.05f, .flip = 0.5f};

static float *augmented(const dn_augment *a, int threads, int epoch, int cut, dn_shape s, int n)
{
    const size_t values = (size_t)s.h * s.w * s.c;
    float *imgs = malloc(sizeof(float) * values * n);
    for (int i = 0; i < n; i++) {
        float *p = pattern(s);
        memcpy(imgs + i * values, p, sizeof(float) * values);
        free(p);
    }
    dn_set_threads(threads);
    assert_int_equal(dn_augment_images(a, 42, epoch, 100, imgs, cut, s, NULL), DN_OK);
    assert_int_equal(dn_augment_images(a, 42, epoch, 100 + cut, imgs + cut * values, n - cut, s, NULL), DN_OK);
    dn_set_threads(1);
    return imgs;
}

static void test_batch_determinism(void **state)
{
    (void)state;
    const dn_shape s = {28, 28, 1};
    const int n = 64;
    const size_t bytes = sizeof(float) * 784 * n;
    float *one = augmented(&everything, 1, 1, 0, s, n), *two = augmented(&everything, 2, 1, 0, s, n);
    float *cut = augmented(&everything, 2, 1, 23, s, n), *other_epoch = augmented(&everything, 1, 2, 0, s, n);
    assert_memory_equal(one, two, bytes); /* thread count */
    assert_memory_equal(one, cut, bytes); /* which rows a call (or a process) handles */
    for (int i = 0; i < n; i++) /* another epoch: every image transformed differently */
        assert_true(memcmp(one + i * 784, other_epoch + i * 784, sizeof(float) * 784) != 0);
    float *plain = pattern(s);
    for (int i = 0; i < n; i++)
        assert_true(memcmp(one + i * 784, plain, sizeof(float) * 784) != 0);
    free(plain);
    free(one);
    free(two);
    free(cut);
    free(other_epoch);
}

static dn_net *train_short(const dn_dataset *data, const dn_augment *a, int threads)
{
    dn_set_threads(threads);
    dn_net *net = NULL;
    dn_error err = {0};
    if (dn_net_load_spec("models/optdigits.cnn", 5, &net, &err) != DN_OK)
        fail_msg("%s", err.msg);
    dn_train_params p = dn_train_default_params();
    p.epochs = 2;
    p.batch_size = 64;
    p.seed = 9;
    if (a)
        p.augment = *a;
    if (dn_train(net, data, NULL, &p, &err) != DN_OK)
        fail_msg("%s", err.msg);
    dn_set_threads(1);
    return net;
}

static void test_training_determinism(void **state)
{
    (void)state;
    dn_dataset tra, part;
    dn_error err = {0};
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK)
        fail_msg("cannot load optdigits: %s", err.msg);
    assert_int_equal(dn_dataset_slice(&tra, 0, 600, &part, NULL), DN_OK);
    dn_augment a = {.shift = 1.0f, .rotate = 10.0f, .scale = 0.1f, .elastic = 4.0f, .noise = 0.02f};
    dn_net *one = train_short(&part, &a, 1), *two = train_short(&part, &a, 2), *plain = train_short(&part, NULL, 1);
    const size_t bytes = sizeof(float) * one->n_params;
    assert_memory_equal(one->params, two->params, bytes);
    assert_true(memcmp(one->params, plain->params, bytes) != 0); /* the augmentation was applied */
    /* mixup alone is not this module's: the images, and so the weights, are those of a plain run
     * as long as the loss ignores it. */
    dn_net_free(one);
    dn_net_free(two);
    dn_net_free(plain);
    dn_dataset_free(&part);
    dn_dataset_free(&tra);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    dn_error err = {0};
    float img[4] = {0};
    assert_int_equal(dn_augment_images(NULL, 1, 1, 0, img, 1, (dn_shape){2, 2, 1}, &err), DN_EARG);
    assert_int_equal(dn_augment_images(&everything, 1, 1, 0, img, 1, (dn_shape){0, 2, 1}, &err), DN_EARG);
    assert_int_equal(dn_augment_images(&everything, 1, 1, 0, NULL, 0, (dn_shape){2, 2, 1}, &err), DN_OK);
}

int main(void)
{
    dn_set_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integer_shift_is_exact),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_quarter_turn),
        cmocka_unit_test(test_flip_mirrors),
        cmocka_unit_test(test_subpixel_shift),
        cmocka_unit_test(test_draw_ranges),
        cmocka_unit_test(test_elastic),
        cmocka_unit_test(test_noise),
        cmocka_unit_test(test_probability_gate),
        cmocka_unit_test(test_batch_determinism),
        cmocka_unit_test(test_training_determinism),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

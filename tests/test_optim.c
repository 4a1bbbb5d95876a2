/*
 * The optimizers against numbers worked out by hand: two Adam steps (Keras's form, with epsilon
 * outside the square root and the bias corrections folded into the step size) and two SGD steps
 * with momentum. Seven parameters, so that a vectorised loop also has to get its tail right.
 */
#include "testutil.h"
#include "optim.h"

#include <math.h>

/* The float32 constants (0.9f is 0.899999976...) move the results by at most 3e-7 from the
 * decimal arithmetic below; parameters near 2 are themselves only held to 2.4e-7. */
#define TOL 1e-6

enum { N = 7 };

static const float P0[N] = {1.0f, -0.5f, 0.25f, 2.0f, 0.0f, 3.0f, -1.0f};
static const float G1[N] = {0.5f, -0.2f, 0.0f, 1e-6f, 4.0f, -3.0f, 0.1f};
static const float G2[N] = {0.1f, 0.3f, 0.0f, 1e-6f, -4.0f, -3.0f, 0.0f};

/*
 * Adam, lr = 0.1, beta1 = 0.9, beta2 = 0.999, eps = 1e-7, m = v = 0 at the start.
 *   lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;  p -= lr_t m / (sqrt(v) + eps)
 *
 * Step t = 1:  lr_1 = 0.1 * sqrt(0.001) / 0.1 = sqrt(0.001) = 0.0316227766016838
 *   m = 0.1 g, v = 0.001 g^2, so m / sqrt(v) = sign(g) * sqrt(10) and the step is about lr
 *   whenever |g| >> eps:
 *   i  g      m       v         sqrt(v)          lr_1 m / (sqrt(v) + eps)   p
 *   0  0.5    0.05    2.5e-4    0.0158113883     0.0999993676               1 - that    = 0.9000006325
 *   1 -0.2   -0.02    4e-5      0.0063245553    -0.0999984189              -0.5 + that  = -0.4000015811
 *   2  0      0       0         0                0 (0 / eps)                 0.25
 *   3  1e-6   1e-7    1e-15     3.16227766e-8    0.0316228 * 1e-7 / 1.316227766e-7
 *                                                = 0.0240253073              2 - that    = 1.9759746927
 *   4  4      0.4     0.016     0.1264911064     0.0999999209               -0.0999999209
 *   5 -3     -0.3     0.009     0.0948683298    -0.0999998946               3.0999998946
 *   6  0.1    0.01    1e-5      0.0031622777     0.0999968378               -1.0999968378
 *   Row 3 is where eps matters, and where this form differs from PyTorch's, which adds eps to
 *   sqrt(v / (1 - beta2^t)) = |g| = 1e-6 and would step 0.1 * 1e-6 / 1.1e-6 = 0.0909.
 *
 * Step t = 2:  lr_2 = 0.1 * sqrt(1 - 0.998001) / (1 - 0.81) = 0.1 * 0.0447101778 / 0.19
 *                   = 0.0235316725327453
 *   m = 0.9 m_1 + 0.1 g, v = 0.999 v_1 + 0.001 g^2
 *   i  g     m                           v                                    step = lr_2 m / (sqrt(v) + eps)   p
 *   0  0.1   0.045 + 0.01 = 0.055        2.4975e-4 + 1e-5 = 2.5975e-4         0.0235317 * 0.055 / 0.0161168 = 0.0803036  0.8196970329
 *   1  0.3  -0.018 + 0.03 = 0.012        3.996e-5 + 9e-5 = 1.2996e-4          0.0235317 * 0.012 / 0.0114    = 0.0247700 -0.4247715454
 *   2  0     0                           0                                    0                                          0.25
 *   3  1e-6  9e-8 + 1e-7 = 1.9e-7        9.99e-16 + 1e-15 = 1.999e-15         0.0235317 * 1.9e-7 / 1.4471e-7 = 0.0308964 1.9450783321
 *   4 -4     0.36 - 0.4 = -0.04          0.015984 + 0.016 = 0.031984          0.0235317 * -0.04 / 0.178841  = -0.0052632 -0.0947367660
 *   5 -3    -0.27 - 0.3 = -0.57          0.008991 + 0.009 = 0.017991          0.0235317 * -0.57 / 0.134131  = -0.0999999 3.1999998200
 *   6  0     0.009                       9.99e-6                              0.0235317 * 0.009 / 0.0031607  = 0.0670037 -1.1670005434
 *   Row 6 has no gradient at t = 2 and still moves: momentum.
 */
static void test_adam_two_steps(void **state)
{
    (void)state;
    float p[N], g[N], m[N] = {0}, v[N] = {0};
    memcpy(p, P0, sizeof p);

    memcpy(g, G1, sizeof g);
    dn_adam_step(p, g, m, v, N, 1, 0.1f, 0.9f, 0.999f, 1e-7f);
    static const double m1[N] = {0.05, -0.02, 0.0, 1e-7, 0.4, -0.3, 0.01};
    static const double v1[N] = {2.5e-4, 4e-5, 0.0, 1e-15, 0.016, 0.009, 1e-5};
    static const double p1[N] = {0.9000006325, -0.4000015811, 0.25, 1.9759746927, -0.0999999209, 3.0999998946,
                                 -1.0999968378};
    for (int i = 0; i < N; i++) {
        assert_near(m[i], m1[i], 1e-6 * fabs(m1[i]) + 1e-12);
        assert_near(v[i], v1[i], 2e-5 * fabs(v1[i]) + 1e-20); /* 1 - 0.999f = 0.00099998713 */
        assert_near(p[i], p1[i], TOL);
    }
    /* The gradient is an input: left alone. */
    assert_memory_equal(g, G1, sizeof g);

    memcpy(g, G2, sizeof g);
    dn_adam_step(p, g, m, v, N, 2, 0.1f, 0.9f, 0.999f, 1e-7f);
    static const double m2[N] = {0.055, 0.012, 0.0, 1.9e-7, -0.04, -0.57, 0.009};
    static const double v2[N] = {2.5975e-4, 1.2996e-4, 0.0, 1.999e-15, 0.031984, 0.017991, 9.99e-6};
    static const double p2[N] = {0.8196970329, -0.4247715454, 0.25, 1.9450783321, -0.0947367660, 3.1999998200,
                                 -1.1670005434};
    for (int i = 0; i < N; i++) {
        assert_near(m[i], m2[i], 1e-6 * fabs(m2[i]) + 1e-12);
        assert_near(v[i], v2[i], 2e-5 * fabs(v2[i]) + 1e-20);
        assert_near(p[i], p2[i], TOL);
    }
}

/*
 * With a constant gradient the bias corrections cancel exactly: m_t = (1 - b1^t) g and
 * v_t = (1 - b2^t) g^2, so lr_t m_t / sqrt(v_t) = lr * sign(g) at every t. Each of 200 steps must
 * move the parameter by lr (g = 0.5 >> eps, so eps changes the step by only 2e-7 relative).
 * A missing or wrong correction (say 1 - b1^t in place of sqrt(1 - b2^t)) fails this at some t.
 */
static void test_adam_constant_gradient(void **state)
{
    (void)state;
    float p[3] = {0.0f, 0.0f, 0.0f}, g[3] = {0.5f, -0.5f, 0.0f}, m[3] = {0}, v[3] = {0};
    double before = 0.0;
    for (long t = 1; t <= 200; t++) {
        dn_adam_step(p, g, m, v, 3, t, 0.01f, 0.9f, 0.999f, 1e-7f);
        assert_near(before - p[0], 0.01, 2e-7 + 1e-6 * (double)t * 0.01); /* float steps accumulate rounding */
        assert_near(p[1], -p[0], 0.0);
        assert_near(p[2], 0.0, 0.0);
        before = p[0];
    }
    assert_near(p[0], -2.0, 2e-4);
}

/* n = 0 touches nothing. */
static void test_zero_length(void **state)
{
    (void)state;
    float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
    dn_adam_step(&p, &g, &m, &v, 0, 1, 0.1f, 0.9f, 0.999f, 1e-7f);
    dn_sgd_step(&p, &g, &m, 0, 0.1f, 0.9f);
    assert_near(p, 1.0, 0.0);
    assert_near(m, 0.0, 0.0);
    assert_near(v, 0.0, 0.0);
}

/*
 * SGD with momentum as Keras: velocity = momentum * velocity - lr * g; p += velocity.
 * lr = 0.1, momentum = 0.9, velocity 0 at the start.
 *   i  p0    g1    velocity_1 = -0.1 g1   p1      g2    velocity_2 = 0.9 velocity_1 - 0.1 g2    p2
 *   0  1     0.5   -0.05                  0.95    -0.2  -0.045 + 0.02 = -0.025                  0.925
 *   1 -2    -1      0.1                  -1.9     -1     0.09 + 0.1 = 0.19                      -1.71
 *   2  0.5   0      0                     0.5      0.3   0 - 0.03 = -0.03                        0.47
 */
static void test_sgd_momentum_two_steps(void **state)
{
    (void)state;
    float p[3] = {1.0f, -2.0f, 0.5f}, vel[3] = {0};
    const float g1[3] = {0.5f, -1.0f, 0.0f}, g2[3] = {-0.2f, -1.0f, 0.3f};
    dn_sgd_step(p, g1, vel, 3, 0.1f, 0.9f);
    static const double vel1[3] = {-0.05, 0.1, 0.0}, p1[3] = {0.95, -1.9, 0.5};
    for (int i = 0; i < 3; i++) {
        assert_near(vel[i], vel1[i], 1e-7);
        assert_near(p[i], p1[i], 1e-7);
    }
    dn_sgd_step(p, g2, vel, 3, 0.1f, 0.9f);
    static const double vel2[3] = {-0.025, 0.19, -0.03}, p2[3] = {0.925, -1.71, 0.47};
    for (int i = 0; i < 3; i++) {
        assert_near(vel[i], vel2[i], 1e-7);
        assert_near(p[i], p2[i], 2e-7);
    }
}

/* Momentum 0 is plain gradient descent: p -= lr g each step, the velocity only -lr g. */
static void test_sgd_without_momentum(void **state)
{
    (void)state;
    float p[N], vel[N] = {0};
    memcpy(p, P0, sizeof p);
    dn_sgd_step(p, G1, vel, N, 0.5f, 0.0f);
    dn_sgd_step(p, G2, vel, N, 0.5f, 0.0f);
    for (int i = 0; i < N; i++) {
        assert_near(p[i], (double)P0[i] - 0.5 * ((double)G1[i] + G2[i]), 1e-6);
        assert_near(vel[i], -0.5 * (double)G2[i], 1e-7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adam_two_steps),
        cmocka_unit_test(test_adam_constant_gradient),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_sgd_momentum_two_steps),
        cmocka_unit_test(test_sgd_without_momentum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

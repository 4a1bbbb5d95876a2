/* Optimizers: one loop over the whole parameter block, because every layer's weights live in it. */
#include "optim.h"
#include "kernels/kernels.h"

#include "internal.h" /* DN_MULTIVERSION */

#include <math.h>

#define CHUNK 8192 /* elements per thread's share */

/* One chunk, in a function of its own so that it is compiled for AVX-512 / AVX2 as well (C11 mode
 * contracts nothing into FMAs, so every variant computes the same bits). */
DN_MULTIVERSION
static void adam_chunk(float *restrict params, const float *restrict grads, float *restrict m, float *restrict v,
                       size_t n, float step, float beta1, float beta2, float eps, float keep)
{
    /* keep = 1 - lr * weight_decay; p * 1.0f is p exactly, so without decay the bits are Adam's. */
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        params[i] = params[i] * keep - step * m[i] / (sqrtf(v[i]) + eps);
    }
}

void dn_adam_step(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                  float beta1, float beta2, float eps)
{
    dn_adamw_step(params, grads, m, v, n, t, lr, beta1, beta2, eps, 0.0f);
}

void dn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                   float beta1, float beta2, float eps, float weight_decay)
{
    const float keep = 1.0f - lr * weight_decay;
    /* The bias corrections are folded into the step size (Keras / the Adam paper's section 2). */
    const double lr_t = lr * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t));
    const float step = (float)lr_t;
    /* Element by element: the threads change nothing but the speed. */
    const size_t chunks = (n + CHUNK - 1) / CHUNK;
    DN_PARALLEL_FOR(n > 1 << 15, for (size_t c = 0; c < chunks; c++) {
        const size_t i0 = c * CHUNK, i1 = n - i0 < CHUNK ? n : i0 + CHUNK;
        adam_chunk(params + i0, grads + i0, m + i0, v + i0, i1 - i0, step, beta1, beta2, eps, keep);
    });
}

void dn_sgd_step(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum)
{
    dn_sgdw_step(params, grads, velocity, n, lr, momentum, 0.0f);
}

void dn_sgdw_step(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum,
                  float weight_decay)
{
    const float keep = 1.0f - lr * weight_decay; /* 1.0f without decay: the same bits as before */
    DN_PARALLEL_FOR_SIMD(n > 1 << 15, for (size_t i = 0; i < n; i++) {
        velocity[i] = momentum * velocity[i] - lr * grads[i];
        params[i] = params[i] * keep + velocity[i];
    });
}

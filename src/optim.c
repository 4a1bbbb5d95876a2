/* Optimizers: one loop over the whole parameter block, because every layer's weights live in it. */
#include "optim.h"

#include <math.h>

void dn_adam_step(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                  float beta1, float beta2, float eps)
{
    /* The bias corrections are folded into the step size (Keras / the Adam paper's section 2). */
    const double lr_t = lr * sqrt(1.0 - pow(beta2, (double)t)) / (1.0 - pow(beta1, (double)t));
    const float step = (float)lr_t;
    /* Element by element: the threads change nothing but the speed. */
#pragma omp parallel for simd schedule(static) if (n > 1 << 15)
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        params[i] -= step * m[i] / (sqrtf(v[i]) + eps);
    }
}

void dn_sgd_step(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum)
{
#pragma omp parallel for simd schedule(static) if (n > 1 << 15)
    for (size_t i = 0; i < n; i++) {
        velocity[i] = momentum * velocity[i] - lr * grads[i];
        params[i] += velocity[i];
    }
}

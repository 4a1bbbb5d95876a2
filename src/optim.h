/* Optimizer steps over one contiguous parameter block. */
#ifndef DN_OPTIM_H
#define DN_OPTIM_H

#include <stddef.h>

/* Adam as Keras implements it: step t (1-based), lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t),
 * m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= lr_t * m / (sqrt(v) + eps). */
void dn_adam_step(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                  float beta1, float beta2, float eps);

/* SGD with momentum as Keras: velocity = momentum * velocity - lr * g; p += velocity. */
void dn_sgd_step(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum);

/* The same with decoupled weight decay (AdamW, Loshchilov and Hutter 2019, as PyTorch's AdamW):
 * p = p * (1 - lr * weight_decay) - lr_t * m / (sqrt(v) + eps), on every parameter of the block
 * (weights, biases and batchnorm's gamma and beta alike, PyTorch's default). lr is the step's
 * scheduled rate. weight_decay 0 gives dn_adam_step's bits exactly. */
void dn_adamw_step(float *params, const float *grads, float *m, float *v, size_t n, long t, float lr,
                   float beta1, float beta2, float eps, float weight_decay);
/* SGD with decoupled decay: velocity as dn_sgd_step, p = p * (1 - lr * weight_decay) + velocity. */
void dn_sgdw_step(float *params, const float *grads, float *velocity, size_t n, float lr, float momentum,
                  float weight_decay);

#endif

/* Stand-alone activation layers: relu, sigmoid, tanh, softmax (softmax over the channel axis).
 * Four registry entries share this one file because they differ only in the function applied;
 * a file each would repeat the same forty lines four times.
 *   spec: relu | sigmoid | tanh | softmax */
#include "layers/layer.h"
#include "internal.h" /* DN_MULTIVERSION */

#include <stdio.h>
#include <string.h>

static dn_status activation_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    if (a->argc)
        return dn_fail(err, DN_EFORMAT, "%s: %s takes no options, found '%s'", a->where, L->ops->name, a->argv[0]);
    L->act = (dn_activation)dn_activation_lookup(L->ops->name);
    return DN_OK;
}

static void activation_print(const dn_layer *L, char *buf, size_t size)
{
    snprintf(buf, size, "%s", L->ops->name);
}

static dn_status activation_shape(dn_layer *L, const char *where, dn_error *err)
{
    (void)where, (void)err;
    L->out = L->in;
    return DN_OK;
}

/* ReLU, the common case after batchnorm, reads its input and writes its output in one pass (a copy
 * and then a pass in place cost a sixth of a batchnorm network's step). */
DN_MULTIVERSION
static void relu_rows(const float *restrict in, float *restrict out, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] < 0.0f ? 0.0f : in[i]; /* NaN stays NaN, as in dn_activation_forward */
}

DN_MULTIVERSION
static void relu_backward_rows(const float *restrict y, const float *restrict dout, float *restrict din, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++)
        din[i] = y[i] > 0.0f ? dout[i] : 0.0f;
}

static void activation_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first, (void)training;
    size_t rows = (size_t)n * L->in.h * L->in.w;
    if (L->act == DN_ACT_RELU) {
        relu_rows(in, out, rows * (size_t)L->in.c);
        return;
    }
    memcpy(out, in, sizeof(float) * rows * (size_t)L->in.c);
    dn_activation_forward(L->act, out, rows, (size_t)L->in.c);
}

static void activation_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)in, (void)first, (void)grads;
    size_t rows = (size_t)n * L->in.h * L->in.w;
    if (L->act == DN_ACT_RELU && !L->fused_loss) {
        if (din)
            relu_backward_rows(out, dout, din, rows * (size_t)L->in.c);
        return;
    }
    if (!L->fused_loss)
        dn_activation_backward(L->act, out, dout, rows, (size_t)L->in.c);
    if (din)
        memcpy(din, dout, sizeof(float) * rows * (size_t)L->in.c);
}

#define ACTIVATION_OPS(sym, keyword)                                                                         \
    const dn_layer_ops sym = {                                                                               \
        .name = keyword,                                                                                     \
        .parse = activation_parse,                                                                           \
        .print = activation_print,                                                                           \
        .shape = activation_shape,                                                                           \
        .rows = DN_ROWS_EACH,                                                                                \
        .forward = activation_forward,                                                                       \
        .backward = activation_backward,                                                                     \
    };
ACTIVATION_OPS(dn_relu_ops, "relu")
ACTIVATION_OPS(dn_sigmoid_ops, "sigmoid")
ACTIVATION_OPS(dn_tanh_ops, "tanh")
ACTIVATION_OPS(dn_softmax_ops, "softmax")

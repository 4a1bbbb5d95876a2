/* globalavgpool: (H, W, C) -> (C), the mean of each channel over the whole map (Keras'
 * GlobalAveragePooling2D, ONNX GlobalAveragePool followed by a flatten). The output is a vector, so
 * a dense layer may follow it directly, without a flatten.
 *   spec: globalavgpool */
#include "layers/layer.h"

#include <stdio.h>
#include <string.h>

static dn_status gap_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    (void)L;
    if (a->argc)
        return dn_fail(err, DN_EFORMAT, "%s: globalavgpool takes no options, found '%s'", a->where, a->argv[0]);
    return DN_OK;
}

static void gap_print(const dn_layer *L, char *buf, size_t size)
{
    (void)L;
    snprintf(buf, size, "globalavgpool");
}

/* Any input: a vector (1x1xC) passes through unchanged. */
static dn_status gap_shape(dn_layer *L, const char *where, dn_error *err)
{
    (void)where, (void)err;
    L->out = (dn_shape){1, 1, L->in.c};
    return DN_OK;
}

static void gap_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first, (void)training;
    const size_t area = (size_t)L->in.h * (size_t)L->in.w, c = (size_t)L->in.c;
    const float inv = 1.0f / (float)area;
    for (int r = 0; r < n; r++) {
        const float *x = in + (size_t)r * area * c; /* (H*W, C) */
        float *y = out + (size_t)r * c;             /* (C) */
        memset(y, 0, sizeof(float) * c);
        for (size_t p = 0; p < area; p++)
            for (size_t k = 0; k < c; k++)
                y[k] += x[p * c + k];
        for (size_t k = 0; k < c; k++)
            y[k] *= inv;
    }
}

static void gap_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                         float *grads)
{
    (void)in, (void)out, (void)first, (void)grads;
    if (!din)
        return;
    const size_t area = (size_t)L->in.h * (size_t)L->in.w, c = (size_t)L->in.c;
    const float inv = 1.0f / (float)area;
    for (int r = 0; r < n; r++) {
        const float *dy = dout + (size_t)r * c; /* (C) */
        float *dx = din + (size_t)r * area * c; /* (H*W, C): every position gets its channel's share */
        for (size_t p = 0; p < area; p++)
            for (size_t k = 0; k < c; k++)
                dx[p * c + k] = dy[k] * inv;
    }
}

const dn_layer_ops dn_globalavgpool_ops = {
    .name = "globalavgpool",
    .flat_output = 1,
    .parse = gap_parse,
    .print = gap_print,
    .shape = gap_shape,
    .rows = DN_ROWS_EACH,
    .forward = gap_forward,
    .backward = gap_backward,
};

/* flatten: (H, W, C) -> (H*W*C) in channels-last order, as Keras flattens. The data does not move;
 * only the shape changes, so forward and backward are copies.
 *   spec: flatten */
#include "layers/layer.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

static dn_status flatten_parse(dn_layer *L, const dn_spec_args *a, dn_error *err)
{
    (void)L;
    if (a->argc)
        return dn_fail(err, DN_EFORMAT, "%s: flatten takes no options, found '%s'", a->where, a->argv[0]);
    return DN_OK;
}

static void flatten_print(const dn_layer *L, char *buf, size_t size)
{
    (void)L;
    snprintf(buf, size, "flatten");
}

static dn_status flatten_shape(dn_layer *L, const char *where, dn_error *err)
{
    /* The vector's length is an int (dn_shape.c); a longer one would be cut to garbage. */
    if (dn_shape_size(L->in) > INT_MAX)
        return dn_fail(err, DN_ELIMIT, "%s: flatten of a %dx%dx%d input makes %zu values, over the limit of %d", where,
                       L->in.h, L->in.w, L->in.c, dn_shape_size(L->in), INT_MAX);
    L->out = (dn_shape){1, 1, (int)dn_shape_size(L->in)};
    return DN_OK;
}

static void flatten_forward(dn_layer *L, const float *in, float *out, int first, int n, int training)
{
    (void)first, (void)training;
    memcpy(out, in, sizeof(float) * dn_shape_size(L->in) * (size_t)n);
}

static void flatten_backward(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                       float *grads)
{
    (void)in, (void)out, (void)first, (void)grads;
    if (din)
        memcpy(din, dout, sizeof(float) * dn_shape_size(L->in) * (size_t)n);
}

const dn_layer_ops dn_flatten_ops = {
    .name = "flatten",
    .flat_output = 1,
    .parse = flatten_parse,
    .print = flatten_print,
    .shape = flatten_shape,
    .rows = DN_ROWS_EACH,
    .forward = flatten_forward,
    .backward = flatten_backward,
};

/* ONNX export of the int8 network (dn_quantize): one or a few int8 nodes per quantised operation,
 * so that onnxruntime runs the integer arithmetic of src/quant/int8_kernels.h.
 *
 *   input float (N, H, W, C) raw pixels -> Transpose to NCHW -> QuantizeLinear(scale 1, zero point
 *   -128): q = pixel - 128, digitnet's own input (read from then on with scale 1 / raw_max)
 *   CONV     QLinearConv: the int8 weights (F, C, KH, KW) with their per-channel scales and zero
 *            points 0, the int32 biases; dense is a convolution whose window is its whole input,
 *            which keeps digitnet's channels-last flatten order without a transpose
 *   ReLU     fused: the output range starts at 0, so its zero point is -128 and the clamp is
 *            QLinearConv's own saturation; otherwise Max(x, zero point) on int8 (exact)
 *   MAXPOOL  MaxPool on int8 (exact; ONNX pads never win, as in dnq_maxpool)
 *   LOOKUP   Cast to int32, Add 128, Gather from digitnet's 256-entry table (exact)
 *   logits   Transpose back to NHWC, DequantizeLinear, Flatten, Softmax -> probabilities
 *
 * Every step but one is the host's arithmetic bit for bit: QLinearConv rescales its exact int32
 * accumulator by the float x_scale w_scale / y_scale and rounds half to even, where digitnet
 * multiplies by a 32-bit fixed-point multiplier and shifts, rounding half up. The two agree
 * except when the product lies within about 1e-7 of a half, where the int8 result can differ by
 * one step. */
#include "onnx/dn_onnx.h"
#include "onnx/onnx_build.h"
#include "quant/quant.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The current tensor's quantisation parameters, as the next node reads them. */
typedef struct qtensor {
    const char *scale, *zero_point; /* initializer names: float scalar, int8 scalar */
} qtensor;

static const char *scalar_float(builder *b, const char *stem, float v)
{
    return onnx_tensor(b, stem, 0, NULL, &v);
}

static const char *scalar_int8(builder *b, const char *stem, int32_t v)
{
    int8_t q = (int8_t)v;
    return onnx_tensor_raw(b, stem, ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 0, NULL, &q, 1);
}

static void transpose(builder *b, int to_nchw)
{
    static const int64_t nchw[4] = {0, 3, 1, 2}, nhwc[4] = {0, 2, 3, 1};
    const char *in[1] = {b->cur};
    onnx_attr_ints(b, onnx_node(b, "Transpose", 1, in), "perm", 4, to_nchw ? nchw : nhwc);
}

/* kernel_shape, strides and pads of a window op (pads after: whatever the output size needs). */
static void window_attrs(builder *b, Onnx__NodeProto *node, const dnq_layer *L)
{
    int64_t k[2] = {L->kh, L->kw}, s[2] = {L->stride_h, L->stride_w}, pads[4] = {L->pad_top, L->pad_left, 0, 0};
    int64_t after_h = (int64_t)(L->out_h - 1) * L->stride_h + L->kh - L->in_h - L->pad_top;
    int64_t after_w = (int64_t)(L->out_w - 1) * L->stride_w + L->kw - L->in_w - L->pad_left;
    pads[2] = after_h > 0 ? after_h : 0;
    pads[3] = after_w > 0 ? after_w : 0;
    onnx_attr_ints(b, node, "kernel_shape", 2, k);
    onnx_attr_ints(b, node, "strides", 2, s);
    onnx_attr_ints(b, node, "pads", 4, pads);
}

/* y = max(x, act_min) on int8. */
static void clamp_below(builder *b, int32_t act_min)
{
    const char *in[2] = {b->cur, scalar_int8(b, "act_min", act_min)};
    onnx_node(b, "Max", 2, in);
}

static dn_status export_conv(builder *b, const dn_qop *op, qtensor *x, dn_error *err)
{
    const dnq_layer *L = &op->q;
    const int F = L->out_c, C = L->in_c, kh = L->kh, kw = L->kw;
    const size_t taps = (size_t)kh * kw * C;
    int8_t *oihw = malloc(taps * (size_t)F), *zeros = calloc((size_t)F, 1);
    if (!oihw || !zeros) {
        free(oihw), free(zeros);
        return dn_fail(err, DN_ENOMEM, "out of memory exporting layer %d", op->source + 1);
    }
    for (int f = 0; f < F; f++) /* digitnet (F, KH, KW, C) -> ONNX (F, C, KH, KW) */
        for (int y = 0; y < kh; y++)
            for (int xx = 0; xx < kw; xx++)
                for (int c = 0; c < C; c++)
                    oihw[(((size_t)f * C + c) * kh + y) * kw + xx] = L->weight[(size_t)f * taps + ((size_t)y * kw + xx) * C + c];
    const int64_t wdims[4] = {F, C, kh, kw}, fdims[1] = {F};
    qtensor y = {scalar_float(b, "y_scale", op->out_scale), scalar_int8(b, "y_zero_point", L->out_zp)};
    const char *in[9] = {
        b->cur,
        x->scale,
        x->zero_point,
        onnx_tensor_raw(b, "w", ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 4, wdims, oihw, taps * (size_t)F),
        onnx_tensor(b, "w_scale", 1, fdims, op->weight_scale),
        onnx_tensor_raw(b, "w_zero_point", ONNX__TENSOR_PROTO__DATA_TYPE__INT8, 1, fdims, zeros, (size_t)F),
        y.scale,
        y.zero_point,
        onnx_tensor_raw(b, "bias", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 1, fdims, L->bias, sizeof(int32_t) * (size_t)F),
    };
    free(oihw), free(zeros);
    window_attrs(b, onnx_node(b, "QLinearConv", 9, in), L);
    if (L->act_min > -128) /* a fused ReLU whose zero point is above -128 */
        clamp_below(b, L->act_min);
    *x = y;
    return DN_OK;
}

static dn_status export_lookup(builder *b, const dn_qop *op, qtensor *x)
{
    const int32_t offset = 128;
    const int64_t tdims[1] = {256};
    const char *cast_in[1] = {b->cur};
    onnx_attr_int(b, onnx_node(b, "Cast", 1, cast_in), "to", ONNX__TENSOR_PROTO__DATA_TYPE__INT32);
    const char *add_in[2] = {b->cur, onnx_tensor_raw(b, "offset", ONNX__TENSOR_PROTO__DATA_TYPE__INT32, 0, NULL, &offset,
                                                     sizeof offset)};
    onnx_node(b, "Add", 2, add_in);
    const char *gather_in[2] = {
        onnx_tensor_raw(b, op->act == DN_QACT_SIGMOID ? "sigmoid_table" : "tanh_table", ONNX__TENSOR_PROTO__DATA_TYPE__INT8,
                        1, tdims, op->q.table, 256),
        b->cur};
    onnx_attr_int(b, onnx_node(b, "Gather", 2, gather_in), "axis", 0);
    x->scale = scalar_float(b, "y_scale", op->out_scale);
    x->zero_point = scalar_int8(b, "y_zero_point", op->q.out_zp);
    return DN_OK;
}

static dn_status build_int8(builder *b, const dn_qnet *q, dn_error *err)
{
    /* q = pixel - 128 exactly: QuantizeLinear with scale 1; the next node reads it with scale 1 / raw_max. */
    const char *tin[1] = {"input"};
    b->cur = tin[0];
    transpose(b, 1);
    const char *quant_in[3] = {b->cur, scalar_float(b, "pixel_step", 1.0f), scalar_int8(b, "pixel_zero_point", -128)};
    onnx_node(b, "QuantizeLinear", 3, quant_in);
    qtensor x = {scalar_float(b, "x_scale", 1.0f / (float)q->raw_max), scalar_int8(b, "x_zero_point", -128)};
    for (int i = 0; i < q->n_ops; i++) {
        const dn_qop *op = &q->ops[i];
        dn_status st = DN_OK;
        const char *in[1] = {b->cur};
        switch (op->q.kind) {
        case DNQ_CONV:
            st = export_conv(b, op, &x, err);
            break;
        case DNQ_MAXPOOL:
            window_attrs(b, onnx_node(b, "MaxPool", 1, in), &op->q);
            break;
        case DNQ_LOOKUP:
            st = export_lookup(b, op, &x);
            break;
        case DNQ_CLAMP:
            clamp_below(b, op->q.act_min);
            break;
        default:
            st = dn_fail(err, DN_EARG, "layer %d: an int8 operation of kind %d has no ONNX form", op->source + 1,
                         (int)op->q.kind);
        }
        if (st != DN_OK)
            return st;
    }
    transpose(b, 0); /* the logits in digitnet's order, whatever shape the last op has */
    const char *deq_in[3] = {b->cur, x.scale, x.zero_point};
    onnx_node(b, "DequantizeLinear", 3, deq_in);
    const char *flat_in[1] = {b->cur};
    onnx_attr_int(b, onnx_node(b, "Flatten", 1, flat_in), "axis", 1);
    const char *soft_in[1] = {b->cur};
    onnx_attr_int(b, onnx_node(b, "Softmax", 1, soft_in), "axis", -1);
    return b->failed ? dn_fail(err, DN_ENOMEM, "out of memory building the ONNX graph") : DN_OK;
}

dn_status dn_onnx_export_int8(const dn_net *net, const dn_qnet *q, int n_calibration, const char *path, dn_error *err)
{
    if (!net || !q || !path)
        return dn_fail(err, DN_EARG, "dn_onnx_export_int8: net, q and path are required");
    if (dn_net_ensemble_size(net) > 1)
        return dn_fail(err, DN_EARG, "ensembles cannot be quantised yet (an ensemble of %d)", dn_net_ensemble_size(net));
    builder b = {0};
    dn_status st = build_int8(&b, q, err);
    if (st != DN_OK) {
        onnx_builder_free(&b);
        return st;
    }
    char rows[24];
    snprintf(rows, sizeof rows, "%d", n_calibration);
    const char *extra[4] = {"quantization", "int8", "calibration_rows", rows};
    return onnx_write_model(&b, net, extra, 2, path, err);
}

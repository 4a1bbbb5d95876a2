/* ONNX export and import of digitnet networks (src/onnx/). Self-contained: the protobuf-c code for
 * ONNX's own onnx.proto (Debian's libonnx-dev) is generated in the build and compiled into this
 * folder's onnx_proto.c; nothing outside src/onnx/ includes it. Link with -lprotobuf-c.
 *
 * The exported graph takes `input`, float32 (N, H, W, C) raw pixel values in the data set's units
 * (0..255 for 28x28 MNIST, 0..16 for 8x8 optdigits; the scaling and the layout change are inside the
 * graph) with a symbolic batch dimension N, and gives `probabilities`, float32 (N, 10). */
#ifndef DN_ONNX_H
#define DN_ONNX_H

#include "digitnet.h"

#include <stddef.h>
#include <stdint.h>

#define DN_ONNX_IR_VERSION 7
#define DN_ONNX_OPSET 13

/* Writes net as an ONNX model (IR 7, opset 13) to path: written to a temporary name in the same
 * directory and renamed. The model's metadata_props hold the spec, raw_max, class names, the
 * preprocessing, input_scale ("1": the graph takes raw pixels) and the run notes. */
dn_status dn_onnx_export(const dn_net *net, const char *path, dn_error *err);

/* Writes the int8 network q (dn_quantize of net, calibrated on n_calibration rows) as an ONNX model
 * with the same input and output as dn_onnx_export: QuantizeLinear of the raw pixels, QLinearConv
 * (conv2d, and dense as a convolution whose window is its whole input) with int8 weights per output
 * channel and int32 biases, MaxPool and Max (a ReLU of its own) on int8, sigmoid and tanh as a
 * Gather from digitnet's 256-entry table, then DequantizeLinear and Softmax of the int8 logits.
 * The metadata adds quantization "int8" and calibration_rows. */
dn_status dn_onnx_export_int8(const dn_net *net, const dn_qnet *q, int n_calibration, const char *path, dn_error *err);

/* What dn_onnx_import found, for the caller to report. */
typedef struct dn_onnx_import_info {
    char layout[8];      /* "NCHW", "NHWC" or "flat": how the graph laid out its images */
    int n_nodes;         /* nodes in the graph */
    float input_scale;   /* the graph's input was taken as raw pixels / input_scale */
    int softmax_added;   /* the graph ended in 10 logits; digitnet added the softmax */
} dn_onnx_import_info;

/* Reads an ONNX CNN made of the layers digitnet has (Conv, MaxPool, Relu, Sigmoid, Tanh, Gemm,
 * MatMul + Add, Flatten / Reshape, Transpose, Dropout, BatchNormalization, Softmax), laid out NCHW
 * (PyTorch) or NHWC (tf2onnx), into a new network *out whose spec and weights reproduce it. The
 * graph's input is taken to be the raw pixels divided by input_scale; input_scale 0 means the
 * model's metadata "input_scale" when it has one, else the data set's usual scale (16 for 8x8
 * images, 255 otherwise). info may be NULL. What cannot be imported gets one line naming the node
 * and the op (DN_EFORMAT), a file that is not ONNX likewise. */
dn_status dn_onnx_import(const char *path, float input_scale, dn_net **out, dn_onnx_import_info *info,
                         dn_error *err);

/* dn_onnx_import of the bytes data[0..size); name stands for the file in messages. */
dn_status dn_onnx_import_bytes(const uint8_t *data, size_t size, const char *name, float input_scale, dn_net **out,
                               dn_onnx_import_info *info, dn_error *err);

#endif

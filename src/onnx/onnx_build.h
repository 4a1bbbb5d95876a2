/* The graph builder that src/onnx/'s exporters share (onnx_export.c, onnx_export_int8.c): protobuf-c
 * messages allocated through one builder and freed in one go. Internal to src/onnx/. */
#ifndef DN_ONNX_BUILD_H
#define DN_ONNX_BUILD_H

#include "onnx.pb-c.h"

#include "digitnet.h"

#include <stddef.h>
#include <stdint.h>

typedef enum layout { LAYOUT_NHWC, LAYOUT_NCHW, LAYOUT_FLAT } layout;

/* Everything the messages point to is allocated through the builder and freed in one go. */
typedef struct builder {
    void **allocs;
    size_t n_allocs, cap_allocs;
    Onnx__NodeProto **nodes;
    size_t n_nodes, cap_nodes;
    Onnx__TensorProto **inits;
    size_t n_inits, cap_inits;
    int failed;          /* an allocation failed: the result is thrown away */
    const char *cur;     /* name of the tensor the next layer reads */
    layout cur_layout;
    int counter;
} builder;

/* Zeroed memory owned by the builder; NULL (and b->failed) when out of memory. */
void *onnx_alloc(builder *b, size_t size);
char *onnx_strdup(builder *b, const char *s);
/* A fresh tensor name "<stem>_<n>". */
char *onnx_name(builder *b, const char *stem);
/* A float32 initializer holding data with the given dims. Returns its name. */
const char *onnx_tensor(builder *b, const char *stem, int ndim, const int64_t *dims, const float *data);
/* An initializer of any ONNX data type from its little-endian bytes (raw_data). Returns its name. */
const char *onnx_tensor_raw(builder *b, const char *stem, int data_type, int ndim, const int64_t *dims,
                            const void *bytes, size_t size);
/* A node op(inputs) -> a new tensor that becomes b->cur. Returns the node (NULL on failure). */
Onnx__NodeProto *onnx_node(builder *b, const char *op, int n_in, const char *const *inputs);
void onnx_attr_int(builder *b, Onnx__NodeProto *node, const char *name, int64_t v);
void onnx_attr_ints(builder *b, Onnx__NodeProto *node, const char *name, int n, const int64_t *v);
/* A float32 tensor value (N, dims...) with a symbolic batch dimension. */
Onnx__ValueInfoProto *onnx_value_info(builder *b, const char *name, int ndim, const int64_t *dims);
/* Window k with stride s over `in` cells, "same" or "valid": ONNX's pads before and after. */
void onnx_window_pads(int in, int k, int s, int same, int64_t *before, int64_t *after);

/* Finishes the graph (the last node's output becomes `probabilities`, the graph input `input`, float32
 * (N, H, W, C), as net's input), puts it in a model with net's metadata plus the extra key/value
 * pairs extra[0..2 n_extra), packs it, writes it to path through a temporary name, and frees
 * everything the builder holds. */
dn_status onnx_write_model(builder *b, const dn_net *net, const char *const *extra, int n_extra, const char *path,
                           dn_error *err);
/* Frees everything the builder holds (onnx_write_model does it itself). */
void onnx_builder_free(builder *b);

#endif

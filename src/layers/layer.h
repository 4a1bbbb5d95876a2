/* The layer interface. Every layer kind lives in one file under src/layers/ and exports one
 * dn_layer_ops; layers.def lists the kinds once. The network, the spec parser, the model file and
 * the summary find layers only through dn_layer_registry(). */
#ifndef DN_LAYER_H
#define DN_LAYER_H

#include "internal.h"

#include <stddef.h>

/* The kinds, in registry order (new kinds are appended at the end of layers.def). */
typedef enum dn_layer_kind {
#define DN_LAYER(kind, name, ops) DN_LAYER_##kind,
#include "layers/layers.def"
#undef DN_LAYER
    DN_LAYER_COUNT
} dn_layer_kind;

typedef enum dn_activation {
    DN_ACT_NONE = 0,
    DN_ACT_RELU,
    DN_ACT_SIGMOID,
    DN_ACT_TANH,
    DN_ACT_SOFTMAX
} dn_activation;

/* Bytes of per-kind configuration stored inline in every layer (no allocation per layer). */
#define DN_LAYER_CFG_BYTES 64

typedef struct dn_layer dn_layer;

/* How a layer's forward pass treats the rows of a batch. The network runs the leading layers that
 * work row by row on a few rows at a time on each thread, all of them in turn, so that one image's
 * activations are still in cache when the next layer reads them; the rest run on the whole batch. */
typedef enum dn_rows {
    DN_ROWS_BATCH = 0,       /* whole batch only */
    DN_ROWS_EACH,            /* each row on its own, in training and inference */
    DN_ROWS_EACH_INFERENCE   /* each row on its own in inference; training couples the rows
                                (batch statistics) or is faster on the whole batch (dense) */
} dn_rows;

/* Tokens of one spec line after the kind name. */
typedef struct dn_spec_args {
    int argc;
    char **argv;
    const char *where; /* "file:line" for messages */
} dn_spec_args;

typedef struct dn_layer_ops {
    const char *name; /* the spec keyword */
    int flat_output;  /* the output is a vector (dense, flatten), shown as (None, n) */
    dn_rows rows;     /* whether forward may run a few rows at a time (see dn_rows) */
    /* Reads the layer's settings from its spec line into L->cfg / L->act. */
    dn_status (*parse)(dn_layer *L, const dn_spec_args *args, dn_error *err);
    /* Writes the canonical spec line (without a newline). */
    void (*print)(const dn_layer *L, char *buf, size_t size);
    /* Given L->in, sets L->out, L->n_params (trainable floats), L->n_buffers (non-trainable floats)
     * L->scratch_per_item (floats of per-example scratch kept from forward to backward) and
     * L->scratch_fixed.
     * Says what is wrong when the input does not fit. */
    dn_status (*shape)(dn_layer *L, const char *where, dn_error *err);
    /* Initialises L->params / L->buffers (Keras defaults). NULL: nothing to initialise. */
    void (*init)(dn_layer *L, dn_rng *rng);
    /* Rows [first, first + n) of the batch: out (n, out) from in (n, in), both pointing at row
     * first; per-row scratch is that of rows first... training selects dropout / batch statistics
     * and keeps what backward needs (backward only ever follows a training pass, on the whole
     * batch). */
    void (*forward)(dn_layer *L, const float *in, float *out, int first, int n, int training);
    /* Rows [first, first + n) of the batch, every pointer at row first: given dout (n, out), which
     * it may overwrite, adds the parameter gradients into grads (n_params floats: L->grads, or the
     * network's partial sum for these rows) and writes din (n, in) unless din is NULL (first
     * layer). */
    void (*backward)(dn_layer *L, const float *in, const float *out, float *dout, float *din, int first, int n,
                     float *grads);
    /* Called once per forward pass of n rows before any forward call, on one thread (forward may
     * then run on several row blocks at once): takes what the blocks share (dropout: its place in
     * the random sequence). May be NULL. */
    void (*begin_forward)(dn_layer *L, int n, int training);
    /* Called once per batch before any backward call, on one thread (backward may then run on
     * several row blocks at once): prepares what they all read (conv2d: the flipped kernel). May
     * be NULL. */
    void (*begin_backward)(dn_layer *L);
    /* How many leading rows and columns of its input the forward pass reads (a "valid" pooling
     * window can leave the last ones out). NULL: all of them. */
    void (*reads)(const dn_layer *L, int *rows, int *cols);
    /* Names and shapes of the tensors in params then buffers, for model files. Returns the number
     * of tensors; fills names[i] / dims[i][0..ndim[i]) for i < max. NULL: no tensors. */
    int (*tensors)(const dn_layer *L, const char **names, int dims[][4], int *ndim, int max);
} dn_layer_ops;

struct dn_layer {
    const dn_layer_ops *ops;
    dn_layer_kind kind;
    dn_shape in, out;
    dn_activation act;    /* fused activation of conv2d / dense */
    int flat;             /* output is a vector: made by a flat_output layer or kept from a flat input */
    int fused_loss;       /* last layer with softmax: the loss hands over d(logits) directly */
    int relu_after;       /* batchnorm followed by relu: training runs the relu inside batchnorm (net.c) */
    size_t n_params;      /* trainable floats */
    size_t n_buffers;     /* non-trainable floats (batchnorm running statistics) */
    size_t scratch_per_item;
    size_t scratch_fixed; /* floats of per-batch scratch that do not grow with the batch */
    float *params, *grads, *buffers; /* views into the net's blocks */
    float *scratch;       /* (rows_cap * scratch_per_item + scratch_fixed), view into the batch arena */
    int rows_cap;         /* rows the arena holds */
    int used_h, used_w;   /* leading rows / columns of the output the next layer reads (the net sets them) */
    dn_rng *rng;          /* the net's generator (dropout) */
    union {
        unsigned char bytes[DN_LAYER_CFG_BYTES];
        double align;
    } cfg;
};

/* The per-kind configuration pointer, checked at compile time to fit. */
#define DN_LAYER_CFG(L, type) ((type *)(void *)(L)->cfg.bytes)
#define DN_LAYER_CFG_FITS(type) _Static_assert(sizeof(type) <= DN_LAYER_CFG_BYTES, #type " too large")

const dn_layer_ops *dn_layer_registry(dn_layer_kind kind);
/* Finds a kind by its spec keyword; returns DN_LAYER_COUNT when unknown. */
dn_layer_kind dn_layer_lookup(const char *name);

static inline size_t dn_shape_size(dn_shape s)
{
    return (size_t)s.h * (size_t)s.w * (size_t)s.c;
}

/* ---- helpers shared by the layer files (src/layers/common.c) ---- */

/* Activation names: "relu", "sigmoid", "tanh", "softmax", "linear". Returns -1 if unknown. */
int dn_activation_lookup(const char *name);
const char *dn_activation_name(dn_activation act);
/* y = act(x) in place over rows of `cols` values (softmax works per row). */
void dn_activation_forward(dn_activation act, float *x, size_t rows, size_t cols);
/* dy := dy * act'(y) in place, using the activation's output y. */
void dn_activation_backward(dn_activation act, const float *y, float *dy, size_t rows, size_t cols);

/* dy := dy * act'(y) (skipped when fused: the loss gave d(pre-activation) already), and dbias +=
 * the column sums of the result. */
void dn_activation_backward_bias(dn_activation act, int fused, const float *y, float *dy, size_t rows, size_t cols,
                                 float *dbias);

/* Parses "3x3" or "3" into (h, w). Returns 0 on success. */
int dn_parse_size2(const char *s, int *h, int *w);
/* Parses a positive int / a float in [lo, hi). Returns 0 on success. */
int dn_parse_int(const char *s, int *out);
int dn_parse_float(const char *s, float *out);

/* Output length of one axis for a window k and stride, and the padding before it, as TensorFlow
 * computes them for "same" (out = ceil(in / stride)) and "valid" (0 when the window does not fit). */
int dn_axis_out(int in, int k, int stride, int same, int *pad_before);

/* Glorot-uniform fill: limit sqrt(6 / (fan_in + fan_out)). */
void dn_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, dn_rng *rng);

#endif

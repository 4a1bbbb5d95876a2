/* ONNX export: one graph node (or a few) per digitnet layer, built as protobuf-c messages and packed.
 *
 * digitnet works channels-last, ONNX's Conv and MaxPool channels-first: the graph scales the raw
 * pixels, transposes to NCHW before the first convolution or pooling, and back to NHWC before a
 * flatten, so that the flattened vector is in digitnet's (and Keras') order and the dense kernels
 * go in unchanged. */
#include "onnx/dn_onnx.h"
#include "onnx/onnx_build.h"

#include "net.h"
#include "util/atomic_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *onnx_alloc(builder *b, size_t size)
{
    if (b->n_allocs == b->cap_allocs) {
        size_t cap = b->cap_allocs ? 2 * b->cap_allocs : 64;
        void **p = realloc(b->allocs, cap * sizeof *p);
        if (!p) {
            b->failed = 1;
            return NULL;
        }
        b->allocs = p;
        b->cap_allocs = cap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        b->failed = 1;
        return NULL;
    }
    b->allocs[b->n_allocs++] = p;
    return p;
}

char *onnx_strdup(builder *b, const char *s)
{
    char *p = onnx_alloc(b, strlen(s) + 1);
    if (p)
        strcpy(p, s);
    return p;
}

/* A fresh tensor name "<stem>_<n>". */
char *onnx_name(builder *b, const char *stem)
{
    char name[64];
    snprintf(name, sizeof name, "%s_%d", stem, b->counter++);
    return onnx_strdup(b, name);
}

static int b_push(builder *b, void ***items, size_t *n, size_t *cap, void *item)
{
    if (!item)
        return -1;
    if (*n == *cap) {
        size_t c = *cap ? 2 * *cap : 32;
        void **p = realloc(*items, c * sizeof *p);
        if (!p) {
            b->failed = 1;
            return -1;
        }
        *items = p;
        *cap = c;
    }
    (*items)[(*n)++] = item;
    return 0;
}

/* A float32 initializer holding data[0..count) with the given dims. Returns its name. */
const char *onnx_tensor(builder *b, const char *stem, int ndim, const int64_t *dims, const float *data)
{
    Onnx__TensorProto *t = onnx_alloc(b, sizeof *t);
    int64_t *d = onnx_alloc(b, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    size_t count = 1;
    for (int i = 0; i < ndim; i++)
        count *= (size_t)dims[i];
    float *values = onnx_alloc(b, sizeof(float) * count);
    char *name = onnx_name(b, stem);
    if (!t || !d || !values || !name)
        return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) /* a scalar has no dims (and NULL for them) */
        memcpy(d, dims, sizeof(int64_t) * (size_t)ndim);
    memcpy(values, data, sizeof(float) * count);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    t->n_float_data = count;
    t->float_data = values;
    t->name = name;
    return b_push(b, (void ***)&b->inits, &b->n_inits, &b->cap_inits, t) ? NULL : name;
}

const char *onnx_tensor_raw(builder *b, const char *stem, int data_type, int ndim, const int64_t *dims,
                            const void *bytes, size_t size)
{
    Onnx__TensorProto *t = onnx_alloc(b, sizeof *t);
    int64_t *d = onnx_alloc(b, sizeof(int64_t) * (size_t)(ndim ? ndim : 1));
    uint8_t *data = onnx_alloc(b, size);
    char *name = onnx_name(b, stem);
    if (!t || !d || !data || !name)
        return NULL;
    onnx__tensor_proto__init(t);
    if (ndim) /* a scalar has no dims (and NULL for them) */
        memcpy(d, dims, sizeof(int64_t) * (size_t)ndim);
    memcpy(data, bytes, size);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = data_type;
    t->has_raw_data = 1;
    t->raw_data.len = size;
    t->raw_data.data = data;
    t->name = name;
    return b_push(b, (void ***)&b->inits, &b->n_inits, &b->cap_inits, t) ? NULL : name;
}

/* A node op(inputs) -> a new tensor that becomes the current one. Returns the node (NULL on failure). */
Onnx__NodeProto *onnx_node(builder *b, const char *op, int n_in, const char *const *inputs)
{
    Onnx__NodeProto *node = onnx_alloc(b, sizeof *node);
    char **in = onnx_alloc(b, sizeof(char *) * (size_t)n_in), **out = onnx_alloc(b, sizeof(char *));
    if (!node || !in || !out)
        return NULL;
    onnx__node_proto__init(node);
    for (int i = 0; i < n_in; i++)
        if (!inputs[i] || !(in[i] = onnx_strdup(b, inputs[i])))
            return NULL;
    char stem[48];
    snprintf(stem, sizeof stem, "%s", op);
    for (char *c = stem; *c; c++)
        *c = (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c);
    out[0] = onnx_name(b, stem);
    node->name = onnx_name(b, op);
    node->op_type = onnx_strdup(b, op);
    if (!out[0] || !node->name || !node->op_type)
        return NULL;
    node->n_input = (size_t)n_in;
    node->input = in;
    node->n_output = 1;
    node->output = out;
    if (b_push(b, (void ***)&b->nodes, &b->n_nodes, &b->cap_nodes, node))
        return NULL;
    b->cur = out[0];
    return node;
}

static Onnx__AttributeProto *b_attr(builder *b, Onnx__NodeProto *node, const char *name)
{
    if (!node)
        return NULL;
    Onnx__AttributeProto *a = onnx_alloc(b, sizeof *a);
    Onnx__AttributeProto **list = onnx_alloc(b, sizeof *list * (node->n_attribute + 1));
    if (!a || !list || !(name = onnx_strdup(b, name)))
        return NULL;
    onnx__attribute_proto__init(a);
    a->name = (char *)name;
    if (node->n_attribute)
        memcpy(list, node->attribute, sizeof *list * node->n_attribute);
    list[node->n_attribute++] = a;
    node->attribute = list;
    return a;
}

void onnx_attr_int(builder *b, Onnx__NodeProto *node, const char *name, int64_t v)
{
    Onnx__AttributeProto *a = b_attr(b, node, name);
    if (!a)
        return;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
    a->has_i = 1;
    a->i = v;
}

static void b_attr_float(builder *b, Onnx__NodeProto *node, const char *name, float v)
{
    Onnx__AttributeProto *a = b_attr(b, node, name);
    if (!a)
        return;
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
    a->has_f = 1;
    a->f = v;
}

void onnx_attr_ints(builder *b, Onnx__NodeProto *node, const char *name, int n, const int64_t *v)
{
    Onnx__AttributeProto *a = b_attr(b, node, name);
    int64_t *ints = onnx_alloc(b, sizeof(int64_t) * (size_t)n);
    if (!a || !ints)
        return;
    memcpy(ints, v, sizeof(int64_t) * (size_t)n);
    a->has_type = 1;
    a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
    a->n_ints = (size_t)n;
    a->ints = ints;
}

static void b_transpose(builder *b, layout to)
{
    static const int64_t to_nchw[4] = {0, 3, 1, 2}, to_nhwc[4] = {0, 2, 3, 1};
    const char *in[1] = {b->cur};
    onnx_attr_ints(b, onnx_node(b, "Transpose", 1, in), "perm", 4, to == LAYOUT_NCHW ? to_nchw : to_nhwc);
    b->cur_layout = to;
}

static void need_nchw(builder *b)
{
    if (b->cur_layout == LAYOUT_NHWC)
        b_transpose(b, LAYOUT_NCHW);
}

/* A spatial tensor becomes (N, H*W*C) in digitnet's channels-last order. */
static void b_flatten(builder *b)
{
    if (b->cur_layout == LAYOUT_FLAT)
        return;
    if (b->cur_layout == LAYOUT_NCHW)
        b_transpose(b, LAYOUT_NHWC);
    const char *in[1] = {b->cur};
    onnx_attr_int(b, onnx_node(b, "Flatten", 1, in), "axis", 1);
    b->cur_layout = LAYOUT_FLAT;
}

static void b_activation(builder *b, dn_activation act)
{
    static const char *const ops[] = {
        [DN_ACT_RELU] = "Relu", [DN_ACT_SIGMOID] = "Sigmoid", [DN_ACT_TANH] = "Tanh", [DN_ACT_SOFTMAX] = "Softmax"};
    if (act == DN_ACT_NONE)
        return;
    const char *in[1] = {b->cur};
    Onnx__NodeProto *node = onnx_node(b, ops[act], 1, in);
    /* digitnet's softmax runs over the channels (the last axis of its NHWC tensors). */
    if (act == DN_ACT_SOFTMAX)
        onnx_attr_int(b, node, "axis", b->cur_layout == LAYOUT_NCHW ? 1 : -1);
}

/* The words of a layer's canonical spec line ("conv2d 16 3x3 same relu"). */
typedef struct spec_words {
    char text[160];
    char *word[16];
    int n;
} spec_words;

static void layer_words(const dn_layer *L, spec_words *w)
{
    L->ops->print(L, w->text, sizeof w->text);
    w->n = 0;
    for (char *save = NULL, *t = strtok_r(w->text, " ", &save); t && w->n < 16; t = strtok_r(NULL, " ", &save))
        w->word[w->n++] = t;
}

/* Window k with stride s over `in` cells, "same" or "valid": ONNX's pads before and after. */
void onnx_window_pads(int in, int k, int s, int same, int64_t *before, int64_t *after)
{
    int pb, out = dn_axis_out(in, k, s, same, &pb);
    int total = (out - 1) * s + k - in;
    *before = same ? pb : 0;
    *after = same && total - pb > 0 ? total - pb : 0;
}

static int has_word(const spec_words *w, const char *word)
{
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->word[i], word))
            return 1;
    return 0;
}

/* "stride=S" or "stride=SHxSW"; 1 when absent. */
static void stride_of(const spec_words *w, int *sh, int *sw)
{
    *sh = *sw = 1;
    for (int i = 0; i < w->n; i++)
        if (!strncmp(w->word[i], "stride=", 7))
            dn_parse_size2(w->word[i] + 7, sh, sw);
}

typedef dn_status (*layer_exporter)(builder *b, const dn_layer *L, dn_error *err);

static dn_status export_conv2d(builder *b, const dn_layer *L, dn_error *err)
{
    spec_words w;
    layer_words(L, &w);
    int kh, kw, sh, sw, F = L->out.c, C = L->in.c;
    if (w.n < 3 || dn_parse_size2(w.word[2], &kh, &kw))
        return dn_fail(err, DN_EARG, "conv2d layer '%s' has no kernel size", w.text);
    stride_of(&w, &sh, &sw);
    int same = has_word(&w, "same");
    /* Keras (KH, KW, C, F) -> ONNX (F, C, KH, KW) */
    size_t n = (size_t)kh * kw * C * F;
    float *oihw = malloc(sizeof(float) * (n ? n : 1));
    if (!oihw)
        return dn_fail(err, DN_ENOMEM, "out of memory exporting a conv2d layer");
    for (int y = 0; y < kh; y++)
        for (int x = 0; x < kw; x++)
            for (int c = 0; c < C; c++)
                for (int f = 0; f < F; f++)
                    oihw[(((size_t)f * C + c) * kh + y) * kw + x] = L->params[(((size_t)y * kw + x) * C + c) * F + f];
    const int64_t wdims[4] = {F, C, kh, kw}, bdims[1] = {F};
    need_nchw(b);
    const char *in[3] = {b->cur, onnx_tensor(b, "conv_kernel", 4, wdims, oihw), onnx_tensor(b, "conv_bias", 1, bdims, L->params + n)};
    free(oihw);
    int64_t pads[4], k[2] = {kh, kw}, s[2] = {sh, sw};
    onnx_window_pads(L->in.h, kh, sh, same, &pads[0], &pads[2]);
    onnx_window_pads(L->in.w, kw, sw, same, &pads[1], &pads[3]);
    Onnx__NodeProto *node = onnx_node(b, "Conv", 3, in);
    onnx_attr_ints(b, node, "kernel_shape", 2, k);
    onnx_attr_ints(b, node, "strides", 2, s);
    onnx_attr_ints(b, node, "pads", 4, pads);
    b_activation(b, L->act);
    return DN_OK;
}

static dn_status export_maxpool(builder *b, const dn_layer *L, dn_error *err)
{
    spec_words w;
    layer_words(L, &w);
    int ph, pw, sh, sw;
    if (w.n < 2 || dn_parse_size2(w.word[1], &ph, &pw))
        return dn_fail(err, DN_EARG, "maxpool layer '%s' has no window size", w.text);
    stride_of(&w, &sh, &sw);
    int same = has_word(&w, "same");
    int64_t pads[4], k[2] = {ph, pw}, s[2] = {sh, sw};
    onnx_window_pads(L->in.h, ph, sh, same, &pads[0], &pads[2]);
    onnx_window_pads(L->in.w, pw, sw, same, &pads[1], &pads[3]);
    need_nchw(b);
    const char *in[1] = {b->cur};
    Onnx__NodeProto *node = onnx_node(b, "MaxPool", 1, in);
    onnx_attr_ints(b, node, "kernel_shape", 2, k);
    onnx_attr_ints(b, node, "strides", 2, s);
    onnx_attr_ints(b, node, "pads", 4, pads);
    return DN_OK;
}

static dn_status export_dense(builder *b, const dn_layer *L, dn_error *err)
{
    (void)err;
    const int64_t wdims[2] = {L->in.c, L->out.c}, bdims[1] = {L->out.c};
    b_flatten(b); /* a no-op after a flatten layer: dense inputs are flat */
    const char *in[3] = {b->cur, onnx_tensor(b, "dense_kernel", 2, wdims, L->params),
                         onnx_tensor(b, "dense_bias", 1, bdims, L->params + (size_t)L->in.c * L->out.c)};
    onnx_node(b, "Gemm", 3, in);
    b_activation(b, L->act);
    return DN_OK;
}

static dn_status export_flatten(builder *b, const dn_layer *L, dn_error *err)
{
    (void)L, (void)err;
    b_flatten(b);
    return DN_OK;
}

static dn_status export_dropout(builder *b, const dn_layer *L, dn_error *err)
{
    (void)b, (void)L, (void)err; /* inference: the identity */
    return DN_OK;
}

static dn_status export_batchnorm(builder *b, const dn_layer *L, dn_error *err)
{
    spec_words w;
    layer_words(L, &w);
    float epsilon = 1e-3f;
    for (int i = 0; i < w.n; i++)
        if (!strncmp(w.word[i], "epsilon=", 8) && dn_parse_float(w.word[i] + 8, &epsilon))
            return dn_fail(err, DN_EARG, "batchnorm layer '%s' has a bad epsilon", w.text);
    const int C = L->in.c;
    const int64_t dims[1] = {C};
    if (b->cur_layout != LAYOUT_FLAT)
        need_nchw(b);
    const char *in[5] = {b->cur, onnx_tensor(b, "bn_gamma", 1, dims, L->params), onnx_tensor(b, "bn_beta", 1, dims, L->params + C),
                         onnx_tensor(b, "bn_mean", 1, dims, L->buffers), onnx_tensor(b, "bn_variance", 1, dims, L->buffers + C)};
    b_attr_float(b, onnx_node(b, "BatchNormalization", 5, in), "epsilon", epsilon);
    return DN_OK;
}

/* GlobalAveragePool gives (N, C, 1, 1); flattened as it stands, that is digitnet's (N, C) (a 1x1 map
 * has the same order either way). On a vector it is the identity. */
static dn_status export_globalavgpool(builder *b, const dn_layer *L, dn_error *err)
{
    (void)L, (void)err;
    if (b->cur_layout == LAYOUT_FLAT)
        return DN_OK;
    need_nchw(b);
    const char *in[1] = {b->cur};
    onnx_node(b, "GlobalAveragePool", 1, in);
    in[0] = b->cur;
    onnx_attr_int(b, onnx_node(b, "Flatten", 1, in), "axis", 1);
    b->cur_layout = LAYOUT_FLAT;
    return DN_OK;
}

static dn_status export_activation(builder *b, const dn_layer *L, dn_error *err)
{
    (void)err;
    static const dn_activation acts[DN_LAYER_COUNT] = {[DN_LAYER_RELU] = DN_ACT_RELU, [DN_LAYER_SIGMOID] = DN_ACT_SIGMOID,
                                                       [DN_LAYER_TANH] = DN_ACT_TANH, [DN_LAYER_SOFTMAX] = DN_ACT_SOFTMAX};
    b_activation(b, acts[L->kind]);
    return DN_OK;
}

/* The ONNX form of each layer kind; a kind added to layers.def without one is refused by export. */
static const layer_exporter exporters[DN_LAYER_COUNT] = {
    [DN_LAYER_CONV2D] = export_conv2d,   [DN_LAYER_MAXPOOL] = export_maxpool,  [DN_LAYER_DENSE] = export_dense,
    [DN_LAYER_DROPOUT] = export_dropout, [DN_LAYER_FLATTEN] = export_flatten,  [DN_LAYER_BATCHNORM] = export_batchnorm,
    [DN_LAYER_RELU] = export_activation, [DN_LAYER_SIGMOID] = export_activation, [DN_LAYER_TANH] = export_activation,
    [DN_LAYER_SOFTMAX] = export_activation, [DN_LAYER_GLOBALAVGPOOL] = export_globalavgpool,
};

/* A float32 tensor value (N, d1, d2, ...) with a symbolic batch dimension. */
Onnx__ValueInfoProto *onnx_value_info(builder *b, const char *name, int ndim, const int64_t *dims)
{
    Onnx__ValueInfoProto *vi = onnx_alloc(b, sizeof *vi);
    Onnx__TypeProto *type = onnx_alloc(b, sizeof *type);
    Onnx__TypeProto__Tensor *tensor = onnx_alloc(b, sizeof *tensor);
    Onnx__TensorShapeProto *shape = onnx_alloc(b, sizeof *shape);
    Onnx__TensorShapeProto__Dimension **dim = onnx_alloc(b, sizeof *dim * (size_t)(ndim + 1));
    if (!vi || !type || !tensor || !shape || !dim || !(name = onnx_strdup(b, name)))
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(type);
    onnx__type_proto__tensor__init(tensor);
    onnx__tensor_shape_proto__init(shape);
    for (int i = 0; i <= ndim; i++) {
        if (!(dim[i] = onnx_alloc(b, sizeof *dim[i])))
            return NULL;
        onnx__tensor_shape_proto__dimension__init(dim[i]);
        if (i == 0) {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            dim[i]->dim_param = onnx_strdup(b, "N");
        } else {
            dim[i]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            dim[i]->dim_value = dims[i - 1];
        }
    }
    shape->n_dim = (size_t)ndim + 1;
    shape->dim = dim;
    tensor->has_elem_type = 1;
    tensor->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tensor->shape = shape;
    type->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    type->tensor_type = tensor;
    vi->name = (char *)name;
    vi->type = type;
    return vi;
}

static int add_meta(builder *b, Onnx__StringStringEntryProto **list, size_t *n, const char *key, const char *value)
{
    Onnx__StringStringEntryProto *e = onnx_alloc(b, sizeof *e);
    if (!e)
        return -1;
    onnx__string_string_entry_proto__init(e);
    e->key = onnx_strdup(b, key);
    e->value = onnx_strdup(b, value);
    list[(*n)++] = e;
    return e->key && e->value ? 0 : -1;
}

/* The preprocessing the model expects (src/image/preprocess.c, the same library), "none" for
 * other input shapes, as model files record it. */
static const char *preprocess_or_none(dn_shape in)
{
    const char *name = dn_preprocess_name(in);
    return name ? name : "none";
}

/* The layers: input -> Mul(1 / raw_max) -> layers -> probabilities (onnx_write_model names it). */
static dn_status build_layers(builder *b, const dn_net *net, dn_error *err)
{
    const int raw_max = net->raw_max > 0 ? net->raw_max : 255;
    const float scale = 1.0f / (float)raw_max; /* the product dn_dataset_rows takes */
    const char *scale_in[2] = {"input", onnx_tensor(b, "pixel_scale", 0, NULL, &scale)};
    b->cur_layout = LAYOUT_NHWC;
    onnx_node(b, "Mul", 2, scale_in);
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        if (!exporters[L->kind])
            return dn_fail(err, DN_EARG, "layer %d (%s) has no ONNX form", i + 1, L->ops->name);
        dn_status st = exporters[L->kind](b, L, err);
        if (st != DN_OK)
            return st;
    }
    b_flatten(b);
    return DN_OK;
}

/* The graph around the nodes built so far: the last node's output is the graph's output. */
static dn_status finish_graph(builder *b, const dn_net *net, Onnx__GraphProto *graph, dn_error *err)
{
    const dn_shape in = net->input;
    if (b->failed || !b->n_nodes)
        return dn_fail(err, DN_ENOMEM, "out of memory building the ONNX graph");
    Onnx__NodeProto *last = b->nodes[b->n_nodes - 1];
    last->output[0] = onnx_strdup(b, "probabilities");
    const int64_t in_dims[3] = {in.h, in.w, in.c}, out_dims[1] = {dn_net_n_classes(net)};
    Onnx__ValueInfoProto **inputs = onnx_alloc(b, sizeof *inputs), **outputs = onnx_alloc(b, sizeof *outputs);
    if (!inputs || !outputs || !last->output[0] || !(inputs[0] = onnx_value_info(b, "input", 3, in_dims)) ||
        !(outputs[0] = onnx_value_info(b, "probabilities", 1, out_dims)))
        return dn_fail(err, DN_ENOMEM, "out of memory building the ONNX graph");
    graph->name = onnx_strdup(b, "digitnet");
    graph->n_node = b->n_nodes;
    graph->node = b->nodes;
    graph->n_initializer = b->n_inits;
    graph->initializer = b->inits;
    graph->n_input = 1;
    graph->input = inputs;
    graph->n_output = 1;
    graph->output = outputs;
    return b->failed ? dn_fail(err, DN_ENOMEM, "out of memory building the ONNX graph") : DN_OK;
}

dn_status onnx_write_model(builder *b, const dn_net *net, const char *const *extra, int n_extra, const char *path,
                           dn_error *err)
{
    Onnx__ModelProto model;
    Onnx__GraphProto graph;
    Onnx__OperatorSetIdProto opset, *opsets[1] = {&opset};
    onnx__model_proto__init(&model);
    onnx__graph_proto__init(&graph);
    onnx__operator_set_id_proto__init(&opset);
    uint8_t *bytes = NULL;
    Onnx__StringStringEntryProto **meta = NULL;
    dn_status st = finish_graph(b, net, &graph, err);
    if (st != DN_OK)
        goto done;
    opset.domain = "";
    opset.has_version = 1;
    opset.version = DN_ONNX_OPSET;
    model.has_ir_version = 1;
    model.ir_version = DN_ONNX_IR_VERSION;
    model.n_opset_import = 1;
    model.opset_import = opsets;
    model.producer_name = "digitnet";
    model.producer_version = DN_VERSION;
    model.doc_string = "input: float32 (N, H, W, C) raw pixel values in the data set's units (0..raw_max); "
                       "probabilities: float32 (N, 10)";
    model.graph = &graph;

    size_t n_meta = 0;
    char raw_max[16], key[160];
    snprintf(raw_max, sizeof raw_max, "%d", net->raw_max > 0 ? net->raw_max : 255);
    meta = malloc(sizeof *meta * (size_t)(5 + net->n_notes + n_extra));
    int bad = !meta || add_meta(b, meta, &n_meta, "spec", net->spec) || add_meta(b, meta, &n_meta, "raw_max", raw_max) ||
              add_meta(b, meta, &n_meta, "input_scale", "1") ||
              add_meta(b, meta, &n_meta, "preprocess", preprocess_or_none(net->input)) ||
              add_meta(b, meta, &n_meta, "class_names", "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]");
    for (int i = 0; i < net->n_notes && !bad; i++) {
        snprintf(key, sizeof key, "run.%s", net->note_keys[i]);
        bad = add_meta(b, meta, &n_meta, key, net->note_values[i]);
    }
    for (int i = 0; i < n_extra && !bad; i++)
        bad = add_meta(b, meta, &n_meta, extra[2 * i], extra[2 * i + 1]);
    if (bad) {
        st = dn_fail(err, DN_ENOMEM, "out of memory building the ONNX metadata");
        goto done;
    }
    model.n_metadata_props = n_meta;
    model.metadata_props = meta;

    size_t size = onnx__model_proto__get_packed_size(&model);
    if (!(bytes = malloc(size ? size : 1))) {
        st = dn_fail(err, DN_ENOMEM, "out of memory packing the ONNX model (%zu bytes)", size);
        goto done;
    }
    onnx__model_proto__pack(&model, bytes);
    st = dn_atomic_write(path, bytes, size, err);
done:
    free(bytes);
    free(meta);
    onnx_builder_free(b);
    return st;
}

void onnx_builder_free(builder *b)
{
    for (size_t i = 0; i < b->n_allocs; i++)
        free(b->allocs[i]);
    free(b->allocs);
    free(b->nodes);
    free(b->inits);
    memset(b, 0, sizeof *b);
}

dn_status dn_onnx_export(const dn_net *net, const char *path, dn_error *err)
{
    if (!net || !path)
        return dn_fail(err, DN_EARG, "dn_onnx_export: net and path are required");
    builder b = {0};
    dn_status st = build_layers(&b, net, err);
    if (st != DN_OK || net->n_members == 0) {
        if (st != DN_OK)
            onnx_builder_free(&b);
        return st != DN_OK ? st : onnx_write_model(&b, net, NULL, 0, path, err);
    }
    /* An ensemble: every member's graph from the same input, then the Mean of their probabilities
     * (the mean dn_net_predict takes, up to the order of the additions). */
    const char *outputs[DN_MAX_ENSEMBLE];
    outputs[0] = b.cur;
    for (int m = 0; st == DN_OK && m < net->n_members; m++) {
        st = build_layers(&b, net->members[m], err);
        outputs[m + 1] = b.cur;
    }
    if (st == DN_OK && !onnx_node(&b, "Mean", net->n_members + 1, outputs))
        st = dn_fail(err, DN_ENOMEM, "out of memory building the ONNX graph");
    if (st != DN_OK) {
        onnx_builder_free(&b);
        return st;
    }
    char members[16];
    snprintf(members, sizeof members, "%d", net->n_members + 1);
    const char *extra[2] = {"ensemble", members};
    return onnx_write_model(&b, net, extra, 1, path, err);
}

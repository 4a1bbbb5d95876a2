/* ONNX import: walks the graph's nodes in order along the one chain from the input to the output,
 * turning each into a digitnet layer (or folding it into one), and builds the network from the spec
 * it wrote plus the weights converted to digitnet's channels-last layouts.
 *
 * The chain's tensor is followed as NHWC, NCHW or flat. A flat tensor made from NCHW is in (C, H, W)
 * order where digitnet's flatten gives (H, W, C); `perm` maps one to the other, and the dense kernel
 * (or batchnorm) that reads it has its rows reordered accordingly. */
#include "onnx/dn_onnx.h"
#include "onnx.pb-c.h"

#include "net.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE_BYTES (512u * 1024 * 1024)
#define MAX_TENSOR_FLOATS DN_MAX_PARAMS

typedef enum layout { LAYOUT_NHWC, LAYOUT_NCHW, LAYOUT_FLAT } layout;
typedef enum imp_kind { IMP_CONV, IMP_POOL, IMP_DENSE, IMP_FLATTEN, IMP_BATCHNORM, IMP_ACT } imp_kind;

typedef struct imp_layer {
    imp_kind kind;
    char line[128];        /* spec line without the activation */
    dn_activation act;     /* fused (conv, dense) or the layer itself (IMP_ACT) */
    float *weights;        /* conv (KH, KW, C, F), dense (in, out), batchnorm gamma, beta, mean, variance */
    size_t n_weights;
    size_t n_kernel;       /* conv / dense: floats of the kernel (the bias follows) */
    const char *output;    /* the graph tensor this layer produced */
} imp_layer;

typedef struct importer {
    const char *path;
    const Onnx__GraphProto *graph;
    imp_layer layers[DN_MAX_LAYERS];
    int n_layers;
    /* the chain */
    const char *cur;
    layout lay;
    int h, w, c;           /* spatial shape; flat: c = length, h = w = 1 */
    int *perm;             /* flat: perm[j] = the ONNX index of digitnet's element j; NULL: identity */
    dn_shape input;
    const char *input_layout; /* "NCHW", "NHWC" or "flat", as the graph's input came */
    double scale;          /* product of the scalar Mul / Div before the first layer */
    /* Constant nodes' outputs: name -> tensor */
    const Onnx__TensorProto *consts[256];
    const char *const_names[256];
    int n_consts;
    /* node being read, for messages */
    char node_desc[160];
} importer;

static const char *tensor_name(const char *s)
{
    return s ? s : "";
}

/* "FILE: node 'NAME' (OP): <message>", one line. */
static dn_status node_fail(importer *im, dn_error *err, const char *fmt, ...) DN_PRINTF(3, 4);
static dn_status node_fail(importer *im, dn_error *err, const char *fmt, ...)
{
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return dn_fail(err, DN_EFORMAT, "%s: %s: %s", im->path, im->node_desc, msg);
}

static void describe_node(importer *im, const Onnx__NodeProto *node, int index)
{
    char name[64], op[48];
    /* names and ops come from the file: keep them printable and short */
    const char *src[2] = {node->name && node->name[0] ? node->name : NULL, node->op_type ? node->op_type : "?"};
    char *dst[2] = {name, op};
    size_t cap[2] = {sizeof name, sizeof op};
    for (int k = 0; k < 2; k++) {
        if (!src[k]) {
            snprintf(dst[k], cap[k], "#%d", index + 1);
            continue;
        }
        size_t n = 0;
        for (const char *s = src[k]; *s && n + 1 < cap[k]; s++)
            dst[k][n++] = (*s >= 32 && *s < 127) ? *s : '?';
        dst[k][n] = 0;
    }
    snprintf(im->node_desc, sizeof im->node_desc, "node '%s' (%s)", name, op);
}

static const Onnx__AttributeProto *find_attr(const Onnx__NodeProto *node, const char *name)
{
    for (size_t i = 0; i < node->n_attribute; i++)
        if (node->attribute[i]->name && !strcmp(node->attribute[i]->name, name))
            return node->attribute[i];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *node, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = find_attr(node, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const Onnx__NodeProto *node, const char *name, float def)
{
    const Onnx__AttributeProto *a = find_attr(node, name);
    return a && a->has_f ? a->f : def;
}

/* The ints of attribute name into v[0..n); returns how many it has (-1 when absent). */
static int attr_ints(const Onnx__NodeProto *node, const char *name, int64_t *v, int n)
{
    const Onnx__AttributeProto *a = find_attr(node, name);
    if (!a)
        return -1;
    for (size_t i = 0; i < a->n_ints && (int)i < n; i++)
        v[i] = a->ints[i];
    return a->n_ints > 64 ? 64 : (int)a->n_ints;
}

static const Onnx__TensorProto *find_constant(const importer *im, const char *name)
{
    if (!name || !name[0])
        return NULL;
    for (size_t i = 0; i < im->graph->n_initializer; i++)
        if (im->graph->initializer[i]->name && !strcmp(im->graph->initializer[i]->name, name))
            return im->graph->initializer[i];
    for (int i = 0; i < im->n_consts; i++)
        if (!strcmp(im->const_names[i], name))
            return im->consts[i];
    return NULL;
}

/* Element count of t from its dims; -1 when a dim is negative or the count is beyond the limit. */
static long long tensor_count(const Onnx__TensorProto *t)
{
    long long count = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > MAX_TENSOR_FLOATS)
            return -1;
        count *= t->dims[i];
        if (count > MAX_TENSOR_FLOATS)
            return -1;
    }
    return count;
}

/* The float values of constant input `which` of the node, checked against the dims it must have
 * (ndim dims; a dim of -1 takes any size). *values is malloc'd. */
static dn_status read_floats(importer *im, const Onnx__NodeProto *node, int which, int ndim, const long long *want,
                             float **values, size_t *count, dn_error *err)
{
    const char *name = (size_t)which < node->n_input ? tensor_name(node->input[which]) : "";
    const Onnx__TensorProto *t = find_constant(im, name);
    if (!t)
        return node_fail(im, err, "input %d '%.60s' is not an initializer or constant", which + 1, name);
    if (!t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return node_fail(im, err, "initializer '%.60s' is not float32", name);
    long long n = tensor_count(t);
    if (n < 0)
        return node_fail(im, err, "initializer '%.60s' has bad or oversized dims", name);
    int dims_ok = ndim < 0 || (int)t->n_dims == ndim;
    for (int i = 0; dims_ok && i < ndim; i++)
        dims_ok = want[i] < 0 || t->dims[i] == want[i];
    if (!dims_ok) {
        char got[96] = "", need[96] = "";
        for (size_t i = 0, k = 0; i < t->n_dims && i < 6; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
        for (int i = 0, k = 0; i < ndim && i < 6; i++)
            k += snprintf(need + k, sizeof need - (size_t)k, "%s%lld", i ? ", " : "", want[i] < 0 ? -1LL : want[i]);
        return node_fail(im, err, "initializer '%.60s' has shape (%s), expected (%s)", name, got, need);
    }
    size_t have;
    const void *src;
    if (t->has_raw_data && t->raw_data.len) {
        have = t->raw_data.len / sizeof(float);
        if (t->raw_data.len % sizeof(float))
            have = (size_t)-1;
        src = t->raw_data.data;
    } else {
        have = t->n_float_data;
        src = t->float_data;
    }
    if (have != (size_t)n)
        return node_fail(im, err, "initializer '%.60s' holds %zu floats but its shape says %lld", name,
                         have == (size_t)-1 ? (size_t)t->raw_data.len : have, n);
    float *v = malloc(sizeof(float) * (size_t)(n ? n : 1));
    if (!v)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory reading '%.60s'", im->path, name);
    if (n)
        memcpy(v, src, sizeof(float) * (size_t)n); /* raw_data is little-endian, as this machine */
    *values = v;
    *count = (size_t)n;
    return DN_OK;
}

/* The int64 values of a constant (Reshape's shape), at most max. Returns the count or -1. */
static int read_ints(importer *im, const char *name, int64_t *v, int max)
{
    const Onnx__TensorProto *t = find_constant(im, name);
    if (!t || !t->has_data_type || t->data_type != ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
        return -1;
    size_t n = t->has_raw_data && t->raw_data.len ? t->raw_data.len / 8 : t->n_int64_data;
    if (n > (size_t)max || (t->has_raw_data && t->raw_data.len % 8))
        return -1;
    if (t->has_raw_data && t->raw_data.len)
        memcpy(v, t->raw_data.data, 8 * n);
    else if (n)
        memcpy(v, t->int64_data, 8 * n);
    return (int)n;
}

static imp_layer *add_layer(importer *im, imp_kind kind, dn_error *err, const char *fmt, ...) DN_PRINTF(4, 5);
static imp_layer *add_layer(importer *im, imp_kind kind, dn_error *err, const char *fmt, ...)
{
    if (im->n_layers == DN_MAX_LAYERS) {
        node_fail(im, err, "more than %d layers", DN_MAX_LAYERS);
        return NULL;
    }
    imp_layer *L = &im->layers[im->n_layers++];
    memset(L, 0, sizeof *L);
    L->kind = kind;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->line, sizeof L->line, fmt, ap);
    va_end(ap);
    return L;
}

/* The last layer, when it made the chain's current tensor and can take a fused activation / bias. */
static imp_layer *fusable(importer *im, const char *input)
{
    if (!im->n_layers)
        return NULL;
    imp_layer *L = &im->layers[im->n_layers - 1];
    if ((L->kind != IMP_CONV && L->kind != IMP_DENSE) || L->act != DN_ACT_NONE || !L->output || strcmp(L->output, input))
        return NULL;
    return L;
}

/* Pads (top, left, bottom, right) of a window -> "same" (TensorFlow's) or "valid"; -1 if neither. */
static int padding_mode(const Onnx__NodeProto *node, int in_h, int in_w, int kh, int kw, int sh, int sw)
{
    const Onnx__AttributeProto *ap = find_attr(node, "auto_pad");
    char mode[16] = "NOTSET";
    if (ap && ap->has_s) {
        size_t n = ap->s.len < sizeof mode - 1 ? ap->s.len : sizeof mode - 1;
        memcpy(mode, ap->s.data, n);
        mode[n] = 0;
    }
    if (!strcmp(mode, "VALID"))
        return 0;
    if (!strcmp(mode, "SAME_UPPER"))
        return 1;
    if (strcmp(mode, "NOTSET"))
        return -1;
    int64_t pads[4] = {0, 0, 0, 0};
    int n = attr_ints(node, "pads", pads, 4);
    if (n != -1 && n != 4)
        return -1;
    if (!pads[0] && !pads[1] && !pads[2] && !pads[3])
        return 0;
    int tb, lb, oh = dn_axis_out(in_h, kh, sh, 1, &tb), ow = dn_axis_out(in_w, kw, sw, 1, &lb);
    int th = (oh - 1) * sh + kh - in_h, tw = (ow - 1) * sw + kw - in_w;
    return pads[0] == tb && pads[1] == lb && pads[2] == (th > tb ? th - tb : 0) && pads[3] == (tw > lb ? tw - lb : 0) ? 1 : -1;
}

/* kernel_shape and strides of Conv / MaxPool, both square-agnostic 2-D. */
static dn_status window_attrs(importer *im, const Onnx__NodeProto *node, int *kh, int *kw, int *sh, int *sw, dn_error *err)
{
    int64_t k[2] = {0, 0}, s[2] = {1, 1}, d[2] = {1, 1};
    if (attr_ints(node, "kernel_shape", k, 2) != 2)
        return node_fail(im, err, "needs a 2-D kernel_shape");
    int ns = attr_ints(node, "strides", s, 2), nd = attr_ints(node, "dilations", d, 2);
    if ((ns != -1 && ns != 2) || (nd != -1 && nd != 2) || d[0] != 1 || d[1] != 1)
        return node_fail(im, err, "only 2-D windows without dilation can be imported");
    if (k[0] < 1 || k[1] < 1 || k[0] > 1024 || k[1] > 1024 || s[0] < 1 || s[1] < 1 || s[0] > 1024 || s[1] > 1024)
        return node_fail(im, err, "kernel %lldx%lld with strides %lldx%lld is out of range", (long long)k[0],
                         (long long)k[1], (long long)s[0], (long long)s[1]);
    *kh = (int)k[0], *kw = (int)k[1], *sh = (int)s[0], *sw = (int)s[1];
    return DN_OK;
}

static dn_status need_nchw(importer *im, dn_error *err)
{
    if (im->lay != LAYOUT_NCHW)
        return node_fail(im, err, "expects an NCHW image but gets %s (a Transpose to NCHW must come first)",
                         im->lay == LAYOUT_FLAT ? "a flat vector" : "an NHWC image");
    return DN_OK;
}

static dn_status op_conv(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    int kh, kw, sh, sw;
    dn_status st = need_nchw(im, err);
    if (st == DN_OK)
        st = window_attrs(im, node, &kh, &kw, &sh, &sw, err);
    if (st != DN_OK)
        return st;
    if (attr_int(node, "group", 1) != 1)
        return node_fail(im, err, "grouped convolutions cannot be imported");
    if (sh != sw)
        return node_fail(im, err, "strides %dx%d differ; digitnet's conv2d has one stride", sh, sw);
    int same = padding_mode(node, im->h, im->w, kh, kw, sh, sw);
    if (same < 0)
        return node_fail(im, err, "padding is neither 'valid' nor TensorFlow's 'same'");
    float *w = NULL, *b = NULL;
    size_t nw, nb = 0;
    const long long wdims[4] = {-1, im->c, kh, kw};
    if ((st = read_floats(im, node, 1, 4, wdims, &w, &nw, err)) != DN_OK)
        return st;
    const int F = (int)(nw / ((size_t)im->c * kh * kw)), C = im->c;
    const long long bdims[1] = {F};
    if (F < 1 || (node->n_input > 2 && node->input[2][0] && (st = read_floats(im, node, 2, 1, bdims, &b, &nb, err)) != DN_OK)) {
        free(w);
        return st != DN_OK ? st : node_fail(im, err, "has no filters");
    }
    imp_layer *L = add_layer(im, IMP_CONV, err, "conv2d %d %dx%d %s stride=%d", F, kh, kw, same ? "same" : "valid", sh);
    float *kernel = L ? malloc(sizeof(float) * (nw + (size_t)F)) : NULL;
    if (!kernel) {
        free(w), free(b);
        return L ? dn_fail(err, DN_ENOMEM, "%s: out of memory", im->path) : err->status;
    }
    /* ONNX (F, C, KH, KW) -> Keras (KH, KW, C, F) */
    for (int f = 0; f < F; f++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < kh; y++)
                for (int x = 0; x < kw; x++)
                    kernel[(((size_t)y * kw + x) * C + c) * F + f] = w[(((size_t)f * C + c) * kh + y) * kw + x];
    for (int f = 0; f < F; f++)
        kernel[nw + (size_t)f] = b ? b[f] : 0.0f;
    free(w), free(b);
    L->weights = kernel;
    L->n_kernel = nw;
    L->n_weights = nw + (size_t)F;
    int pad;
    im->h = dn_axis_out(im->h, kh, sh, same, &pad);
    im->w = dn_axis_out(im->w, kw, sw, same, &pad);
    im->c = F;
    if (im->h <= 0 || im->w <= 0)
        return node_fail(im, err, "the %dx%d kernel does not fit its input", kh, kw);
    if ((double)im->h * im->w * im->c > 1 << 24)
        return node_fail(im, err, "the output %dx%dx%d is too large", im->h, im->w, im->c);
    return DN_OK;
}

static dn_status op_maxpool(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    int kh, kw, sh, sw;
    dn_status st = need_nchw(im, err);
    if (st == DN_OK)
        st = window_attrs(im, node, &kh, &kw, &sh, &sw, err);
    if (st != DN_OK)
        return st;
    if (attr_int(node, "ceil_mode", 0) != 0)
        return node_fail(im, err, "ceil_mode 1 cannot be imported");
    if (node->n_output > 1 && node->output[1] && node->output[1][0])
        return node_fail(im, err, "the Indices output cannot be imported");
    int same = padding_mode(node, im->h, im->w, kh, kw, sh, sw);
    if (same < 0)
        return node_fail(im, err, "padding is neither 'valid' nor TensorFlow's 'same'");
    if (!add_layer(im, IMP_POOL, err, "maxpool %dx%d stride=%dx%d %s", kh, kw, sh, sw, same ? "same" : "valid"))
        return err->status;
    int pad;
    im->h = dn_axis_out(im->h, kh, sh, same, &pad);
    im->w = dn_axis_out(im->w, kw, sw, same, &pad);
    if (im->h <= 0 || im->w <= 0)
        return node_fail(im, err, "the %dx%d window does not fit its input", kh, kw);
    return DN_OK;
}

/* GlobalAveragePool: digitnet's globalavgpool. Its (N, C, 1, 1) output is kept as a 1x1 image, so
 * that the Flatten or Reshape after it is followed as usual. */
static dn_status op_globalavgpool(importer *im, dn_error *err)
{
    if (im->lay == LAYOUT_FLAT)
        return node_fail(im, err, "a global pooling of a flat vector cannot be imported");
    if (!add_layer(im, IMP_POOL, err, "globalavgpool"))
        return err->status;
    im->h = im->w = 1;
    return DN_OK;
}

/* NCHW / NHWC -> flat, in digitnet's (H, W, C) order through perm. */
static dn_status flatten(importer *im, dn_error *err)
{
    if (im->lay == LAYOUT_FLAT)
        return DN_OK;
    const size_t n = (size_t)im->h * im->w * im->c;
    if (im->lay == LAYOUT_NCHW && im->c > 1 && im->h * im->w > 1) {
        if (!(im->perm = malloc(sizeof(int) * n)))
            return dn_fail(err, DN_ENOMEM, "%s: out of memory", im->path);
        for (int y = 0; y < im->h; y++)
            for (int x = 0; x < im->w; x++)
                for (int c = 0; c < im->c; c++)
                    im->perm[((size_t)y * im->w + x) * im->c + c] = (int)(((size_t)c * im->h + y) * im->w + x);
    }
    if (!add_layer(im, IMP_FLATTEN, err, "flatten"))
        return err->status;
    im->lay = LAYOUT_FLAT;
    im->c = (int)n;
    im->h = im->w = 1;
    return DN_OK;
}

static dn_status op_reshape(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    int64_t shape[8];
    int n = node->n_input > 1 ? read_ints(im, node->input[1], shape, 8) : -1;
    const long long total = (long long)im->h * im->w * im->c;
    if (n == 2 && (shape[0] == -1 || shape[0] == 0) && (shape[1] == total || shape[1] == -1))
        return flatten(im, err);
    return node_fail(im, err, "only a reshape to (N, %lld), a flatten, can be imported", total);
}

/* Gemm (transB either way, alpha, beta) and MatMul: a dense layer on the flat chain. */
static dn_status op_dense(importer *im, const Onnx__NodeProto *node, int gemm, dn_error *err)
{
    if (im->lay != LAYOUT_FLAT)
        return node_fail(im, err, "expects a flat vector (a Flatten must come first)");
    const int trans_b = gemm && attr_int(node, "transB", 0) != 0;
    if (gemm && attr_int(node, "transA", 0) != 0)
        return node_fail(im, err, "transA cannot be imported");
    const float alpha = gemm ? attr_float(node, "alpha", 1.0f) : 1.0f, beta = gemm ? attr_float(node, "beta", 1.0f) : 1.0f;
    const int I = im->c;
    float *w = NULL, *b = NULL;
    size_t nw, nb = 0;
    const long long wdims[2] = {trans_b ? -1 : I, trans_b ? I : -1};
    dn_status st = read_floats(im, node, 1, 2, wdims, &w, &nw, err);
    if (st != DN_OK)
        return st;
    const int O = (int)(nw / (size_t)I);
    if (O < 1) {
        free(w);
        return node_fail(im, err, "has no outputs");
    }
    if (gemm && node->n_input > 2 && node->input[2][0]) {
        if ((st = read_floats(im, node, 2, -1, NULL, &b, &nb, err)) != DN_OK) {
            free(w);
            return st;
        }
        if (nb != (size_t)O) {
            free(w), free(b);
            return node_fail(im, err, "bias has %zu values for %d outputs", nb, O);
        }
    }
    imp_layer *L = add_layer(im, IMP_DENSE, err, "dense %d", O);
    float *kernel = L ? malloc(sizeof(float) * (nw + (size_t)O)) : NULL;
    if (!kernel) {
        free(w), free(b);
        return L ? dn_fail(err, DN_ENOMEM, "%s: out of memory", im->path) : err->status;
    }
    for (int j = 0; j < I; j++) {
        int src = im->perm ? im->perm[j] : j;
        for (int o = 0; o < O; o++)
            kernel[(size_t)j * O + o] = alpha * (trans_b ? w[(size_t)o * I + src] : w[(size_t)src * O + o]);
    }
    for (int o = 0; o < O; o++)
        kernel[nw + (size_t)o] = b ? beta * b[o] : 0.0f;
    free(w), free(b);
    free(im->perm);
    im->perm = NULL;
    L->weights = kernel;
    L->n_kernel = nw;
    L->n_weights = nw + (size_t)O;
    im->c = O;
    return DN_OK;
}

/* Add of a constant right after a MatMul or Conv: its bias. */
static dn_status op_add(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    imp_layer *L = fusable(im, im->cur);
    int which = node->n_input == 2 && !strcmp(tensor_name(node->input[0]), im->cur) ? 1 : 0;
    float *b = NULL;
    size_t nb;
    if (!L || node->n_input != 2)
        return node_fail(im, err, "only the bias Add right after a MatMul or Conv can be imported");
    const Onnx__TensorProto *t = find_constant(im, tensor_name(node->input[which]));
    if (L->kind == IMP_CONV && im->lay == LAYOUT_NCHW && t && t->n_dims && t->dims[t->n_dims - 1] != 1 && im->c > 1)
        return node_fail(im, err, "a bias for an NCHW image must have the shape (C, 1, 1)");
    dn_status st = read_floats(im, node, which, -1, NULL, &b, &nb, err);
    if (st != DN_OK)
        return st;
    const size_t outs = L->n_weights - L->n_kernel;
    if (nb != outs) {
        free(b);
        return node_fail(im, err, "bias has %zu values for %zu outputs", nb, outs);
    }
    for (size_t i = 0; i < nb; i++)
        L->weights[L->n_kernel + i] += b[i];
    free(b);
    return DN_OK;
}

static dn_status op_batchnorm(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    if (im->lay == LAYOUT_NHWC)
        return need_nchw(im, err);
    const int C = im->c;
    const long long dims[1] = {C};
    float *p[4] = {NULL, NULL, NULL, NULL};
    size_t n;
    dn_status st = DN_OK;
    if (node->n_input != 5 || (node->n_output > 1 && node->output[1][0]))
        st = node_fail(im, err, "needs scale, B, mean and var inputs and one output (inference form)");
    for (int i = 0; i < 4 && st == DN_OK; i++)
        st = read_floats(im, node, i + 1, 1, dims, &p[i], &n, err);
    float eps = attr_float(node, "epsilon", 1e-5f);
    imp_layer *L = st == DN_OK ? add_layer(im, IMP_BATCHNORM, err, "batchnorm epsilon=%.9g", (double)eps) : NULL;
    float *v = L ? malloc(sizeof(float) * 4 * (size_t)C) : NULL;
    if (L && !(eps > 0 && eps < 1))
        st = node_fail(im, err, "epsilon %g is out of range", (double)eps);
    else if (L && !v)
        st = dn_fail(err, DN_ENOMEM, "%s: out of memory", im->path);
    else if (L)
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < C; j++)
                v[(size_t)k * C + j] = p[k][im->perm ? im->perm[j] : j];
    for (int i = 0; i < 4; i++)
        free(p[i]);
    if (st != DN_OK || !L) {
        free(v);
        return st != DN_OK ? st : err->status;
    }
    L->weights = v;
    L->n_weights = 4 * (size_t)C;
    return DN_OK;
}

static dn_status op_activation(importer *im, const Onnx__NodeProto *node, dn_activation act, dn_error *err)
{
    if (act == DN_ACT_SOFTMAX) {
        int64_t axis = attr_int(node, "axis", -1);
        if (im->lay != LAYOUT_FLAT || (axis != 1 && axis != -1))
            return node_fail(im, err, "only a softmax over a flat vector can be imported");
    }
    imp_layer *L = fusable(im, im->cur);
    if (L) {
        L->act = act;
        return DN_OK;
    }
    if (im->perm && act == DN_ACT_SOFTMAX)
        return node_fail(im, err, "a softmax right after a flatten of an NCHW image cannot be imported");
    if (!(L = add_layer(im, IMP_ACT, err, "%s", dn_activation_name(act))))
        return err->status;
    L->act = act;
    return DN_OK;
}

static dn_status op_transpose(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    int64_t p[8];
    int n = attr_ints(node, "perm", p, 8);
    if (im->lay == LAYOUT_NHWC && n == 4 && p[0] == 0 && p[1] == 3 && p[2] == 1 && p[3] == 2)
        im->lay = LAYOUT_NCHW;
    else if (im->lay == LAYOUT_NCHW && n == 4 && p[0] == 0 && p[1] == 2 && p[2] == 3 && p[3] == 1)
        im->lay = LAYOUT_NHWC;
    else if (!(im->lay == LAYOUT_FLAT && n == 2 && p[0] == 0 && p[1] == 1))
        return node_fail(im, err, "this perm on a%s tensor is not a layout change digitnet can follow",
                         im->lay == LAYOUT_FLAT ? " flat" : im->lay == LAYOUT_NCHW ? "n NCHW" : "n NHWC");
    return DN_OK;
}

/* Mul or Div by a scalar before the first layer: the input scaling, folded in later. */
static dn_status op_scale(importer *im, const Onnx__NodeProto *node, int divide, dn_error *err)
{
    int layers_before = 0; /* the flatten of a flat (N, H*W) input does not count */
    for (int i = 0; i < im->n_layers; i++)
        layers_before += im->layers[i].kind != IMP_FLATTEN;
    if (layers_before || node->n_input != 2)
        return node_fail(im, err, "only a scalar Mul or Div of the input, before any layer, can be imported");
    int which = !strcmp(tensor_name(node->input[0]), im->cur) ? 1 : 0;
    if (divide && which == 0)
        return node_fail(im, err, "dividing a constant by the input cannot be imported");
    float *v = NULL;
    size_t n;
    dn_status st = read_floats(im, node, which, -1, NULL, &v, &n, err);
    if (st != DN_OK)
        return st;
    double s = n == 1 ? v[0] : 0.0;
    free(v);
    if (n != 1 || !(s > 0) || !isfinite(s))
        return node_fail(im, err, "only a positive scalar scaling of the input can be imported");
    im->scale = divide ? im->scale / s : im->scale * s;
    return DN_OK;
}

static dn_status read_node(importer *im, const Onnx__NodeProto *node, dn_error *err)
{
    const char *op = node->op_type ? node->op_type : "";
    if (node->domain && node->domain[0] && strcmp(node->domain, "ai.onnx"))
        return node_fail(im, err, "op of domain '%.40s' cannot be imported", node->domain);
    if (!strcmp(op, "Constant")) {
        const Onnx__AttributeProto *a = find_attr(node, "value");
        if (!a || !a->t || node->n_output != 1 || im->n_consts == 256)
            return node_fail(im, err, "only a Constant with a tensor 'value' can be imported");
        im->consts[im->n_consts] = a->t;
        im->const_names[im->n_consts++] = tensor_name(node->output[0]);
        return DN_OK;
    }
    /* Every other node reads the chain's tensor (a scalar Mul may read it second). */
    int reads_chain = 0;
    for (size_t i = 0; i < node->n_input && i < 2; i++)
        reads_chain |= node->input[i] && !strcmp(node->input[i], im->cur);
    if (!reads_chain || node->n_output < 1 || !node->output[0][0])
        return node_fail(im, err, "does not continue the chain from the input through '%.60s' (only sequential CNNs can be imported)",
                         im->cur);
    dn_status st;
    if (!strcmp(op, "Conv"))
        st = op_conv(im, node, err);
    else if (!strcmp(op, "MaxPool"))
        st = op_maxpool(im, node, err);
    else if (!strcmp(op, "GlobalAveragePool"))
        st = op_globalavgpool(im, err);
    else if (!strcmp(op, "Relu"))
        st = op_activation(im, node, DN_ACT_RELU, err);
    else if (!strcmp(op, "Sigmoid"))
        st = op_activation(im, node, DN_ACT_SIGMOID, err);
    else if (!strcmp(op, "Tanh"))
        st = op_activation(im, node, DN_ACT_TANH, err);
    else if (!strcmp(op, "Softmax"))
        st = op_activation(im, node, DN_ACT_SOFTMAX, err);
    else if (!strcmp(op, "Gemm") || !strcmp(op, "MatMul"))
        st = op_dense(im, node, op[0] == 'G', err);
    else if (!strcmp(op, "Add"))
        st = op_add(im, node, err);
    else if (!strcmp(op, "Flatten"))
        st = attr_int(node, "axis", 1) == 1 ? flatten(im, err) : node_fail(im, err, "only axis 1 can be imported");
    else if (!strcmp(op, "Reshape"))
        st = op_reshape(im, node, err);
    else if (!strcmp(op, "Transpose"))
        st = op_transpose(im, node, err);
    else if (!strcmp(op, "BatchNormalization"))
        st = op_batchnorm(im, node, err);
    else if (!strcmp(op, "Mul") || !strcmp(op, "Div"))
        st = op_scale(im, node, op[0] == 'D', err);
    else if (!strcmp(op, "Dropout") || !strcmp(op, "Identity"))
        st = DN_OK;
    else
        st = node_fail(im, err, "op not supported (digitnet imports Conv, MaxPool, GlobalAveragePool, Relu, Sigmoid, Tanh, Gemm, MatMul, Add, "
                                "Flatten, Reshape, Transpose, Dropout, BatchNormalization, Softmax)");
    if (st != DN_OK)
        return st;
    im->cur = node->output[0];
    /* The last layer's output moves along through the layout-only nodes (Transpose, Dropout,
     * Identity) and the ones fused into it: element-wise activations commute with those. */
    if (im->n_layers)
        im->layers[im->n_layers - 1].output = im->cur;
    return DN_OK;
}

/* The graph's one real input (not an initializer): its shape and layout. */
static dn_status read_input(importer *im, dn_error *err)
{
    const Onnx__GraphProto *g = im->graph;
    const Onnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        if (find_constant(im, g->input[i]->name))
            continue;
        if (in)
            return dn_fail(err, DN_EFORMAT, "%s: the graph has more than one input; digitnet imports single-input CNNs", im->path);
        in = g->input[i];
    }
    if (!in || !in->name || !in->name[0])
        return dn_fail(err, DN_EFORMAT, "%s: the graph has no input", im->path);
    const Onnx__TypeProto *t = in->type;
    if (!t || t->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type || !t->tensor_type->shape ||
        t->tensor_type->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return dn_fail(err, DN_EFORMAT, "%s: input '%.60s' is not a float32 tensor with a shape", im->path, in->name);
    const Onnx__TensorShapeProto *s = t->tensor_type->shape;
    long long d[4] = {0, 0, 0, 0};
    for (size_t i = 1; i < s->n_dim && i < 4; i++) {
        if (s->dim[i]->value_case != ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || s->dim[i]->dim_value < 1 ||
            s->dim[i]->dim_value > 4096)
            return dn_fail(err, DN_EFORMAT, "%s: input '%.60s' dimension %zu is not a fixed size from 1 to 4096", im->path,
                           in->name, i);
        d[i] = s->dim[i]->dim_value;
    }
    im->cur = in->name;
    im->lay = LAYOUT_NHWC;
    if (s->n_dim == 4 && d[1] <= 4 && d[3] > 4) { /* (N, C, H, W) */
        im->lay = LAYOUT_NCHW;
        im->h = (int)d[2], im->w = (int)d[3], im->c = (int)d[1];
    } else if (s->n_dim == 4) {
        im->h = (int)d[1], im->w = (int)d[2], im->c = (int)d[3];
    } else if (s->n_dim == 3) { /* (N, H, W) */
        im->h = (int)d[1], im->w = (int)d[2], im->c = 1;
    } else if (s->n_dim == 2 && (d[1] == 784 || d[1] == 64)) { /* (N, H*W) of a square image */
        im->h = im->w = d[1] == 784 ? 28 : 8;
        im->c = 1;
    } else
        return dn_fail(err, DN_EFORMAT, "%s: input '%.60s' has %zu dimensions; expected (N, H, W, C), (N, C, H, W), (N, H, W) "
                                        "or (N, 784) / (N, 64)", im->path, in->name, s->n_dim);
    if ((long long)im->h * im->w * im->c > 1 << 22)
        return dn_fail(err, DN_ELIMIT, "%s: input '%.60s' is too large", im->path, in->name);
    im->input = (dn_shape){im->h, im->w, im->c};
    im->input_layout = s->n_dim == 2 ? "flat" : im->lay == LAYOUT_NCHW ? "NCHW" : "NHWC";
    if (s->n_dim == 2) {
        im->lay = LAYOUT_NHWC;
        return flatten(im, err);
    }
    return DN_OK;
}

static const char *metadata(const Onnx__ModelProto *m, const char *key)
{
    for (size_t i = 0; i < m->n_metadata_props; i++)
        if (m->metadata_props[i]->key && m->metadata_props[i]->value && !strcmp(m->metadata_props[i]->key, key))
            return m->metadata_props[i]->value;
    return NULL;
}

/* Multiplies the first conv / dense kernel by k: the input scaling the graph's input leaves to it.
 * Only layers that commute with a positive factor (max-pooling, flatten, ReLU) may come before. */
static dn_status fold_scale(importer *im, double k, dn_error *err)
{
    for (int i = 0; i < im->n_layers; i++) {
        imp_layer *L = &im->layers[i];
        if (L->kind == IMP_CONV || L->kind == IMP_DENSE) {
            for (size_t j = 0; j < L->n_kernel; j++)
                L->weights[j] = (float)(L->weights[j] * k);
            return DN_OK;
        }
        if (L->kind == IMP_BATCHNORM || (L->kind == IMP_ACT && L->act != DN_ACT_RELU))
            break;
    }
    return dn_fail(err, DN_EFORMAT, "%s: the input scaling (x %g) cannot be folded into the first layer; import with the "
                                    "--input-scale the graph was trained with", im->path, k);
}

static dn_status build_net(importer *im, const char *name, dn_net **out, dn_error *err)
{
    size_t cap = 64 + 160 * (size_t)im->n_layers;
    char *spec = malloc(cap);
    if (!spec)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory", im->path);
    size_t len = (size_t)snprintf(spec, cap, "input %dx%dx%d\n", im->input.h, im->input.w, im->input.c);
    for (int i = 0; i < im->n_layers; i++) {
        const imp_layer *L = &im->layers[i];
        const char *act = (L->kind == IMP_CONV || L->kind == IMP_DENSE) && L->act != DN_ACT_NONE ? dn_activation_name(L->act) : "";
        len += (size_t)snprintf(spec + len, cap - len, "%s%s%s\n", L->line, act[0] ? " " : "", act);
    }
    dn_net *net = NULL;
    /* every weight came from the file (initializer sizes are checked), so the file bounds the size */
    dn_status st = dn_net_parse(spec, name, 0, &net, err);
    free(spec);
    if (st != DN_OK)
        return st;
    for (int i = 0; i < im->n_layers && st == DN_OK; i++) {
        const imp_layer *L = &im->layers[i];
        dn_layer *D = &net->layers[i];
        if (L->n_weights != D->n_params + D->n_buffers)
            st = dn_fail(err, DN_ESHAPE, "%s: layer %d (%s) has %zu weights where digitnet expects %zu", im->path, i + 1,
                         L->line, L->n_weights, D->n_params + D->n_buffers);
        else if (L->n_weights) {
            memcpy(D->params, L->weights, sizeof(float) * D->n_params);
            if (D->n_buffers)
                memcpy(D->buffers, L->weights + D->n_params, sizeof(float) * D->n_buffers);
        }
    }
    if (st != DN_OK) {
        dn_net_free(net);
        return st;
    }
    *out = net;
    return DN_OK;
}

static dn_status import_model(importer *im, const Onnx__ModelProto *m, float input_scale, dn_net **out,
                              dn_onnx_import_info *info, dn_error *err)
{
    if (!m->graph)
        return dn_fail(err, DN_EFORMAT, "%s: the model has no graph", im->path);
    im->graph = m->graph;
    im->scale = 1.0;
    dn_status st = read_input(im, err);
    for (size_t i = 0; i < m->graph->n_node && st == DN_OK; i++) {
        describe_node(im, m->graph->node[i], (int)i);
        st = read_node(im, m->graph->node[i], err);
    }
    if (st != DN_OK)
        return st;
    const Onnx__GraphProto *g = m->graph;
    if (g->n_output != 1 || !g->output[0]->name || strcmp(g->output[0]->name, im->cur))
        return dn_fail(err, DN_EFORMAT, "%s: the graph's output is not the end of its chain of layers ('%.60s')", im->path,
                       im->cur);
    if (!im->n_layers)
        return dn_fail(err, DN_EFORMAT, "%s: the graph has no layers", im->path);
    if (im->lay != LAYOUT_FLAT || im->c != DN_N_CLASSES)
        return dn_fail(err, DN_ESHAPE, "%s: %s ends the graph with %d outputs%s, not %d classes", im->path, im->node_desc,
                       im->h * im->w * im->c, im->lay == LAYOUT_FLAT ? "" : " (an image, not a vector)", DN_N_CLASSES);
    if (im->perm)
        return dn_fail(err, DN_EFORMAT, "%s: %s: the graph ends in a flatten of an NCHW image, whose order digitnet's "
                                        "channels-last flatten cannot keep", im->path, im->node_desc);
    imp_layer *last = &im->layers[im->n_layers - 1];
    int softmax_added = 0;
    if (last->kind == IMP_DENSE && last->act == DN_ACT_NONE) {
        last->act = DN_ACT_SOFTMAX; /* logits, as PyTorch's CrossEntropyLoss trains them */
        softmax_added = 1;
    } else if (last->act != DN_ACT_SOFTMAX)
        return dn_fail(err, DN_EFORMAT, "%s: %s: the graph must end in a dense layer (Gemm / MatMul) or a softmax", im->path,
                       im->node_desc);

    const int raw_max = im->input.h == 8 && im->input.w == 8 ? 16 : 255;
    const char *meta_scale = metadata(m, "input_scale");
    double S = input_scale > 0 ? input_scale : meta_scale ? strtod(meta_scale, NULL) : raw_max;
    if (!(S > 0) || !isfinite(S))
        S = raw_max;
    /* digitnet feeds raw / raw_max; the graph's first layer expects (raw / S) times its own scaling. */
    const double k = im->scale * raw_max / S;
    if (fabs(k - 1.0) > 1e-6 && (st = fold_scale(im, k, err)) != DN_OK)
        return st;
    if ((st = build_net(im, im->path, out, err)) != DN_OK)
        return st;
    dn_net_set_raw_max(*out, raw_max);
    if (info) {
        memset(info, 0, sizeof *info);
        snprintf(info->layout, sizeof info->layout, "%s", im->input_layout);
        info->n_nodes = (int)m->graph->n_node;
        info->input_scale = (float)S;
        info->softmax_added = softmax_added;
    }
    return DN_OK;
}

dn_status dn_onnx_import_bytes(const uint8_t *data, size_t size, const char *name, float input_scale, dn_net **out,
                               dn_onnx_import_info *info, dn_error *err)
{
    if (!out || (!data && size))
        return dn_fail(err, DN_EARG, "dn_onnx_import: out and data are required");
    *out = NULL;
    name = name ? name : "ONNX model";
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, size, data);
    if (!m)
        return dn_fail(err, DN_EFORMAT, "%s: not an ONNX model (the protobuf does not parse: truncated or not ONNX)", name);
    importer *im = calloc(1, sizeof *im);
    dn_status st;
    if (!im)
        st = dn_fail(err, DN_ENOMEM, "%s: out of memory", name);
    else {
        im->path = name;
        snprintf(im->node_desc, sizeof im->node_desc, "the input");
        st = import_model(im, m, input_scale, out, info, err);
        for (int i = 0; i < im->n_layers; i++)
            free(im->layers[i].weights);
        free(im->perm);
        free(im);
    }
    onnx__model_proto__free_unpacked(m, NULL);
    /* Names in messages come from the file: no control characters, so the message stays one line. */
    for (char *c = err && st != DN_OK ? err->msg : NULL; c && *c; c++)
        if ((unsigned char)*c < 32 || *c == 127)
            *c = '?';
    return st;
}

dn_status dn_onnx_import(const char *path, float input_scale, dn_net **out, dn_onnx_import_info *info, dn_error *err)
{
    if (!path || !out)
        return dn_fail(err, DN_EARG, "dn_onnx_import: path and out are required");
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *data = NULL;
    long size = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        size = ftell(f);
    dn_status st = DN_OK;
    if (size < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = dn_fail(err, DN_EIO, "%s: cannot read: %s", path, strerror(errno));
    else if ((unsigned long)size > MAX_FILE_BYTES)
        st = dn_fail(err, DN_ELIMIT, "%s: %ld bytes, over the %u-byte limit for an ONNX model", path, size, MAX_FILE_BYTES);
    else if (!(data = malloc((size_t)size + 1)))
        st = dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
    else if (fread(data, 1, (size_t)size, f) != (size_t)size)
        st = dn_fail(err, DN_EIO, "%s: cannot read: %s", path, ferror(f) ? strerror(errno) : "the file got shorter");
    fclose(f);
    if (st == DN_OK)
        st = dn_onnx_import_bytes(data, (size_t)size, path, input_scale, out, info, err);
    free(data);
    return st;
}

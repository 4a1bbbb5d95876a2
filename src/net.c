/* The network: spec parsing, construction, the batch arena, forward and backward passes and
 * inference. Layers are reached only through the registry (layers/layers.def). */
#include "net.h"
#include "kernels/kernels.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define MAX_TOKENS 64 /* a `train` line with every key is 16 words */
#define MAX_SPEC_BYTES (1 << 20)

/* Splits line (modified in place) into whitespace-separated tokens, dropping a '#' comment. */
static int tokenize(char *line, char **tokens, int max)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    int n = 0;
    char *save = NULL; /* strtok_r: parsing stays thread-safe */
    for (char *t = strtok_r(line, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (n == max)
            return -1;
        tokens[n++] = t;
    }
    return n;
}

static int parse_input_shape(const char *s, dn_shape *shape)
{
    int h, w, c;
    char tail;
    if (sscanf(s, "%dx%dx%d%c", &h, &w, &c, &tail) != 3 || h <= 0 || w <= 0 || c <= 0 || h > 4096 || w > 4096 ||
        c > 64)
        return -1;
    *shape = (dn_shape){h, w, c};
    return 0;
}

static void known_kinds(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int k = 0; k < DN_LAYER_COUNT && used < size; k++)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", k ? ", " : "", dn_layer_registry((dn_layer_kind)k)->name);
}

/* Appends a line to the canonical spec text being built. */
static dn_status spec_append(char **spec, size_t *len, const char *line, dn_error *err)
{
    size_t add = strlen(line);
    char *grown = realloc(*spec, *len + add + 2);
    if (!grown)
        return dn_fail(err, DN_ENOMEM, "out of memory building the spec");
    memcpy(grown + *len, line, add);
    grown[*len + add] = '\n';
    grown[*len + add + 1] = '\0';
    *spec = grown;
    *len += add + 1;
    return DN_OK;
}

/* A recipe line (`train key=value ...` or `augment key=value ...`): not a layer; checked here,
 * kept as canonical text (single spaces) and applied later by dn_net_recipe. */
static dn_status parse_recipe_line(dn_net *net, char **tokens, int nt, const char *where, dn_error *err)
{
    if (net->n_recipe == DN_MAX_RECIPE)
        return dn_fail(err, DN_ELIMIT, "%s: too many train / augment lines (at most %d)", where, DN_MAX_RECIPE);
    if (nt < 2)
        return dn_fail(err, DN_EFORMAT, "%s: %s needs key=value options, e.g. '%s'", where, tokens[0],
                       tokens[0][0] == 't' ? "train epochs=40 lr=0.002" : "augment shift=2 rotate=10");
    size_t len = 0;
    for (int i = 0; i < nt; i++)
        len += strlen(tokens[i]) + 1;
    char *line = malloc(len + 1);
    if (!line)
        return dn_fail(err, DN_ENOMEM, "out of memory reading %s", where);
    line[0] = '\0';
    for (int i = 0; i < nt; i++) {
        strcat(line, tokens[i]);
        if (i + 1 < nt)
            strcat(line, " ");
    }
    const char *values = line + strlen(tokens[0]);
    dn_train_params check = dn_train_default_params();
    dn_error why = {0};
    dn_status st = tokens[0][0] == 't' ? dn_train_parse(values, &check, NULL, &why)
                                       : dn_augment_parse(values, &check.augment, &why);
    if (st != DN_OK) {
        free(line);
        return dn_fail(err, st, "%s: %s: %s", where, tokens[0], why.msg);
    }
    net->recipe[net->n_recipe++] = line;
    return DN_OK;
}

/* Reads the layers of the spec into net->layers and computes every shape. */
static dn_status parse_layers(dn_net *net, const char *text, const char *source, dn_error *err)
{
    char *copy = strdup(text);
    if (!copy)
        return dn_fail(err, DN_ENOMEM, "out of memory reading %s", source);
    dn_status st = DN_OK;
    int have_input = 0, line_no = 0, last_line = 0;
    dn_shape shape = {0, 0, 0};
    for (char *cursor = copy; cursor && st == DN_OK;) {
        char *nl = strchr(cursor, '\n');
        if (nl)
            *nl = '\0';
        line_no++;
        char *tokens[MAX_TOKENS];
        char where[320];
        snprintf(where, sizeof where, "%s:%d", source, line_no);
        int nt = tokenize(cursor, tokens, MAX_TOKENS);
        cursor = nl ? nl + 1 : NULL;
        if (nt < 0) {
            st = dn_fail(err, DN_EFORMAT, "%s: too many words on one line (at most %d)", where, MAX_TOKENS);
            break;
        }
        if (nt == 0)
            continue;
        last_line = line_no;
        if (!have_input) {
            if (strcmp(tokens[0], "input") != 0 || nt != 2 || parse_input_shape(tokens[1], &shape)) {
                st = dn_fail(err, DN_EFORMAT, "%s: the first line must be 'input HxWxC', e.g. 'input 28x28x1'", where);
                break;
            }
            net->input = shape;
            have_input = 1;
            continue;
        }
        if (strcmp(tokens[0], "train") == 0 || strcmp(tokens[0], "augment") == 0) {
            st = parse_recipe_line(net, tokens, nt, where, err);
            continue;
        }
        dn_layer_kind kind = dn_layer_lookup(tokens[0]);
        if (kind == DN_LAYER_COUNT) {
            char kinds[256];
            known_kinds(kinds, sizeof kinds);
            st = dn_fail(err, DN_EFORMAT, "%s: unknown layer '%s' (known: %s)", where, tokens[0], kinds);
            break;
        }
        if (net->n_layers == DN_MAX_LAYERS) {
            st = dn_fail(err, DN_ELIMIT, "%s: too many layers (at most %d)", where, DN_MAX_LAYERS);
            break;
        }
        dn_layer *L = &net->layers[net->n_layers];
        memset(L, 0, sizeof *L);
        L->kind = kind;
        L->ops = dn_layer_registry(kind);
        L->in = shape;
        L->rng = &net->rng;
        dn_spec_args args = {nt - 1, tokens + 1, where};
        st = L->ops->parse(L, &args, err);
        if (st == DN_OK)
            st = L->ops->shape(L, where, err);
        if (st != DN_OK)
            break;
        shape = L->out;
        L->flat = L->ops->flat_output || (net->n_layers > 0 && net->layers[net->n_layers - 1].flat);
        net->n_layers++;
        net->n_params += L->n_params;
        net->n_buffers += L->n_buffers;
        if (net->n_params + net->n_buffers > DN_MAX_PARAMS) {
            st = dn_fail(err, DN_ELIMIT, "%s: the network would have over %u parameters", where, DN_MAX_PARAMS);
            break;
        }
        if (net->n_params + net->n_buffers > net->max_floats) {
            st = dn_fail(err, DN_ELIMIT, "%s: the network has more parameters than the file holds (%zu floats)", where,
                         net->max_floats);
            break;
        }
    }
    if (st == DN_OK && !have_input)
        st = dn_fail(err, DN_EFORMAT, "%s: empty spec: expected 'input HxWxC' and then one layer per line", source);
    if (st == DN_OK && net->n_layers == 0)
        st = dn_fail(err, DN_EFORMAT, "%s: the spec has an input but no layers", source);
    if (st == DN_OK) {
        dn_layer *last = &net->layers[net->n_layers - 1];
        if (last->out.h != 1 || last->out.w != 1 || last->out.c != DN_N_CLASSES)
            st = dn_fail(err, DN_ESHAPE, "%s:%d: the last layer must output %d classes, e.g. 'dense %d softmax'; it outputs %dx%dx%d",
                         source, last_line, DN_N_CLASSES, DN_N_CLASSES, last->out.h, last->out.w, last->out.c);
        else if (last->act != DN_ACT_SOFTMAX)
            st = dn_fail(err, DN_EFORMAT, "%s:%d: the last layer must end in softmax (e.g. 'dense %d softmax') for the cross-entropy loss",
                         source, last_line, DN_N_CLASSES);
        else
            last->fused_loss = 1; /* softmax + cross-entropy: the loss hands over p - y directly */
    }
    /* A relu right after batchnorm runs inside batchnorm's training passes (src/layers/batchnorm.c):
     * forward_pass and dn_net_backward skip it in training. */
    for (int i = 0; st == DN_OK && i + 1 < net->n_layers; i++)
        net->layers[i].relu_after =
            net->layers[i].kind == DN_LAYER_BATCHNORM && net->layers[i + 1].kind == DN_LAYER_RELU;
    for (int i = 0; st == DN_OK && i < net->n_layers; i++) {
        dn_layer *L = &net->layers[i];
        const dn_layer *next = i + 1 < net->n_layers ? &net->layers[i + 1] : NULL;
        int rows = L->out.h, cols = L->out.w;
        if (next && next->ops->reads)
            next->ops->reads(next, &rows, &cols);
        L->used_h = rows < L->out.h ? rows : L->out.h;
        L->used_w = cols < L->out.w ? cols : L->out.w;
    }
    free(copy);
    return st;
}

static dn_status build_spec_text(dn_net *net, dn_error *err)
{
    char line[160];
    size_t len = 0;
    snprintf(line, sizeof line, "input %dx%dx%d", net->input.h, net->input.w, net->input.c);
    dn_status st = spec_append(&net->spec, &len, line, err);
    for (int i = 0; i < net->n_layers && st == DN_OK; i++) {
        net->layers[i].ops->print(&net->layers[i], line, sizeof line);
        st = spec_append(&net->spec, &len, line, err);
    }
    for (int i = 0; i < net->n_recipe && st == DN_OK; i++)
        st = spec_append(&net->spec, &len, net->recipe[i], err);
    return st;
}

static void measure_prefix(dn_net *net);

dn_status dn_net_parse(const char *spec_text, const char *source_name, uint64_t seed, dn_net **out, dn_error *err)
{
    return dn_net_parse_limited(spec_text, source_name, seed, (size_t)-1, out, err);
}

dn_status dn_net_parse_limited(const char *spec_text, const char *source_name, uint64_t seed, size_t max_floats,
                               dn_net **out, dn_error *err)
{
    if (!spec_text || !out)
        return dn_fail(err, DN_EARG, "dn_net_parse: NULL argument");
    *out = NULL;
    if (!source_name)
        source_name = "spec";
    dn_net *net = calloc(1, sizeof *net);
    if (!net)
        return dn_fail(err, DN_ENOMEM, "out of memory creating the network");
    net->seed = seed;
    net->max_floats = max_floats;
    net->raw_max = 255;
    dn_rng_seed(&net->rng, seed);
    /* Windows editors start a UTF-8 file with a byte-order mark: not part of the first line. */
    if (strncmp(spec_text, "\xEF\xBB\xBF", 3) == 0)
        spec_text += 3;
    dn_status st = parse_layers(net, spec_text, source_name, err);
    if (st == DN_OK)
        st = build_spec_text(net, err);
    if (st == DN_OK)
        measure_prefix(net);
    if (st == DN_OK) {
        net->params = calloc(net->n_params ? net->n_params : 1, sizeof(float));
        net->grads = calloc(net->n_params ? net->n_params : 1, sizeof(float));
        net->buffers = calloc(net->n_buffers ? net->n_buffers : 1, sizeof(float));
        if (!net->params || !net->grads || !net->buffers)
            st = dn_fail(err, DN_ENOMEM, "out of memory for %zu parameters", net->n_params);
    }
    if (st != DN_OK) {
        dn_net_free(net);
        return st;
    }
    size_t p = 0, b = 0;
    for (int i = 0; i < net->n_layers; i++) {
        dn_layer *L = &net->layers[i];
        L->params = net->params + p;
        L->grads = net->grads + p;
        L->buffers = net->buffers + b;
        p += L->n_params;
        b += L->n_buffers;
        if (L->ops->init)
            L->ops->init(L, &net->rng);
    }
    *out = net;
    return DN_OK;
}

dn_status dn_net_load_spec(const char *path, uint64_t seed, dn_net **out, dn_error *err)
{
    if (!path || !out)
        return dn_fail(err, DN_EARG, "dn_net_load_spec: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    char *text = malloc(MAX_SPEC_BYTES + 1);
    if (!text) {
        fclose(f);
        return dn_fail(err, DN_ENOMEM, "out of memory reading %s", path);
    }
    size_t len = fread(text, 1, MAX_SPEC_BYTES + 1, f);
    int failed = ferror(f);
    fclose(f);
    dn_status st;
    if (failed)
        st = dn_fail(err, DN_EIO, "%s: read error", path);
    else if (len > MAX_SPEC_BYTES)
        st = dn_fail(err, DN_ELIMIT, "%s: a spec file is at most %d bytes", path, MAX_SPEC_BYTES);
    else if (memchr(text, '\0', len))
        st = dn_fail(err, DN_EFORMAT, "%s: not a text spec (binary data), nor a saved model", path);
    else {
        text[len] = '\0';
        st = dn_net_parse(text, path, seed, out, err);
    }
    free(text);
    return st;
}

void dn_net_free(dn_net *net)
{
    if (!net)
        return;
    free(net->spec);
    free(net->params);
    free(net->grads);
    free(net->buffers);
    free(net->opt_m);
    free(net->opt_v);
    free(net->arena);
    free(net->history);
    free(net->order);
    free(net->best);
    for (int i = 0; i < net->n_recipe; i++)
        free(net->recipe[i]);
    for (int i = 0; i < net->n_notes; i++) {
        free(net->note_keys[i]);
        free(net->note_values[i]);
    }
    for (int m = 0; m < net->n_members; m++)
        dn_net_free(net->members[m]);
    free(net->members);
    free(net);
}

const char *dn_net_spec(const dn_net *net) { return net->spec; }
dn_shape dn_net_input_shape(const dn_net *net) { return net->input; }
int dn_net_n_classes(const dn_net *net) { return net->layers[net->n_layers - 1].out.c; }
int dn_net_layer_count(const dn_net *net) { return net->n_layers; }
size_t dn_net_param_count(const dn_net *net) { return net->n_params + net->n_buffers; }
size_t dn_net_trainable_count(const dn_net *net) { return net->n_params; }
int dn_net_raw_max(const dn_net *net) { return net->raw_max; }
dn_status dn_net_set_raw_max(dn_net *net, int raw_max)
{
    if (!net || raw_max < 1 || raw_max > DN_RAW_MAX_LIMIT)
        return DN_EARG;
    net->raw_max = raw_max;
    for (int m = 0; m < net->n_members; m++) /* an ensemble reads one kind of pixels */
        net->members[m]->raw_max = raw_max;
    return DN_OK;
}
uint64_t dn_net_seed(const dn_net *net) { return net->seed; }

dn_status dn_net_layer_info(const dn_net *net, int index, dn_layer_info *info)
{
    if (!net || !info || index < 0 || index >= net->n_layers)
        return DN_EARG;
    const dn_layer *L = &net->layers[index];
    info->kind = L->ops->name;
    L->ops->print(L, info->label, sizeof info->label);
    info->out = L->out;
    info->flat = L->flat;
    info->n_params = L->n_params + L->n_buffers;
    info->n_trainable = L->n_params;
    return DN_OK;
}

void dn_set_threads(int n_threads)
{
    if (n_threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 ? (int)cores : 1;
    }
#ifdef _OPENMP
    omp_set_num_threads(n_threads);
#endif
}

/* The leading layers that may run a few rows at a time (dn_rows). */
static int row_prefix(const dn_net *net, int training)
{
    int i = 0;
    while (i < net->n_layers) {
        dn_rows rows = net->layers[i].ops->rows;
        if (!(rows == DN_ROWS_EACH || (rows == DN_ROWS_EACH_INFERENCE && !training)))
            break;
        i++;
    }
    return i;
}

#define MAX_BLOCKS 16

/* Rows per block of the row-wise prefix for a pass over n rows (see DN_FORWARD_BLOCK_BYTES). */
static int block_rows(size_t row_floats, size_t bytes, int n, int min_blocks)
{
    size_t rows = bytes / (sizeof(float) * (row_floats ? row_floats : 1));
    size_t cap = (size_t)(n / min_blocks);
    if (rows > cap)
        rows = cap;
    /* At most MAX_BLOCKS blocks: each backward block keeps its own gradient sum, and large images
     * in large batches would otherwise need one per row. */
    size_t floor = ((size_t)n + MAX_BLOCKS - 1) / MAX_BLOCKS;
    if (rows < floor)
        rows = floor;
    return rows < 1 ? 1 : (int)rows;
}

static int forward_block_rows(const dn_net *net, int n)
{
    return block_rows(net->prefix_largest, DN_FORWARD_BLOCK_BYTES, n, 8);
}

static int backward_block_rows_of(size_t row_floats, int n)
{
    return block_rows(row_floats, DN_BACKWARD_BLOCK_BYTES, n, 4);
}

static int backward_block_rows(const dn_net *net, int n)
{
    return backward_block_rows_of(net->prefix_largest, n);
}

/* The backward blocks [*t0, *t1) of tiles that rank owns: contiguous runs, balanced. */
static void share_blocks(int tiles, int rank, int n_ranks, int *t0, int *t1)
{
    *t0 = (int)((long)tiles * rank / n_ranks);
    *t1 = (int)((long)tiles * (rank + 1) / n_ranks);
}

/* The rows of an n-row batch that rank's blocks cover (the row-wise prefix, training). */
static void share_rows(const dn_net *net, int n, int rank, int *first, int *end)
{
    const int block = backward_block_rows(net, n), tiles = (n + block - 1) / block;
    int t0, t1;
    share_blocks(tiles, rank, net->share->n_ranks, &t0, &t1);
    *first = t0 * block < n ? t0 * block : n;
    *end = t1 * block < n ? t1 * block : n;
}

void dn_net_share_rows(const dn_net *net, int n, int *first, int *end)
{
    *first = 0, *end = n;
    if (net->share && row_prefix(net, 1) > 0)
        share_rows(net, n, net->share->rank, first, end);
}

/* After this every rank's part of buf (net->share->offsets, which the caller filled) is there. */
static void share_exchange(const dn_net *net, float *buf)
{
    dn_net_share *s = net->share;
    if (!s->failed && s->allgather(s->user, buf, s->offsets) != 0)
        s->failed = 1;
}

size_t dn_net_exchange_floats(const dn_net *net, int batch, size_t *row_floats, size_t *block_floats, int *blocks)
{
    const int prefix = row_prefix(net, 1);
    const int n = prefix > 0 && batch > 0 ? batch : 0;
    const int block = n ? backward_block_rows(net, n) : 1;
    *row_floats = prefix > 0 ? dn_shape_size(net->layers[prefix - 1].out) : 0;
    *block_floats = net->prefix_params;
    *blocks = (n + block - 1) / block;
    return (size_t)n * *row_floats + (size_t)*blocks * net->prefix_params;
}

/* Refuses a batch for which some layer's row or value index would pass INT_MAX (kernels use int). */
static dn_status check_batch(const dn_net *net, int batch, dn_error *err)
{
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        size_t biggest = dn_shape_size(L->out) > L->scratch_per_item ? dn_shape_size(L->out) : L->scratch_per_item;
        if ((double)biggest * batch >= 2147483647.0 || (double)L->out.h * L->out.w * batch >= 2147483647.0)
            return dn_fail(err, DN_ELIMIT, "a batch of %d is too large for layer %d (%s)", batch, i + 1, L->ops->name);
    }
    return DN_OK;
}

/* Floats of every layer's output and scratch for batch rows (the start of an arena). */
static size_t activation_floats(const dn_net *net, int batch)
{
    size_t total = 0;
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        total += dn_shape_size(L->out) * (size_t)batch + L->scratch_per_item * (size_t)batch + L->scratch_fixed;
    }
    return total;
}

/* Carves activation_floats(net, batch) floats at p into acts[1..] and the layers' scratch; returns
 * the end. layers are the net's own (training) or a workspace's copies (inference). */
static float *carve_activations(const dn_net *net, dn_layer *layers, float **acts, float *p, int batch)
{
    for (int i = 0; i < net->n_layers; i++) {
        dn_layer *L = &layers[i];
        acts[i + 1] = p;
        p += dn_shape_size(L->out) * (size_t)batch;
        L->scratch = p;
        L->rows_cap = batch;
        p += L->scratch_per_item * (size_t)batch + L->scratch_fixed;
    }
    return p;
}

/* Sizes of the training-only buffers, which depend on the layers alone: set once by parsing. */
static void measure_prefix(dn_net *net)
{
    size_t largest = dn_shape_size(net->input), prefix_params = 0, prefix_largest = 0;
    for (int i = 0; i < net->n_layers; i++)
        if (dn_shape_size(net->layers[i].out) > largest)
            largest = dn_shape_size(net->layers[i].out);
    const int prefix = row_prefix(net, 1);
    for (int i = 0; i < prefix; i++) {
        size_t in = dn_shape_size(net->layers[i].in), out = dn_shape_size(net->layers[i].out);
        prefix_params += net->layers[i].n_params;
        prefix_largest = in > prefix_largest ? in : prefix_largest;
        prefix_largest = out > prefix_largest ? out : prefix_largest;
    }
    size_t tile_params = prefix_params;
    for (int i = prefix; i < net->n_layers; i++)
        if (net->layers[i].ops->rows == DN_ROWS_EACH && net->layers[i].n_params > tile_params)
            tile_params = net->layers[i].n_params;
    net->largest = largest;
    net->prefix_params = prefix_params;
    net->tile_params = tile_params;
    net->prefix_largest = prefix_largest;
}

dn_status dn_net_reserve(dn_net *net, int batch, dn_error *err)
{
    if (batch <= net->batch_cap)
        return DN_OK;
    dn_status st = check_batch(net, batch, err);
    if (st != DN_OK)
        return st;
    const size_t largest = net->largest;
    size_t total = activation_floats(net, batch);
    total += 3 * largest * (size_t)batch; /* dbuf[0], dbuf[1], tile_dbuf */
    /* the most row blocks a backward pass can have (block_rows never makes more than MAX_BLOCKS) */
    const size_t tiles = batch < MAX_BLOCKS ? (size_t)batch : MAX_BLOCKS;
    total += tiles * net->tile_params;
    float *arena = malloc(total * sizeof(float));
    if (!arena)
        return dn_fail(err, DN_ENOMEM, "out of memory for a batch of %d (%zu MB)", batch, total * sizeof(float) >> 20);
    free(net->arena);
    net->arena = arena;
    net->batch_cap = batch;
    float *p = carve_activations(net, net->layers, net->acts, arena, batch);
    net->dbuf[0] = p;
    net->dbuf[1] = p + largest * (size_t)batch;
    net->tile_dbuf = net->dbuf[1] + largest * (size_t)batch;
    net->tile_grads = net->tile_dbuf + largest * (size_t)batch;
    return DN_OK;
}

/* A forward pass over n rows through `layers` (the net's, or a workspace's copies), activations in
 * acts; returns the output (n, n_classes). Reads the net's weights and nothing else of it. */
static const float *forward_pass(const dn_net *net, dn_layer *layers, float **acts, const float *x, int n,
                                 int training)
{
    acts[0] = (float *)(uintptr_t)x; /* read only: layers never write their input */
    for (int i = 0; i < net->n_layers; i++)
        if (layers[i].ops->begin_forward)
            layers[i].ops->begin_forward(&layers[i], n, training);
    /* The row-wise prefix: each thread takes a block of rows through all of it, so a row's
     * activations are read back from cache (a whole batch's first convolution output does not fit).
     * Tiles are cut by row count only: any thread count computes the same numbers. */
    const int prefix = row_prefix(net, training);
    const int block = forward_block_rows(net, n);
    const int tiles = (n + block - 1) / block;
    /* Shared training: this rank's rows only (dn_net_share), whose outputs no row depends on. */
    int lo = 0, hi = n;
    const int shared = net->share && training && prefix > 0;
    if (shared)
        share_rows(net, n, net->share->rank, &lo, &hi);
    /* No team for one tile (a single image): kernels/kernels.h, DN_PARALLEL_FOR */
    DN_PARALLEL_FOR(prefix > 0 && tiles > 1, for (int t = 0; t < tiles; t++) {
        const int first = t * block > lo ? t * block : lo;
        const int end = (t + 1) * block < hi ? (t + 1) * block : hi;
        const int rows = end - first;
        if (rows <= 0)
            continue;
        for (int i = 0; i < prefix; i++) {
            dn_layer *L = &layers[i];
            L->ops->forward(L, acts[i] + (size_t)first * dn_shape_size(L->in),
                            acts[i + 1] + (size_t)first * dn_shape_size(L->out), first, rows, training);
        }
    });
    if (shared) { /* every rank's prefix output, for the batch-wide layers */
        const size_t row = dn_shape_size(net->layers[prefix - 1].out);
        for (int r = 0; r <= net->share->n_ranks; r++) {
            int first, end;
            share_rows(net, n, r < net->share->n_ranks ? r : r - 1, &first, &end);
            net->share->offsets[r] = (size_t)(r < net->share->n_ranks ? first : end) * row;
        }
        share_exchange(net, acts[prefix]);
    }
    for (int i = prefix; i < net->n_layers; i++) {
        dn_layer *L = &layers[i];
        /* batchnorm with its relu, in training: writes the relu's output (one layer further on) */
        const int skip = training && L->relu_after;
        float *dst = acts[i + 1 + skip];
        const size_t in = dn_shape_size(L->in), out = dn_shape_size(L->out);
        /* A row-wise layer after a batch-coupled one (a convolution after batchnorm): row blocks
         * on all threads, one layer at a time. */
        const int each = L->ops->rows == DN_ROWS_EACH && n > 1;
        const int rows_per = each ? block_rows(in > out ? in : out, DN_FORWARD_BLOCK_BYTES, n, 8) : n;
        const int blocks = (n + rows_per - 1) / rows_per;
        DN_PARALLEL_FOR(blocks > 1, for (int t = 0; t < blocks; t++) {
            const int first = t * rows_per, rows = n - first < rows_per ? n - first : rows_per;
            L->ops->forward(L, acts[i] + (size_t)first * in, dst + (size_t)first * out, first, rows, training);
        });
        i += skip;
    }
    return acts[net->n_layers];
}

/* Backward through one batch-wide layer. A row-wise one runs in row blocks on all threads, each
 * block's parameter gradients in a partial sum of its own, added in block order: the same bits for
 * any thread count. */
static void backward_layer(dn_net *net, dn_layer *L, int i, float *dout, float *din, int n)
{
    const size_t in = dn_shape_size(L->in), out = dn_shape_size(L->out), np = L->n_params;
    if (L->ops->rows != DN_ROWS_EACH || n < 2) { /* out: the fused relu's output, if any */
        L->ops->backward(L, net->acts[i], net->acts[i + 1 + L->relu_after], dout, din, 0, n, L->grads);
        return;
    }
    const int rows_per = backward_block_rows_of(in > out ? in : out, n);
    const int blocks = (n + rows_per - 1) / rows_per;
    DN_PARALLEL_FOR(blocks > 1, for (int t = 0; t < blocks; t++) {
        const int first = t * rows_per, rows = n - first < rows_per ? n - first : rows_per;
        float *partial = net->tile_grads + (size_t)t * np;
        if (np)
            memset(partial, 0, sizeof(float) * np);
        L->ops->backward(L, net->acts[i] + (size_t)first * in, net->acts[i + 1] + (size_t)first * out,
                         dout + (size_t)first * out, din ? din + (size_t)first * in : NULL, first, rows, partial);
    });
    DN_PARALLEL_FOR(np * (size_t)blocks > 1 << 15, for (size_t k = 0; k < np; k++) {
        float sum = L->grads[k];
        for (int t = 0; t < blocks; t++)
            sum += net->tile_grads[(size_t)t * np + k];
        L->grads[k] = sum;
    });
}

const float *dn_net_forward(dn_net *net, const float *x, int n, int training)
{
    return forward_pass(net, net->layers, net->acts, x, n, training);
}

/* The other of the two gradient buffers. */
static float *other_dbuf(const dn_net *net, const float *d)
{
    return d == net->dbuf[0] ? net->dbuf[1] : net->dbuf[0];
}

void dn_net_backward(dn_net *net, float *dlogits, int n)
{
    for (int i = 0; i < net->n_layers; i++)
        if (net->layers[i].ops->begin_backward)
            net->layers[i].ops->begin_backward(&net->layers[i]);
    /* The batch-wide layers, from the last one back. */
    const int prefix = row_prefix(net, 1);
    float *dout = dlogits;
    for (int i = net->n_layers - 1; i >= prefix; i--) {
        dn_layer *L = &net->layers[i];
        if (i > 0 && net->layers[i - 1].relu_after)
            continue; /* the relu's gradient is applied by the batchnorm before it */
        float *din = i > 0 ? other_dbuf(net, dout) : NULL;
        backward_layer(net, L, i, dout, din, n);
        dout = din;
    }
    if (prefix == 0)
        return;
    /* The row-wise layers, in blocks of rows (backward_block_rows): each thread takes a block back
     * through all of them while its activations are in cache. Parameter gradients go to one partial
     * sum per block, added up in block order below, so any thread count gives the same bits. The
     * blocks pass gradients between layers in two buffers of their own, each block in its rows'
     * share (largest activation per row): dout, which holds every block's input, is read only. */
    const int block = backward_block_rows(net, n);
    const int tiles = (n + block - 1) / block;
    const size_t np = net->prefix_params;
    /* Shared training: this rank's blocks, then every rank's block sums (dn_net_share). */
    int t_lo = 0, t_hi = tiles;
    if (net->share)
        share_blocks(tiles, net->share->rank, net->share->n_ranks, &t_lo, &t_hi);
    DN_PARALLEL_FOR(t_hi - t_lo > 1, for (int t = t_lo; t < t_hi; t++) {
        const int first = t * block, rows = n - first < block ? n - first : block;
        float *partial = net->tile_grads + (size_t)t * np;
        memset(partial, 0, sizeof(float) * np);
        float *const bufs[2] = {other_dbuf(net, dout) + (size_t)first * net->largest,
                                net->tile_dbuf + (size_t)first * net->largest};
        float *d = dout + (size_t)first * dn_shape_size(net->layers[prefix - 1].out);
        for (int i = prefix - 1, k = 0; i >= 0; i--, k ^= 1) {
            dn_layer *L = &net->layers[i];
            float *din = i > 0 ? bufs[k] : NULL;
            L->ops->backward(L, net->acts[i] + (size_t)first * dn_shape_size(L->in),
                             net->acts[i + 1] + (size_t)first * dn_shape_size(L->out), d, din, first, rows,
                             partial + (L->grads - net->grads));
            d = din;
        }
    });
    if (net->share) {
        for (int r = 0; r <= net->share->n_ranks; r++) {
            int t0, t1;
            share_blocks(tiles, r < net->share->n_ranks ? r : r - 1, net->share->n_ranks, &t0, &t1);
            net->share->offsets[r] = (size_t)(r < net->share->n_ranks ? t0 : t1) * np;
        }
        share_exchange(net, net->tile_grads);
    }
    DN_PARALLEL_FOR(np * (size_t)tiles > 1 << 15, for (size_t k = 0; k < np; k++) {
        float sum = net->grads[k];
        for (int t = 0; t < tiles; t++) /* in block order, whichever thread adds */
            sum += net->tile_grads[(size_t)t * np + k];
        net->grads[k] = sum;
    });
}

const float *dn_net_din_row(const dn_net *net, const float *dlogits, int n, int layer, int row)
{
    const int prefix = row_prefix(net, 1);
    const float *dout = dlogits;
    for (int i = net->n_layers - 1; i >= prefix && i >= 1; i--) { /* the batch-wide layers */
        if (net->layers[i - 1].relu_after) { /* as dn_net_backward: no gradient of its own */
            if (i == layer)
                return NULL;
            continue;
        }
        const float *din = other_dbuf(net, dout);
        if (i == layer)
            return din + (size_t)row * dn_shape_size(net->layers[i].in);
        dout = din;
    }
    /* a row block: layer prefix - 1 writes into bufs[0], the one before into bufs[1], ... */
    const int block = backward_block_rows(net, n), first = row / block * block;
    const float *base = (prefix - 1 - layer) % 2 == 0 ? other_dbuf(net, dout) : net->tile_dbuf;
    return base + (size_t)first * net->largest + (size_t)(row - first) * dn_shape_size(net->layers[layer].in);
}

dn_status dn_workspace_init(const dn_net *net, dn_workspace **out, dn_error *err)
{
    if (!net || !out)
        return dn_fail(err, DN_EARG, "dn_workspace_init: NULL argument");
    dn_workspace *ws = calloc(1, sizeof *ws);
    if (!ws)
        return dn_fail(err, DN_ENOMEM, "out of memory for an inference workspace");
    ws->net = net;
    memcpy(ws->layers, net->layers, sizeof(dn_layer) * (size_t)net->n_layers);
    if (net->n_members > 0) {
        ws->members = calloc((size_t)net->n_members, sizeof *ws->members);
        int ok = ws->members != NULL;
        for (int m = 0; ok && m < net->n_members; m++) {
            ok = dn_workspace_init(net->members[m], &ws->members[m], NULL) == DN_OK;
            ws->n_members += ok;
        }
        if (!ok) {
            dn_workspace_free(ws);
            return dn_fail(err, DN_ENOMEM, "out of memory for an inference workspace");
        }
    }
    *out = ws;
    return DN_OK;
}

void dn_workspace_free(dn_workspace *ws)
{
    if (!ws)
        return;
    for (int m = 0; m < ws->n_members; m++)
        dn_workspace_free(ws->members[m]);
    free(ws->members);
    free(ws->arena);
    free(ws);
}

/* Makes sure the workspace holds batch rows; allocates only when it grows. */
static dn_status workspace_reserve(dn_workspace *ws, int batch, dn_error *err)
{
    if (batch <= ws->batch_cap)
        return DN_OK;
    dn_status st = check_batch(ws->net, batch, err);
    if (st != DN_OK)
        return st;
    size_t total = activation_floats(ws->net, batch);
    float *arena = malloc((total ? total : 1) * sizeof(float));
    if (!arena)
        return dn_fail(err, DN_ENOMEM, "out of memory for a batch of %d (%zu MB)", batch, total * sizeof(float) >> 20);
    free(ws->arena);
    ws->arena = arena;
    ws->batch_cap = batch;
    ws->last_n = 0;
    carve_activations(ws->net, ws->layers, ws->acts, arena, batch);
    return DN_OK;
}

/* An ensemble's chunk: probs (rows, classes) holds member 0's output; adds the other members' in
 * member order and divides by the number of members (the mean of the members' probabilities).
 * Member 0's activations stay in ws, so dn_workspace_layer_output describes member 0. */
static void ensemble_average(const dn_net *net, dn_workspace *ws, const float *images, int rows, float *probs)
{
    const size_t count = (size_t)rows * (size_t)dn_net_n_classes(net);
    for (int m = 0; m < ws->n_members; m++) {
        dn_workspace *mw = ws->members[m];
        const float *out = forward_pass(mw->net, mw->layers, mw->acts, images, rows, 0);
        mw->last_n = rows;
        for (size_t i = 0; i < count; i++)
            probs[i] += out[i];
    }
    const float k = (float)(ws->n_members + 1);
    for (size_t i = 0; i < count; i++)
        probs[i] /= k;
}

dn_status dn_net_predict_ws(const dn_net *net, dn_workspace *ws, const float *images, int n, float *probs,
                            dn_error *err)
{
    if (!net || !ws || !images || !probs || n < 0)
        return dn_fail(err, DN_EARG, "dn_net_predict_ws: bad argument");
    if (ws->net != net)
        return dn_fail(err, DN_EARG, "dn_net_predict_ws: the workspace was made for another network");
    if (n == 0)
        return DN_OK;
    if (net->n_members != ws->n_members)
        return dn_fail(err, DN_EARG, "dn_net_predict_ws: the workspace was made for another network");
    /* A fixed chunk, whatever batch size the net trained with: the GEMMs then see the same shapes,
     * so a saved model evaluated later reproduces the numbers printed after training bit for bit.
     * (Each thread taking whole chunks through the whole net, with no waiting between layers, was
     * measured too: no faster than this, where threads share each layer.) */
    int chunk = n < DN_PREDICT_CHUNK ? n : DN_PREDICT_CHUNK;
    dn_status st = workspace_reserve(ws, chunk, err);
    for (int m = 0; st == DN_OK && m < ws->n_members; m++)
        st = workspace_reserve(ws->members[m], chunk, err);
    if (st != DN_OK)
        return st;
    const size_t in_size = dn_shape_size(net->input);
    const int classes = dn_net_n_classes(net);
    dn_fp_saved fp; /* flush-to-zero and denormals-are-zero, as in training (kernels/fp_mode.c) */
    /* One image runs on the calling thread (every per-image loop and product stays on one thread
     * for a single row), so only its mode is set: waking the team twice would cost more than the
     * prediction. */
    const int here = n == 1;
    if (here)
        dn_fp_fast_begin_here(&fp);
    else
        dn_fp_fast_begin(&fp);
    for (int start = 0; start < n; start += chunk) {
        int rows = n - start < chunk ? n - start : chunk;
        const float *chunk_in = images + (size_t)start * in_size;
        float *chunk_probs = probs + (size_t)start * classes;
        const float *out = forward_pass(net, ws->layers, ws->acts, chunk_in, rows, 0);
        memcpy(chunk_probs, out, sizeof(float) * (size_t)rows * classes);
        ws->last_n = rows;
        if (ws->n_members > 0)
            ensemble_average(net, ws, chunk_in, rows, chunk_probs);
    }
    if (here)
        dn_fp_fast_end_here(&fp);
    else
        dn_fp_fast_end(&fp);
    return DN_OK;
}

dn_status dn_net_predict(const dn_net *net, const float *images, int n, float *probs, dn_error *err)
{
    if (!net)
        return dn_fail(err, DN_EARG, "dn_net_predict: bad argument");
    dn_workspace *ws = NULL;
    dn_status st = dn_workspace_init(net, &ws, err);
    if (st == DN_OK)
        st = dn_net_predict_ws(net, ws, images, n, probs, err);
    dn_workspace_free(ws);
    return st;
}

const float *dn_workspace_layer_output(const dn_workspace *ws, int index, dn_shape *shape)
{
    if (!ws || index < 0 || index >= ws->net->n_layers || ws->last_n < 1)
        return NULL;
    if (shape)
        *shape = ws->layers[index].out;
    return ws->acts[index + 1];
}

dn_status dn_net_push_history(dn_net *net, const dn_epoch_stats *stats, dn_error *err)
{
    if (net->n_history == net->cap_history) {
        int cap = net->cap_history ? 2 * net->cap_history : 16;
        dn_epoch_stats *grown = realloc(net->history, sizeof *grown * (size_t)cap);
        if (!grown)
            return dn_fail(err, DN_ENOMEM, "out of memory for the training history");
        net->history = grown;
        net->cap_history = cap;
    }
    net->history[net->n_history++] = *stats;
    return DN_OK;
}

const dn_epoch_stats *dn_net_history(const dn_net *net, int *n_epochs)
{
    if (n_epochs)
        *n_epochs = net->n_history;
    return net->history;
}

dn_status dn_net_set_note(dn_net *net, const char *key, const char *value, dn_error *err)
{
    if (!net || !key || !value || !*key)
        return dn_fail(err, DN_EARG, "dn_net_set_note: bad argument");
    int i = 0;
    while (i < net->n_notes && strcmp(net->note_keys[i], key) != 0)
        i++;
    if (i == DN_MAX_NOTES)
        return dn_fail(err, DN_ELIMIT, "at most %d notes per model", DN_MAX_NOTES);
    char *v = strdup(value), *k = i < net->n_notes ? net->note_keys[i] : strdup(key);
    if (!v || !k) {
        free(v);
        if (i == net->n_notes)
            free(k);
        return dn_fail(err, DN_ENOMEM, "out of memory for a note");
    }
    if (i < net->n_notes)
        free(net->note_values[i]);
    else
        net->n_notes++;
    net->note_keys[i] = k;
    net->note_values[i] = v;
    return DN_OK;
}

const char *dn_net_note(const dn_net *net, const char *key)
{
    for (int i = 0; i < net->n_notes; i++)
        if (strcmp(net->note_keys[i], key) == 0)
            return net->note_values[i];
    return NULL;
}

int dn_net_note_at(const dn_net *net, int i, const char **key, const char **value)
{
    if (i < 0 || i >= net->n_notes)
        return 0;
    *key = net->note_keys[i];
    *value = net->note_values[i];
    return 1;
}

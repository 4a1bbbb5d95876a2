/* Model files in the safetensors format: an 8-byte little-endian header length, a JSON header
 * naming every tensor (dtype, shape, byte offsets) plus a "__metadata__" map of strings, then the
 * raw little-endian float32 data. NumPy / PyTorch users can read the weights with the safetensors
 * package; digitnet stores its spec and training record in the metadata so a model reloads exactly.
 * Tensor names are "<layer index>.<kind>.<tensor>", e.g. "0.conv2d.kernel". */
#include "net.h"
#include "util/atomic_file.h"

#include <cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS_PER_LAYER 8
#define MAX_HEADER_BYTES (16u << 20) /* a header beyond 16 MB is not one we wrote */
#define FORMAT_NAME "digitnet"
/* Version 1: models and checkpoints. Version 2: a checkpoint carrying early stopping's best epoch
 * (best_epoch, best_loss, best_stale, tensor early_stopping.best). Only such a checkpoint is written
 * as version 2, so every other file still loads in a digitnet that reads version 1, and one that
 * cannot hold the early-stopping state says so by its version rather than by a tensor it does not
 * know. This digitnet reads both. */
#define FORMAT_VERSION "1"
#define FORMAT_VERSION_EARLY_STOPPING "2"

_Static_assert(sizeof(float) == 4, "model files store IEEE float32");

typedef struct tensor_list {
    int n;
    const char *names[MAX_TENSORS_PER_LAYER];
    int dims[MAX_TENSORS_PER_LAYER][4];
    int ndim[MAX_TENSORS_PER_LAYER];
} tensor_list;

static void layer_tensors(const dn_layer *L, tensor_list *t)
{
    t->n = L->ops->tensors ? L->ops->tensors(L, t->names, t->dims, t->ndim, MAX_TENSORS_PER_LAYER) : 0;
}

static size_t tensor_count(const tensor_list *t, int i)
{
    size_t count = 1;
    for (int d = 0; d < t->ndim[i]; d++)
        count *= (size_t)t->dims[i][d];
    return count;
}

/* The floats of layer L in file order: its parameters, then its buffers. */
static float *layer_tensor_data(dn_layer *L, const tensor_list *t, int i)
{
    size_t offset = 0;
    for (int k = 0; k < i; k++)
        offset += tensor_count(t, k);
    return offset < L->n_params ? L->params + offset : L->buffers + (offset - L->n_params);
}

static const char *preprocess_name(dn_shape in)
{
    if (in.h == 28 && in.w == 28 && in.c == 1)
        return "mnist-28x28";
    if (in.h == 8 && in.w == 8 && in.c == 1)
        return "optdigits-8x8";
    return "none";
}

/* A finite double as JSON with 17 significant digits, which always reads back to the same bits;
 * cJSON's own printing settles for 15 digits when they compare equal within its epsilon. */
static void add_exact(cJSON *obj, const char *key, double v)
{
    char text[32];
    snprintf(text, sizeof text, "%.17g", v);
    cJSON_AddRawToObject(obj, key, text);
}

static cJSON *history_json(const dn_net *net)
{
    cJSON *list = cJSON_CreateArray();
    for (int i = 0; list && i < net->n_history; i++) {
        const dn_epoch_stats *s = &net->history[i];
        cJSON *e = cJSON_CreateObject();
        if (!e)
            break;
        cJSON_AddNumberToObject(e, "epoch", s->epoch);
        add_exact(e, "loss", s->loss);
        add_exact(e, "accuracy", s->accuracy);
        if (isfinite(s->val_loss)) {
            add_exact(e, "val_loss", s->val_loss);
            add_exact(e, "val_accuracy", s->val_accuracy);
        }
        add_exact(e, "seconds", s->seconds);
        add_exact(e, "images_per_sec", s->images_per_sec);
        cJSON_AddItemToArray(list, e);
    }
    return list;
}

/* Names one extra tensor (optimizer moments, the epoch's row order) in the header. */
static int add_extra_tensor(cJSON *root, const char *name, const char *dtype, size_t count, size_t *offset)
{
    cJSON *entry = cJSON_CreateObject();
    if (!entry)
        return -1;
    cJSON_AddItemToObject(root, name, entry);
    cJSON_AddStringToObject(entry, "dtype", dtype);
    cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
    cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
    if (!shape || !offsets)
        return -1;
    cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)count));
    cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
    *offset += count * 4;
    cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
    return 0;
}

static int has_best(const dn_net *net)
{
    return net->best && net->best_epoch > 0;
}

/* A checkpoint adds what training needs to continue exactly: optimizer moments and step, the
 * generator's state, the position inside the current epoch and early stopping's best epoch. Doubles
 * are stored as C99 hex floats ("%a") so that they come back bit for bit. */
static int add_state_header(const dn_net *net, cJSON *root, cJSON *meta, size_t offset)
{
    char text[64];
    cJSON_AddStringToObject(meta, "checkpoint", "1");
#define META(key, fmt, value)                                                                              \
    snprintf(text, sizeof text, fmt, value);                                                               \
    cJSON_AddStringToObject(meta, key, text);
    META("opt_step", "%ld", net->opt_step)
    META("rng_state", "%llu", (unsigned long long)net->rng.state)
    META("rng_seeded", "%d", net->rng_seeded)
    META("train_seed", "%llu", (unsigned long long)net->train_seed)
    META("epoch_pos", "%d", net->epoch_pos)
    META("epoch_loss", "%a", net->epoch_loss)
    META("epoch_correct", "%d", net->epoch_correct)
    META("epoch_seconds", "%a", net->epoch_seconds)
    if (has_best(net)) { /* early stopping's best epoch so far, and its weights and buffers */
        META("best_epoch", "%d", net->best_epoch)
        META("best_loss", "%a", net->best_loss)
        META("best_stale", "%d", net->best_stale)
    }
#undef META
    if (add_extra_tensor(root, "optimizer.m", "F32", net->n_params, &offset) ||
        add_extra_tensor(root, "optimizer.v", "F32", net->n_params, &offset))
        return -1;
    if (net->order_n && add_extra_tensor(root, "train.order", "I32", (size_t)net->order_n, &offset))
        return -1;
    if (has_best(net) && add_extra_tensor(root, "early_stopping.best", "F32", net->n_params + net->n_buffers, &offset))
        return -1;
    return 0;
}

/* Names the tensors of net's layers in the header, each "<prefix><index>.<kind>.<tensor>", from byte
 * *offset on. */
static int add_layer_tensors(cJSON *root, const dn_net *net, const char *prefix, size_t *offset)
{
    for (int i = 0; i < net->n_layers; i++) {
        const dn_layer *L = &net->layers[i];
        tensor_list t;
        layer_tensors(L, &t);
        for (int k = 0; k < t.n; k++) {
            char name[112];
            snprintf(name, sizeof name, "%s%d.%s.%s", prefix, i, L->ops->name, t.names[k]);
            cJSON *entry = cJSON_CreateObject();
            if (!entry)
                return -1;
            cJSON_AddItemToObject(root, name, entry);
            cJSON_AddStringToObject(entry, "dtype", "F32");
            cJSON *shape = cJSON_AddArrayToObject(entry, "shape");
            for (int d = 0; shape && d < t.ndim[k]; d++)
                cJSON_AddItemToArray(shape, cJSON_CreateNumber(t.dims[k][d]));
            size_t bytes = tensor_count(&t, k) * sizeof(float);
            cJSON *offsets = cJSON_AddArrayToObject(entry, "data_offsets");
            if (offsets) {
                cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)*offset));
                cJSON_AddItemToArray(offsets, cJSON_CreateNumber((double)(*offset + bytes)));
            }
            *offset += bytes;
        }
    }
    return 0;
}

/* An ensemble's further members: metadata "ensemble" = K and, for m = 1..K-1, "member.<m>.spec",
 * "member.<m>.seed" and "member.<m>.history"; their tensors are member 0's names prefixed "m<m>.".
 * Member 0 keeps the plain names, so a reader that knows nothing of ensembles still finds a net. */
static int add_members_header(const dn_net *net, cJSON *root, cJSON *meta, size_t *offset)
{
    char key[64], text[32];
    snprintf(text, sizeof text, "%d", net->n_members + 1);
    cJSON_AddStringToObject(meta, "ensemble", text);
    for (int m = 1; m <= net->n_members; m++) {
        const dn_net *member = net->members[m - 1];
        snprintf(key, sizeof key, "member.%d.spec", m);
        cJSON_AddStringToObject(meta, key, member->spec);
        snprintf(key, sizeof key, "member.%d.seed", m);
        snprintf(text, sizeof text, "%llu", (unsigned long long)member->seed);
        cJSON_AddStringToObject(meta, key, text);
        cJSON *hist = history_json(member);
        char *hist_text = hist ? cJSON_PrintUnformatted(hist) : NULL;
        cJSON_Delete(hist);
        if (!hist_text)
            return -1;
        snprintf(key, sizeof key, "member.%d.history", m);
        cJSON_AddStringToObject(meta, key, hist_text);
        free(hist_text);
        char prefix[16];
        snprintf(prefix, sizeof prefix, "m%d.", m);
        if (add_layer_tensors(root, member, prefix, offset) != 0)
            return -1;
    }
    return 0;
}

/* Builds the JSON header; returns a malloc'd string or NULL. */
static char *build_header(const dn_net *net, int with_state)
{
    cJSON *root = cJSON_CreateObject(), *meta = cJSON_CreateObject();
    char *text = NULL, number[32];
    if (!root || !meta) {
        cJSON_Delete(root);
        cJSON_Delete(meta);
        return NULL;
    }
    cJSON_AddItemToObject(root, "__metadata__", meta);
    cJSON_AddStringToObject(meta, "format", FORMAT_NAME);
    cJSON_AddStringToObject(meta, "format_version",
                            with_state && has_best(net) ? FORMAT_VERSION_EARLY_STOPPING : FORMAT_VERSION);
    cJSON_AddStringToObject(meta, "spec", net->spec);
    snprintf(number, sizeof number, "%d", net->raw_max);
    cJSON_AddStringToObject(meta, "raw_max", number);
    snprintf(number, sizeof number, "%llu", (unsigned long long)net->seed);
    cJSON_AddStringToObject(meta, "seed", number);
    cJSON_AddStringToObject(meta, "preprocess", preprocess_name(net->input));
    cJSON_AddStringToObject(meta, "class_names", "[\"0\",\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\"]");
    for (int i = 0; i < net->n_notes; i++) {
        char key[160];
        snprintf(key, sizeof key, "run.%s", net->note_keys[i]);
        cJSON_AddStringToObject(meta, key, net->note_values[i]);
    }
    cJSON *hist = history_json(net);
    char *hist_text = hist ? cJSON_PrintUnformatted(hist) : NULL;
    cJSON_Delete(hist);
    if (!hist_text)
        goto done;
    cJSON_AddStringToObject(meta, "history", hist_text);
    free(hist_text);

    size_t offset = 0;
    if (add_layer_tensors(root, net, "", &offset) != 0)
        goto done;
    if (net->n_members > 0 && add_members_header(net, root, meta, &offset) != 0)
        goto done;
    if (with_state && add_state_header(net, root, meta, offset) != 0)
        goto done;
    text = cJSON_PrintUnformatted(root);
done:
    cJSON_Delete(root);
    return text;
}

static int write_layers(const dn_net *net, FILE *f)
{
    for (int i = 0; i < net->n_layers; i++) {
        dn_layer *L = (dn_layer *)&net->layers[i];
        tensor_list t;
        layer_tensors(L, &t);
        for (int k = 0; k < t.n; k++) {
            size_t count = tensor_count(&t, k);
            if (fwrite(layer_tensor_data(L, &t, k), sizeof(float), count, f) != count)
                return -1;
        }
    }
    return 0;
}

/* Writes the layers' tensors in header order (member 0, then the other members), then a
 * checkpoint's training state. */
static int write_tensors(const dn_net *net, FILE *f, int with_state)
{
    if (write_layers(net, f) != 0)
        return -1;
    for (int m = 0; m < net->n_members; m++)
        if (write_layers(net->members[m], f) != 0)
            return -1;
    if (!with_state)
        return 0;
    static const float zero = 0.0f;
    for (int which = 0; which < 2; which++) {
        const float *moment = which ? net->opt_v : net->opt_m;
        for (size_t i = 0; i < net->n_params; i++) /* never trained: the moments are zero */
            if (fwrite(moment ? moment + i : &zero, sizeof(float), 1, f) != 1)
                return -1;
    }
    _Static_assert(sizeof(int) == 4, "train.order is stored as I32");
    if (net->order_n && fwrite(net->order, sizeof(int), (size_t)net->order_n, f) != (size_t)net->order_n)
        return -1;
    const size_t best_n = net->n_params + net->n_buffers;
    if (has_best(net) && fwrite(net->best, sizeof(float), best_n, f) != best_n)
        return -1;
    return 0;
}

static dn_status save(const dn_net *net, const char *path, int with_state, dn_error *err)
{
    if (!net || !path)
        return dn_fail(err, DN_EARG, "saving a model: NULL argument");
    if (with_state && net->n_members > 0)
        return dn_fail(err, DN_EARG, "%s: checkpoints of ensembles are not supported (an ensemble of %d)", path,
                       net->n_members + 1);
    char *header = build_header(net, with_state);
    if (!header)
        return dn_fail(err, DN_ENOMEM, "%s: out of memory building the model header", path);
    size_t len = strlen(header);
    size_t padded = (len + 7) & ~(size_t)7; /* the data starts 8-byte aligned, as safetensors pads */
    dn_atomic_file af;
    dn_status st = dn_atomic_open(&af, path, err);
    if (st == DN_OK) {
        unsigned char size_le[8];
        for (int b = 0; b < 8; b++)
            size_le[b] = (unsigned char)((uint64_t)padded >> (8 * b));
        errno = 0;
        int bad = fwrite(size_le, 1, 8, af.file) != 8 || fwrite(header, 1, len, af.file) != len;
        for (size_t p = len; !bad && p < padded; p++)
            bad = fputc(' ', af.file) == EOF;
        if (!bad)
            bad = write_tensors(net, af.file, with_state);
        st = bad ? dn_atomic_write_failed(&af, err) : dn_atomic_commit(&af, err);
    }
    free(header);
    return st;
}

dn_status dn_model_save(const dn_net *net, const char *path, dn_error *err)
{
    return save(net, path, 0, err);
}

dn_status dn_checkpoint_save(const dn_net *net, const char *path, dn_error *err)
{
    return save(net, path, 1, err);
}

/* ---------------------------------------------------------------- loading */

static const char *meta_string(const cJSON *meta, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(meta, key);
    return cJSON_IsString(item) ? item->valuestring : NULL;
}

/* A string from the file as a message quotes it: control bytes (a "\n" in the JSON) become '?' and
 * it is cut to fit buf, so that the message stays one line. */
static const char *shown(const char *text, char *buf, size_t size)
{
    size_t i = 0;
    for (; text[i] && i + 1 < size; i++)
        buf[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7F ? '?' : text[i];
    buf[i] = '\0';
    return buf;
}

static dn_status restore_history(dn_net *net, const char *text, const char *path, dn_error *err)
{
    cJSON *list = cJSON_Parse(text);
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(list);
        return dn_fail(err, DN_EFORMAT, "%s: metadata 'history' is not a JSON list", path);
    }
    dn_status st = DN_OK;
    const cJSON *e;
    cJSON_ArrayForEach(e, list)
    {
        dn_epoch_stats s = {.val_loss = NAN, .val_accuracy = NAN};
        const cJSON *v;
#define FIELD(name, dst)                                                                                   \
    if (cJSON_IsNumber(v = cJSON_GetObjectItemCaseSensitive(e, name)))                                      \
        dst = v->valuedouble;
        double epoch = 0;
        FIELD("epoch", epoch)
        FIELD("loss", s.loss)
        FIELD("accuracy", s.accuracy)
        FIELD("val_loss", s.val_loss)
        FIELD("val_accuracy", s.val_accuracy)
        FIELD("seconds", s.seconds)
        FIELD("images_per_sec", s.images_per_sec)
#undef FIELD
        if (!(epoch >= 0 && epoch <= INT_MAX)) { /* also NaN; casting 1e300 to int is undefined */
            st = dn_fail(err, DN_EFORMAT, "%s: metadata 'history' holds epoch %g", path, epoch);
            break;
        }
        s.epoch = (int)epoch;
        if ((st = dn_net_push_history(net, &s, err)) != DN_OK)
            break;
    }
    cJSON_Delete(list);
    return st;
}

/* The byte ranges of the tensors loaded so far: each tensor must have its own bytes. */
typedef struct byte_ranges {
    size_t n, cap;
    size_t (*r)[2]; /* (cap, 2): [begin, end) */
} byte_ranges;

/* Records [b, e) of the data; -1 when an offset is not a whole number or the range overlaps one
 * recorded before (two tensors sharing bytes load, but no writer makes such a file). */
static int claim_range(byte_ranges *br, double b, double e)
{
    if (b != floor(b) || e != floor(e) || br->n == br->cap)
        return -1;
    size_t begin = (size_t)b, end = (size_t)e;
    for (size_t i = 0; i < br->n; i++)
        if (begin < br->r[i][1] && br->r[i][0] < end)
            return -1;
    br->r[br->n][0] = begin;
    br->r[br->n][1] = end;
    br->n++;
    return 0;
}

/* Checks one header entry against the tensor the spec says should be there and copies its data. */
static dn_status load_tensor(const cJSON *entry, const char *name, const tensor_list *t, int k, float *dst,
                             const unsigned char *data, size_t data_len, byte_ranges *taken, const char *path,
                             dn_error *err)
{
    if (!cJSON_IsObject(entry))
        return dn_fail(err, DN_EFORMAT, "%s: tensor '%s' is missing", path, name);
    const char *dtype = meta_string(entry, "dtype");
    char quoted[32];
    if (!dtype || strcmp(dtype, "F32") != 0)
        return dn_fail(err, DN_EFORMAT, "%s: tensor '%s' has dtype %s, expected F32", path, name,
                       dtype ? shown(dtype, quoted, sizeof quoted) : "(none)");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    int ok = cJSON_IsArray(shape) && cJSON_GetArraySize(shape) == t->ndim[k];
    for (int d = 0; ok && d < t->ndim[k]; d++) {
        const cJSON *v = cJSON_GetArrayItem(shape, d);
        ok = cJSON_IsNumber(v) && v->valuedouble == t->dims[k][d];
    }
    if (!ok)
        return dn_fail(err, DN_ESHAPE, "%s: tensor '%s' has a shape that does not match the spec", path, name);
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    const cJSON *b = cJSON_GetArrayItem(offsets, 0), *e = cJSON_GetArrayItem(offsets, 1);
    size_t bytes = tensor_count(t, k) * sizeof(float);
    if (!cJSON_IsArray(offsets) || !cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 ||
        e->valuedouble != b->valuedouble + (double)bytes || e->valuedouble > (double)data_len)
        return dn_fail(err, DN_EFORMAT, "%s: tensor '%s' has data offsets outside the file or of the wrong length", path, name);
    if (claim_range(taken, b->valuedouble, e->valuedouble) != 0)
        return dn_fail(err, DN_EFORMAT, "%s: tensor '%s' has data offsets that are not whole numbers or overlap another tensor's",
                       path, name);
    memcpy(dst, data + (size_t)b->valuedouble, bytes);
    for (size_t i = 0; i < bytes / sizeof(float); i++)
        if (!isfinite(dst[i]))
            return dn_fail(err, DN_EFORMAT, "%s: tensor '%s' holds a value that is not finite", path, name);
    return DN_OK;
}

/* Copies one 1-D state tensor (optimizer moment or row order) after checking its entry. */
static dn_status load_state_tensor(const cJSON *root, const char *name, const char *dtype, size_t count, void *dst,
                                   const unsigned char *data, size_t data_len, byte_ranges *taken, const char *path,
                                   dn_error *err)
{
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, name);
    const char *type = meta_string(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    const cJSON *b = cJSON_GetArrayItem(offsets, 0), *e = cJSON_GetArrayItem(offsets, 1);
    const cJSON *dim = cJSON_GetArrayItem(shape, 0);
    if (!type || strcmp(type, dtype) != 0 || cJSON_GetArraySize(shape) != 1 || !cJSON_IsNumber(dim) ||
        dim->valuedouble != (double)count)
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint tensor '%s' is missing or is not %s[%zu]", path, name, dtype, count);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(e) || b->valuedouble < 0 || e->valuedouble != b->valuedouble + 4.0 * count ||
        e->valuedouble > (double)data_len)
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint tensor '%s' has data offsets outside the file", path, name);
    if (claim_range(taken, b->valuedouble, e->valuedouble) != 0)
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint tensor '%s' has data offsets that are not whole numbers or overlap another tensor's",
                       path, name);
    memcpy(dst, data + (size_t)b->valuedouble, 4 * count);
    return DN_OK;
}

/* Early stopping's best epoch, when the checkpoint has one (written by dn_train with a patience). */
static dn_status load_best(dn_net *net, const cJSON *root, const cJSON *meta, const unsigned char *data,
                           size_t data_len, byte_ranges *taken, const char *path, dn_error *err)
{
    const char *epoch = meta_string(meta, "best_epoch"), *loss = meta_string(meta, "best_loss");
    const char *stale = meta_string(meta, "best_stale");
    const int has_tensor = cJSON_GetObjectItemCaseSensitive(root, "early_stopping.best") != NULL;
    if (!epoch && !loss && !stale && !has_tensor)
        return DN_OK;
    if (!epoch || !loss || !stale || !has_tensor)
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint early-stopping state is incomplete (best_epoch, best_loss, "
                       "best_stale and tensor 'early_stopping.best' go together)", path);
    char *end_e, *end_l, *end_s;
    const long e = strtol(epoch, &end_e, 10), k = strtol(stale, &end_s, 10);
    const double l = strtod(loss, &end_l);
    if (end_e == epoch || end_l == loss || end_s == stale || *end_e || *end_l || *end_s || e < 1 || e > INT_MAX ||
        k < 0 || k > INT_MAX || !isfinite(l))
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint early-stopping state is not valid (best_epoch '%s', best_loss '%s', "
                       "best_stale '%s')", path, epoch, loss, stale);
    const size_t n = net->n_params + net->n_buffers;
    if (!(net->best = malloc(sizeof(float) * (n + 1))))
        return dn_fail(err, DN_ENOMEM, "%s: out of memory for early stopping's best weights", path);
    dn_status st = load_state_tensor(root, "early_stopping.best", "F32", n, net->best, data, data_len, taken, path, err);
    for (size_t i = 0; st == DN_OK && i < n; i++)
        if (!isfinite(net->best[i]))
            st = dn_fail(err, DN_EFORMAT, "%s: tensor 'early_stopping.best' holds a value that is not finite", path);
    net->best_epoch = (int)e;
    net->best_loss = l;
    net->best_stale = (int)k;
    return st;
}

/* Restores what a checkpoint adds to a model (see add_state_header). */
static dn_status load_state(dn_net *net, const cJSON *root, const cJSON *meta, const unsigned char *data,
                            size_t data_len, byte_ranges *taken, const char *path, dn_error *err)
{
    const char *keys[] = {"opt_step", "rng_state", "rng_seeded", "epoch_pos", "epoch_loss", "epoch_correct", "epoch_seconds"};
    const char *v[7];
    for (int i = 0; i < 7; i++)
        if (!(v[i] = meta_string(meta, keys[i])))
            return dn_fail(err, DN_EFORMAT, "%s: checkpoint metadata '%s' is missing", path, keys[i]);
    net->opt_step = strtol(v[0], NULL, 10);
    net->rng.state = strtoull(v[1], NULL, 10);
    net->rng_seeded = atoi(v[2]);
    /* Checkpoints written before train_seed was recorded: the CLI trained with the spec's seed. */
    const char *train_seed = meta_string(meta, "train_seed");
    net->train_seed = train_seed ? strtoull(train_seed, NULL, 10) : net->seed;
    net->epoch_pos = atoi(v[3]);
    net->epoch_loss = strtod(v[4], NULL);
    net->epoch_correct = atoi(v[5]);
    net->epoch_seconds = strtod(v[6], NULL);
    const cJSON *order = cJSON_GetObjectItemCaseSensitive(root, "train.order");
    const cJSON *dim = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(order, "shape"), 0);
    double order_len = cJSON_IsNumber(dim) ? dim->valuedouble : 0;
    /* Range-checked as a double (casting 1e300 to int is undefined), and refused before anything is
     * allocated for it when the data could not hold that many 4-byte rows. */
    if (order_len > 0 && order_len * 4 > (double)data_len)
        return dn_fail(err, DN_ELIMIT, "%s: checkpoint tensor 'train.order' claims %g rows, more than the %zu bytes of data hold",
                       path, order_len, data_len);
    int order_n = order_len >= 0 && order_len <= 100000000 ? (int)order_len : -1;
    if (net->opt_step < 0 || net->epoch_pos < 0 || order_n < 0 || net->epoch_pos > order_n)
        return dn_fail(err, DN_EFORMAT, "%s: checkpoint training state is inconsistent", path);
    net->opt_m = calloc(net->n_params ? net->n_params : 1, sizeof(float));
    net->opt_v = calloc(net->n_params ? net->n_params : 1, sizeof(float));
    net->order = order_n ? malloc(sizeof(int) * (size_t)order_n) : NULL;
    if (!net->opt_m || !net->opt_v || (order_n && !net->order))
        return dn_fail(err, DN_ENOMEM, "%s: out of memory for the training state", path);
    net->order_n = order_n;
    dn_status st = load_state_tensor(root, "optimizer.m", "F32", net->n_params, net->opt_m, data, data_len, taken, path, err);
    if (st == DN_OK)
        st = load_state_tensor(root, "optimizer.v", "F32", net->n_params, net->opt_v, data, data_len, taken, path, err);
    if (st == DN_OK && order_n)
        st = load_state_tensor(root, "train.order", "I32", (size_t)order_n, net->order, data, data_len, taken, path, err);
    for (int i = 0; st == DN_OK && i < order_n; i++)
        if (net->order[i] < 0 || net->order[i] >= order_n)
            st = dn_fail(err, DN_EFORMAT, "%s: checkpoint row order holds %d, outside 0..%d", path, net->order[i], order_n - 1);
    if (st == DN_OK)
        st = load_best(net, root, meta, data, data_len, taken, path, err);
    return st;
}

/* Control bytes in the metadata's strings become '?' (line breaks and tabs stay in the spec and the
 * history, which are multi-line text): those strings end up quoted in messages (a spec error, a data
 * set name from run.data), and an escape sequence from a file must not reach the terminal. */
static void clean_metadata(const cJSON *meta)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, meta)
    {
        if (!cJSON_IsString(item) || !item->valuestring)
            continue;
        size_t key_len = item->string ? strlen(item->string) : 0;
        int text = item->string && (!strcmp(item->string, "spec") || !strcmp(item->string, "history") ||
                                    (!strncmp(item->string, "member.", 7) &&
                                     ((key_len > 5 && !strcmp(item->string + key_len - 5, ".spec")) ||
                                      (key_len > 8 && !strcmp(item->string + key_len - 8, ".history")))));
        for (char *c = item->valuestring; *c; c++) {
            unsigned char u = (unsigned char)*c;
            if ((u < 0x20 && !(text && (u == '\n' || u == '\t' || u == '\r'))) || u == 0x7F)
                *c = '?';
        }
    }
}

/* Loads the tensors of net's layers named "<prefix><index>.<kind>.<tensor>"; counts them in *expected. */
static dn_status load_layers(dn_net *net, const char *prefix, const cJSON *root, const unsigned char *data,
                             size_t data_len, byte_ranges *taken, int *expected, const char *path, dn_error *err)
{
    dn_status st = DN_OK;
    for (int i = 0; st == DN_OK && i < net->n_layers; i++) {
        dn_layer *L = &net->layers[i];
        tensor_list t;
        layer_tensors(L, &t);
        for (int k = 0; st == DN_OK && k < t.n; k++) {
            char name[112];
            snprintf(name, sizeof name, "%s%d.%s.%s", prefix, i, L->ops->name, t.names[k]);
            st = load_tensor(cJSON_GetObjectItemCaseSensitive(root, name), name, &t, k, layer_tensor_data(L, &t, k), data,
                             data_len, taken, path, err);
            (*expected)++;
        }
    }
    return st;
}

/* Restores the members 1..K-1 that add_members_header described and adds them to net. */
static dn_status load_members(dn_net *net, const char *count_text, const cJSON *root, const cJSON *meta,
                              const unsigned char *data, size_t data_len, byte_ranges *taken, int *expected,
                              const char *path, dn_error *err)
{
    char *end = NULL, quoted[32];
    long k = strtol(count_text, &end, 10);
    if (end == count_text || *end || k < 2 || k > DN_MAX_ENSEMBLE)
        return dn_fail(err, DN_EFORMAT, "%s: metadata 'ensemble' is %s; expected 2..%d members", path,
                       shown(count_text, quoted, sizeof quoted), DN_MAX_ENSEMBLE);
    dn_status st = DN_OK;
    for (int m = 1; st == DN_OK && m < k; m++) {
        char key[64], where[600], prefix[16];
        snprintf(key, sizeof key, "member.%d.spec", m);
        const char *spec = meta_string(meta, key);
        if (!spec)
            return dn_fail(err, DN_EFORMAT, "%s: an ensemble of %ld without metadata '%s'", path, k, key);
        snprintf(key, sizeof key, "member.%d.seed", m);
        const char *seed_text = meta_string(meta, key);
        snprintf(where, sizeof where, "%s (spec of ensemble member %d)", path, m);
        dn_net *member;
        st = dn_net_parse_limited(spec, where, seed_text ? strtoull(seed_text, NULL, 10) : 0, data_len / sizeof(float),
                                  &member, err);
        if (st != DN_OK)
            return st;
        dn_shape a = net->input, b = member->input;
        if (a.h != b.h || a.w != b.w || a.c != b.c || dn_net_n_classes(member) != dn_net_n_classes(net)) {
            st = dn_fail(err, DN_EFORMAT,
                         "%s: inconsistent ensemble: member %d takes %dx%dx%d images to %d classes, member 0 %dx%dx%d to %d",
                         path, m, b.h, b.w, b.c, dn_net_n_classes(member), a.h, a.w, a.c, dn_net_n_classes(net));
            dn_net_free(member);
            return st;
        }
        snprintf(prefix, sizeof prefix, "m%d.", m);
        st = load_layers(member, prefix, root, data, data_len, taken, expected, path, err);
        snprintf(key, sizeof key, "member.%d.history", m);
        const char *hist = meta_string(meta, key);
        if (st == DN_OK && hist)
            st = restore_history(member, hist, path, err);
        if (st == DN_OK)
            st = dn_net_ensemble_add(net, member, err);
        if (st != DN_OK)
            dn_net_free(member);
    }
    return st;
}

static dn_status load_from_header(const cJSON *root, const unsigned char *data, size_t data_len, const char *path,
                                  int with_state, dn_net **out, dn_error *err)
{
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
    clean_metadata(meta);
    const char *format = meta_string(meta, "format"), *spec = meta_string(meta, "spec");
    if (!format || strcmp(format, FORMAT_NAME) != 0 || !spec)
        return dn_fail(err, DN_EFORMAT, "%s: a safetensors file without digitnet metadata (no 'format' or 'spec')", path);
    const char *version = meta_string(meta, "format_version");
    char quoted[32];
    if (!version || (strcmp(version, FORMAT_VERSION) != 0 && strcmp(version, FORMAT_VERSION_EARLY_STOPPING) != 0))
        return dn_fail(err, DN_EFORMAT, "%s: model format version %s; this digitnet reads versions %s and %s", path,
                       version ? shown(version, quoted, sizeof quoted) : "(none)", FORMAT_VERSION,
                       FORMAT_VERSION_EARLY_STOPPING);
    char where[600];
    snprintf(where, sizeof where, "%s (spec in metadata)", path);
    const char *seed_text = meta_string(meta, "seed"), *raw_text = meta_string(meta, "raw_max");
    uint64_t seed = seed_text ? strtoull(seed_text, NULL, 10) : 0;
    dn_net *net;
    /* Refuse a spec the data could not hold before anything is allocated for it. */
    dn_status st = dn_net_parse_limited(spec, where, seed, data_len / sizeof(float), &net, err);
    if (st != DN_OK)
        return st;
    byte_ranges taken = {0, (size_t)cJSON_GetArraySize(root), NULL};
    taken.r = malloc(sizeof *taken.r * (taken.cap ? taken.cap : 1));
    if (!taken.r) {
        dn_net_free(net);
        return dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
    }
    int raw_max = raw_text ? atoi(raw_text) : 0;
    if (raw_max < 1 || raw_max > DN_RAW_MAX_LIMIT)
        st = dn_fail(err, DN_EFORMAT, "%s: metadata 'raw_max' must be 1..%d", path, DN_RAW_MAX_LIMIT);
    net->raw_max = raw_max;
    int expected = 0;
    if (st == DN_OK)
        st = load_layers(net, "", root, data, data_len, &taken, &expected, path, err);
    const char *ensemble = meta_string(meta, "ensemble");
    if (st == DN_OK && ensemble && with_state)
        st = dn_fail(err, DN_EFORMAT, "%s: an ensemble, not a checkpoint: ensembles cannot be resumed", path);
    if (st == DN_OK && ensemble)
        st = load_members(net, ensemble, root, meta, data, data_len, &taken, &expected, path, err);
    const char *checkpoint = meta_string(meta, "checkpoint");
    int is_checkpoint = checkpoint && strcmp(checkpoint, "1") == 0;
    if (with_state && !is_checkpoint && st == DN_OK)
        st = dn_fail(err, DN_EFORMAT, "%s: a model file, not a checkpoint: it has no optimizer state to resume", path);
    if (is_checkpoint) /* optimizer.m, optimizer.v and, when saved mid-training, train.order */
        expected += 2 + (cJSON_GetObjectItemCaseSensitive(root, "train.order") != NULL) +
                    (cJSON_GetObjectItemCaseSensitive(root, "early_stopping.best") != NULL);
    if (st == DN_OK && with_state)
        st = load_state(net, root, meta, data, data_len, &taken, path, err);
    if (st == DN_OK && cJSON_GetArraySize(root) != expected + 1)
        st = dn_fail(err, DN_EFORMAT, "%s: the file holds %d tensors but the spec has %d", path, cJSON_GetArraySize(root) - 1,
                     expected);
    const char *hist = meta_string(meta, "history");
    if (st == DN_OK && hist)
        st = restore_history(net, hist, path, err);
    if (st == DN_OK && net->best_epoch > net->n_history)
        st = dn_fail(err, DN_EFORMAT, "%s: checkpoint's best epoch %d is past its %d epochs of history", path,
                     net->best_epoch, net->n_history);
    const cJSON *item;
    cJSON_ArrayForEach(item, meta)
    {
        if (st == DN_OK && item->string && strncmp(item->string, "run.", 4) == 0 && cJSON_IsString(item))
            st = dn_net_set_note(net, item->string + 4, item->valuestring, err);
    }
    free(taken.r);
    if (st != DN_OK) {
        dn_net_free(net);
        return st;
    }
    *out = net;
    return DN_OK;
}

static dn_status load(const char *path, int with_state, dn_net **out, dn_error *err)
{
    if (!path || !out)
        return dn_fail(err, DN_EARG, "loading a model: NULL argument");
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));
    dn_status st = DN_OK;
    unsigned char *bytes = NULL;
    char *header = NULL;
    long file_len = -1;
    unsigned char size_le[8];
    if (fseek(f, 0, SEEK_END) == 0)
        file_len = ftell(f);
    if (file_len < 0 || fseek(f, 0, SEEK_SET) != 0)
        st = dn_fail(err, DN_EIO, "%s: cannot determine the file size", path);
    else if (file_len < 8 || fread(size_le, 1, 8, f) != 8)
        st = dn_fail(err, DN_EFORMAT, "%s: too short to be a model file (%ld bytes)", path, file_len);
    uint64_t header_len = 0;
    for (int b = 7; st == DN_OK && b >= 0; b--)
        header_len = header_len << 8 | size_le[b];
    if (st == DN_OK && (header_len > (uint64_t)file_len - 8 || header_len > MAX_HEADER_BYTES))
        st = dn_fail(err, DN_ELIMIT, "%s: header claims %llu bytes but the file has %ld after the length: not a safetensors model "
                     "or truncated", path, (unsigned long long)header_len, file_len - 8);
    size_t data_len = st == DN_OK ? (size_t)file_len - 8 - (size_t)header_len : 0;
    if (st == DN_OK) {
        header = malloc((size_t)header_len + 1);
        bytes = malloc(data_len ? data_len : 1);
        if (!header || !bytes)
            st = dn_fail(err, DN_ENOMEM, "%s: out of memory", path);
        else if (fread(header, 1, (size_t)header_len, f) != header_len || fread(bytes, 1, data_len, f) != data_len)
            st = dn_fail(err, DN_EIO, "%s: read error or truncated file", path);
    }
    fclose(f);
    if (st == DN_OK) {
        header[header_len] = '\0';
        cJSON *root = cJSON_ParseWithLength(header, (size_t)header_len);
        if (!cJSON_IsObject(root))
            st = dn_fail(err, DN_EFORMAT, "%s: the header is not a JSON object: not a safetensors model", path);
        else
            st = load_from_header(root, bytes, data_len, path, with_state, out, err);
        cJSON_Delete(root);
    }
    free(header);
    free(bytes);
    return st;
}

dn_status dn_model_load(const char *path, dn_net **out, dn_error *err)
{
    return load(path, 0, out, err);
}

dn_status dn_checkpoint_load(const char *path, dn_net **out, dn_error *err)
{
    return load(path, 1, out, err);
}

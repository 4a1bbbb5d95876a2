/*
 * Ensembles (dn_train_params.ensemble, dn_net_ensemble_add): trained on real optdigits rows.
 *
 * - An ensemble's probabilities are the mean of its members' (each predicted on its own), through
 *   dn_net_predict, dn_net_predict_ws and dn_net_evaluate; layer outputs are member 0's.
 * - Training K members: member m is trained with seed + m, exactly as a single net trained alone
 *   with that seed; epoch statistics and on_member say which member; the same seed gives the same
 *   ensemble bit for bit on 1 thread and on 2 (where members train side by side, one thread each),
 *   and a stop asked from a callback stops every member of the wave.
 * - Save -> load gives the same probabilities bit for bit, members' seeds and histories; a single
 *   net's file has no ensemble metadata. Broken ensemble files (truncated, a member missing, a
 *   member of another input shape, a bad count) are refused with one-line messages; checkpoints of
 *   ensembles are refused; dn_net_ensemble_add refuses what does not fit.
 */
#include "testutil.h"

#include <cJSON.h>

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"

static const char SPEC[] = "input 8x8x1\n"
                           "conv2d 4 3x3 same relu\n"
                           "maxpool 2x2\n"
                           "dropout 0.25\n"
                           "flatten\n"
                           "dense 16 relu\n"
                           "dense 10 softmax\n";

static dn_dataset train_rows, val_rows;

static int load_data(void **state)
{
    (void)state;
    dn_error err = {0};
    dn_set_threads(1);
    dn_dataset all;
    if (dn_optdigits_load(OPTDIGITS_TRA, &all, &err) != DN_OK) {
        print_error("cannot load %s: %s\n", OPTDIGITS_TRA, err.msg);
        return -1;
    }
    dn_status st = dn_dataset_slice(&all, 0, 300, &train_rows, &err);
    if (st == DN_OK)
        st = dn_dataset_slice(&all, 300, 100, &val_rows, &err);
    dn_dataset_free(&all);
    return st == DN_OK ? 0 : -1;
}

static int free_data(void **state)
{
    (void)state;
    dn_dataset_free(&train_rows);
    dn_dataset_free(&val_rows);
    return 0;
}

typedef struct progress {
    int members_started[8], n_started;
    int epoch_members[32], n_epochs;
} progress;

static int on_member(void *user, int member, int n_members)
{
    progress *p = user;
    assert_int_equal(n_members, 3);
    p->members_started[p->n_started++] = member;
    return 0;
}

static int on_epoch(void *user, const dn_epoch_stats *stats)
{
    progress *p = user;
    p->epoch_members[p->n_epochs++] = stats->member;
    return 0;
}

static dn_train_params params_for(uint64_t seed, int ensemble)
{
    dn_train_params p = dn_train_default_params();
    p.epochs = 2;
    p.batch_size = 32;
    p.seed = seed;
    p.ensemble = ensemble;
    return p;
}

/* A net from SPEC (weights from seed) trained with params; raw_max 16. */
static dn_net *trained(uint64_t seed, const dn_train_params *params)
{
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(SPEC, "spec", seed, &net, &err), DN_OK);
    assert_int_equal(dn_net_set_raw_max(net, 16), DN_OK);
    if (dn_train(net, &train_rows, &val_rows, params, &err) != DN_OK)
        fail_msg("training: %s", err.msg);
    return net;
}

static float *predict(const dn_net *net, const dn_dataset *d)
{
    float *images = NULL, *probs = malloc(sizeof(float) * (size_t)d->n * DN_N_CLASSES);
    dn_error err = {0};
    assert_int_equal(dn_dataset_floats(d, 0, d->n, &images, &err), DN_OK);
    assert_non_null(probs);
    assert_int_equal(dn_net_predict(net, images, d->n, probs, &err), DN_OK);
    free(images);
    return probs;
}

static void test_mean_of_members(void **state)
{
    (void)state;
    progress seen = {0};
    dn_train_params params = params_for(11, 3);
    params.on_member = on_member;
    params.on_epoch = on_epoch;
    params.user = &seen;
    dn_net *ens = trained(11, &params);
    assert_int_equal(dn_net_ensemble_size(ens), 3);
    assert_ptr_equal(dn_net_ensemble_member(ens, 0), ens);
    assert_null(dn_net_ensemble_member(ens, 3));
    assert_null(dn_net_ensemble_member(ens, -1));

    /* Progress: members 0, 1, 2 in turn, two epochs each, each epoch tagged with its member. */
    assert_int_equal(seen.n_started, 3);
    assert_int_equal(seen.n_epochs, 6);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen.members_started[i], i);
    for (int i = 0; i < 6; i++)
        assert_int_equal(seen.epoch_members[i], i / 2);
    for (int m = 0; m < 3; m++) {
        int n = 0;
        const dn_epoch_stats *h = dn_net_history(dn_net_ensemble_member(ens, m), &n);
        assert_int_equal(n, 2);
        assert_int_equal(h[0].epoch, 1);
        assert_int_equal(h[1].member, m);
        assert_int_equal(dn_net_seed(dn_net_ensemble_member(ens, m)), 11 + m);
        assert_int_equal(dn_net_raw_max(dn_net_ensemble_member(ens, m)), 16);
    }

    /* Each member is the net a single run with seed 11 + m trains, bit for bit. */
    float *p = predict(ens, &val_rows);
    float *sum = calloc((size_t)val_rows.n * DN_N_CLASSES, sizeof(float));
    assert_non_null(sum);
    for (int m = 0; m < 3; m++) {
        dn_train_params single = params_for(11 + (uint64_t)m, 0);
        dn_net *alone = trained(11 + (uint64_t)m, &single);
        const dn_net *member = dn_net_ensemble_member(ens, m);
        assert_int_equal(dn_net_param_count(alone), dn_net_param_count(member));
        float *pa = predict(alone, &val_rows);
        if (m > 0) { /* members 1 and 2 predict alone; member 0 is the ensemble itself */
            float *pb = predict(member, &val_rows);
            assert_memory_equal(pa, pb, sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);
            free(pb);
        }
        for (size_t i = 0; i < (size_t)val_rows.n * DN_N_CLASSES; i++)
            sum[i] += pa[i];
        free(pa);
        dn_net_free(alone);
    }
    for (size_t i = 0; i < (size_t)val_rows.n * DN_N_CLASSES; i++)
        sum[i] /= 3.0f;
    assert_memory_equal(p, sum, sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);

    /* dn_net_evaluate and a reused workspace agree; the workspace's layer outputs are member 0's. */
    dn_metrics m;
    float *pe = malloc(sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);
    dn_error err = {0};
    assert_int_equal(dn_net_evaluate(ens, &val_rows, &m, pe, &err), DN_OK);
    assert_memory_equal(p, pe, sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);
    dn_workspace *ws = NULL;
    assert_int_equal(dn_workspace_init(ens, &ws, &err), DN_OK);
    float *one = NULL, probs[DN_N_CLASSES];
    assert_int_equal(dn_dataset_floats(&val_rows, 5, 1, &one, &err), DN_OK);
    assert_int_equal(dn_net_predict_ws(ens, ws, one, 1, probs, &err), DN_OK);
    assert_memory_equal(probs, p + 5 * DN_N_CLASSES, sizeof probs);
    dn_shape shape;
    const float *last = dn_workspace_layer_output(ws, dn_net_layer_count(ens) - 1, &shape);
    assert_non_null(last);
    dn_net *single = NULL;
    dn_train_params sp = params_for(11, 0);
    single = trained(11, &sp);
    float alone[DN_N_CLASSES];
    assert_int_equal(dn_net_predict(single, one, 1, alone, &err), DN_OK);
    assert_memory_equal(last, alone, sizeof alone);
    /* A workspace made for a member does not fit the ensemble. */
    dn_workspace *single_ws = NULL;
    assert_int_equal(dn_workspace_init(single, &single_ws, &err), DN_OK);
    assert_int_equal(dn_net_predict_ws(ens, single_ws, one, 1, probs, &err), DN_EARG);
    dn_workspace_free(single_ws);
    dn_workspace_free(ws);
    dn_net_free(single);
    free(one);
    free(pe);
    free(sum);
    free(p);
    dn_net_free(ens);
}

/* The same seed trains the same ensemble on 1 and 2 threads. */
/* Batches reported, and the members whose epochs ended, in the order they ended. */
typedef struct batch_log {
    int batches;
    int ended[128], n_ends;
} batch_log;

static int log_batch(void *user, int epoch, int done, int total, double loss, double accuracy)
{
    (void)epoch, (void)done, (void)total, (void)loss, (void)accuracy;
    ((batch_log *)user)->batches++;
    return 0;
}

static int log_epoch(void *user, const dn_epoch_stats *stats)
{
    batch_log *log = user;
    if (log->n_ends < 128)
        log->ended[log->n_ends++] = stats->member;
    return 0;
}

static int stop_before_second(void *user, int member, int n_members)
{
    (void)user, (void)n_members;
    return member == 1;
}

static int stop_at_once(void *user, int epoch, int done, int total, double loss, double accuracy)
{
    (void)epoch, (void)done, (void)total, (void)loss, (void)accuracy;
    ++*(int *)user;
    return 1;
}

/* On 2 threads members 0 and 1 train side by side, one thread each, then member 2 alone on both:
 * the same ensemble, bit for bit, as one member after the other on 1 thread, with the same
 * callbacks (on_member in order, every member's epochs in order, one call at a time). */
static void test_threads_bit_identical(void **state)
{
    (void)state;
    dn_train_params params = params_for(5, 3);
    dn_set_threads(1);
    dn_net *a = trained(5, &params);
    dn_set_threads(2);
    progress seen = {0};
    params.on_member = on_member;
    params.on_epoch = on_epoch;
    params.user = &seen;
    dn_net *b = trained(5, &params);
    dn_set_threads(1);
    float *pa = predict(a, &val_rows), *pb = predict(b, &val_rows);
    assert_memory_equal(pa, pb, sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);
    for (int m = 0; m < 3; m++) {
        int na, nb;
        const dn_epoch_stats *ha = dn_net_history(dn_net_ensemble_member(a, m), &na);
        const dn_epoch_stats *hb = dn_net_history(dn_net_ensemble_member(b, m), &nb);
        assert_int_equal(na, nb);
        for (int e = 0; e < na; e++)
            assert_true(ha[e].loss == hb[e].loss && ha[e].val_loss == hb[e].val_loss);
        assert_int_equal(dn_net_seed(dn_net_ensemble_member(b, m)), 5 + m);
    }
    assert_int_equal(seen.n_started, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(seen.members_started[i], i);
    assert_int_equal(seen.n_epochs, 6);
    int per_member[3] = {0};
    for (int i = 0; i < 6; i++)
        per_member[seen.epoch_members[i]]++;
    for (int m = 0; m < 3; m++)
        assert_int_equal(per_member[m], 2);
    assert_int_equal(seen.epoch_members[4], 2); /* member 2 trains after the first two */
    assert_int_equal(seen.epoch_members[5], 2);
    free(pa);
    free(pb);
    dn_net_free(a);
    dn_net_free(b);

    /* A stop asked by the batch callback stops both members of the wave: nothing joins the net. */
    dn_set_threads(2);
    int calls = 0;
    dn_train_params stop = params_for(5, 2);
    stop.on_batch = stop_at_once;
    stop.user = &calls;
    dn_net *c = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(SPEC, "spec", 5, &c, &err), DN_OK);
    assert_int_equal(dn_train(c, &train_rows, &val_rows, &stop, &err), DN_ESTOPPED);
    dn_set_threads(1);
    assert_int_equal(calls, 1); /* the wave's first member reports its batches; it asked once */
    assert_int_equal(dn_net_ensemble_size(c), 1);
    assert_non_null(strstr(err.msg, "stopped"));
    dn_net_free(c);

    /* Early stopping ends member 0 before member 1: member 1 then reports its batches (without the
     * hand-over the progress stopped with member 0's last batch). The epoch callbacks record the
     * order in which the members' epochs ended; where member 1 ended two epochs after member 0's
     * last one, a whole epoch of member 1 ran after member 0 had finished, and its batches must have
     * been reported. Seeds are searched until such a run is seen (the threads' pace decides). */
    int handed_over = 0;
    for (uint64_t seed = 1; seed <= 80 && handed_over < 2; seed++) {
        dn_set_threads(2);
        batch_log log = {0};
        dn_train_params early = params_for(seed, 2);
        early.epochs = 40;
        early.patience = 1;
        early.on_batch = log_batch;
        early.on_epoch = log_epoch;
        early.user = &log;
        dn_net *e = trained(seed, &early);
        dn_set_threads(1);
        int n0;
        dn_net_history(dn_net_ensemble_member(e, 0), &n0);
        const int per_epoch = (train_rows.n + 31) / 32;
        assert_true(log.batches >= per_epoch * n0); /* member 0 reported every batch of its own */
        int last0 = -1, after = 0;
        for (int i = 0; i < log.n_ends; i++)
            if (log.ended[i] == 0)
                last0 = i;
        for (int i = last0 + 1; i < log.n_ends; i++)
            after += log.ended[i] == 1;
        if (after >= 2) {
            assert_true(log.batches >= per_epoch * (n0 + 1)); /* at least that whole epoch of member 1 */
            handed_over++;
        }
        dn_net_free(e);
    }
    assert_true(handed_over > 0);

    /* on_member is asked for every member of a wave before any of them trains: a stop before
     * member 1 trains none of the wave, and the member built for it is freed (ASan). */
    dn_set_threads(2);
    dn_train_params refuse = params_for(5, 2);
    refuse.on_member = stop_before_second;
    assert_int_equal(dn_net_parse(SPEC, "spec", 5, &c, &err), DN_OK);
    assert_int_equal(dn_train(c, &train_rows, &val_rows, &refuse, &err), DN_ESTOPPED);
    dn_set_threads(1);
    assert_non_null(strstr(err.msg, "before ensemble member 2 of 2"));
    assert_int_equal(dn_net_ensemble_size(c), 1);
    int n_c;
    dn_net_history(c, &n_c);
    assert_int_equal(n_c, 0);
    dn_net_free(c);

    /* A member that fails fails the run with its own error, not with the stop it asked of the others. */
    dn_set_threads(2);
    dn_train_params nan = params_for(5, 2);
    nan.lr = 1e30f;
    assert_int_equal(dn_net_parse(SPEC, "spec", 5, &c, &err), DN_OK);
    assert_int_equal(dn_train(c, &train_rows, &val_rows, &nan, &err), DN_ENAN);
    dn_set_threads(1);
    assert_non_null(strstr(err.msg, "NaN"));
    assert_int_equal(dn_net_ensemble_size(c), 1);
    dn_net_free(c);
}

static const char *temp_path(const char *name)
{
    static char path[4][512];
    static int next;
    char *p = path[next++ & 3];
    snprintf(p, sizeof path[0], "%s/%s", dn_test_dir(), name);
    return p;
}

static void test_save_load(void **state)
{
    (void)state;
    dn_train_params params = params_for(21, 3);
    params.epochs = 1;
    dn_net *ens = trained(21, &params);
    dn_error err = {0};
    assert_int_equal(dn_net_set_note(ens, "data", "optdigits", &err), DN_OK);
    const char *path = temp_path("ens.safetensors");
    assert_int_equal(dn_model_save(ens, path, &err), DN_OK);
    dn_net *loaded = NULL;
    if (dn_model_load(path, &loaded, &err) != DN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(dn_net_ensemble_size(loaded), 3);
    assert_string_equal(dn_net_note(loaded, "data"), "optdigits");
    for (int m = 0; m < 3; m++) {
        const dn_net *a = dn_net_ensemble_member(ens, m), *b = dn_net_ensemble_member(loaded, m);
        assert_int_equal(dn_net_seed(b), 21 + m);
        assert_int_equal(dn_net_raw_max(b), 16);
        assert_string_equal(dn_net_spec(a), dn_net_spec(b));
        int na, nb;
        const dn_epoch_stats *ha = dn_net_history(a, &na), *hb = dn_net_history(b, &nb);
        assert_int_equal(na, 1);
        assert_int_equal(nb, 1);
        assert_true(ha[0].loss == hb[0].loss);
    }
    float *pa = predict(ens, &val_rows), *pb = predict(loaded, &val_rows);
    assert_memory_equal(pa, pb, sizeof(float) * (size_t)val_rows.n * DN_N_CLASSES);
    free(pa);
    free(pb);

    /* Checkpoints of ensembles are refused, with nothing written. */
    const char *ck = temp_path("ens.ckpt");
    assert_int_equal(dn_checkpoint_save(ens, ck, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "checkpoints of ensembles are not supported"));
    assert_int_not_equal(access(ck, F_OK), 0);
    /* Training an ensemble of 3 as something else is refused. */
    dn_train_params wrong = params_for(21, 2);
    assert_int_equal(dn_train(loaded, &train_rows, NULL, &wrong, &err), DN_EARG);
    assert_non_null(strstr(err.msg, "an ensemble of 3"));
    wrong.ensemble = 0;
    assert_int_equal(dn_train(loaded, &train_rows, NULL, &wrong, &err), DN_EARG);
    dn_net_free(loaded);
    dn_net_free(ens);
}

/* ---------------------------------------------------------------- broken files */

typedef struct bytes {
    unsigned char *data;
    size_t len;
} bytes;

static bytes read_all(const char *path)
{
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    b.len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    b.data = malloc(b.len);
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, b.len, f), b.len);
    fclose(f);
    return b;
}

static uint64_t header_length(const bytes *b)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b->data[i];
    return n;
}

/* The good file with its header edited (edit may be NULL) and its data cut by `cut` bytes. */
static const char *rewritten(const bytes *good, const char *name, void (*edit)(cJSON *meta, cJSON *root), size_t cut)
{
    uint64_t n = header_length(good);
    cJSON *root = cJSON_ParseWithLength((const char *)good->data + 8, (size_t)n);
    assert_non_null(root);
    if (edit)
        edit(cJSON_GetObjectItemCaseSensitive(root, "__metadata__"), root);
    char *text = cJSON_PrintUnformatted(root);
    size_t len = strlen(text), padded = (len + 7) & ~(size_t)7, data_len = good->len - 8 - (size_t)n - cut;
    unsigned char *out = malloc(8 + padded + data_len);
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(out + 8, text, len);
    memset(out + 8 + len, ' ', padded - len);
    memcpy(out + 8 + padded, good->data + 8 + n, data_len);
    const char *path = dn_test_write_file(name, out, 8 + padded + data_len);
    free(out);
    free(text);
    cJSON_Delete(root);
    return path;
}

static void more_members(cJSON *meta, cJSON *root)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "ensemble", cJSON_CreateString("4"));
}

static void bad_count(cJSON *meta, cJSON *root)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "ensemble", cJSON_CreateString("1"));
}

static void fewer_members(cJSON *meta, cJSON *root)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "ensemble", cJSON_CreateString("2"));
}

static void other_shape(cJSON *meta, cJSON *root)
{
    (void)root;
    char *spec = strdup(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(meta, "member.2.spec")));
    memcpy(strstr(spec, "8x8x1"), "8x8x2", 5);
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "member.2.spec", cJSON_CreateString(spec));
    free(spec);
}

static void missing_tensor(cJSON *meta, cJSON *root)
{
    (void)meta;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "m1.5.dense.bias");
}

static void expect_refused(const char *path, dn_status status, const char *detail)
{
    dn_net *net = NULL;
    dn_error err = {0};
    dn_status st = dn_model_load(path, &net, &err);
    if (st != status || !strstr(err.msg, detail) || strncmp(err.msg, path, strlen(path)) != 0 || strchr(err.msg, '\n'))
        fail_msg("%s: status %d, \"%s\"; expected %d and \"%s\"", path, st, err.msg, status, detail);
    assert_null(net);
}

static void test_broken_files(void **state)
{
    (void)state;
    dn_train_params params = params_for(3, 3);
    params.epochs = 1;
    dn_net *ens = trained(3, &params);
    dn_error err = {0};
    const char *path = temp_path("good-ens.safetensors");
    assert_int_equal(dn_model_save(ens, path, &err), DN_OK);
    bytes good = read_all(path);

    /* The unedited rewrite loads: the edits below are what is refused. */
    dn_net *net = NULL;
    if (dn_model_load(rewritten(&good, "same.safetensors", NULL, 0), &net, &err) != DN_OK)
        fail_msg("%s", err.msg);
    dn_net_free(net);

    expect_refused(rewritten(&good, "cut.safetensors", NULL, 40), DN_EFORMAT, "m2.5.dense.bias");
    expect_refused(rewritten(&good, "more.safetensors", more_members, 0), DN_EFORMAT,
                   "an ensemble of 4 without metadata 'member.3.spec'");
    expect_refused(rewritten(&good, "fewer.safetensors", fewer_members, 0), DN_EFORMAT, "holds");
    expect_refused(rewritten(&good, "count.safetensors", bad_count, 0), DN_EFORMAT, "metadata 'ensemble' is 1");
    expect_refused(rewritten(&good, "shape.safetensors", other_shape, 0), DN_EFORMAT,
                   "inconsistent ensemble: member 2 takes 8x8x2 images to 10 classes, member 0 8x8x1 to 10");
    expect_refused(rewritten(&good, "missing.safetensors", missing_tensor, 0), DN_EFORMAT,
                   "tensor 'm1.5.dense.bias' is missing");
    /* Checkpoint loading refuses an ensemble file. */
    net = NULL;
    assert_int_not_equal(dn_checkpoint_load(path, &net, &err), DN_OK);
    assert_null(net);
    free(good.data);
    dn_net_free(ens);
}

static void test_ensemble_add(void **state)
{
    (void)state;
    dn_net *a = NULL, *b = NULL, *c = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(SPEC, "a", 1, &a, &err), DN_OK);
    assert_int_equal(dn_net_parse(SPEC, "b", 2, &b, &err), DN_OK);
    assert_int_equal(dn_net_parse("input 8x8x2\nflatten\ndense 10 softmax\n", "c", 3, &c, &err), DN_OK);
    assert_int_equal(dn_net_ensemble_size(a), 1);
    assert_int_equal(dn_net_ensemble_size(NULL), 0);
    assert_int_equal(dn_net_ensemble_add(a, a, &err), DN_EARG);
    assert_int_equal(dn_net_ensemble_add(a, c, &err), DN_ESHAPE);
    assert_non_null(strstr(err.msg, "8x8x2"));
    assert_int_equal(dn_net_set_raw_max(a, 16), DN_OK);
    assert_int_equal(dn_net_ensemble_add(a, b, &err), DN_OK);
    assert_int_equal(dn_net_ensemble_add(a, b, &err), DN_EARG);
    assert_int_equal(dn_net_ensemble_size(a), 2);
    assert_int_equal(dn_net_raw_max(b), 16);
    assert_int_equal(dn_net_set_raw_max(a, 255), DN_OK);
    assert_int_equal(dn_net_raw_max(b), 255);
    /* An ensemble cannot itself become a member. */
    dn_net *d = NULL;
    assert_int_equal(dn_net_parse(SPEC, "d", 4, &d, &err), DN_OK);
    assert_int_equal(dn_net_ensemble_add(d, a, &err), DN_EARG);
    dn_net_free(d);
    dn_net_free(c);
    dn_net_free(a); /* frees b */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mean_of_members),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_broken_files),
        cmocka_unit_test(test_ensemble_add),
    };
    return dn_test_finish(cmocka_run_group_tests(tests, load_data, free_data));
}

/*
 * Training schedules and regularisation: each learning-rate schedule's rates at known steps by hand,
 * warm-up, a schedule resumed from a checkpoint, AdamW and decoupled SGD decay for one step by hand,
 * label smoothing and mixup's soft-target loss by hand and against finite differences, mixup
 * determinism, early stopping restoring the best epoch (weights and batchnorm statistics), and the
 * spec's `train` / `augment` recipe lines.
 */
#include "testutil.h"
#include "net.h"
#include "optim.h"

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"

static dn_dataset tra;

static int load_data(void **state)
{
    (void)state;
    dn_error err = {0};
    dn_set_threads(1);
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK) {
        print_error("cannot load optdigits: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int free_data(void **state)
{
    (void)state;
    dn_dataset_free(&tra);
    return 0;
}

/* ---------------------------------------------------------------- schedules */

static void test_schedule_rates(void **state)
{
    (void)state;
    dn_train_params p = dn_train_default_params();
    p.lr = 0.1f;
    /* constant, no warm-up: lr itself, bit for bit, everywhere */
    assert_true(dn_schedule_lr(&p, 0, 0.5, 10) == 0.1f);
    assert_true(dn_schedule_lr(&p, 9, 1.0, 10) == 0.1f);
    p.lr = 0.0f; /* the optimizer's default */
    assert_true(dn_schedule_lr(&p, 3, 0.5, 10) == DN_ADAM_DEFAULT_LR);
    p.optimizer = DN_OPT_SGD;
    assert_true(dn_schedule_lr(&p, 3, 0.5, 10) == DN_SGD_DEFAULT_LR);
    p.optimizer = DN_OPT_ADAM;
    p.lr = 0.1f;

    /* step: every 3 epochs times 0.5; the whole epoch has its step's rate */
    p.schedule = DN_SCHEDULE_STEP;
    p.step_every = 3;
    p.step_gamma = 0.5f;
    assert_near(dn_schedule_lr(&p, 0, 0.1, 10), 0.1, 1e-8);
    assert_near(dn_schedule_lr(&p, 2, 1.0, 10), 0.1, 1e-8);
    assert_near(dn_schedule_lr(&p, 3, 0.1, 10), 0.05, 1e-8);
    assert_near(dn_schedule_lr(&p, 7, 0.5, 10), 0.025, 1e-8);
    p.step_every = 0, p.step_gamma = 0.0f; /* defaults: every 10 epochs times 0.1 */
    assert_near(dn_schedule_lr(&p, 9, 1.0, 30), 0.1, 1e-8);
    assert_near(dn_schedule_lr(&p, 10, 0.5, 30), 0.01, 1e-9);

    /* cosine from 0.1 to 0.1 * 0.1 = 0.01 over 4 epochs: halfway 0.055, a quarter in
     * 0.01 + 0.09 * (1 + cos(pi / 4)) / 2 = 0.086819805, at the end 0.01 */
    p.schedule = DN_SCHEDULE_COSINE;
    p.min_lr = 0.1f;
    assert_near(dn_schedule_lr(&p, 1, 1.0, 4), 0.055, 1e-7);
    assert_near(dn_schedule_lr(&p, 0, 1.0, 4), 0.086819805, 1e-7);
    assert_near(dn_schedule_lr(&p, 3, 1.0, 4), 0.01, 1e-8);
    assert_near(dn_schedule_lr(&p, 0, 0.25, 1), 0.086819805, 1e-7); /* within one epoch too */

    /* one-cycle over 10 epochs, min_lr 0: rises from 0.1 / 25 = 0.004 to 0.1 over the first 3 epochs
     * (half-way, 1.5 epochs: 0.052), then falls to 0 (half of the fall, at 6.5 epochs: 0.05) */
    p.schedule = DN_SCHEDULE_ONECYCLE;
    p.min_lr = 0.0f;
    assert_near(dn_schedule_lr(&p, 1, 0.5, 10), 0.052, 1e-7);
    assert_near(dn_schedule_lr(&p, 2, 1.0, 10), 0.1, 1e-7);
    assert_near(dn_schedule_lr(&p, 6, 0.5, 10), 0.05, 1e-7);
    assert_near(dn_schedule_lr(&p, 9, 1.0, 10), 0.0, 1e-9);

    /* warm-up of 2 epochs on top of a constant rate: linear from 0 */
    p.schedule = DN_SCHEDULE_CONSTANT;
    p.warmup = 2.0f;
    assert_near(dn_schedule_lr(&p, 0, 0.5, 10), 0.025, 1e-8);
    assert_near(dn_schedule_lr(&p, 1, 0.5, 10), 0.075, 1e-8);
    assert_near(dn_schedule_lr(&p, 2, 0.5, 10), 0.1, 1e-8);
    /* and multiplying cosine: at 1 epoch of 4, (1/2) * (0.1 * (1 + cos(pi / 4)) / 2) */
    p.schedule = DN_SCHEDULE_COSINE;
    assert_near(dn_schedule_lr(&p, 0, 1.0, 4), 0.5 * 0.1 * (1.0 + cos(M_PI / 4)) / 2, 1e-8);
}

static int stop_after_two(void *user, const dn_epoch_stats *stats)
{
    (void)user;
    return stats->epoch == 2;
}

/* Whether the safetensors header of the file at path (its 8-byte length, then JSON) contains text. */
static int header_has(const char *path, const char *text)
{
    FILE *f = fopen(path, "rb");
    unsigned char len[8];
    int found = 0;
    if (f && fread(len, 1, 8, f) == 8) {
        size_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | len[i];
        char *json = n < (1u << 20) ? calloc(n + 1, 1) : NULL;
        if (json && fread(json, 1, n, f) == n)
            found = strstr(json, text) != NULL;
        free(json);
    }
    if (f)
        fclose(f);
    return found;
}

/* A cosine run of 4 epochs stopped after 2, checkpointed, loaded and given the 2 that are left ends
 * with the same weights, bit for bit, as the run that was never stopped. */
static void test_schedule_resumes(void **state)
{
    (void)state;
    static const char spec[] = "input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_dataset part;
    assert_int_equal(dn_dataset_slice(&tra, 0, 300, &part, NULL), DN_OK);
    dn_train_params p = dn_train_default_params();
    p.epochs = 4;
    p.batch_size = 32;
    p.lr = 0.01f;
    p.schedule = DN_SCHEDULE_COSINE;
    p.warmup = 1.0f;
    dn_net *whole = NULL, *first = NULL, *resumed = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(spec, "s", 3, &whole, &err), DN_OK);
    assert_int_equal(dn_train(whole, &part, NULL, &p, &err), DN_OK);

    assert_int_equal(dn_net_parse(spec, "s", 3, &first, &err), DN_OK);
    p.on_epoch = stop_after_two;
    assert_int_equal(dn_train(first, &part, NULL, &p, &err), DN_ESTOPPED);
    char path[256];
    snprintf(path, sizeof path, "%s/cosine.ckpt", dn_test_dir());
    assert_int_equal(dn_checkpoint_save(first, path, &err), DN_OK);
    assert_true(header_has(path, "\"format_version\":\"1\"")); /* no early stopping: version 1 */
    assert_int_equal(dn_checkpoint_load(path, &resumed, &err), DN_OK);
    p.on_epoch = NULL;
    p.epochs = 2;
    assert_int_equal(dn_train(resumed, &part, NULL, &p, &err), DN_OK);
    assert_int_equal(resumed->n_params, whole->n_params);
    assert_memory_equal(resumed->params, whole->params, sizeof(float) * whole->n_params);
    /* and the schedule mattered: a constant rate ends elsewhere */
    dn_net *constant = NULL;
    assert_int_equal(dn_net_parse(spec, "s", 3, &constant, &err), DN_OK);
    p.epochs = 4;
    p.schedule = DN_SCHEDULE_CONSTANT;
    p.warmup = 0.0f;
    assert_int_equal(dn_train(constant, &part, NULL, &p, &err), DN_OK);
    assert_true(memcmp(constant->params, whole->params, sizeof(float) * whole->n_params) != 0);
    dn_net_free(whole);
    dn_net_free(first);
    dn_net_free(resumed);
    dn_net_free(constant);
    dn_dataset_free(&part);
}

/* ---------------------------------------------------------------- AdamW and SGD decay */

static void test_adamw_one_step(void **state)
{
    (void)state;
    /* t = 1: lr_t = lr sqrt(1 - b2) / (1 - b1), m = (1 - b1) g, v = (1 - b2) g^2, so the Adam part is
     * lr g / (|g| + eps / sqrt(1 - b2)); decay: p (1 - lr wd) first. */
    const float lr = 0.01f, wd = 0.5f, b1 = 0.9f, b2 = 0.999f, eps = 1e-7f;
    float p[3] = {2.0f, -1.0f, 0.5f}, g[3] = {0.5f, 0.25f, -2.0f}, m[3] = {0}, v[3] = {0};
    dn_adamw_step(p, g, m, v, 3, 1, lr, b1, b2, eps, wd);
    const double p0[3] = {2.0, -1.0, 0.5}, g0[3] = {0.5, 0.25, -2.0};
    for (int i = 0; i < 3; i++) {
        double expected = p0[i] * (1.0 - lr * wd) - lr * g0[i] / (fabs(g0[i]) + eps / sqrt(1.0 - b2));
        assert_near(p[i], expected, 1e-6);
    }
    /* weight decay 0 is Adam bit for bit */
    float q[3] = {2.0f, -1.0f, 0.5f}, r[3] = {2.0f, -1.0f, 0.5f}, mq[3] = {0}, vq[3] = {0}, mr[3] = {0}, vr[3] = {0};
    for (int t = 1; t <= 3; t++) {
        dn_adam_step(q, g, mq, vq, 3, t, lr, b1, b2, eps);
        dn_adamw_step(r, g, mr, vr, 3, t, lr, b1, b2, eps, 0.0f);
    }
    assert_memory_equal(q, r, sizeof q);
    /* SGD: velocity = -lr g (momentum 0 on a zero velocity), p = p (1 - lr wd) + velocity */
    float s[3] = {2.0f, -1.0f, 0.5f}, vel[3] = {0};
    dn_sgdw_step(s, g, vel, 3, 0.1f, 0.9f, 0.2f);
    for (int i = 0; i < 3; i++)
        assert_near(s[i], p0[i] * (1.0 - 0.1 * 0.2) - 0.1 * g0[i], 1e-6);
}

/* ---------------------------------------------------------------- soft targets */

static void softmax(const double *z, int n, float *p)
{
    double mx = z[0], sum = 0;
    for (int j = 1; j < n; j++)
        mx = z[j] > mx ? z[j] : mx;
    for (int j = 0; j < n; j++)
        sum += exp(z[j] - mx);
    for (int j = 0; j < n; j++)
        p[j] = (float)(exp(z[j] - mx) / sum);
}

static double loss_of(const double *z, const uint8_t *label, const dn_soft_targets *t)
{
    float p[10], d[10];
    double loss = 0;
    int correct = 0;
    softmax(z, 10, p);
    dn_soft_xent(p, label, t, 1, 10, d, &loss, &correct);
    return loss;
}

static void test_label_smoothing_by_hand(void **state)
{
    (void)state;
    /* probabilities 0.5 on class 3, 0.25 on class 1, 0.25 / 8 elsewhere; smoothing 0.1: target 0.91
     * on 3, 0.01 elsewhere. Loss = -(0.91 log 0.5 + 0.01 log 0.25 + 8 * 0.01 log(0.03125)). */
    float p[10], d[10];
    for (int j = 0; j < 10; j++)
        p[j] = 0.25f / 8;
    p[3] = 0.5f, p[1] = 0.25f;
    const uint8_t label = 3;
    dn_soft_targets t = {0.1f, NULL, NULL};
    double loss = 0;
    int correct = 0;
    dn_soft_xent(p, &label, &t, 1, 10, d, &loss, &correct);
    assert_near(loss, -(0.91 * log(0.5) + 0.01 * log(0.25) + 0.08 * log(0.03125)), 1e-6);
    assert_int_equal(correct, 1);
    assert_near(d[3], 0.5 - 0.91, 1e-6);
    assert_near(d[1], 0.25 - 0.01, 1e-6);
    assert_near(d[7], 0.03125 - 0.01, 1e-6);

    /* gradient with respect to the logits (the softmax is fused): finite differences, smoothed and
     * mixed (0.7 of label 3 and 0.3 of label 8) */
    const uint8_t partner = 8;
    const float lam = 0.7f;
    const dn_soft_targets cases[2] = {{0.1f, NULL, NULL}, {0.05f, &partner, &lam}};
    for (int c = 0; c < 2; c++) {
        double z[10];
        for (int j = 0; j < 10; j++)
            z[j] = 0.3 * sin(1.7 * j + c);
        softmax(z, 10, p);
        loss = 0;
        dn_soft_xent(p, &label, &cases[c], 1, 10, d, &loss, &correct);
        for (int j = 0; j < 10; j++) {
            const double h = 1e-3;
            double zp[10], zm[10];
            memcpy(zp, z, sizeof z);
            memcpy(zm, z, sizeof z);
            zp[j] += h, zm[j] -= h;
            double numeric = (loss_of(zp, &label, &cases[c]) - loss_of(zm, &label, &cases[c])) / (2 * h);
            assert_near(d[j], numeric, 2e-4);
        }
    }
    /* mixup by hand: 0.7 on 3 and 0.3 on 8, no smoothing; the dominant label decides accuracy */
    for (int j = 0; j < 10; j++)
        p[j] = 0.05f;
    p[3] = 0.3f, p[8] = 0.3f;
    dn_soft_targets mix = {0.0f, &partner, &lam};
    loss = 0, correct = 0;
    dn_soft_xent(p, &label, &mix, 1, 10, d, &loss, &correct);
    assert_near(loss, -log(0.3), 1e-6);
    assert_near(d[3], 0.3 - 0.7, 1e-6);
    assert_near(d[8], 0.3 - 0.3, 1e-6);
    assert_near(d[0], 0.05, 1e-6);
    assert_int_equal(correct, 1); /* p[3] == p[8]: the first maximum, 3, the dominant label */
    const float low = 0.3f;
    mix.lam = &low; /* now 8 dominates */
    correct = 0;
    dn_soft_xent(p, &label, &mix, 1, 10, d, &loss, &correct);
    assert_int_equal(correct, 0);
}

static dn_net *train_small(const dn_train_params *p, const dn_dataset *train, const dn_dataset *val, dn_status expect)
{
    static const char spec[] = "input 8x8x1\nconv2d 4 3x3 same relu\nbatchnorm\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(spec, "s", 5, &net, &err), DN_OK);
    dn_status st = dn_train(net, train, val, p, &err);
    if (st != expect)
        fail_msg("dn_train: %d (%s), expected %d", st, err.msg, expect);
    return net;
}

/* Mixup (and label smoothing) change the run, and the run stays the same for a seed on 1 or 2 threads. */
static void test_mixup_runs(void **state)
{
    (void)state;
    dn_dataset part;
    assert_int_equal(dn_dataset_slice(&tra, 0, 256, &part, NULL), DN_OK);
    dn_train_params p = dn_train_default_params();
    p.epochs = 2;
    p.batch_size = 64;
    dn_net *plain = train_small(&p, &part, NULL, DN_OK);
    p.augment.mixup = 0.4f;
    p.label_smoothing = 0.1f;
    dn_net *mixed = train_small(&p, &part, NULL, DN_OK);
    dn_set_threads(2);
    dn_net *mixed2 = train_small(&p, &part, NULL, DN_OK);
    dn_set_threads(1);
    assert_true(memcmp(plain->params, mixed->params, sizeof(float) * plain->n_params) != 0);
    assert_memory_equal(mixed->params, mixed2->params, sizeof(float) * plain->n_params);
    int n;
    const dn_epoch_stats *h = dn_net_history(mixed, &n);
    assert_int_equal(n, 2);
    assert_true(isfinite(h[1].loss) && h[1].accuracy > 0.0 && h[1].accuracy <= 1.0);
    dn_net_free(plain);
    dn_net_free(mixed);
    dn_net_free(mixed2);
    dn_dataset_free(&part);
}

/* ---------------------------------------------------------------- early stopping */

typedef struct epoch_copies {
    dn_net *net;
    float *copies[64]; /* after each epoch: params then buffers */
} epoch_copies;

static int keep_copy(void *user, const dn_epoch_stats *stats)
{
    epoch_copies *c = user;
    dn_net *net = c->net;
    float *copy = malloc(sizeof(float) * (net->n_params + net->n_buffers));
    memcpy(copy, net->params, sizeof(float) * net->n_params);
    memcpy(copy + net->n_params, net->buffers, sizeof(float) * net->n_buffers);
    c->copies[stats->epoch - 1] = copy;
    return 0;
}

/* Saves a checkpoint after one epoch and stops there, as the CLI's --checkpoint and Ctrl-C do. */
typedef struct checkpoint_at {
    dn_net *net;
    int epoch;
    char path[256];
} checkpoint_at;

static int save_and_stop(void *user, const dn_epoch_stats *stats)
{
    checkpoint_at *at = user;
    if (stats->epoch < at->epoch)
        return 0;
    dn_error err = {0};
    if (dn_checkpoint_save(at->net, at->path, &err) != DN_OK)
        fail_msg("%s", err.msg);
    return 1;
}

static void test_early_stopping(void **state)
{
    (void)state;
    static const char spec[] = "input 8x8x1\nconv2d 4 3x3 same relu\nbatchnorm\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_dataset part, val;
    assert_int_equal(dn_dataset_slice(&tra, 0, 200, &part, NULL), DN_OK);
    assert_int_equal(dn_dataset_slice(&tra, 3000, 300, &val, NULL), DN_OK);
    dn_train_params p = dn_train_default_params();
    p.epochs = 40;
    p.batch_size = 16;
    p.lr = 0.02f; /* a small set and a high rate: it overfits, the validation loss turns up */
    p.patience = 3;
    epoch_copies c = {0};
    dn_error err = {0};
    assert_int_equal(dn_net_parse(spec, "s", 5, &c.net, &err), DN_OK);
    p.on_epoch = keep_copy;
    p.user = &c;
    assert_int_equal(dn_train(c.net, &part, &val, &p, &err), DN_OK);
    int n;
    const dn_epoch_stats *h = dn_net_history(c.net, &n);
    assert_true(n < 40); /* it stopped early, and the history keeps every epoch trained */
    int best = 0;
    for (int e = 1; e < n; e++)
        if (h[e].val_loss < h[best].val_loss)
            best = e;
    assert_int_equal(n, best + 1 + p.patience);
    assert_memory_equal(c.net->params, c.copies[best], sizeof(float) * c.net->n_params);
    assert_true(c.net->n_buffers > 0);
    assert_memory_equal(c.net->buffers, c.copies[best] + c.net->n_params, sizeof(float) * c.net->n_buffers);
    const char *note = dn_net_note(c.net, "early_stopping");
    assert_non_null(note);
    char expect[64];
    snprintf(expect, sizeof expect, "restored epoch %d of %d", best + 1, n);
    if (strncmp(note, expect, strlen(expect)) != 0)
        fail_msg("note '%s', expected '%s...'", note, expect);
    for (int e = 0; e < n; e++)
        free(c.copies[e]);

    /* The same run stopped two epochs after its best one, saved as a checkpoint and resumed: the
     * resumed epochs are measured against the best before the stop, so it stops at the same epoch
     * and restores the same weights (a resumed run that forgot the best trained on and restored a
     * later epoch). */
    dn_net *resumed = NULL;
    checkpoint_at at = {.epoch = best + 2};
    snprintf(at.path, sizeof at.path, "%s/early.ckpt", dn_test_dir());
    assert_true(at.epoch < n); /* the stop falls between the best epoch and the early end */
    assert_int_equal(dn_net_parse(spec, "s", 5, &at.net, &err), DN_OK);
    p.on_epoch = save_and_stop;
    p.user = &at;
    assert_int_equal(dn_train(at.net, &part, &val, &p, &err), DN_ESTOPPED);
    /* A checkpoint holding the early-stopping state says so by its format version (2), so that a
     * digitnet reading version 1 refuses it by its version. */
    assert_true(header_has(at.path, "\"format_version\":\"2\""));
    assert_int_equal(dn_checkpoint_load(at.path, &resumed, &err), DN_OK);
    p.on_epoch = NULL;
    p.epochs = 40 - at.epoch;
    assert_int_equal(dn_train(resumed, &part, &val, &p, &err), DN_OK);
    int n2;
    dn_net_history(resumed, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(resumed->params, c.net->params, sizeof(float) * c.net->n_params);
    assert_memory_equal(resumed->buffers, c.net->buffers, sizeof(float) * c.net->n_buffers);
    const char *note2 = dn_net_note(resumed, "early_stopping");
    assert_non_null(note2);
    assert_string_equal(note2, note);
    /* A call that ended normally closed its count: another call on the stopped net trains all the
     * epochs it asks for (it would stop after one if the count went on past the patience). */
    p.epochs = 2;
    assert_int_equal(dn_train(c.net, &part, &val, &p, &err), DN_OK);
    int n3;
    dn_net_history(c.net, &n3);
    assert_int_equal(n3, n + 2);
    dn_net_free(at.net);
    dn_net_free(resumed);
    dn_net_free(c.net);

    /* without a validation set: a clear argument error */
    p.on_epoch = NULL;
    dn_net *net = train_small(&p, &part, NULL, DN_EARG);
    dn_net_free(net);
    dn_dataset_free(&part);
    dn_dataset_free(&val);
}

/* ---------------------------------------------------------------- recipe lines */

static void test_recipe_lines(void **state)
{
    (void)state;
    static const char spec[] = "input 8x8x1\ntrain epochs=7 batch=64  lr=0.002 schedule=cosine\nconv2d 4 3x3 same relu\n"
                               "augment shift=1.5 mixup=0.2\nflatten\ndense 10 softmax\n"
                               "train weight_decay=0.01 label_smoothing=0.1 patience=4 val_split=0.1 optimizer=sgd\n";
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(spec, "r.cnn", 1, &net, &err), DN_OK);
    assert_int_equal(net->n_layers, 3); /* not layers */
    const char *canon = dn_net_spec(net);
    assert_non_null(strstr(canon, "\ntrain epochs=7 batch=64 lr=0.002 schedule=cosine\n"));
    assert_non_null(strstr(canon, "\naugment shift=1.5 mixup=0.2\n"));
    dn_train_params p = dn_train_default_params();
    double val_split = 0;
    assert_int_equal(dn_net_recipe(net, &p, &val_split, &err), DN_OK);
    assert_int_equal(p.epochs, 7);
    assert_int_equal(p.batch_size, 64);
    assert_true(p.lr == 0.002f);
    assert_int_equal(p.schedule, DN_SCHEDULE_COSINE);
    assert_int_equal(p.optimizer, DN_OPT_SGD);
    assert_true(p.weight_decay == 0.01f && p.label_smoothing == 0.1f && p.patience == 4);
    assert_true(p.augment.shift == 1.5f && p.augment.mixup == 0.2f);
    assert_near(val_split, 0.1, 1e-12);
    /* the canonical text parses to the same recipe (a saved model keeps it) */
    dn_net *again = NULL;
    assert_int_equal(dn_net_parse(canon, "canon", 1, &again, &err), DN_OK);
    assert_string_equal(dn_net_spec(again), canon);
    dn_net_free(again);
    /* printed and parsed back */
    char text[512];
    dn_train_print(&p, val_split, text, sizeof text);
    assert_string_equal(text, "epochs=7 batch=64 lr=0.002 optimizer=sgd momentum=0.9 schedule=cosine "
                              "weight_decay=0.01 label_smoothing=0.1 patience=4 val_split=0.1");
    dn_train_params q = dn_train_default_params();
    double vs2 = 0;
    assert_int_equal(dn_train_parse(text, &q, &vs2, &err), DN_OK);
    assert_true(q.lr == p.lr && q.weight_decay == p.weight_decay && q.schedule == p.schedule && vs2 == val_split);
    dn_net_free(net);

    static const struct {
        const char *spec, *message;
    } bad[] = {
        {"input 8x8x1\nflatten\ntrain epochs=3 foo=1\ndense 10 softmax\n", "bad.cnn:3: train: unknown key 'foo'"},
        {"input 8x8x1\nflatten\ndense 10 softmax\ntrain schedule=linear\n",
         "bad.cnn:4: train: schedule=linear: expected constant, step, cosine or onecycle"},
        {"input 8x8x1\ntrain lr=fast\nflatten\ndense 10 softmax\n", "bad.cnn:2: train: lr=fast: expected a number"},
        {"input 8x8x1\ntrain epochs=2.5\nflatten\ndense 10 softmax\n", "bad.cnn:2: train: epochs=2.5: expected a whole number"},
        {"input 8x8x1\ntrain label_smoothing=1\nflatten\ndense 10 softmax\n",
         "bad.cnn:2: train: label_smoothing=1: out of range"},
        {"input 8x8x1\ntrain epochs\nflatten\ndense 10 softmax\n", "bad.cnn:2: train: 'epochs': expected key=value"},
        {"input 8x8x1\naugment twist=3\nflatten\ndense 10 softmax\n", "bad.cnn:2: augment: "},
        {"train epochs=3\ninput 8x8x1\nflatten\ndense 10 softmax\n", "bad.cnn:1: the first line must be 'input HxWxC'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        dn_net *b = NULL;
        memset(&err, 0, sizeof err);
        assert_int_equal(dn_net_parse(bad[i].spec, "bad.cnn", 1, &b, &err), DN_EFORMAT);
        assert_null(b);
        if (strncmp(err.msg, bad[i].message, strlen(bad[i].message)) != 0 || strchr(err.msg, '\n'))
            fail_msg("case %zu: '%s', expected '%s...'", i, err.msg, bad[i].message);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_rates),
        cmocka_unit_test(test_adamw_one_step),
        cmocka_unit_test(test_label_smoothing_by_hand),
        cmocka_unit_test(test_recipe_lines),
        cmocka_unit_test(test_schedule_resumes),
        cmocka_unit_test(test_mixup_runs),
        cmocka_unit_test(test_early_stopping),
    };
    return dn_test_finish(cmocka_run_group_tests(tests, load_data, free_data));
}

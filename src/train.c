/* The training loop and evaluation. Everything the loop needs is allocated before the first batch:
 * the batch arena, the shuffled order and the optimizer state. */
#include "net.h"
#include "kernels/kernels.h"
#include "optim.h"
#include "augment/augment.h"

#ifdef _OPENMP
#include <omp.h>
#endif
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

dn_train_params dn_train_default_params(void)
{
    dn_train_params p = {0};
    p.optimizer = DN_OPT_ADAM;
    p.lr = 0.0f; /* the optimizer's own default, resolved by dn_train */
    p.beta1 = 0.9f;
    p.beta2 = 0.999f;
    p.epsilon = 1e-7f;
    p.momentum = 0.9f;
    p.epochs = 10;
    p.batch_size = 32;
    p.seed = 1;
    return p;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static dn_status check_shape(const dn_net *net, dn_shape in, const char *what, dn_error *err)
{
    if (in.h != net->input.h || in.w != net->input.w || in.c != net->input.c)
        return dn_fail(err, DN_ESHAPE, "the model expects %dx%dx%d images but the %s data is %dx%dx%d",
                       net->input.h, net->input.w, net->input.c, what, in.h, in.w, in.c);
    return DN_OK;
}

static dn_status check_fits(const dn_net *net, const dn_dataset *d, const char *what, dn_error *err)
{
    return check_shape(net, (dn_shape){d->h, d->w, d->c}, what, err);
}

dn_status dn_net_check_input(const dn_net *net, dn_shape shape, dn_error *err)
{
    if (!net)
        return dn_fail(err, DN_EARG, "dn_net_check_input: NULL network");
    return check_shape(net, shape, "input", err);
}

void dn_soft_xent(const float *probs, const uint8_t *labels, const dn_soft_targets *t, int n, int classes,
                  float *dlogits, double *loss_sum, int *correct)
{
    const float inv_n = 1.0f / (float)n, base = t->smoothing / (float)classes;
    for (int r = 0; r < n; r++) {
        const float *p = probs + (size_t)r * classes;
        float *d = dlogits + (size_t)r * classes;
        const float lam = t->partner ? t->lam[r] : 1.0f;
        const int other = t->partner ? t->partner[r] : labels[r];
        int best = 0;
        double loss = 0.0;
        for (int j = 0; j < classes; j++) {
            float target = base + (1.0f - t->smoothing) * ((j == labels[r] ? lam : 0.0f) + (j == other ? 1.0f - lam : 0.0f));
            d[j] = (p[j] - target) * inv_n;
            if (p[j] > p[best])
                best = j;
            if (target > 0.0f) {
                float pj = p[j] < 1e-7f ? 1e-7f : (p[j] > 1.0f - 1e-7f ? 1.0f - 1e-7f : p[j]);
                loss -= target * log((double)pj);
            }
        }
        *loss_sum += loss;
        *correct += best == (lam >= 0.5f ? labels[r] : other);
    }
}

/* Softmax output probs (n, classes) and labels: adds up the clipped cross-entropy and the correct
 * predictions, and writes d(loss)/d(logits) = (p - onehot) / n into dlogits. */
static void softmax_xent(const float *probs, const uint8_t *labels, int n, int classes, float *dlogits,
                         double *loss_sum, int *correct)
{
    const float inv_n = 1.0f / (float)n;
    for (int r = 0; r < n; r++) {
        const float *p = probs + (size_t)r * classes;
        float *d = dlogits + (size_t)r * classes;
        int best = 0;
        for (int j = 0; j < classes; j++) {
            d[j] = p[j] * inv_n;
            if (p[j] > p[best])
                best = j;
        }
        d[labels[r]] -= inv_n;
        float pt = p[labels[r]];
        pt = pt < 1e-7f ? 1e-7f : (pt > 1.0f - 1e-7f ? 1.0f - 1e-7f : pt);
        *loss_sum -= log((double)pt);
        *correct += best == labels[r];
    }
}

static dn_status alloc_optimizer(dn_net *net, dn_error *err)
{
    if (net->opt_m)
        return DN_OK;
    net->opt_m = calloc(net->n_params ? net->n_params : 1, sizeof(float));
    net->opt_v = calloc(net->n_params ? net->n_params : 1, sizeof(float));
    if (!net->opt_m || !net->opt_v)
        return dn_fail(err, DN_ENOMEM, "out of memory for the optimizer state");
    return DN_OK;
}

/* Mean loss and accuracy of the net on d in inference mode, using batch-sized chunks. */
static dn_status evaluate_loss(dn_net *net, const dn_dataset *d, float *scratch, int chunk, double *loss,
                               double *accuracy, dn_error *err)
{
    const int classes = dn_net_n_classes(net);
    double loss_sum = 0.0;
    int correct = 0;
    for (int start = 0; start < d->n; start += chunk) { /* scratch holds (chunk, h, w, c) */
        int rows = d->n - start < chunk ? d->n - start : chunk;
        dn_dataset_rows(d, start, rows, scratch);
        const float *probs = dn_net_forward(net, scratch, rows, 0);
        softmax_xent(probs, d->labels + start, rows, classes, net->dbuf[0], &loss_sum, &correct);
    }
    *loss = loss_sum / d->n;
    *accuracy = (double)correct / d->n;
    if (!isfinite(*loss))
        return dn_fail(err, DN_ENAN, "the validation loss is not a finite number");
    return DN_OK;
}

/* Starts a new epoch: row order 0..n-1 shuffled by the net's generator (Keras reshuffles every
 * epoch). The order depends only on the generator's state, so a checkpoint resumes it exactly. */
static void new_epoch_order(dn_net *net)
{
    for (int i = 0; i < net->order_n; i++)
        net->order[i] = i;
    for (int i = net->order_n - 1; i > 0; i--) {
        int j = (int)dn_rng_below(&net->rng, (uint32_t)i + 1);
        int t = net->order[i];
        net->order[i] = net->order[j];
        net->order[j] = t;
    }
    net->epoch_pos = 0;
    net->epoch_loss = 0.0;
    net->epoch_correct = 0;
    net->epoch_seconds = 0.0;
}

static dn_status prepare_order(dn_net *net, int n, dn_error *err)
{
    if (net->order_n == n && net->order)
        return DN_OK; /* continuing: keep a part-trained epoch where it stopped */
    int *order = malloc(sizeof(int) * (size_t)n);
    if (!order)
        return dn_fail(err, DN_ENOMEM, "out of memory for the training order");
    free(net->order);
    net->order = order;
    net->order_n = n;
    net->epoch_pos = 0;
    return DN_OK;
}

/* One optimizer step at learning rate lr on rows xb / yb (soft targets t: label smoothing and
 * mixup); adds the batch's loss and correct count. */
static dn_status train_step(dn_net *net, const dn_train_params *params, float lr, const dn_soft_targets *t,
                            const float *xb, const uint8_t *yb, int rows, double *loss_sum, int *correct)
{
    const float *probs = dn_net_forward(net, xb, rows, 1);
    double batch_loss = 0.0;
    if (t->smoothing > 0.0f || t->partner)
        dn_soft_xent(probs, yb, t, rows, dn_net_n_classes(net), net->dbuf[0], &batch_loss, correct);
    else /* hard labels: the exact arithmetic of the runs before soft targets existed */
        softmax_xent(probs, yb, rows, dn_net_n_classes(net), net->dbuf[0], &batch_loss, correct);
    if (!isfinite(batch_loss))
        return DN_ENAN;
    memset(net->grads, 0, sizeof(float) * net->n_params);
    dn_net_backward(net, net->dbuf[0], rows);
    if (net->share && net->share->failed)
        return DN_EIO;
    net->opt_step++;
    if (params->optimizer == DN_OPT_SGD)
        dn_sgdw_step(net->params, net->grads, net->opt_m, net->n_params, lr, params->momentum, params->weight_decay);
    else
        dn_adamw_step(net->params, net->grads, net->opt_m, net->opt_v, net->n_params, net->opt_step, lr,
                      params->beta1, params->beta2, params->epsilon, params->weight_decay);
    *loss_sum += batch_loss;
    return DN_OK;
}

static dn_status train_run(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                           const dn_train_params *caller_params, int member, dn_error *err);

/* Gamma(shape, 1) by Marsaglia and Tsang (2000); shapes below 1 through Gamma(shape + 1) * U^(1/shape). */
static double gamma_draw(dn_rng *rng, double shape)
{
    if (shape < 1.0) {
        double u = dn_rng_uniform(rng);
        return gamma_draw(rng, shape + 1.0) * pow(u > 0.0 ? u : 1e-12, 1.0 / shape);
    }
    const double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double u1 = dn_rng_uniform(rng), u2 = dn_rng_uniform(rng);
        double z = sqrt(-2.0 * log(u1 > 0.0 ? u1 : 1e-12)) * cos(2.0 * M_PI * u2); /* Box-Muller */
        double v = 1.0 + c * z;
        if (v <= 0.0)
            continue;
        v = v * v * v;
        double u = dn_rng_uniform(rng);
        if (log(u > 0.0 ? u : 1e-12) < 0.5 * z * z + d - d * v + d * log(v))
            return d * v;
    }
}

/* Mixup scratch, allocated before the epoch loop when params->augment.mixup > 0. */
typedef struct mixup_scratch {
    int *perm;        /* (batch) partner of each row, a place in the batch */
    int *rows;        /* (batch) the partners' data rows */
    uint8_t *partner; /* (batch) the partners' labels */
    float *lam;       /* (batch) each row's own weight, Beta(alpha, alpha) */
    float *images;    /* (batch, h, w, c) the partners' images */
} mixup_scratch;

/* Mixup (Zhang et al. 2018) on the batch at `start` of the epoch's order: every row r is paired with
 * row perm[r] of the same batch (a permutation drawn from the seed, the epoch and start only, so any
 * thread or process count draws the same) and its image becomes lam x_r + (1 - lam) x_perm[r], with
 * lam ~ Beta(alpha, alpha) per row; the loss then takes the soft target of the two labels. Only rows
 * [lo, hi) of xb are mixed (the ones this process reads); the labels of all rows are set. It runs
 * before the geometric augmentation, which then moves both images of a pair alike. */
static void mix_batch(const dn_net *net, const dn_train_params *params, const dn_dataset *train, int epoch, int start,
                      int rows, int lo, int hi, float *xb, mixup_scratch *mx)
{
    dn_rng rng;
    dn_rng_seed(&rng, params->seed ^ ((uint64_t)epoch << 40) ^ ((uint64_t)start * DN_RNG_GAMMA) ^ 0x6D69787570ull);
    for (int r = 0; r < rows; r++)
        mx->perm[r] = r;
    for (int r = rows - 1; r > 0; r--) {
        int j = (int)dn_rng_below(&rng, (uint32_t)r + 1), t = mx->perm[r];
        mx->perm[r] = mx->perm[j];
        mx->perm[j] = t;
    }
    const double alpha = params->augment.mixup;
    for (int r = 0; r < rows; r++) {
        double a = gamma_draw(&rng, alpha), b = gamma_draw(&rng, alpha);
        mx->lam[r] = a + b > 0.0 ? (float)(a / (a + b)) : 1.0f;
        mx->rows[r] = net->order[start + mx->perm[r]];
        mx->partner[r] = train->labels[mx->rows[r]];
    }
    const size_t in_size = dn_shape_size(net->input);
    dn_dataset_gather(train, mx->rows + lo, hi - lo, mx->images + (size_t)lo * in_size);
    for (int r = lo; r < hi; r++) {
        float *x = xb + (size_t)r * in_size;
        const float *y = mx->images + (size_t)r * in_size, lam = mx->lam[r];
        for (size_t i = 0; i < in_size; i++)
            x[i] = lam * x[i] + (1.0f - lam) * y[i];
    }
}

/* The whole run with flush-to-zero and denormals-are-zero on every compute thread (kernels/fp_mode.c). */
dn_status dn_train(dn_net *net, const dn_dataset *train, const dn_dataset *val, const dn_train_params *caller_params,
                   dn_error *err)
{
    return dn_train_shared(net, train, val, caller_params, NULL, err);
}

/* One network's run (member `member` of an ensemble, 0 for a single net). */
static dn_status train_one(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                           const dn_train_params *caller_params, const dn_train_share *with, int member,
                           dn_error *err)
{
    dn_net_share share = {0};
    if (net && with && with->n_ranks > 1) {
        if (with->rank < 0 || with->rank >= with->n_ranks || !with->allgather)
            return dn_fail(err, DN_EARG, "dn_train_shared: rank %d of %d, or no allgather function", with->rank,
                           with->n_ranks);
        share = (dn_net_share){with->rank, with->n_ranks, with->allgather, with->user,
                               calloc((size_t)with->n_ranks + 1, sizeof(size_t)), 0};
        if (!share.offsets)
            return dn_fail(err, DN_ENOMEM, "out of memory for %d ranks", with->n_ranks);
        net->share = &share;
    }
    dn_fp_saved fp;
    dn_fp_fast_begin(&fp);
    dn_status st = train_run(net, train, val, caller_params, member, err);
    dn_fp_fast_end(&fp);
    if (share.offsets)
        net->share = NULL;
    free(share.offsets);
    return st;
}

/* Members trained side by side (one thread each) share the caller's callbacks through this relay:
 * the callbacks run one at a time under the relay's own lock; on_batch for one member only, the
 * lead (the first still training: the caller's batch callback has no member argument), on_epoch for
 * every member; a stop asked by either, or a member that fails, stops every member of the wave
 * after its current batch. */
typedef struct member_relay member_relay;

/* One member of a wave: what its callbacks get as user, and what its training left. */
typedef struct member_user {
    member_relay *relay;
    int index;      /* in the wave */
    int done;       /* finished (under the relay's lock): the lead passes to the next one training */
    dn_status st;
    dn_error err;
} member_user;

struct member_relay {
    const dn_train_params *caller;
#ifdef _OPENMP
    omp_lock_t lock;
#endif
    int stop;            /* read and written under the lock */
    int lead;            /* the member that reports its batches */
    member_user *users;  /* (wave) */
};

static void relay_lock(member_relay *r)
{
#ifdef _OPENMP
    omp_set_lock(&r->lock);
#else
    (void)r;
#endif
}

static void relay_unlock(member_relay *r)
{
#ifdef _OPENMP
    omp_unset_lock(&r->lock);
#else
    (void)r;
#endif
}

static int relay_batch(void *user, int epoch, int done, int total, double loss, double accuracy)
{
    const member_user *u = user;
    member_relay *r = u->relay;
    relay_lock(r);
    if (u->index == r->lead && !r->stop && r->caller->on_batch &&
        r->caller->on_batch(r->caller->user, epoch, done, total, loss, accuracy))
        r->stop = 1;
    const int stop = r->stop;
    relay_unlock(r);
    return stop;
}

static int relay_epoch(void *user, const dn_epoch_stats *stats)
{
    const member_user *u = user;
    member_relay *r = u->relay;
    relay_lock(r);
    if (r->caller->on_epoch && r->caller->on_epoch(r->caller->user, stats))
        r->stop = 1;
    const int stop = r->stop;
    relay_unlock(r);
    return stop;
}

/* Member `index` of a wave of `wave` has finished (failed: every other one stops). */
static void relay_finished(member_relay *r, int index, int wave, int failed)
{
    relay_lock(r);
    r->users[index].done = 1;
    if (failed)
        r->stop = 1;
    while (r->lead < wave && r->users[r->lead].done)
        r->lead++;
    relay_unlock(r);
}

/* Trains the wave's members side by side, one thread each. The first member that failed speaks
 * for the wave; one stopped because another failed does not. */
static dn_status train_wave(dn_net **member, dn_train_params *member_params, int wave, int m0, const dn_dataset *train,
                            const dn_dataset *val, const dn_train_params *params, dn_error *err)
{
    member_user *users = calloc((size_t)wave, sizeof *users);
    if (!users)
        return dn_fail(err, DN_ENOMEM, "out of memory for %d members side by side", wave);
    member_relay relay = {.caller = params, .users = users};
#ifdef _OPENMP
    omp_init_lock(&relay.lock);
#endif
    for (int i = 0; i < wave; i++) {
        users[i].relay = &relay;
        users[i].index = i;
        member_params[i].user = &users[i];
        member_params[i].on_batch = relay_batch;
        member_params[i].on_epoch = relay_epoch;
    }
#pragma omp parallel for num_threads(wave) schedule(static, 1)
    for (int i = 0; i < wave; i++) {
        users[i].st = train_one(member[i], train, val, &member_params[i], NULL, m0 + i, &users[i].err);
        relay_finished(&relay, i, wave, users[i].st != DN_OK);
    }
    int speaker = -1;
    for (int i = wave - 1; i >= 0; i--)
        if (users[i].st != DN_OK &&
            (speaker < 0 || users[speaker].st == DN_ESTOPPED || users[i].st != DN_ESTOPPED))
            speaker = i;
    dn_status st = DN_OK;
    if (speaker >= 0) {
        st = users[speaker].st;
        if (err)
            *err = users[speaker].err;
    }
#ifdef _OPENMP
    omp_destroy_lock(&relay.lock);
#endif
    free(users);
    return st;
}

/* How many members train side by side: as many as there are threads, when at least that many are
 * left to train, each on one thread. Two single-threaded trainings on 2 cores get through 14% more
 * images than one training on both (measured: 2,858 + 2,929 against 5,040 images/s, MNIST recipe
 * member): a batch of 128 small images leaves the second thread waiting at every layer's join.
 * Fewer members than threads train one after the other on all of them. Data-parallel training
 * over processes (with) keeps one member at a time: every rank must step through the same member. */
static int members_at_once(int left, const dn_train_share *with)
{
#ifdef _OPENMP
    const int threads = omp_get_max_threads();
    if (threads > 1 && left >= threads && omp_get_level() == 0 && !(with && with->n_ranks > 1))
        return threads;
#else
    (void)left, (void)with;
#endif
    return 1;
}

/* An ensemble of K = params->ensemble: the net itself is member 0 (seed), members 1..K-1 are built
 * from its spec with seeds seed + m and trained by the same run; each new member joins the net once
 * trained. A net that is already an ensemble of K trains its members further. Members train in
 * waves (members_at_once): each member's result depends only on its seed, never on the threads it
 * had, so a wave gives the same ensemble, bit for bit, as one member after the other. */
dn_status dn_train_shared(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                          const dn_train_params *params, const dn_train_share *with, dn_error *err)
{
    if (!net || !params)
        return dn_fail(err, DN_EARG, "dn_train: NULL argument");
    const int k = params->ensemble > 1 ? params->ensemble : 1;
    if (k > DN_MAX_ENSEMBLE)
        return dn_fail(err, DN_EARG, "an ensemble holds at most %d members, not %d", DN_MAX_ENSEMBLE, k);
    if (net->n_members > 0 && net->n_members + 1 != k)
        return dn_fail(err, DN_EARG, "the network is an ensemble of %d; training it needs ensemble = %d, not %d",
                       net->n_members + 1, net->n_members + 1, k);
    if (k == 1 && !params->on_member)
        return train_one(net, train, val, params, with, 0, err);
    dn_status st = DN_OK;
    for (int m0 = 0; st == DN_OK && m0 < k;) {
        const int wave = members_at_once(k - m0, with);
        dn_net *member[DN_MAX_ENSEMBLE];
        int fresh[DN_MAX_ENSEMBLE];
        dn_train_params *member_params = malloc(sizeof *member_params * (size_t)wave);
        if (!member_params)
            return dn_fail(err, DN_ENOMEM, "out of memory for %d ensemble members", wave);
        int ready = 0;
        for (; st == DN_OK && ready < wave; ready++) {
            const int m = m0 + ready;
            if (params->on_member && params->on_member(params->user, m, k)) {
                st = dn_fail(err, DN_ESTOPPED, "training stopped before ensemble member %d of %d", m + 1, k);
                break;
            }
            member_params[ready] = *params;
            member_params[ready].seed = params->seed + (uint64_t)m;
            member[ready] = m == 0 ? net : m <= net->n_members ? net->members[m - 1] : NULL;
            fresh[ready] = member[ready] == NULL;
            if (fresh[ready] &&
                (st = dn_net_parse(net->spec, "ensemble member", member_params[ready].seed, &member[ready], err)) != DN_OK)
                break;
        }
        if (st == DN_OK && wave == 1)
            st = train_one(member[0], train, val, &member_params[0], with, m0, err);
        else if (st == DN_OK)
            st = train_wave(member, member_params, wave, m0, train, val, params, err);
        /* Members join in order; a failed wave frees the ones it built. */
        for (int i = 0; i < ready; i++) {
            if (fresh[i] && st == DN_OK && (st = dn_net_ensemble_add(net, member[i], err)) == DN_OK)
                continue;
            if (fresh[i])
                dn_net_free(member[i]);
        }
        free(member_params);
        m0 += ready;
    }
    return st;
}

/* Threads for the training steps. Below some size a step is faster on one thread than on all:
 * every parallel loop wakes the other threads and waits for them, and when the loop's work is
 * small that costs more than it saves (the optdigits reference network at batch 32 trains twice as
 * fast on one thread as on two here: 67,232 against 36,309 images/s). Where the line lies depends
 * on the machine (waking a thread costs microseconds on bare metal, tens in a virtual machine), so
 * the run measures it: after a few warm-up steps, PROBE_PAIRS pairs of full batches run one step
 * on all threads and one on one thread, and the run keeps one thread when that was clearly faster.
 * Every dn_train call measures again, and so does every long epoch (step_threads_epoch). Inside
 * the caller's own parallel region, and for ensemble members side by side, the steps keep the one
 * thread they have. Any thread count gives the same bits, so the choice changes only the speed. */
enum { PROBE_WARMUP = 4, PROBE_PAIRS = 16 };

typedef struct step_threads {
    int all;                    /* the caller's thread count */
    int probing;                /* the steps' count is chosen here (level 0, more than one thread) */
    int chosen;                 /* 0 while measuring, then the count the steps use */
    int step;                   /* full-batch steps seen */
    double t_first;             /* the pair's first step */
    double ratio[PROBE_PAIRS];  /* per pair: time on one thread / time on all */
} step_threads;

static void step_threads_init(step_threads *s)
{
#ifdef _OPENMP
    const int all = omp_get_max_threads(), probing = omp_get_level() == 0 && all > 1;
#else
    const int all = 1, probing = 0;
#endif
    const char *env = getenv("DIGITNET_THREAD_PROBE"); /* "0": every step on all threads (scaling measurements, tests) */
    const int keep_all = env && strcmp(env, "0") == 0;
    *s = (step_threads){.all = all, .probing = probing && !keep_all, .chosen = probing && !keep_all ? 0 : all};
}

/* The thread count for the next step (full: a whole batch; only those are timed). The pairs take
 * turns at which of the two goes first, so that neither always follows the other. */
static int step_threads_next(const step_threads *s, int full)
{
    if (s->chosen)
        return s->chosen;
    if (!full || s->step < PROBE_WARMUP)
        return s->all;
    const int k = s->step - PROBE_WARMUP, one_first = (k / 2) % 2;
    return (k % 2) == one_first ? s->all : 1;
}

static int compare_doubles(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median pair decides, so that one step slowed by something else (a page fault, another
 * process) does not. */
static void step_threads_record(step_threads *s, int full, int threads, double seconds)
{
    if (s->chosen || !full)
        return;
    const int k = s->step - PROBE_WARMUP;
    if (k >= 0 && k % 2 == 0) {
        s->t_first = seconds;
    } else if (k >= 0) {
        const double t_one = threads == 1 ? seconds : s->t_first, t_all = threads == 1 ? s->t_first : seconds;
        s->ratio[k / 2] = t_all > 0.0 ? t_one / t_all : 1.0;
    }
    if (++s->step == PROBE_WARMUP + 2 * PROBE_PAIRS) {
        qsort(s->ratio, PROBE_PAIRS, sizeof s->ratio[0], compare_doubles);
        const double median = 0.5 * (s->ratio[PROBE_PAIRS / 2 - 1] + s->ratio[PROBE_PAIRS / 2]);
        s->chosen = median < 0.9 ? 1 : s->all; /* one thread only when clearly faster */
    }
}

/* A long epoch measures again (no warm-up): a choice made while something else held a core would
 * otherwise last the whole run. Only epochs of at least 8 probes' worth of full batches, so that
 * measuring stays under an eighth of the epoch. */
static void step_threads_epoch(step_threads *s, int full_batches)
{
    if (s->probing && s->chosen && full_batches >= 8 * 2 * PROBE_PAIRS) {
        s->chosen = 0;
        s->step = PROBE_WARMUP;
    }
}

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
}

static dn_status train_run(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                           const dn_train_params *caller_params, int member, dn_error *err)
{
    if (!net || !train || !caller_params)
        return dn_fail(err, DN_EARG, "dn_train: NULL argument");
    dn_train_params run = *caller_params;
    if (run.lr == 0.0f) /* Keras's defaults: Adam 0.001, SGD 0.01 */
        run.lr = run.optimizer == DN_OPT_SGD ? DN_SGD_DEFAULT_LR : DN_ADAM_DEFAULT_LR;
    const dn_train_params *params = &run;
    if (params->epochs < 0 || params->batch_size <= 0 || !(params->lr > 0.0f))
        return dn_fail(err, DN_EARG, "training needs epochs >= 0, batch size > 0 and a learning rate > 0");
    if (train->n <= 0)
        return dn_fail(err, DN_EARG, "the training set is empty");
    dn_status st = check_fits(net, train, "training", err);
    if (st == DN_OK && val && val->n > 0)
        st = check_fits(net, val, "validation", err);
    if (st != DN_OK)
        return st;
    for (int i = 0; i < train->n; i++)
        if (train->labels[i] >= DN_N_CLASSES)
            return dn_fail(err, DN_EARG, "training label %d at row %d is outside 0..%d", train->labels[i], i, DN_N_CLASSES - 1);
    for (int i = 0; val && i < val->n; i++)
        if (val->labels[i] >= DN_N_CLASSES)
            return dn_fail(err, DN_EARG, "validation label %d at row %d is outside 0..%d", val->labels[i], i,
                           DN_N_CLASSES - 1);

    const int batch = params->batch_size < train->n ? params->batch_size : train->n;
    const size_t in_size = dn_shape_size(net->input);
    float *xb = malloc(sizeof(float) * in_size * (size_t)batch); /* (batch, h, w, c) gathered rows */
    uint8_t *yb = malloc((size_t)batch);
    /* Augmentation's per-image work space, (batch, dn_augment_scratch_floats) */
    const int augmenting = dn_augment_active(&params->augment);
    float *augment_scratch = augmenting ? malloc(sizeof(float) * dn_augment_scratch_floats(net->input) * (size_t)batch) : NULL;
    if (!xb || !yb || (augmenting && !augment_scratch))
        st = dn_fail(err, DN_ENOMEM, "out of memory for the training batches");
    const int mixing = params->augment.mixup > 0.0f;
    mixup_scratch mx = {0};
    if (st == DN_OK && mixing) {
        mx = (mixup_scratch){malloc(sizeof(int) * (size_t)batch), malloc(sizeof(int) * (size_t)batch), malloc((size_t)batch),
                             malloc(sizeof(float) * (size_t)batch), malloc(sizeof(float) * in_size * (size_t)batch)};
        if (!mx.perm || !mx.rows || !mx.partner || !mx.lam || !mx.images)
            st = dn_fail(err, DN_ENOMEM, "out of memory for mixup");
    }
    const dn_soft_targets targets = {params->label_smoothing, mixing ? mx.partner : NULL, mx.lam};
    /* Early stopping keeps the best epoch's weights and non-trainable buffers (batchnorm's moving
     * statistics) in net->best. It belongs to the net, not to this call: a run stopped before its end
     * (DN_ESTOPPED, a checkpoint written from on_epoch) and continued by another call, or resumed from
     * that checkpoint, still measures its epochs against the best before. A call that ends normally
     * restores the best epoch and closes that count: the next call starts its own. */
    float *best = NULL;
    int stopped_early = 0;
    if (params->patience <= 0)
        net->best_epoch = 0; /* no early stopping in this call: nothing to carry to a later one */
    if (st == DN_OK && params->patience > 0) {
        if (!val || val->n <= 0)
            st = dn_fail(err, DN_EARG, "early stopping (patience %d) needs a validation set", params->patience);
        else if (!net->best && !(net->best = malloc(sizeof(float) * (net->n_params + net->n_buffers + 1))))
            st = dn_fail(err, DN_ENOMEM, "out of memory for the best weights");
        else if (net->best_epoch == 0)
            net->best_loss = INFINITY, net->best_stale = 0;
        best = net->best;
    }
    /* The schedule's run: the epochs already trained and the ones asked for now (a resumed run asks
     * for the rest, so its rates continue those of the run it resumes). */
    const int run_epochs = net->n_history + params->epochs;
    if (st == DN_OK)
        st = dn_net_reserve(net, batch, err);
    if (st == DN_OK)
        st = alloc_optimizer(net, err);
    if (st == DN_OK)
        st = prepare_order(net, train->n, err);
    if (st == DN_OK && (!net->rng_seeded || net->train_seed != params->seed)) {
        /* The run's generator: shuffling and dropout depend only on the seed. The same seed again
         * continues it (a run split over calls, or resumed from a checkpoint, is one run). */
        dn_rng_seed(&net->rng, params->seed);
        net->rng_seeded = 1;
        net->train_seed = params->seed;
    }

    int stop_requested = 0;
    step_threads threads;
    step_threads_init(&threads);
    for (int e = 0; st == DN_OK && e < params->epochs; e++) {
        const int epoch = net->n_history + 1;
        double t0 = now_seconds();
        if (e > 0)
            step_threads_epoch(&threads, (train->n - net->epoch_pos) / batch);
        int step_count = threads.all; /* what the epoch's steps ran on once probing ended */
        if (net->epoch_pos == 0)
            new_epoch_order(net);
        while (net->epoch_pos < train->n) {
            int start = net->epoch_pos, rows = train->n - start < batch ? train->n - start : batch;
            const int n_threads = step_threads_next(&threads, rows == batch);
            if (threads.chosen)
                step_count = threads.chosen;
            if (threads.probing)
                set_threads(n_threads);
            const double t_step = now_seconds();
            int lo, hi; /* the rows whose images this process reads (all but in shared training) */
            dn_net_share_rows(net, rows, &lo, &hi);
            dn_dataset_gather(train, net->order + start + lo, hi - lo, xb + (size_t)lo * in_size);
            for (int r = 0; r < rows; r++)
                yb[r] = train->labels[net->order[start + r]];
            if (mixing)
                mix_batch(net, params, train, epoch, start, rows, lo, hi, xb, &mx);
            /* mixed pairs first, then the geometric transforms move the blend (mix_batch) */
            if (augmenting) /* each image keyed by (seed, epoch, its position in the epoch) */
                dn_augment_batch(&params->augment, params->seed, epoch, start + lo, xb + (size_t)lo * in_size, hi - lo,
                                 net->input, augment_scratch);
            const float lr = dn_schedule_lr(params, epoch - 1, (double)(start + rows) / train->n, run_epochs);
            dn_status step = train_step(net, params, lr, &targets, xb, yb, rows, &net->epoch_loss, &net->epoch_correct);
            step_threads_record(&threads, rows == batch, n_threads, now_seconds() - t_step);
            if (step == DN_EIO) {
                st = dn_fail(err, DN_EIO, "exchanging gradients with the other processes failed at epoch %d, batch %d",
                             epoch, start / batch + 1);
                break;
            }
            if (step != DN_OK) {
                st = dn_fail(err, DN_ENAN, "the loss became NaN at epoch %d, batch %d; try a lower learning rate", epoch,
                             start / batch + 1);
                break;
            }
            net->epoch_pos += rows;
            const int seen = net->epoch_pos;
            if (params->on_batch && params->on_batch(params->user, epoch, seen, train->n, net->epoch_loss / seen,
                                                     (double)net->epoch_correct / seen)) {
                if (seen < train->n) {
                    net->epoch_seconds += now_seconds() - t0;
                    st = dn_fail(err, DN_ESTOPPED, "training stopped at epoch %d after %d of %d images", epoch, seen,
                                 train->n);
                }
                stop_requested = 1; /* on the epoch's last batch: finish the epoch, then stop */
                break;
            }
        }
        if (threads.probing)
            set_threads(threads.all); /* validation and the caller: all threads again */
        if (st != DN_OK)
            break;
        const int seen = net->epoch_pos;
        dn_epoch_stats stats = {.epoch = epoch,
                                .loss = net->epoch_loss / seen,
                                .accuracy = (double)net->epoch_correct / seen,
                                .val_loss = NAN,
                                .val_accuracy = NAN,
                                .member = member,
                                .threads = step_count};
        double t_train = net->epoch_seconds + now_seconds() - t0;
        if (val && val->n > 0)
            st = evaluate_loss(net, val, xb, batch, &stats.val_loss, &stats.val_accuracy, err);
        stats.seconds = net->epoch_seconds + now_seconds() - t0;
        stats.images_per_sec = t_train > 0.0 ? seen / t_train : 0.0;
        net->epoch_pos = 0;
        /* The last step's weights are seen by no forward pass when there is no validation set. */
        for (size_t i = 0; st == DN_OK && i < net->n_params; i++)
            if (!isfinite(net->params[i]))
                st = dn_fail(err, DN_ENAN, "the weights stopped being finite numbers in epoch %d; try a lower learning rate", epoch);
        if (st == DN_OK)
            st = dn_net_push_history(net, &stats, err);
        if (st == DN_OK && best) {
            if (stats.val_loss < net->best_loss) {
                net->best_loss = stats.val_loss;
                net->best_epoch = epoch;
                net->best_stale = 0;
                memcpy(best, net->params, sizeof(float) * net->n_params);
                memcpy(best + net->n_params, net->buffers, sizeof(float) * net->n_buffers);
            } else if (++net->best_stale >= params->patience)
                stopped_early = 1;
        }
        if (st == DN_OK && params->on_epoch && params->on_epoch(params->user, &stats))
            stop_requested = 1;
        if (st == DN_OK && stopped_early)
            break; /* early stopping is a normal end: DN_OK */
        if (st == DN_OK && stop_requested && e + 1 < params->epochs)
            st = dn_fail(err, DN_ESTOPPED, "training stopped after epoch %d", epoch);
    }
    if (st == DN_OK && best && net->best_epoch > 0) {
        /* Whether it stopped early or ran to the end, the run leaves the best epoch's state. */
        memcpy(net->params, best, sizeof(float) * net->n_params);
        memcpy(net->buffers, best + net->n_params, sizeof(float) * net->n_buffers);
        char note[160];
        snprintf(note, sizeof note, "restored epoch %d of %d (validation loss %.6g)%s", net->best_epoch,
                 net->n_history, net->best_loss, stopped_early ? ", stopped early" : "");
        st = dn_net_set_note(net, "early_stopping", note, err);
        net->best_epoch = 0; /* restored: the run is over, a later call counts afresh */
    }
    free(mx.perm);
    free(mx.rows);
    free(mx.partner);
    free(mx.lam);
    free(mx.images);
    free(xb);
    free(yb);
    free(augment_scratch);
    return st;
}

dn_status dn_net_evaluate(const dn_net *net, const dn_dataset *data, dn_metrics *m, float *probs_out, dn_error *err)
{
    if (!net || !data || !m)
        return dn_fail(err, DN_EARG, "dn_net_evaluate: NULL argument");
    if (data->n <= 0)
        return dn_fail(err, DN_EARG, "the evaluation set is empty");
    dn_status st = check_fits(net, data, "evaluation", err);
    if (st != DN_OK)
        return st;
    /* Blocks of whole inference chunks, so the forward passes see the same shapes as one
     * dn_net_predict over everything would. */
    enum { BLOCK = 16 * DN_PREDICT_CHUNK };
    const size_t in_size = dn_shape_size(net->input);
    float *probs = probs_out ? probs_out : malloc(sizeof(float) * (size_t)data->n * DN_N_CLASSES);
    float *images = malloc(sizeof(float) * in_size * (size_t)(data->n < BLOCK ? data->n : BLOCK));
    dn_workspace *ws = NULL;
    if (!probs || !images || dn_workspace_init(net, &ws, NULL) != DN_OK) {
        if (probs != probs_out)
            free(probs);
        free(images);
        return dn_fail(err, DN_ENOMEM, "out of memory for %d predictions", data->n);
    }
    for (int start = 0; st == DN_OK && start < data->n; start += BLOCK) {
        int rows = data->n - start < BLOCK ? data->n - start : BLOCK;
        dn_dataset_rows(data, start, rows, images);
        st = dn_net_predict_ws(net, ws, images, rows, probs + (size_t)start * DN_N_CLASSES, err);
    }
    dn_workspace_free(ws);
    free(images);
    if (st == DN_OK)
        st = dn_metrics_compute(probs, data->labels, data->n, m, err);
    if (probs != probs_out)
        free(probs);
    return st;
}

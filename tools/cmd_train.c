/* digitnet train and digitnet cv. */
#include "cli.h"
#include "dist.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Ensembles: a header before each member's epochs. user is the run's cli_progress (the first member
 * of train_run). */
static int progress_member(void *user, int member, int n_members)
{
    cli_progress *p = user;
    p->epoch = 0; /* the member's epochs count from 1 again */
    p->members = n_members;
    if (p->enabled)
        fprintf(p->out, "Member %d/%d\n", member + 1, n_members);
    return 0;
}

static dn_train_params train_params(const cli_options *o, cli_progress *progress)
{
    dn_train_params p = dn_train_default_params();
    p.optimizer = o->optimizer && !strcmp(o->optimizer, "sgd") ? DN_OPT_SGD : DN_OPT_ADAM;
    p.lr = (float)o->lr; /* 0: the optimizer's default */
    p.momentum = (float)o->momentum;
    p.epochs = o->epochs;
    p.batch_size = o->batch;
    p.seed = o->seed;
    p.on_batch = cli_progress_batch;
    p.on_epoch = cli_progress_epoch;
    p.user = progress;
    cli_recipe_params(o, &p);
    p.ensemble = o->ensemble; /* the effective count (cli_apply_recipe, a saved ensemble) */
    p.on_member = o->ensemble > 1 ? progress_member : NULL;
    return p;
}

/* Records how the model was trained, so that eval finds the same test rows again and --resume
 * continues with the same data and settings. */
static dn_status note_run(dn_net *net, const cli_options *o, dn_error *err)
{
    char buf[4][64];
    snprintf(buf[0], sizeof buf[0], "%d", o->batch);
    snprintf(buf[1], sizeof buf[1], "%.9g", o->lr);
    snprintf(buf[2], sizeof buf[2], "%.9g", o->momentum);
    snprintf(buf[3], sizeof buf[3], "%d", o->epochs);
    const char *keys[] = {"batch", "lr", "momentum", "epochs", "optimizer"};
    const char *values[] = {buf[0], buf[1], buf[2], buf[3], o->optimizer ? o->optimizer : "adam"};
    const dn_split split = {.test_split = o->have_test_split ? o->test_split : 0.0, .seed = o->seed,
                            .val_split = o->val_split};
    dn_status st = dn_net_note_split(net, o->data ? o->data : "optdigits", &split, err);
    for (int i = 0; st == DN_OK && i < 5; i++)
        st = dn_net_set_note(net, keys[i], values[i], err);
    if (st == DN_OK)
        st = cli_note_recipe(net, o, err);
    return st;
}

/* --resume: settings not given on the command line come from the checkpoint. */
static void settings_from_checkpoint(cli_options *o, const dn_net *net)
{
    const char *v;
    cli_defaults_from_model(o, net);
    dn_split split = {.val_split = o->val_split};
    if (o->val_split == 0 && (dn_net_noted_split(net, NULL, &split) & DN_NOTED_VAL_SPLIT))
        o->val_split = split.val_split;
    if (!o->have_batch && (v = dn_net_note(net, "batch")))
        o->batch = atoi(v);
    if (o->lr == 0 && (v = dn_net_note(net, "lr")))
        o->lr = atof(v);
    if (!o->have_momentum && (v = dn_net_note(net, "momentum")))
        o->momentum = atof(v);
    if (!o->optimizer && (v = dn_net_note(net, "optimizer")))
        o->optimizer = v;
    if (!o->have_epochs && (v = dn_net_note(net, "epochs")))
        o->epochs = atoi(v);
}

/* Ctrl-C / SIGTERM during training: finish the batch, write a checkpoint, say how to resume. */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* Without --checkpoint, an interrupted run saves next to --out (FILE.interrupted.ckpt) or, without
 * --out, as digitnet-interrupted.ckpt in the current directory; never over a file that is already
 * there (a numbered name is taken instead: NAME-2.ckpt, ...). The checkpoint is written to a
 * temporary name and then hard-linked to the final one, which fails rather than replaces. Writes
 * the chosen name to path. */
static dn_status fail_io(dn_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static dn_status fail_io(dn_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = DN_EIO;
    return DN_EIO;
}

static dn_status save_interrupted(const dn_net *net, const char *out, char *path, size_t size, dn_error *err)
{
    char base[4096], tmp[4200];
    if (out)
        snprintf(base, sizeof base, "%s.interrupted", out);
    else
        snprintf(base, sizeof base, "digitnet-interrupted");
    /* Claim the temporary name first, so that not even it replaces anything. */
    int fd = -1;
    for (int n = 0; n < 100 && fd < 0; n++) {
        snprintf(tmp, sizeof tmp, "%s.saving-%ld-%d.ckpt", base, (long)getpid(), n);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0 && errno != EEXIST)
            return fail_io(err, "%s: cannot create: %s", tmp, strerror(errno));
    }
    if (fd < 0)
        return fail_io(err, "%s: cannot find a free name", base);
    close(fd);
    dn_status st = dn_checkpoint_save(net, tmp, err);
    if (st != DN_OK)
        return st;
    for (int n = 1; n <= 1000; n++) {
        if (n == 1)
            snprintf(path, size, "%s.ckpt", base);
        else
            snprintf(path, size, "%s-%d.ckpt", base, n);
        if (link(tmp, path) == 0) {
            unlink(tmp);
            return DN_OK;
        }
        if (errno != EEXIST)
            break;
    }
    /* No hard links on this file system, or a thousand names taken: keep the temporary name, which
     * was claimed above while free. */
    snprintf(path, size, "%s", tmp);
    return DN_OK;
}

/* Fails now, not after the whole training, when path cannot be written: a directory, or a folder
 * that does not exist or is not writable. Tries to create a file beside it and removes it. */
static int check_writable(const char *flag, const char *path)
{
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
        return cli_failf("%s %s: is a directory", flag, path);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s.probe-%ld", path, (long)getpid());
    int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return cli_failf("%s %s: cannot write there: %s", flag, path, strerror(errno));
    close(fd);
    unlink(probe);
    return 0;
}

typedef struct train_run {
    cli_progress progress;
    const dn_net *net;
    const char *checkpoint;
    int every;
    int save_failed;
    dn_error save_err;
} train_run;

static int run_batch(void *user, int epoch, int done, int total, double loss, double accuracy)
{
    train_run *r = user;
    cli_progress_batch(&r->progress, epoch, done, total, loss, accuracy);
    return cli_dist_any(interrupted); /* under mpirun every rank stops at the same batch */
}

static int run_epoch(void *user, const dn_epoch_stats *stats)
{
    train_run *r = user;
    cli_progress_epoch(&r->progress, stats);
    if (r->checkpoint && stats->epoch % r->every == 0 && dn_checkpoint_save(r->net, r->checkpoint, &r->save_err) != DN_OK) {
        r->save_failed = 1;
    }
    return cli_dist_any(interrupted || r->save_failed);
}

int cmd_train(cli_options *o)
{
    dn_error err = {0};
    cli_data data;
    dn_net *net = NULL;
    int saved = 0, status = 1;
    if (o->ensemble > 1 && (o->checkpoint || o->resume))
        return cli_failf("%s cannot be used with --ensemble %d: checkpoints of ensembles are not supported",
                         o->checkpoint ? "--checkpoint" : "--resume", o->ensemble);
    if ((o->out && check_writable("--out", o->out)) || (o->checkpoint && check_writable("--checkpoint", o->checkpoint)))
        return 1;
    if (o->resume) {
        if (dn_checkpoint_load(o->resume, &net, &err) != DN_OK)
            return cli_fail(&err);
        settings_from_checkpoint(o, net);
        saved = 1;
    } else if (cli_open_model(o->model, o->seed, &net, &saved, &err) != DN_OK)
        return cli_fail(&err);
    if (cli_apply_recipe(o, net, &err) != DN_OK) { /* before the data: the recipe may set val_split */
        dn_net_free(net);
        return cli_fail(&err);
    }
    if (o->ensemble > 1 && (o->checkpoint || o->resume)) { /* the spec's recipe may ask for an ensemble */
        dn_net_free(net);
        return cli_failf("%s cannot be used with an ensemble of %d: checkpoints of ensembles are not supported",
                         o->checkpoint ? "--checkpoint" : "--resume", o->ensemble);
    }
    if (cli_load_data(o, &data, &err) != DN_OK) {
        dn_net_free(net);
        return cli_fail(&err);
    }
    if (dn_net_ensemble_size(net) > 1 && !o->ensemble)
        o->ensemble = dn_net_ensemble_size(net); /* a saved ensemble trains on as one */
    if (dn_net_ensemble_size(net) > 1 && (o->checkpoint || o->ensemble != dn_net_ensemble_size(net))) {
        int members = dn_net_ensemble_size(net);
        dn_net_free(net);
        cli_data_free(&data);
        if (o->checkpoint)
            return cli_failf("--checkpoint: %s is an ensemble of %d, and checkpoints of ensembles are not supported",
                             o->model, members);
        return cli_failf("%s is an ensemble of %d: train it with --ensemble %d (or leave --ensemble out)", o->model,
                         members, members);
    }
    if (dn_net_set_raw_max(net, data.train.raw_max) != DN_OK) {
        dn_net_free(net);
        cli_data_free(&data);
        return cli_failf("the data's pixel scale (raw_max %d) is outside 1..%d", data.train.raw_max, DN_RAW_MAX_LIMIT);
    }
    FILE *text = o->json ? stderr : stdout; /* with --json, stdout carries only the JSON object */
    int chatty = !o->quiet;
    if (chatty) {
        cli_print_summary(text, net, o->model ? o->model : o->resume);
        if (o->ensemble > 1)
            fprintf(text, "Ensemble of %d members, each this network, seeds %llu..%llu\n", o->ensemble, o->seed,
                    o->seed + (unsigned long long)o->ensemble - 1);
        fprintf(text, "Training on %d images, validating on %d, testing on %s\n", data.train.n, data.val.n,
                data.test_desc);
        cli_print_recipe(text, o);
    }
    size_t row_floats, block_floats;
    int blocks;
    const size_t exchanged = sizeof(float) * dn_net_exchange_floats(net, o->batch, &row_floats, &block_floats, &blocks);
    if (chatty && cli_dist_active())
        fprintf(text, "Data-parallel on %d ranks: %zu bytes exchanged per step of %d images (%zu per image, %d block sums of %zu)\n",
                cli_dist_size(), exchanged, o->batch, sizeof(float) * row_floats, blocks, sizeof(float) * block_floats);
    int done_epochs;
    dn_net_history(net, &done_epochs);
    train_run run = {.net = net, .checkpoint = cli_dist_rank() == 0 ? o->checkpoint : NULL, .every = o->checkpoint_every ? o->checkpoint_every : 1};
    cli_progress_init(&run.progress, text, chatty, o->epochs, o->batch);
    dn_train_params params = train_params(o, &run.progress);
    params.on_member = o->ensemble > 1 ? progress_member : NULL; /* user: &run, whose first member is the progress */
    params.on_batch = run_batch;
    params.on_epoch = run_epoch;
    params.user = &run;
    /* --epochs is the total: a resumed run trains what is left (a part-trained epoch counts as one). */
    params.epochs = o->resume ? (o->epochs > done_epochs ? o->epochs - done_epochs : 0) : o->epochs;
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    dn_metrics m;
    dn_train_share share;
    float *probs = data.test.n ? malloc(sizeof(float) * DN_N_CLASSES * (size_t)data.test.n) : NULL;
    dn_status st = note_run(net, o, &err);
    if (st == DN_OK && data.test.n && !probs)
        st = DN_ENOMEM, snprintf(err.msg, sizeof err.msg, "out of memory for the test predictions");
    int before[DN_MAX_ENSEMBLE] = {0}; /* each member's epochs before this run (new members: 0) */
    for (int k = 0; k < dn_net_ensemble_size(net) && k < DN_MAX_ENSEMBLE; k++)
        dn_net_history(dn_net_ensemble_member(net, k), &before[k]);
    const double train_start = cli_now();
    if (st == DN_OK)
        st = dn_train_shared(net, &data.train, data.val.n ? &data.val : NULL, &params,
                             cli_dist_train_share(&share), &err); /* under mpirun: data-parallel over the ranks */
    const double train_wall = cli_now() - train_start;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    if (st == DN_ESHAPE) { /* name the model: the data set is named by the message's shapes */
        char msg[sizeof err.msg + 1024];
        snprintf(msg, sizeof msg, "%s: %s", o->model ? o->model : o->resume, err.msg);
        snprintf(err.msg, sizeof err.msg, "%.*s", (int)sizeof err.msg - 1, msg);
    }
    if (run.save_failed) {
        cli_fail(&run.save_err);
        free(probs);
        goto done;
    }
    if (st == DN_ESTOPPED && cli_dist_rank() != 0) { /* rank 0 writes the checkpoint and says so */
        status = 130;
        free(probs);
        goto done;
    }
    if (st == DN_ESTOPPED && interrupted && (o->ensemble > 1 || dn_net_ensemble_size(net) > 1)) { /* even in member 1 */
        cli_failf("interrupted (%s); ensembles cannot be checkpointed, nothing was saved", err.msg);
        status = 130;
        free(probs);
        goto done;
    }
    if (st == DN_ESTOPPED && interrupted) {
        char chosen[4300];
        const char *path = o->checkpoint ? o->checkpoint : chosen;
        dn_status saved_st = o->checkpoint ? dn_checkpoint_save(net, path, &err)
                                           : save_interrupted(net, o->out, chosen, sizeof chosen, &err);
        if (saved_st != DN_OK)
            cli_fail(&err);
        else
            cli_failf("interrupted (%s); checkpoint written to %s; resume with: digitnet train --resume %s --epochs %d",
                      err.msg, path, path, o->epochs);
        status = 130;
        free(probs);
        goto done;
    }
    if (st == DN_OK && data.test.n)
        st = dn_net_evaluate(net, &data.test, &m, probs, &err);
    if (st == DN_OK && o->out)
        st = dn_model_save(net, o->out, &err);
    if (st != DN_OK) {
        cli_fail(&err);
        free(probs);
        goto done;
    }
    int n_epochs;
    const dn_epoch_stats *h = dn_net_history(net, &n_epochs);
    double seconds = 0, rate = 0;
    const int members = dn_net_ensemble_size(net);
    int trained = 0; /* epochs this run trained, over every member (early stopping may end one sooner) */
    for (int k = 0; k < members && k < DN_MAX_ENSEMBLE; k++) {
        int n;
        dn_net_history(dn_net_ensemble_member(net, k), &n);
        trained += n > before[k] ? n - before[k] : 0;
    }
    const int threads = n_epochs > before[0] ? h[n_epochs - 1].threads : 0; /* the steps' choice (dn_epoch_stats) */
    if (members == 1) {
        for (int i = before[0]; i < n_epochs; i++) {
            seconds += h[i].seconds;
            rate += h[i].images_per_sec / trained;
        }
    } else { /* members may have trained side by side: the run's own clock, every member's images */
        seconds = train_wall;
        rate = seconds > 0 ? (double)trained * data.train.n / seconds : 0;
    }
    cJSON *j = data.test.n ? cli_metrics_json(&m) : cJSON_CreateObject();
    cJSON_AddItemToObject(j, "history", cli_history_json(net));
    cJSON_AddNumberToObject(j, "train_images_per_sec", rate);
    cJSON_AddNumberToObject(j, "train_seconds", seconds);
    if (members == 1)
        cJSON_AddNumberToObject(j, "train_threads", threads);
    cJSON_AddItemToObject(j, "summary", cli_summary_json(net));
    if (cli_dist_active()) {
        cJSON_AddNumberToObject(j, "ranks", cli_dist_size());
        cJSON_AddNumberToObject(j, "exchange_bytes_per_step", (double)exchanged);
        cJSON_AddNumberToObject(j, "exchange_bytes_per_image", (double)(sizeof(float) * row_floats));
        cJSON_AddNumberToObject(j, "exchange_bytes_per_block", (double)(sizeof(float) * block_floats));
        cJSON_AddNumberToObject(j, "exchange_blocks_per_step", blocks);
    }
    if (o->out)
        cJSON_AddStringToObject(j, "model", o->out);
    if (members > 1)
        cJSON_AddNumberToObject(j, "ensemble", members);
    if (!o->json) {
        if (members > 1)
            printf("\nTrained %d members x %d epochs in %.1fs (%.0f images/s)\n", members, params.epochs, seconds, rate);
        else {
            char on[32] = ""; /* ", 2 threads": what the steps ran on, when this run trained any */
            if (threads)
                snprintf(on, sizeof on, ", %d thread%s", threads, threads == 1 ? "" : "s");
            printf("\nTrained %d epochs in %.1fs (%.0f images/s%s)\n", params.epochs, seconds, rate, on);
        }
        if (data.test.n)
            cli_print_metrics(stdout, &m, "Test");
        if (o->out)
            printf("\nSaved model to %s\n", o->out);
    }
    cli_report r = {.command = "train", .net = net, .test = &data.test, .probs = probs,
                    .metrics = data.test.n ? &m : NULL};
    r.train = &data.train;
    status = cli_finish(o, &r, j);
    free(probs);
done:
    dn_net_free(net);
    cli_data_free(&data);
    return status;
}

typedef struct cv_printer {
    const cli_options *o;
    FILE *text;
    cli_progress *progress; /* restarted for every fold */
} cv_printer;

static int print_fold(void *user, int fold, int k, int n_train, int n_test, const dn_metrics *m)
{
    const cv_printer *p = user;
    if (!m)
        cli_progress_init(p->progress, p->text, !p->o->quiet, p->o->epochs, p->o->batch);
    if (!m && !p->o->quiet)
        fprintf(p->text, "Fold %d/%d: training on %d images, testing on %d\n", fold + 1, k, n_train, n_test);
    else if (m && !p->o->json && !cli_dist_active()) /* under mpirun: in fold order at the end */
        printf("Fold %d: loss %.4f - accuracy %.4f\n", fold + 1, m->loss, m->accuracy);
    return 0;
}

/* cv under mpirun: every rank's folds (results, out-of-fold predictions and labels) reach every
 * rank, and the fold lines are printed in order, as one process prints them. */
static dn_status share_folds(int k, int n, double *acc, double *loss, float *probs, uint8_t *labels, int json,
                             dn_error *err)
{
    const int ranks = cli_dist_size();
    size_t *at = malloc(sizeof(size_t) * 4 * ((size_t)ranks + 1));
    if (!at)
        return snprintf(err->msg, sizeof err->msg, "out of memory for cross-validation"), DN_ENOMEM;
    size_t *fold_at = at, *row_at = at + ranks + 1, *prob_at = at + 2 * (ranks + 1), *double_at = at + 3 * (ranks + 1);
    for (int r = 0; r <= ranks; r++) {
        int f0, f1;
        cli_dist_range(k, r < ranks ? r : r - 1, &f0, &f1);
        int f = r < ranks ? f0 : f1;
        fold_at[r] = (size_t)f;
        row_at[r] = (size_t)f * (size_t)(n / k) + (size_t)(f < n % k ? f : n % k); /* rows before fold f */
        prob_at[r] = row_at[r] * DN_N_CLASSES * sizeof(float);
        double_at[r] = fold_at[r] * sizeof(double);
    }
    int failed = cli_dist_share(acc, double_at) || cli_dist_share(loss, double_at) ||
                 cli_dist_share(probs, prob_at) || cli_dist_share(labels, row_at);
    free(at);
    if (failed)
        return snprintf(err->msg, sizeof err->msg, "exchanging the folds' results between the ranks failed"), DN_EIO;
    for (int f = 0; f < k && !json; f++)
        printf("Fold %d: loss %.4f - accuracy %.4f\n", f + 1, loss[f], acc[f]);
    return DN_OK;
}

int cmd_cv(cli_options *o)
{
    dn_error err = {0};
    dn_dataset train = {0}, test = {0}, all = {0};
    if (!o->model)
        return cli_failf("cv needs --model SPEC (a .cnn file)");
    if (cli_open_data(o, &train, &test, &err) != DN_OK)
        return cli_fail(&err);
    /* k-fold over every row of the data set (training and test files together), shuffled with --seed,
     * as scikit-learn's KFold(shuffle=True) over the full array. */
    dn_status st = test.n ? dn_dataset_concat(&train, &test, &all, &err) : dn_dataset_slice(&train, 0, train.n, &all, &err);
    dn_dataset_free(&train);
    dn_dataset_free(&test);
    if (st != DN_OK)
        return cli_fail(&err);
    const int k = o->folds, n = all.n;
    int *perm = malloc(sizeof(int) * (size_t)n);
    float *probs = malloc(sizeof(float) * (size_t)n * DN_N_CLASSES); /* out-of-fold predictions */
    uint8_t *labels = malloc((size_t)n);
    double *acc = calloc((size_t)k, sizeof(double)), *loss = calloc((size_t)k, sizeof(double));
    if (!perm || !probs || !labels || !acc || !loss) {
        st = DN_ENOMEM;
        snprintf(err.msg, sizeof err.msg, "out of memory for cross-validation");
    }
    FILE *text = o->json ? stderr : stdout;
    if (st == DN_OK)
        dn_permutation(o->seed, n, perm);
    int mine0, mine1; /* under mpirun each rank trains folds [mine0, mine1) */
    cli_dist_range(k, cli_dist_rank(), &mine0, &mine1);
    dn_net *spec_net = NULL;
    if (st == DN_OK)
        st = dn_net_load_spec(o->model, o->seed, &spec_net, &err);
    if (st == DN_OK)
        st = cli_apply_recipe(o, spec_net, &err);
    if (st == DN_OK && !o->quiet)
        cli_print_recipe(text, o);
    cli_progress progress;
    cli_progress_init(&progress, text, !o->quiet, o->epochs, o->batch);
    dn_train_params params = train_params(o, &progress);
    cv_printer printer = {o, text, &progress};
    if (st == DN_OK)
        st = dn_cross_validate_folds(dn_net_spec(spec_net), &all, k, mine0, mine1, &params, print_fold, &printer, loss,
                                     acc, probs, labels, &err);
    dn_net_free(spec_net);
    if (st == DN_OK && cli_dist_active())
        st = share_folds(k, n, acc, loss, probs, labels, o->json, &err);
    int status = 1;
    if (st == DN_OK) {
        double mean, std, mean_loss, std_loss;
        dn_metrics pooled;
        dn_mean_std(acc, k, &mean, &std);
        dn_mean_std(loss, k, &mean_loss, &std_loss);
        st = dn_metrics_compute(probs, labels, n, &pooled, &err);
        cJSON *j = st == DN_OK ? cli_metrics_json(&pooled) : NULL;
        if (j) {
            cJSON *folds = cJSON_AddArrayToObject(j, "folds");
            for (int f = 0; f < k; f++) {
                cJSON *e = cJSON_CreateObject();
                cJSON_AddNumberToObject(e, "loss", loss[f]);
                cJSON_AddNumberToObject(e, "accuracy", acc[f]);
                cJSON_AddItemToArray(folds, e);
            }
            cJSON_AddNumberToObject(j, "mean_accuracy", mean);
            cJSON_AddNumberToObject(j, "std_accuracy", std);
            cJSON_AddNumberToObject(j, "mean_loss", mean_loss);
            if (!o->json) {
                printf("\n%d-fold cross-validation: accuracy mean %.4f, std %.4f; loss mean %.4f\n", k, mean, std, mean_loss);
                cli_print_metrics(stdout, &pooled, "Out-of-fold predictions");
            }
            if (o->report) {
                /* Folds walk the permutation in order, so the out-of-fold rows are `all` taken in
                 * permutation order: probs[i] belongs to oof row i. */
                dn_net *spec_net = NULL;
                dn_dataset oof = {0};
                st = dn_net_load_spec(o->model, o->seed, &spec_net, &err);
                if (st == DN_OK)
                    st = cli_note_recipe(spec_net, o, &err); /* the report's "Training recipe" */
                if (st == DN_OK)
                    st = dn_dataset_take(&all, perm, n, &oof, &err);
                cli_report r = {.dir = o->report, .command = "cv", .options = o, .net = spec_net, .test = &oof,
                                .probs = probs, .metrics = &pooled, .fold_loss = loss, .fold_accuracy = acc,
                                .n_folds = k, .json = j};
                if (st == DN_OK)
                    st = cli_write_report(&r, &err);
                if (st == DN_OK && !o->json)
                    printf("Report: %s/index.html\n", o->report);
                dn_dataset_free(&oof);
                dn_net_free(spec_net);
            }
            if (o->json)
                cli_print_json(j);
            else
                cJSON_Delete(j);
        }
        status = st == DN_OK ? 0 : 1;
    }
    if (st != DN_OK) {
        if (!err.msg[0])
            snprintf(err.msg, sizeof err.msg, "%s", dn_status_str(st));
        cli_fail(&err);
    }
    free(perm);
    free(probs);
    free(labels);
    free(acc);
    free(loss);
    dn_dataset_free(&all);
    return status;
}

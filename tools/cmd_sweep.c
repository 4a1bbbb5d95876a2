/* digitnet sweep: trains every combination of --lr A,B,... and --batch M,N,... with the other
 * settings of train, ranks them by validation accuracy and prints a table, best first. Under
 * mpirun the settings are spread over the ranks (contiguous runs); each one trains exactly as it
 * would alone, so the table is the same for any number of ranks. */
#include "cli.h"
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_VALUES 32

typedef struct setting {
    double lr, batch;                /* doubles: the whole record is exchanged as one array */
    double val_loss, val_accuracy;   /* last epoch */
    double test_loss, test_accuracy; /* NaN without test rows */
    double index;                    /* place in the grid, the tie-breaker */
} setting;

/* "0.001,0.002" -> values; every value within [lo, hi] (whole numbers when integral). */
static int parse_list(const char *flag, const char *text, double lo, double hi, int integral, double *values)
{
    int n = 0;
    const char *p = text;
    for (;;) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (errno || end == p || (*end && *end != ',') || !(v >= lo && v <= hi) || (integral && v != floor(v)))
            return cli_failf("%s: '%s' is not a comma-separated list of numbers from %g to %g", flag, text, lo, hi), -1;
        if (n == MAX_VALUES)
            return cli_failf("%s: at most %d values", flag, MAX_VALUES), -1;
        values[n++] = v;
        if (!*end)
            return n;
        p = end + 1;
    }
}

static int better(const void *a, const void *b)
{
    const setting *x = a, *y = b;
    if (x->val_accuracy != y->val_accuracy)
        return x->val_accuracy > y->val_accuracy ? -1 : 1;
    if (x->val_loss != y->val_loss)
        return x->val_loss < y->val_loss ? -1 : 1;
    return x->index < y->index ? -1 : 1;
}

/* Trains one setting on d and fills its results. */
static dn_status train_setting(const cli_options *o, const cli_data *d, setting *s, FILE *text, dn_error *err)
{
    dn_net *net = NULL;
    dn_status st = dn_net_load_spec(o->model, o->seed, &net, err);
    if (st != DN_OK)
        return st;
    dn_net_set_raw_max(net, d->train.raw_max);
    cli_progress progress;
    cli_progress_init(&progress, text, !o->quiet, o->epochs, (int)s->batch);
    dn_train_params p = dn_train_default_params();
    p.optimizer = o->optimizer && !strcmp(o->optimizer, "sgd") ? DN_OPT_SGD : DN_OPT_ADAM;
    p.lr = (float)s->lr;
    p.momentum = (float)o->momentum;
    p.epochs = o->epochs;
    p.batch_size = (int)s->batch;
    p.seed = o->seed;
    p.on_batch = cli_progress_batch;
    p.on_epoch = cli_progress_epoch;
    p.user = &progress;
    cli_recipe_params(o, &p);
    p.ensemble = o->ensemble;
    progress.members = o->ensemble; /* members may train side by side: epoch lines name theirs */
    st = dn_train(net, &d->train, &d->val, &p, err);
    int n_epochs = 0;
    const dn_epoch_stats *h = dn_net_history(net, &n_epochs);
    s->val_loss = n_epochs ? h[n_epochs - 1].val_loss : NAN;
    s->val_accuracy = n_epochs ? h[n_epochs - 1].val_accuracy : NAN;
    s->test_loss = s->test_accuracy = NAN;
    dn_metrics m;
    /* An ensemble is ranked by its averaged probabilities, not by member 0's history. */
    if (st == DN_OK && dn_net_ensemble_size(net) > 1 && d->val.n &&
        (st = dn_net_evaluate(net, &d->val, &m, NULL, err)) == DN_OK)
        s->val_loss = m.loss, s->val_accuracy = m.accuracy;
    if (st == DN_OK && d->test.n && (st = dn_net_evaluate(net, &d->test, &m, NULL, err)) == DN_OK)
        s->test_loss = m.loss, s->test_accuracy = m.accuracy;
    dn_net_free(net);
    return st;
}

static void print_table(const setting *s, int n, int has_test)
{
    printf("%4s  %-10s %6s  %9s  %8s", "rank", "lr", "batch", "val_loss", "val_acc");
    if (has_test)
        printf("  %9s  %8s", "test_loss", "test_acc");
    printf("\n");
    for (int i = 0; i < n; i++) {
        printf("%4d  %-10g %6d  %9.4f  %8.4f", i + 1, s[i].lr, (int)s[i].batch, s[i].val_loss, s[i].val_accuracy);
        if (has_test)
            printf("  %9.4f  %8.4f", s[i].test_loss, s[i].test_accuracy);
        printf("\n");
    }
}

static cJSON *table_json(const setting *s, int n, const cli_options *o)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddNumberToObject(j, "epochs", o->epochs);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddNumberToObject(j, "ranks", cli_dist_size());
    cJSON *rows = cJSON_AddArrayToObject(j, "results"); /* best first */
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "lr", s[i].lr);
        cJSON_AddNumberToObject(e, "batch", s[i].batch);
        cJSON_AddNumberToObject(e, "val_loss", s[i].val_loss);
        cJSON_AddNumberToObject(e, "val_accuracy", s[i].val_accuracy);
        if (!isnan(s[i].test_accuracy)) {
            cJSON_AddNumberToObject(e, "test_loss", s[i].test_loss);
            cJSON_AddNumberToObject(e, "test_accuracy", s[i].test_accuracy);
        }
        cJSON_AddItemToArray(rows, e);
    }
    return j;
}

int cmd_sweep(cli_options *o)
{
    if (!o->model)
        return cli_failf("sweep needs --model SPEC (a .cnn file)");
    dn_net *spec = NULL;
    dn_error recipe_err = {0};
    dn_status recipe_st = dn_net_load_spec(o->model, o->seed, &spec, &recipe_err);
    if (recipe_st == DN_OK) /* the spec's recipe, under the command line's flags */
        recipe_st = cli_apply_recipe(o, spec, &recipe_err);
    dn_net_free(spec);
    if (recipe_st != DN_OK)
        return cli_fail(&recipe_err);
    double lrs[MAX_VALUES], batches[MAX_VALUES];
    int n_lr = 1, n_batch = 1;
    lrs[0] = o->lr != 0 ? o->lr : o->optimizer && !strcmp(o->optimizer, "sgd") ? 0.01 : 0.001;
    batches[0] = o->batch;
    if (o->sweep_lr && (n_lr = parse_list("--lr", o->sweep_lr, 1e-12, 1e6, 0, lrs)) < 0)
        return EXIT_USAGE;
    if (o->sweep_batch && (n_batch = parse_list("--batch", o->sweep_batch, 1, 65536, 1, batches)) < 0)
        return EXIT_USAGE;
    /* Settings are ranked on validation rows, never on the test rows they are then reported on. */
    if (o->val_split == 0)
        o->val_split = 0.1;
    dn_error err = {0};
    cli_data data;
    if (cli_load_data(o, &data, &err) != DN_OK)
        return cli_fail(&err);
    const int n = n_lr * n_batch;
    setting *s = calloc((size_t)n, sizeof *s);
    size_t *at = malloc(sizeof(size_t) * ((size_t)cli_dist_size() + 1));
    if (!s || !at) {
        free(s);
        free(at);
        cli_data_free(&data);
        return cli_failf("out of memory for %d settings", n);
    }
    FILE *text = o->json ? stderr : stdout;
    int first, end; /* the settings this rank trains */
    cli_dist_range(n, cli_dist_rank(), &first, &end);
    dn_status st = DN_OK;
    if (!o->quiet) /* the settings every run shares; lr and batch are the grid's */
        cli_print_recipe(text, o);
    for (int i = 0; i < n; i++) {
        s[i].lr = lrs[i / n_batch];
        s[i].batch = batches[i % n_batch];
        s[i].index = i;
        if (st != DN_OK || i < first || i >= end)
            continue;
        if (!o->quiet)
            fprintf(text, "Setting %d/%d: lr %g, batch %d\n", i + 1, n, s[i].lr, (int)s[i].batch);
        st = train_setting(o, &data, &s[i], text, &err);
    }
    if (st == DN_OK) {
        for (int r = 0; r <= cli_dist_size(); r++) {
            int f0, f1;
            cli_dist_range(n, r < cli_dist_size() ? r : r - 1, &f0, &f1);
            at[r] = (size_t)(r < cli_dist_size() ? f0 : f1) * sizeof *s;
        }
        if (cli_dist_share(s, at) != 0) {
            st = DN_EIO;
            snprintf(err.msg, sizeof err.msg, "exchanging the settings' results between the ranks failed");
        }
    }
    int status = 1;
    if (st == DN_OK) {
        qsort(s, (size_t)n, sizeof *s, better);
        if (o->json) {
            cli_print_json(table_json(s, n, o));
        } else {
            printf("%s%d settings, %d epochs each, validating on %d images (--val-split %g); best first:\n",
                   o->quiet ? "" : "\n", n, o->epochs, data.val.n, o->val_split);
            print_table(s, n, data.test.n > 0);
        }
        status = 0;
    } else
        cli_fail(&err);
    free(s);
    free(at);
    cli_data_free(&data);
    return status;
}

/* Dividing data sets: the test and validation splits of a run (and the notes that let evaluation
 * rebuild them), k-fold cross-validation, and the k most probable classes of a prediction. */
#include "internal.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Holds out ceil(fraction * n) random rows of pool as *test_out; the rest go to *train_out. */
static dn_status hold_out(const dn_dataset *pool, double fraction, uint64_t seed, dn_dataset *train_out,
                          dn_dataset *test_out, dn_error *err)
{
    const int n_test = (int)ceil(fraction * pool->n);
    if (n_test < 1 || n_test >= pool->n)
        return dn_fail(err, DN_EARG, "a test split of %g leaves no training or no test rows (%d rows in all)", fraction,
                       pool->n);
    int *perm = malloc(sizeof(int) * (size_t)pool->n);
    if (!perm)
        return dn_fail(err, DN_ENOMEM, "out of memory splitting %d rows", pool->n);
    dn_permutation(seed, pool->n, perm);
    dn_status st = dn_dataset_take(pool, perm, n_test, test_out, err);
    if (st == DN_OK)
        st = dn_dataset_take(pool, perm + n_test, pool->n - n_test, train_out, err);
    free(perm);
    return st;
}

dn_status dn_split_apply(const dn_split *split, const dn_dataset *train, const dn_dataset *test,
                         dn_dataset *train_out, dn_dataset *val_out, dn_dataset *test_out, int *held_out,
                         dn_error *err)
{
    if (!split || !train || !train_out || !val_out || !test_out)
        return dn_fail(err, DN_EARG, "dn_split_apply: NULL argument");
    memset(train_out, 0, sizeof *train_out);
    memset(val_out, 0, sizeof *val_out);
    memset(test_out, 0, sizeof *test_out);
    if (!(split->test_split >= 0.0 && split->test_split < 1.0))
        return dn_fail(err, DN_EARG, "test split %g: expected a fraction in [0, 1)", split->test_split);
    if (!(split->val_split >= 0.0 && split->val_split < 1.0))
        return dn_fail(err, DN_EARG, "validation split %g: expected a fraction in [0, 1)", split->val_split);
    const int own_test = test && test->n > 0;
    const double fraction = split->test_split > 0.0 ? split->test_split : (own_test ? 0.0 : DN_DEFAULT_TEST_SPLIT);
    dn_status st;
    dn_dataset rest = {0};
    if (fraction > 0.0) {
        /* Pool every row and hold out a seeded random fraction, as train_test_split does. */
        dn_dataset pool = {0};
        st = own_test ? dn_dataset_concat(train, test, &pool, err) : dn_dataset_slice(train, 0, train->n, &pool, err);
        if (st == DN_OK)
            st = hold_out(&pool, fraction, split->seed, &rest, test_out, err);
        dn_dataset_free(&pool);
    } else {
        st = dn_dataset_slice(train, 0, train->n, &rest, err);
        if (st == DN_OK)
            st = dn_dataset_slice(test, 0, test->n, test_out, err);
    }
    if (st == DN_OK && split->val_split > 0.0) {
        /* Keras: split_at = floor(n * (1 - f)); the rows from split_at on validate. */
        const int n_val = rest.n - (int)floor(rest.n * (1.0 - split->val_split));
        if (n_val < 1 || n_val >= rest.n)
            st = dn_fail(err, DN_EARG, "a validation split of %g leaves no training or no validation rows (%d rows)",
                         split->val_split, rest.n);
        if (st == DN_OK)
            st = dn_dataset_slice(&rest, rest.n - n_val, n_val, val_out, err);
        if (st == DN_OK)
            st = dn_dataset_slice(&rest, 0, rest.n - n_val, train_out, err);
        dn_dataset_free(&rest);
    } else if (st == DN_OK) {
        *train_out = rest;
    } else {
        dn_dataset_free(&rest);
    }
    if (st != DN_OK) {
        dn_dataset_free(train_out);
        dn_dataset_free(val_out);
        dn_dataset_free(test_out);
        return st;
    }
    if (held_out)
        *held_out = fraction > 0.0;
    return DN_OK;
}

dn_status dn_net_note_split(dn_net *net, const char *data_name, const dn_split *split, dn_error *err)
{
    if (!net || !split)
        return dn_fail(err, DN_EARG, "dn_net_note_split: NULL argument");
    char test_split[32], seed[32], val_split[32];
    snprintf(test_split, sizeof test_split, "%.17g", split->test_split);
    snprintf(seed, sizeof seed, "%" PRIu64, split->seed);
    snprintf(val_split, sizeof val_split, "%.17g", split->val_split);
    dn_status st = data_name ? dn_net_set_note(net, "data", data_name, err) : DN_OK;
    if (st == DN_OK && split->test_split > 0.0)
        st = dn_net_set_note(net, "test_split", test_split, err);
    if (st == DN_OK)
        st = dn_net_set_note(net, "split_seed", seed, err);
    if (st == DN_OK)
        st = dn_net_set_note(net, "val_split", val_split, err);
    return st;
}

int dn_net_noted_split(const dn_net *net, const char **data_name, dn_split *split)
{
    int found = 0;
    const char *v;
    if (!net)
        return 0;
    if ((v = dn_net_note(net, "data"))) {
        found |= DN_NOTED_DATA;
        if (data_name)
            *data_name = v;
    }
    if ((v = dn_net_note(net, "test_split"))) {
        found |= DN_NOTED_TEST_SPLIT;
        if (split)
            split->test_split = strtod(v, NULL);
    }
    if ((v = dn_net_note(net, "split_seed"))) {
        found |= DN_NOTED_SEED;
        if (split)
            split->seed = strtoull(v, NULL, 10);
    }
    if ((v = dn_net_note(net, "val_split"))) {
        found |= DN_NOTED_VAL_SPLIT;
        if (split)
            split->val_split = strtod(v, NULL);
    }
    return found;
}

dn_status dn_kfold_split(const dn_dataset *data, int k, int fold, uint64_t seed, dn_dataset *train_out,
                         dn_dataset *test_out, dn_error *err)
{
    if (!data || !train_out || !test_out)
        return dn_fail(err, DN_EARG, "dn_kfold_split: NULL argument");
    memset(train_out, 0, sizeof *train_out);
    memset(test_out, 0, sizeof *test_out);
    if (k < 2 || k > data->n || fold < 0 || fold >= k)
        return dn_fail(err, DN_EARG, "fold %d of %d: needs 2 <= folds <= rows (%d) and 0 <= fold < folds", fold, k,
                       data->n);
    const int n = data->n;
    int *perm = malloc(sizeof(int) * (size_t)n), *rest = malloc(sizeof(int) * (size_t)n);
    if (!perm || !rest) {
        free(perm);
        free(rest);
        return dn_fail(err, DN_ENOMEM, "out of memory for %d folds of %d rows", k, n);
    }
    dn_permutation(seed, n, perm);
    /* Fold sizes differ by at most one row, the first n % k folds taking the extra one. */
    int offset = 0;
    for (int f = 0; f < fold; f++)
        offset += n / k + (f < n % k);
    const int size = n / k + (fold < n % k);
    memcpy(rest, perm, sizeof(int) * (size_t)offset);
    memcpy(rest + offset, perm + offset + size, sizeof(int) * (size_t)(n - offset - size));
    dn_status st = dn_dataset_take(data, perm + offset, size, test_out, err);
    if (st == DN_OK)
        st = dn_dataset_take(data, rest, n - size, train_out, err);
    if (st != DN_OK) {
        dn_dataset_free(train_out);
        dn_dataset_free(test_out);
    }
    free(perm);
    free(rest);
    return st;
}

dn_status dn_cross_validate(const char *spec_text, const dn_dataset *data, int k, const dn_train_params *params,
                            dn_fold_fn on_fold, void *user, double *fold_loss, double *fold_accuracy, float *probs,
                            uint8_t *labels, dn_error *err)
{
    return dn_cross_validate_folds(spec_text, data, k, 0, k, params, on_fold, user, fold_loss, fold_accuracy, probs,
                                   labels, err);
}

dn_status dn_cross_validate_folds(const char *spec_text, const dn_dataset *data, int k, int first_fold, int end_fold,
                                  const dn_train_params *params, dn_fold_fn on_fold, void *user, double *fold_loss,
                                  double *fold_accuracy, float *probs, uint8_t *labels, dn_error *err)
{
    if (!spec_text || !data || !params || !fold_loss || !fold_accuracy)
        return dn_fail(err, DN_EARG, "dn_cross_validate: NULL argument");
    dn_status st = DN_OK;
    int offset = 0;
    for (int fold = 0; st == DN_OK && fold < k; fold++) {
        if (fold < first_fold || fold >= end_fold) { /* another process's fold: only its rows' place */
            offset += data->n / k + (fold < data->n % k);
            continue;
        }
        dn_dataset train = {0}, test = {0};
        dn_net *net = NULL;
        dn_metrics m;
        dn_train_params run = *params;
        run.seed = params->seed + (uint64_t)fold;
        st = dn_kfold_split(data, k, fold, params->seed, &train, &test, err);
        if (st == DN_OK)
            st = dn_net_parse(spec_text, "spec", run.seed, &net, err);
        if (st == DN_OK && on_fold && on_fold(user, fold, k, train.n, test.n, NULL))
            st = dn_fail(err, DN_ESTOPPED, "cross-validation stopped before fold %d", fold + 1);
        if (st == DN_OK)
            st = dn_train(net, &train, NULL, &run, err);
        if (st == DN_OK)
            st = dn_net_evaluate(net, &test, &m, probs ? probs + (size_t)offset * DN_N_CLASSES : NULL, err);
        if (st == DN_OK) {
            if (labels)
                memcpy(labels + offset, test.labels, (size_t)test.n);
            fold_accuracy[fold] = m.accuracy;
            fold_loss[fold] = m.loss;
            offset += test.n;
            if (on_fold && on_fold(user, fold, k, train.n, test.n, &m))
                st = dn_fail(err, DN_ESTOPPED, "cross-validation stopped after fold %d", fold + 1);
        }
        dn_net_free(net);
        dn_dataset_free(&train);
        dn_dataset_free(&test);
    }
    return st;
}

int dn_top_k(const float *probs, int n_classes, int k, int *classes)
{
    if (!probs || !classes || n_classes < 1 || k < 1)
        return 0;
    if (k > n_classes)
        k = n_classes;
    /* Insertion into a list kept sorted: a class goes after every kept one at least as probable,
     * so ties keep the lower class first. NaN ranks last. */
    int kept = 0;
    for (int c = 0; c < n_classes; c++) {
        const float p = probs[c];
        int at = kept;
        while (at > 0 && (p > probs[classes[at - 1]] || (isnan(probs[classes[at - 1]]) && !isnan(p))))
            at--;
        if (at >= k)
            continue;
        for (int j = (kept < k ? kept : k - 1); j > at; j--)
            classes[j] = classes[j - 1];
        classes[at] = c;
        if (kept < k)
            kept++;
    }
    return kept;
}

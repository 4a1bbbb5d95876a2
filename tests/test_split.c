/*
 * Dividing data: test and validation splits (scikit-learn's train_test_split and Keras's
 * validation_split arithmetic), the notes that let evaluation rebuild a split, k-fold
 * cross-validation, top-k, and telling a saved model from a spec. On real optdigits rows.
 */
#include "testutil.h"

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"
#define OPTDIGITS_TES DN_TEST_DATA "/optdigits/optdigits.tes"

static dn_dataset tra, tes;

static int load(void **state)
{
    (void)state;
    dn_error err = {0};
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK || dn_optdigits_load(OPTDIGITS_TES, &tes, &err) != DN_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    return 0;
}

static int unload(void **state)
{
    (void)state;
    dn_dataset_free(&tra);
    dn_dataset_free(&tes);
    return 0;
}

/* Row r of a equals row s of b (pixels and label). */
static int same_row(const dn_dataset *a, int r, const dn_dataset *b, int s)
{
    const size_t size = (size_t)a->h * a->w * a->c;
    return a->labels[r] == b->labels[s] && memcmp(a->pixels + r * size, b->pixels + s * size, size) == 0;
}

static void test_split_own_test_rows(void **state)
{
    (void)state;
    dn_dataset train, val, test;
    int held = -1;
    dn_split split = {.test_split = 0.0, .seed = 1, .val_split = 0.1};
    assert_int_equal(dn_split_apply(&split, &tra, &tes, &train, &val, &test, &held, NULL), DN_OK);
    assert_int_equal(held, 0);
    assert_int_equal(test.n, tes.n);
    /* Keras: split_at = floor(3823 * 0.9) = 3440; rows 3440.. validate. */
    assert_int_equal(train.n, 3440);
    assert_int_equal(val.n, 383);
    assert_true(same_row(&val, 0, &tra, 3440));
    assert_true(same_row(&train, 3439, &tra, 3439));
    assert_true(same_row(&test, 17, &tes, 17));
    dn_dataset_free(&train), dn_dataset_free(&val), dn_dataset_free(&test);
}

static void test_split_held_out(void **state)
{
    (void)state;
    dn_dataset train, val, test, train2, val2, test2;
    int held = 0;
    dn_split split = {.test_split = 0.25, .seed = 7};
    assert_int_equal(dn_split_apply(&split, &tra, &tes, &train, &val, &test, &held, NULL), DN_OK);
    assert_int_equal(held, 1);
    assert_int_equal(test.n, 1405); /* ceil(0.25 * 5620) */
    assert_int_equal(train.n, 5620 - 1405);
    assert_int_equal(val.n, 0);
    /* The first test row is pooled row perm[0]. */
    int perm[5620];
    dn_permutation(7, 5620, perm);
    const dn_dataset *src = perm[0] < tra.n ? &tra : &tes;
    assert_true(same_row(&test, 0, src, perm[0] < tra.n ? perm[0] : perm[0] - tra.n));
    /* The same seed gives the same rows; another seed others. */
    assert_int_equal(dn_split_apply(&split, &tra, &tes, &train2, &val2, &test2, NULL, NULL), DN_OK);
    assert_memory_equal(test.pixels, test2.pixels, (size_t)test.n * 64);
    dn_dataset_free(&train2), dn_dataset_free(&val2), dn_dataset_free(&test2);
    split.seed = 8;
    assert_int_equal(dn_split_apply(&split, &tra, &tes, &train2, &val2, &test2, NULL, NULL), DN_OK);
    assert_true(memcmp(test.pixels, test2.pixels, (size_t)test.n * 64) != 0);
    dn_dataset_free(&train2), dn_dataset_free(&val2), dn_dataset_free(&test2);

    /* A set without test rows gets DN_DEFAULT_TEST_SPLIT held out. */
    dn_dataset none = {.n = 0, .h = 8, .w = 8, .c = 1, .raw_max = 16};
    split.test_split = 0.0;
    assert_int_equal(dn_split_apply(&split, &tra, &none, &train2, &val2, &test2, &held, NULL), DN_OK);
    assert_int_equal(held, 1);
    assert_int_equal(test2.n, 765); /* ceil(0.2 * 3823) */
    dn_dataset_free(&train2), dn_dataset_free(&val2), dn_dataset_free(&test2);
    dn_dataset_free(&train), dn_dataset_free(&val), dn_dataset_free(&test);
}

static void test_split_errors(void **state)
{
    (void)state;
    dn_dataset train, val, test;
    dn_error err = {0};
    dn_split split = {.test_split = 1.5};
    assert_int_equal(dn_split_apply(&split, &tra, &tes, &train, &val, &test, NULL, &err), DN_EARG);
    assert_string_equal(err.msg, "test split 1.5: expected a fraction in [0, 1)");
    dn_dataset two = {0};
    assert_int_equal(dn_dataset_slice(&tra, 0, 1, &two, NULL), DN_OK);
    split = (dn_split){.val_split = 0.1};
    assert_int_equal(dn_split_apply(&split, &two, &tes, &train, &val, &test, NULL, &err), DN_EARG);
    assert_string_equal(err.msg, "a validation split of 0.1 leaves no training or no validation rows (1 rows)");
    assert_int_equal(train.n + val.n + test.n, 0);
    assert_null(strstr(err.msg, "--"));
    dn_dataset_free(&two);
}

static void test_split_notes(void **state)
{
    (void)state;
    dn_net *net = NULL;
    assert_int_equal(dn_net_load_spec("models/optdigits.cnn", 1, &net, NULL), DN_OK);
    dn_split split = {.test_split = 0.3, .seed = 12345678901234ull, .val_split = 0.125}, back = {0};
    const char *data = NULL;
    assert_int_equal(dn_net_noted_split(net, &data, &back), 0);
    assert_int_equal(dn_net_note_split(net, "mnist-10k", &split, NULL), DN_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/split.safetensors", dn_test_dir());
    assert_int_equal(dn_model_save(net, path, NULL), DN_OK);
    dn_net *loaded = NULL;
    assert_int_equal(dn_model_load(path, &loaded, NULL), DN_OK);
    assert_int_equal(dn_net_noted_split(loaded, &data, &back),
                     DN_NOTED_DATA | DN_NOTED_TEST_SPLIT | DN_NOTED_SEED | DN_NOTED_VAL_SPLIT);
    assert_string_equal(data, "mnist-10k");
    assert_true(back.test_split == split.test_split && back.seed == split.seed && back.val_split == split.val_split);
    /* The data set's own test rows: no test_split note, so evaluation uses the test files too. */
    dn_net *own = NULL;
    assert_int_equal(dn_net_load_spec("models/optdigits.cnn", 1, &own, NULL), DN_OK);
    split.test_split = 0.0;
    assert_int_equal(dn_net_note_split(own, NULL, &split, NULL), DN_OK);
    assert_int_equal(dn_net_noted_split(own, &data, &back), DN_NOTED_SEED | DN_NOTED_VAL_SPLIT);
    dn_net_free(own);
    dn_net_free(loaded);
    dn_net_free(net);
    unlink(path);
}

static void test_kfold(void **state)
{
    (void)state;
    dn_dataset part;
    assert_int_equal(dn_dataset_slice(&tra, 0, 103, &part, NULL), DN_OK);
    int perm[103], seen[103] = {0}, offset = 0;
    dn_permutation(5, 103, perm);
    for (int fold = 0; fold < 4; fold++) {
        dn_dataset train, test;
        assert_int_equal(dn_kfold_split(&part, 4, fold, 5, &train, &test, NULL), DN_OK);
        assert_int_equal(test.n, fold < 3 ? 26 : 25); /* 103 = 26 + 26 + 26 + 25 */
        assert_int_equal(train.n + test.n, 103);
        for (int i = 0; i < test.n; i++) {
            assert_true(same_row(&test, i, &part, perm[offset + i]));
            seen[perm[offset + i]]++;
        }
        /* The training rows are the other folds, in permutation order. */
        assert_true(same_row(&train, 0, &part, perm[fold == 0 ? 26 : 0]));
        offset += test.n;
        dn_dataset_free(&train), dn_dataset_free(&test);
    }
    for (int r = 0; r < 103; r++)
        assert_int_equal(seen[r], 1);
    dn_dataset train, test;
    dn_error err = {0};
    assert_int_equal(dn_kfold_split(&part, 1, 0, 5, &train, &test, &err), DN_EARG);
    assert_int_equal(dn_kfold_split(&part, 4, 4, 5, &train, &test, &err), DN_EARG);
    assert_string_equal(err.msg, "fold 4 of 4: needs 2 <= folds <= rows (103) and 0 <= fold < folds");
    dn_dataset_free(&part);
}

typedef struct fold_log {
    int before, after, stop_after;
    double accuracy[4];
} fold_log;

static int log_fold(void *user, int fold, int k, int n_train, int n_test, const dn_metrics *m)
{
    fold_log *log = user;
    assert_int_equal(k, 3);
    assert_int_equal(n_train + n_test, 300);
    if (m) {
        log->accuracy[fold] = m->accuracy;
        log->after++;
    } else {
        log->before++;
    }
    return log->stop_after && log->after == log->stop_after;
}

static void test_cross_validate(void **state)
{
    (void)state;
    static const char spec[] = "input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\nflatten\ndense 10 softmax\n";
    dn_dataset part;
    assert_int_equal(dn_dataset_slice(&tra, 0, 300, &part, NULL), DN_OK);
    dn_train_params p = dn_train_default_params();
    p.epochs = 2;
    p.seed = 9;
    double loss[3], acc[3];
    float probs[300 * DN_N_CLASSES];
    uint8_t labels[300];
    fold_log log = {0};
    assert_int_equal(dn_cross_validate(spec, &part, 3, &p, log_fold, &log, loss, acc, probs, labels, NULL), DN_OK);
    assert_int_equal(log.before, 3);
    assert_int_equal(log.after, 3);
    /* Fold 2 by hand: the same split, net and training give the same numbers. */
    dn_dataset train, test;
    assert_int_equal(dn_kfold_split(&part, 3, 2, 9, &train, &test, NULL), DN_OK);
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(spec, "fold", 11, &net, NULL), DN_OK);
    p.seed = 11;
    assert_int_equal(dn_train(net, &train, NULL, &p, NULL), DN_OK);
    dn_metrics m;
    float fold_probs[100 * DN_N_CLASSES];
    assert_int_equal(dn_net_evaluate(net, &test, &m, fold_probs, NULL), DN_OK);
    assert_true(m.accuracy == acc[2] && m.loss == loss[2] && log.accuracy[2] == acc[2]);
    assert_memory_equal(fold_probs, probs + 200 * DN_N_CLASSES, sizeof fold_probs);
    assert_memory_equal(test.labels, labels + 200, 100);
    dn_net_free(net);
    dn_dataset_free(&train), dn_dataset_free(&test);

    /* A range of the folds (one process's share under mpirun): those folds' numbers and rows, in
     * their places, the others' entries untouched. */
    double part_loss[3] = {-1, -1, -1}, part_acc[3] = {-1, -1, -1};
    float part_probs[300 * DN_N_CLASSES];
    uint8_t part_labels[300];
    memset(part_probs, 0, sizeof part_probs);
    memset(part_labels, 0xff, sizeof part_labels);
    p.seed = 9;
    assert_int_equal(dn_cross_validate_folds(spec, &part, 3, 1, 3, &p, NULL, NULL, part_loss, part_acc, part_probs,
                                             part_labels, NULL),
                     DN_OK);
    assert_true(part_loss[0] == -1 && part_acc[0] == -1);
    assert_true(part_loss[1] == loss[1] && part_acc[1] == acc[1] && part_loss[2] == loss[2] && part_acc[2] == acc[2]);
    assert_memory_equal(part_probs + 100 * DN_N_CLASSES, probs + 100 * DN_N_CLASSES, sizeof(float) * 200 * DN_N_CLASSES);
    assert_memory_equal(part_labels + 100, labels + 100, 200);
    assert_int_equal(part_labels[99], 0xff);

    /* The callback can stop it. */
    fold_log stop = {.stop_after = 1};
    dn_error err = {0};
    p.seed = 9;
    assert_int_equal(dn_cross_validate(spec, &part, 3, &p, log_fold, &stop, loss, acc, NULL, NULL, &err),
                     DN_ESTOPPED);
    assert_int_equal(stop.after, 1);
    assert_string_equal(err.msg, "cross-validation stopped after fold 1");
    dn_dataset_free(&part);
}

static void test_top_k(void **state)
{
    (void)state;
    const float p[6] = {0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f};
    int c[6] = {-1, -1, -1, -1, -1, -1};
    assert_int_equal(dn_top_k(p, 6, 3, c), 3);
    assert_int_equal(c[0], 1); /* ties: the lower class first */
    assert_int_equal(c[1], 3);
    assert_int_equal(c[2], 4);
    assert_int_equal(c[3], -1); /* nothing past k */
    assert_int_equal(dn_top_k(p, 6, 99, c), 6);
    const int all[6] = {1, 3, 4, 0, 2, 5};
    assert_memory_equal(c, all, sizeof all);
    const float with_nan[3] = {NAN, 0.2f, 0.7f};
    assert_int_equal(dn_top_k(with_nan, 3, 3, c), 3);
    assert_int_equal(c[0], 2);
    assert_int_equal(c[1], 1);
    assert_int_equal(c[2], 0);
    assert_int_equal(dn_top_k(p, 6, 0, c), 0);
}

static void test_model_is_saved(void **state)
{
    (void)state;
    int saved = -1;
    dn_error err = {0};
    assert_int_equal(dn_model_is_saved("models/optdigits.cnn", &saved, NULL), DN_OK);
    assert_int_equal(saved, 0);
    dn_net *net = NULL;
    assert_int_equal(dn_model_open("models/optdigits.cnn", 3, &net, &saved, NULL), DN_OK);
    char path[512];
    snprintf(path, sizeof path, "%s/open.safetensors", dn_test_dir());
    assert_int_equal(dn_model_save(net, path, NULL), DN_OK);
    dn_net_free(net);
    assert_int_equal(dn_model_is_saved(path, &saved, NULL), DN_OK);
    assert_int_equal(saved, 1);
    assert_int_equal(dn_model_open(path, 0, &net, &saved, NULL), DN_OK);
    assert_int_equal(saved, 1);
    assert_int_equal(dn_net_seed(net), 3);
    dn_net_free(net);
    /* A tiny text file is a spec (and a bad one). */
    const char *tiny = dn_test_write_file("tiny.cnn", "{", 1);
    assert_int_equal(dn_model_is_saved(tiny, &saved, NULL), DN_OK);
    assert_int_equal(saved, 0);
    assert_int_equal(dn_model_is_saved("/nonexistent/model", &saved, &err), DN_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/model: cannot open"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_own_test_rows),
        cmocka_unit_test(test_split_held_out),
        cmocka_unit_test(test_split_errors),
        cmocka_unit_test(test_split_notes),
        cmocka_unit_test(test_kfold),
        cmocka_unit_test(test_cross_validate),
        cmocka_unit_test(test_top_k),
        cmocka_unit_test(test_model_is_saved),
    };
    return cmocka_run_group_tests(tests, load, unload);
}

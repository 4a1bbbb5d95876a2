/*
 * No allocation inside the training loop or the inference loop: every buffer a step needs (the
 * batch arena, gradient blocks, optimizer moments) is allocated before the first batch. This
 * binary is linked with --wrap=malloc/calloc/realloc, so every allocation made by the statically
 * linked library goes through the counters below; a run of three epochs must allocate exactly as
 * often as a run of one (about 30 steps each on 1,000 real optdigits rows), and predicting 2,000
 * images in a workspace that has grown allocates nothing, as predicting 100. Runs on two threads, so
 * the threaded paths are covered.
 */
#include "testutil.h"
#include "net.h"

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"

static size_t allocations;

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);

void *__wrap_malloc(size_t size)
{
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    __atomic_fetch_add(&allocations, 1, __ATOMIC_RELAXED);
    return __real_realloc(p, size);
}

static int with_recipe; /* train with a schedule, warm-up, AdamW, label smoothing, mixup and early stopping */

/* Allocations made by one dn_train call of `epochs` epochs (with a validation set). */
static size_t allocations_of_training(dn_net *net, const dn_dataset *train, const dn_dataset *val, int epochs)
{
    dn_train_params p = dn_train_default_params();
    p.epochs = epochs;
    p.batch_size = 32;
    if (with_recipe) {
        p.schedule = DN_SCHEDULE_ONECYCLE;
        p.warmup = 0.5f;
        p.weight_decay = 0.01f;
        p.label_smoothing = 0.1f;
        p.augment.mixup = 0.2f;
        p.patience = 100;
    }
    dn_error err = {0};
    size_t before = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    if (dn_train(net, train, val, &p, &err) != DN_OK)
        fail_msg("%s", err.msg);
    return __atomic_load_n(&allocations, __ATOMIC_RELAXED) - before;
}

static size_t allocations_of_predict(const dn_net *net, dn_workspace *ws, const float *images, int n, float *probs)
{
    size_t before = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
    assert_int_equal(dn_net_predict_ws(net, ws, images, n, probs, NULL), DN_OK);
    return __atomic_load_n(&allocations, __ATOMIC_RELAXED) - before;
}

static void test_no_allocation_per_step(void **state)
{
    (void)state;
    dn_set_threads(2);
    dn_dataset tra = {0}, train = {0}, val = {0};
    dn_error err = {0};
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(dn_dataset_slice(&tra, 0, 1000, &train, NULL), DN_OK);
    assert_int_equal(dn_dataset_slice(&tra, 1000, 200, &val, NULL), DN_OK);
    dn_net *net = NULL;
    if (dn_net_load_spec("models/optdigits.cnn", 1, &net, &err) != DN_OK)
        fail_msg("%s", err.msg);

    size_t first = allocations_of_training(net, &train, &val, 1); /* the arena, moments, order */
    size_t one = allocations_of_training(net, &train, &val, 1);
    size_t three = allocations_of_training(net, &train, &val, 3);
    print_message("allocations: first call %zu, then %zu for 1 epoch and %zu for 3\n", first, one, three);
    assert_true(first > one); /* the counters do see the library's allocations */
    assert_int_equal(one, three);
    with_recipe = 1; /* the recipe's scratch (mixup, the best weights) is allocated before the loop too */
    allocations_of_training(net, &train, &val, 1); /* the best weights' buffer: the net keeps it from now on */
    one = allocations_of_training(net, &train, &val, 1);
    three = allocations_of_training(net, &train, &val, 3);
    print_message("with a recipe: %zu for 1 epoch and %zu for 3\n", one, three);
    assert_int_equal(one, three);
    with_recipe = 0;

    float *images = NULL, probs[2000 * DN_N_CLASSES];
    assert_int_equal(dn_dataset_floats(&tra, 0, 2000, &images, NULL), DN_OK);
    dn_workspace *ws = NULL;
    assert_int_equal(dn_workspace_init(net, &ws, NULL), DN_OK);
    size_t growing = allocations_of_predict(net, ws, images, 2000, probs); /* grows the workspace once */
    size_t few = allocations_of_predict(net, ws, images, 100, probs);
    size_t many = allocations_of_predict(net, ws, images, 2000, probs);
    assert_true(growing > 0);
    assert_int_equal(few, many);
    assert_int_equal(many, 0);
    dn_workspace_free(ws);

    free(images);
    dn_net_free(net);
    dn_dataset_free(&train);
    dn_dataset_free(&val);
    dn_dataset_free(&tra);
}

/* With augmentation on (every transform): its scratch is allocated with the batch, before the
 * first epoch, so three epochs allocate what one does. */
static void test_no_allocation_per_step_augmented(void **state)
{
    (void)state;
    dn_set_threads(2);
    dn_dataset tra = {0}, train = {0};
    dn_error err = {0};
    if (dn_optdigits_load(OPTDIGITS_TRA, &tra, &err) != DN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(dn_dataset_slice(&tra, 0, 500, &train, NULL), DN_OK);
    dn_net *net = NULL;
    if (dn_net_load_spec("models/optdigits.cnn", 1, &net, &err) != DN_OK)
        fail_msg("%s", err.msg);
    size_t counts[2];
    for (int i = 0; i < 2; i++) {
        dn_train_params p = dn_train_default_params();
        p.epochs = i ? 3 : 1;
        p.batch_size = 32;
        p.augment = (dn_augment){.shift = 1, .rotate = 10, .scale = 0.1f, .shear = 5, .elastic = 8, .noise = 0.05f};
        if (i == 0 && dn_train(net, &train, NULL, &p, &err) != DN_OK) /* the arena, moments, order */
            fail_msg("%s", err.msg);
        size_t before = __atomic_load_n(&allocations, __ATOMIC_RELAXED);
        if (dn_train(net, &train, NULL, &p, &err) != DN_OK)
            fail_msg("%s", err.msg);
        counts[i] = __atomic_load_n(&allocations, __ATOMIC_RELAXED) - before;
    }
    print_message("allocations with augmentation: %zu for 1 epoch and %zu for 3\n", counts[0], counts[1]);
    assert_int_equal(counts[0], counts[1]);
    dn_net_free(net);
    dn_dataset_free(&train);
    dn_dataset_free(&tra);
    dn_set_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_allocation_per_step),
        cmocka_unit_test(test_no_allocation_per_step_augmented),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

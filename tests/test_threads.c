/*
 * Reentrant inference: several threads predict with the same loaded network at once, each with its
 * own workspace (dn_net_predict_ws) or none (dn_net_predict), and every probability must be the
 * bit-for-bit value one thread computed alone for the same call. The networks cover the direct
 * convolution (its single-image whole-map pass included), the strided im2col convolution,
 * batchnorm and dropout in inference, and max pooling. The net object and its weights must not
 * change by a single byte. `make tsan-test` runs this suite under ThreadSanitizer.
 */
#include "testutil.h"
#include "net.h"

#include <pthread.h>

enum { THREADS = 4, ROUNDS = 3, N_IMAGES = 80 };

/* The calls every thread makes: (first image, count). 1: the single-image pass; 45: a whole chunk
 * of 32 and a partial one. */
static const int CALLS[][2] = {{0, 1}, {3, 45}, {10, 7}, {79, 1}, {20, 32}, {0, 80}};
enum { N_CALLS = sizeof CALLS / sizeof CALLS[0] };

static const char *const SPECS[] = {
    "input 12x12x1\nconv2d 8 3x3 same relu\nmaxpool 2x2\nconv2d 12 3x3 valid relu\nflatten\n"
    "dropout 0.3\ndense 10 softmax\n",
    "input 13x13x2\nconv2d 10 3x3 same stride=2 relu\nbatchnorm\nconv2d 6 2x2 valid stride=3 relu\n"
    "flatten\ndense 16 tanh\ndense 10 softmax\n",
};
enum { N_SPECS = sizeof SPECS / sizeof SPECS[0] };

typedef struct job {
    const dn_net *net;
    const float *images;
    size_t in_size;
    const float *expected[N_CALLS]; /* (count, DN_N_CLASSES) per call */
    int use_workspace;
    int mismatches;
    dn_status status;
} job;

static void *predict_all(void *arg)
{
    job *j = arg;
    dn_workspace *ws = NULL;
    if (j->use_workspace && (j->status = dn_workspace_init(j->net, &ws, NULL)) != DN_OK)
        return NULL;
    float probs[N_IMAGES * DN_N_CLASSES];
    for (int round = 0; round < ROUNDS; round++)
        for (int c = 0; c < N_CALLS; c++) {
            const float *x = j->images + (size_t)CALLS[c][0] * j->in_size;
            dn_status st = ws ? dn_net_predict_ws(j->net, ws, x, CALLS[c][1], probs, NULL)
                              : dn_net_predict(j->net, x, CALLS[c][1], probs, NULL);
            if (st != DN_OK)
                j->status = st;
            else if (memcmp(probs, j->expected[c], sizeof(float) * DN_N_CLASSES * (size_t)CALLS[c][1]) != 0)
                j->mismatches++;
        }
    dn_workspace_free(ws);
    return NULL;
}

static void check_spec(const char *spec, int use_workspace)
{
    dn_net *net = NULL;
    dn_error err = {0};
    if (dn_net_parse(spec, "threads", 5, &net, &err) != DN_OK)
        fail_msg("%s", err.msg);
    /* Non-zero batchnorm statistics, so that inference reads them. */
    for (size_t i = 0; i < net->n_buffers; i++)
        net->buffers[i] = 0.25f + 0.01f * (float)(i % 7);
    const size_t in_size = dn_shape_size(net->input);
    float *images = malloc(sizeof(float) * in_size * N_IMAGES);
    assert_non_null(images);
    for (size_t i = 0; i < in_size * N_IMAGES; i++)
        images[i] = (float)((i * 2654435761u) % 1000) / 1000.0f;

    /* What one thread computes alone, call by call. */
    job j = {.net = net, .images = images, .in_size = in_size, .use_workspace = use_workspace};
    float *expected[N_CALLS];
    for (int c = 0; c < N_CALLS; c++) {
        expected[c] = malloc(sizeof(float) * DN_N_CLASSES * (size_t)CALLS[c][1]);
        assert_non_null(expected[c]);
        assert_int_equal(dn_net_predict(net, images + (size_t)CALLS[c][0] * in_size, CALLS[c][1], expected[c], NULL),
                         DN_OK);
        j.expected[c] = expected[c];
    }
    /* The net as it was: struct and weights, byte for byte. */
    dn_net before = *net;
    float *params = malloc(sizeof(float) * (net->n_params + net->n_buffers));
    assert_non_null(params);
    memcpy(params, net->params, sizeof(float) * net->n_params);
    memcpy(params + net->n_params, net->buffers, sizeof(float) * net->n_buffers);

    pthread_t threads[THREADS];
    job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = j;
        assert_int_equal(pthread_create(&threads[t], NULL, predict_all, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        assert_int_equal(pthread_join(threads[t], NULL), 0);
        assert_int_equal(jobs[t].status, DN_OK);
        if (jobs[t].mismatches)
            fail_msg("thread %d: %d of %d predictions differ from one thread's", t, jobs[t].mismatches,
                     ROUNDS * N_CALLS);
    }
    assert_memory_equal(&before, net, sizeof before);
    assert_memory_equal(params, net->params, sizeof(float) * net->n_params);
    assert_memory_equal(params + net->n_params, net->buffers, sizeof(float) * net->n_buffers);
    free(params);
    for (int c = 0; c < N_CALLS; c++)
        free(expected[c]);
    free(images);
    dn_net_free(net);
}

static void test_threads_with_workspaces(void **state)
{
    (void)state;
    for (int s = 0; s < N_SPECS; s++)
        check_spec(SPECS[s], 1);
}

static void test_threads_without_workspaces(void **state)
{
    (void)state;
    for (int s = 0; s < N_SPECS; s++)
        check_spec(SPECS[s], 0);
}

/* A workspace belongs to one network; its layer outputs are those of its own last call. */
static void test_workspace_contract(void **state)
{
    (void)state;
    dn_net *a = NULL, *b = NULL;
    assert_int_equal(dn_net_parse(SPECS[0], "a", 1, &a, NULL), DN_OK);
    assert_int_equal(dn_net_parse(SPECS[0], "b", 2, &b, NULL), DN_OK);
    dn_workspace *ws = NULL;
    dn_error err = {0};
    assert_int_equal(dn_workspace_init(a, &ws, NULL), DN_OK);
    float x[12 * 12] = {0}, probs[DN_N_CLASSES];
    assert_null(dn_workspace_layer_output(ws, 0, NULL)); /* nothing predicted yet */
    assert_int_equal(dn_net_predict_ws(b, ws, x, 1, probs, &err), DN_EARG);
    assert_string_equal(err.msg, "dn_net_predict_ws: the workspace was made for another network");
    assert_int_equal(dn_net_predict_ws(a, ws, x, 1, probs, NULL), DN_OK);
    dn_shape shape;
    assert_non_null(dn_workspace_layer_output(ws, 0, &shape));
    assert_int_equal(shape.c, 8);
    assert_null(dn_workspace_layer_output(ws, 6, &shape));
    dn_workspace_free(ws);
    dn_workspace_free(NULL);
    dn_net_free(a);
    dn_net_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_with_workspaces),
        cmocka_unit_test(test_threads_without_workspaces),
        cmocka_unit_test(test_workspace_contract),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* digitnet against PyTorch: a small network (conv same + relu, max-pool, conv valid + tanh, flatten,
 * dense sigmoid, dense softmax) with weights, a batch of real optdigits rows, and PyTorch's
 * probabilities, loss and every parameter gradient, stored by tests/fixtures/torch_reference.py. */
#include "testutil.h"

#include <cJSON.h>
#include <math.h>

#include "net.h"

static cJSON *fixture;

static int load_fixture(void **state)
{
    (void)state;
    FILE *f = fopen("tests/fixtures/torch_reference.json", "rb");
    if (!f)
        return -1;
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    fixture = cJSON_Parse(text);
    return fixture ? 0 : -1;
}

static int free_fixture(void **state)
{
    (void)state;
    cJSON_Delete(fixture);
    return 0;
}

static float *floats(const char *key, int *count)
{
    const cJSON *list = cJSON_GetObjectItem(fixture, key);
    int n = cJSON_GetArraySize(list);
    float *out = malloc(sizeof(float) * (size_t)n);
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, list) out[i++] = (float)v->valuedouble;
    *count = n;
    return out;
}

/* |a - b| <= atol + rtol |b|, over every element; reports the worst one on failure. */
static void assert_all_close(const float *a, const float *b, int n, double rtol, double atol, const char *what)
{
    int worst = -1;
    double worst_excess = 0.0;
    for (int i = 0; i < n; i++) {
        double excess = fabs((double)a[i] - b[i]) - (atol + rtol * fabs((double)b[i]));
        if (excess > worst_excess)
            worst_excess = excess, worst = i;
    }
    if (worst >= 0)
        fail_msg("%s[%d]: digitnet %.9g, PyTorch %.9g", what, worst, (double)a[worst], (double)b[worst]);
}

static void test_matches_pytorch(void **state)
{
    (void)state;
    dn_net *net;
    dn_error err = {0};
    const char *spec = cJSON_GetObjectItem(fixture, "spec")->valuestring;
    assert_int_equal(dn_net_parse(spec, "fixture", 1, &net, &err), DN_OK);
    int n = cJSON_GetObjectItem(fixture, "n")->valueint, n_in, n_params, n_probs, n_grads;
    float *input = floats("input", &n_in), *params = floats("params", &n_params);
    float *probs = floats("probs", &n_probs), *grads = floats("grads", &n_grads);
    assert_int_equal((size_t)n_params, net->n_params);
    assert_int_equal(n_grads, n_params);
    assert_int_equal(n_in, n * 64);
    memcpy(net->params, params, sizeof(float) * (size_t)n_params);

    uint8_t labels[64];
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(fixture, "labels")) labels[i++] = (uint8_t)v->valueint;

    /* Probabilities in inference mode. */
    float out[64 * 10];
    assert_int_equal(dn_net_predict(net, input, n, out, &err), DN_OK);
    assert_all_close(out, probs, n_probs, 1e-4, 1e-6, "probs");

    /* Loss and gradients in training mode (no dropout here, so the same function). */
    assert_int_equal(dn_net_reserve(net, n, &err), DN_OK);
    const float *p = dn_net_forward(net, input, n, 1);
    double loss = 0.0;
    float *dlogits = net->dbuf[0];
    for (int r = 0; r < n; r++) {
        loss -= log(p[r * 10 + labels[r]]);
        for (int c = 0; c < 10; c++)
            dlogits[r * 10 + c] = (p[r * 10 + c] - (c == labels[r])) / (float)n;
    }
    loss /= n;
    assert_true(fabs(loss - cJSON_GetObjectItem(fixture, "loss")->valuedouble) < 1e-5);
    memset(net->grads, 0, sizeof(float) * net->n_params);
    dn_net_backward(net, dlogits, n);
    assert_all_close(net->grads, grads, n_grads, 1e-3, 1e-6, "grads");

    free(input);
    free(params);
    free(probs);
    free(grads);
    dn_net_free(net);
}

int main(void)
{
    dn_set_threads(1);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_matches_pytorch)};
    return cmocka_run_group_tests(tests, load_fixture, free_fixture);
}

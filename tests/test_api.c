/* The library's contract with programs that embed it: dn_version, dn_net_check_input, and no
 * process-wide setting changed behind the caller's back (OpenBLAS's thread count). */
#include "testutil.h"

#include <cblas.h>

static const char SPEC[] = "input 8x8x1\nflatten\ndense 10 softmax\n";

static void test_version(void **state)
{
    (void)state;
    assert_non_null(dn_version());
    assert_string_equal(dn_version(), DN_VERSION);
}

static void test_check_input(void **state)
{
    (void)state;
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(SPEC, "spec", 1, &net, &err), DN_OK);
    assert_int_equal(dn_net_check_input(net, (dn_shape){8, 8, 1}, &err), DN_OK);
    assert_int_equal(dn_net_check_input(net, (dn_shape){28, 28, 1}, &err), DN_ESHAPE);
    assert_string_equal(err.msg, "the model expects 8x8x1 images but the input data is 28x28x1");
    assert_int_equal(dn_net_check_input(net, (dn_shape){8, 8, 3}, NULL), DN_ESHAPE); /* no err: no crash */
    assert_int_equal(dn_net_check_input(NULL, (dn_shape){8, 8, 1}, &err), DN_EARG);
    dn_net_free(net);
}

/* Building, running and loading networks, and dn_set_threads too, leave OpenBLAS's thread count as
 * the program set it: digitnet does not use OpenBLAS (a program that does shares one setting). */
static void test_blas_threads_left_alone(void **state)
{
    (void)state;
    openblas_set_num_threads(2);
    int before = openblas_get_num_threads();
    if (before != 2)
        skip(); /* one core: OpenBLAS caps the count, so a change would not show */
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(SPEC, "spec", 1, &net, &err), DN_OK);
    float images[2 * 64] = {0}, probs[2 * DN_N_CLASSES];
    assert_int_equal(dn_net_predict(net, images, 2, probs, &err), DN_OK);
    const char *path = dn_test_write_file("api.safetensors", "", 0);
    assert_int_equal(dn_model_save(net, path, &err), DN_OK);
    dn_net_free(net);
    net = NULL;
    assert_int_equal(dn_model_load(path, &net, &err), DN_OK);
    dn_net_free(net);
    assert_int_equal(openblas_get_num_threads(), 2);
    dn_set_threads(1);
    assert_int_equal(openblas_get_num_threads(), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_check_input),
        cmocka_unit_test(test_blas_threads_left_alone),
    };
    return dn_test_finish(cmocka_run_group_tests(tests, NULL, NULL));
}

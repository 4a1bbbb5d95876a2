/* Fuzz regressions: every saved input of tests/fuzz/regressions/NAME/ (inputs that once crashed a
 * harness, or broke one of its invariants) and every seed of tests/fuzz/corpus/NAME/ goes through
 * the same harness body as `make fuzz` (tests/fuzz/targets.c), here built by gcc, and under ASan +
 * UBSan by `make asan-test`. A crash, a leak or a broken invariant fails the run.
 *
 * Expectations: a seed is a valid file and must load (DN_OK); a regression input is broken and must
 * be refused with an error, unless its name starts with "ok-" (a valid input that used to crash).
 * The size limits of the loaders (IDX counts, safetensors header length) are checked here too, with
 * the status and the limit named in the message. Run from the project root. */
#include "fuzz/targets.c"

#include "testutil.h"

#include <dirent.h>
#include <errno.h>

typedef dn_status (*fuzz_target)(const uint8_t *data, size_t size);

static const struct {
    const char *name;
    fuzz_target run;
} TARGETS[] = {
    {"idx", dn_fuzz_idx},     {"optdigits", dn_fuzz_optdigits}, {"spec", dn_fuzz_spec},
    {"model", dn_fuzz_model}, {"image", dn_fuzz_image},
    {"onnx", dn_fuzz_onnx},
};
#define N_TARGETS (sizeof TARGETS / sizeof TARGETS[0])

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    uint8_t *data = malloc(cap);
    assert_non_null(data);
    size_t n;
    while ((n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            data = realloc(data, cap);
            assert_non_null(data);
        }
    }
    assert_false(ferror(f));
    fclose(f);
    *size = len;
    return data;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Runs target on every file of dir (in name order); returns how many there were. must_load: 1 for
 * seeds, 0 for regressions. A missing directory holds no files. */
static int run_dir(const char *dir, fuzz_target run, int must_load)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        assert_true(n < 1024);
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], compare_names);
    for (int i = 0; i < n; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        size_t size = 0;
        uint8_t *data = read_all(path, &size);
        dn_status st = run(data, size);
        int want_ok = must_load || strncmp(names[i], "ok-", 3) == 0;
        if (want_ok != (st == DN_OK))
            fail_msg("%s: status %d (%s), expected %s", path, (int)st, dn_status_str(st),
                     want_ok ? "success" : "an error");
        free(data);
        free(names[i]);
    }
    return n;
}

static void test_corpus(void **state)
{
    (void)state;
    for (size_t t = 0; t < N_TARGETS; t++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", TARGETS[t].name);
        int n = run_dir(dir, TARGETS[t].run, 1);
        if (n == 0)
            fail_msg("%s: no seeds", dir);
    }
}

static void test_regressions(void **state)
{
    (void)state;
    int total = 0;
    for (size_t t = 0; t < N_TARGETS; t++) {
        char dir[256];
        snprintf(dir, sizeof dir, "tests/fuzz/regressions/%s", TARGETS[t].name);
        total += run_dir(dir, TARGETS[t].run, 0);
    }
    /* Run from the wrong directory, or with the inputs lost, the loop above checks nothing. */
    if (total < 8)
        fail_msg("only %d regression inputs under tests/fuzz/regressions/ (8 are kept)", total);
}

/* ------------------------------------------------------------------ limits */

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* An idx target input: labels file claiming n_labels, images file claiming n x rows x cols, no data. */
static size_t idx_claim(uint8_t *buf, uint32_t n_labels, uint32_t n, uint32_t rows, uint32_t cols)
{
    buf[0] = 8, buf[1] = 0;
    put_be32(buf + 2, 0x801), put_be32(buf + 6, n_labels);
    put_be32(buf + 10, 0x803), put_be32(buf + 14, n), put_be32(buf + 18, rows), put_be32(buf + 22, cols);
    return 26;
}

static void expect_limit(dn_status st, const dn_error *err, const char *part)
{
    if (st != DN_ELIMIT || !strstr(err->msg, part))
        fail_msg("status %d (%s), message '%s'; expected DN_ELIMIT and '%s'", (int)st, dn_status_str(st), err->msg,
                 part);
}

/* A 26-byte input promising 10^9 images (or a total beyond the pixel limit) is refused from its
 * header, before anything is allocated for it, and the message names the limit. */
static void test_idx_limits(void **state)
{
    (void)state;
    uint8_t buf[32];
    size_t len = idx_claim(buf, 1000000000u, 1000000000u, 28, 28);
    assert_int_equal(dn_fuzz_idx(buf, len), DN_ELIMIT);

    const char *labels = fuzz_file(0, buf + 2, 8);
    const char *images = fuzz_file(1, buf + 10, 16);
    dn_dataset d;
    dn_error err = {0};
    expect_limit(dn_idx_load(images, labels, &d, &err), &err, "header claims 1000000000 images, more than the limit of 10000000");

    idx_claim(buf, 9000000, 9000000, 4096, 4096);
    images = fuzz_file(1, buf + 10, 16);
    labels = fuzz_file(0, buf + 2, 8);
    expect_limit(dn_idx_load(images, labels, &d, &err), &err, "more than the limit of 2147483647 pixels in all");

    idx_claim(buf, 1, 1, 5000, 28);
    images = fuzz_file(1, buf + 10, 16);
    expect_limit(dn_idx_load(images, labels, &d, &err), &err, "beyond the limit of 4096x4096");

    idx_claim(buf, 4000000000u, 10, 28, 28);
    images = fuzz_file(1, buf + 10, 16);
    labels = fuzz_file(0, buf + 2, 8);
    expect_limit(dn_idx_load(images, labels, &d, &err), &err, "header claims 4000000000 labels, more than the limit");
}

/* A safetensors header length beyond the end of the file is refused before the header is read or
 * allocated, and the message says how long the header claims to be and how much file there is. */
static void test_model_limits(void **state)
{
    (void)state;
    uint8_t buf[56] = {0};
    memcpy(buf + 8, "{\"__metadata__\":{}}", 19);
    const struct {
        uint64_t claim;
        size_t len;
    } cases[] = {{1ull << 40, 56}, {49, 56}, {UINT64_MAX, 56}, {1, 8}, {20ull << 20, 56}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int b = 0; b < 8; b++)
            buf[b] = (uint8_t)(cases[i].claim >> (8 * b));
        assert_int_equal(dn_fuzz_model(buf, cases[i].len), DN_ELIMIT);
        dn_net *net = NULL;
        dn_error err = {0};
        char part[96];
        snprintf(part, sizeof part, "header claims %llu bytes but the file has %zu",
                 (unsigned long long)cases[i].claim, cases[i].len - 8);
        expect_limit(dn_model_load(fuzz_file(0, buf, cases[i].len), &net, &err), &err, part);
        assert_null(net);
    }

    /* A checkpoint whose row order claims 10^8 rows in a 10 KB file: refused before the 400 MB. */
    size_t size = 0;
    uint8_t *data = read_all("tests/fuzz/regressions/model/checkpoint-order-length-beyond-file.safetensors", &size);
    dn_net *net = NULL;
    dn_error err = {0};
    expect_limit(dn_checkpoint_load(fuzz_file(0, data, size), &net, &err), &err,
                 "checkpoint tensor 'train.order' claims 1e+08 rows, more than the");
    assert_null(net);
    free(data);
}

/* Layer sizes that overflowed before the fuzz fixes are refused as limits, naming the layer. */
static void test_spec_limits(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *part;
    } cases[] = {
        {"input 4096x4096x1\nconv2d 1048576 1x1 same\nconv2d 1048576 1048576x1048576 same\nflatten\ndense 10 softmax\n",
         "fuzz.cnn:3: conv2d 1048576 1048576x1048576 on a 4096x4096x1048576 input would have"},
        {"input 4096x4096x1\nconv2d 1048576 1x1 same\nflatten\ndense 10 softmax\n",
         "fuzz.cnn:3: flatten of a 4096x4096x1048576 input makes 17592186044416 values, over the limit of 2147483647"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(dn_fuzz_spec((const uint8_t *)cases[i].spec, strlen(cases[i].spec)), DN_ELIMIT);
        dn_net *net = NULL;
        dn_error err = {0};
        expect_limit(dn_net_parse(cases[i].spec, "fuzz.cnn", 1, &net, &err), &err, cases[i].part);
        assert_null(net);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_regressions),
        cmocka_unit_test(test_idx_limits),
        cmocka_unit_test(test_model_limits),
        cmocka_unit_test(test_spec_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Model specs and model files.
 *
 * Specs: the shipped models/optdigits.cnn and models/mnist.cnn (parameter counts, every layer's
 * output shape and parameter count), broken specs (each status and the exact "source:line: "
 * prefix), and the canonical form (parsing dn_net_spec() gives the same spec and, for the same
 * seed, the same weights).
 *
 * Model files: a small net trained for one epoch on real optdigits rows is saved and loaded back;
 * predictions must match bit for bit, and the history, raw_max, seed, notes and (for batchnorm)
 * moving statistics must come back. Broken files (missing, truncated, lying header length,
 * header not JSON, JSON without digitnet metadata, wrong tensor shape / dtype / count, values
 * that are not finite, random bytes) each give a stated status and message. Saving leaves no
 * temporary file behind and replaces an existing file.
 */
#include "testutil.h"
#include "net.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define OPTDIGITS_TRA DN_TEST_DATA "/optdigits/optdigits.tra"

/* A small net with every tensor-holding kind that fits in a few hundred rows. */
static const char TINY_SPEC[] = "input 8x8x1\n"
                                "conv2d 4 3x3 same relu\n"
                                "maxpool 2x2\n"
                                "dropout 0.25\n"
                                "flatten\n"
                                "dense 16 relu\n"
                                "dense 10 softmax\n";
/* 40 + 0 + 0 + 0 + 1040 + 170 = 1250 parameters; tensors 0.conv2d.kernel/bias, 4.dense.*, 5.dense.* */

static const char BN_SPEC[] = "input 8x8x1\n"
                              "conv2d 4 3x3 same\n"
                              "batchnorm\n"
                              "relu\n"
                              "maxpool 2x2\n"
                              "flatten\n"
                              "dense 10 softmax\n";

static dn_dataset optdigits; /* the first rows of optdigits.tra, loaded once */

/* Loaders must set *out to NULL on failure; they get this non-NULL value to overwrite. */
static char sentinel;
#define NOT_NULL ((dn_net *)(void *)&sentinel)

static int load_data(void **state)
{
    (void)state;
    dn_error err = {0};
    dn_set_threads(1); /* small batches: OpenMP regions cost more than they save on a busy machine */
    dn_dataset all;
    if (dn_optdigits_load(OPTDIGITS_TRA, &all, &err) != DN_OK) {
        print_error("cannot load %s: %s\n", OPTDIGITS_TRA, err.msg);
        return -1;
    }
    dn_status st = dn_dataset_slice(&all, 0, 400, &optdigits, &err);
    dn_dataset_free(&all);
    return st == DN_OK ? 0 : -1;
}

/* Removes dn_test_dir() and everything in it (files and one level of subdirectories). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat sb;
        if (lstat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

static int free_data(void **state)
{
    (void)state;
    dn_dataset_free(&optdigits);
    remove_tree(dn_test_dir());
    return 0;
}

/* ================================================================ specs */

typedef struct layer_expect {
    const char *kind;
    int h, w, c;
    size_t params;
    int flat; /* a vector: from a flatten on (a 1x1xC pooling output is not one) */
} layer_expect;

static void check_layers(const dn_net *net, const layer_expect *expect, int count)
{
    assert_int_equal(dn_net_layer_count(net), count);
    for (int i = 0; i < count; i++) {
        dn_layer_info info;
        assert_int_equal(dn_net_layer_info(net, i, &info), DN_OK);
        if (strcmp(info.kind, expect[i].kind) != 0 || info.out.h != expect[i].h || info.out.w != expect[i].w ||
            info.out.c != expect[i].c || info.n_params != expect[i].params)
            fail_msg("layer %d: %s %dx%dx%d with %zu parameters, expected %s %dx%dx%d with %zu", i, info.kind,
                     info.out.h, info.out.w, info.out.c, info.n_params, expect[i].kind, expect[i].h, expect[i].w,
                     expect[i].c, expect[i].params);
        assert_int_equal(info.n_trainable, expect[i].params); /* no batchnorm: all trainable */
        if (info.flat != expect[i].flat)
            fail_msg("layer %d (%s): flat = %d, expected %d", i, info.kind, info.flat, expect[i].flat);
    }
    assert_int_equal(dn_net_layer_info(net, count, &(dn_layer_info){0}), DN_EARG);
    assert_int_equal(dn_net_layer_info(net, -1, &(dn_layer_info){0}), DN_EARG);
}

/*
 * optdigits.cnn: 8x8x1 -> conv 16 (3*3*1*16 + 16 = 160) -> pool 4x4 -> conv 32 (3*3*16*32 + 32 =
 * 4640) -> pool 2x2 -> conv 64 (3*3*32*64 + 64 = 18496) -> pool 1x1 -> flatten 64 -> dense 128
 * (64*128 + 128 = 8320) -> dense 512 (128*512 + 512 = 66048) -> dense 10 (512*10 + 10 = 5130);
 * total 102794.
 */
static void test_optdigits_spec(void **state)
{
    (void)state;
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_load_spec("models/optdigits.cnn", 1, &net, &err), DN_OK);
    assert_int_equal(dn_net_param_count(net), 102794);
    assert_int_equal(dn_net_trainable_count(net), 102794);
    dn_shape in = dn_net_input_shape(net);
    assert_int_equal(in.h, 8);
    assert_int_equal(in.w, 8);
    assert_int_equal(in.c, 1);
    assert_int_equal(dn_net_n_classes(net), 10);
    static const layer_expect expect[] = {
        {"conv2d", 8, 8, 16, 160, 0},    {"maxpool", 4, 4, 16, 0, 0},    {"dropout", 4, 4, 16, 0, 0},
        {"conv2d", 4, 4, 32, 4640, 0},   {"maxpool", 2, 2, 32, 0, 0},    {"dropout", 2, 2, 32, 0, 0},
        {"conv2d", 2, 2, 64, 18496, 0},  {"maxpool", 1, 1, 64, 0, 0},    {"dropout", 1, 1, 64, 0, 0},
        {"flatten", 1, 1, 64, 0, 1},     {"dense", 1, 1, 128, 8320, 1},  {"dropout", 1, 1, 128, 0, 1},
        {"dense", 1, 1, 512, 66048, 1},  {"dropout", 1, 1, 512, 0, 1},   {"dense", 1, 1, 10, 5130, 1},
    };
    check_layers(net, expect, (int)(sizeof expect / sizeof expect[0]));
    dn_net_free(net);
}

/*
 * mnist.cnn: 28x28x1 -> conv 32 5x5 valid (24x24x32; 5*5*1*32 + 32 = 832) -> pool 12x12x32 ->
 * conv 64 2x2 valid (11x11x64; 2*2*32*64 + 64 = 8256) -> pool 5x5x64 (floor(11/2)) -> flatten 1600
 * -> dense 64 (1600*64 + 64 = 102464) -> dropout -> dense 10 (64*10 + 10 = 650); total 112202.
 */
static void test_mnist_spec(void **state)
{
    (void)state;
    dn_net *net = NULL;
    assert_int_equal(dn_net_load_spec("models/mnist.cnn", 1, &net, NULL), DN_OK);
    assert_int_equal(dn_net_param_count(net), 112202);
    assert_int_equal(dn_net_trainable_count(net), 112202);
    assert_int_equal(dn_net_input_shape(net).h, 28);
    static const layer_expect expect[] = {
        {"conv2d", 24, 24, 32, 832, 0}, {"maxpool", 12, 12, 32, 0, 0}, {"conv2d", 11, 11, 64, 8256, 0},
        {"maxpool", 5, 5, 64, 0, 0},    {"flatten", 1, 1, 1600, 0, 1}, {"dense", 1, 1, 64, 102464, 1},
        {"dropout", 1, 1, 64, 0, 1},    {"dense", 1, 1, 10, 650, 1},
    };
    check_layers(net, expect, (int)(sizeof expect / sizeof expect[0]));

    /* The canonical text spells out the defaults and drops the comments. */
    assert_string_equal(dn_net_spec(net), "input 28x28x1\n"
                                          "conv2d 32 5x5 valid relu\n"
                                          "maxpool 2x2 stride=2 valid\n"
                                          "conv2d 64 2x2 valid relu\n"
                                          "maxpool 2x2 stride=2 valid\n"
                                          "flatten\n"
                                          "dense 64 relu\n"
                                          "dropout 0.5\n"
                                          "dense 10 softmax\n");
    dn_net_free(net);
}

/* Batchnorm's moving statistics count as parameters but not as trainable ones. */
static void test_batchnorm_param_counts(void **state)
{
    (void)state;
    dn_net *net = NULL;
    assert_int_equal(dn_net_parse(BN_SPEC, "bn", 1, &net, NULL), DN_OK);
    /* conv 3*3*1*4 + 4 = 40; batchnorm 4 gamma + 4 beta trainable, 4 + 4 moving; dense 64*10 + 10 = 650 */
    assert_int_equal(dn_net_trainable_count(net), 40 + 8 + 650);
    assert_int_equal(dn_net_param_count(net), 40 + 16 + 650);
    dn_layer_info info;
    assert_int_equal(dn_net_layer_info(net, 1, &info), DN_OK);
    assert_string_equal(info.kind, "batchnorm");
    assert_int_equal(info.n_params, 16);
    assert_int_equal(info.n_trainable, 8);
    dn_net_free(net);
}

typedef struct bad_spec {
    const char *spec;
    dn_status status;
    const char *prefix; /* the message starts with this */
    const char *detail; /* and contains this */
} bad_spec;

#define WORDS_8 " a b c d e f g h"
#define WORDS_62 WORDS_8 WORDS_8 WORDS_8 WORDS_8 WORDS_8 WORDS_8 WORDS_8 " a b c d e f"
#define ZEROS_16 "0000000000000000"
#define WORDS_ZEROS ZEROS_16 ZEROS_16 ZEROS_16 ZEROS_16 ZEROS_16 ZEROS_16 ZEROS_16 ZEROS_16 /* 128 */
#define TAIL "flatten\ndense 10 softmax\n"

static void test_bad_specs(void **state)
{
    (void)state;
    static const bad_spec cases[] = {
        {"input 8x8x1\nconvolution 16 3x3 same relu\n" TAIL, DN_EFORMAT, "bad.cnn:2: ",
         "unknown layer 'convolution' (known: conv2d, maxpool, dense"},
        {"conv2d 16 3x3 same relu\n" TAIL, DN_EFORMAT, "bad.cnn:1: ", "the first line must be 'input HxWxC'"},
        /* Comments and blank lines still count as lines. */
        {"# a model\n\nconv2d 16 3x3 same relu\n" TAIL, DN_EFORMAT, "bad.cnn:3: ", "the first line must be 'input HxWxC'"},
        {"input 8x8\n" TAIL, DN_EFORMAT, "bad.cnn:1: ", "the first line must be 'input HxWxC'"},
        {"input 8x8x1\nconv2d 16 3y3 same relu\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "kernel size '3y3' is not like 3x3"},
        {"input 8x8x1\nconv2d 16 0x3 same relu\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "kernel size '0x3'"},
        {"input 8x8x1\nconv2d 16\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "conv2d needs FILTERS and a kernel size"},
        {"input 8x8x1\nconv2d 16 3x3 samee\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "unknown option 'samee'"},
        {"input 4x4x1\nconv2d 8 5x5 valid relu\n" TAIL, DN_ESHAPE, "bad.cnn:2: ",
         "conv2d 5x5 'valid' does not fit its 4x4x1 input"},
        {"input 8x8x1\nconv2d 4 3x3 same\ndense 10 softmax\n", DN_ESHAPE, "bad.cnn:3: ",
         "dense needs a flat input but gets 8x8x4; add a 'flatten'"},
        /* The line of the last layer, not of the trailing comment. */
        {"input 8x8x1\nflatten\ndense 32 relu\ndense 10 relu\n# the end\n", DN_EFORMAT, "bad.cnn:4: ",
         "the last layer must end in softmax"},
        {"input 8x8x1\nflatten\ndense 7 softmax\n", DN_ESHAPE, "bad.cnn:3: ",
         "the last layer must output 10 classes, e.g. 'dense 10 softmax'; it outputs 1x1x7"},
        {"input 8x8x1\nconv2d 10 3x3 same softmax\n", DN_ESHAPE, "bad.cnn:2: ", "it outputs 8x8x10"},
        {"input 8x8x1\nflatten\ndense 32 relu\ndropout 1.5\n" TAIL, DN_EFORMAT, "bad.cnn:4: ",
         "dropout needs one rate in [0, 1)"},
        {"input 8x8x1\nflatten\ndropout -0.1\ndense 10 softmax\n", DN_EFORMAT, "bad.cnn:3: ", "dropout needs one rate"},
        {"input 8x8x1\nflatten\ndropout 1\ndense 10 softmax\n", DN_EFORMAT, "bad.cnn:3: ", "dropout needs one rate"},
        {"input 8x8x1\nflatten\ndense 10 softmax" WORDS_62 "\n", DN_EFORMAT, "bad.cnn:3: ",
         "too many words on one line (at most 64)"},
        {"input 8x8x1\ntrain\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "train needs key=value options"},
        {"input 8x8x1\naugment\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "augment needs key=value options"},
        {"input 8x8x1\ntrain epochs=" WORDS_ZEROS "5\n" TAIL, DN_EFORMAT, "bad.cnn:2: ",
         "too long for a key=value option"},
        {"input 1x1x3\nmaxpool 2x2\n" TAIL, DN_ESHAPE, "bad.cnn:2: ", "maxpool 2x2 does not fit its 1x1x3 input"},
        {"input 8x8x1\nbatchnorm momentum=1\n" TAIL, DN_EFORMAT, "bad.cnn:2: ", "batchnorm: bad option 'momentum=1'"},
        {"input 8x8x1\nflatten\ndense 10 softmax extra\n", DN_EFORMAT, "bad.cnn:3: ", "dense: unknown option 'extra'"},
        {"input 8x8x1\nflatten junk\ndense 10 softmax\n", DN_EFORMAT, "bad.cnn:2: ", "flatten takes no options"},
        {"# nothing here\n\n", DN_EFORMAT, "bad.cnn: ", "empty spec"},
        {"input 8x8x1\n", DN_EFORMAT, "bad.cnn: ", "the spec has an input but no layers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_spec *c = &cases[i];
        dn_net *net = NOT_NULL;
        dn_error err = {0};
        dn_status st = dn_net_parse(c->spec, "bad.cnn", 1, &net, &err);
        if (st != c->status || err.status != c->status || strncmp(err.msg, c->prefix, strlen(c->prefix)) != 0 ||
            !strstr(err.msg, c->detail))
            fail_msg("case %zu: status %d (%s), message \"%s\"; expected status %d, \"%s...%s...\"", i, st,
                     dn_status_str(st), err.msg, c->status, c->prefix, c->detail);
        assert_null(net);
    }

    /* 65 layers: beyond DN_MAX_LAYERS. */
    char many[2048] = "input 1x1x10\n";
    for (int i = 0; i < DN_MAX_LAYERS; i++)
        strcat(many, "relu\n");
    strcat(many, "softmax\n");
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(many, "bad.cnn", 1, &net, &err), DN_ELIMIT);
    assert_non_null(strstr(err.msg, "bad.cnn:66: too many layers (at most 64)"));
    assert_null(net);

    /* NULL arguments. */
    assert_int_equal(dn_net_parse(NULL, "bad.cnn", 1, &net, &err), DN_EARG);
    assert_int_equal(dn_net_parse(TINY_SPEC, "bad.cnn", 1, NULL, &err), DN_EARG);
}

static void test_spec_file_errors(void **state)
{
    (void)state;
    dn_net *net = NULL;
    dn_error err = {0};
    char missing[256];
    snprintf(missing, sizeof missing, "%s/no-such.cnn", dn_test_dir());
    assert_int_equal(dn_net_load_spec(missing, 1, &net, &err), DN_EIO);
    assert_int_equal(strncmp(err.msg, missing, strlen(missing)), 0);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_null(net);

    static const unsigned char binary[] = {'i', 'n', 'p', 0, 0x93, 'N', 'U', 'M'};
    const char *path = dn_test_write_file("binary.cnn", binary, sizeof binary);
    assert_non_null(path);
    assert_int_equal(dn_net_load_spec(path, 1, &net, &err), DN_EFORMAT);
    assert_non_null(strstr(err.msg, "not a text spec"));

    /* A spec file's messages carry its path as the source. */
    static const char bad[] = "input 8x8x1\nflatten\ndense 10 relu\n";
    path = dn_test_write_file("bad.cnn", bad, sizeof bad - 1);
    assert_int_equal(dn_net_load_spec(path, 1, &net, &err), DN_EFORMAT);
    char prefix[600];
    snprintf(prefix, sizeof prefix, "%s:3: ", path);
    assert_int_equal(strncmp(err.msg, prefix, strlen(prefix)), 0);
}

/* parse(spec(net)) == spec(net), and with the same seed the same weights. */
static void check_canonical(const char *spec, const char *expected_canonical)
{
    dn_net *a = NULL, *b = NULL;
    dn_error err = {0};
    if (dn_net_parse(spec, "a", 42, &a, &err) != DN_OK)
        fail_msg("%s", err.msg);
    if (expected_canonical)
        assert_string_equal(dn_net_spec(a), expected_canonical);
    if (dn_net_parse(dn_net_spec(a), "canonical", 42, &b, &err) != DN_OK)
        fail_msg("the canonical spec does not parse: %s\n%s", err.msg, dn_net_spec(a));
    assert_string_equal(dn_net_spec(b), dn_net_spec(a));
    assert_int_equal(a->n_params, b->n_params);
    assert_int_equal(a->n_buffers, b->n_buffers);
    assert_memory_equal(a->params, b->params, sizeof(float) * a->n_params);
    assert_memory_equal(a->buffers, b->buffers, sizeof(float) * a->n_buffers);
    for (int i = 0; i < a->n_layers; i++) {
        assert_int_equal(a->layers[i].out.h, b->layers[i].out.h);
        assert_int_equal(a->layers[i].out.w, b->layers[i].out.w);
        assert_int_equal(a->layers[i].out.c, b->layers[i].out.c);
    }
    dn_net_free(a);
    dn_net_free(b);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static void test_canonical_round_trip(void **state)
{
    (void)state;
    check_canonical(read_text("models/optdigits.cnn"), NULL);
    check_canonical(read_text("models/mnist.cnn"), NULL);
    /* Every kind, options out of order, tabs, comments and the defaults spelled differently. */
    check_canonical("# every kind\n"
                    "input 12x10x2   # two channels\n"
                    "conv2d 4 3x2 tanh\tstride=2 same\n"
                    "batchnorm epsilon=0.01 momentum=0.9\n"
                    "relu\n"
                    "maxpool 3 same stride=1\n"
                    "sigmoid\n"
                    "\n"
                    "dropout 0.1\n"
                    "tanh\n"
                    "softmax\n"
                    "flatten\n"
                    "dense 12 linear\n"
                    "dense 10\n"
                    "softmax\n",
                    "input 12x10x2\n"
                    "conv2d 4 3x2 same stride=2 tanh\n"
                    "batchnorm momentum=0.9 epsilon=0.01\n"
                    "relu\n"
                    "maxpool 3x3 stride=1 same\n"
                    "sigmoid\n"
                    "dropout 0.1\n"
                    "tanh\n"
                    "softmax\n"
                    "flatten\n"
                    "dense 12\n"
                    "dense 10\n"
                    "softmax\n");
}

/* ================================================================ model files */

static char *temp_path(const char *name)
{
    static char paths[4][512];
    static int next;
    char *p = paths[next++ & 3];
    snprintf(p, sizeof paths[0], "%s/%s", dn_test_dir(), name);
    return p;
}

/* Parses spec and trains it for one epoch on rows [0, 300) of optdigits, validating on [300, 400). */
static dn_net *train_small(const char *spec, uint64_t seed)
{
    dn_net *net = NULL;
    dn_error err = {0};
    dn_dataset train, val;
    assert_int_equal(dn_net_parse(spec, "small", seed, &net, &err), DN_OK);
    assert_int_equal(dn_dataset_slice(&optdigits, 0, 300, &train, &err), DN_OK);
    assert_int_equal(dn_dataset_slice(&optdigits, 300, 100, &val, &err), DN_OK);
    dn_net_set_raw_max(net, optdigits.raw_max);
    dn_train_params p = dn_train_default_params();
    p.epochs = 1;
    p.batch_size = 32;
    p.seed = seed;
    if (dn_train(net, &train, &val, &p, &err) != DN_OK)
        fail_msg("training: %s", err.msg);
    dn_dataset_free(&train);
    dn_dataset_free(&val);
    return net;
}

static void assert_same_predictions(dn_net *a, dn_net *b)
{
    enum { ROWS = 100 };
    float *pa = malloc(sizeof(float) * ROWS * DN_N_CLASSES), *pb = malloc(sizeof(float) * ROWS * DN_N_CLASSES);
    assert_non_null(pa);
    assert_non_null(pb);
    float *images = NULL;
    assert_int_equal(dn_dataset_floats(&optdigits, 300, ROWS, &images, NULL), DN_OK);
    assert_int_equal(dn_net_predict(a, images, ROWS, pa, NULL), DN_OK);
    assert_int_equal(dn_net_predict(b, images, ROWS, pb, NULL), DN_OK);
    assert_memory_equal(pa, pb, sizeof(float) * ROWS * DN_N_CLASSES);
    free(images);
    free(pa);
    free(pb);
}

static void test_model_round_trip(void **state)
{
    (void)state;
    dn_net *net = train_small(TINY_SPEC, 5);
    dn_error err = {0};
    assert_int_equal(dn_net_set_note(net, "data", "optdigits rows 0..299", &err), DN_OK);
    assert_int_equal(dn_net_raw_max(net), 16);
    const char *path = temp_path("tiny.safetensors");
    assert_int_equal(dn_model_save(net, path, &err), DN_OK);

    dn_net *loaded = NOT_NULL;
    if (dn_model_load(path, &loaded, &err) != DN_OK)
        fail_msg("%s", err.msg);
    assert_non_null(loaded);
    assert_string_equal(dn_net_spec(loaded), dn_net_spec(net));
    assert_int_equal(dn_net_param_count(loaded), dn_net_param_count(net));
    assert_memory_equal(loaded->params, net->params, sizeof(float) * net->n_params);
    assert_int_equal(dn_net_raw_max(loaded), 16);
    assert_int_equal(dn_net_seed(loaded), 5);
    assert_non_null(dn_net_note(loaded, "data"));
    assert_string_equal(dn_net_note(loaded, "data"), "optdigits rows 0..299");
    assert_same_predictions(net, loaded);

    int n_saved, n_loaded;
    const dn_epoch_stats *saved = dn_net_history(net, &n_saved), *restored = dn_net_history(loaded, &n_loaded);
    assert_int_equal(n_saved, 1);
    assert_int_equal(n_loaded, 1);
    assert_int_equal(restored[0].epoch, 1);
    /* cJSON prints doubles with enough digits to read back the same value. */
    assert_true(restored[0].loss == saved[0].loss);
    assert_true(restored[0].accuracy == saved[0].accuracy);
    assert_true(restored[0].val_loss == saved[0].val_loss);
    assert_true(restored[0].val_accuracy == saved[0].val_accuracy);
    assert_true(restored[0].seconds == saved[0].seconds);
    assert_true(isfinite(restored[0].val_loss));

    /* A model that was never trained has no history and reloads as such; raw_max 255 is kept. */
    dn_net *fresh = NULL;
    assert_int_equal(dn_net_parse(TINY_SPEC, "fresh", 9, &fresh, NULL), DN_OK);
    assert_int_equal(dn_model_save(fresh, path, &err), DN_OK);
    dn_net_free(loaded);
    assert_int_equal(dn_model_load(path, &loaded, &err), DN_OK);
    dn_net_history(loaded, &n_loaded);
    assert_int_equal(n_loaded, 0);
    assert_int_equal(dn_net_raw_max(loaded), 255);
    assert_memory_equal(loaded->params, fresh->params, sizeof(float) * fresh->n_params);

    /* Any divisor the setter takes comes back; the ones it refuses leave the net as it was. */
    assert_int_equal(dn_net_set_raw_max(fresh, 100), DN_OK);
    assert_int_equal(dn_model_save(fresh, path, &err), DN_OK);
    dn_net_free(loaded);
    if (dn_model_load(path, &loaded, &err) != DN_OK)
        fail_msg("raw_max 100: %s", err.msg);
    assert_int_equal(dn_net_raw_max(loaded), 100);
    assert_int_equal(dn_net_set_raw_max(fresh, 0), DN_EARG);
    assert_int_equal(dn_net_set_raw_max(fresh, 256), DN_EARG);
    assert_int_equal(dn_net_raw_max(fresh), 100);

    dn_net_free(fresh);
    dn_net_free(loaded);
    dn_net_free(net);
    unlink(path);
}

static void test_batchnorm_round_trip(void **state)
{
    (void)state;
    dn_net *net = train_small(BN_SPEC, 6);
    const float *moving = net->layers[1].buffers; /* (4) mean, then (4) variance */
    for (int c = 0; c < 4; c++) {
        assert_true(moving[c] != 0.0f);     /* moved away from the initial 0 ... */
        assert_true(moving[4 + c] != 1.0f); /* ... and 1 */
    }
    const char *path = temp_path("bn.safetensors");
    dn_error err = {0};
    assert_int_equal(dn_model_save(net, path, &err), DN_OK);
    dn_net *loaded = NULL;
    if (dn_model_load(path, &loaded, &err) != DN_OK)
        fail_msg("%s", err.msg);
    assert_memory_equal(loaded->buffers, net->buffers, sizeof(float) * net->n_buffers);
    assert_memory_equal(loaded->params, net->params, sizeof(float) * net->n_params);
    assert_same_predictions(net, loaded);
    dn_net_free(loaded);
    dn_net_free(net);
    unlink(path);
}

/* ---------------------------------------------------------------- broken model files */

typedef struct bytes {
    unsigned char *data;
    size_t len;
} bytes;

static bytes read_bytes(const char *path)
{
    bytes b = {0};
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long len = ftell(f);
    assert_true(len > 0);
    rewind(f);
    b.data = malloc((size_t)len);
    assert_non_null(b.data);
    assert_int_equal(fread(b.data, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    b.len = (size_t)len;
    return b;
}

static uint64_t header_len(const bytes *b)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b->data[i];
    return n;
}

/* Writes an 8-byte length, header (padded with spaces to a multiple of 8) and data to name. */
static const char *write_model(const char *name, const char *header, const void *data, size_t data_len)
{
    size_t len = strlen(header), padded = (len + 7) & ~(size_t)7;
    size_t total = 8 + padded + data_len;
    unsigned char *buf = malloc(total);
    assert_non_null(buf);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, header, len);
    memset(buf + 8 + len, ' ', padded - len);
    if (data_len)
        memcpy(buf + 8 + padded, data, data_len);
    const char *path = dn_test_write_file(name, buf, total);
    assert_non_null(path);
    free(buf);
    return path;
}

/* The good file's header parsed, for editing; *data / *data_len point at its tensor bytes. */
static cJSON *good_header(const bytes *good, const unsigned char **data, size_t *data_len)
{
    uint64_t n = header_len(good);
    cJSON *root = cJSON_ParseWithLength((const char *)good->data + 8, (size_t)n);
    assert_non_null(root);
    *data = good->data + 8 + n;
    *data_len = good->len - 8 - (size_t)n;
    return root;
}

/* Loads path, expecting status and a message that starts with the path and contains detail. */
static void expect_load_error(const char *path, dn_status status, const char *detail)
{
    dn_net *net = NOT_NULL;
    dn_error err = {0};
    dn_status st = dn_model_load(path, &net, &err);
    if (st != status || err.status != status || strncmp(err.msg, path, strlen(path)) != 0 || !strstr(err.msg, detail))
        fail_msg("%s: status %d (%s), message \"%s\"; expected status %d and \"%s\"", path, st, dn_status_str(st),
                 err.msg, status, detail);
    assert_null(net);
}

/* Rewrites the good file with one edit to its JSON header. */
static const char *edited(const bytes *good, const char *name, void (*edit)(cJSON *root, cJSON *meta))
{
    const unsigned char *data;
    size_t data_len;
    cJSON *root = good_header(good, &data, &data_len);
    edit(root, cJSON_GetObjectItemCaseSensitive(root, "__metadata__"));
    char *text = cJSON_PrintUnformatted(root);
    assert_non_null(text);
    const char *path = write_model(name, text, data, data_len);
    free(text);
    cJSON_Delete(root);
    return path;
}

static void set_shape(cJSON *root, const char *tensor, const int *dims, int n)
{
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, tensor);
    assert_non_null(entry);
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "shape", cJSON_CreateIntArray(dims, n));
}

static void edit_kernel_shape(cJSON *root, cJSON *meta)
{
    (void)meta;
    set_shape(root, "0.conv2d.kernel", (const int[]){3, 3, 1, 5}, 4); /* 4 filters in the spec */
}

static void edit_kernel_rank(cJSON *root, cJSON *meta)
{
    (void)meta;
    set_shape(root, "4.dense.kernel", (const int[]){1040}, 1); /* (64, 16) flattened */
}

static void edit_dtype(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "5.dense.bias");
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "dtype", cJSON_CreateString("F16"));
}

static void edit_drop_tensor(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON_DeleteItemFromObjectCaseSensitive(root, "5.dense.bias");
}

static void edit_extra_tensor(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(root, "5.dense.bias"), 1);
    cJSON_AddItemToObject(root, "6.dense.bias", entry);
}

static void edit_offsets(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "0.conv2d.bias");
    const int offsets[2] = {0, 12}; /* 3 floats for a tensor of 4 */
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "data_offsets", cJSON_CreateIntArray(offsets, 2));
}

/* 0.conv2d.bias (4 floats) on the first 16 bytes of 0.conv2d.kernel. */
static void edit_offsets_overlap(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "0.conv2d.bias");
    const int offsets[2] = {0, 16};
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "data_offsets", cJSON_CreateIntArray(offsets, 2));
}

/* 5.dense.bias half a byte later, its length still right. */
static void edit_offsets_fraction(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "5.dense.bias");
    cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    double b = cJSON_GetArrayItem(offsets, 0)->valuedouble - 40.5;
    const double moved[2] = {b, b + 40};
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "data_offsets", cJSON_CreateDoubleArray(moved, 2));
}

/* Escape sequences in the spec and in a note: they must not reach a message or a printed note. */
static void edit_escapes(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "spec", cJSON_CreateString("input 8x8x1\n\x1b[2J\x1b]0;owned\x07\n"));
}

static void edit_escape_note(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_AddStringToObject(meta, "run.data", "optdigits\x1b[31m");
}

static void edit_offsets_beyond(cJSON *root, cJSON *meta)
{
    (void)meta;
    cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, "5.dense.bias");
    const int offsets[2] = {1000000, 1000040};
    cJSON_ReplaceItemInObjectCaseSensitive(entry, "data_offsets", cJSON_CreateIntArray(offsets, 2));
}

static void edit_no_format(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_DeleteItemFromObjectCaseSensitive(meta, "format");
}

static void edit_version(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "format_version", cJSON_CreateString("3"));
}

static void edit_raw_max(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "raw_max", cJSON_CreateString("256"));
}

static void edit_spec(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "spec",
                                           cJSON_CreateString("input 8x8x1\nconv2d 4 3x3 same relu\nmaxpool 2x2\n"
                                                              "dropout 0.25\nflatten\ndense 16 relu\ndense 10 relu\n"));
}

static void edit_history(cJSON *root, cJSON *meta)
{
    (void)root;
    cJSON_ReplaceItemInObjectCaseSensitive(meta, "history", cJSON_CreateString("{\"epoch\": 1}"));
}

static void test_broken_model_files(void **state)
{
    (void)state;
    dn_net *net = train_small(TINY_SPEC, 7);
    const char *good_path = temp_path("good.safetensors");
    dn_error err = {0};
    assert_int_equal(dn_model_save(net, good_path, &err), DN_OK);
    dn_net_free(net);
    bytes good = read_bytes(good_path);
    const uint64_t hlen = header_len(&good);
    /* Tensors: 0.conv2d (36 + 4), 4.dense (1024 + 16), 5.dense (160 + 10) floats. */
    assert_int_equal(good.len - 8 - hlen, (size_t)1250 * 4);
    assert_int_equal(hlen % 8, 0);

    /* Missing. */
    expect_load_error(temp_path("missing.safetensors"), DN_EIO, "cannot open");

    /* Truncated: inside the tensor data, inside the header, inside the length, empty. */
    /* Cut in the data: fewer floats than the spec's parameters, refused before the net is built. */
    expect_load_error(dn_test_write_file("cut-data.safetensors", good.data, good.len - 100), DN_ELIMIT,
                      "more parameters than the file holds");
    expect_load_error(dn_test_write_file("cut-header.safetensors", good.data, 8 + hlen / 2), DN_ELIMIT, "header claims");
    expect_load_error(dn_test_write_file("cut-length.safetensors", good.data, 5), DN_EFORMAT,
                      "too short to be a model file (5 bytes)");
    expect_load_error(dn_test_write_file("empty.safetensors", "", 0), DN_EFORMAT, "too short to be a model file");

    /* A header length far beyond the file. */
    unsigned char lying[16] = {0, 0, 0, 0, 0, 1, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}; /* 2^40 */
    expect_load_error(dn_test_write_file("lying.safetensors", lying, sizeof lying), DN_ELIMIT,
                      "header claims 1099511627776 bytes but the file has 8");

    /* Not JSON; JSON but not an object; an object from someone else's safetensors. */
    expect_load_error(write_model("not-json.safetensors", "this is not json", NULL, 0), DN_EFORMAT,
                      "the header is not a JSON object");
    expect_load_error(write_model("array.safetensors", "[1, 2, 3]", NULL, 0), DN_EFORMAT, "not a JSON object");
    static const float four[1] = {1.0f};
    expect_load_error(write_model("foreign.safetensors",
                                  "{\"weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", four, 4),
                      DN_EFORMAT, "without digitnet metadata");
    expect_load_error(edited(&good, "no-format.safetensors", edit_no_format), DN_EFORMAT, "without digitnet metadata");

    /* Tensors that do not match the spec. */
    expect_load_error(edited(&good, "shape.safetensors", edit_kernel_shape), DN_ESHAPE,
                      "tensor '0.conv2d.kernel' has a shape that does not match the spec");
    expect_load_error(edited(&good, "rank.safetensors", edit_kernel_rank), DN_ESHAPE,
                      "tensor '4.dense.kernel' has a shape that does not match the spec");
    expect_load_error(edited(&good, "dtype.safetensors", edit_dtype), DN_EFORMAT,
                      "tensor '5.dense.bias' has dtype F16, expected F32");
    expect_load_error(edited(&good, "dropped.safetensors", edit_drop_tensor), DN_EFORMAT,
                      "tensor '5.dense.bias' is missing");
    expect_load_error(edited(&good, "extra.safetensors", edit_extra_tensor), DN_EFORMAT,
                      "the file holds 7 tensors but the spec has 6");
    expect_load_error(edited(&good, "offsets.safetensors", edit_offsets), DN_EFORMAT,
                      "tensor '0.conv2d.bias' has data offsets outside the file or of the wrong length");
    expect_load_error(edited(&good, "overlap.safetensors", edit_offsets_overlap), DN_EFORMAT,
                      "tensor '0.conv2d.bias' has data offsets that are not whole numbers or overlap another tensor's");
    expect_load_error(edited(&good, "fraction.safetensors", edit_offsets_fraction), DN_EFORMAT,
                      "tensor '5.dense.bias' has data offsets that are not whole numbers or overlap");
    expect_load_error(edited(&good, "escapes.safetensors", edit_escapes), DN_EFORMAT, "(spec in metadata):2:");
    net = NULL;
    assert_int_equal(dn_model_load(temp_path("escapes.safetensors"), &net, &err), DN_EFORMAT);
    assert_null(strchr(err.msg, 0x1b));
    assert_null(strchr(err.msg, 0x07));
    net = NULL;
    assert_int_equal(dn_model_load(edited(&good, "escape-note.safetensors", edit_escape_note), &net, &err), DN_OK);
    assert_string_equal(dn_net_note(net, "data"), "optdigits?[31m");
    dn_net_free(net);
    expect_load_error(edited(&good, "beyond.safetensors", edit_offsets_beyond), DN_EFORMAT,
                      "tensor '5.dense.bias' has data offsets outside the file");

    /* Metadata that is wrong. */
    expect_load_error(edited(&good, "version.safetensors", edit_version), DN_EFORMAT,
                      "model format version 3; this digitnet reads versions 1 and 2");
    expect_load_error(edited(&good, "raw-max.safetensors", edit_raw_max), DN_EFORMAT,
                      "metadata 'raw_max' must be 1..255");
    expect_load_error(edited(&good, "history.safetensors", edit_history), DN_EFORMAT,
                      "metadata 'history' is not a JSON list");
    /* A bad spec inside the file is reported against the file. */
    const char *bad_spec_path = edited(&good, "spec.safetensors", edit_spec);
    expect_load_error(bad_spec_path, DN_EFORMAT, "(spec in metadata):7: the last layer must end in softmax");

    /* A value that is not finite. */
    bytes nan_file = {malloc(good.len), good.len};
    assert_non_null(nan_file.data);
    memcpy(nan_file.data, good.data, good.len);
    const float nan = NAN;
    memcpy(nan_file.data + 8 + hlen + 4 * 37, &nan, 4); /* 0.conv2d.bias[1] */
    expect_load_error(dn_test_write_file("nan.safetensors", nan_file.data, nan_file.len), DN_EFORMAT,
                      "tensor '0.conv2d.bias' holds a value that is not finite");
    free(nan_file.data);

    /* Random bytes: the first eight make an absurd header length. */
    unsigned char noise[4096];
    dn_rng rng;
    dn_rng_seed(&rng, 99);
    for (size_t i = 0; i < sizeof noise; i++)
        noise[i] = (unsigned char)dn_rng_below(&rng, 256);
    expect_load_error(dn_test_write_file("noise.safetensors", noise, sizeof noise), DN_ELIMIT, "header claims");
    /* ... and random bytes behind a plausible length. */
    memset(noise, 0, 8);
    noise[1] = 0x04; /* 1024 */
    expect_load_error(dn_test_write_file("noise2.safetensors", noise, sizeof noise), DN_EFORMAT,
                      "the header is not a JSON object");

    /* The untouched file still loads: every failure above came from the edit. */
    net = NULL;
    assert_int_equal(dn_model_load(good_path, &net, &err), DN_OK);
    dn_net_free(net);
    assert_int_equal(dn_model_load(NULL, &net, &err), DN_EARG);
    free(good.data);
}

/* ---------------------------------------------------------------- saving */

/* Names in dir, sorted by nothing: returns how many, copies up to max into names. */
static int list_dir(const char *dir, char names[][256], int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n < max)
            snprintf(names[n], 256, "%s", e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static void test_save_is_atomic(void **state)
{
    (void)state;
    char dir[512];
    snprintf(dir, sizeof dir, "%s/save", dn_test_dir());
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    dn_net *a = NULL, *b = NULL, *loaded = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(TINY_SPEC, "a", 1, &a, NULL), DN_OK);
    assert_int_equal(dn_net_parse(TINY_SPEC, "b", 2, &b, NULL), DN_OK);

    /* A file already there, longer than a model, and not a model at all. */
    static char junk[64 * 1024];
    memset(junk, 'x', sizeof junk);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
    fclose(f);

    assert_int_equal(dn_model_save(a, path, &err), DN_OK);
    char names[8][256];
    assert_int_equal(list_dir(dir, names, 8), 1); /* no "model.safetensors.tmp-XXXXXX" left */
    assert_string_equal(names[0], "model.safetensors");
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size < (off_t)sizeof junk);
    mode_t mask = umask(0);
    umask(mask);
    assert_int_equal(sb.st_mode & 0777, 0666 & ~mask); /* an ordinary file, not mkstemp's 0600 */
    assert_int_equal(dn_model_load(path, &loaded, &err), DN_OK);
    assert_memory_equal(loaded->params, a->params, sizeof(float) * a->n_params);
    dn_net_free(loaded);

    /* Saving b over a replaces it. */
    assert_int_equal(dn_model_save(b, path, &err), DN_OK);
    assert_int_equal(list_dir(dir, names, 8), 1);
    assert_int_equal(dn_model_load(path, &loaded, &err), DN_OK);
    assert_memory_equal(loaded->params, b->params, sizeof(float) * b->n_params);
    assert_int_equal(dn_net_seed(loaded), 2);
    dn_net_free(loaded);

    /* A directory that does not exist: DN_EIO and nothing written. */
    char nowhere[700];
    snprintf(nowhere, sizeof nowhere, "%s/no-such-dir/model.safetensors", dir);
    assert_int_equal(dn_model_save(a, nowhere, &err), DN_EIO);
    assert_int_equal(strncmp(err.msg, nowhere, strlen(nowhere)), 0);
    assert_int_equal(list_dir(dir, names, 8), 1);
    assert_int_equal(dn_model_save(NULL, path, &err), DN_EARG);

    dn_net_free(a);
    dn_net_free(b);
    unlink(path);
    rmdir(dir);
}

/* A save says why a write failed (a full disk: "No space left on device"; here the file-size limit,
 * which fails the same writes with EFBIG), and removes the temporary files of saves killed earlier. */
/* A spec saved by a Windows editor starts with a UTF-8 byte-order mark: read as if it did not. */
static void test_spec_with_bom(void **state)
{
    (void)state;
    dn_net *net = NULL;
    dn_error err = {0};
    char spec[sizeof TINY_SPEC + 3] = "\xEF\xBB\xBF";
    strcat(spec, TINY_SPEC);
    if (dn_net_parse(spec, "bom.cnn", 1, &net, &err) != DN_OK)
        fail_msg("a spec starting with a BOM: %s", err.msg);
    assert_int_equal(dn_net_input_shape(net).h, 8);
    dn_net_free(net);
}

static void test_save_failures_and_leftovers(void **state)
{
    (void)state;
    char dir[512], path[600], stale[700], live[700];
    snprintf(dir, sizeof dir, "%s/leftovers", dn_test_dir());
    assert_true(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    dn_net *net = NULL;
    dn_error err = {0};
    assert_int_equal(dn_net_parse(TINY_SPEC, "a", 1, &net, NULL), DN_OK);

    struct rlimit old, small = {2000, 0};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    small.rlim_max = old.rlim_max;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &small), 0);
    dn_status st = dn_model_save(net, path, &err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);
    assert_int_equal(st, DN_EIO);
    assert_non_null(strstr(err.msg, "write failed: File too large"));
    char names[8][256];
    assert_int_equal(list_dir(dir, names, 8), 0);

    /* A process killed mid-save leaves NAME.tmp-PID-N; a running one's file must stay. */
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    assert_true(child > 0);
    assert_int_equal(waitpid(child, NULL, 0), child);
    snprintf(stale, sizeof stale, "%s.tmp-%ld-0", path, (long)child);
    snprintf(live, sizeof live, "%s.tmp-1-0", path); /* init never dies */
    assert_non_null(dn_test_write_file("leftovers/model.safetensors.tmp-x", "x", 1));
    FILE *f = fopen(stale, "wb");
    assert_non_null(f);
    fclose(f);
    f = fopen(live, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(dn_model_save(net, path, &err), DN_OK);
    struct stat sb;
    assert_int_equal(stat(stale, &sb), -1);
    assert_int_equal(stat(live, &sb), 0);
    assert_int_equal(list_dir(dir, names, 8), 3); /* the model, the live one, and tmp-x (not ours) */
    dn_net_free(net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optdigits_spec),
        cmocka_unit_test(test_mnist_spec),
        cmocka_unit_test(test_batchnorm_param_counts),
        cmocka_unit_test(test_bad_specs),
        cmocka_unit_test(test_spec_file_errors),
        cmocka_unit_test(test_canonical_round_trip),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_batchnorm_round_trip),
        cmocka_unit_test(test_broken_model_files),
        cmocka_unit_test(test_save_is_atomic),
        cmocka_unit_test(test_save_failures_and_leftovers),
        cmocka_unit_test(test_spec_with_bom),
    };
    return dn_test_finish(cmocka_run_group_tests(tests, load_data, free_data));
}

/* digitnet: the command-line tool. Parses the command line and hands over to one cmd_* function. */
#include "cli.h"
#include "dist.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct command {
    const char *name;
    int (*run)(cli_options *o);
    const char *help;
} command;

static const command commands[] = {
    {"train", cmd_train, "train a network: --data NAME --model SPEC [--epochs N --batch N --out FILE]"},
    {"eval", cmd_eval, "evaluate a saved model on a data set's test rows: --model FILE [--data NAME]"},
    {"cv", cmd_cv, "k-fold cross-validation: --data NAME --model SPEC --folds K"},
    {"summary", cmd_summary, "print the layer table of a spec or saved model: summary SPEC|MODEL"},
    {"predict", cmd_predict, "predict image files (PNG, JPEG, BMP, PGM/PPM): --model FILE IMAGE... [--top K --save-preprocessed DIR];\n"
                             "           or images of a data set: --model FILE --data NAME --index I [--count N]"},
    {"show", cmd_show, "draw images of a data set: --data NAME [--per-class | --first N] --out FILE.png;\n"
                       "           with --augment \"shift=2 rotate=12 ...\" each followed by augmented versions"},
    {"features", cmd_features, "draw every conv/pool layer's output for one image: --model M --data NAME --index I --out DIR"},
    {"serve", cmd_serve, "serve the drawing page and /api/predict: --model FILE [--host 127.0.0.1 --port 8080]"},
    {"info", cmd_info, "what this machine and build compute with: CPU, SIMD kernels, threads, build flags"},
    {"export", cmd_export, "export a trained model: --model M --format onnx --out FILE.onnx [--int8], or the int8 network\n"
                           "           as C for a microcontroller: --format c --name NAME --out DIR [--data NAME --calibration N]"},
    {"sweep", cmd_sweep, "train a grid of settings and rank them: --model SPEC --lr A,B,... --batch M,N,... (spread over mpirun's ranks)"},
    {"fetch", cmd_fetch, "download and verify a data set: fetch optdigits|mnist|fashion-mnist [--data-dir DIR --mirror URL...]"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: digitnet COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
    fprintf(f, "  %-8s %s\n", "import", "import an ONNX CNN (PyTorch, Keras/tf2onnx): FILE.onnx --out M.safetensors [--input-scale S]");
    fprintf(f, "\noptions:\n"
               "  --model PATH        model spec (.cnn) or saved model (.safetensors)\n"
               "  --data NAME|DIR     optdigits, mnist, mnist-10k, fashion-mnist, or a directory\n"
               "  --data-dir DIR      where to look for named data sets first (fetch: where to put them;\n"
               "                      default $DIGITNET_DATA, else ~/.cache/digitnet)\n"
               "  --fetch             train/eval/cv: download the data set when it is not found\n"
               "  --mirror URL        fetch, --fetch: get files from URL/<file> instead of the built-in\n"
               "                      mirrors (repeatable, tried in order); DIGITNET_FETCH_STALL_SECONDS and\n"
               "                      DIGITNET_FETCH_CONNECT_SECONDS bound the waits (default 30 and 20)\n"
               "  --epochs N          training epochs (default 10)\n"
               "  --batch N           batch size (default 32)\n"
               "  --lr F              learning rate (default 0.001 Adam, 0.01 SGD)\n"
               "  --optimizer NAME    adam (default) or sgd (momentum 0.9, --momentum F)\n"
               "  --seed N            seed for initialisation, splits, shuffling and dropout (default 1)\n"
               "  --test-split F      hold out fraction F of all rows as the test set\n"
               "  --val-split F       validate on the last fraction F of the training rows\n"
               "  --schedule S        train/cv/sweep: learning-rate schedule per batch: constant (default),\n"
               "                      step, cosine or onecycle\n"
               "  --warmup E          linear warm-up from 0 over E epochs (fractions allowed), on top of the schedule\n"
               "  --step-every N --step-gamma F   step schedule: lr times F every N epochs (default 10 and 0.1)\n"
               "  --min-lr F          cosine/onecycle: the final rate as a fraction of --lr (default 0)\n"
               "  --weight-decay F    decoupled weight decay (AdamW; SGD too) on every parameter (default 0)\n"
               "  --label-smoothing F targets 1 - F on the label and F / 10 on every class (default 0)\n"
               "  --patience N        early stopping: stop after N epochs without a better validation loss\n"
               "                      and keep the best epoch's weights (needs --val-split)\n"
               "  --augment \"k=v ...\" augmentation (shift rotate scale shear elastic elastic_sigma noise flip\n"
               "                      mixup p), on top of the spec's augment line\n"
               "  --ensemble K        train K members with seeds S, S+1, ... into one model (as many\n"
               "                      side by side as there are threads, one thread each)\n"
               "                      (a spec's train/augment lines set all of these; flags override them)\n"
               "  --folds K           folds for cv (default 5)\n"
               "  --threads N         threads (default: all cores)\n"
               "  --out FILE          save the trained model (safetensors)\n"
               "  --index I --count N --top K   images to predict and how many classes to show\n"
               "  --checkpoint FILE   train: save a resumable checkpoint every --checkpoint-every N epochs\n"
               "                      (default 1) and when interrupted (Ctrl-C)\n"
               "  --resume FILE       train: continue from a checkpoint up to --epochs in total\n"
               "  --report DIR        train/eval/cv: write DIR/index.html with plots and metrics\n"
               "  --per-class         show: one random image per class (default; --seed picks)\n"
               "  --first N           show: the first N images with their labels\n"
               "  --save-preprocessed DIR   predict IMAGE...: write the 28x28 (or 8x8) image the network saw\n"
               "  --host H --port N   serve: address to listen on (default 127.0.0.1, port 8080; 0: any free port)\n"
               "  --max-connections N --max-per-client N --request-timeout S --max-pixels N\n"
               "                      serve: limits (default 2000 connections, 256 per client address, 15 s\n"
               "                      for a request to arrive, 16777216 pixels an image; README: Robustness)\n"
               "  --int8              eval/serve/predict/export: the int8-quantised network (the exported C's arithmetic)\n"
               "  --calibration N     eval/serve --int8, export: training rows that set the int8 ranges (default 1000)\n"
               "  --format F --name NAME   export: c (NAME.h and NAME.c in --out DIR)\n"
               "  --json              print one JSON object on stdout instead of text\n"
               "  --quiet             print only the final results\n");
}

int cli_failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    cli_dist_before_error();
    fputs("digitnet: ", stderr);
    if (cli_dist_active() && cli_dist_rank() != 0)
        fprintf(stderr, "rank %d: ", cli_dist_rank());
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_fail(const dn_error *err)
{
    /* The library names no flag of this tool; the hint about which one to change is ours. */
    if (err->status == DN_ENAN)
        return cli_failf("%s (--lr)", err->msg);
    return cli_failf("%s", err->msg);
}

static int parse_number(const char *flag, const char *text, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    int integral = strcmp(flag, "--lr") && strcmp(flag, "--momentum") && strcmp(flag, "--test-split") &&
                   strcmp(flag, "--val-split");
    if (errno || end == text || *end || !(v >= lo && v <= hi) || (integral && v != floor(v))) {
        cli_failf("%s: '%s' is not a number in [%g, %g]", flag, text, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_parse(int argc, char **argv, cli_options *o)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) {
            if (o->n_positional == (int)(sizeof o->positional / sizeof o->positional[0]))
                return cli_failf("too many arguments"), -1;
            o->positional[o->n_positional++] = a;
            continue;
        }
        if (!strcmp(a, "--json")) {
            o->json = 1;
            continue;
        }
        if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--fetch")) {
            o->fetch = 1;
            continue;
        }
        if (!strcmp(a, "--int8")) {
            o->int8 = 1;
            continue;
        }
        if (!strcmp(a, "--per-class")) {
            o->per_class = 1;
            continue;
        }
        if (i + 1 >= argc)
            return cli_failf("%s needs a value", a), -1;
        const char *v = argv[++i];
        double x;
        int recipe_flag;
        if (o->command && !strcmp(o->command, "sweep") && (!strcmp(a, "--lr") || !strcmp(a, "--batch"))) {
            *(!strcmp(a, "--lr") ? &o->sweep_lr : &o->sweep_batch) = v; /* comma lists: cmd_sweep.c */
            continue;
        }
#define NUM(flag, lo, hi, dst)                                                                             \
    else if (!strcmp(a, flag))                                                                               \
    {                                                                                                      \
        if (parse_number(flag, v, lo, hi, &x))                                                             \
            return -1;                                                                                     \
        dst;                                                                                               \
    }
        if (!strcmp(a, "--model"))
            o->model = v;
        else if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--mirror")) {
            if (o->n_mirrors == (int)(sizeof o->mirrors / sizeof o->mirrors[0]))
                return cli_failf("--mirror: at most %d mirrors", o->n_mirrors), -1;
            o->mirrors[o->n_mirrors++] = v;
        } else if (!strcmp(a, "--data-dir"))
            o->data_dir = v;
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--report"))
            o->report = v;
        else if (!strcmp(a, "--checkpoint"))
            o->checkpoint = v;
        else if (!strcmp(a, "--resume"))
            o->resume = v;
        else if (!strcmp(a, "--format"))
            o->format = v;
        else if (!strcmp(a, "--name"))
            o->name = v;
        else if (!strcmp(a, "--host"))
            o->host = v;
        else if (!strcmp(a, "--save-preprocessed"))
            o->save_preprocessed = v;
        else if (!strcmp(a, "--augment"))
            o->augment = v;
        else if ((recipe_flag = cli_recipe_flag(o, a, v)) != 0) {
            if (recipe_flag < 0)
                return -1;
        } else if (!strcmp(a, "--optimizer")) {
            if (strcmp(v, "adam") && strcmp(v, "sgd"))
                return cli_failf("--optimizer: '%s' is not adam or sgd", v), -1;
            o->optimizer = v;
        }
        NUM("--epochs", 0, 1e6, (o->epochs = (int)x, o->have_epochs = 1))
        NUM("--batch", 1, 65536, (o->batch = (int)x, o->have_batch = 1))
        NUM("--folds", 2, 100, o->folds = (int)x)
        NUM("--threads", 0, 256, o->threads = (int)x)
        NUM("--index", 0, 1e9, o->index = (int)x)
        NUM("--count", 1, 1e9, o->count = (int)x)
        NUM("--top", 1, DN_N_CLASSES, o->top = (int)x)
        NUM("--checkpoint-every", 1, 1e6, o->checkpoint_every = (int)x)
        NUM("--calibration", 1, 1e7, o->calibration = (int)x)
        NUM("--ensemble", 1, DN_MAX_ENSEMBLE, o->ensemble = (int)x)
        NUM("--port", 0, 65535, (o->port = (int)x, o->have_port = 1))
        NUM("--max-connections", 1, 100000, o->max_connections = (int)x)
        NUM("--max-per-client", 1, 100000, o->max_per_client = (int)x)
        NUM("--request-timeout", 1, 3600, o->request_timeout = (int)x)
        NUM("--max-pixels", 1, DN_IMAGE_MAX_PIXELS, o->max_pixels = (long long)x)
        NUM("--first", 1, DN_PLOT_MAX_IMAGES, o->first = (int)x)
        NUM("--lr", 1e-12, 1e6, o->lr = x)
        NUM("--momentum", 0, 0.9999, (o->momentum = x, o->have_momentum = 1))
        NUM("--test-split", 0, 0.99, (o->test_split = x, o->have_test_split = 1))
        NUM("--val-split", 0, 0.99, o->val_split = x)
        NUM("--ensemble", 1, 1000, o->ensemble = (int)x)
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-')
                return cli_failf("--seed: '%s' is not a whole number from 0 to 18446744073709551615", v), -1;
            o->have_seed = 1;
        }
        else return cli_failf("unknown option %s (see digitnet --help)", a), -1;
#undef NUM
    }
    return 0;
}

/* How idle OpenMP threads wait. libgomp spins about 300,000 rounds before it sleeps, which is right
 * for a machine of its own, but when two jobs share the cores (a training beside `digitnet serve`,
 * two folds at once) each one's threads burn the time slices the other's need, and both crawl.
 * Measured here (bench/shared_cores.sh, MNIST training, 2 cores): with the passive policy a lone
 * run is as fast as with spinning (19,961 images/s against 16,132-19,878), and two runs at once get
 * 55% and 59% of it each, against 28-32% with a 20,000-round spin and 6% with libgomp's default.
 * libgomp reads the policy once, when it is loaded, before main: so the tool sets it and executes
 * itself again, once, unless the user chose a policy (OMP_WAIT_POLICY or GOMP_SPINCOUNT). */
static void choose_thread_waiting(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* Not re-executed (no /proc): run on with libgomp's default, and say so in `digitnet info`. */
    unsetenv("OMP_WAIT_POLICY");
}

static int export_format_is_onnx(int argc, char **argv)
{
    for (int i = 0; i < argc; i++)
        if ((!strcmp(argv[i], "--format") && i + 1 < argc && !strcmp(argv[i + 1], "onnx")) ||
            !strcmp(argv[i], "--format=onnx"))
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    choose_thread_waiting(argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("digitnet %s\n", DN_VERSION);
        return 0;
    }
    /* export --format onnx parses its own options (tools/cmd_onnx.c); --format c goes through the table. */
    if (!strcmp(argv[1], "export") && export_format_is_onnx(argc - 2, argv + 2))
        return cmd_export_onnx(argc - 2, argv + 2);
    if (!strcmp(argv[1], "import"))
        return cmd_import(argc - 2, argv + 2);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[1], commands[i].name) != 0)
            continue;
        cli_options o = {.command = commands[i].name, .epochs = 10, .batch = 32, .folds = 5, .count = 1, .top = 2,
                         .seed = 1, .momentum = 0.9};
        if (cli_parse(argc - 2, argv + 2, &o) != 0)
            return EXIT_USAGE;
        dn_set_threads(o.threads);
        if (cli_dist_init(&argc, &argv) != 0)
            return 1;
        if (cli_dist_rank() != 0) { /* in an MPI job only rank 0 prints and writes files */
            o.quiet = 1;
            o.out = o.report = NULL;
            if (!freopen("/dev/null", "w", stdout))
                return 1;
        }
        int status = commands[i].run(&o);
        /* The other ranks may be waiting for this one: end them all. An interrupted training (130)
         * stopped every rank at the same batch (cmd_train.c), and rank 0 is writing its checkpoint. */
        if (status != 0 && status != 130 && cli_dist_active())
            cli_dist_abort(status);
        cli_dist_finish();
        return status;
    }
    cli_failf("unknown command '%s'", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

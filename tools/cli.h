/* The command-line tool's shared pieces: options, data preparation, output helpers. Only tools/
 * prints and chooses exit codes; the library reports through dn_error. */
#ifndef DN_CLI_H
#define DN_CLI_H

#include "digitnet.h"

#include <cJSON.h>
#include <stdio.h>

#define EXIT_USAGE 2

typedef struct cli_options {
    const char *command;
    const char *model;     /* --model: a .cnn spec or a saved model */
    const char *data;      /* --data NAME|DIR */
    const char *data_dir;  /* --data-dir DIR */
    const char *out;       /* --out FILE */
    const char *report;    /* --report DIR */
    const char *checkpoint, *resume; /* train: --checkpoint FILE, --resume FILE */
    int checkpoint_every;            /* train: --checkpoint-every N epochs (default 1) */
    const char *optimizer; /* --optimizer adam|sgd */
    const char *host, *save_preprocessed; /* serve: --host; predict IMAGE...: --save-preprocessed DIR */
    int port, have_port;                  /* serve: --port (0: any free port) */
    int max_connections, max_per_client, request_timeout; /* serve: limits (0: the defaults) */
    long long max_pixels;                                 /* serve: image pixel budget (0: default) */
    int epochs, batch, folds, threads, index, count, top;
    double lr, momentum, test_split, val_split;
    unsigned long long seed;
    int json, quiet;
    int have_seed, have_test_split, have_epochs, have_batch, have_momentum;
    int per_class, first; /* show: --per-class, --first N */
    int fetch;                /* --fetch: download the data set when it is not found */
    const char *mirrors[16];  /* --mirror URL (repeatable): replaces the built-in mirrors */
    int n_mirrors;
    int int8;                 /* eval, serve: --int8, the quantised network (tools/cmd_export.c) */
    int calibration;          /* --calibration N training rows (default DN_QUANT_DEFAULT_CALIBRATION) */
    const char *format, *name; /* export: --format c|onnx, --name NAME */
    const char *sweep_lr, *sweep_batch; /* sweep: --lr A,B,... --batch M,N,... */
    const char *augment; /* --augment "k=v ..." */
    int n_positional;
    const char *positional[4096]; /* predict IMAGE... takes many files */
    int ensemble;        /* --ensemble K: members to train (the library's params.ensemble) */
    char train_flags[512]; /* --schedule, --warmup, ... (tools/recipe.c): the command line's recipe keys, "key=value ..." */
    dn_train_params recipe; /* the effective recipe, set by cli_apply_recipe */
    int have_recipe;
} cli_options;

/* Parses argv after the command name. Prints a one-line error and returns -1 on a bad option. */
int cli_parse(int argc, char **argv, cli_options *o);

/* Prints "digitnet: <msg>" to stderr and returns 1 (the exit status for run-time errors). */
int cli_fail(const dn_error *err);
int cli_failf(const char *fmt, ...);

/* Opens --model: a saved safetensors model (detected by content) or a .cnn spec built with seed. */
dn_status cli_open_model(const char *path, unsigned long long seed, dn_net **net, int *is_saved, dn_error *err);

/* The data for train/eval: loads --data and applies --test-split and --val-split (Keras semantics:
 * the validation rows are the last ones of the training arrays, before shuffling). */
typedef struct cli_data {
    dn_dataset train, val, test;
    const char *test_source; /* "test files" or "test split 0.2" ... */
    char test_desc[64];
} cli_data;
dn_status cli_load_data(const cli_options *o, cli_data *d, dn_error *err);
/* dn_data_open of --data (default optdigits) and --data-dir; with --fetch, a set that is not found is
 * downloaded first (tools/cmd_fetch.c), and when that fails too the message says what to put where. */
dn_status cli_open_data(const cli_options *o, dn_dataset *train, dn_dataset *test, dn_error *err);
void cli_data_free(cli_data *d);

/* 102794 -> "102,794" (buf: 32 bytes); a layer's output shape as Keras prints it, "(None, 8, 8, 16)". */
const char *cli_thousands(size_t v, char *buf);
void cli_shape_text(dn_shape s, int flat, char *buf, size_t size);

/* Output: one Keras-style summary table. */
void cli_print_summary(FILE *f, const dn_net *net, const char *title);
void cli_print_metrics(FILE *f, const dn_metrics *m, const char *title);
cJSON *cli_metrics_json(const dn_metrics *m);
cJSON *cli_summary_json(const dn_net *net);
cJSON *cli_history_json(const dn_net *net);
/* Prints the JSON object to stdout and frees it. */
void cli_print_json(cJSON *obj);

/* Keras-style per-epoch progress (bar on a terminal, a plain line otherwise). */
typedef struct cli_progress {
    FILE *out;
    int enabled, tty, epochs, batch;
    double last_draw, epoch_start;
    int epoch;
    int members; /* ensembles: the member count (each epoch line names its member: members may train side by side) */
} cli_progress;
/* Seconds on the monotonic clock. */
double cli_now(void);
void cli_progress_init(cli_progress *p, FILE *out, int enabled, int epochs, int batch);
int cli_progress_batch(void *user, int epoch, int done, int total, double loss, double accuracy);
int cli_progress_epoch(void *user, const dn_epoch_stats *stats);

/* Everything a run knows, for `--report DIR` (tools/report.c). Pointers may be NULL where a
 * command does not have the thing (eval has no history, cv has folds). */
typedef struct cli_report {
    const char *dir;
    const char *command;         /* "train", "eval", "cv" */
    const cli_options *options;
    dn_net *net;                 /* the trained / evaluated net (cv: the spec); feature maps run it */
    const dn_dataset *test;      /* rows the metrics were measured on */
    const float *probs;          /* (test->n, DN_N_CLASSES) predicted probabilities */
    const dn_metrics *metrics;
    const double *fold_loss, *fold_accuracy;
    int n_folds;
    const cJSON *json;           /* the same object --json prints; written as metrics.json */
    const dn_dataset *train;     /* train: the training rows (the augmented samples); NULL: the test rows */
} cli_report;

/* Writes DIR/index.html, DIR/metrics.json, DIR/confusion.csv and the pictures. Returns a dn_status. */
int cli_write_report(const cli_report *r, dn_error *err);

/* The end of train and eval: the report when --report was given (r->dir, options and json are
 * filled in here), then the JSON on stdout with --json. Frees json; returns the exit status. */
int cli_finish(const cli_options *o, cli_report *r, cJSON *json);
/* mkdir -p: creates dir and its missing parents. */
dn_status cli_make_dirs(const char *dir, dn_error *err);

/* Commands. */
int cmd_train(cli_options *o);
int cmd_eval(cli_options *o);
int cmd_cv(cli_options *o);
int cmd_summary(cli_options *o);
int cmd_predict(cli_options *o);
int cmd_serve(cli_options *o);
int cmd_fetch(cli_options *o);
int cmd_info(cli_options *o);
/* predict with image files as positional arguments (tools/cmd_images.c); net is the loaded model. */
int cli_predict_images(cli_options *o, dn_net *net);
int cmd_show(cli_options *o);
int cmd_features(cli_options *o);
/* export --format onnx and import (tools/cmd_onnx.c): argv[0..argc) are the arguments after the
 * command word; they parse their own options. */
int cmd_export_onnx(int argc, char **argv);
int cmd_import(int argc, char **argv);
/* export --format c|onnx (tools/cmd_export.c); cmd_export dispatches on --format. */
int cmd_export(cli_options *o);
int cmd_export_c(cli_options *o);
/* Opens --model, which must be a trained model, not a spec (tools/cmd_eval.c). */
dn_status cli_load_saved(cli_options *o, dn_net **net, dn_error *err);
/* --int8: loads the model's data into *data (the caller frees it) and quantises net, calibrated on
 * --calibration N of its training rows. */
dn_status cli_quantize(cli_options *o, const dn_net *net, cli_data *data, dn_qnet **q, dn_error *err);
int cmd_sweep(cli_options *o);

/* Recipes (tools/recipe.c). cli_recipe_flag: --schedule, --warmup, --step-every, --step-gamma,
 * --min-lr, --weight-decay, --label-smoothing, --patience; returns 1 when flag is one of them (kept
 * in o->train_flags), 0 when it is not, -1 after printing an error about its value. */
int cli_recipe_flag(cli_options *o, const char *flag, const char *value);
/* Precedence: the defaults < the spec's `train` / `augment` lines (with --resume: the checkpoint's
 * "train" / "augment" notes) < the command line. net may be NULL (no spec). Writes the effective
 * epochs, batch, lr, momentum, optimizer and val_split back into o and the rest into o->recipe. */
dn_status cli_apply_recipe(cli_options *o, const dn_net *net, dn_error *err);
/* Copies o->recipe's schedule, regularisation, ensemble and augmentation fields into p. */
void cli_recipe_params(const cli_options *o, dn_train_params *p);
/* "Recipe: epochs=.. batch=.. ...; augment ..." on one line. */
void cli_print_recipe(FILE *f, const cli_options *o);
/* The "train" and "augment" notes of a trained model. */
dn_status cli_note_recipe(dn_net *net, const cli_options *o, dn_error *err);

/* eval, predict, features: without --data / --test-split / --seed, use what the model recorded at
 * training time, so that the same test rows come back. */
void cli_defaults_from_model(cli_options *o, const dn_net *net);

/* The first of n_rows rows of DN_N_CLASSES probabilities holding a NaN or an infinity (a model
 * whose activations overflow), or -1 when all are numbers. predict, eval and serve refuse to answer
 * with such a row; the message is CLI_NOT_A_NUMBER after the model's name. */
int cli_first_nonfinite(const float *probs, int n_rows);
#define CLI_NOT_A_NUMBER "the model's output is not a number (its activations overflow: weights too large?)"

#endif

/*
 * digitnet: train, evaluate and deploy convolutional networks for handwritten digits.
 *
 * The one public header of libdigitnet. Conventions:
 *  - Every function that can fail returns dn_status and, when the caller passes a dn_error,
 *    fills it with a one-line message naming the file/field and the problem. The library never
 *    prints and never exits.
 *  - The caller owns what it passes in; an object owns what it allocates; every *_free(NULL) is a
 *    no-op. Pointers returned as `const` are borrowed from the object and valid until it changes.
 *  - Images are float32, channels-last: (n, h, w, c), scaled to 0..1.
 */
#ifndef DIGITNET_H
#define DIGITNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The libraries are compiled with -fvisibility=hidden: what this header declares is all they export.
 * One push/pop around the whole header, rather than an export macro on every declaration, so that a
 * function added anywhere in between is exported with no more ado (and branches adding functions do
 * not touch each other's lines). */
#if defined(__GNUC__)
#pragma GCC visibility push(default)
#endif

#define DN_VERSION "0.1.0"
#define DN_N_CLASSES 10 /* digits 0..9 (and the ten Fashion-MNIST classes) */

/* The version of the library loaded at run time ("0.1.0"), which may be newer than the DN_VERSION
 * a program was compiled with. Static string. */
const char *dn_version(void);

/* ------------------------------------------------------------------ errors */

typedef enum dn_status {
    DN_OK = 0,
    DN_ENOMEM,    /* allocation failed */
    DN_EIO,       /* a file could not be opened, read or written */
    DN_EFORMAT,   /* a file or text is malformed (wrong magic, bad value, truncated) */
    DN_ESHAPE,    /* shapes do not fit together (model vs data, layer vs layer) */
    DN_EARG,      /* a bad argument from the caller */
    DN_ENOTFOUND, /* a data set or file was not found where it was looked for */
    DN_ENAN,      /* training diverged: the loss is not a finite number */
    DN_ELIMIT,    /* input claims a size beyond a safety limit */
    DN_ESTOPPED,  /* a callback asked to stop */
    DN_ENET       /* a download failed: no connection, HTTP error, stalled or cut transfer */
} dn_status;

/* A caller-supplied error record. msg is one line, without a trailing newline. */
typedef struct dn_error {
    dn_status status;
    char msg[512];
} dn_error;

/* A short English name for a status ("out of memory", "bad format", ...). Never NULL. */
const char *dn_status_str(dn_status status);

/* ------------------------------------------------------------------ data sets */

typedef struct dn_dataset {
    int n;            /* number of images */
    int h, w, c;      /* image shape */
    uint8_t *pixels;  /* (n, h, w, c) raw values 0..raw_max, as in the files: a quarter of the
                       * memory of floats, so 60,000 MNIST images take 47 MB */
    uint8_t *labels;  /* (n), 0..9 */
    int raw_max;      /* the divisor that scales pixels to 0..1: 16 for optdigits, 255 for IDX */
} dn_dataset;

/* Writes rows [start, start + n) of d to out as floats 0..1, (n, h, w, c). */
void dn_dataset_rows(const dn_dataset *d, int start, int n, float *out);

/* Writes the rows listed in rows[0..n) to out as floats 0..1. */
void dn_dataset_gather(const dn_dataset *d, const int *rows, int n, float *out);

/* Allocates (n, h, w, c) floats 0..1 for rows [start, start + n) into *out (free with free()). */
dn_status dn_dataset_floats(const dn_dataset *d, int start, int n, float **out, dn_error *err);

/* Reads an IDX image file and its label file (gzip or raw, detected by content).
 * Checks magic numbers, dimensions, counts, label range and file length.
 * On success *out owns its arrays (free with dn_dataset_free). */
dn_status dn_idx_load(const char *images_path, const char *labels_path, dn_dataset *out, dn_error *err);

/* Reads a UCI optdigits file: `.tra`/`.tes` (64 integers 0..16 then the class, no header) or UCI's
 * data.csv (same columns with a header row, detected automatically). Images are 8x8x1, raw_max 16. */
dn_status dn_optdigits_load(const char *path, dn_dataset *out, dn_error *err);

/* Frees the arrays of a data set and zeroes it. NULL is a no-op. */
void dn_dataset_free(dn_dataset *d);

/* Appends b after a into a new data set (shapes and raw_max must match). */
dn_status dn_dataset_concat(const dn_dataset *a, const dn_dataset *b, dn_dataset *out, dn_error *err);

/* Copies rows indices[0..n) of src into a new data set. */
dn_status dn_dataset_take(const dn_dataset *src, const int *indices, int n, dn_dataset *out, dn_error *err);

/* Copies the contiguous rows [start, start+n) of src into a new data set. */
dn_status dn_dataset_slice(const dn_dataset *src, int start, int n, dn_dataset *out, dn_error *err);

/* Fills perm[0..n) with a permutation of 0..n-1 that depends only on seed (Fisher-Yates). */
void dn_permutation(uint64_t seed, int n, int *perm);

/* Locates and loads a data set. name_or_dir is one of "optdigits", "mnist", "mnist-10k",
 * "fashion-mnist", or a directory holding the standard file names. Named sets are looked up in
 * data_dir (may be NULL), $DIGITNET_DATA, the download cache ($XDG_CACHE_HOME/digitnet, else
 * ~/.cache/digitnet), ./data and /usr/share/datasets, in that order. On success
 * *train holds the training rows and *test the data set's own test rows (n == 0 when the set has
 * none, e.g. a lone data.csv). When nothing is found the message lists every place looked at, where
 * to put the files and, for a set dn_fetch knows, that it can download it (status DN_ENOTFOUND). */
dn_status dn_data_open(const char *name_or_dir, const char *data_dir, dn_dataset *train,
                       dn_dataset *test, dn_error *err);

/* ------------------------------------------------------------------ downloads */

/*
 * dn_fetch downloads a named data set ("optdigits", "mnist", "fashion-mnist") into root/NAME/, the
 * place dn_data_open looks under that root. Each file is fetched from a list of mirrors tried in
 * order, written to root/NAME/FILE.part (kept when a transfer is cut, and resumed with an HTTP
 * Range request next time; a server that ignores the Range restarts the file), and moved to its
 * final name only after its size and its pinned SHA-256 (and published MD5, where there is one)
 * have been checked. optdigits comes as UCI's zip archive, unpacked with libzip; its members are
 * verified, since the archive itself has no published checksum. Files already present and intact
 * are not downloaded again. The library never prints: progress goes to a callback. The first
 * download initialises libcurl once for the process (curl_global_init, thread-safe in libcurl 7.84
 * and later) and leaves it initialised; a program that uses libcurl itself initialises it first.
 */

typedef enum dn_fetch_event {
    DN_FETCH_PRESENT,  /* path is already in place and verified: nothing to do */
    DN_FETCH_START,    /* a transfer from url begins; done = bytes kept from an earlier try */
    DN_FETCH_PROGRESS, /* done of total bytes of file have arrived (total 0: not known yet) */
    DN_FETCH_FAILED,   /* a failure dn_fetch goes on after (message; `retrying` says how). The
                          one it stops on is not reported here: it is dn_fetch's error */
    DN_FETCH_VERIFIED  /* file was checked and moved to path */
} dn_fetch_event;

typedef struct dn_fetch_status {
    dn_fetch_event event;
    const char *dataset;  /* "mnist" */
    const char *file;     /* the file at hand: "t10k-images-idx3-ubyte.gz", or the zip's name */
    const char *url;      /* START, PROGRESS, FAILED */
    const char *path;     /* PRESENT, VERIFIED: where the file is */
    const char *message;  /* FAILED: one line */
    int retrying;         /* FAILED: 1 this file again from the same mirror (resuming, or from
                             the start), 2 from the next mirror, 0 no more tries for this file
                             (the set's other files are still fetched) */
    int64_t done, total;  /* bytes */
} dn_fetch_status;

/* Return non-zero to stop the download (dn_fetch returns DN_ESTOPPED; the .part file is kept). */
typedef int (*dn_fetch_fn)(void *user, const dn_fetch_status *status);

typedef struct dn_fetch_params {
    const char *const *mirrors; /* n_mirrors > 0: these base URLs (http:// or https://) replace the
                                   built-in list; a file is looked for at BASE/FILE. For optdigits,
                                   BASE/<UCI zip name>, or when that answers 4xx, the raw
                                   BASE/optdigits.tra and BASE/optdigits.tes */
    int n_mirrors;
    long connect_seconds;  /* give up connecting after this long (default 20) */
    long stall_seconds;    /* give up when under 1 KiB/s arrives for this long (default 30) */
    long max_redirects;    /* default 5; more is taken as a redirect loop */
    int resume_tries;      /* tries per mirror when transfers are cut but make progress (default 3) */
    dn_fetch_fn on_status; /* may be NULL */
    void *user;
    long min_bytes_per_second; /* each file must arrive at least this fast on average (over all its
                                  tries from one mirror, plus connect_seconds + stall_seconds of
                                  grace), else the next mirror (default 4096; 0: no limit) */
} dn_fetch_params;

dn_fetch_params dn_fetch_default_params(void);

/* 1 when dn_fetch can download the named set. */
int dn_fetch_known(const char *name);

/* The files dn_fetch puts in root/NAME/, as text for messages ("optdigits.tra and optdigits.tes"),
 * static; NULL for a name it does not know. */
const char *dn_fetch_file_list(const char *name);

/* Where downloads go by default: $DIGITNET_DATA, else $XDG_CACHE_HOME/digitnet, else
 * $HOME/.cache/digitnet. Writes it to buf; DN_ENOTFOUND when none of those variables is set,
 * DN_EARG when buf is too small. */
dn_status dn_data_default_dir(char *buf, size_t size, dn_error *err);

/* Downloads and verifies the set into root/name/ (root NULL: dn_data_default_dir), creating
 * directories as needed. params may be NULL (defaults). On failure no file is left under a final
 * name unless it was verified; the message names the file, the URL and the reason (wrong checksum,
 * HTML page, cut transfer, redirect loop, stall, HTTP status). Status DN_ENET for network trouble,
 * DN_EFORMAT for data that does not verify, DN_EIO for local files, DN_EARG for a bad name or URL. */
dn_status dn_fetch(const char *name, const char *root, const dn_fetch_params *params, dn_error *err);

/* ------------------------------------------------------------------ networks */

typedef struct dn_shape {
    int h, w, c;
} dn_shape;

typedef struct dn_net dn_net;

/* Builds a network from spec text (one layer per line, '#' comments; see models/ and README).
 * source_name names the text in messages ("models/optdigits.cnn:7: ..."). Parameters are
 * initialised Keras-style (Glorot-uniform kernels, zero biases) from seed. */
dn_status dn_net_parse(const char *spec_text, const char *source_name, uint64_t seed, dn_net **out,
                       dn_error *err);

/* Reads a spec file and calls dn_net_parse. */
dn_status dn_net_load_spec(const char *path, uint64_t seed, dn_net **out, dn_error *err);

void dn_net_free(dn_net *net);

/* The spec the network was built from, in canonical form (borrowed). */
const char *dn_net_spec(const dn_net *net);
dn_shape dn_net_input_shape(const dn_net *net);
int dn_net_n_classes(const dn_net *net);
int dn_net_layer_count(const dn_net *net);
/* All parameters: trainable weights plus non-trainable state such as batchnorm running stats. */
size_t dn_net_param_count(const dn_net *net);
size_t dn_net_trainable_count(const dn_net *net);

typedef struct dn_layer_info {
    const char *kind;   /* "conv2d", "maxpool", ... (borrowed, static) */
    char label[96];     /* the layer's spec line in canonical form */
    dn_shape out;       /* output shape (flat layers: h = w = 1) */
    int flat;           /* the output is a vector (after flatten / dense) */
    size_t n_params;    /* trainable + non-trainable */
    size_t n_trainable;
} dn_layer_info;

dn_status dn_net_layer_info(const dn_net *net, int index, dn_layer_info *info);

/* Divisor that maps the raw pixels of the training data to 0..1 (16 for optdigits, 255 for IDX);
 * recorded in model files. Pixels are 8-bit, so any divisor 1..DN_RAW_MAX_LIMIT may be set (and
 * is read back by dn_model_load); others give DN_EARG and leave the net unchanged. */
#define DN_RAW_MAX_LIMIT 255
int dn_net_raw_max(const dn_net *net);
dn_status dn_net_set_raw_max(dn_net *net, int raw_max);
uint64_t dn_net_seed(const dn_net *net);

/* Free-form notes about how the net was trained ("data", "test_split", ...), saved in model files
 * as metadata "run.<key>". Keys and values are copied; at most 32 notes. */
dn_status dn_net_set_note(dn_net *net, const char *key, const char *value, dn_error *err);
/* The note's value (borrowed) or NULL. */
const char *dn_net_note(const dn_net *net, const char *key);
/* The i-th note; returns 0 past the end. */
int dn_net_note_at(const dn_net *net, int i, const char **key, const char **value);

/* Sets the number of threads for the heavy kernels (0: all cores), for the calling thread's
 * OpenMP teams. No BLAS runs on the hot path: every matrix product uses digitnet's kernels. Results do not depend on the thread count: the same seed trains the same model bit for bit
 * on 1 thread or 16. The convolution kernels are AVX-512 when the CPU has it, else AVX2 with FMA,
 * else portable C (DIGITNET_SIMD=avx2 or generic caps the choice). AVX-512 and AVX2 give the same
 * bits; the portable kernels agree with them to rounding, not bit for bit.
 * Training a dn_net is not thread-safe; inference is (dn_net_predict, dn_workspace). Several
 * processes sharing the same cores: see OMP_WAIT_POLICY in the README (Speed). */
void dn_set_threads(int n_threads);

/* What this process computes with, for `digitnet info` and benchmark logs. Strings are borrowed
 * (static or inside the struct). */
typedef struct dn_runtime_info {
    const char *version;        /* DN_VERSION of the library that runs */
    char cpu_model[96];         /* from /proc/cpuinfo; "unknown" elsewhere */
    char cpu_features[160];     /* the SIMD features the kernels look at, as the CPU reports them */
    const char *conv_kernels;   /* "avx512", "avx2" or "portable": convolutions, matrix products (pooling: AVX-512 or portable) */
    const char *simd_clone;     /* element-wise kernels' target_clones variant: "x86-64-v4", "x86-64-v3", "x86-64" */
    const char *blas;           /* the BLAS on the hot path: none, digitnet's kernels do every product */
    int threads;                /* threads the next dn_net_predict uses, and the most dn_train's steps use */
    int flush_to_zero;          /* 1: training and inference run with FTZ + DAZ (x86) */
    const char *compiler;       /* the compiler that built the library */
    const char *build_flags;    /* the optimisation flags it was built with */
} dn_runtime_info;
void dn_runtime_info_get(dn_runtime_info *info);

/* Inference: probs (n, n_classes) for images (n, h, w, c). Dropout off, batchnorm uses running
 * statistics. Works through the images in chunks. Reentrant: the net is only read, so any number of
 * threads may predict with the same net at once (but not while it trains). This entry point
 * allocates a workspace for the call; dn_net_predict_ws reuses one. */
dn_status dn_net_predict(const dn_net *net, const float *images, int n, float *probs, dn_error *err);

/* DN_OK when images of this shape fit the net's input; DN_ESHAPE, with a message giving both shapes,
 * when they do not. dn_net_predict cannot check this itself: it gets a bare pointer. */
dn_status dn_net_check_input(const dn_net *net, dn_shape shape, dn_error *err);

/* An inference workspace: the activations and scratch of one thread's predictions with one net.
 * Each thread predicting at once needs its own; the net must outlive it. It grows to the largest
 * chunk asked of it (at most 32 rows) and then allocates nothing more. */
typedef struct dn_workspace dn_workspace;

/* Creates an empty workspace for net (*out, free with dn_workspace_free). DN_ENOMEM on failure. */
dn_status dn_workspace_init(const dn_net *net, dn_workspace **out, dn_error *err);
/* Frees the workspace and what it holds. NULL is a no-op. */
void dn_workspace_free(dn_workspace *ws);

/* dn_net_predict in the caller's workspace ws (made for this net: DN_EARG otherwise). Once ws has
 * grown to the chunk size, calls allocate nothing. Same results, bit for bit, as dn_net_predict. */
dn_status dn_net_predict_ws(const dn_net *net, dn_workspace *ws, const float *images, int n, float *probs,
                            dn_error *err);

/* After a dn_net_predict_ws of a single image: the output of layer `index` for that image, shape in
 * *shape. Borrowed from ws; valid until its next use. NULL if index is out of range or nothing was
 * predicted yet. */
const float *dn_workspace_layer_output(const dn_workspace *ws, int index, dn_shape *shape);

/* ------------------------------------------------------------------ training */

typedef enum dn_optimizer { DN_OPT_ADAM = 0, DN_OPT_SGD = 1 } dn_optimizer;
#define DN_ADAM_DEFAULT_LR 0.001f /* keras.optimizers.Adam */
#define DN_SGD_DEFAULT_LR 0.01f   /* keras.optimizers.SGD */

typedef struct dn_epoch_stats {
    int epoch;                /* 1-based */
    double loss, accuracy;    /* on the training batches, averaged as Keras does */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
    double seconds;
    double images_per_sec;
    int member;               /* ensembles (dn_train_params.ensemble > 1): which member trained this
                                 epoch, 0-based; 0 for a single net */
    int threads;              /* the threads the epoch's training steps ran on: dn_train measures, in
                                 its first 36 full batches, whether one thread steps clearly faster
                                 than all (a small network at a small batch) and then keeps to it;
                                 the same bits either way. While it still measures: all threads.
                                 0 in a history loaded from a file */
} dn_epoch_stats;

/* Called after every batch (done of total images this epoch) and after every epoch.
 * Return non-zero to stop training after the current batch (dn_train returns DN_ESTOPPED).
 * The batch callback runs with the thread count of the steps (dn_epoch_stats.threads); a
 * dn_set_threads made inside a callback does not last past the epoch. */
typedef int (*dn_batch_fn)(void *user, int epoch, int done, int total, double loss, double accuracy);
typedef int (*dn_epoch_fn)(void *user, const dn_epoch_stats *stats);

/* Random transforms applied to every training image on the fly, batch by batch (src/augment).
 * A zero field switches its transform off; dn_train_default_params() switches everything off.
 * Each image's transform depends only on the run's seed, the epoch and the image's place in the
 * epoch, never on the thread count, so the same seed still gives the same model bit for bit. */
typedef struct dn_augment {
    float shift;         /* shift=PX: translation uniform in [-PX, PX] on each axis, sub-pixel (bilinear) */
    float rotate;        /* rotate=DEG: rotation uniform in [-DEG, DEG] degrees about the centre */
    float scale;         /* scale=F: zoom uniform in [1 - F, 1 + F] */
    float shear;         /* shear=DEG: horizontal shear uniform in [-DEG, DEG] degrees */
    float elastic;       /* elastic=ALPHA: elastic distortion (Simard et al. 2003), displacement scale in pixels */
    float elastic_sigma; /* elastic_sigma=S: Gaussian smoothing of the random field, pixels (0: 4 for 28x28, scaled to the image) */
    float noise;         /* noise=STD: Gaussian noise added to the scaled pixels (0..1) */
    float flip;          /* flip=P: left-right mirror with probability P (clothing; digits must not be mirrored) */
    float mixup;         /* mixup=ALPHA: pairs of images and their labels mixed with a Beta(ALPHA, ALPHA) weight */
    float prob;          /* p=P: probability that an image gets the geometric transforms at all (0, the default: 1) */
} dn_augment;

/* Parses "key=value key=value ..." (the keys above: shift, rotate, scale, shear, elastic,
 * elastic_sigma, noise, flip, mixup, p) into *a, changing only the keys named. Returns DN_EFORMAT
 * naming the key for an unknown key, a value that is not a number or a value out of range. */
dn_status dn_augment_parse(const char *text, dn_augment *a, dn_error *err);
/* Writes the non-default fields as "key=value ..." (the form dn_augment_parse reads; "" when all
 * are off) into buf of size bytes. Returns the length it needed, as snprintf does. */
int dn_augment_print(const dn_augment *a, char *buf, size_t size);
/* Non-zero when any transform is switched on. */
int dn_augment_active(const dn_augment *a);
/* Applies a's transforms (all but mixup) in place to images (n, h, w, c) of the given shape, values
 * 0..1, as training does: image i is transformed as the image at position first_position + i of the
 * given epoch (1 for the first) of a run with this seed, on any thread count. Allocates its scratch;
 * returns DN_EARG or DN_ENOMEM (images untouched) on failure. */
dn_status dn_augment_images(const dn_augment *a, uint64_t seed, int epoch, long first_position, float *images, int n,
                            dn_shape shape, dn_error *err);

/* Learning-rate schedules, applied per batch on top of warm-up. */
typedef enum dn_schedule {
    DN_SCHEDULE_CONSTANT = 0, /* lr throughout (Keras's default) */
    DN_SCHEDULE_STEP = 1,     /* lr * gamma^floor(epoch / step_every) */
    DN_SCHEDULE_COSINE = 2,   /* cosine from lr down to lr * min_lr over the run */
    DN_SCHEDULE_ONECYCLE = 3  /* one-cycle (Smith 2018): up to lr, then cosine down to lr * min_lr */
} dn_schedule;

typedef struct dn_train_params {
    dn_optimizer optimizer;
    float lr;        /* 0 (the default): the optimizer's Keras default, DN_ADAM_DEFAULT_LR for Adam and
                        DN_SGD_DEFAULT_LR for SGD */
    float beta1, beta2, epsilon; /* Adam: 0.9, 0.999, 1e-7 (Keras) */
    float momentum;  /* SGD: 0.9 */
    int epochs;
    int batch_size;
    uint64_t seed;   /* drives shuffling and dropout. A later dn_train of the same net with the same
                        seed continues the generator where the last call left it (as a resumed
                        checkpoint does); another seed starts it afresh from that seed */
    dn_batch_fn on_batch; /* may be NULL */
    dn_epoch_fn on_epoch; /* may be NULL */
    void *user;
    /* Schedule and regularisation; the defaults (all zero) train exactly as before. */
    dn_schedule schedule;
    float warmup;          /* epochs of linear warm-up from 0 to lr (0: none) */
    int step_every;        /* DN_SCHEDULE_STEP: epochs per step (0: 10) */
    float step_gamma;      /* DN_SCHEDULE_STEP: factor per step (0: 0.1) */
    float min_lr;          /* cosine / one-cycle: final rate as a fraction of lr (default 0) */
    float weight_decay;    /* decoupled weight decay (AdamW, Loshchilov and Hutter 2019): p -= lr_t * wd * p */
    float label_smoothing; /* targets (1 - s) on the label and s / classes spread over all classes */
    int patience;          /* early stopping: stop after this many epochs without a better validation
                              loss and restore the best epoch's weights (0: off; needs a validation set).
                              A run stopped before its end (DN_ESTOPPED, or a checkpoint saved from
                              on_epoch, which keeps the best epoch so far) continues the count when it
                              is continued or resumed; a call that ends normally closes it */
    int ensemble;          /* members to train, with seeds seed, seed + 1, ...; 0 or 1: a single net */
    dn_augment augment;
    /* Ensembles: called before each member's training starts (member 0-based, of n_members); return
     * non-zero to stop (DN_ESTOPPED). May be NULL. With T > 1 threads (dn_set_threads) and at least
     * T members left to train, T members train side by side, one thread each (the same weights, bit
     * for bit, as one after the other); fewer left train one after the other on all threads, and so
     * do all members under data-parallel training (dn_train_shared over processes) or when dn_train
     * is called inside the caller's own OpenMP parallel region. Side by side, on_member is called
     * for each member of the group before any of them starts (a stop there trains none of them);
     * on_epoch for every member's epochs (dn_epoch_stats.member says which; each member's epochs
     * count from 1); on_batch for one of them only, the first still training. Callbacks never run
     * at the same time, but may run on another thread than the caller's, while other members are
     * training: they must not touch the net or its members (no save, history or evaluation) until
     * dn_train returns. A non-zero return from one stops every member training at that moment. */
    int (*on_member)(void *user, int member, int n_members);
} dn_train_params;

dn_train_params dn_train_default_params(void);

/* The learning rate of a training step (src/recipe.c): the step ends `done` (0 < done <= 1) of the
 * way through epoch `epoch` (0-based) of a run of total_epochs. Constant: lr. Step: lr *
 * step_gamma^floor(epoch / step_every). Cosine: from lr at the start down to lr * min_lr at the end.
 * One-cycle: a cosine rise from lr / 25 to lr over the first 30% of the run, then a cosine fall to
 * lr * min_lr. Warm-up multiplies any of them by (epoch + done) / warmup while that is below 1.
 * lr 0 means the optimizer's default. dn_train calls it every batch with total_epochs = the epochs
 * in the net's history when the call started + params->epochs, so a run resumed from a checkpoint
 * (with the epochs that are left) gets the same rates as one that was never stopped. */
float dn_schedule_lr(const dn_train_params *p, int epoch, double done, int total_epochs);

/* Parses a recipe's "key=value ..." (the keys: epochs batch lr optimizer=adam|sgd momentum
 * schedule=constant|step|cosine|onecycle warmup step_every step_gamma min_lr weight_decay
 * label_smoothing patience ensemble val_split) onto *p, changing only the keys named; val_split
 * goes to *val_split (may be NULL). Returns DN_EFORMAT naming the key when a key is unknown or a
 * value is not valid. */
dn_status dn_train_parse(const char *text, dn_train_params *p, double *val_split, dn_error *err);
/* Writes p's settings as "epochs=.. batch=.. lr=.. optimizer=.. [the others that are not off]" (the
 * form dn_train_parse reads) into buf of size bytes; returns the length it needed, as snprintf. */
int dn_train_print(const dn_train_params *p, double val_split, char *buf, size_t size);
/* A spec may carry its recipe on `train key=value ...` and `augment key=value ...` lines anywhere
 * after its `input` line (they are not layers; dn_net_spec keeps them, so a saved model keeps its
 * recipe). Applies them, in spec order, onto *params (and val_split onto *val_split, which may be
 * NULL), changing only the keys they name: callers apply their own overrides afterwards. */
dn_status dn_net_recipe(const dn_net *net, dn_train_params *params, double *val_split, dn_error *err);

/* Data-parallel training over several processes (an MPI job, say). Every process calls
 * dn_train_shared with the same net, data and params and its own rank. Each computes the row-wise
 * leading layers (convolutions, pooling, dropout, flatten) for its share of every batch's row
 * blocks and the rest of the network for the whole batch; allgather hands every process the
 * others' shares, and every process adds the blocks' gradient sums in block order as one process
 * does: the model is the same bit for bit for any n_ranks. The library itself does no networking.
 * allgather(user, buf, offsets): buf holds n_ranks parts back to back, part r in floats
 * [offsets[r], offsets[r + 1]); this process has filled part `rank`; on return every part must
 * hold what its owner wrote. Returns 0, non-zero when the exchange failed. */
typedef struct dn_train_share {
    int rank, n_ranks;
    int (*allgather)(void *user, float *buf, const size_t *offsets);
    void *user;
} dn_train_share;

/* dn_train as one of share->n_ranks processes (share NULL or n_ranks <= 1: alone). Also returns
 * DN_EIO when an exchange failed and DN_EARG for a rank outside 0..n_ranks-1. */
dn_status dn_train_shared(dn_net *net, const dn_dataset *train, const dn_dataset *val, const dn_train_params *params,
                          const dn_train_share *share, dn_error *err);

/* What one data-parallel training step of `batch` rows exchanges (dn_train_shared):
 * the row-wise prefix's output, *row_floats per row, and one gradient sum of *block_floats per
 * backward row block, *blocks of them. Returns the floats every rank holds after the step's
 * exchanges (each receives the other ranks' share of them); 0 when the net has no such prefix. */
size_t dn_net_exchange_floats(const dn_net *net, int batch, size_t *row_floats, size_t *block_floats, int *blocks);

/* Trains net on train (shuffled each epoch), evaluating on val after each epoch when val is not
 * NULL and has rows. Appends one dn_epoch_stats per epoch to the net's history. Returns DN_ENAN if
 * the loss stops being finite, DN_ESHAPE if the data does not fit the network. */
dn_status dn_train(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                   const dn_train_params *params, dn_error *err);

/* The epochs trained so far (borrowed). For an ensemble: member 0's (each member keeps its own, see
 * dn_net_ensemble_member). */
const dn_epoch_stats *dn_net_history(const dn_net *net, int *n_epochs);

/* ------------------------------------------------------------------ ensembles */

/*
 * An ensemble is a dn_net (member 0) that carries further members: networks with the same input
 * shape and classes whose softmax outputs dn_net_predict, dn_net_predict_ws and dn_net_evaluate
 * average (the arithmetic mean of the members' probabilities, summed in member order). dn_train with
 * params->ensemble = K > 1 trains the net itself as member 0 with params->seed, then builds members
 * 1..K-1 from the same spec with seeds seed + 1, ... and trains each in the same way (augmentation,
 * schedules and early stopping apply to every member), members side by side when there are
 * threads for it (dn_train_params.on_member). Layer-level functions (dn_net_layer_info,
 * dn_net_layer_count, dn_net_param_count, dn_net_spec, feature maps, dn_workspace_layer_output)
 * describe member 0. A workspace made for an ensemble holds one workspace per member. dn_model_save
 * writes every member into one file and dn_model_load restores them; checkpoints of ensembles are
 * refused (DN_EARG), as are int8 quantisation and the C export.
 */
#define DN_MAX_ENSEMBLE 64

/* Adds member to net's ensemble; on success net owns it (freed by dn_net_free(net)) and its
 * raw_max becomes net's. DN_ESHAPE when its input shape or classes differ from net's, DN_EARG when
 * member is net, already a member, itself an ensemble, or the ensemble would pass DN_MAX_ENSEMBLE.
 * On failure the caller still owns member. */
dn_status dn_net_ensemble_add(dn_net *net, dn_net *member, dn_error *err);

/* The number of members: 1 for a single network (0 for NULL). */
int dn_net_ensemble_size(const dn_net *net);

/* Member i (0 is net itself), borrowed; NULL when i is out of range. */
const dn_net *dn_net_ensemble_member(const dn_net *net, int i);

/* ------------------------------------------------------------------ metrics */

typedef struct dn_metrics {
    int n;                          /* examples */
    double loss;                    /* mean categorical cross-entropy */
    double accuracy;
    long confusion[DN_N_CLASSES][DN_N_CLASSES]; /* rows = true class, columns = predicted */
    long support[DN_N_CLASSES];     /* true examples per class */
    double precision[DN_N_CLASSES], recall[DN_N_CLASSES], f1[DN_N_CLASSES];
    double roc_auc[DN_N_CLASSES];   /* one-vs-rest; NaN when a class has no positives or negatives */
    double precision_macro, recall_macro, f1_macro, roc_auc_macro; /* unweighted means */
} dn_metrics;

/* Computes every metric from predicted probabilities (n, DN_N_CLASSES) and true labels. Classes
 * never predicted get precision 0 (as scikit-learn's zero_division=0). */
dn_status dn_metrics_compute(const float *probs, const uint8_t *labels, int n, dn_metrics *m,
                             dn_error *err);

/* Runs dn_net_predict over the data set and computes the metrics. probs_out, when not NULL,
 * receives the (n, DN_N_CLASSES) probabilities. */
dn_status dn_net_evaluate(const dn_net *net, const dn_dataset *data, dn_metrics *m, float *probs_out,
                          dn_error *err);

/* Mean and (population) standard deviation of values[0..n). */
void dn_mean_std(const double *values, int n, double *mean, double *std);

/* ------------------------------------------------------------------ model files */

/* Writes the net as safetensors: little-endian float32 tensors named "<index>.<kind>.<tensor>",
 * and __metadata__ holding the spec, raw_max, class names, seed, preprocessing and history.
 * Written to a temporary file in the same directory, flushed and renamed. */
dn_status dn_model_save(const dn_net *net, const char *path, dn_error *err);

/* Reads a model written by dn_model_save, checking the header, every tensor's name, dtype, shape and
 * offsets against the spec in the metadata. */
dn_status dn_model_load(const char *path, dn_net **out, dn_error *err);

/* A checkpoint is a model file plus everything training needs to continue exactly where it stopped:
 * optimizer state, the random generator, and the position inside the current epoch. dn_train on a
 * loaded checkpoint (same data, same parameters) continues bit for bit as if never interrupted.
 * dn_model_load also reads checkpoints, ignoring the training state. */
dn_status dn_checkpoint_save(const dn_net *net, const char *path, dn_error *err);
dn_status dn_checkpoint_load(const char *path, dn_net **out, dn_error *err);

/* Is path a saved model (safetensors, told by its first bytes) or a spec (text)? *is_saved (may be
 * NULL) receives 1 for a saved model. DN_EIO when the file cannot be read. */
dn_status dn_model_is_saved(const char *path, int *is_saved, dn_error *err);

/* Opens path as dn_model_is_saved tells: a saved model with dn_model_load, or a spec with
 * dn_net_load_spec and seed. *is_saved as above. */
dn_status dn_model_open(const char *path, uint64_t seed, dn_net **out, int *is_saved, dn_error *err);

/* ------------------------------------------------------------------ splits, folds, top-k */

/* How a run divides a data set, recorded in model files (notes "test_split", "split_seed",
 * "val_split") so that evaluation can find the same test rows again. */
#define DN_DEFAULT_TEST_SPLIT 0.2 /* held out of a set that has no test rows of its own */
typedef struct dn_split {
    double test_split; /* > 0: hold out this fraction of all rows (train and test pooled) as the test
                          set, chosen with seed as scikit-learn's train_test_split(shuffle=True) does:
                          the first ceil(test_split * n) rows of dn_permutation(seed, n). 0: the
                          data set's own test rows, or DN_DEFAULT_TEST_SPLIT when it has none */
    uint64_t seed;
    double val_split;  /* Keras validation_split: the last n - floor(n * (1 - val_split)) training
                          rows validate (taken before any shuffling); 0: no validation rows */
} dn_split;

/* Applies split to a data set's training rows and test rows (test may have n == 0). Fills new data
 * sets *train_out, *val_out (n == 0 without val_split) and *test_out, each freed with
 * dn_dataset_free; on failure all three are empty. *held_out (may be NULL) receives 1 when the test
 * rows were drawn at random (test_split > 0, or a set without test rows). DN_EARG when a fraction
 * is outside [0, 1) or leaves no rows on one side. */
dn_status dn_split_apply(const dn_split *split, const dn_dataset *train, const dn_dataset *test,
                         dn_dataset *train_out, dn_dataset *val_out, dn_dataset *test_out, int *held_out,
                         dn_error *err);

/* Records split and the data set's name (may be NULL) as the net's notes "data", "test_split" (only
 * when > 0), "split_seed" and "val_split". */
dn_status dn_net_note_split(dn_net *net, const char *data_name, const dn_split *split, dn_error *err);

/* Reads back what dn_net_note_split recorded: returns a bitmask of what the net had, DN_NOTED_DATA
 * (*data_name, borrowed from the net), DN_NOTED_TEST_SPLIT, DN_NOTED_SEED, DN_NOTED_VAL_SPLIT; the
 * fields of split it had no note for are left as they were. data_name may be NULL. */
enum { DN_NOTED_DATA = 1, DN_NOTED_TEST_SPLIT = 2, DN_NOTED_SEED = 4, DN_NOTED_VAL_SPLIT = 8 };
int dn_net_noted_split(const dn_net *net, const char **data_name, dn_split *split);

/* k-fold cross-validation (scikit-learn's KFold(shuffle=True)): the rows of data in the order of
 * dn_permutation(seed, n) are cut into k folds whose sizes differ by at most one (the first n % k
 * take the extra row). Fold `fold` (0-based) is *test_out; the other rows, in that same order, are
 * *train_out. DN_EARG unless 2 <= k <= n and 0 <= fold < k. */
dn_status dn_kfold_split(const dn_dataset *data, int k, int fold, uint64_t seed, dn_dataset *train_out,
                         dn_dataset *test_out, dn_error *err);

/* Called by dn_cross_validate before each fold (m NULL) and after it (m its metrics). Return
 * non-zero to stop (DN_ESTOPPED). */
typedef int (*dn_fold_fn)(void *user, int fold, int k, int n_train, int n_test, const dn_metrics *m);

/* Cross-validates the network of spec_text on data: for each fold of dn_kfold_split(data, k, fold,
 * params->seed), a fresh net from the spec initialised with seed params->seed + fold, trained with
 * params (seed params->seed + fold) on the other folds, evaluated on the fold. Fills fold_loss[k]
 * and fold_accuracy[k]; probs (n, DN_N_CLASSES) and labels (n), when not NULL, receive the
 * out-of-fold predictions and true labels in fold order (each row predicted by the one net that
 * never saw it). */
dn_status dn_cross_validate(const char *spec_text, const dn_dataset *data, int k, const dn_train_params *params,
                            dn_fold_fn on_fold, void *user, double *fold_loss, double *fold_accuracy, float *probs,
                            uint8_t *labels, dn_error *err);

/* dn_cross_validate of folds [first_fold, end_fold) only (one process's share of a distributed
 * cross-validation): the other folds' entries of fold_loss, fold_accuracy, probs and labels are
 * left as they are. */
dn_status dn_cross_validate_folds(const char *spec_text, const dn_dataset *data, int k, int first_fold, int end_fold,
                                  const dn_train_params *params, dn_fold_fn on_fold, void *user, double *fold_loss,
                                  double *fold_accuracy, float *probs, uint8_t *labels, dn_error *err);

/* The k most probable classes of probs (n_classes values) in falling order, ties to the lower
 * class, into classes[0..k); k is capped at n_classes. Returns the number written. */
int dn_top_k(const float *probs, int n_classes, int k, int *classes);

/* ------------------------------------------------------------------ plots */

/*
 * Pictures drawn with cairo. Every dn_plot_* function writes one file at `path`: a PNG, or an SVG
 * when path ends in ".svg". The file is written to a temporary name beside path and renamed into
 * place only when complete, so the directory must exist. Sizes below are the PNG's in pixels (an
 * SVG has the same size in points). On failure nothing is left at path and the functions return
 * DN_EARG (bad arguments), DN_ELIMIT (a picture over 16384 pixels a side), DN_ENOMEM, or DN_EIO (the
 * file could not be written). They never print.
 */

/* Grids of images. */
#define DN_PLOT_GRID_COLS 10   /* samples: images per row */
#define DN_PLOT_MISTAKE_COLS 5 /* mistakes: images per row (their titles are wider) */
#define DN_PLOT_MAX_IMAGES 400 /* at most this many images in one grid */

/* Draws n images of data (rows indices[0..n), 1 <= n <= DN_PLOT_MAX_IMAGES) in a grid of
 * min(n, DN_PLOT_GRID_COLS) columns, each titled titles[i] (titles may be NULL: "label 7"), under an
 * overall title (may be NULL). Size: width 24 + 104 * cols, height 52 + 124 * rows. */
dn_status dn_plot_samples(const dn_dataset *data, const int *indices, int n, const char *const *titles,
                          const char *title, const char *path, dn_error *err);

/* What augmentation a does to n images of data (rows indices[0..n)): a grid with one row per image,
 * the image itself first, then `versions` augmented versions of it (dn_augment_images with seed,
 * epochs 1..versions), under an overall title (may be NULL). n * (versions + 1) must be at most
 * DN_PLOT_MAX_IMAGES. The first channel is drawn. Size: width 24 + 104 * (versions + 1), height
 * 52 + 124 * n. */
dn_status dn_plot_augmented(const dn_dataset *data, const int *indices, int n, const dn_augment *a, int versions,
                            uint64_t seed, const char *title, const char *path, dn_error *err);

/* Picks one row of each class present in data, at random from seed (the R1 notebook's picture):
 * fills indices[0..k) in class order and returns k (0..DN_N_CLASSES). */
int dn_plot_pick_per_class(const dn_dataset *data, uint64_t seed, int indices[DN_N_CLASSES]);

/* The output of one layer of net for one image (h, w, c of the net's input) as a grid of tiles, one
 * per channel, with the input image on the left. Runs dn_net_predict on the image first. Each channel
 * is normalised as the R1 notebook does: subtract its mean, divide by its (population) standard
 * deviation, times 64 plus 128, clipped to 0..255 (a constant channel is drawn as 128), and drawn
 * with the viridis colour map. The layer must have a spatial output (not flat): DN_EARG otherwise.
 * Size: cols = min(c, 16) tiles across, rows = ceil(c / cols); width 208 + 60 * cols, height
 * 64 + max(150, 60 * rows). */
dn_status dn_plot_feature_map(dn_net *net, const float *image, int layer, const char *path, dn_error *err);

/* dn_plot_feature_map for every conv2d and maxpool layer, to dir/features-LL-KIND.png where LL is
 * the 1-based layer number in two digits ("features-01-conv2d.png"). *n_written (may be NULL)
 * receives the number of files written, also on failure. */
dn_status dn_plot_feature_maps(dn_net *net, const float *image, const char *dir, int *n_written, dn_error *err);

/* Training curves, history[0..n) as dn_net_history returns it (n >= 1): loss on the left, accuracy
 * on the right, training and validation (when finite) on the same axes. Size 1000 x 420. */
dn_status dn_plot_history(const dn_epoch_stats *history, int n, const char *path, dn_error *err);

/* Where dn_plot_confusion put things, in pixels of the PNG. */
typedef struct dn_plot_heatmap_layout {
    int x, y;      /* top-left corner of the cell (true 0, predicted 0); rows go down, columns right */
    int cell;      /* side of a cell; cell (t, p) starts at (x + p * cell, y + t * cell) */
    int bar_x, bar_y, bar_w, bar_h; /* the colour bar: its top row is max_count, its bottom row 0 */
    long max_count;                 /* the top of the colour scale (the largest count, at least 1) */
} dn_plot_heatmap_layout;

/* Confusion-matrix heatmap (rows = true class on the y axis, columns = predicted) with the count in
 * every cell and a colour bar; the colour of a cell depends only on its count (linear, 0 to the
 * largest count). layout (may be NULL) receives the geometry. Size 640 x 580. */
dn_status dn_plot_confusion(const dn_metrics *m, const char *path, dn_plot_heatmap_layout *layout,
                            dn_error *err);

/* One-vs-rest ROC curves for each class from probs (n, DN_N_CLASSES) and labels, with each class's
 * AUC in the legend (taken from m when m is not NULL, so that it matches the metrics table; otherwise
 * the area under the drawn curve). Classes without positives or negatives are listed, not drawn.
 * Size 760 x 600. */
dn_status dn_plot_roc(const float *probs, const uint8_t *labels, int n, const dn_metrics *m, const char *path,
                      dn_error *err);

/* Cross-validation: per-fold loss (left) and accuracy (right) of k >= 1 folds, with the mean as a
 * dashed line (its value and the standard deviation in the legend). Size 1000 x 420. */
dn_status dn_plot_cv(const double *fold_loss, const double *fold_accuracy, int k, const char *path, dn_error *err);

/* The most confidently wrong rows of data: those whose most probable class in probs (data->n,
 * DN_N_CLASSES) is not the label, by falling probability of that class, at most max_n (1 <= max_n
 * <= DN_PLOT_MAX_IMAGES) of them, each titled "true 4 -> predicted 9 (0.97)". *n_wrong (may be NULL)
 * receives the number of wrong rows in all. With no mistakes the picture says so. Size: shown =
 * min(max_n, wrong), cols = max(1, min(shown, DN_PLOT_MISTAKE_COLS)), rows = max(1, ceil(shown /
 * cols)); width 24 + 200 * cols, height 52 + 124 * rows. */
dn_status dn_plot_mistakes(const dn_dataset *data, const float *probs, int max_n, const char *path, int *n_wrong,
                           dn_error *err);

/* ------------------------------------------------------------------ images */

/* A grey image: pixels (h, w), row-major, 0 = black .. 1 = white. Objects filled by dn_image_* own
 * their pixels (free with dn_image_free); a caller may also point a dn_image at its own buffer and
 * pass it to the functions taking `const dn_image *`. */
typedef struct dn_image {
    int w, h;
    float *pixels; /* (h, w) */
} dn_image;

/* Images claiming more pixels than this (or a side over DN_IMAGE_MAX_SIDE) are refused with
 * DN_ELIMIT before anything is allocated, unless the caller passes a smaller max_pixels. */
#define DN_IMAGE_MAX_PIXELS 40000000u
#define DN_IMAGE_MAX_SIDE 30000

/* Decodes a PNG, JPEG, BMP or PGM/PPM/PBM image held in memory (the kind is detected from the first
 * bytes) into a grey image: RGB becomes luma (0.299 R + 0.587 G + 0.114 B), alpha is composited on
 * white. max_pixels limits w * h (0: DN_IMAGE_MAX_PIXELS). On success *out owns its pixels; on
 * failure *out is zeroed and the status is DN_EFORMAT (not an image, broken or truncated data),
 * DN_ELIMIT (too large) or DN_ENOMEM. bytes stay the caller's. */
dn_status dn_image_decode(const void *bytes, size_t len, size_t max_pixels, dn_image *out, dn_error *err);

/* Reads the file at path and decodes it as dn_image_decode does; messages start with the path.
 * DN_EIO when it cannot be read. */
dn_status dn_image_load(const char *path, size_t max_pixels, dn_image *out, dn_error *err);

/* A new w x h image filled with value (0..1). */
dn_status dn_image_new(int w, int h, float value, dn_image *out, dn_error *err);

/* Frees the pixels and zeroes the image. NULL is a no-op. */
void dn_image_free(dn_image *img);

/* Encodes the image as an 8-bit grey PNG. *png is malloc'd (the caller frees it with free()). */
dn_status dn_image_encode_png(const dn_image *img, void **png, size_t *len, dn_error *err);

/* Writes the image as an 8-bit grey PNG, atomically (temporary file, then rename). */
dn_status dn_image_save_png(const dn_image *img, const char *path, dn_error *err);

/* The name of the preprocessing a network with this input shape expects, as model files record it
 * in metadata "preprocess": "mnist-28x28" for 28x28x1, "optdigits-8x8" for 8x8x1, else NULL. */
const char *dn_preprocess_name(dn_shape target);

/* Turns a picture of one digit (any size, any polarity) into what the network was trained on,
 * following the steps that made the data set:
 *  - background = a quadratic surface fitted (robustly) to the image's border, so that paper lit
 *    unevenly is still background; noise sigma = the border's spread around it. The digit is what
 *    departs from the background (dark on light or light on dark, whichever departs more), made
 *    bright on dark;
 *  - pixels within max(4 sigma, 0.04) of the background are dropped, as are specks (8-connected
 *    pieces holding under 2% of the ink of the largest piece); the rest is stretched to 0..1 (its
 *    98th percentile becomes 1); no ink standing 0.1 above the background: no digit;
 *  - crop to the bounding box of the ink;
 *  - mnist-28x28: scale (area averaging) so the longer side is 20 px, keeping the aspect ratio,
 *    stretch so the darkest pixel is full ink, and place in 28x28 so the centre of mass is at pixel
 *    (14, 14), as MNIST's images are (integer shift, no resampling blur);
 *  - optdigits-8x8: the UCI data are 32x32 bitmaps counted in 4x4 blocks, made by NIST's own
 *    normalisation. Here: scale to 32 px tall keeping the aspect ratio but at most 28 px wide (every
 *    UCI digit spans all 8 rows, almost none all 8 columns), binarise at 0.5, thicken strokes
 *    thinner than 5 px (the UCI pen) with 3x3 dilations, centre in 32x32, count the ink pixels of
 *    each 4x4 block (0..16) and divide by 16 as the data set's loader does.
 * out receives (target.h, target.w, 1) values 0..1. Returns DN_ENOTFOUND ("no digit found") when the
 * image holds no ink, DN_ESHAPE for a target other than the two above. Images larger than 1024 px
 * on a side are first shrunk by area averaging. */
dn_status dn_preprocess(const dn_image *img, dn_shape target, float *out, dn_error *err);

/* ------------------------------------------------------------------ int8 quantisation and C export */

/*
 * Post-training int8 quantisation in TensorFlow Lite's scheme: weights int8 symmetric per output
 * channel, biases int32 (scale = input scale x weight scale), activations int8 per tensor with a
 * zero point set from the ranges observed on calibration rows, requantisation by a 32-bit
 * fixed-point multiplier and a shift, sigmoid and tanh by 256-entry tables, batchnorm folded into the
 * convolution or dense layer before it, dropout and flatten removed. Integer-only up to the logits.
 * The input is the data set's raw pixels (scale 1 / raw_max, zero point -128: exact). The host
 * path and the exported C run the same kernel source (src/quant/int8_kernels.h), so their logits
 * are equal bit for bit.
 */
typedef struct dn_qnet dn_qnet;

#define DN_QUANT_DEFAULT_CALIBRATION 1000

/* Quantises net, calibrated on n_calibration rows of calibration spread evenly over it (all of them
 * when it has fewer). The net is only read. DN_EARG names the layer when a layer cannot be
 * quantised (a softmax before the end, a batchnorm with no conv2d or dense without activation
 * before it); DN_ESHAPE when the rows do not fit the net; DN_ELIMIT when a channel could overflow
 * an int32 accumulator. *out is freed with dn_qnet_free. */
dn_status dn_quantize(const dn_net *net, const dn_dataset *calibration, int n_calibration, dn_qnet **out,
                      dn_error *err);

void dn_qnet_free(dn_qnet *q);
dn_shape dn_qnet_input_shape(const dn_qnet *q);
int dn_qnet_raw_max(const dn_qnet *q);
int dn_qnet_n_classes(const dn_qnet *q);

/* Runs n images of raw pixels (n, h, w, c), 0..raw_max: int8 logits (n, n_classes) and the
 * predicted classes (n), either may be NULL. Thread-safe: the qnet is only read (per-call arenas). */
dn_status dn_qnet_predict(const dn_qnet *q, const uint8_t *pixels, int n, int8_t *logits, int *classes,
                          dn_error *err);

/* The real values of one image's int8 logits (n_classes floats), and softmax probabilities of n
 * images' logits (n, n_classes): for metrics on the host only. */
void dn_qnet_logits_float(const dn_qnet *q, const int8_t *logits, float *out);
void dn_qnet_probabilities(const dn_qnet *q, const int8_t *logits, int n, float *probs);

/* dn_qnet_predict over the data set, then every metric. probs_out may be NULL. */
dn_status dn_qnet_evaluate(const dn_qnet *q, const dn_dataset *data, dn_metrics *m, float *probs_out,
                           dn_error *err);

/* Bytes of const data the export puts in flash (weights, biases, multipliers, tables, layer table)
 * and bytes of RAM (the arena: the largest pair of live activations). Either may be NULL. */
void dn_qnet_sizes(const dn_qnet *q, size_t *weight_bytes, size_t *arena_bytes);

/* 1 when name is a C identifier of at most 64 characters. */
int dn_c_identifier(const char *name);

/* Writes dir/name.h and dir/name.c (C99, no malloc, no float, <stdint.h> and <string.h> only):
 *   #define NAME_INPUT_HEIGHT, NAME_INPUT_WIDTH, NAME_INPUT_CHANNELS, NAME_CLASSES, NAME_ARENA_BYTES
 *   int NAME_predict(const uint8_t *pixels, int8_t logits[NAME_CLASSES]);
 * Both are written to temporary names and renamed when complete: on failure neither exists.
 * DN_EARG when name is not a C identifier, DN_EIO when dir cannot be written. */
dn_status dn_qnet_export_c(const dn_qnet *q, const char *name, const char *dir, dn_error *err);
#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#ifdef __cplusplus
}
#endif
#endif /* DIGITNET_H */

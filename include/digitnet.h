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

#define DN_VERSION "0.1.0"
#define DN_N_CLASSES 10 /* digits 0..9 (and the ten Fashion-MNIST classes) */

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
    DN_ESTOPPED   /* a callback asked to stop */
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
    float *images;    /* (n, h, w, c), values 0..1 (raw value / raw_max) */
    uint8_t *labels;  /* (n), 0..9 */
    int raw_max;      /* the divisor used to scale: 16 for optdigits, 255 for IDX */
} dn_dataset;

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
 * data_dir (may be NULL), $DIGITNET_DATA, ./data, ../shared/data and /usr/share/datasets, in that
 * order. On success *train holds the training rows and *test the data set's own test rows (n == 0
 * when the set has none, e.g. a lone data.csv). When nothing is found the message lists every
 * place looked at and where to put the files (status DN_ENOTFOUND). */
dn_status dn_data_open(const char *name_or_dir, const char *data_dir, dn_dataset *train,
                       dn_dataset *test, dn_error *err);

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

/* Divisor that maps the raw pixels of the training data to 0..1 (16 or 255); recorded in model files. */
int dn_net_raw_max(const dn_net *net);
void dn_net_set_raw_max(dn_net *net, int raw_max);
uint64_t dn_net_seed(const dn_net *net);

/* Free-form notes about how the net was trained ("data", "test_split", ...), saved in model files
 * as metadata "run.<key>". Keys and values are copied; at most 32 notes. */
dn_status dn_net_set_note(dn_net *net, const char *key, const char *value, dn_error *err);
/* The note's value (borrowed) or NULL. */
const char *dn_net_note(const dn_net *net, const char *key);
/* The i-th note; returns 0 past the end. */
int dn_net_note_at(const dn_net *net, int i, const char **key, const char **value);

/* Sets the number of threads for the heavy kernels (0: all cores). Process-wide. */
void dn_set_threads(int n_threads);

/* Inference: probs (n, n_classes) for images (n, h, w, c). Dropout off, batchnorm uses running
 * statistics. Works through the images in chunks. */
dn_status dn_net_predict(dn_net *net, const float *images, int n, float *probs, dn_error *err);

/* After a dn_net_predict of a single image: the output of layer `index` for that image, shape in
 * *shape. Borrowed; valid until the next call on the net. NULL if index is out of range. */
const float *dn_net_layer_output(const dn_net *net, int index, dn_shape *shape);

/* ------------------------------------------------------------------ training */

typedef enum dn_optimizer { DN_OPT_ADAM = 0, DN_OPT_SGD = 1 } dn_optimizer;

typedef struct dn_epoch_stats {
    int epoch;                /* 1-based */
    double loss, accuracy;    /* on the training batches, averaged as Keras does */
    double val_loss, val_accuracy; /* NaN when there is no validation set */
    double seconds;
    double images_per_sec;
} dn_epoch_stats;

/* Called after every batch (done of total images this epoch) and after every epoch.
 * Return non-zero to stop training after the current batch (dn_train returns DN_ESTOPPED). */
typedef int (*dn_batch_fn)(void *user, int epoch, int done, int total, double loss, double accuracy);
typedef int (*dn_epoch_fn)(void *user, const dn_epoch_stats *stats);

typedef struct dn_train_params {
    dn_optimizer optimizer;
    float lr;        /* 0.001 for Adam, 0.01 for SGD */
    float beta1, beta2, epsilon; /* Adam: 0.9, 0.999, 1e-7 (Keras) */
    float momentum;  /* SGD: 0.9 */
    int epochs;
    int batch_size;
    uint64_t seed;   /* drives shuffling and dropout */
    dn_batch_fn on_batch; /* may be NULL */
    dn_epoch_fn on_epoch; /* may be NULL */
    void *user;
} dn_train_params;

dn_train_params dn_train_default_params(void);

/* Trains net on train (shuffled each epoch), evaluating on val after each epoch when val is not
 * NULL and has rows. Appends one dn_epoch_stats per epoch to the net's history. Returns DN_ENAN if
 * the loss stops being finite, DN_ESHAPE if the data does not fit the network. */
dn_status dn_train(dn_net *net, const dn_dataset *train, const dn_dataset *val,
                   const dn_train_params *params, dn_error *err);

/* The epochs trained so far (borrowed). */
const dn_epoch_stats *dn_net_history(const dn_net *net, int *n_epochs);

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
dn_status dn_net_evaluate(dn_net *net, const dn_dataset *data, dn_metrics *m, float *probs_out,
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

#ifdef __cplusplus
}
#endif
#endif /* DIGITNET_H */

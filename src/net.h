/* The network object, shared by the files that build, run, train and save it. */
#ifndef DN_NET_H
#define DN_NET_H

#include "layers/layer.h"

#define DN_MAX_LAYERS 64
#define DN_MAX_NOTES 32
#define DN_MAX_RECIPE 16
/* Row blocks of the row-wise leading layers (dn_net_forward / dn_net_backward) are sized so that
 * a block's largest activation fills about this much cache: 4 rows of the MNIST network's first
 * convolution forward, 8 backward; small images get larger blocks, but at least 8 (forward) or 4
 * (backward) blocks per batch so that threads have work to share, and at most 16 (each backward
 * block keeps a gradient sum). Sizes follow from the shapes and the batch size only, never from
 * the thread count. */
#define DN_FORWARD_BLOCK_BYTES (320 * 1024)
#define DN_BACKWARD_BLOCK_BYTES (640 * 1024)
#define DN_PREDICT_CHUNK 32 /* rows per inference pass: measured best of 32..256 (the dense GEMM gains with more rows, the rest loses cache) */
#define DN_MAX_PARAMS (64u * 1024 * 1024) /* refuse specs beyond 256 MB of weights */

struct dn_net {
    dn_shape input;
    size_t max_floats; /* parsing refuses more parameters than this (a model file's data size) */
    int n_layers;
    dn_layer layers[DN_MAX_LAYERS];
    char *spec; /* canonical spec text, owned */

    /* One block each; layers hold views into them. */
    size_t n_params, n_buffers;
    float *params;  /* (n_params) trainable weights */
    float *grads;   /* (n_params) */
    float *buffers; /* (n_buffers) non-trainable state */

    /* Optimizer state, allocated by the first dn_train. */
    float *opt_m, *opt_v; /* (n_params) Adam moments; opt_m is the SGD velocity */
    long opt_step;

    /* Batch arena: activations, layer scratch and two gradient buffers, sized for batch_cap. */
    int batch_cap;
    float *arena;
    float *acts[DN_MAX_LAYERS + 1]; /* acts[i + 1] = output of layer i, (batch_cap, out_i) */
    float *dbuf[2];                 /* (batch_cap, largest activation) */
    float *tile_dbuf;               /* (batch_cap, largest activation) the row blocks' second gradient buffer */
    size_t largest;                 /* floats of the largest activation per row */
    size_t prefix_largest;          /* floats of the largest row-wise prefix activation per row (set by parsing) */
    float *tile_grads;              /* (tiles, prefix_params) per-block gradient sums (dn_net_backward) */
    size_t prefix_params;           /* parameters of the row-wise layers that lead the net in training (parsing) */
    size_t tile_params;             /* floats of one block's gradient sum: the prefix's, or the largest row-wise
                                       layer's after it, whichever is more (parsing) */

    dn_rng rng; /* dropout and shuffling */
    int rng_seeded; /* set by the first dn_train; later calls (and resumed checkpoints) continue it */
    uint64_t train_seed; /* the seed rng started from: a dn_train with another seed starts it afresh */

    /* Where training stands inside an epoch, so that a run stopped mid-epoch resumes exactly. */
    int *order;          /* (order_n) this epoch's shuffled row order */
    int order_n;
    int epoch_pos;       /* rows of the current epoch already trained; 0 at an epoch boundary */
    double epoch_loss;   /* sums over those rows */
    int epoch_correct;
    double epoch_seconds;

    /* Early stopping, kept across dn_train calls and in checkpoints: a resumed run compares its
     * epochs with the best one before the stop, and can still restore it. */
    float *best;       /* (n_params + n_buffers) the best epoch's weights and buffers; NULL before */
    double best_loss;  /* its validation loss */
    int best_epoch;    /* 1-based; 0: none yet */
    int best_stale;    /* epochs since it without a better validation loss */
    uint64_t seed;
    int raw_max;

    /* The spec's recipe lines ("train key=value ..." and "augment key=value ..."), canonical text,
     * owned; kept at the end of the canonical spec and applied by dn_net_recipe. */
    int n_recipe;
    char *recipe[DN_MAX_RECIPE];

    int n_notes;
    char *note_keys[DN_MAX_NOTES], *note_values[DN_MAX_NOTES];

    dn_epoch_stats *history;
    int n_history, cap_history;

    /* Data-parallel training (dn_train_shared): set for its run, else NULL. */
    struct dn_net_share *share;

    /* Ensembles: members 1..n_members of the ensemble this net is member 0 of, owned. */
    int n_members;
    struct dn_net **members; /* (n_members) */
};

/* What one thread needs to run a net's inference: its own activations and layer scratch, and its own
 * copies of the layers (their scratch pointers and per-pass settings such as conv2d's whole-map
 * switch), whose parameter pointers still point at the net's weights, which inference only reads. */
struct dn_workspace {
    const dn_net *net;
    int batch_cap;
    float *arena;                   /* activations and scratch for batch_cap rows */
    float *acts[DN_MAX_LAYERS + 1]; /* acts[i + 1] = output of layer i, (batch_cap, out_i) */
    int last_n;                     /* rows of the last forward pass */
    dn_layer layers[DN_MAX_LAYERS];
    /* Ensembles: one workspace per further member of the net. */
    int n_members;
    struct dn_workspace **members; /* (n_members) */
};
/* How training passes split each batch over processes (dn_train_shared): the backward
 * pass's row blocks, cut from the shapes and batch size only, go to the ranks in contiguous runs;
 * each rank runs the row-wise prefix for its blocks' rows only and exchanges the prefix's output
 * and the blocks' gradient sums (allgather), and everything after the prefix runs on the whole
 * batch on every rank. */
typedef struct dn_net_share {
    int rank, n_ranks;
    int (*allgather)(void *user, float *buf, const size_t *offsets);
    void *user;
    size_t *offsets; /* (n_ranks + 1) */
    int failed;      /* an exchange failed: the pass's results are not to be used */
} dn_net_share;

/* The rows [*first, *end) of an n-row training batch whose input this rank needs: all of them
 * when the net is not shared or has no row-wise prefix. */
void dn_net_share_rows(const dn_net *net, int n, int *first, int *end);

/* dn_net_parse that refuses, before allocating, a network of more than max_floats parameters. */
dn_status dn_net_parse_limited(const char *spec_text, const char *source_name, uint64_t seed, size_t max_floats,
                               dn_net **out, dn_error *err);

/* Makes sure the arena holds batch rows; allocates only when it grows. */
dn_status dn_net_reserve(dn_net *net, int batch, dn_error *err);
/* Forward pass over n <= batch_cap rows; returns the output (n, n_classes) inside the arena. */
const float *dn_net_forward(dn_net *net, const float *x, int n, int training);
/* Backward pass from d(logits) (n, n_classes), which it overwrites; accumulates into net->grads. */
void dn_net_backward(dn_net *net, float *dlogits, int n);
/* After dn_net_backward(net, dlogits, n): row `row` of the d(input) layer `layer` (>= 1) wrote,
 * wherever the batch-wide or row-block pass put it. For tests. A relu right after batchnorm
 * writes none (batchnorm applies its gradient): NULL for such a layer. */
const float *dn_net_din_row(const dn_net *net, const float *dlogits, int n, int layer, int row);
/* Soft targets for the training loss: row r's target is lam[r] on labels[r] and 1 - lam[r] on
 * partner[r] (mixup; partner NULL: all on labels[r]), then label smoothing: (1 - smoothing) times
 * that plus smoothing / classes on every class. */
typedef struct dn_soft_targets {
    float smoothing;
    const uint8_t *partner; /* (n) the mixed-in images' labels, or NULL */
    const float *lam;       /* (n) the weights of labels[r], with partner */
} dn_soft_targets;
/* The training loss with soft targets t on softmax outputs probs (n, classes): adds
 * -sum_j t_j log(p_j) (each p_j clipped to [1e-7, 1 - 1e-7]) to *loss_sum and writes
 * d(loss)/d(logits) = (p - t) / n into dlogits (n, classes). A mixed row counts as correct when
 * the prediction is its dominant label (the one weighted >= 0.5). */
void dn_soft_xent(const float *probs, const uint8_t *labels, const dn_soft_targets *t, int n, int classes,
                  float *dlogits, double *loss_sum, int *correct);
/* Appends one epoch to the history. */
dn_status dn_net_push_history(dn_net *net, const dn_epoch_stats *stats, dn_error *err);

#endif

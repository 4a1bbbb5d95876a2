/* Internal view of a quantised network (src/quant/): the integer layers the host runs and the C
 * export writes, the float layers they were made from, and hooks for the tests. */
#ifndef DN_QUANT_H
#define DN_QUANT_H

#include "internal.h"
/* The host compiles the kernels at -O3, which vectorises their int8 dot products; integer
 * arithmetic gives the same bits at any optimisation level. */
/* The host's dot product: int8_kernels.h's own, or AVX-512 VNNI where the CPU has it (quant.c). */
int32_t dn_quant_dot(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc);
#define DNQ_DOT dn_quant_dot
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize("O3")
#endif
#include "quant/int8_kernels.h"
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#include <stddef.h>

/* 1 when dn_quant_dot uses AVX-512 VNNI (not with DIGITNET_SIMD=generic). For tests. */
int dn_quant_vnni(void);
/* int8_kernels.h's portable dot product, for tests to compare with. */
int32_t dn_quant_dot_portable(const int8_t *x, const int8_t *w, int32_t n, int16_t zp, int32_t acc);

/* The text of int8_kernels.h, NUL-terminated (kernels_text.c). */
extern const char dn_int8_kernels_text[];

#define DN_QUANT_MAX_OPS 64

typedef enum dn_qact { DN_QACT_NONE = 0, DN_QACT_RELU, DN_QACT_SIGMOID, DN_QACT_TANH } dn_qact;

/* One operation: the integer layer, plus the float layer it was quantised from. */
typedef struct dn_qop {
    dnq_layer q;       /* the integer layer; its pointers point into the arrays below */
    int source;        /* index of the dn_net layer it comes from (for messages and tests) */
    dn_qact act;       /* CONV: fused ReLU; LOOKUP: sigmoid or tanh */
    float *weight_f;   /* CONV: (out_c, kh, kw, in_c) float weights, batchnorm folded in */
    float *bias_f;     /* CONV: (out_c) */
    float *weight_scale; /* CONV: (out_c) */
    float out_scale;   /* output: real = out_scale * (q - q.out_zp) */
    float lo, hi;      /* the range observed in calibration */
    int8_t *weight;    /* owned arrays the dnq_layer points at */
    int32_t *bias, *mult;
    int8_t *shift, *table;
} dn_qop;

struct dn_qnet {
    dn_shape input;
    int raw_max, n_classes;
    int n_ops;
    dn_qop ops[DN_QUANT_MAX_OPS];
    dnq_layer layers[DN_QUANT_MAX_OPS]; /* copies of ops[i].q, contiguous for dnq_run */
    size_t arena_bytes;
};

/* Multiplier of a real factor r >= 0 as dnq_requantize takes it: r ~ mult * 2^(shift - 31),
 * 2^30 <= mult < 2^31 (mult 0 when r is below 2^-32). DN_ELIMIT when r >= 2^30. */
dn_status dn_quant_multiplier(double r, int32_t *mult, int32_t *shift, dn_error *err);

/* Runs the float layers of ops [0, op] on x (the previous op's output, or the input scaled 0..1
 * when op is 0 and x the image), writing op's output to out. */
void dn_qop_forward_float(const dn_qnet *q, int op, const float *in, float *out);

/* The number of values op writes. */
size_t dn_qop_out_size(const dn_qnet *q, int op);

#endif

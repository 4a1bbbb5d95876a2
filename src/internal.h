/* Internal helpers shared by the library's files: error reporting and the random generator. */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H

#include "digitnet.h"

#include <stdarg.h>
#include <stdint.h>

/* Hot element-wise kernels are compiled for AVX-512, AVX2 and plain x86-64; the loader picks the
 * best one the CPU has, so one binary runs everywhere and uses the wide units where they exist. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(DN_NO_MULTIVERSION)
#define DN_MULTIVERSION __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DN_MULTIVERSION
#endif

#if defined(__GNUC__)
#define DN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DN_PRINTF(a, b)
#endif

/* Records status and a printf-style message in err (when err is not NULL); returns status so that
 * callers can write `return dn_fail(err, DN_EIO, "%s: cannot open: %s", path, strerror(errno));`. */
dn_status dn_fail(dn_error *err, dn_status status, const char *fmt, ...) DN_PRINTF(3, 4);

/* The download cache, $XDG_CACHE_HOME/digitnet or else $HOME/.cache/digitnet, into buf. Returns -1
 * when neither variable is usable or buf is too small. */
int dn_cache_dir(char *buf, size_t size);

/* Small, fast, seedable generator (splitmix64). One lives in each net / training run: no globals. */
typedef struct dn_rng {
    uint64_t state;
} dn_rng;


/* The next word of option text such as "shift=2 rotate=10" (words apart by spaces, tabs or commas):
 * sets *word and *len and moves *cursor past it; 0 at the end of the text. */
static inline int dn_next_word(const char **cursor, const char **word, int *len)
{
    const char *s = *cursor;
    while (*s == ' ' || *s == '\t' || *s == ',')
        s++;
    *word = s;
    while (*s && *s != ' ' && *s != '\t' && *s != ',')
        s++;
    *len = (int)(s - *word);
    *cursor = s;
    return *len > 0;
}
/* splitmix64's k-th draw (k >= 1) after state s: every draw is a function of s + k * gamma alone,
 * so long runs of draws can be computed independently (and vectorised). dn_rng_next is this with
 * k = 1 and the state moved on. */
#define DN_RNG_GAMMA 0x9E3779B97F4A7C15ull
static inline uint64_t dn_rng_draw_at(uint64_t state, uint64_t k)
{
    uint64_t z = state + k * DN_RNG_GAMMA;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
/* A draw as a float in [0, 1): its top 24 bits, each value an exact float. */
static inline float dn_rng_to_unit(uint64_t draw)
{
    return (float)(int32_t)(draw >> 40) * (1.0f / 16777216.0f);
}

void dn_rng_seed(dn_rng *rng, uint64_t seed);
uint64_t dn_rng_next(dn_rng *rng);
/* Moves the generator n draws ahead at once (splitmix64's state is a counter), so that a long
 * sequence can be drawn in blocks on several threads and still be the one a single thread draws. */
void dn_rng_skip(dn_rng *rng, uint64_t n);
/* Uniform in [0, 1). */
float dn_rng_uniform(dn_rng *rng);
/* Uniform integer in [0, n). */
uint32_t dn_rng_below(dn_rng *rng, uint32_t n);

#endif

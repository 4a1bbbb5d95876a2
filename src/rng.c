/* splitmix64: tiny state, good statistical quality, and trivially reproducible from a seed. */
#include "internal.h"

void dn_rng_seed(dn_rng *rng, uint64_t seed)
{
    rng->state = seed ^ 0x9E3779B97F4A7C15ull;
}

uint64_t dn_rng_next(dn_rng *rng)
{
    uint64_t z = (rng->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dn_rng_skip(dn_rng *rng, uint64_t n)
{
    rng->state += n * 0x9E3779B97F4A7C15ull; /* wraps modulo 2^64, as n single steps would */
}

float dn_rng_uniform(dn_rng *rng)
{
    /* 24 random bits: every value is an exact float in [0, 1). */
    return (float)(dn_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

uint32_t dn_rng_below(dn_rng *rng, uint32_t n)
{
    /* Multiply-shift keeps the bias below 2^-32, far under anything a shuffle can show. */
    return (uint32_t)(((dn_rng_next(rng) >> 32) * (uint64_t)n) >> 32);
}

void dn_permutation(uint64_t seed, int n, int *perm)
{
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dn_rng_below(&rng, (uint32_t)i + 1);
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

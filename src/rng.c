/* splitmix64: tiny state, good statistical quality, and trivially reproducible from a seed. */
#include "internal.h"

void dn_rng_seed(dn_rng *rng, uint64_t seed)
{
    rng->state = seed ^ 0x9E3779B97F4A7C15ull;
}

uint64_t dn_rng_next(dn_rng *rng)
{
    uint64_t z = dn_rng_draw_at(rng->state, 1);
    rng->state += DN_RNG_GAMMA;
    return z;
}

void dn_rng_skip(dn_rng *rng, uint64_t n)
{
    rng->state += n * DN_RNG_GAMMA; /* wraps modulo 2^64, as n single steps would */
}

float dn_rng_uniform(dn_rng *rng)
{
    return dn_rng_to_unit(dn_rng_next(rng));
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

/* dn_rng: the project's deterministic random numbers (xoshiro256** seeded through
 * splitmix64), so that a seed reproduces a protocol draw or a training run exactly on
 * any machine. Not for secrets. */
#ifndef DN_RNG_H
#define DN_RNG_H

#include <stdint.h>

typedef struct dn_rng {
    uint64_t s[4];
} dn_rng;

void dn_rng_seed(dn_rng *r, uint64_t seed);
uint64_t dn_rng_next(dn_rng *r);
double dn_rng_uniform(dn_rng *r);             /* [0, 1), 53 bits */
uint64_t dn_rng_below(dn_rng *r, uint64_t n); /* uniform in [0, n), unbiased; n >= 1 */
double dn_rng_normal(dn_rng *r);              /* standard normal (Box-Muller) */
void dn_rng_shuffle(dn_rng *r, int *a, int n); /* Fisher-Yates */

#endif

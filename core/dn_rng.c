#include "dn_rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void dn_rng_seed(dn_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t dn_rng_next(dn_rng *r)
{
    uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double dn_rng_uniform(dn_rng *r)
{
    return (double)(dn_rng_next(r) >> 11) * 0x1.0p-53;
}

uint64_t dn_rng_below(dn_rng *r, uint64_t n)
{
    uint64_t limit = -n % n; /* 2^64 mod n: values below it would bias the modulo */
    for (;;) {
        uint64_t x = dn_rng_next(r);
        if (x >= limit)
            return x % n;
    }
}

double dn_rng_normal(dn_rng *r)
{
    double u1 = 1.0 - dn_rng_uniform(r), u2 = dn_rng_uniform(r); /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void dn_rng_shuffle(dn_rng *r, int *a, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)dn_rng_below(r, (uint64_t)i + 1), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* dn_simd: internal helpers of the vectorised kernels (dn_ops.c, dn_normality.c).
 * Not part of the library's API.
 *
 * Kernels are compiled for AVX-512, AVX2 and baseline x86-64 and picked at load time, so
 * one binary is fast here and still runs on any x86-64 (Docker images). Their vectors are
 * 16 floats wide in every clone and reduce in a fixed order, so all clones give
 * bit-identical results. Helpers must be inlined into each clone, or they are compiled
 * once for baseline x86-64 and the vector code inside them is lost. */
#ifndef DN_SIMD_H
#define DN_SIMD_H

#include <string.h>

/* clang (14) refuses these clones (64-byte vectors between inlined helpers are an ABI
 * error there, not a warning): a clang build gets the baseline version only, correct but
 * without AVX-512/AVX2 kernels. */
#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__clang__)
#define DN_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DN_VECTOR_CLONES
#endif
#define DN_INLINE static inline __attribute__((always_inline))

/* 16 channels as one value: AVX-512 registers where the clone has them, pairs of AVX2 or
 * quads of SSE registers otherwise. aligned(4): maps are float arrays, not 64-byte rows. */
typedef float dn_v16 __attribute__((vector_size(64), aligned(4)));
typedef int dn_m16 __attribute__((vector_size(64), aligned(4)));
typedef float dn_v8 __attribute__((vector_size(32), aligned(4)));
typedef float dn_v4 __attribute__((vector_size(16), aligned(4)));
#define V16 16
/* Passing 64-byte vectors between functions changes the ABI without AVX-512; these are
 * static and inlined, so no call crosses a translation unit. */
#pragma GCC diagnostic ignored "-Wpsabi"

DN_INLINE dn_v16 v16_load(const float *p)
{
    dn_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

DN_INLINE void v16_store(float *p, dn_v16 v)
{
    memcpy(p, &v, sizeof v);
}

DN_INLINE dn_v16 v16_set(float x)
{
    dn_v16 v = {0};
    return v + x;
}

DN_INLINE dn_v16 v16_min(dn_v16 a, dn_v16 b)
{
    dn_m16 m = a < b;
    return (dn_v16)(((dn_m16)a & m) | ((dn_m16)b & ~m));
}

/* Halves, then quarters: a fixed tree, the same in every clone. */
DN_INLINE float v16_sum(dn_v16 v)
{
    dn_v8 lo, hi;
    memcpy(&lo, &v, sizeof lo);
    memcpy(&hi, (char *)&v + sizeof lo, sizeof hi);
    lo += hi;
    dn_v4 a, b;
    memcpy(&a, &lo, sizeof a);
    memcpy(&b, (char *)&lo + sizeof a, sizeof b);
    a += b;
    return (a[0] + a[2]) + (a[1] + a[3]);
}

DN_INLINE float v16_hmin(dn_v16 v)
{
    float m = v[0];
    for (int i = 1; i < V16; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

/* ||a - b||^2 over d floats (any d). */
/* Where m is all ones take b, else a (C has no vector ?:). */
DN_INLINE dn_v16 v16_select(dn_m16 m, dn_v16 a, dn_v16 b)
{
    return (dn_v16)(((dn_m16)a & ~m) | ((dn_m16)b & m));
}

#endif

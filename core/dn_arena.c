#include "dn_arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define ARENA_ALIGN 64
#define HUGE_PAGE (2u << 20)

void dn_arena_init(dn_arena *a)
{
    memset(a, 0, sizeof *a);
}

size_t dn_arena_floats_size(size_t n)
{
    return (n * sizeof(float) + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
}

int dn_arena_reserve(dn_arena *a, size_t cap)
{
    if (cap <= a->cap) {
        a->used = 0;
        return 0;
    }
    dn_arena_free(a);
    /* Huge-page alignment + MADV_HUGEPAGE: without transparent huge pages the timings of
     * the same process are bimodal on this kind of machine (PLATFORM-NOTES.md). */
    size_t align = cap >= HUGE_PAGE ? HUGE_PAGE : ARENA_ALIGN;
    size_t rounded = (cap + align - 1) & ~(align - 1);
    void *p = NULL;
    if (posix_memalign(&p, align, rounded) != 0)
        return -1;
    if (align == HUGE_PAGE)
        madvise(p, rounded, MADV_HUGEPAGE);
    a->base = p;
    a->cap = rounded;
    a->used = 0;
    return 0;
}

float *dn_arena_floats(dn_arena *a, size_t n)
{
    size_t bytes = dn_arena_floats_size(n);
    if (bytes > a->cap - a->used)
        return NULL;
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    return p;
}

void dn_arena_reset(dn_arena *a)
{
    a->used = 0;
}

void dn_arena_free(dn_arena *a)
{
    free(a->base);
    dn_arena_init(a);
}

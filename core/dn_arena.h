/* dn_arena: one aligned block carved by a bump pointer (ggml style). A forward context
 * sizes its arena once per input size, so a warm call allocates nothing. */
#ifndef DN_ARENA_H
#define DN_ARENA_H

#include <stddef.h>

typedef struct dn_arena {
    unsigned char *base;
    size_t cap, used;
} dn_arena;

void dn_arena_init(dn_arena *a);
/* Makes room for cap bytes (drops the contents). Returns 0 or -1 when out of memory. */
int dn_arena_reserve(dn_arena *a, size_t cap);
/* 64-byte aligned floats from the arena, or NULL when it is full. */
float *dn_arena_floats(dn_arena *a, size_t n);
void dn_arena_reset(dn_arena *a);
void dn_arena_free(dn_arena *a);

/* Bytes dn_arena_floats(n) consumes, for sizing. */
size_t dn_arena_floats_size(size_t n);

#endif

/* dn_safetensors: reader and writer of the safetensors format, F32 tensors only.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header, then the data
 * area. The header maps each tensor name to {"dtype", "shape", "data_offsets":
 * [begin, end]} (offsets relative to the data area) and may hold "__metadata__", an
 * object of strings. The reader keeps the whole file in one buffer and hands out
 * pointers into it; it treats every file as hostile (the parser is fuzzed). */
#ifndef DN_SAFETENSORS_H
#define DN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dn_error.h"
#include "dn_limits.h"

struct cJSON;

typedef struct dn_st_tensor {
    char name[DN_ST_MAX_NAME];
    int ndim; /* 0 for a scalar */
    int64_t shape[DN_ST_MAX_DIMS];
    const float *data; /* into the reader's buffer (4-byte aligned), or the writer's caller */
    size_t count;      /* product of shape */
} dn_st_tensor;

typedef struct dn_safetensors {
    uint8_t *buf; /* the whole file, 64-byte aligned */
    size_t size;
    dn_st_tensor *tensors; /* in header order */
    int n_tensors;
    struct cJSON *meta; /* the __metadata__ object or NULL */
    dn_error err;
} dn_safetensors;

void dn_st_init(dn_safetensors *st);
/* Both loaders release what st held before; on failure st is empty and st->err says why. */
int dn_st_load(dn_safetensors *st, const char *path);
int dn_st_load_memory(dn_safetensors *st, const uint8_t *data, size_t len); /* copies */
const dn_st_tensor *dn_st_find(const dn_safetensors *st, const char *name);
const char *dn_st_meta(const dn_safetensors *st, const char *key); /* NULL if absent */
void dn_st_free(dn_safetensors *st); /* safe twice; keeps st->err */

typedef struct dn_st_writer {
    dn_st_tensor *tensors; /* data points at the caller's floats */
    int n_tensors, cap;
    struct cJSON *meta; /* object of copied strings, or NULL */
    dn_error err;
} dn_st_writer;

void dn_st_writer_init(dn_st_writer *w);
/* Copies key and value; a repeated key replaces the earlier value. */
int dn_st_writer_meta(dn_st_writer *w, const char *key, const char *value);
/* Does not copy data: the caller keeps it alive until dn_st_writer_save. */
int dn_st_writer_add(dn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                     const float *data);
/* Atomic: writes PATH.tmp.<pid>, fsyncs, renames over PATH, fsyncs the directory. On
 * failure the temp file is removed and PATH untouched; a full disk is DN_ENOSPC. */
int dn_st_writer_save(dn_st_writer *w, const char *path);
void dn_st_writer_free(dn_st_writer *w); /* safe twice; keeps w->err */

#endif

#include "dn_safetensors.h"

#include "dn_file.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor data is handed out (and written) as the host's floats, without conversion. */
#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "dn_safetensors needs a little-endian host: safetensors data is little-endian"
#endif

_Static_assert(SIZE_MAX >= DN_ST_MAX_FILE_BYTES, "a whole safetensors file must fit in size_t");

#define ST_ALIGN        64                 /* of the reader's buffer */
#define ST_MAX_JSON_INT (INT64_C(1) << 53) /* largest integer a JSON double holds exactly */
#define ST_META         "__metadata__"

/* ---- checks shared by reader and writer, so that each accepts what the other makes ---- */

static int st_check_name(dn_error *err, int code, const char *name)
{
    size_t len = strlen(name);
    if (len >= DN_ST_MAX_NAME)
        return dn_error_set(err, code, "tensor name '%.32s...' is %zu bytes long (at most %d)",
                            name, len, DN_ST_MAX_NAME - 1);
    return DN_OK;
}

/* Computes the element count. Checks ndim before reading shape, so the reader may call
 * it with an ndim too large to have been stored. */
static int st_check_shape(dn_error *err, int code, const char *name, int ndim, const int64_t *shape,
                          size_t *count)
{
    if (ndim < 0 || ndim > DN_ST_MAX_DIMS)
        return dn_error_set(err, code, "tensor '%s' has %d dimensions (at most %d)", name, ndim,
                            DN_ST_MAX_DIMS);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return dn_error_set(err, code, "tensor '%s' has negative dimension %" PRId64, name,
                                shape[i]);
        /* A dimension past 2^53 would not survive the JSON round trip even when a zero
         * elsewhere keeps the product small. */
        if (shape[i] > ST_MAX_JSON_INT || __builtin_mul_overflow(n, shape[i], &n) ||
            (uint64_t)n > DN_ST_MAX_FILE_BYTES / 4)
            return dn_error_set(err, code,
                                "tensor '%s': shape product overflows the %llu-byte limit", name,
                                DN_ST_MAX_FILE_BYTES);
    }
    *count = (size_t)n;
    return DN_OK;
}

static const dn_st_tensor *st_find(const dn_st_tensor *v, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    return NULL;
}

/* ---- reader ---- */

void dn_st_init(dn_safetensors *st) { memset(st, 0, sizeof *st); }

void dn_st_free(dn_safetensors *st)
{
    free(st->buf);
    free(st->tensors);
    cJSON_Delete(st->meta);
    st->buf = NULL;
    st->size = 0;
    st->tensors = NULL;
    st->n_tensors = 0;
    st->meta = NULL;
}

static uint64_t st_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* A JSON number that is an integer in [-2^53, 2^53]; -1 otherwise. */
static int st_json_int(const cJSON *v, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= -(double)ST_MAX_JSON_INT && d <= (double)ST_MAX_JSON_INT) || d != (double)(int64_t)d)
        return -1;
    *out = (int64_t)d;
    return 0;
}

/* cJSON 1.7.15 can read one byte past the length it is given (cJSON issues #775, #804),
 * so the header is parsed from a NUL-terminated copy rather than in place. */
static int st_parse_json(const uint8_t *hdr, size_t n, cJSON **root, dn_error *err)
{
    char *copy = malloc(n + 1);
    if (!copy)
        return dn_error_set(err, DN_ENOMEM, "no memory for a %zu-byte header", n);
    memcpy(copy, hdr, n);
    copy[n] = '\0';
    const char *end = copy;
    *root = cJSON_ParseWithLengthOpts(copy, n, &end, 0);
    /* Writers pad the header with spaces up to the data alignment; nothing else may follow. */
    size_t at = (size_t)(end - copy), tail = strspn(end, " \t\r\n");
    free(copy);
    if (!*root)
        return dn_error_set(err, DN_EFORMAT, "header is not valid JSON (error near byte %zu)", at);
    if (cJSON_IsObject(*root) && at + tail == n)
        return DN_OK;
    cJSON_Delete(*root);
    *root = NULL;
    return dn_error_set(err, DN_EFORMAT, "header %s",
                        at + tail == n ? "is not a JSON object"
                                       : "has trailing bytes after the JSON");
}

static int st_check_meta(const cJSON *meta, dn_error *err)
{
    if (!cJSON_IsObject(meta))
        return dn_error_set(err, DN_EFORMAT, ST_META " is not an object");
    const cJSON *v;
    cJSON_ArrayForEach (v, meta) {
        if (!cJSON_IsString(v))
            return dn_error_set(err, DN_EFORMAT, ST_META " entry '%.64s' is not a string",
                                v->string);
    }
    return DN_OK;
}

/* data is the data area (data_len bytes) which starts at file offset data_off. */
static int st_parse_tensor(const cJSON *item, const uint8_t *data, uint64_t data_len,
                           uint64_t data_off, dn_st_tensor *t, dn_error *err)
{
    const char *name = item->string;
    int rc = st_check_name(err, DN_EFORMAT, name);
    if (rc)
        return rc;
    memcpy(t->name, name, strlen(name) + 1);
    if (!cJSON_IsObject(item))
        return dn_error_set(err, DN_EFORMAT, "tensor '%s' is not an object", name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsString(dtype))
        return dn_error_set(err, DN_EFORMAT, "tensor '%s' has no dtype string", name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return dn_error_set(err, DN_EUNSUPPORTED,
                            "tensor '%s' has dtype '%.16s'; only F32 is supported", name,
                            dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return dn_error_set(err, DN_EFORMAT, "tensor '%s' has no shape array", name);

    int ndim = cJSON_GetArraySize(shape), i = 0;
    const cJSON *d;
    if (ndim <= DN_ST_MAX_DIMS) {
        cJSON_ArrayForEach (d, shape) {
            if (st_json_int(d, &t->shape[i++]))
                return dn_error_set(
                    err, DN_EFORMAT,
                    "tensor '%s' has a dimension that is not an integer of at most 2^53", name);
        }
    }
    t->ndim = ndim;
    if ((rc = st_check_shape(err, DN_EFORMAT, name, ndim, t->shape, &t->count)))
        return rc;

    int64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 || st_json_int(offs->child, &begin) ||
        st_json_int(offs->child->next, &end) || begin < 0 || begin > end)
        return dn_error_set(err, DN_EFORMAT,
                            "tensor '%s': data_offsets is not [begin, end] with 0 <= begin <= end",
                            name);
    if ((uint64_t)end > data_len)
        return dn_error_set(err, DN_EFORMAT,
                            "tensor '%s': data_offsets [%" PRId64 ", %" PRId64
                            "] beyond the %" PRIu64 "-byte data area",
                            name, begin, end, data_len);
    if ((uint64_t)(end - begin) != (uint64_t)t->count * 4)
        return dn_error_set(err, DN_EFORMAT, "tensor '%s' has %" PRId64 " bytes for %zu floats",
                            name, end - begin, t->count);
    /* The buffer is 64-byte aligned, so file alignment is memory alignment. */
    if ((data_off + (uint64_t)begin) % 4)
        return dn_error_set(err, DN_EFORMAT,
                            "tensor '%s' at file offset %" PRIu64 " is not 4-byte aligned", name,
                            data_off + (uint64_t)begin);
    t->data = (const float *)(const void *)(data + begin);
    return DN_OK;
}

static int st_parse_entries(dn_safetensors *st, cJSON *root, uint64_t data_off)
{
    cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, ST_META);
    int n = cJSON_GetArraySize(root) - (meta != NULL), rc;
    if (n > DN_ST_MAX_TENSORS)
        return dn_error_set(&st->err, DN_ETOOBIG, "%d tensors (at most %d)", n, DN_ST_MAX_TENSORS);
    if (meta && (rc = st_check_meta(meta, &st->err)))
        return rc;
    if (!(st->tensors = calloc(n ? (size_t)n : 1, sizeof *st->tensors)))
        return dn_error_set(&st->err, DN_ENOMEM, "no memory for %d tensors", n);
    const cJSON *item;
    cJSON_ArrayForEach (item, root) {
        if (item == meta)
            continue;
        if (strcmp(item->string, ST_META) == 0)
            return dn_error_set(&st->err, DN_EFORMAT, "header has two " ST_META " entries");
        rc = st_parse_tensor(item, st->buf + data_off, st->size - data_off, data_off,
                             &st->tensors[st->n_tensors], &st->err);
        if (rc)
            return rc;
        st->n_tensors++;
    }
    if (meta)
        st->meta = cJSON_DetachItemViaPointer(root, meta);
    return DN_OK;
}

static int st_cmp_name(const void *a, const void *b)
{
    return strcmp((*(const dn_st_tensor *const *)a)->name, (*(const dn_st_tensor *const *)b)->name);
}

static int st_cmp_data(const void *a, const void *b)
{
    const float *x = (*(const dn_st_tensor *const *)a)->data;
    const float *y = (*(const dn_st_tensor *const *)b)->data;
    return (x > y) - (x < y);
}

/* Duplicate names and overlapping data, both found by sorting one array of pointers. */
static int st_check_layout(dn_safetensors *st)
{
    int n = st->n_tensors, rc = DN_OK;
    if (n < 2)
        return DN_OK;
    const dn_st_tensor **v = malloc((size_t)n * sizeof *v);
    if (!v)
        return dn_error_set(&st->err, DN_ENOMEM, "no memory to check %d tensors", n);
    for (int i = 0; i < n; i++)
        v[i] = &st->tensors[i];
    qsort(v, (size_t)n, sizeof *v, st_cmp_name);
    for (int i = 1; i < n && !rc; i++)
        if (strcmp(v[i - 1]->name, v[i]->name) == 0)
            rc = dn_error_set(&st->err, DN_EFORMAT, "duplicate tensor name '%s'", v[i]->name);
    qsort(v, (size_t)n, sizeof *v, st_cmp_data);
    const dn_st_tensor *last = NULL; /* the non-empty tensor reaching furthest so far */
    for (int i = 0; i < n && !rc; i++) {
        if (!v[i]->count)
            continue;
        if (last && v[i]->data < last->data + last->count)
            rc = dn_error_set(&st->err, DN_EFORMAT, "tensors '%s' and '%s' overlap", last->name,
                              v[i]->name);
        else
            last = v[i];
    }
    free(v);
    return rc;
}

static int st_parse(dn_safetensors *st)
{
    if (st->size < 8)
        return dn_error_set(&st->err, DN_EFORMAT,
                            "file of %zu bytes is shorter than the 8-byte header length", st->size);
    uint64_t n = st_le64(st->buf);
    if (n == 0)
        return dn_error_set(&st->err, DN_EFORMAT, "header length is 0");
    if (n > DN_ST_MAX_HEADER_BYTES)
        return dn_error_set(&st->err, DN_ETOOBIG,
                            "header length %" PRIu64 " exceeds the %u-byte limit", n,
                            DN_ST_MAX_HEADER_BYTES);
    if (n > st->size - 8)
        return dn_error_set(&st->err, DN_EFORMAT,
                            "truncated: header of %" PRIu64 " bytes, %zu left in the file", n,
                            st->size - 8);
    cJSON *root;
    int rc = st_parse_json(st->buf + 8, (size_t)n, &root, &st->err);
    if (rc)
        return rc;
    rc = st_parse_entries(st, root, 8 + n);
    cJSON_Delete(root);
    return rc ? rc : st_check_layout(st);
}

/* One 64-byte aligned buffer for the whole file, so tensor data keeps its file alignment. */
static int st_alloc(dn_safetensors *st, size_t len)
{
    if (len > DN_ST_MAX_FILE_BYTES)
        return dn_error_set(&st->err, DN_ETOOBIG, "file of %zu bytes exceeds the %llu-byte limit",
                            len, DN_ST_MAX_FILE_BYTES);
    /* aligned_alloc wants a multiple of the alignment, and never 0 here. */
    if (!(st->buf = aligned_alloc(ST_ALIGN, (len / ST_ALIGN + 1) * ST_ALIGN)))
        return dn_error_set(&st->err, DN_ENOMEM, "no memory for a %zu-byte file", len);
    st->size = len;
    return DN_OK;
}

static void st_reset(dn_safetensors *st)
{
    dn_st_free(st);
    dn_error_clear(&st->err);
}

/* Parses what the loader put in st->buf; on any failure st is left empty. */
static int st_finish(dn_safetensors *st, int rc)
{
    if (rc == DN_OK)
        rc = st_parse(st);
    if (rc != DN_OK)
        dn_st_free(st);
    return rc;
}

static int st_read_fd(dn_safetensors *st, int fd, const char *path)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0)
        return dn_error_set(&st->err, DN_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return dn_error_set(&st->err, DN_EIO, "%s: not a regular file", path);
    int rc = st_alloc(st, (size_t)sb.st_size);
    for (size_t got = 0; rc == DN_OK && got < st->size;) {
        ssize_t k = read(fd, st->buf + got, st->size - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            rc = dn_error_set(&st->err, DN_EIO, "%s: %s", path, strerror(errno));
        else if (k == 0)
            rc = dn_error_set(&st->err, DN_EIO, "%s: file shrank while being read", path);
        got += k > 0 ? (size_t)k : 0;
    }
    return rc;
}

int dn_st_load(dn_safetensors *st, const char *path)
{
    st_reset(st);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dn_error_set(&st->err, DN_EIO, "%s: %s", path, strerror(errno));
    int rc = st_read_fd(st, fd, path);
    close(fd);
    return st_finish(st, rc);
}

int dn_st_load_memory(dn_safetensors *st, const uint8_t *data, size_t len)
{
    st_reset(st);
    int rc = st_alloc(st, len);
    if (rc == DN_OK && len)
        memcpy(st->buf, data, len);
    return st_finish(st, rc);
}

const dn_st_tensor *dn_st_find(const dn_safetensors *st, const char *name)
{
    return st_find(st->tensors, st->n_tensors, name);
}

const char *dn_st_meta(const dn_safetensors *st, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(st->meta, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* ---- writer ---- */

/* Adds item to obj, deleting item on failure, so that a chain of adds needs one check. */
static int st_add(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

void dn_st_writer_init(dn_st_writer *w) { memset(w, 0, sizeof *w); }

void dn_st_writer_free(dn_st_writer *w)
{
    free(w->tensors);
    cJSON_Delete(w->meta);
    w->tensors = NULL;
    w->n_tensors = w->cap = 0;
    w->meta = NULL;
}

int dn_st_writer_meta(dn_st_writer *w, const char *key, const char *value)
{
    if (!key || !value)
        return dn_error_set(&w->err, DN_EINVAL, "metadata key and value must not be NULL");
    if (!w->meta && !(w->meta = cJSON_CreateObject()))
        return dn_error_set(&w->err, DN_ENOMEM, "no memory for metadata");
    cJSON_DeleteItemFromObjectCaseSensitive(w->meta, key);
    if (!st_add(w->meta, key, cJSON_CreateString(value)))
        return dn_error_set(&w->err, DN_ENOMEM, "no memory for metadata '%.64s'", key);
    return DN_OK;
}

int dn_st_writer_add(dn_st_writer *w, const char *name, int ndim, const int64_t *shape,
                     const float *data)
{
    size_t count;
    int rc;
    if (!name || (ndim > 0 && !shape))
        return dn_error_set(&w->err, DN_EINVAL, "tensor name and shape must not be NULL");
    if ((rc = st_check_name(&w->err, DN_EINVAL, name)) ||
        (rc = st_check_shape(&w->err, DN_EINVAL, name, ndim, shape, &count)))
        return rc;
    if (strcmp(name, ST_META) == 0 || st_find(w->tensors, w->n_tensors, name))
        return dn_error_set(&w->err, DN_EINVAL, "tensor name '%s' is reserved or already added",
                            name);
    if (count && !data)
        return dn_error_set(&w->err, DN_EINVAL, "tensor '%s' has no data", name);
    if (w->n_tensors == DN_ST_MAX_TENSORS)
        return dn_error_set(&w->err, DN_ETOOBIG, "more than %d tensors", DN_ST_MAX_TENSORS);
    if (w->n_tensors == w->cap) {
        int cap = w->cap ? 2 * w->cap : 16;
        dn_st_tensor *v = realloc(w->tensors, (size_t)cap * sizeof *v);
        if (!v)
            return dn_error_set(&w->err, DN_ENOMEM, "no memory for %d tensors", cap);
        w->tensors = v;
        w->cap = cap;
    }
    dn_st_tensor *t = &w->tensors[w->n_tensors++];
    memcpy(t->name, name, strlen(name) + 1);
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->data = data;
    t->count = count;
    return DN_OK;
}

static cJSON *st_entry(const dn_st_tensor *t, uint64_t begin)
{
    double shape[DN_ST_MAX_DIMS];
    double offs[2] = {(double)begin, (double)(begin + t->count * 4)};
    for (int i = 0; i < t->ndim; i++)
        shape[i] = (double)t->shape[i];
    cJSON *e = cJSON_CreateObject();
    if (st_add(e, "dtype", cJSON_CreateString("F32")) &&
        st_add(e, "shape", cJSON_CreateDoubleArray(shape, t->ndim)) &&
        st_add(e, "data_offsets", cJSON_CreateDoubleArray(offs, 2)))
        return e;
    cJSON_Delete(e);
    return NULL;
}

/* The header JSON (free with cJSON_free), tensors laid out contiguously in order added;
 * *data_bytes is the size of the data area. */
static char *st_header(const dn_st_writer *w, uint64_t *data_bytes)
{
    cJSON *root = cJSON_CreateObject();
    int ok = root && (!w->meta || cJSON_AddItemReferenceToObject(root, ST_META, w->meta));
    uint64_t off = 0;
    for (int i = 0; ok && i < w->n_tensors; i++) {
        ok = st_add(root, w->tensors[i].name, st_entry(&w->tensors[i], off));
        off += w->tensors[i].count * 4;
    }
    char *s = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    *data_bytes = off;
    return s;
}

static int st_write_body(const dn_st_writer *w, int fd, const char *json, size_t padded)
{
    size_t hlen = strlen(json);
    uint8_t len[8];
    for (int i = 0; i < 8; i++)
        len[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    int e = dn_file_write_all(fd, len, 8);
    if (!e)
        e = dn_file_write_all(fd, json, hlen);
    if (!e)
        e = dn_file_write_all(fd, "       ", padded - hlen);
    for (int i = 0; !e && i < w->n_tensors; i++)
        e = dn_file_write_all(fd, w->tensors[i].data, w->tensors[i].count * 4);
    if (!e && fsync(fd) != 0)
        e = errno;
    return e;
}

static int st_write_atomic(dn_st_writer *w, const char *path, const char *json, size_t padded)
{
    size_t cap = strlen(path) + 32;
    char *tmp = malloc(cap);
    if (!tmp)
        return dn_error_set(&w->err, DN_ENOMEM, "no memory for a temporary name");
    snprintf(tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    int rc = DN_OK, fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = dn_file_io_error(&w->err, errno, "cannot create", tmp);
    } else {
        int e = st_write_body(w, fd, json, padded);
        if (close(fd) != 0 && !e)
            e = errno;
        if (e)
            rc = dn_file_io_error(&w->err, e, "cannot write", tmp);
        else if (rename(tmp, path) != 0)
            rc = dn_file_io_error(&w->err, errno, "cannot rename to", path);
        if (rc)
            unlink(tmp);
        else /* PATH is already replaced: a failure here only means it may not be durable */
            rc = dn_file_sync_parent(path, &w->err);
    }
    free(tmp);
    return rc;
}

int dn_st_writer_save(dn_st_writer *w, const char *path)
{
    uint64_t data_bytes;
    char *json = st_header(w, &data_bytes);
    if (!json)
        return dn_error_set(&w->err, DN_ENOMEM, "no memory for the header");
    /* Spaces pad the header so that the data area starts 8-byte aligned. */
    size_t padded = (strlen(json) + 7) & ~(size_t)7;
    int rc;
    if (padded > DN_ST_MAX_HEADER_BYTES || 8 + padded + data_bytes > DN_ST_MAX_FILE_BYTES)
        rc = dn_error_set(&w->err, DN_ETOOBIG,
                          "file of %zu-byte header and %" PRIu64 " data bytes exceeds the limits",
                          padded, data_bytes);
    else
        rc = st_write_atomic(w, path, json, padded);
    cJSON_free(json);
    return rc;
}

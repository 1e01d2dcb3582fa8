#include "dn_registry.h"

#include "dn_file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define RG_PREFIX   "model-"
#define RG_SUFFIX   ".safetensors"
#define RG_REJECTED ".rejected"
#define RG_PUBLISH  ".publish."
/* Bytes a path may need past DATA_DIR: "/models/" + the longest name, a publish file (with
 * a 64-byte host name) and dn_model_save's temporary suffix, with room to spare. */
#define RG_TAIL_BYTES 256
#define RG_MAX_VERSION 999999999

/* A version file of the folder. */
typedef struct rg_entry {
    int version, rejected;
    char name[64];
} rg_entry;

/* ---- files ---- */

/* Formats a path below r->dir. dn_registry_open refused a DATA_DIR too long for any of
 * them, so nothing is ever cut short here. */
__attribute__((format(printf, 2, 3))) static void rg_path(char out[DN_REGISTRY_MAX_PATH],
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, DN_REGISTRY_MAX_PATH, fmt, ap);
    va_end(ap);
}

/* 0 or the errno of stat. */
static int rg_stamp(const char *path, dn_file_stamp *s)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno;
    *s = (dn_file_stamp){(unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
                         (long long)st.st_size,
                         (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
    return 0;
}

static int rg_stamp_eq(const dn_file_stamp *a, const dn_file_stamp *b)
{
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size && a->mtime_ns == b->mtime_ns;
}

/* ---- the folder ---- */

/* "model-<digits>.safetensors[.rejected]" with a version in 1..RG_MAX_VERSION. */
static int rg_parse(const char *name, rg_entry *e)
{
    size_t plen = strlen(RG_PREFIX), len = strlen(name);
    if (strncmp(name, RG_PREFIX, plen) || len >= sizeof e->name)
        return 0;
    const char *p = name + plen;
    long long v = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9' && digits < 10; p++, digits++)
        v = v * 10 + (*p - '0');
    if (!digits || v < 1 || v > RG_MAX_VERSION)
        return 0;
    if (!strcmp(p, RG_SUFFIX))
        e->rejected = 0;
    else if (!strcmp(p, RG_SUFFIX RG_REJECTED))
        e->rejected = 1;
    else
        return 0;
    e->version = (int)v;
    memcpy(e->name, name, len + 1);
    return 1;
}

/* Newest first; a version's good file before its rejected one. */
static int rg_cmp_entries(const void *a, const void *b)
{
    const rg_entry *x = a, *y = b;
    if (x->version != y->version)
        return x->version > y->version ? -1 : 1;
    return x->rejected - y->rejected;
}

/* Every version file of the folder, newest first (malloc'd, free it even when *n is 0),
 * and the highest number present (0 when none). */
static int rg_scan(const dn_registry *r, rg_entry **out, int *n, int *highest, dn_error *err)
{
    *out = NULL;
    *n = *highest = 0;
    DIR *d = opendir(r->dir);
    if (!d)
        return dn_file_io_error(err, errno, "cannot read folder", r->dir);
    int cap = 0, rc = DN_OK;
    struct dirent *de;
    rg_entry e;
    errno = 0;
    while (!rc && (de = readdir(d))) {
        if (!rg_parse(de->d_name, &e))
            continue;
        if (*n == cap) {
            rg_entry *grown = realloc(*out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof *grown);
            if (!grown) {
                rc = dn_error_set(err, DN_ENOMEM, "out of memory listing %s", r->dir);
                break;
            }
            *out = grown;
        }
        (*out)[(*n)++] = e;
        *highest = e.version > *highest ? e.version : *highest;
        errno = 0;
    }
    if (!rc && errno)
        rc = dn_file_io_error(err, errno, "cannot read folder", r->dir);
    closedir(d);
    if (rc)
        *n = *highest = 0;
    else if (*n)
        qsort(*out, (size_t)*n, sizeof **out, rg_cmp_entries);
    return rc;
}

/* ---- live models ---- */

static void rg_free_live(dn_live *l)
{
    dn_model_free(&l->model);
    free(l);
}

/* Drops one reference; the last one frees the model, outside the lock. */
static void rg_unref(dn_registry *r, dn_live *l)
{
    pthread_mutex_lock(&r->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&r->mu);
    if (last)
        rg_free_live(l);
}

/* Makes l live (its one reference becomes the registry's). Requests holding the model it
 * replaces keep it until their release. */
static void rg_swap(dn_registry *r, dn_live *l)
{
    pthread_mutex_lock(&r->mu);
    dn_live *old = r->live;
    r->live = l;
    pthread_mutex_unlock(&r->mu);
    if (old)
        rg_unref(r, old);
}

static dn_live *rg_new_live(int version, const char *path, const dn_file_stamp *stamp,
                            dn_error *err)
{
    dn_live *l = calloc(1, sizeof *l);
    if (!l) {
        dn_error_set(err, DN_ENOMEM, "out of memory for a model");
        return NULL;
    }
    dn_model_init(&l->model);
    l->version = version;
    snprintf(l->path, sizeof l->path, "%s", path);
    l->stamp = *stamp;
    l->refs = 1;
    return l;
}

/* Loads path as a new (not yet live) dn_live. Called under ops, never under mu: a load
 * takes as long as reading several MB. */
static int rg_load(dn_registry *r, const char *path, int version, const dn_file_stamp *stamp,
                   dn_live **out, dn_error *err)
{
    dn_live *l = rg_new_live(version, path, stamp, err);
    if (!l)
        return DN_ENOMEM;
    int rc = dn_model_load(&l->model, path, r->bb);
    if (rc) {
        dn_error_set(err, rc, "%s", l->model.err.msg);
        rg_free_live(l);
        return rc;
    }
    *out = l;
    return DN_OK;
}

static int rg_is_bad(const dn_registry *r, const dn_file_stamp *s)
{
    for (int i = 0; i < r->n_bad; i++)
        if (rg_stamp_eq(&r->bad[i], s))
            return 1;
    return 0;
}

/* Remembers a file that does not load, so that refresh does not read and report it again
 * on every tick. Forgetting one (no memory) only costs that. */
static void rg_mark_bad(dn_registry *r, const dn_file_stamp *s)
{
    if (r->n_bad == r->cap_bad) {
        int cap = r->cap_bad ? 2 * r->cap_bad : 8;
        dn_file_stamp *grown = realloc(r->bad, (size_t)cap * sizeof *grown);
        if (!grown)
            return;
        r->bad = grown;
        r->cap_bad = cap;
    }
    r->bad[r->n_bad++] = *s;
}

/* Tries one version file: *out is the loaded model, or NULL after a failure given to
 * report. */
static void rg_try(dn_registry *r, const char *path, int version, const dn_file_stamp *stamp,
                   dn_registry_report report, void *ctx, dn_live **out)
{
    dn_error why;
    int rc = rg_load(r, path, version, stamp, out, &why);
    if (!rc)
        return;
    if (report)
        report(ctx, path, why.msg);
    if (rc != DN_EIO && rc != DN_ENOMEM) /* those may pass: try again next time */
        rg_mark_bad(r, stamp);
}

/* The newest version that loads, other than `exclude`, into *out (NULL when none). With
 * cur, stops at cur's own file: nothing newer loads, so nothing is to change. */
static int rg_newest(dn_registry *r, const dn_live *cur, int exclude, dn_registry_report report,
                     void *ctx, dn_live **out, dn_error *err)
{
    rg_entry *e;
    int n, highest;
    *out = NULL;
    int rc = rg_scan(r, &e, &n, &highest, err);
    for (int i = 0; !rc && !*out && i < n; i++) {
        char path[DN_REGISTRY_MAX_PATH];
        dn_file_stamp stamp;
        rg_path(path, "%s/%s", r->dir, e[i].name);
        if (e[i].rejected || e[i].version == exclude || rg_stamp(path, &stamp))
            continue; /* a stat fails for a file deleted meanwhile by another process */
        if (cur && cur->version == e[i].version && rg_stamp_eq(&stamp, &cur->stamp))
            break;
        if (!rg_is_bad(r, &stamp))
            rg_try(r, path, e[i].version, &stamp, report, ctx, out);
    }
    free(e);
    return rc;
}

/* ---- opening ---- */

int dn_registry_open(dn_registry *r, const char *data_dir, const dn_backbone *bb, int keep,
                     dn_error *err)
{
    memset(r, 0, sizeof *r);
    if (keep < 1)
        return dn_error_set(err, DN_EINVAL, "keep must be at least 1 (got %d)", keep);
    if (strlen(data_dir) + RG_TAIL_BYTES >= DN_REGISTRY_MAX_PATH)
        return dn_error_set(err, DN_ETOOBIG, "data folder '%.48s...' is too long", data_dir);
    char parent[DN_REGISTRY_MAX_PATH];
    const char *slash = strrchr(data_dir, '/');
    if (!slash)
        snprintf(parent, sizeof parent, ".");
    else
        snprintf(parent, sizeof parent, "%.*s", slash == data_dir ? 1 : (int)(slash - data_dir),
                 data_dir);
    rg_path(r->dir, "%s/models", data_dir);
    int rc = dn_file_make_dir(data_dir, parent, err);
    if (!rc)
        rc = dn_file_make_dir(r->dir, data_dir, err);
    if (rc)
        return rc;
    /* hidden publish files older than any publish takes were left by a crashed one */
    dn_file_remove_stale(r->dir, RG_PUBLISH, DN_REGISTRY_STALE_SECONDS);
    r->bb = bb;
    r->keep = keep;
    if (gethostname(r->host, sizeof r->host - 1) != 0 || !r->host[0])
        snprintf(r->host, sizeof r->host, "localhost");
    atomic_init(&r->seq, 0u);
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_init(&r->ops, NULL);
    return DN_OK;
}

void dn_registry_close(dn_registry *r)
{
    if (r->live)
        rg_free_live(r->live);
    free(r->bad);
    pthread_mutex_destroy(&r->mu);
    pthread_mutex_destroy(&r->ops);
    memset(r, 0, sizeof *r);
}

/* ---- requests ---- */

dn_live *dn_registry_acquire(dn_registry *r)
{
    pthread_mutex_lock(&r->mu);
    dn_live *l = r->live;
    if (l)
        l->refs++;
    pthread_mutex_unlock(&r->mu);
    return l;
}

void dn_registry_release(dn_registry *r, dn_live *l)
{
    if (l)
        rg_unref(r, l);
}

int dn_registry_live_version(dn_registry *r)
{
    pthread_mutex_lock(&r->mu);
    int v = r->live ? r->live->version : -1;
    pthread_mutex_unlock(&r->mu);
    return v;
}

/* ---- changes of the live model ---- */

/* The newest version that loads becomes live, if it is not already. */
static int rg_update(dn_registry *r, int replace_explicit, int *swapped,
                     dn_registry_report report, void *ctx, dn_error *err)
{
    pthread_mutex_lock(&r->ops);
    dn_live *cur = r->live, *l = NULL;
    int rc = DN_OK;
    if (!cur || cur->version != 0 || replace_explicit)
        rc = rg_newest(r, cur, -1, report, ctx, &l, err);
    *swapped = l != NULL;
    if (l)
        rg_swap(r, l);
    pthread_mutex_unlock(&r->ops);
    return rc;
}

int dn_registry_load_newest(dn_registry *r, dn_registry_report report, void *ctx,
                            dn_error *err)
{
    int swapped;
    return rg_update(r, 1, &swapped, report, ctx, err);
}

int dn_registry_refresh(dn_registry *r, int *swapped, dn_registry_report report, void *ctx,
                        dn_error *err)
{
    return rg_update(r, 0, swapped, report, ctx, err);
}

int dn_registry_load_file(dn_registry *r, const char *path, dn_error *err)
{
    if (strlen(path) >= DN_REGISTRY_MAX_PATH)
        return dn_error_set(err, DN_ETOOBIG, "model path '%.48s...' is too long", path);
    pthread_mutex_lock(&r->ops);
    dn_file_stamp stamp;
    dn_live *l = NULL;
    int e = rg_stamp(path, &stamp);
    int rc = e ? dn_file_io_error(err, e, "cannot read", path) : rg_load(r, path, 0, &stamp, &l, err);
    if (!rc)
        rg_swap(r, l);
    pthread_mutex_unlock(&r->ops);
    return rc;
}

/* Gives the staged file the next free number. link, unlike rename, refuses a name that
 * exists: a number another process took since the scan is skipped, never overwritten. */
static int rg_link_next(dn_registry *r, const char *staged, int *version,
                        char path[DN_REGISTRY_MAX_PATH], dn_error *err)
{
    rg_entry *e;
    int n, v;
    int rc = rg_scan(r, &e, &n, &v, err);
    free(e);
    while (!rc) {
        if (++v > RG_MAX_VERSION)
            return dn_error_set(err, DN_ETOOBIG, "no version number left in %s", r->dir);
        rg_path(path, "%s/" RG_PREFIX "%06d" RG_SUFFIX, r->dir, v);
        if (link(staged, path) == 0)
            break;
        if (errno != EEXIST)
            rc = dn_file_io_error(err, errno, "cannot publish", path);
    }
    *version = v;
    return rc;
}

/* Deletes versions beyond keep, oldest first, never the live one (a concurrent publisher
 * may have numbered past it). A failure only leaves an old version on disk. */
static void rg_prune(dn_registry *r)
{
    rg_entry *e;
    int n, highest, kept = 0;
    dn_error ignored;
    if (rg_scan(r, &e, &n, &highest, &ignored) == DN_OK)
        for (int i = 0; i < n; i++) {
            if (e[i].rejected || kept++ < r->keep || e[i].version == r->live->version)
                continue;
            char path[DN_REGISTRY_MAX_PATH];
            rg_path(path, "%s/%s", r->dir, e[i].name);
            unlink(path);
        }
    free(e);
}

int dn_registry_publish(dn_registry *r, dn_model *m, int *version, dn_error *err)
{
    pthread_mutex_lock(&r->ops);
    char staged[DN_REGISTRY_MAX_PATH], path[DN_REGISTRY_MAX_PATH];
    rg_path(staged, "%s/" RG_PUBLISH "%ld.%u.%s" RG_SUFFIX, r->dir, (long)getpid(),
            atomic_fetch_add(&r->seq, 1u), r->host);
    dn_file_stamp stamp = {0};
    dn_live *l = rg_new_live(0, "", &stamp, err);
    int rc = l ? dn_model_save(m, staged, err) : DN_ENOMEM;
    if (!rc)
        rc = rg_link_next(r, staged, version, path, err);
    unlink(staged);
    if (rc) {
        if (l)
            rg_free_live(l);
    } else {
        /* The version exists from the link on, so it goes live whatever follows: an
         * unsynced folder may lose it to a power loss (the previous version is then served
         * again), and a missing stamp only makes refresh load it once more. */
        dn_file_sync_dir(r->dir, NULL);
        rg_stamp(path, &stamp);
        l->model = *m;
        dn_model_init(m);
        l->version = *version;
        l->stamp = stamp;
        snprintf(l->path, sizeof l->path, "%s", path);
        rg_swap(r, l);
        rg_prune(r);
    }
    pthread_mutex_unlock(&r->ops);
    return rc;
}

int dn_registry_rollback(dn_registry *r, dn_registry_report report, void *ctx, int *from,
                         int *to, dn_error *err)
{
    pthread_mutex_lock(&r->ops);
    dn_live *cur = r->live, *l = NULL; /* r->live only changes under ops */
    int rc = DN_OK;
    if (!cur)
        rc = dn_error_set(err, DN_EINVAL, "no model is live: nothing to roll back");
    else if (cur->version == 0)
        rc = dn_error_set(err, DN_EINVAL, "the live model is the file %s, not a version", cur->path);
    else if (!(rc = rg_newest(r, NULL, cur->version, report, ctx, &l, err)) && !l)
        rc = dn_error_set(err, DN_EINVAL, "no other version loads: version %d stays live",
                          cur->version);
    if (!rc) {
        char rejected[DN_REGISTRY_MAX_PATH];
        rg_path(rejected, "%s" RG_REJECTED, cur->path);
        /* ENOENT: already rejected or pruned by another process; it is out either way. */
        if (rename(cur->path, rejected) != 0 && errno != ENOENT)
            rc = dn_file_io_error(err, errno, "cannot reject", cur->path);
        else
            rc = dn_file_sync_dir(r->dir, err);
    }
    if (rc) {
        if (l)
            rg_free_live(l);
    } else {
        *from = cur->version;
        *to = l->version;
        rg_swap(r, l);
    }
    pthread_mutex_unlock(&r->ops);
    return rc;
}

/* ---- listing ---- */

int dn_registry_versions(dn_registry *r, dn_version_info **v, int *n, dn_error *err)
{
    rg_entry *e;
    int count, highest;
    *v = NULL;
    *n = 0;
    int rc = rg_scan(r, &e, &count, &highest, err);
    if (!rc && count && !(*v = calloc((size_t)count, sizeof **v)))
        rc = dn_error_set(err, DN_ENOMEM, "out of memory listing %s", r->dir);
    int live = dn_registry_live_version(r);
    for (int i = 0; !rc && i < count; i++) {
        char path[DN_REGISTRY_MAX_PATH];
        struct stat st;
        rg_path(path, "%s/%s", r->dir, e[i].name);
        if (stat(path, &st) != 0)
            continue; /* deleted meanwhile */
        dn_version_info *o = &(*v)[(*n)++];
        o->version = e[i].version;
        o->bytes = (long long)st.st_size;
        o->mtime = (long long)st.st_mtime;
        o->rejected = e[i].rejected;
        o->live = !e[i].rejected && e[i].version == live;
        snprintf(o->file, sizeof o->file, "%s", e[i].name);
    }
    free(e);
    return rc;
}

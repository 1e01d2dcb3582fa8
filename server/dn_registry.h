/* dn_registry: numbered model versions in DATA_DIR/models and the live model, swapped
 * atomically and reference-counted so that requests in flight finish on the model they
 * started with.
 *
 * Layout of DATA_DIR/models:
 *
 *     model-000001.safetensors             version 1 (dn_model_save's format)
 *     model-000002.safetensors.rejected    version 2, rolled back: kept for forensics,
 *                                          never loaded again, its number never reused
 *     .publish.<pid>.<seq>.<host>.safetensors
 *                                          a publish in progress (hidden, never loaded)
 *
 * The folder is the truth shared by every process on DATA_DIR: the newest version whose
 * file is not rejected and loads is the one to serve. A trainer publishes, an admin rolls
 * back in any process, and scorer replicas follow with dn_registry_refresh. A version's
 * file appears whole (written under a hidden name, then hard-linked to its number: link
 * refuses a number another process took meanwhile) and leaves by an atomic rename.
 *
 * Locking: `mu` guards the live pointer and the reference counts and is held for a few
 * instructions only (acquire/release run on every request); `ops` serialises the
 * operations that change the live model, and models are loaded under it but outside `mu`. */
#ifndef DN_REGISTRY_H
#define DN_REGISTRY_H

#include <pthread.h>
#include <stdatomic.h>

#include "dn_model.h"

#define DN_REGISTRY_MAX_PATH 4096
/* A hidden publish file older than this is left by a crashed publish: saving a model takes
 * seconds. Other hosts' processes cannot be asked whether they are still writing. */
#define DN_REGISTRY_STALE_SECONDS 3600

/* What a file was when it was looked at: a file replaced under the same name differs. */
typedef struct dn_file_stamp {
    unsigned long long dev, ino;
    long long size, mtime_ns;
} dn_file_stamp;

typedef struct dn_live {
    dn_model model;
    int version; /* 0: an explicit file (dn_registry_load_file) */
    char path[DN_REGISTRY_MAX_PATH];
    dn_file_stamp stamp;
    int refs; /* under the registry's mu: 1 while live, plus 1 per acquire */
} dn_live;

typedef struct dn_version_info {
    int version;
    long long bytes, mtime; /* mtime in seconds since the epoch */
    int live;               /* the live model of this process */
    int rejected;           /* rolled back (file <name>.rejected) */
    char file[256];         /* name in DATA_DIR/models */
} dn_version_info;

typedef struct dn_registry {
    char dir[DN_REGISTRY_MAX_PATH]; /* DATA_DIR/models */
    const dn_backbone *bb;          /* models are checked against it (NULL: no check) */
    int keep;
    pthread_mutex_t mu, ops;
    dn_live *live;       /* NULL when no model is live */
    dn_file_stamp *bad;  /* files that failed to load, not tried again (under ops) */
    int n_bad, cap_bad;
    char host[65];       /* this host's name: publish file names are unique across hosts */
    atomic_uint seq;     /* and this makes them unique within the process */
} dn_registry;

/* Creates DATA_DIR (not its parents) and DATA_DIR/models where missing (syncing their
 * parents) and removes hidden publish files older than DN_REGISTRY_STALE_SECONDS. keep >= 1
 * versions are kept by dn_registry_publish. bb may be NULL (models without a tail, tests)
 * and must outlive the registry. Nothing is live until one of the loads or a publish. On
 * failure there is nothing to close. */
int dn_registry_open(dn_registry *r, const char *data_dir, const dn_backbone *bb, int keep,
                     dn_error *err);
/* Frees the live model: every acquired model must have been released. */
void dn_registry_close(dn_registry *r);

/* Called with the path of each model file that does not load and why (for the log). */
typedef void (*dn_registry_report)(void *ctx, const char *path, const char *why);

/* Makes the newest version that loads and checks (dn_model_load against bb) live. Newer
 * files that fail are skipped, each reason given to report (may be NULL), and not tried
 * again by this registry unless they change (unless the failure was DN_EIO or DN_ENOMEM,
 * which may pass). No version loads (or there is none): DN_OK, the live model unchanged.
 * Replaces an explicit file as well. */
int dn_registry_load_newest(dn_registry *r, dn_registry_report report, void *ctx,
                            dn_error *err);

/* Serves an explicit model file (--model FILE) as version 0. On failure the live model is
 * unchanged. */
int dn_registry_load_file(dn_registry *r, const char *path, dn_error *err);

/* The live model for one request (NULL when none); pair every acquire with a release.
 * The model stays valid until its release, whatever is published or rolled back. */
dn_live *dn_registry_acquire(dn_registry *r);
/* l may be NULL. The last release of a model that is no longer live frees it. */
void dn_registry_release(dn_registry *r, dn_live *l);

/* Saves *m as the next version and makes it live. The number is 1 + the highest present,
 * rejected files included, so a number is never served twice. On success *m's contents
 * belong to the registry and *m is re-initialised; on failure *m is untouched (the caller
 * still frees it). Then versions beyond keep are deleted, oldest first, never the live
 * one; rejected files are not counted and never deleted. */
int dn_registry_publish(dn_registry *r, dn_model *m, int *version, dn_error *err);

/* Admin rollback: the live version's file is renamed to <file>.rejected and the newest
 * other version that loads becomes live (failures given to report). DN_EINVAL, with
 * nothing changed, when nothing is live, the live model is an explicit file, or no other
 * version loads. *from and *to receive the versions. */
int dn_registry_rollback(dn_registry *r, dn_registry_report report, void *ctx, int *from,
                         int *to, dn_error *err);

/* For scorer replicas, on a timer: when the newest version that loads differs from the
 * live one (a newer publish, or the live one rejected by a rollback in another process),
 * loads it and swaps; *swapped says whether it did. Cheap when nothing changed: a readdir
 * and a stat. An explicit file is never replaced here. When no version loads at all the
 * live model stays (even if rejected elsewhere: something is better than nothing). */
int dn_registry_refresh(dn_registry *r, int *swapped, dn_registry_report report, void *ctx,
                        dn_error *err);

/* Every version on disk, rejected ones included, newest first; free *v. */
int dn_registry_versions(dn_registry *r, dn_version_info **v, int *n, dn_error *err);

/* Version of the live model: -1 when none, 0 for an explicit file. */
int dn_registry_live_version(dn_registry *r);

#endif

/* dn_store: the durable feedback store. Inspectors confirm images as anomalous or normal;
 * once dn_store_put has returned DN_OK the image survives SIGKILL and power loss, and no
 * half-written file is ever visible under a stored name.
 *
 * Layout under DATA_DIR/feedback:
 *
 *     anomaly/<id>.<ext>   confirmed anomalies
 *     normal/<id>.<ext>    confirmed normals
 *     masks/<id>.png       optional defect masks, whatever the image's label
 *
 * id is the sha256 (lower-case hex) of the image's bytes, ext "jpg" or "png" after the
 * magic bytes. An image is in at most one label folder once every put has returned.
 * Names starting with '.' are temporary files of writes in progress:
 * ".tmp.<pid>.<seq>.<host>" in the folder they will be renamed into.
 *
 * Several processes may share DATA_DIR (scorer replicas write, one trainer reads): every
 * visible change is one atomic rename, so the store relies on the filesystem, not on
 * locks, and readers list the folders afresh each time. Nothing ever deletes a stored
 * image: a relabel is a rename between the label folders. */
#ifndef DN_STORE_H
#define DN_STORE_H

#include <stdatomic.h>
#include <stddef.h>

#include "dn_error.h"

#define DN_STORE_MAX_PATH 4096
/* A temporary file of another host (or of a process this host cannot see, in another PID
 * namespace) is only known to be abandoned once it is this old: a put takes milliseconds. */
#define DN_STORE_STALE_SECONDS 3600

typedef struct dn_store {
    char dir[DN_STORE_MAX_PATH]; /* DATA_DIR/feedback */
    char host[65];               /* this host's name, in temporary names */
    atomic_uint seq;             /* makes temporary names unique within the process */
} dn_store;

/* Creates DATA_DIR (not its parents), DATA_DIR/feedback and its three folders where
 * missing (syncing each parent, so that the folders survive a power loss) and removes
 * abandoned temporary files: those of this host whose process is gone, and any older than
 * DN_STORE_STALE_SECONDS. DN_EIO with the errno text, DN_ETOOBIG for a DATA_DIR too long
 * for the paths below it. */
int dn_store_open(dn_store *s, const char *data_dir, dn_error *err);
void dn_store_close(dn_store *s); /* holds no resources yet; kept for the pairing */

/* Stores img durably before returning: a temporary file in the target folder (O_EXCL,
 * unique name), written, fsynced, renamed to its name, folder fsynced. id receives the
 * image's id.
 *   - Same bytes already stored with the same label: *duplicate = 1 and the image is not
 *     rewritten (its folder is synced again, in case its writer died before doing so).
 *   - Stored with the other label: the new label wins (a rename, synced), *duplicate = 0.
 *   - mask (may be NULL; a PNG) is stored first as masks/<id>.png, replacing a different
 *     mask, also on a duplicate: an image is never visible before its mask.
 * img must be a JPEG or PNG by its magic bytes (the caller decodes it first), else
 * DN_EINVAL; the same for a mask that is not a PNG. A full disk is DN_ENOSPC and leaves
 * nothing behind (neither temporary file nor a mask this call created); other failures are
 * DN_EIO with the errno text. Safe from any number of threads and processes. */
int dn_store_put(dn_store *s, const unsigned char *img, size_t len, int is_anomaly,
                 const unsigned char *mask, size_t mask_len, char id[65], int *duplicate,
                 dn_error *err);

/* Malloc'd paths of the stored images of one label, sorted by name (a deterministic
 * training order); free with dn_paths_free (dn_dataset.h). Reads the folder afresh, so
 * images stored by other processes are seen. *n may be 0; on failure *paths is NULL. */
int dn_store_list(dn_store *s, int is_anomaly, char ***paths, int *n, dn_error *err);

/* For each stored image path (from dn_store_list), the path of its mask, or NULL
 * without one: malloc'd, free with dn_paths_free(*masks, n). */
int dn_store_masks(dn_store *s, char *const *paths, int n, char ***masks, dn_error *err);

/* sha256 (hex) over the sorted names of both label folders and of the masks
 * ("anomaly/<name>\n", "normal/<name>\n" then "masks/<name>\n" lines): it changes when an
 * image is added or relabelled or a mask added, by any process, and not on a duplicate.
 * A mask replaced by another for the same image keeps the name: the next retrain reads
 * it, but it does not start one. */
int dn_store_fingerprint(dn_store *s, char out[65], dn_error *err);

int dn_store_count(dn_store *s, int *n_anomaly, int *n_normal, dn_error *err);

#endif

#include "dn_store.h"

#include "dn_file.h"
#include "dn_dataset.h"
#include "dn_sha256.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define ST_TMP_PREFIX ".tmp."
/* Bytes a path may need past DATA_DIR: "/feedback/anomaly/" + the longest name, which is a
 * temporary one (".tmp." + pid + seq + a 64-byte host name), with room to spare. */
#define ST_TAIL_BYTES 256

static const char *const st_folders[3] = {"anomaly", "normal", "masks"};

static const char *st_label(int is_anomaly)
{
    return st_folders[is_anomaly ? 0 : 1];
}

/* ---- files ---- */

/* Formats a path below s->dir. dn_store_open refused a DATA_DIR too long for any of them,
 * so nothing is ever cut short here. */
__attribute__((format(printf, 2, 3))) static void st_path(char out[DN_STORE_MAX_PATH],
                                                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, DN_STORE_MAX_PATH, fmt, ap);
    va_end(ap);
}

static int st_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Whether path holds exactly the len bytes of buf. */
static int st_same_content(const char *path, const unsigned char *buf, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0 || (size_t)st.st_size != len)
        return 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    unsigned char chunk[8192];
    size_t off = 0, k;
    int same = 1;
    while (same && (k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        same = off + k <= len && !memcmp(chunk, buf + off, k);
        off += k;
    }
    fclose(f);
    return same && off == len;
}

/* Creates a new file final in folder with the bytes of buf: a temporary file of a name no
 * one else uses (O_EXCL), written and synced, then renamed (a reader sees nothing or the
 * whole file), then the folder synced (the rename survives a power loss). On failure the
 * temporary file is gone. */
static int st_write_new(dn_store *s, const char *folder, const char *final,
                        const unsigned char *buf, size_t len, dn_error *err)
{
    char tmp[DN_STORE_MAX_PATH];
    int fd = -1;
    for (int tries = 0; fd < 0 && tries < 64; tries++) {
        st_path(tmp, "%s/" ST_TMP_PREFIX "%ld.%u.%s", folder, (long)getpid(),
                 atomic_fetch_add(&s->seq, 1u), s->host);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST) /* EEXIST: left by a dead process of a reused pid */
            break;
    }
    if (fd < 0)
        return dn_file_io_error(err, errno, "cannot create", tmp);
    int e = dn_file_write_all(fd, buf, len);
    if (!e && fsync(fd) != 0)
        e = errno;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, final) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        return dn_file_io_error(err, e, "cannot write", final);
    }
    return dn_file_sync_dir(folder, err);
}

/* ---- opening ---- */

/* The folder of path (a copy), "." for a bare name. */
static void st_parent(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, cap, ".");
    else
        snprintf(out, cap, "%.*s", slash == path ? 1 : (int)(slash - path), path);
}

/* Whether the temporary file `name` in the folder open as dirfd was left behind by a
 * process that will never finish it: one of this host whose process is gone, or any that
 * is older than a put could ever take (hosts sharing DATA_DIR cannot see each other's
 * processes, nor can containers in their own PID namespaces). */
static int st_abandoned(const dn_store *s, int dirfd, const char *name, time_t now)
{
    struct stat st;
    if (strncmp(name, ST_TMP_PREFIX, strlen(ST_TMP_PREFIX)) ||
        fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    if (now - st.st_mtime > DN_STORE_STALE_SECONDS)
        return 1;
    long pid;
    unsigned seq;
    int off = 0;
    if (sscanf(name + strlen(ST_TMP_PREFIX), "%ld.%u.%n", &pid, &seq, &off) != 2 || !off)
        return 0;
    return pid > 0 && !strcmp(name + strlen(ST_TMP_PREFIX) + off, s->host) &&
           kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

static int st_remove_abandoned(const dn_store *s, const char *folder, dn_error *err)
{
    DIR *d = opendir(folder);
    if (!d)
        return dn_file_io_error(err, errno, "cannot read folder", folder);
    time_t now = time(NULL);
    struct dirent *e;
    while ((e = readdir(d)))
        if (st_abandoned(s, dirfd(d), e->d_name, now))
            unlinkat(dirfd(d), e->d_name, 0); /* a failure only leaves an invisible file */
    closedir(d);
    return DN_OK;
}

int dn_store_open(dn_store *s, const char *data_dir, dn_error *err)
{
    memset(s, 0, sizeof *s);
    atomic_init(&s->seq, 0u);
    if (strlen(data_dir) + ST_TAIL_BYTES >= DN_STORE_MAX_PATH)
        return dn_error_set(err, DN_ETOOBIG, "data folder '%.48s...' is too long", data_dir);
    if (gethostname(s->host, sizeof s->host - 1) != 0 || !s->host[0])
        snprintf(s->host, sizeof s->host, "localhost");
    char parent[DN_STORE_MAX_PATH], sub[DN_STORE_MAX_PATH];
    st_parent(data_dir, parent, sizeof parent);
    snprintf(s->dir, sizeof s->dir, "%s/feedback", data_dir);
    int rc = dn_file_make_dir(data_dir, parent, err);
    if (!rc)
        rc = dn_file_make_dir(s->dir, data_dir, err);
    for (int i = 0; i < 3 && !rc; i++) {
        st_path(sub, "%s/%s", s->dir, st_folders[i]);
        rc = dn_file_make_dir(sub, s->dir, err);
        if (!rc)
            rc = st_remove_abandoned(s, sub, err);
    }
    return rc;
}

void dn_store_close(dn_store *s)
{
    memset(s, 0, sizeof *s);
}

/* ---- put ---- */

static const char *st_image_ext(const unsigned char *b, size_t len)
{
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && !memcmp(b, png, 8))
        return "png";
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8 && b[2] == 0xff)
        return "jpg";
    return NULL;
}

/* Moves the image from one label folder to the other and syncs both folders. The source
 * may have vanished: only a concurrent put of the same label moves an image out of a
 * folder, so it is then already at `to`. */
static int st_move(const char *from, const char *to, const char *from_dir, const char *to_dir,
                   dn_error *err)
{
    if (rename(from, to) != 0 && errno != ENOENT)
        return dn_file_io_error(err, errno, "cannot relabel", from);
    int rc = dn_file_sync_dir(to_dir, err);
    return rc ? rc : dn_file_sync_dir(from_dir, err);
}

static void st_mask_path(const dn_store *s, const char *id, char folder[DN_STORE_MAX_PATH],
                         char path[DN_STORE_MAX_PATH])
{
    st_path(folder, "%s/masks", s->dir);
    st_path(path, "%s/%s.png", folder, id);
}

/* Writes masks/<id>.png unless it already holds these bytes; *made says whether this call
 * created it (so that a failed put can take it back). */
static int st_put_mask(dn_store *s, const char *id, const unsigned char *mask, size_t len,
                       int *made, dn_error *err)
{
    char folder[DN_STORE_MAX_PATH], path[DN_STORE_MAX_PATH];
    st_mask_path(s, id, folder, path);
    if (st_same_content(path, mask, len))
        return DN_OK;
    *made = !st_exists(path);
    return st_write_new(s, folder, path, mask, len, err);
}

static void st_unput_mask(dn_store *s, const char *id)
{
    char folder[DN_STORE_MAX_PATH], path[DN_STORE_MAX_PATH];
    st_mask_path(s, id, folder, path);
    unlink(path);
    dn_file_sync_dir(folder, NULL);
}

static int st_put_image(dn_store *s, const unsigned char *img, size_t len, int is_anomaly,
                        const char *name, int *duplicate, dn_error *err)
{
    char mine_dir[DN_STORE_MAX_PATH], other_dir[DN_STORE_MAX_PATH];
    char mine[DN_STORE_MAX_PATH], other[DN_STORE_MAX_PATH];
    st_path(mine_dir, "%s/%s", s->dir, st_label(is_anomaly));
    st_path(other_dir, "%s/%s", s->dir, st_label(!is_anomaly));
    st_path(mine, "%s/%s", mine_dir, name);
    st_path(other, "%s/%s", other_dir, name);
    if (st_exists(other))
        return st_move(other, mine, other_dir, mine_dir, err);
    if (st_exists(mine)) {
        *duplicate = 1;
        return dn_file_sync_dir(mine_dir, err);
    }
    int rc = st_write_new(s, mine_dir, mine, img, len, err);
    /* A concurrent put gave the other label meanwhile: one of them must win. Each put
     * moves the other's file after writing its own, so one file always survives. */
    if (!rc && st_exists(other))
        rc = st_move(other, mine, other_dir, mine_dir, err);
    return rc;
}

int dn_store_put(dn_store *s, const unsigned char *img, size_t len, int is_anomaly,
                 const unsigned char *mask, size_t mask_len, char id[65], int *duplicate,
                 dn_error *err)
{
    *duplicate = 0;
    id[0] = '\0';
    const char *ext = st_image_ext(img, len);
    if (!ext)
        return dn_error_set(err, DN_EINVAL, "not a JPEG or PNG image");
    const char *mask_ext = mask ? st_image_ext(mask, mask_len) : NULL;
    if (mask && (!mask_ext || strcmp(mask_ext, "png")))
        return dn_error_set(err, DN_EINVAL, "a mask must be a PNG image");
    unsigned char digest[32];
    dn_sha256_buf(img, len, digest);
    dn_sha256_hex(digest, id);
    char name[80];
    snprintf(name, sizeof name, "%s.%s", id, ext);
    int made_mask = 0;
    int rc = mask ? st_put_mask(s, id, mask, mask_len, &made_mask, err) : DN_OK;
    if (!rc)
        rc = st_put_image(s, img, len, is_anomaly, name, duplicate, err);
    if (rc && made_mask)
        st_unput_mask(s, id);
    return rc;
}

/* ---- listing ---- */

/* "<64 hex>.jpg" or "<64 hex>.png": temporary files and anything else are not images. */
static int st_is_image_name(const char *name)
{
    if (strlen(name) != 68 || (strcmp(name + 64, ".jpg") && strcmp(name + 64, ".png")))
        return 0;
    for (int i = 0; i < 64; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return 0;
    return 1;
}

static int st_cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Malloc'd sorted names of the images in one label folder ("anomaly" or "normal"). */
static int st_names(const dn_store *s, const char *label, char ***names, int *n, dn_error *err)
{
    char folder[DN_STORE_MAX_PATH];
    st_path(folder, "%s/%s", s->dir, label);
    *names = NULL;
    *n = 0;
    DIR *d = opendir(folder);
    if (!d)
        return dn_file_io_error(err, errno, "cannot read folder", folder);
    int cap = 0, rc = DN_OK;
    struct dirent *e;
    errno = 0;
    while (!rc && (e = readdir(d))) {
        if (!st_is_image_name(e->d_name))
            continue;
        if (*n == cap) {
            cap = cap ? 2 * cap : 64;
            char **grown = realloc(*names, (size_t)cap * sizeof *grown);
            if (!grown) {
                rc = dn_error_set(err, DN_ENOMEM, "out of memory listing %s", folder);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*n] = strdup(e->d_name)))
            rc = dn_error_set(err, DN_ENOMEM, "out of memory listing %s", folder);
        else
            ++*n;
        errno = 0;
    }
    if (!rc && errno)
        rc = dn_file_io_error(err, errno, "cannot read folder", folder);
    closedir(d);
    if (rc) {
        dn_paths_free(*names, *n);
        *names = NULL;
        *n = 0;
    } else if (*n) {
        qsort(*names, (size_t)*n, sizeof **names, st_cmp_names);
    }
    return rc;
}

int dn_store_list(dn_store *s, int is_anomaly, char ***paths, int *n, dn_error *err)
{
    const char *label = st_label(is_anomaly);
    int rc = st_names(s, label, paths, n, err);
    for (int i = 0; !rc && i < *n; i++) {
        char full[DN_STORE_MAX_PATH], *dup;
        st_path(full, "%s/%s/%s", s->dir, label, (*paths)[i]);
        if (!(dup = strdup(full)))
            rc = dn_error_set(err, DN_ENOMEM, "out of memory listing %s", label);
        else
            free((*paths)[i]), (*paths)[i] = dup;
    }
    if (rc && *paths) {
        dn_paths_free(*paths, *n);
        *paths = NULL;
        *n = 0;
    }
    return rc;
}

int dn_store_masks(dn_store *s, char *const *paths, int n, char ***masks, dn_error *err)
{
    *masks = calloc((size_t)n + 1, sizeof **masks);
    if (!*masks)
        return dn_error_set(err, DN_ENOMEM, "out of memory listing masks");
    for (int i = 0; i < n; i++) {
        const char *base = strrchr(paths[i], '/') ? strrchr(paths[i], '/') + 1 : paths[i];
        char id[DN_STORE_MAX_PATH], folder[DN_STORE_MAX_PATH], path[DN_STORE_MAX_PATH];
        snprintf(id, sizeof id, "%.*s", (int)strcspn(base, "."), base);
        st_mask_path(s, id, folder, path);
        if (access(path, F_OK) == 0 && !((*masks)[i] = strdup(path))) {
            dn_paths_free(*masks, n);
            *masks = NULL;
            return dn_error_set(err, DN_ENOMEM, "out of memory listing masks");
        }
    }
    return DN_OK;
}

int dn_store_fingerprint(dn_store *s, char out[65], dn_error *err)
{
    dn_sha256 ctx;
    dn_sha256_init(&ctx);
    int rc = DN_OK;
    for (int f = 0; f < 3 && !rc; f++) {
        const char *label = st_folders[f];
        char **names;
        int n;
        rc = st_names(s, label, &names, &n, err);
        for (int i = 0; !rc && i < n; i++) {
            dn_sha256_update(&ctx, label, strlen(label));
            dn_sha256_update(&ctx, "/", 1);
            dn_sha256_update(&ctx, names[i], strlen(names[i]));
            dn_sha256_update(&ctx, "\n", 1);
        }
        if (!rc)
            dn_paths_free(names, n);
    }
    unsigned char digest[32];
    dn_sha256_final(&ctx, digest);
    dn_sha256_hex(digest, out);
    return rc;
}

int dn_store_count(dn_store *s, int *n_anomaly, int *n_normal, dn_error *err)
{
    char **names;
    int rc = st_names(s, st_label(1), &names, n_anomaly, err);
    if (!rc) {
        dn_paths_free(names, *n_anomaly);
        rc = st_names(s, st_label(0), &names, n_normal, err);
    }
    if (!rc)
        dn_paths_free(names, *n_normal);
    return rc;
}

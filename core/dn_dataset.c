#include "dn_dataset.h"
#include "dn_rng.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#define DS_GOOD        "good"
#define DS_MASK_SUFFIX "_mask.png"

/* ---- paths ---- */

/* Formats a malloc'd path, refused past DN_DATASET_MAX_PATH before anything is allocated. */
__attribute__((format(printf, 3, 4))) static int ds_path(char **out, dn_error *err,
                                                         const char *fmt, ...)
{
    char head[64];
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    int len = vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    int rc = DN_OK;
    if (len < 0)
        rc = dn_error_set(err, DN_EINVAL, "cannot format a path from '%s'", fmt);
    else if (len >= DN_DATASET_MAX_PATH)
        rc = dn_error_set(err, DN_ETOOBIG, "path '%s...' is %d bytes long (at most %d)", head,
                          len, DN_DATASET_MAX_PATH - 1);
    else if (!(*out = malloc((size_t)len + 1)))
        rc = dn_error_set(err, DN_ENOMEM, "no memory for a %d-byte path", len);
    else
        vsnprintf(*out, (size_t)len + 1, fmt, again);
    va_end(again);
    return rc;
}

/* dir without its trailing slashes ("/" stays "/"), so that joined paths read "a/b". */
static int ds_root(const char *dir, char **root, dn_error *err)
{
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/')
        len--;
    /* Checked here as well as in ds_path, because %.*s takes an int. */
    if (len >= DN_DATASET_MAX_PATH)
        return dn_error_set(err, DN_ETOOBIG, "path '%.48s...' is %zu bytes long (at most %d)",
                            dir, len, DN_DATASET_MAX_PATH - 1);
    return ds_path(root, err, "%.*s", (int)len, dir);
}

static int ds_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static int ds_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- listings ---- */

typedef struct ds_names {
    char **v;
    int n, cap;
} ds_names;

static void ds_names_free(ds_names *l)
{
    dn_paths_free(l->v, l->n);
    memset(l, 0, sizeof *l);
}

static int ds_names_push(ds_names *l, const char *name, const char *dir, dn_error *err)
{
    if (l->n == DN_DATASET_MAX_IMAGES)
        return dn_error_set(err, DN_ETOOBIG, "folder '%s' has more than %d entries", dir,
                            DN_DATASET_MAX_IMAGES);
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return dn_error_set(err, DN_ENOMEM, "no memory to list folder '%s'", dir);
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return dn_error_set(err, DN_ENOMEM, "no memory to list folder '%s'", dir);
    l->n++;
    return DN_OK;
}

static int ds_is_image_name(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
                   strcasecmp(dot, ".jpeg") == 0);
}

/* The name test comes first so that only candidates cost a stat. A broken symlink is
 * skipped like any other non-image. */
static int ds_wanted(DIR *dp, const char *name, int want_dirs)
{
    if (name[0] == '.' || (!want_dirs && !ds_is_image_name(name)))
        return 0;
    struct stat st;
    if (fstatat(dirfd(dp), name, &st, 0) != 0)
        return 0;
    return want_dirs ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode);
}

static int ds_cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted base names of the images in dir or, with want_dirs, of its subfolders. */
static int ds_list(const char *dir, int want_dirs, ds_names *out, dn_error *err)
{
    memset(out, 0, sizeof *out);
    DIR *dp = opendir(dir);
    if (!dp)
        return dn_error_set(err, DN_EIO, "cannot open folder '%s': %s", dir, strerror(errno));
    int rc = DN_OK;
    for (;;) {
        errno = 0; /* readdir reports errors only through errno */
        struct dirent *e = readdir(dp);
        if (!e) {
            if (errno)
                rc = dn_error_set(err, DN_EIO, "cannot read folder '%s': %s", dir,
                                  strerror(errno));
            break;
        }
        if (ds_wanted(dp, e->d_name, want_dirs) && (rc = ds_names_push(out, e->d_name, dir, err)))
            break;
    }
    closedir(dp);
    if (rc) {
        ds_names_free(out);
        return rc;
    }
    if (out->n)
        qsort(out->v, (size_t)out->n, sizeof *out->v, ds_cmp_name);
    return DN_OK;
}

void dn_paths_free(char **paths, int n)
{
    for (int i = 0; i < n; i++)
        free(paths[i]);
    free(paths);
}

int dn_dataset_list_images(const char *dir, char ***paths, int *n, dn_error *err)
{
    *paths = NULL;
    *n = 0;
    char *root = NULL;
    ds_names l;
    int rc = ds_root(dir, &root, err);
    if (rc || (rc = ds_list(root, 0, &l, err))) {
        free(root);
        return rc;
    }
    /* Each name is replaced in place by its full path, so a failure frees one array. */
    for (int i = 0; i < l.n && !rc; i++) {
        char *path = NULL;
        if (!(rc = ds_path(&path, err, "%s/%s", root, l.v[i]))) {
            free(l.v[i]);
            l.v[i] = path;
        }
    }
    free(root);
    if (rc) {
        ds_names_free(&l);
        return rc;
    }
    *paths = l.v;
    *n = l.n;
    return DN_OK;
}

/* ---- the dataset ---- */

void dn_dataset_init(dn_dataset *d) { memset(d, 0, sizeof *d); }

static void ds_samples_free(dn_sample *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].path);
        free(v[i].mask_path);
    }
    free(v);
}

void dn_dataset_free(dn_dataset *d)
{
    ds_samples_free(d->train, d->n_train);
    ds_samples_free(d->test, d->n_test);
    dn_paths_free(d->defects, d->n_defects);
    dn_error keep = d->err;
    dn_dataset_init(d);
    d->err = keep;
}

int dn_dataset_count_anomalous(const dn_dataset *d)
{
    int m = 0;
    for (int i = 0; i < d->n_test; i++)
        m += d->test[i].anomalous != 0;
    return m;
}

/* mask_path stays NULL when gt_dir holds no regular file <stem>_mask.png. */
static int ds_find_mask(dn_sample *s, const char *gt_dir, const char *name, dn_error *err)
{
    int stem = (int)(strrchr(name, '.') - name); /* every listed image name has a dot */
    int rc = ds_path(&s->mask_path, err, "%s/%.*s" DS_MASK_SUFFIX, gt_dir, stem, name);
    if (!rc && !ds_is_file(s->mask_path)) {
        free(s->mask_path);
        s->mask_path = NULL;
    }
    return rc;
}

/* Appends the images of dir to *v as class defect (-1 for good); gt_dir, when not NULL,
 * is where their masks would be. has_masks is raised by every mask found. */
static int ds_append(dn_sample **v, int *n, const char *dir, int defect, const char *gt_dir,
                     int *has_masks, dn_error *err)
{
    ds_names l;
    int rc = ds_list(dir, 0, &l, err);
    if (rc || l.n == 0) {
        ds_names_free(&l);
        return rc;
    }
    if (l.n > DN_DATASET_MAX_IMAGES - *n) {
        ds_names_free(&l);
        return dn_error_set(err, DN_ETOOBIG, "more than %d images up to folder '%s'",
                            DN_DATASET_MAX_IMAGES, dir);
    }
    dn_sample *grown = realloc(*v, (size_t)(*n + l.n) * sizeof *grown);
    if (!grown) {
        ds_names_free(&l);
        return dn_error_set(err, DN_ENOMEM, "no memory for the images of '%s'", dir);
    }
    *v = grown;
    for (int i = 0; i < l.n && !rc; i++) {
        dn_sample *s = &grown[(*n)++]; /* counted before filling: the free path sees NULLs */
        *s = (dn_sample){.anomalous = defect >= 0, .defect = defect};
        rc = ds_path(&s->path, err, "%s/%s", dir, l.v[i]);
        if (!rc && gt_dir && !(rc = ds_find_mask(s, gt_dir, l.v[i], err)))
            *has_masks |= s->mask_path != NULL;
    }
    ds_names_free(&l);
    return rc;
}

/* The resolved base name, so that "." or a trailing slash still names the dataset. */
static int ds_set_name(dn_dataset *d, const char *root)
{
    char *real = realpath(root, NULL);
    if (!real)
        return dn_error_set(&d->err, DN_EIO, "cannot resolve '%s': %s", root, strerror(errno));
    const char *slash = strrchr(real, '/'), *base = slash && slash[1] ? slash + 1 : real;
    size_t len = strlen(base);
    int rc = DN_OK;
    if (len >= sizeof d->name)
        rc = dn_error_set(&d->err, DN_ETOOBIG,
                          "dataset name '%.32s...' is %zu bytes long (at most %zu)", base, len,
                          sizeof d->name - 1);
    else
        memcpy(d->name, base, len + 1);
    free(real);
    return rc;
}

static int ds_load_train(dn_dataset *d, const char *root)
{
    char *dir = NULL;
    int rc = ds_path(&dir, &d->err, "%s/train/" DS_GOOD, root);
    if (rc)
        return rc;
    if (!ds_is_dir(dir))
        rc = dn_error_set(&d->err, DN_EFORMAT,
                          "'%s' has no train/good folder (expected the MVTec AD layout: "
                          "train/good, test/good, test/<defect>)",
                          root);
    else if (!(rc = ds_append(&d->train, &d->n_train, dir, -1, NULL, &d->has_masks, &d->err)) &&
             d->n_train == 0)
        rc = dn_error_set(&d->err, DN_EFORMAT, "no images (.png, .jpg, .jpeg) in '%s'", dir);
    free(dir);
    return rc;
}

/* test/<defect>, with its masks in ground_truth/<defect>. */
static int ds_load_defect(dn_dataset *d, const char *root, int defect)
{
    const char *name = d->defects[defect];
    char *dir = NULL, *gt = NULL;
    int rc = ds_path(&dir, &d->err, "%s/test/%s", root, name);
    if (!rc)
        rc = ds_path(&gt, &d->err, "%s/ground_truth/%s", root, name);
    if (!rc)
        rc = ds_append(&d->test, &d->n_test, dir, defect, gt, &d->has_masks, &d->err);
    free(dir);
    free(gt);
    return rc;
}

/* Takes the subfolders of test/ other than good as the defect classes, keeping their
 * sorted order. Says whether test/good exists. */
static int ds_list_defects(dn_dataset *d, const char *test_dir, int *has_good)
{
    ds_names l;
    int rc = ds_list(test_dir, 1, &l, &d->err);
    if (rc)
        return rc;
    int kept = 0;
    *has_good = 0;
    for (int i = 0; i < l.n; i++) {
        if (strcmp(l.v[i], DS_GOOD) == 0) {
            *has_good = 1;
            free(l.v[i]);
        } else {
            l.v[kept++] = l.v[i];
        }
    }
    d->defects = l.v;
    d->n_defects = kept;
    return DN_OK;
}

/* test/ is optional: a folder with train/good alone is a training set without a test. */
static int ds_load_test(dn_dataset *d, const char *root)
{
    char *test_dir = NULL, *good = NULL;
    int rc = ds_path(&test_dir, &d->err, "%s/test", root), has_good = 0;
    if (rc || !ds_is_dir(test_dir) || (rc = ds_list_defects(d, test_dir, &has_good))) {
        free(test_dir);
        return rc;
    }
    if (has_good && !(rc = ds_path(&good, &d->err, "%s/" DS_GOOD, test_dir)))
        rc = ds_append(&d->test, &d->n_test, good, -1, NULL, &d->has_masks, &d->err);
    for (int i = 0; i < d->n_defects && !rc; i++)
        rc = ds_load_defect(d, root, i);
    free(test_dir);
    free(good);
    return rc;
}

int dn_dataset_open(dn_dataset *d, const char *dir)
{
    dn_dataset_free(d);
    dn_error_clear(&d->err);
    char *root = NULL;
    int rc = ds_root(dir, &root, &d->err);
    if (rc)
        return rc;
    struct stat st;
    if (stat(root, &st) != 0)
        rc = dn_error_set(&d->err, DN_EIO, "cannot open dataset folder '%s': %s", root,
                          strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = dn_error_set(&d->err, DN_EIO, "dataset '%s' is not a folder", root);
    if (!rc && !(rc = ds_set_name(d, root)) && !(rc = ds_load_train(d, root)))
        rc = ds_load_test(d, root);
    free(root);
    if (rc)
        dn_dataset_free(d);
    return rc;
}

/* ---- the protocol ---- */

int dn_protocol_draw(const dn_dataset *d, int k, uint64_t seed, int *drawn, int *rest,
                     int *n_rest, dn_error *err)
{
    int m = dn_dataset_count_anomalous(d);
    *n_rest = 0;
    if (k < 0 || k > m)
        return dn_error_set(err, DN_EINVAL,
                            "cannot draw %d labelled anomalies: the test set of '%s' has %d", k,
                            d->name, m);
    /* One block: the anomaly pool A, then one taken-flag per test sample. */
    int *pool = malloc((size_t)m * sizeof *pool + (size_t)d->n_test + 1);
    if (!pool)
        return dn_error_set(err, DN_ENOMEM, "no memory to draw from %d test samples", d->n_test);
    unsigned char *taken = (unsigned char *)(pool + m);
    memset(taken, 0, (size_t)d->n_test);
    for (int i = 0, j = 0; i < d->n_test; i++)
        if (d->test[i].anomalous)
            pool[j++] = i;
    dn_rng rng;
    dn_rng_seed(&rng, seed);
    for (int i = 0; i < k; i++) {
        int j = i + (int)dn_rng_below(&rng, (uint64_t)(m - i)), t = pool[i];
        pool[i] = pool[j];
        pool[j] = t;
        drawn[i] = pool[i];
        taken[pool[i]] = 1;
    }
    for (int i = 0; i < d->n_test; i++)
        if (!taken[i])
            rest[(*n_rest)++] = i;
    free(pool);
    return DN_OK;
}

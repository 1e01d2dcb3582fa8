/* The durable feedback store: put, list, duplicates, relabels and masks; the fingerprint;
 * abandoned temporary files; puts killed at random points never leave a visible partial
 * file nor lose an acknowledged one; a full disk leaves nothing behind; threads. */
#include "test_util.h"

#include "dn_dataset.h"
#include "dn_sha256.h"
#include "dn_store.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* An "image" of len bytes: PNG (or JPEG) magic bytes, then bytes drawn from seed. The
 * store only reads the magic bytes (the caller decodes images before storing them). */
static unsigned char *fake_image(size_t len, int jpeg, uint64_t seed)
{
    static const unsigned char png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char *b = malloc(len);
    cr_assert_not_null(b);
    uint64_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++)
        b[i] = (unsigned char)dn_test_rand(&s);
    if (jpeg)
        memcpy(b, "\xff\xd8\xff", 3);
    else
        memcpy(b, png, 8);
    return b;
}

static void open_store(dn_store *s, const char *root)
{
    dn_error err;
    cr_assert_eq(dn_store_open(s, root, &err), DN_OK, "%s", err.msg);
}

static void put(dn_store *s, const unsigned char *img, size_t len, int is_anomaly,
                const unsigned char *mask, size_t mask_len, char id[65], int *dup)
{
    dn_error err;
    cr_assert_eq(dn_store_put(s, img, len, is_anomaly, mask, mask_len, id, dup, &err), DN_OK,
                 "%s", err.msg);
}

static void counts(dn_store *s, int *na, int *nn)
{
    dn_error err;
    cr_assert_eq(dn_store_count(s, na, nn, &err), DN_OK, "%s", err.msg);
}

static void fingerprint(dn_store *s, char out[65])
{
    dn_error err;
    cr_assert_eq(dn_store_fingerprint(s, out, &err), DN_OK, "%s", err.msg);
}

/* Entries of a folder other than . and .., hidden ones included. */
static int entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "opendir %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    closedir(d);
    return n;
}

/* Every stored file's sha256 is its name: nothing partial is ever visible. Returns the
 * number of images checked. */
static int check_all_whole(dn_store *s)
{
    int total = 0;
    for (int label = 0; label < 2; label++) {
        char **paths;
        int n;
        dn_error err;
        cr_assert_eq(dn_store_list(s, label, &paths, &n, &err), DN_OK, "%s", err.msg);
        for (int i = 0; i < n; i++) {
            char hex[65];
            cr_assert_eq(dn_sha256_file(paths[i], hex, &err), DN_OK, "%s", err.msg);
            const char *base = strrchr(paths[i], '/') + 1;
            cr_assert(!strncmp(base, hex, 64), "%s holds bytes of sha256 %s", paths[i], hex);
        }
        total += n;
        dn_paths_free(paths, n);
    }
    return total;
}

Test(store, put_list_and_duplicate)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s;
    open_store(&s, root);
    unsigned char *a = fake_image(5000, 0, 1), *b = fake_image(3000, 1, 2);
    char id[65], id_b[65], hex[65];
    int dup;
    put(&s, a, 5000, 1, NULL, 0, id, &dup);
    cr_assert_eq(dup, 0);
    uint8_t d[32];
    dn_sha256_buf(a, 5000, d);
    dn_sha256_hex(d, hex);
    cr_assert_str_eq(id, hex, "the id is the sha256 of the bytes");
    put(&s, a, 5000, 1, NULL, 0, id, &dup);
    cr_assert_eq(dup, 1, "same bytes, same label");
    put(&s, b, 3000, 0, NULL, 0, id_b, &dup);
    cr_assert_eq(dup, 0);

    char **paths;
    int n, na, nn;
    dn_error err;
    cr_assert_eq(dn_store_list(&s, 1, &paths, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    char want[256];
    snprintf(want, sizeof want, "%s/feedback/anomaly/%s.png", root, id);
    cr_assert_str_eq(paths[0], want);
    size_t len;
    uint8_t *back = dn_test_read_file(paths[0], &len);
    cr_assert(back && len == 5000 && !memcmp(back, a, 5000), "stored bytes are the image's");
    free(back);
    dn_paths_free(paths, n);
    cr_assert_eq(dn_store_list(&s, 0, &paths, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 1);
    snprintf(want, sizeof want, "%s/feedback/normal/%s.jpg", root, id_b);
    cr_assert_str_eq(paths[0], want, "a JPEG by its magic bytes");
    dn_paths_free(paths, n);
    counts(&s, &na, &nn);
    cr_assert(na == 1 && nn == 1);
    dn_store_close(&s);
    free(a), free(b);
    dn_test_rmtree(root);
}

Test(store, list_is_sorted_and_sees_other_writers)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s, other;
    open_store(&s, root);
    open_store(&other, root);
    char id[65];
    int dup;
    for (int i = 0; i < 20; i++) {
        unsigned char *img = fake_image(100 + (size_t)i, 0, 100 + (uint64_t)i);
        put(i % 2 ? &s : &other, img, 100 + (size_t)i, 0, NULL, 0, id, &dup);
        free(img);
    }
    char **paths;
    int n;
    dn_error err;
    cr_assert_eq(dn_store_list(&s, 0, &paths, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 20, "images stored through another handle are listed");
    for (int i = 1; i < n; i++)
        cr_assert_lt(strcmp(paths[i - 1], paths[i]), 0, "sorted by name");
    dn_paths_free(paths, n);
    dn_store_close(&s);
    dn_store_close(&other);
    dn_test_rmtree(root);
}

Test(store, relabel_moves_the_image)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s;
    open_store(&s, root);
    unsigned char *a = fake_image(4000, 0, 3);
    char id[65];
    int dup, na, nn;
    put(&s, a, 4000, 0, NULL, 0, id, &dup);
    put(&s, a, 4000, 1, NULL, 0, id, &dup);
    cr_assert_eq(dup, 0, "a relabel is not a duplicate");
    counts(&s, &na, &nn);
    cr_assert(na == 1 && nn == 0, "the new label wins: %d anomalies, %d normals", na, nn);
    put(&s, a, 4000, 1, NULL, 0, id, &dup);
    cr_assert_eq(dup, 1);
    put(&s, a, 4000, 0, NULL, 0, id, &dup);
    counts(&s, &na, &nn);
    cr_assert(na == 0 && nn == 1 && dup == 0, "and back");
    cr_assert_eq(check_all_whole(&s), 1);
    dn_store_close(&s);
    free(a);
    dn_test_rmtree(root);
}

Test(store, masks_and_refusals)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s;
    open_store(&s, root);
    unsigned char *a = fake_image(4000, 1, 4), *m1 = fake_image(700, 0, 5), *m2 = fake_image(900, 0, 6);
    char id[65], path[256];
    int dup;
    put(&s, a, 4000, 1, m1, 700, id, &dup);
    snprintf(path, sizeof path, "%s/feedback/masks/%s.png", root, id);
    size_t len;
    uint8_t *back = dn_test_read_file(path, &len);
    cr_assert(back && len == 700 && !memcmp(back, m1, 700), "mask stored under the image's id");
    free(back);
    put(&s, a, 4000, 1, m2, 900, id, &dup);
    cr_assert_eq(dup, 1);
    back = dn_test_read_file(path, &len);
    cr_assert(back && len == 900 && !memcmp(back, m2, 900), "a new mask replaces the old one");
    free(back);

    dn_error err;
    unsigned char *c = fake_image(4000, 0, 7), junk[16] = "GIF89a not ours";
    cr_assert_eq(dn_store_put(&s, junk, sizeof junk, 1, NULL, 0, id, &dup, &err), DN_EINVAL);
    cr_assert_eq(dn_store_put(&s, c, 4000, 1, a, 4000, id, &dup, &err), DN_EINVAL,
                 "a JPEG mask is refused");
    cr_assert(strstr(err.msg, "PNG"), "%s", err.msg);
    int na, nn;
    counts(&s, &na, &nn);
    cr_assert(na == 1 && nn == 0, "refused puts store nothing");
    char masks[128];
    snprintf(masks, sizeof masks, "%s/feedback/masks", root);
    cr_assert_eq(entries(masks), 1);
    dn_store_close(&s);
    free(a), free(c), free(m1), free(m2);
    dn_test_rmtree(root);
}

Test(store, fingerprint_follows_content)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s, other;
    open_store(&s, root);
    open_store(&other, root);
    unsigned char *a = fake_image(2000, 0, 8), *b = fake_image(2000, 0, 9);
    char f0[65], f1[65], f2[65], f3[65], f4[65], id[65];
    int dup;
    fingerprint(&s, f0);
    put(&s, a, 2000, 1, NULL, 0, id, &dup);
    fingerprint(&s, f1);
    cr_assert_str_neq(f0, f1, "a put changes it");
    put(&s, a, 2000, 1, NULL, 0, id, &dup);
    fingerprint(&s, f2);
    cr_assert_str_eq(f1, f2, "a duplicate does not");
    put(&s, a, 2000, 0, NULL, 0, id, &dup);
    fingerprint(&s, f3);
    cr_assert(strcmp(f3, f2) && strcmp(f3, f0), "a relabel does");
    put(&other, b, 2000, 0, NULL, 0, id, &dup);
    fingerprint(&s, f4);
    cr_assert_str_neq(f3, f4, "a put by another writer of the folder does");
    fingerprint(&other, f3);
    cr_assert_str_eq(f3, f4, "every handle computes the same");
    unsigned char *m = fake_image(700, 0, 10);
    put(&s, b, 2000, 0, m, 700, id, &dup);
    fingerprint(&s, f3);
    cr_assert_str_neq(f3, f4, "a mask added to a stored image does (training reads masks)");
    char **paths, **masks;
    int n;
    dn_error err;
    cr_assert_eq(dn_store_list(&s, 0, &paths, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(dn_store_masks(&s, paths, n, &masks, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_eq((masks[0] != NULL) + (masks[1] != NULL), 1, "only b has a mask");
    for (int i = 0; i < n; i++)
        if (masks[i])
            cr_assert(strstr(masks[i], "/masks/") && strstr(masks[i], id), "%s", masks[i]);
    dn_paths_free(paths, n);
    dn_paths_free(masks, n);
    free(m);
    dn_store_close(&s);
    dn_store_close(&other);
    free(a), free(b);
    dn_test_rmtree(root);
}

static void touch(const char *path, time_t age)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "create %s", path);
    fputs("partial", f);
    fclose(f);
    struct timespec t[2] = {{time(NULL) - age, 0}, {time(NULL) - age, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
}

Test(store, abandoned_temporary_files_removed_at_open)
{
    char root[64], host[65] = {0}, path[512], dir[256];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s;
    open_store(&s, root);
    dn_store_close(&s);
    gethostname(host, sizeof host - 1);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    cr_assert_eq(waitpid(dead, NULL, 0), dead);
    snprintf(dir, sizeof dir, "%s/feedback/anomaly", root);
    snprintf(path, sizeof path, "%s/.tmp.%d.0.%s", dir, (int)dead, host);
    touch(path, 0); /* this host, its process gone */
    snprintf(path, sizeof path, "%s/.tmp.%d.1.%s", dir, (int)getpid(), host);
    touch(path, 0); /* this host, its process alive: a put in progress */
    snprintf(dir, sizeof dir, "%s/feedback/normal", root);
    snprintf(path, sizeof path, "%s/.tmp.1.2.another-host", dir);
    touch(path, 0); /* another host: its process cannot be asked */
    snprintf(path, sizeof path, "%s/.tmp.1.3.another-host", dir);
    touch(path, 2 * DN_STORE_STALE_SECONDS); /* another host, but far too old */
    snprintf(path, sizeof path, "%s/.keep-me", dir);
    touch(path, 2 * DN_STORE_STALE_SECONDS); /* not a temporary file of the store */

    open_store(&s, root);
    snprintf(path, sizeof path, "%s/feedback/anomaly/.tmp.%d.0.%s", root, (int)dead, host);
    cr_assert(access(path, F_OK) != 0, "a dead process's temporary file is removed");
    snprintf(path, sizeof path, "%s/feedback/anomaly/.tmp.%d.1.%s", root, (int)getpid(), host);
    cr_assert(access(path, F_OK) == 0, "a live process's is kept");
    snprintf(path, sizeof path, "%s/.tmp.1.2.another-host", dir);
    cr_assert(access(path, F_OK) == 0, "another host's recent one is kept");
    snprintf(path, sizeof path, "%s/.tmp.1.3.another-host", dir);
    cr_assert(access(path, F_OK) != 0, "an old one is removed whoever wrote it");
    snprintf(path, sizeof path, "%s/.keep-me", dir);
    cr_assert(access(path, F_OK) == 0);
    int na, nn;
    counts(&s, &na, &nn);
    cr_assert(na == 0 && nn == 0, "temporary files are never listed");
    dn_store_close(&s);
    dn_test_rmtree(root);
}

Test(store, open_refusals)
{
    char root[64], path[256];
    dn_test_mkdtemp(root, "dn_store_");
    snprintf(path, sizeof path, "%s/file", root);
    touch(path, 0);
    dn_store s;
    dn_error err;
    cr_assert_eq(dn_store_open(&s, path, &err), DN_EIO, "a file is not a data folder");
    cr_assert(strstr(err.msg, path), "%s", err.msg);
    char *long_dir = malloc(DN_STORE_MAX_PATH);
    memset(long_dir, 'a', DN_STORE_MAX_PATH - 100);
    long_dir[DN_STORE_MAX_PATH - 100] = '\0';
    cr_assert_eq(dn_store_open(&s, long_dir, &err), DN_ETOOBIG);
    free(long_dir);
    dn_test_rmtree(root);
}

/* ---- killed writers ---- */

static int read_full(int fd, char *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = read(fd, buf + got, n - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return 0;
        got += (size_t)k;
    }
    return 1;
}

/* The child: puts images (some relabelled) and acknowledges each stored id on fd, until
 * it is killed. */
static void killed_writer(const char *root, int round, int fd)
{
    dn_store s;
    dn_error err;
    if (dn_store_open(&s, root, &err))
        _exit(2);
    uint64_t rs = 77 + (uint64_t)round;
    for (int i = 0; i < 400; i++) {
        int again = i % 4 == 3; /* relabel one of the images this round put before */
        int k = again ? (int)(dn_test_rand(&rs) % (unsigned)i) : i;
        size_t len = 1000 + (size_t)(k * 7919 % 200000);
        unsigned char *img = fake_image(len, k % 2, (uint64_t)round * 1000 + (uint64_t)k);
        char id[65];
        int dup;
        if (dn_store_put(&s, img, len, again ? (int)(dn_test_rand(&rs) & 1) : k % 3 == 0,
                         NULL, 0, id, &dup, &err))
            _exit(3);
        free(img);
        if (write(fd, id, 64) != 64)
            _exit(4);
    }
    _exit(0);
}

static int stored(const char *root, const char *id)
{
    char path[512];
    for (int label = 0; label < 2; label++)
        for (int jpeg = 0; jpeg < 2; jpeg++) {
            snprintf(path, sizeof path, "%s/feedback/%s/%s.%s", root, label ? "anomaly" : "normal", id,
                     jpeg ? "jpg" : "png");
            if (access(path, F_OK) == 0)
                return 1;
        }
    return 0;
}

Test(store, killed_puts_leave_no_partial_file_and_lose_no_acknowledged_one, .timeout = 120)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    uint64_t seed = 12345;
    int acked = 0;
    for (int round = 0; round < 24; round++) {
        int fds[2];
        cr_assert_eq(pipe(fds), 0);
        pid_t pid = fork();
        cr_assert_neq(pid, -1);
        if (pid == 0) {
            close(fds[0]);
            killed_writer(root, round, fds[1]);
        }
        close(fds[1]);
        char id[65] = {0};
        /* Kill only once the child is storing (no timing assumption), then at a random
         * point of its next puts. */
        cr_assert(read_full(fds[0], id, 64), "the writer stored nothing");
        usleep(dn_test_rand(&seed) % 4000);
        kill(pid, SIGKILL);
        int status;
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0),
                  "writer failed with status %d", status);
        dn_store s;
        open_store(&s, root);
        do {
            cr_assert(stored(root, id), "acknowledged image %s is lost", id);
            acked++;
        } while (read_full(fds[0], id, 64));
        close(fds[0]);
        check_all_whole(&s);
        dn_store_close(&s);
    }
    cr_assert_geq(acked, 24);
    /* The killed writers' temporary files were removed by the opens that followed. */
    char dir[128];
    for (int label = 0; label < 2; label++) {
        snprintf(dir, sizeof dir, "%s/feedback/%s", root, label ? "anomaly" : "normal");
        DIR *d = opendir(dir);
        struct dirent *e;
        while ((e = readdir(d)))
            cr_assert(strncmp(e->d_name, ".tmp.", 5), "%s/%s left behind", dir, e->d_name);
        closedir(d);
    }
    dn_test_rmtree(root);
}

/* ---- full disk ---- */

Test(store, full_disk_is_enospc_and_leaves_nothing)
{
    char root[64], data[96], dir[160];
    dn_test_mkdtemp(root, "dn_store_");
    /* A private mount namespace: the tmpfs goes away with this test's process, whatever
     * happens to it. */
    if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
        mount("tmpfs", root, "tmpfs", 0, "size=64k") != 0) {
        int e = errno;
        rmdir(root);
        cr_skip_test("cannot mount a small tmpfs (%s): needs root with CAP_SYS_ADMIN; "
                     "full-disk test skipped", strerror(e));
    }
    snprintf(data, sizeof data, "%s/data", root);
    dn_store s;
    open_store(&s, data);
    unsigned char *big = fake_image(256 << 10, 0, 10), *mask = fake_image(4000, 0, 11);
    unsigned char *small = fake_image(8000, 0, 12);
    char id[65];
    int dup;
    dn_error err;
    cr_assert_eq(dn_store_put(&s, big, 256 << 10, 1, mask, 4000, id, &dup, &err), DN_ENOSPC,
                 "%s", err.msg);
    const char *folders[3] = {"anomaly", "normal", "masks"};
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/feedback/%s", data, folders[i]);
        cr_assert_eq(entries(dir), 0, "%s is not empty after a failed put", dir);
    }
    put(&s, small, 8000, 1, mask, 4000, id, &dup);
    cr_assert_eq(check_all_whole(&s), 1, "the space was given back");
    dn_store_close(&s);
    free(big), free(mask), free(small);
    umount2(root, MNT_DETACH);
    rmdir(root);
}

/* ---- threads ---- */

enum { POOL = 48, THREADS = 4, PUTS = 36 };

typedef struct put_job {
    dn_store *s;
    unsigned char *img[POOL];
    size_t len[POOL];
    int t, failures;
} put_job;

static void *put_thread(void *arg)
{
    put_job *j = arg;
    for (int i = 0; i < PUTS; i++) {
        int k = (j->t * 11 + i) % POOL; /* threads overlap on the same images */
        char id[65];
        int dup;
        dn_error err;
        j->failures += dn_store_put(j->s, j->img[k], j->len[k], k % 2, NULL, 0, id, &dup, &err) != DN_OK;
    }
    return NULL;
}

Test(store, concurrent_puts_from_threads)
{
    char root[64];
    dn_test_mkdtemp(root, "dn_store_");
    dn_store s;
    open_store(&s, root);
    static put_job jobs[THREADS];
    pthread_t th[THREADS];
    unsigned char *img[POOL];
    size_t len[POOL];
    for (int k = 0; k < POOL; k++) {
        len[k] = 500 + (size_t)k * 1000;
        img[k] = fake_image(len[k], k % 3 == 0, 500 + (uint64_t)k);
    }
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (put_job){.s = &s, .t = t};
        memcpy(jobs[t].img, img, sizeof img);
        memcpy(jobs[t].len, len, sizeof len);
        cr_assert_eq(pthread_create(&th[t], NULL, put_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(jobs[t].failures, 0);
    }
    int na, nn;
    counts(&s, &na, &nn);
    /* Together the threads put every image of the pool, odd ones as anomalies. */
    cr_assert(na == POOL / 2 && nn == POOL / 2, "%d anomalies, %d normals", na, nn);
    cr_assert_eq(check_all_whole(&s), POOL);
    dn_store_close(&s);
    for (int k = 0; k < POOL; k++)
        free(img[k]);
    dn_test_rmtree(root);
}

/* Tests of dn_dataset: the loader on a fake MVTec tree of empty files (it never decodes),
 * the protocol's draw, the generator it draws with (dn_rng) against reference values, and
 * the three datasets of ../shared when present. */
#include "test_util.h"

#include <errno.h>
#include <math.h>
#include <unistd.h>

#include "dn_dataset.h"
#include "dn_rng.h"

/* ---- fixture: a fake MVTec tree in one mkdtemp directory per test ---- */

static char tmp[64];

static void setup(void)
{
    dn_test_mkdtemp(tmp, "dn_ds_");
}

static const char *at(const char *rel);
static const char *locked; /* a folder a test made unreadable, relative to tmp */

static void teardown(void)
{
    if (locked)
        chmod(at(locked), 0700); /* else nftw cannot enter it */
    dn_test_rmtree(tmp);
}

TestSuite(dataset, .init = setup, .fini = teardown);
/* Sets up inside the test, because criterion runs no .fini after a skip. */
TestSuite(dataset_perm, .fini = teardown);

static const char *at(const char *rel)
{
    static char path[4][512]; /* a few results stay valid at once */
    static int turn;
    turn = (turn + 1) % 4;
    snprintf(path[turn], sizeof path[turn], "%s/%s", tmp, rel);
    return path[turn];
}

/* mkdir -p of tmp/rel. */
static void mk(const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, rel);
    for (char *p = path + strlen(tmp) + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            cr_assert(mkdir(path, 0700) == 0 || errno == EEXIST, "mkdir %s: %s", path,
                      strerror(errno));
            if (!(*p = c))
                break;
        }
    }
}

static void touch(const char *rel)
{
    FILE *f = fopen(at(rel), "wb");
    cr_assert_not_null(f, "cannot create %s", rel);
    fclose(f);
}

/* Two defect classes (listed out of order on disk), masks for three of the five anomalies,
 * and every kind of entry the loader must skip. */
static void make_tree(void)
{
    mk("fake/train/good/dir.png"); /* a folder with an image name */
    mk("fake/test/good");
    mk("fake/test/crack");
    mk("fake/test/broken");
    mk("fake/test/.hidden");
    mk("fake/ground_truth/broken");
    mk("fake/ground_truth/crack");
    const char *files[] = {
        "fake/train/good/002.png",      "fake/train/good/000.png",
        "fake/train/good/001.JPG",      "fake/train/good/.003.png",
        "fake/train/good/notes.txt",    "fake/train/good/png",
        "fake/test/good/001.jpeg",      "fake/test/good/000.png",
        "fake/test/crack/001.png",      "fake/test/crack/000.jpg",
        "fake/test/crack/readme.txt",   "fake/test/broken/002.png",
        "fake/test/broken/000.PNG",     "fake/test/broken/001.png",
        "fake/test/.hidden/000.png",    "fake/test/loose.png",
        "fake/ground_truth/broken/000_mask.png",
        "fake/ground_truth/broken/002_mask.png",
        "fake/ground_truth/crack/000_mask.png",
        "fake/ground_truth/crack/001.png", /* not a mask name */
    };
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        touch(files[i]);
}

/* rel is relative to fake/, mask_rel to fake/ground_truth/. */
static void check_sample(const dn_sample *s, const char *rel, const char *mask_rel,
                         int defect)
{
    char path[128];
    snprintf(path, sizeof path, "fake/%s", rel);
    cr_assert_str_eq(s->path, at(path));
    if (mask_rel) {
        snprintf(path, sizeof path, "fake/ground_truth/%s", mask_rel);
        cr_assert_str_eq(s->mask_path, at(path), "mask of %s", rel);
    } else
        cr_assert_null(s->mask_path, "%s should have no mask, has %s", rel, s->mask_path);
    cr_assert_eq(s->defect, defect, "%s: defect %d", rel, s->defect);
    cr_assert_eq(s->anomalous, defect >= 0, "%s: anomalous %d", rel, s->anomalous);
}

static void check_fake(const dn_dataset *d)
{
    cr_assert_str_eq(d->name, "fake");
    cr_assert_eq(d->n_train, 3);
    check_sample(&d->train[0], "train/good/000.png", NULL, -1);
    check_sample(&d->train[1], "train/good/001.JPG", NULL, -1);
    check_sample(&d->train[2], "train/good/002.png", NULL, -1);

    cr_assert_eq(d->n_defects, 2);
    cr_assert_str_eq(d->defects[0], "broken");
    cr_assert_str_eq(d->defects[1], "crack");

    cr_assert_eq(d->n_test, 7);
    check_sample(&d->test[0], "test/good/000.png", NULL, -1);
    check_sample(&d->test[1], "test/good/001.jpeg", NULL, -1);
    check_sample(&d->test[2], "test/broken/000.PNG", "broken/000_mask.png", 0);
    check_sample(&d->test[3], "test/broken/001.png", NULL, 0);
    check_sample(&d->test[4], "test/broken/002.png", "broken/002_mask.png", 0);
    check_sample(&d->test[5], "test/crack/000.jpg", "crack/000_mask.png", 1);
    check_sample(&d->test[6], "test/crack/001.png", NULL, 1);
    cr_assert_eq(d->has_masks, 1);
    cr_assert_eq(dn_dataset_count_anomalous(d), 5);
}

static void assert_empty(const dn_dataset *d)
{
    cr_assert(!d->train && !d->test && !d->defects);
    cr_assert(!d->n_train && !d->n_test && !d->n_defects && !d->has_masks);
}

/* ---- loader ---- */

Test(dataset, layout_order_and_masks)
{
    make_tree();
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_OK, "%s", d.err.msg);
    check_fake(&d);
    dn_dataset_free(&d);
    assert_empty(&d);
    dn_dataset_free(&d); /* safe twice */
}

Test(dataset, trailing_slash_dot_and_reopen)
{
    make_tree();
    mk("other/train/good");
    touch("other/train/good/a.png");
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("other")), DN_OK, "%s", d.err.msg);
    cr_assert_eq(d.n_train, 1);
    /* The second open releases the first dataset (ASan would report a leak otherwise). */
    cr_assert_eq(dn_dataset_open(&d, at("fake//")), DN_OK, "%s", d.err.msg);
    check_fake(&d);

    /* "." is named after the folder it resolves to; paths keep the form given. */
    char cwd[1024];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(at("fake")), 0);
    int rc = dn_dataset_open(&d, ".");
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, DN_OK, "%s", d.err.msg);
    cr_assert_str_eq(d.name, "fake");
    cr_assert_str_eq(d.train[0].path, "./train/good/000.png");
    cr_assert_str_eq(d.test[2].mask_path, "./ground_truth/broken/000_mask.png");
    dn_dataset_free(&d);
}

Test(dataset, missing_train_good_refused)
{
    mk("fake/test/good");
    touch("fake/test/good/000.png");
    mk("fake/train/bad");
    touch("fake/train/bad/000.png");
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_EFORMAT);
    cr_assert_eq(d.err.code, DN_EFORMAT);
    cr_assert_not_null(strstr(d.err.msg, "has no train/good folder"), "%s", d.err.msg);
    cr_assert_not_null(strstr(d.err.msg, at("fake")), "%s", d.err.msg);
    assert_empty(&d);
}

Test(dataset, train_good_without_images_refused)
{
    mk("fake/train/good/sub.jpg");
    touch("fake/train/good/.hidden.png");
    touch("fake/train/good/notes.txt");
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_EFORMAT);
    cr_assert_not_null(strstr(d.err.msg, "no images"), "%s", d.err.msg);
    assert_empty(&d);
}

Test(dataset, missing_or_bad_folder)
{
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("nowhere")), DN_EIO);
    cr_assert_not_null(strstr(d.err.msg, "No such file"), "%s", d.err.msg);
    touch("file");
    cr_assert_eq(dn_dataset_open(&d, at("file")), DN_EIO);
    cr_assert_not_null(strstr(d.err.msg, "not a folder"), "%s", d.err.msg);
    assert_empty(&d);
}

Test(dataset, path_too_long_refused)
{
    size_t len = DN_DATASET_MAX_PATH + 100;
    char *long_dir = malloc(len + 1);
    cr_assert_not_null(long_dir);
    for (size_t i = 0; i < len; i++)
        long_dir[i] = i % 2 ? '/' : 'a';
    long_dir[len] = '\0';
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, long_dir), DN_ETOOBIG);
    cr_assert_not_null(strstr(d.err.msg, "bytes long"), "%s", d.err.msg);
    char **paths = NULL;
    int n = -1;
    cr_assert_eq(dn_dataset_list_images(long_dir, &paths, &n, &d.err), DN_ETOOBIG);
    cr_assert(!paths && n == 0);
    free(long_dir);

    /* A root that exists and fits, whose joined paths do not: refused, never truncated.
     * Built from 40-byte components, the last one short enough to be a dataset name. */
    char deep[DN_DATASET_MAX_PATH];
    size_t at_len = (size_t)snprintf(deep, sizeof deep, "%s", tmp);
    while (at_len + 1 + 40 + 1 + 50 <= DN_DATASET_MAX_PATH - 6) {
        at_len += (size_t)snprintf(deep + at_len, sizeof deep - at_len, "/%040d", 0);
        cr_assert_eq(mkdir(deep, 0700), 0, "%s", strerror(errno));
    }
    memset(deep + at_len, 'c', DN_DATASET_MAX_PATH - 6 - at_len);
    deep[at_len] = '/';
    deep[DN_DATASET_MAX_PATH - 6] = '\0';
    cr_assert_eq(mkdir(deep, 0700), 0, "%s", strerror(errno));
    cr_assert_eq(dn_dataset_open(&d, deep), DN_ETOOBIG, "%s", d.err.msg);
    cr_assert_not_null(strstr(d.err.msg, "path '"), "%s", d.err.msg);
    cr_assert_not_null(strstr(d.err.msg, "4101 bytes long"), "%s", d.err.msg);
    assert_empty(&d);
}

Test(dataset_perm, unreadable_folder)
{
    if (geteuid() == 0)
        cr_skip_test("running as root: permissions do not stop reading a folder");
    setup();
    make_tree();
    locked = "fake/test/crack";
    cr_assert_eq(chmod(at(locked), 0), 0);
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_EIO);
    cr_assert_not_null(strstr(d.err.msg, "Permission denied"), "%s", d.err.msg);
    cr_assert_not_null(strstr(d.err.msg, "test/crack"), "%s", d.err.msg);
    assert_empty(&d);
}

Test(dataset, train_only_and_no_masks)
{
    mk("fake/train/good");
    touch("fake/train/good/a.png");
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_OK, "%s", d.err.msg);
    cr_assert(d.n_train == 1 && d.n_test == 0 && d.n_defects == 0 && !d.has_masks);

    mk("fake/test/hole");
    touch("fake/test/hole/x.y.png");
    mk("fake/test/empty");
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_OK, "%s", d.err.msg);
    cr_assert_eq(d.n_defects, 2); /* an empty class is still a class */
    cr_assert_str_eq(d.defects[0], "empty");
    cr_assert_eq(d.n_test, 1);
    check_sample(&d.test[0], "test/hole/x.y.png", NULL, 1);
    cr_assert_eq(d.has_masks, 0);

    /* The stem stops at the last dot. */
    mk("fake/ground_truth/hole");
    touch("fake/ground_truth/hole/x.y_mask.png");
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_OK, "%s", d.err.msg);
    check_sample(&d.test[0], "test/hole/x.y.png", "hole/x.y_mask.png", 1);
    cr_assert_eq(d.has_masks, 1);
    dn_dataset_free(&d);
}

Test(dataset, list_images)
{
    make_tree();
    char **paths = NULL;
    int n = 0;
    dn_error err;
    dn_error_clear(&err);
    cr_assert_eq(dn_dataset_list_images(at("fake/test/broken/"), &paths, &n, &err), DN_OK,
                 "%s", err.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(paths[0], at("fake/test/broken/000.PNG"));
    cr_assert_str_eq(paths[1], at("fake/test/broken/001.png"));
    cr_assert_str_eq(paths[2], at("fake/test/broken/002.png"));
    dn_paths_free(paths, n);

    mk("empty");
    cr_assert_eq(dn_dataset_list_images(at("empty"), &paths, &n, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    dn_paths_free(paths, n);

    cr_assert_eq(dn_dataset_list_images(at("nowhere"), &paths, &n, &err), DN_EIO);
    cr_assert(!paths && n == 0);
    cr_assert_not_null(strstr(err.msg, "nowhere"), "%s", err.msg);
    cr_assert_eq(dn_dataset_list_images(at("fake/test/loose.png"), &paths, &n, NULL), DN_EIO);
}

/* ---- protocol ---- */

/* A test set of n_good normals followed by n_anom anomalies, without paths. */
static void fake_test(dn_dataset *d, int n_good, int n_anom)
{
    dn_dataset_init(d);
    d->n_test = n_good + n_anom;
    d->test = calloc((size_t)d->n_test, sizeof *d->test);
    cr_assert_not_null(d->test);
    for (int i = 0; i < d->n_test; i++) {
        d->test[i].anomalous = i >= n_good;
        d->test[i].defect = i >= n_good ? 0 : -1;
    }
}

static void check_draw(const dn_dataset *d, int k, const int *drawn, const int *rest,
                       int n_rest)
{
    cr_assert_eq(n_rest, d->n_test - k);
    int *seen = calloc((size_t)d->n_test, sizeof *seen);
    cr_assert_not_null(seen);
    for (int i = 0; i < k; i++) {
        cr_assert(drawn[i] >= 0 && drawn[i] < d->n_test);
        cr_assert(d->test[drawn[i]].anomalous, "drew normal sample %d", drawn[i]);
        seen[drawn[i]]++;
    }
    for (int i = 0; i < n_rest; i++) {
        cr_assert(rest[i] >= 0 && rest[i] < d->n_test);
        cr_assert(i == 0 || rest[i - 1] < rest[i], "rest out of order at %d", i);
        seen[rest[i]]++;
    }
    for (int i = 0; i < d->n_test; i++)
        cr_assert_eq(seen[i], 1, "test sample %d taken %d times", i, seen[i]);
    free(seen);
}

Test(protocol, draw_properties)
{
    dn_dataset d;
    fake_test(&d, 20, 63); /* the shape of mvtec_bottle */
    int drawn[3][10], rest[83], n_rest;
    for (int s = 0; s < 3; s++) {
        cr_assert_eq(dn_protocol_draw(&d, 10, (uint64_t)s + 1, drawn[s], rest, &n_rest, NULL),
                     DN_OK);
        check_draw(&d, 10, drawn[s], rest, n_rest);
    }
    cr_assert(memcmp(drawn[0], drawn[1], sizeof drawn[0]) != 0);
    cr_assert(memcmp(drawn[0], drawn[2], sizeof drawn[0]) != 0);
    cr_assert(memcmp(drawn[1], drawn[2], sizeof drawn[0]) != 0);

    int again[10], one[1];
    cr_assert_eq(dn_protocol_draw(&d, 10, 2, again, rest, &n_rest, NULL), DN_OK);
    cr_assert_arr_eq(again, drawn[1], sizeof again);
    /* A partial shuffle: k = 1 is the first of k = 10 with the same seed. */
    cr_assert_eq(dn_protocol_draw(&d, 1, 2, one, rest, &n_rest, NULL), DN_OK);
    cr_assert_eq(one[0], drawn[1][0]);
    dn_dataset_free(&d);
}

Test(protocol, draw_reference_values)
{
    /* From a Python transcription of the documented draw (xoshiro256**, splitmix64 seeding,
     * rejection below, partial Fisher-Yates): 5 normals, 10 anomalies, k = 4, seed 2024. */
    dn_dataset d;
    fake_test(&d, 5, 10);
    int drawn[4], rest[11], n_rest;
    cr_assert_eq(dn_protocol_draw(&d, 4, 2024, drawn, rest, &n_rest, NULL), DN_OK);
    cr_assert(drawn[0] == 13 && drawn[1] == 9 && drawn[2] == 8 && drawn[3] == 6,
              "drew %d %d %d %d", drawn[0], drawn[1], drawn[2], drawn[3]);
    check_draw(&d, 4, drawn, rest, n_rest);
    dn_dataset_free(&d);
}

Test(protocol, k_zero_all_and_too_many)
{
    dn_dataset d;
    fake_test(&d, 3, 4);
    int drawn[5], rest[7], n_rest = -1;
    cr_assert_eq(dn_protocol_draw(&d, 0, 9, NULL, rest, &n_rest, NULL), DN_OK);
    check_draw(&d, 0, NULL, rest, n_rest);
    cr_assert_eq(dn_protocol_draw(&d, 4, 9, drawn, rest, &n_rest, NULL), DN_OK);
    check_draw(&d, 4, drawn, rest, n_rest);
    cr_assert(n_rest == 3 && rest[0] == 0 && rest[1] == 1 && rest[2] == 2);

    dn_error err;
    dn_error_clear(&err);
    cr_assert_eq(dn_protocol_draw(&d, 5, 9, drawn, rest, &n_rest, &err), DN_EINVAL);
    cr_assert_not_null(strstr(err.msg, "has 4"), "%s", err.msg);
    cr_assert_eq(dn_protocol_draw(&d, -1, 9, drawn, rest, &n_rest, &err), DN_EINVAL);
    dn_dataset_free(&d);
}

Test(dataset, draw_on_loaded_tree)
{
    make_tree();
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, at("fake")), DN_OK, "%s", d.err.msg);
    int drawn[5], rest[7], n_rest;
    cr_assert_eq(dn_protocol_draw(&d, 2, 1, drawn, rest, &n_rest, &d.err), DN_OK);
    check_draw(&d, 2, drawn, rest, n_rest);
    cr_assert(rest[0] == 0 && rest[1] == 1, "test/good stays first");
    cr_assert_eq(dn_protocol_draw(&d, 6, 1, drawn, rest, &n_rest, &d.err), DN_EINVAL);
    dn_dataset_free(&d);
}

/* ---- generator ---- */

Test(dataset_rng, reference_values)
{
    /* xoshiro256** seeded by splitmix64(0): the published reference sequence. */
    const uint64_t want[4] = {0x99ec5f36cb75f2b4u, 0xbf6e1f784956452au, 0x1a5f849d4933e6e0u,
                              0x6aa594f1262d2d2cu};
    dn_rng r;
    dn_rng_seed(&r, 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(dn_rng_next(&r), want[i], "output %d", i);

    dn_rng_seed(&r, 0);
    cr_assert_eq(dn_rng_uniform(&r), (double)(want[0] >> 11) * 0x1.0p-53);

    /* The rest from the Python transcription used for the draw above. */
    const uint64_t below[12] = {0, 2, 8, 2, 7, 8, 4, 3, 7, 7, 4, 3};
    dn_rng_seed(&r, 0);
    for (int i = 0; i < 12; i++)
        cr_assert_eq(dn_rng_below(&r, 10), below[i], "below %d", i);

    const double normal[3] = {-0.303263064678738, 1.3438117634372806, 0.3834617912676943};
    dn_rng_seed(&r, 42);
    for (int i = 0; i < 3; i++) {
        double z = dn_rng_normal(&r);
        cr_assert(fabs(z - normal[i]) < 1e-12, "normal %d: %.17g", i, z);
    }

    const int shuffled[10] = {8, 3, 9, 0, 7, 2, 1, 6, 5, 4};
    int a[10];
    for (int i = 0; i < 10; i++)
        a[i] = i;
    dn_rng_seed(&r, 7);
    dn_rng_shuffle(&r, a, 10);
    cr_assert_arr_eq(a, shuffled, sizeof a);
}

Test(dataset_rng, below_in_range_and_uniform)
{
    const uint64_t ns[] = {1, 2, 3, 7, 1000, (UINT64_C(1) << 63) + 1, UINT64_MAX};
    dn_rng r;
    dn_rng_seed(&r, 5);
    for (size_t t = 0; t < sizeof ns / sizeof *ns; t++)
        for (int i = 0; i < 10000; i++) {
            uint64_t x = dn_rng_below(&r, ns[t]);
            cr_assert_lt(x, ns[t]);
        }

    /* Chi-square with 9 degrees of freedom: 60 is far in the tail (p < 1e-8). */
    enum { N = 100000, BINS = 10 };
    int count[BINS] = {0};
    for (int i = 0; i < N; i++)
        count[dn_rng_below(&r, BINS)]++;
    double chi2 = 0, e = (double)N / BINS;
    for (int b = 0; b < BINS; b++)
        chi2 += (count[b] - e) * (count[b] - e) / e;
    cr_assert_lt(chi2, 60.0);

    /* The bias a plain modulo would have for n = 3 * 2^62 is 2:1; rejection removes it. */
    uint64_t n = UINT64_C(3) << 62;
    int low = 0;
    for (int i = 0; i < N; i++)
        low += dn_rng_below(&r, n) < n / 3;
    cr_assert(fabs(low / (double)N - 1.0 / 3) < 0.01, "fraction in the lower third %g",
              low / (double)N);
}

Test(dataset_rng, uniform_and_normal_moments)
{
    enum { N = 100000 };
    dn_rng r;
    dn_rng_seed(&r, 11);
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) {
        double u = dn_rng_uniform(&r);
        cr_assert(u >= 0 && u < 1);
        s += u;
    }
    cr_assert(fabs(s / N - 0.5) < 0.005, "uniform mean %g", s / N);

    s = 0;
    for (int i = 0; i < N; i++) {
        double z = dn_rng_normal(&r);
        cr_assert(isfinite(z));
        s += z;
        s2 += z * z;
    }
    double mean = s / N, sd = sqrt(s2 / N - mean * mean);
    cr_assert(fabs(mean) < 0.015, "normal mean %g", mean); /* ~5 standard errors */
    cr_assert(fabs(sd - 1) < 0.015, "normal std %g", sd);
}

Test(dataset_rng, shuffle_is_a_permutation)
{
    int a[50], seen[50] = {0};
    for (int i = 0; i < 50; i++)
        a[i] = i;
    dn_rng r;
    dn_rng_seed(&r, 3);
    dn_rng_shuffle(&r, a, 50);
    dn_rng_shuffle(&r, a, 0);
    dn_rng_shuffle(&r, a, 1);
    int moved = 0;
    for (int i = 0; i < 50; i++) {
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < 50; i++)
        cr_assert_eq(seen[i], 1);
    cr_assert_gt(moved, 25);
}

/* ---- the datasets of ../shared ---- */

typedef struct {
    const char *name;
    int n_train, n_good, n_defects;
    const char *defects[5];
    int per_defect[5];
    int masks; /* every anomaly has one (1) or none has (0) */
} shared_case;

static void check_shared(const char *shared, const shared_case *c)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/data/%s", shared, c->name);
    dn_dataset d;
    dn_dataset_init(&d);
    cr_assert_eq(dn_dataset_open(&d, dir), DN_OK, "%s", d.err.msg);
    cr_assert_str_eq(d.name, c->name);
    cr_assert_eq(d.n_train, c->n_train, "%s: %d train", c->name, d.n_train);
    cr_assert_eq(d.n_defects, c->n_defects, "%s: %d defects", c->name, d.n_defects);
    int good = 0, count[5] = {0}, n_anom = 0;
    for (int i = 0; i < d.n_test; i++) {
        const dn_sample *s = &d.test[i];
        if (s->defect < 0) {
            cr_assert_eq(i, good, "%s: test/good is not first", c->name);
            good++;
            cr_assert_null(s->mask_path);
            continue;
        }
        cr_assert(i == 0 || s->defect >= d.test[i - 1].defect, "%s: classes out of order", c->name);
        count[s->defect]++;
        n_anom++;
        cr_assert_eq(s->mask_path != NULL, c->masks, "%s: mask of %s", c->name, s->path);
    }
    cr_assert_eq(good, c->n_good, "%s: %d test/good", c->name, good);
    for (int k = 0; k < c->n_defects; k++) {
        cr_assert_str_eq(d.defects[k], c->defects[k]);
        cr_assert_eq(count[k], c->per_defect[k], "%s/%s: %d", c->name, c->defects[k], count[k]);
    }
    cr_assert_eq(d.has_masks, c->masks);
    cr_assert_eq(dn_dataset_count_anomalous(&d), n_anom);

    int drawn[10], *rest = malloc((size_t)d.n_test * sizeof *rest), n_rest;
    cr_assert_not_null(rest);
    cr_assert_eq(dn_protocol_draw(&d, 10, 1, drawn, rest, &n_rest, &d.err), DN_OK, "%s",
                 d.err.msg);
    check_draw(&d, 10, drawn, rest, n_rest);
    free(rest);
    dn_dataset_free(&d);
}

Test(shared, three_datasets_match_readme)
{
    DN_REQUIRE_SHARED(shared);
    const shared_case cases[] = {
        {"mvtec_bottle", 209, 20, 3, {"broken_large", "broken_small", "contamination"},
         {20, 22, 21}, 1},
        {"elpv", 1131, 377, 2, {"mono", "poly"}, {313, 402}, 0},
        {"magnetic_tile", 714, 238, 5, {"blowhole", "break", "crack", "fray", "uneven"},
         {115, 85, 57, 32, 103}, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        check_shared(shared, &cases[i]);
}

/* Normality branch: descriptors against a naive implementation, nearest neighbours
 * against brute force, and the greedy k-centre coreset against a naive greedy loop. */
#include "test_util.h"

#include "dn_forward.h"
#include "dn_normality.h"

#include <math.h>
#include <pthread.h>

static float *random_floats(size_t n, float lo, float hi, uint64_t seed)
{
    uint64_t s = seed | 1;
    float *x = malloc(n * sizeof *x);
    cr_assert(x);
    for (size_t i = 0; i < n; i++)
        x[i] = dn_test_uniform(&s, lo, hi);
    return x;
}

/* ---- descriptors ---- */

/* 3x3 average, stride 1, over the window cells inside the map. */
static void naive_box3(const dn_fmap *m, float *out)
{
    for (int i = 0; i < m->h; i++)
        for (int j = 0; j < m->w; j++)
            for (int c = 0; c < m->c; c++) {
                double sum = 0;
                int cnt = 0;
                for (int di = -1; di <= 1; di++)
                    for (int dj = -1; dj <= 1; dj++) {
                        int y = i + di, x = j + dj;
                        if (y < 0 || y >= m->h || x < 0 || x >= m->w)
                            continue;
                        sum += m->data[((size_t)y * m->w + x) * m->c + c];
                        cnt++;
                    }
                out[((size_t)i * m->w + j) * m->c + c] = (float)(sum / cnt);
            }
}

/* Cell (r, c) pools the smoothed stride-8 rows 2r..2r+1 and columns 2c..2c+1 that exist. */
static void naive_descriptors(const dn_fmap *s8, const dn_fmap *s16, float *out)
{
    float *b8 = malloc(sizeof(float) * s8->h * s8->w * s8->c);
    float *b16 = malloc(sizeof(float) * s16->h * s16->w * s16->c);
    naive_box3(s8, b8);
    naive_box3(s16, b16);
    int dim = s8->c + s16->c;
    for (int r = 0; r < s16->h; r++)
        for (int c = 0; c < s16->w; c++) {
            float *o = out + ((size_t)r * s16->w + c) * dim;
            for (int k = 0; k < s8->c; k++) {
                double sum = 0;
                int cnt = 0;
                for (int y = 2 * r; y <= 2 * r + 1 && y < s8->h; y++)
                    for (int x = 2 * c; x <= 2 * c + 1 && x < s8->w; x++) {
                        sum += b8[((size_t)y * s8->w + x) * s8->c + k];
                        cnt++;
                    }
                o[k] = (float)(sum / cnt);
            }
            for (int k = 0; k < s16->c; k++)
                o[s8->c + k] = b16[((size_t)r * s16->w + c) * s16->c + k];
        }
    free(b8);
    free(b16);
}

static void check_descriptors(int h8, int w8, int c8, int h16, int w16, int c16)
{
    float *d8 = random_floats((size_t)h8 * w8 * c8, -1, 1, 11u * h8 + w8);
    float *d16 = random_floats((size_t)h16 * w16 * c16, -1, 1, 13u * h16 + w16);
    dn_fmap s8 = {h8, w8, c8, d8}, s16 = {h16, w16, c16, d16};
    size_t n = (size_t)h16 * w16 * (c8 + c16);
    float *got = malloc(n * sizeof *got), *want = malloc(n * sizeof *want);
    dn_error err;
    cr_assert_eq(dn_patch_descriptors(&s8, &s16, got, &err), DN_OK, "%s", err.msg);
    naive_descriptors(&s8, &s16, want);
    for (size_t i = 0; i < n; i++)
        cr_assert(fabsf(got[i] - want[i]) < 1e-5f, "%dx%dx%d / %dx%dx%d: [%zu] %g vs %g", h8, w8,
                  c8, h16, w16, c16, i, got[i], want[i]);
    free(d8);
    free(d16);
    free(got);
    free(want);
}

Test(normality, descriptors_match_naive)
{
    check_descriptors(56, 56, 32, 28, 28, 96); /* MobileNetV2 at 448 */
    check_descriptors(8, 8, 3, 4, 4, 5);       /* even */
    check_descriptors(7, 9, 3, 4, 5, 5);       /* odd: last cells pool one row/column */
    check_descriptors(11, 6, 2, 4, 3, 1);      /* longer than 2 x h16: extra rows only smooth */
    check_descriptors(3, 3, 1, 2, 2, 1);
    check_descriptors(2, 1, 4, 1, 1, 3);       /* maps of one or two cells */
    check_descriptors(1, 1, 4, 1, 1, 3);
}

/* Hand-computed: s8 = 1..9 on 3x3, s16 = [10 20; 30 40]. */
Test(normality, descriptors_by_hand)
{
    const float v8[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, v16[4] = {10, 20, 30, 40};
    dn_fmap s8 = {3, 3, 1, v8}, s16 = {2, 2, 1, v16};
    /* Smoothed s8: 3 3.5 4 / 4.5 5 5.5 / 6 6.5 7; pooled: (3+3.5+4.5+5)/4, (4+5.5)/2,
     * (6+6.5)/2, 7. Every 3x3 window of s16 covers all four cells: 25. */
    const float want[8] = {4, 25, 4.75f, 25, 6.25f, 25, 7, 25};
    float got[8];
    cr_assert_eq(dn_patch_descriptors(&s8, &s16, got, NULL), DN_OK);
    for (int i = 0; i < 8; i++)
        cr_assert(fabsf(got[i] - want[i]) < 1e-5f, "[%d] %g vs %g", i, got[i], want[i]);
}

Test(normality, descriptors_refuse_bad_maps)
{
    float d[64] = {0}, out[64];
    dn_fmap s8 = {5, 8, 1, d}, s16 = {4, 4, 1, d}, empty = {0, 4, 1, d};
    dn_error err;
    dn_error_clear(&err);
    /* 5 rows cannot feed 4 cells (the last needs row 6). */
    cr_assert_eq(dn_patch_descriptors(&s8, &s16, out, &err), DN_EINVAL);
    cr_assert(strstr(err.msg, "too small"), "%s", err.msg);
    cr_assert_eq(dn_patch_descriptors(&empty, &s16, out, &err), DN_EINVAL);
    cr_assert_eq(dn_patch_descriptors(&s16, &s16, NULL, &err), DN_EINVAL);
}

/* ---- nearest ---- */

static double dist_d(const float *a, const float *b, int dim)
{
    double s = 0;
    for (int t = 0; t < dim; t++)
        s += ((double)a[t] - b[t]) * ((double)a[t] - b[t]);
    return sqrt(s);
}

/* Checks dist/index of nq queries against brute force in double. */
static void check_nearest(const dn_bank *b, const float *q, int nq, const char *what)
{
    float *dist = malloc(sizeof(float) * (nq ? nq : 1)), *dist2 = malloc(sizeof(float) * (nq ? nq : 1));
    int *index = malloc(sizeof(int) * (nq ? nq : 1));
    dn_error err;
    cr_assert_eq(dn_bank_nearest(b, q, nq, dist, index, &err), DN_OK, "%s: %s", what, err.msg);
    cr_assert_eq(dn_bank_nearest(b, q, nq, dist2, NULL, &err), DN_OK);
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (size_t)i * b->dim;
        double best = INFINITY;
        for (int j = 0; j < b->n; j++) {
            double d = dist_d(qi, b->x + (size_t)j * b->dim, b->dim);
            best = d < best ? d : best;
        }
        double tol = 1e-5 * best + 1e-6;
        cr_assert(index[i] >= 0 && index[i] < b->n, "%s: query %d index %d", what, i, index[i]);
        cr_assert(fabs(dist[i] - best) <= tol, "%s: query %d: %.9g, brute force %.9g", what, i,
                  dist[i], best);
        /* The index names an entry at that distance (any of equally near ones). */
        cr_assert(fabs(dist_d(qi, b->x + (size_t)index[i] * b->dim, b->dim) - best) <= tol,
                  "%s: query %d: entry %d is not a nearest one", what, i, index[i]);
        cr_assert_eq(dist[i], dist2[i], "%s: query %d differs without index", what, i);
    }
    free(dist);
    free(dist2);
    free(index);
}

/* n points around k Gaussian cluster centres (uniform in [-10, 10]^dim), spread sigma. */
static float *clustered(int n, int dim, int k, float sigma, uint64_t seed, float *centres)
{
    uint64_t s = seed | 1;
    float *c = centres ? centres : malloc(sizeof(float) * k * dim);
    float *x = malloc(sizeof(float) * n * dim);
    for (int i = 0; i < k * dim; i++)
        c[i] = dn_test_uniform(&s, -10, 10);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < dim; t++) {
            /* Sum of uniforms: a cheap bell shape, deterministic. */
            float g = 0;
            for (int u = 0; u < 4; u++)
                g += dn_test_uniform(&s, -1, 1);
            x[(size_t)i * dim + t] = c[(i % k) * dim + t] + sigma * g * 0.866f;
        }
    if (!centres)
        free(c);
    return x;
}

static void nearest_case(int n, int dim, int nq, int kind)
{
    float *x = kind ? clustered(n, dim, 12, 0.5f, (uint64_t)n * dim, NULL)
                    : random_floats((size_t)n * dim, -1, 1, (uint64_t)n * dim);
    /* Queries: near bank rows, from the same distribution, and far from everything. */
    float *q = kind ? clustered(nq, dim, 12, 0.7f, (uint64_t)n * dim, NULL)
                    : random_floats((size_t)nq * dim, -1, 1, 7 + (uint64_t)nq * dim);
    uint64_t s = 99;
    for (int i = 0; i < nq; i++) {
        float *qi = q + (size_t)i * dim;
        if (i % 3 == 1)
            for (int t = 0; t < dim; t++)
                qi[t] = x[(size_t)(i % n) * dim + t] + dn_test_uniform(&s, -0.01f, 0.01f);
        else if (i % 3 == 2 && i % 2)
            for (int t = 0; t < dim; t++)
                qi[t] *= 25;
    }
    dn_bank b;
    dn_bank_init(&b);
    dn_error err;
    cr_assert_eq(dn_bank_from(&b, x, n, dim, &err), DN_OK, "%s", err.msg);
    char what[64];
    snprintf(what, sizeof what, "n %d dim %d nq %d %s", n, dim, nq, kind ? "clustered" : "uniform");
    check_nearest(&b, q, nq, what);
    dn_bank_free(&b);
    free(x);
    free(q);
}

Test(normality, nearest_matches_brute_force)
{
    nearest_case(1, 5, 3, 0);        /* one entry */
    nearest_case(5, 13, 1, 0);       /* less than a leaf, one query */
    nearest_case(100, 37, 50, 0);
    nearest_case(1500, 100, 300, 0); /* several leaves and bank blocks: mostly brute-forced */
    nearest_case(3000, 128, 1100, 1); /* two query blocks; bounds prune */
    nearest_case(2000, 24, 200, 1);   /* dim below the 32 principal directions */
    nearest_case(700, 7, 90, 1);
}

Test(normality, query_equal_to_a_row)
{
    int n = 2000, dim = 40;
    float *x = clustered(n, dim, 20, 0.3f, 5, NULL);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_from(&b, x, n, dim, NULL), DN_OK);
    for (int j = 0; j < n; j += 97) {
        float d;
        int at;
        cr_assert_eq(dn_bank_nearest(&b, x + (size_t)j * dim, 1, &d, &at, NULL), DN_OK);
        cr_assert_eq(d, 0.0f, "row %d: distance %g to itself", j, d);
        cr_assert_eq(at, j);
    }
    dn_bank_free(&b);
    free(x);
}

Test(normality, nearest_scratch_and_errors)
{
    int n = 600, dim = 20, nq = 300;
    float *x = clustered(n, dim, 8, 1, 3, NULL), *q = clustered(nq, dim, 8, 1.5f, 3, NULL);
    dn_bank b;
    dn_bank_init(&b);
    dn_error err;
    float d1[300], d2[300];
    int i1[300], i2[300];
    cr_assert_eq(dn_bank_nearest(&b, q, nq, d1, i1, &err), DN_EINVAL); /* empty bank */
    cr_assert_eq(dn_bank_from(&b, x, n, dim, &err), DN_OK);
    size_t bytes = dn_bank_scratch_bytes(&b, nq);
    cr_assert_gt(bytes, 0);
    cr_assert_eq(dn_bank_scratch_bytes(&b, 1 << 30), dn_bank_scratch_bytes(&b, 5000),
                 "scratch must not grow with the number of queries");
    void *scratch = malloc(bytes);
    cr_assert_eq(dn_bank_nearest(&b, q, nq, d1, i1, &err), DN_OK);
    cr_assert_eq(dn_bank_nearest_scratch(&b, q, nq, d2, i2, scratch, &err), DN_OK);
    cr_assert(!memcmp(d1, d2, sizeof d1) && !memcmp(i1, i2, sizeof i1));
    cr_assert_eq(dn_bank_nearest(&b, q, 0, d1, i1, &err), DN_OK);
    cr_assert_eq(dn_bank_nearest(&b, NULL, 3, d1, i1, &err), DN_EINVAL);
    /* A non-finite query is infinitely far; a non-finite bank is refused. */
    q[5] = NAN;
    cr_assert_eq(dn_bank_nearest(&b, q, 1, d1, i1, &err), DN_OK);
    cr_assert(isinf(d1[0]), "%g", d1[0]);
    x[17] = INFINITY;
    cr_assert_eq(dn_bank_from(&b, x, n, dim, &err), DN_EINVAL);
    cr_assert_eq(dn_bank_from(&b, x, 0, dim, &err), DN_EINVAL);
    free(scratch);
    dn_bank_free(&b);
    free(x);
    free(q);
}

typedef struct nn_job {
    const dn_bank *b;
    const float *q;
    int nq, rc;
    float *dist;
    int *index;
} nn_job;

static void *nn_thread(void *arg)
{
    nn_job *j = arg;
    for (int r = 0; r < 5 && !j->rc; r++)
        j->rc = dn_bank_nearest(j->b, j->q, j->nq, j->dist, j->index, NULL);
    return NULL;
}

/* One bank shared by several threads gives each the single-threaded answer. */
Test(normality, nearest_shared_between_threads)
{
    enum { T = 4, NQ = 400 };
    int n = 3000, dim = 64;
    float *x = clustered(n, dim, 30, 1, 9, NULL), *q = clustered(T * NQ, dim, 30, 1.3f, 9, NULL);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_from(&b, x, n, dim, NULL), DN_OK);
    float *want = malloc(sizeof(float) * T * NQ), *got = malloc(sizeof(float) * T * NQ);
    int *wi = malloc(sizeof(int) * T * NQ), *gi = malloc(sizeof(int) * T * NQ);
    cr_assert_eq(dn_bank_nearest(&b, q, T * NQ, want, wi, NULL), DN_OK);
    pthread_t th[T];
    nn_job jobs[T];
    for (int t = 0; t < T; t++) {
        jobs[t] = (nn_job){&b, q + (size_t)t * NQ * dim, NQ, 0, got + t * NQ, gi + t * NQ};
        cr_assert_eq(pthread_create(&th[t], NULL, nn_thread, &jobs[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(jobs[t].rc, DN_OK);
    }
    cr_assert(!memcmp(want, got, sizeof(float) * T * NQ) && !memcmp(wi, gi, sizeof(int) * T * NQ));
    dn_bank_free(&b);
    free(x);
    free(q);
    free(want);
    free(got);
    free(wi);
    free(gi);
}

/* ---- coreset ---- */

/* Largest distance from a candidate to its nearest centre (rows of c). */
static double covering_radius(const float *x, int n, const float *c, int m, int dim)
{
    double r = 0;
    for (int i = 0; i < n; i++) {
        double best = INFINITY;
        for (int j = 0; j < m; j++) {
            double d = dist_d(x + (size_t)i * dim, c + (size_t)j * dim, dim);
            best = d < best ? d : best;
        }
        r = best > r ? best : r;
    }
    return r;
}

/* Candidate row equal to v. */
static int find_row(const float *x, int n, int dim, const float *v)
{
    for (int i = 0; i < n; i++)
        if (!memcmp(x + (size_t)i * dim, v, sizeof(float) * dim))
            return i;
    return -1;
}

Test(normality, coreset_keeps_all_when_small)
{
    int n = 300, dim = 16;
    float *x = random_floats((size_t)n * dim, -1, 1, 21);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, n, 32, 1, NULL), DN_OK);
    cr_assert_eq(b.n, n);
    cr_assert(!memcmp(b.x, x, sizeof(float) * n * dim), "rows changed or reordered");
    cr_assert_eq(dn_bank_build(&b, x, n, dim, 1000, 0, 1, NULL), DN_OK);
    cr_assert_eq(b.n, n);
    dn_bank_free(&b);
    free(x);
}

Test(normality, coreset_deterministic_for_a_seed)
{
    int n = 4000, dim = 48, m = 300;
    float *x = clustered(n, dim, 40, 1, 4, NULL);
    dn_bank a, b, c;
    dn_bank_init(&a);
    dn_bank_init(&b);
    dn_bank_init(&c);
    cr_assert_eq(dn_bank_build(&a, x, n, dim, m, 16, 42, NULL), DN_OK);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, m, 16, 42, NULL), DN_OK);
    cr_assert_eq(dn_bank_build(&c, x, n, dim, m, 16, 43, NULL), DN_OK);
    cr_assert_eq(a.n, m);
    cr_assert_eq(b.n, m);
    cr_assert(!memcmp(a.x, b.x, sizeof(float) * m * dim), "same seed, different coresets");
    cr_assert(memcmp(a.x, c.x, sizeof(float) * m * dim), "the seed has no effect");
    /* Rows are candidates, none twice. */
    for (int i = 0; i < m; i++) {
        int r = find_row(x, n, dim, a.x + (size_t)i * dim);
        cr_assert_geq(r, 0, "row %d is not a candidate", i);
        cr_assert_eq(find_row(a.x, m, dim, a.x + (size_t)i * dim), i, "row %d repeated", i);
    }
    dn_bank_free(&a);
    dn_bank_free(&b);
    dn_bank_free(&c);
    free(x);
}

/* 20 tight clusters far apart: 20 centres must take one from each. */
Test(normality, coreset_one_centre_per_cluster)
{
    enum { K = 20, DIM = 64 };
    int n = 2000;
    float centres[K * DIM];
    float *x = clustered(n, DIM, K, 0.2f, 8, centres);
    for (int proj = 0; proj <= 32; proj += 32) {
        dn_bank b;
        dn_bank_init(&b);
        cr_assert_eq(dn_bank_build(&b, x, n, DIM, K, proj, 5, NULL), DN_OK);
        cr_assert_eq(b.n, K);
        int seen[K] = {0};
        for (int i = 0; i < K; i++) {
            int r = find_row(x, n, DIM, b.x + (size_t)i * DIM);
            cr_assert_geq(r, 0);
            cr_assert_eq(seen[r % K]++, 0, "proj %d: cluster %d chosen twice", proj, r % K);
        }
        dn_bank_free(&b);
    }
    free(x);
}

static float bf16(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* Without projection the selection is the textbook greedy loop on the candidates
 * rounded to bfloat16: replay that loop from the same first centre. */
Test(normality, coreset_is_the_greedy_selection)
{
    int n = 3000, dim = 24, m = 200;
    float *x = random_floats((size_t)n * dim, -1, 1, 31);
    float *r = malloc(sizeof(float) * n * dim);
    for (int i = 0; i < n * dim; i++)
        r[i] = bf16(x[i]);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, m, 0, 77, NULL), DN_OK);
    cr_assert_eq(b.n, m);
    double *mind = malloc(sizeof(double) * n);
    int c = find_row(x, n, dim, b.x);
    cr_assert_geq(c, 0);
    for (int i = 0; i < n; i++)
        mind[i] = INFINITY;
    for (int k = 0; k < m; k++) {
        cr_assert_eq(find_row(x, n, dim, b.x + (size_t)k * dim), c, "centre %d differs", k);
        int far = 0;
        for (int i = 0; i < n; i++) {
            double d = dist_d(r + (size_t)i * dim, r + (size_t)c * dim, dim);
            mind[i] = d < mind[i] ? d : mind[i];
            far = mind[i] > mind[far] ? i : far;
        }
        c = far;
    }
    dn_bank_free(&b);
    free(mind);
    free(x);
    free(r);
}

/* Covering radius of m random candidates, the smallest over a few draws. */
static double random_radius(const float *x, int n, int m, int dim)
{
    uint64_t s = 5;
    float *pick = malloc(sizeof(float) * m * dim);
    double best = INFINITY;
    for (int trial = 0; trial < 5; trial++) {
        for (int i = 0; i < m; i++)
            memcpy(pick + (size_t)i * dim, x + (size_t)(dn_test_rand(&s) % n) * dim,
                   sizeof(float) * dim);
        double r = covering_radius(x, n, pick, m, dim);
        best = r < best ? r : best;
    }
    free(pick);
    return best;
}

/* The k-centre certificate on uniform data: centres pairwise at least the final radius
 * apart (Gonzalez; what makes greedy a 2-approximation), up to the bf16 rounding. */
Test(normality, coreset_covers_better_than_random)
{
    int n = 3000, dim = 12, m = 60;
    float *x = random_floats((size_t)n * dim, -1, 1, 41);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, m, 0, 3, NULL), DN_OK);
    double greedy = covering_radius(x, n, b.x, m, dim), sep = INFINITY;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < i; j++) {
            double d = dist_d(b.x + (size_t)i * dim, b.x + (size_t)j * dim, dim);
            sep = d < sep ? d : sep;
        }
    cr_assert(sep >= 0.99 * greedy, "separation %g < radius %g", sep, greedy);
    double random = random_radius(x, n, m, dim);
    cr_assert_lt(greedy, random, "greedy radius %g, random %g", greedy, random);
    dn_bank_free(&b);
    free(x);
}

/* With a projection (how banks are built), on data with structure: 50 clusters. */
Test(normality, coreset_projected_covers_better_than_random)
{
    int n = 5000, dim = 96, m = 100;
    float *x = clustered(n, dim, 50, 1.5f, 51, NULL);
    dn_bank b;
    dn_bank_init(&b);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, m, 32, 3, NULL), DN_OK);
    double greedy = covering_radius(x, n, b.x, m, dim), random = random_radius(x, n, m, dim);
    cr_assert_lt(greedy, random, "greedy radius %g, random %g", greedy, random);
    dn_bank_free(&b);
    free(x);
}

Test(normality, coreset_stops_on_duplicates_and_refuses_bad_input)
{
    int n = 500, dim = 10;
    float *x = malloc(sizeof(float) * n * dim);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < dim; t++)
            x[(size_t)i * dim + t] = (float)(i % 3) + 0.5f * t; /* three distinct rows */
    dn_bank b;
    dn_bank_init(&b);
    dn_error err;
    cr_assert_eq(dn_bank_build(&b, x, n, dim, 50, 0, 1, &err), DN_OK, "%s", err.msg);
    cr_assert_eq(b.n, 3);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, 0, 0, 1, &err), DN_EINVAL);
    cr_assert_eq(dn_bank_build(&b, x, n, dim, 10, -1, 1, &err), DN_EINVAL);
    cr_assert_eq(dn_bank_build(&b, NULL, n, dim, 10, 0, 1, &err), DN_EINVAL);
    x[42] = NAN;
    cr_assert_eq(dn_bank_build(&b, x, n, dim, 10, 0, 1, &err), DN_EINVAL);
    cr_assert_eq(b.n, 3, "a refused build leaves the bank as it was");
    dn_bank_free(&b);
    free(x);
}
